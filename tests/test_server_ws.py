"""The server over a real WebSocket: the text path to a real Mosquitto, protocol errors, HTTP.

Uses the session-scoped ``hearth_server`` (demo home, real models, simulated devices on a
real Mosquitto). No timing assertions.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.server_fixtures import (
    MqttRecorder,
    ServerThread,
    open_session,
    recv_event,
    recv_utterances,
)


def http_get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


async def assert_text_command_works(url: str) -> None:
    ws, _ = await open_session(url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "把客厅灯打开"}))
        got = await recv_utterances(ws, 1)
    assert got.of("intent")[0]["intent"]["name"] == "light_on"
    finals = [a for a in got.of("action") if a["final"]]
    assert [(a["device_id"], a["status"]) for a in finals] == [("living_room_light", "confirmed")]


async def test_session_created_describes_the_session(hearth_server: ServerThread) -> None:
    ws, created = await open_session(hearth_server.url)
    await ws.close()
    assert created["protocol_version"] == 1
    assert created["session_id"]
    assert created["config"]["sample_rate"] == 16000
    assert 16000 in created["limits"]["supported_sample_rates"]


async def test_text_command_confirmed_and_seen_on_the_broker(
    hearth_server: ServerThread, mqtt_recorder: MqttRecorder
) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "把客厅灯打开"}))
        got = await recv_utterances(ws, 1)
    kinds = [e["type"] for e in got.events]
    assert kinds[0] == "transcript.final"
    assert kinds[-1] == "metrics"
    uid = got.events[0]["utterance_id"]
    assert all(e["utterance_id"] == uid for e in got.events)
    intent = got.of("intent")[0]
    assert intent["intent"]["name"] == "light_on"
    assert intent["intent"]["slots"]["device_ids"] == ["living_room_light"]
    statuses = [(a["status"], a["final"]) for a in got.of("action")]
    assert statuses == [("published", False), ("confirmed", True)]
    action = got.of("action")[-1]
    assert action["topic"] == "zigbee2mqtt/living_room_light/set"
    assert action["state"]["state"] == "on"
    # An independent subscriber saw the command on the real broker.
    payload = mqtt_recorder.wait_for("zigbee2mqtt/living_room_light/set")
    assert json.loads(payload)["state"] == "ON"
    metrics = got.of("metrics")[0]
    assert metrics["outcome"] == "actions"
    assert metrics["timings_ms"]["intent"] is not None
    assert metrics["timings_ms"]["dispatch"] is not None


async def test_text_without_intent_says_why(hearth_server: ServerThread) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "what a lovely day it is"}))
        got = await recv_utterances(ws, 1)
    intent = got.of("intent")[0]
    assert intent["intent"] is None and intent["reason"]
    assert got.of("action") == []
    assert got.of("metrics")[0]["outcome"] == "no_intent"


async def test_context_follow_up_on_one_connection(hearth_server: ServerThread) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        first = await recv_utterances(ws, 1)
        await ws.send(json.dumps({"type": "text", "text": "turn it off"}))
        second = await recv_utterances(ws, 1)
    assert first.of("intent")[0]["intent"]["name"] == "light_on"
    follow = second.of("intent")[0]["intent"]
    assert follow["name"] == "light_off"
    assert follow["slots"]["device_ids"] == ["kitchen_light"]
    assert second.of("action")[-1]["status"] == "confirmed"


# -- protocol errors: each an error event with its code; the session keeps working ----------

BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("this is not json", "bad_json"),
    ("[1, 2, 3]", "bad_json"),
    (json.dumps({"type": "launch.rockets"}), "unknown_type"),
    (json.dumps({"text": "no type"}), "unknown_type"),
    (json.dumps({"type": "text", "text": 42}), "invalid_message"),
    (json.dumps({"type": "text", "text": "hi", "volume": 11}), "invalid_message"),
    (json.dumps({"type": "session.update", "sample_rate": "fast"}), "invalid_message"),
    (json.dumps({"type": "session.update", "sample_rate": 11025}), "unsupported_sample_rate"),
    (json.dumps({"type": "image", "data": "%%%not base64%%%"}), "invalid_message"),
    (b"\x01\x02\x03", "odd_length_audio"),
    (b"\x00" * 200_000, "frame_too_large"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES, ids=[c for _, c in BAD_FRAMES])
async def test_bad_input_gives_an_error_and_the_session_goes_on(
    hearth_server: ServerThread, frame: str | bytes, code: str
) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(frame)
        error = await recv_event(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]
        # Same connection, still working.
        await ws.send(json.dumps({"type": "text", "text": "turn on the office light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("intent")[0]["intent"]["name"] == "light_on"
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_errors_do_not_disturb_another_connection(hearth_server: ServerThread) -> None:
    calm, _ = await open_session(hearth_server.url)
    noisy, _ = await open_session(hearth_server.url)
    async with calm, noisy:
        for frame, _code in BAD_FRAMES:
            await noisy.send(frame)
        codes = [(await recv_event(noisy))["code"] for _ in BAD_FRAMES]
        assert codes == [c for _, c in BAD_FRAMES]
        await calm.send(json.dumps({"type": "text", "text": "turn on the hallway light"}))
        got = await recv_utterances(calm, 1)
        assert got.of("error") == []
        assert got.of("action")[-1]["status"] == "confirmed"


async def test_audio_before_session_update_uses_16k_and_a_new_rate_applies_after(
    hearth_server: ServerThread,
) -> None:
    ws, created = await open_session(hearth_server.url)
    async with ws:
        assert created["config"]["sample_rate"] == 16000
        await ws.send(b"\x00\x00" * 320)  # 20 ms of 16 kHz silence, before any session.update
        await ws.send(json.dumps({"type": "session.update", "sample_rate": 48000}))
        updated = await recv_event(ws)
        assert updated["type"] == "session.updated"
        assert updated["config"]["sample_rate"] == 48000
        await ws.send(b"\x00\x00" * 960)  # 20 ms at 48 kHz
        await ws.send(json.dumps({"type": "session.update", "sample_rate": 12345}))
        error = await recv_event(ws)
        assert error["code"] == "unsupported_sample_rate"
        # The rejected update changed nothing.
        await ws.send(json.dumps({"type": "session.update", "language": "en"}))
        again = await recv_event(ws)
        assert again["config"]["sample_rate"] == 48000
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_frame_over_the_websocket_limit_closes_with_1009(
    hearth_server: ServerThread,
) -> None:
    ws, created = await open_session(hearth_server.url, max_size=None)
    limit = max(created["limits"]["max_message_bytes"], created["limits"]["max_audio_frame_bytes"])
    await ws.send(b"\x00" * (limit + 2))
    with pytest.raises(ConnectionClosed):
        while True:
            await recv_event(ws)
    assert ws.close_code == 1009
    await assert_text_command_works(hearth_server.url)


async def test_cancel_before_anything_is_harmless(hearth_server: ServerThread) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        for raw in ({"type": "cancel"}, {"type": "audio.clear"}, {"type": "audio.commit"}):
            await ws.send(json.dumps(raw))
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("error") == []
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_device_state_events_reach_sessions(hearth_server: ServerThread) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the bedroom lamp"}))
        states: list[dict[str, Any]] = []
        metrics_seen = False
        while not (metrics_seen and states):
            event = await recv_event(ws, skip_device_state=False)
            if event["type"] == "device.state" and event["device_id"] == "bedroom_lamp":
                states.append(event)
            metrics_seen = metrics_seen or event["type"] == "metrics"
    assert states[-1]["state"]["state"] == "on"


# -- HTTP on the same port -------------------------------------------------------------------


async def test_healthz(hearth_server: ServerThread) -> None:
    status, ctype, body = await asyncio.to_thread(http_get, hearth_server.http_url + "healthz")
    assert status == 200
    assert ctype.startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["mqtt"] is True and health["speech"] is True


async def test_metrics_in_prometheus_format(hearth_server: ServerThread) -> None:
    await assert_text_command_works(hearth_server.url)
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send("garbage")
        await recv_event(ws)
    status, ctype, body = await asyncio.to_thread(http_get, hearth_server.http_url + "metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    for line in (
        "# TYPE hearth_stage_seconds histogram",
        "# TYPE hearth_speech_end_to_action_seconds histogram",
        "# TYPE hearth_sessions_total counter",
        "# TYPE hearth_errors_total counter",
        'hearth_errors_total{code="bad_json"}',
        'hearth_actions_total{status="confirmed"}',
        'hearth_utterances_total{outcome="actions"}',
        'hearth_stage_seconds_bucket{stage="intent",le="+Inf"}',
        'hearth_stage_seconds_count{stage="dispatch"}',
    ):
        assert line in body, line
    for sample in (ln for ln in body.splitlines() if ln and not ln.startswith("#")):
        name_labels, value = sample.rsplit(" ", 1)
        float(value)
        assert name_labels.startswith("hearth_")


async def test_api_devices_lists_the_registry(hearth_server: ServerThread) -> None:
    status, _ctype, body = await asyncio.to_thread(http_get, hearth_server.http_url + "api/devices")
    assert status == 200
    devices = {d["id"]: d for d in json.loads(body)["devices"]}
    assert devices["kitchen_light"]["kind"] == "light"
    assert devices["kitchen_light"]["state"] is not None  # retained state from the simulator


async def test_static_page_and_not_found(hearth_server: ServerThread) -> None:
    status, ctype, _ = await asyncio.to_thread(http_get, hearth_server.http_url)
    assert status == 200 and ctype.startswith("text/html")
    for path in ("nope.html", "../pyproject.toml", "%2e%2e/server.py"):
        status, _, _ = await asyncio.to_thread(http_get, hearth_server.http_url + path)
        assert status == 404, path
