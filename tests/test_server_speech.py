"""End to end: piper speech streamed in real time (20 ms frames) over a real WebSocket into the
real VAD and Whisper models; the command is confirmed by the simulated device and observed on
the real Mosquitto by an independent subscriber. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.server_fixtures import (
    MqttRecorder,
    Received,
    ServerThread,
    open_session,
    recv_event,
    recv_utterances,
    stream_realtime,
)

pytestmark = pytest.mark.slow


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def by_utterance(got: Received) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in got.events:
        if e.get("utterance_id"):
            out.setdefault(e["utterance_id"], []).append(e)
    return out


def check_spoken_command(events: list[dict[str, Any]], intent: str, device: str) -> None:
    kinds = [e["type"] for e in events]
    assert kinds[0] == "speech.started", kinds
    assert kinds.index("speech.stopped") < kinds.index("transcript.final") < kinds.index("intent")
    assert kinds[-1] == "metrics"
    got_intent = next(e for e in events if e["type"] == "intent")["intent"]
    transcript = next(e for e in events if e["type"] == "transcript.final")["text"]
    assert got_intent is not None, (transcript, events)
    assert (got_intent["name"], got_intent["slots"]["device_ids"]) == (intent, [device])
    finals = [e for e in events if e["type"] == "action" and e["final"]]
    assert [(a["device_id"], a["status"]) for a in finals] == [(device, "confirmed")]
    metrics = events[-1]
    assert metrics["outcome"] == "actions"
    timings = metrics["timings_ms"]
    for stage in ("vad", "endpoint_wait", "asr", "intent", "dispatch", "speech_end_to_action"):
        assert timings[stage] is not None and timings[stage] >= 0, stage


async def test_spoken_command_is_confirmed(
    hearth_server: ServerThread,
    speech_pcm: Callable[[str], bytes],
    mqtt_recorder: MqttRecorder,
) -> None:
    pcm = speech_pcm("turn on the kitchen light")
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        sender = asyncio.create_task(stream_realtime(ws, pcm))
        got = await recv_utterances(ws, 1)
        await sender
    check_spoken_command(got.events, "light_on", "kitchen_light")
    assert got.of("speech.stopped")[0]["reason"] in ("complete", "silence")
    metrics = await asyncio.to_thread(http_text, hearth_server.http_url + "metrics")
    assert 'hearth_stage_seconds_count{stage="asr"}' in metrics
    assert 'hearth_speculations_total{result="started"}' in metrics
    assert "hearth_speech_end_to_action_seconds_count" in metrics
    # What was done, not what exactly was heard: Whisper's wording varies from machine to
    # machine ("turn on" / "put on", a trailing comma); the intent and the action above don't.
    transcript = got.of("transcript.final")[0]
    assert transcript["source"] == "asr" and transcript["text"].strip()
    # Nothing was shed: the test server keeps every pass however busy the machine is, and a
    # server that did shed would say so here (tests/test_asr_shedding.py).
    for kind in ("final_pass", "full_window_retry", "acoustic_repair", "escalation"):
        assert f'hearth_asr_shed_total{{skipped="{kind}"}} 0' in metrics, kind
    assert json.loads(mqtt_recorder.wait_for("zigbee2mqtt/kitchen_light/set"))["state"] == "ON"


async def test_several_utterances_on_one_connection(
    hearth_server: ServerThread,
    speech_pcm: Callable[[str], bytes],
    mqtt_recorder: MqttRecorder,
) -> None:
    commands = [
        ("turn off the living room light", "light_off", "living_room_light"),
        ("turn on the living room light", "light_on", "living_room_light"),
        ("turn off the bedroom lamp", "light_off", "bedroom_lamp"),
    ]
    ws, _ = await open_session(hearth_server.url)
    async with ws:

        async def speak() -> None:
            for text, _, _ in commands:
                await stream_realtime(ws, speech_pcm(text))

        sender = asyncio.create_task(speak())
        got = await recv_utterances(ws, len(commands))
        await sender
    utterances = list(by_utterance(got).values())
    assert len(utterances) == len(commands)
    for events, (_text, intent, device) in zip(utterances, commands, strict=True):
        check_spoken_command(events, intent, device)
    mqtt_recorder.wait_for("cmnd/bedroom_lamp/POWER", "OFF")


async def test_two_connections_at_once(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    a, _ = await open_session(hearth_server.url)
    b, _ = await open_session(hearth_server.url)

    async def run(ws: Any, text: str) -> Received:
        sender = asyncio.create_task(stream_realtime(ws, speech_pcm(text)))
        got = await recv_utterances(ws, 1)
        await sender
        return got

    async with a, b:
        got_a, got_b = await asyncio.gather(
            run(a, "turn on the office light"), run(b, "turn on the hallway light")
        )
    check_spoken_command(got_a.events, "light_on", "office_light")
    check_spoken_command(got_b.events, "light_on", "hallway_light")


async def test_48k_audio_after_session_update(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    pcm16 = np.frombuffer(speech_pcm("turn off the kitchen light"), dtype="<i2")
    pcm48 = np.repeat(pcm16, 3).astype("<i2").tobytes()  # crude but valid 48 kHz audio
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "sample_rate": 48000}))
        assert (await recv_event(ws))["type"] == "session.updated"
        sender = asyncio.create_task(stream_realtime(ws, pcm48, rate=48000))
        got = await recv_utterances(ws, 1)
        await sender
    check_spoken_command(got.events, "light_off", "kitchen_light")


async def test_push_to_talk_commit(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    pcm = speech_pcm("turn on the kitchen light")
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "mode": "push_to_talk"}))
        assert (await recv_event(ws))["config"]["mode"] == "push_to_talk"
        speech_only = pcm[: len(pcm) - 16000 * 2 * 3 // 4]  # most of the trailing silence cut
        await stream_realtime(ws, speech_only)
        await ws.send(json.dumps({"type": "audio.commit"}))
        got = await recv_utterances(ws, 1)
    check_spoken_command(got.events, "light_on", "kitchen_light")


async def test_cancel_while_speaking_drops_the_utterance(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    pcm = speech_pcm("turn on the garage light please and then some more words")
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        half = len(pcm) // 2 // 2 * 2
        sender = asyncio.create_task(stream_realtime(ws, pcm[:half]))
        started = await recv_event(ws)
        assert started["type"] == "speech.started"
        await ws.send(json.dumps({"type": "cancel"}))
        await sender
        got = await recv_utterances(ws, 1)
        assert got.of("metrics")[0]["utterance_id"] == started["utterance_id"]
        assert got.of("metrics")[0]["outcome"] == "cancelled"
        assert got.of("action") == []
        # The session goes on.
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        after = await recv_utterances(ws, 1)
    assert after.of("action")[-1]["status"] == "confirmed"


async def test_silence_and_noise_produce_nothing(hearth_server: ServerThread) -> None:
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(16000 * 2) * 30).astype("<i2").tobytes()
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await stream_realtime(ws, bytes(16000 * 2) + noise)
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("speech.started") == []
    assert got.of("error") == []
