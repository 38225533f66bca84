"""Replies over a real WebSocket against the real server (Mosquitto, simulated devices):
text replies (en, zh-CN), spoken replies heard back by Whisper, barge-in, timers."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import soxr
from websockets.asyncio.client import ClientConnection

from assistant.audio.asr import WhisperTranscriber
from assistant.cli import main
from tests.server_fixtures import (
    EVENT_TIMEOUT_S,
    Received,
    ServerThread,
    open_session,
    recv_event,
    recv_until,
    stream_realtime,
)
from tests.speech import normalize_text


async def _say(ws: ClientConnection, text: str, *, reply_end: bool = False) -> Received:
    """Send a text command; events up to its ``metrics`` (and, with ``reply_end``, its
    reply's ``response.done`` / ``response.interrupted``)."""
    await ws.send(json.dumps({"type": "text", "text": text}))
    seen = {"metrics": False, "end": not reply_end}

    def done(e: dict[str, Any]) -> bool:
        if e["type"] == "metrics":
            seen["metrics"] = True
        if e["type"] in ("response.done", "response.interrupted"):
            seen["end"] = True
        return seen["metrics"] and seen["end"]

    return await recv_until(ws, done)


async def _reply_audio(ws: ClientConnection, rate: int) -> None:
    await ws.send(json.dumps({"type": "session.update",
                              "reply": {"audio": True, "sample_rate": rate}}))
    updated = await recv_event(ws)
    assert updated["type"] == "session.updated", updated
    assert updated["config"]["reply"] == {"audio": True, "sample_rate": rate}


async def test_text_replies_en_and_zh(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory()
    ws, created = await open_session(server.url)
    async with ws:
        assert created["config"]["reply"] == {"audio": False, "sample_rate": 16000}
        got = await _say(ws, "turn on the kitchen light")
        kinds = [e["type"] for e in got.events]
        # The reply comes after the final action and before metrics; without audio it is done
        # at once.
        assert kinds[-3:] == ["response.text", "response.done", "metrics"], kinds
        reply = got.of("response.text")[0]
        assert (reply["text"], reply["language"], reply["kind"], reply["audio"]) == (
            "Turned on the kitchen light.", "en", "done", False)
        assert reply["utterance_id"] == got.of("metrics")[0]["utterance_id"]
        zh = (await _say(ws, "关闭厨房灯")).of("response.text")[0]
        assert (zh["text"], zh["language"]) == ("已关闭厨房灯。", "zh-CN")
        nothing = (await _say(ws, "blah blah banana")).of("response.text")[0]
        assert nothing["kind"] == "not_understood"
        # thanks (or Whisper's "Thank you." on the noise after an order) is no failure
        thanks = (await _say(ws, "Thank you.")).of("response.text")[0]
        assert (thanks["text"], thanks["kind"]) == ("You're welcome.", "answer")
        assert (await _say(ws, "谢谢")).of("response.text")[0]["text"] == "不客气。"
        # A client asking for audio from a server without a voice gets text only.
        await _reply_audio(ws, 16000)
        got = await _say(ws, "is the kitchen light on", reply_end=True)
        assert got.of("response.text")[0]["text"] == "The kitchen light is off."
        assert got.of("response.audio") == []


async def test_which_one_is_asked_then_answered(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    ws, _ = await open_session(server.url)
    async with ws:
        asked = await _say(ws, "turn on the light")
        reply = asked.of("response.text")[0]
        assert (reply["kind"], reply["text"]) == (
            "clarify", "Which light: bedroom, hallway, kitchen, living room or office?")
        # Nothing was switched: one final rejected action, no device, nothing published.
        assert [(a["status"], a["device_id"]) for a in asked.of("action")] == [("rejected", None)]
        answered = await _say(ws, "the kitchen one")
        intent = answered.of("intent")[0]["intent"]
        assert (intent["name"], intent["slots"]["device_ids"], intent["source"]) == (
            "light_on", ["kitchen_light"], "context")
        finals = [a for a in answered.of("action") if a["final"]]
        assert [(a["device_id"], a["status"]) for a in finals] == [("kitchen_light", "confirmed")]
        assert answered.of("response.text")[0]["text"] == "Turned on the kitchen light."
        # The question is asked once: a later bare "kitchen" is no answer to anything.
        later = (await _say(ws, "the kitchen one")).of("intent")[0]
        assert later["intent"] is None or later["intent"]["source"] != "context"


async def test_a_correction_is_carried_out_and_said(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    ws, _ = await open_session(server.url)
    async with ws:
        first = await _say(ws, "turn on the office light")
        assert first.of("response.text")[0]["text"] == "Turned on the office light."
        fixed = await _say(ws, "no wait, the kitchen light")
        intent = fixed.of("intent")[0]
        assert intent["amends"] == first.of("metrics")[0]["utterance_id"]
        finals = {(a["intent"], a["device_id"], a["status"]) for a in fixed.of("action")
                  if a["final"]}
        assert finals == {("light_on", "kitchen_light", "confirmed"),
                          ("light_off", "office_light", "confirmed")}, finals
        reply = fixed.of("response.text")[0]["text"]
        assert reply == "Turned on the kitchen light. Turned off the office light.", reply


async def test_which_room_is_asked_when_here_is_unknown(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    """"In here" with no room known moves nothing; it asks, and the answer acts in that room
    only, once (issue 14: never the whole house)."""
    server = text_server_factory()
    ws, created = await open_session(server.url)
    async with ws:
        assert created["config"].get("area") is None
        asked = await _say(ws, "it's too dark in here")
        assert asked.of("intent")[0]["intent"] is None
        assert not any(a["status"] == "published" for a in asked.of("action"))
        reply = asked.of("response.text")[0]
        assert (reply["kind"], reply["text"]) == ("clarify", "Which room are you in?")
        answered = await _say(ws, "the kitchen")
        intent = answered.of("intent")[0]["intent"]
        assert intent is not None and intent["name"] == "light_on", intent
        assert intent["slots"]["device_ids"] == ["kitchen_light"]
        finals = [a for a in answered.of("action") if a["final"]]
        assert [(a["device_id"], a["status"]) for a in finals] == [("kitchen_light", "confirmed")]
        # asked once: the room is not remembered, a later "in here" asks again
        again = await _say(ws, "turn off the lights in here")
        assert again.of("intent")[0]["intent"] is None
        assert again.of("response.text")[0]["kind"] == "clarify"
        zh = await _say(ws, "这里太暗了")
        assert zh.of("response.text")[0]["text"] == "你在哪个房间？"
        done = await _say(ws, "客厅")
        assert done.of("intent")[0]["intent"]["slots"]["device_ids"] == ["living_room_light"]


async def test_timer_is_announced(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory()
    ws, _ = await open_session(server.url)
    async with ws:
        got = await _say(ws, "set a timer for 2 seconds")
        uid = got.of("metrics")[0]["utterance_id"]
        assert got.of("response.text")[0]["text"] == "Timer set for 2 seconds."
        action = got.of("action")[0]
        assert (action["intent"], action["status"], action["device_id"]) == (
            "timer_start", "confirmed", None)
        left = await _say(ws, "how much time is left on the timer")
        assert left.of("response.text")[0]["text"].endswith("left on the timer.")
        finished = await recv_until(ws, lambda e: e["type"] == "response.text")
        timer = finished.of("timer.finished")[0]
        assert (timer["utterance_id"], timer["duration_s"]) == (uid, 2.0)
        announce = finished.of("response.text")[0]
        assert (announce["text"], announce["kind"]) == ("Your 2 second timer is done.", "timer")
        zh = await _say(ws, "现在几点了")
        assert zh.of("response.text")[0]["text"].startswith("现在是")


@pytest.mark.slow
async def test_spoken_reply_holds_the_sensor_value(
    hearth_server: ServerThread, whisper_transcriber: WhisperTranscriber
) -> None:
    ws, created = await open_session(hearth_server.url)
    async with ws:
        assert created["tts"]["en"] == "piper:en_US-joe-medium"
        await _reply_audio(ws, 16000)
        got = await _say(ws, "what's the temperature in the kitchen", reply_end=True)
        action = next(a for a in got.of("action") if a["final"])
        assert (action["device_id"], action["status"]) == ("kitchen_temperature", "confirmed")
        value = action["state"]["current_temperature"]
        reply = got.of("response.text")[0]
        assert reply["audio"] is True and f"{value:g}" in reply["text"]
        chunks = got.of("response.audio")
        assert chunks and all(c["sample_rate"] == 16000 for c in chunks)
        assert [c["offset_ms"] for c in chunks] == sorted(c["offset_ms"] for c in chunks)
        done = got.of("response.done")[0]
        assert done["audio_ms"] > 1000 and done["timings_ms"]["first_audio"] >= 0
        pcm = b"".join(base64.b64decode(c["audio"]) for c in chunks)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        heard = normalize_text(whisper_transcriber.transcribe(audio).text)
        whole, _, frac = f"{value:g}".partition(".")
        spoken = [f"{whole} {frac}".strip(), f"{whole} point {frac}"]
        assert "kitchen" in heard and any(s in heard for s in spoken), (heard, value)


@pytest.mark.slow
async def test_barge_in_stops_the_reply_and_acts(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    pcm = speech_pcm("turn off the kitchen light")
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await _reply_audio(ws, 16000)
        await ws.send(json.dumps({"type": "text", "text": "what's the temperature in the kitchen"}))
        first = await recv_until(ws, lambda e: e["type"] == "response.text")
        asked = first.of("response.text")[0]
        assert asked["audio"] is True
        # The user speaks over the reply: streamed like a microphone from now on.
        sender = asyncio.create_task(stream_realtime(ws, pcm))
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 3 * EVENT_TIMEOUT_S
        spoken_uid = None
        while time.monotonic() < deadline:
            e = await recv_event(ws)
            events.append(e)
            if e["type"] == "speech.started":
                spoken_uid = e["utterance_id"]
            if e["type"] == "metrics" and e["utterance_id"] == spoken_uid:
                break
        await sender
    kinds = [e["type"] for e in events]
    interrupted = [e for e in events if e["type"] == "response.interrupted"]
    assert len(interrupted) == 1, kinds
    stop = interrupted[0]
    assert stop["response_id"] == asked["response_id"] and stop["reason"] == "barge_in"
    assert 0 <= stop["played_ms"] <= stop["sent_ms"]
    # Nothing more of that reply after the interruption, and it never finished.
    after = events[kinds.index("response.interrupted") + 1 :]
    assert not [e for e in after if e.get("response_id") == asked["response_id"]]
    assert not [e for e in events if e["type"] == "response.done"
                and e["response_id"] == asked["response_id"]]
    assert kinds.index("speech.started") < kinds.index("response.interrupted") + 1
    # The new utterance was handled: the light went off, and it got its own reply.
    finals = [e for e in events if e["type"] == "action" and e["final"]
              and e["utterance_id"] == spoken_uid]
    assert [(a["device_id"], a["status"]) for a in finals] == [("kitchen_light", "confirmed")]
    replies = [e for e in events if e["type"] == "response.text"
               and e["utterance_id"] == spoken_uid]
    assert replies and replies[0]["text"] == "Turned off the kitchen light."


def _scrape(server: ServerThread) -> str:
    with urllib.request.urlopen(server.http_url + "metrics", timeout=EVENT_TIMEOUT_S) as r:
        return str(r.read().decode("utf-8"))


def _reply_count(text: str, reply: str, start: str) -> int:
    line = f'hearth_speech_end_to_reply_seconds_count{{reply="{reply}",input="{start}"}}'
    found = [ln for ln in text.splitlines() if ln.startswith(line + " ")]
    return int(found[0].split()[-1]) if found else 0


@pytest.mark.slow
async def test_reply_latency_is_in_the_metrics_event_and_at_metrics(
    hearth_server: ServerThread, speech_pcm: Callable[[str], bytes]
) -> None:
    """Speech end (or the text's arrival) → the reply's text and → its first audio chunk, in
    the turn's ``metrics`` (which waits for that chunk) and in ``/metrics``."""
    before = await asyncio.to_thread(_scrape, hearth_server)
    pcm = speech_pcm("turn on the office light")
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await _reply_audio(ws, 16000)
        typed = await _say(ws, "set the kitchen light to 40 percent", reply_end=True)
        sender = asyncio.create_task(stream_realtime(ws, pcm))
        spoken = await recv_until(ws, lambda e: e["type"] == "metrics")
        await sender
        for got, intent in ((typed, "light_set"), (spoken, "light_on")):
            assert got.of("intent")[0]["intent"]["name"] == intent
            uid = got.of("metrics")[0]["utterance_id"]
            kinds = [e["type"] for e in got.events if e.get("utterance_id") == uid]
            # metrics follows the first chunk of the reply's audio
            assert kinds.index("response.text") < kinds.index("response.audio") < kinds.index(
                "metrics"), kinds
            t = got.of("metrics")[0]["timings_ms"]
            text_ms, audio_ms = t["speech_end_to_reply_text"], t["speech_end_to_reply_audio"]
            assert 0 < text_ms <= audio_ms < t["total"], t
        assert spoken.of("speech.stopped") and typed.of("speech.stopped") == []
        # the spoken turn counts from speech end: after the action, before the reply
        t = spoken.of("metrics")[0]["timings_ms"]
        assert t["speech_end_to_action"] <= t["speech_end_to_reply_text"], t
    after = await asyncio.to_thread(_scrape, hearth_server)
    assert "# TYPE hearth_speech_end_to_reply_seconds histogram" in after
    for reply in ("text", "audio"):
        for start in ("speech", "text"):
            assert _reply_count(after, reply, start) == _reply_count(before, reply, start) + 1


@pytest.mark.slow
def test_hearth_say_writes_the_reply_audio(
    hearth_server: ServerThread,
    whisper_transcriber: WhisperTranscriber,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_wav = tmp_path / "reply.wav"
    rc = main(["say", "is the front door locked", "--url", hearth_server.url,
               "--reply-audio", str(out_wav)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    reply = next(e for e in events if e["type"] == "response.text")
    assert reply["text"].startswith("The front door is ")
    assert f"hearth: reply: {reply['text']}" in err
    chunks = [e for e in events if e["type"] == "response.audio"]
    assert chunks and all("audio" not in e and e["audio_bytes"] > 0 for e in chunks)
    with wave.open(str(out_wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = soxr.resample(pcm.astype(np.float32) / 32768, 22050, 16000)
    heard = normalize_text(whisper_transcriber.transcribe(audio.astype(np.float32)).text)
    assert "front door" in heard and ("locked" in heard or "unlocked" in heard), heard


async def test_audit_has_the_reply_and_a_timer_of_a_gone_session(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    server = text_server_factory(**{"audit.path": str(path)})
    ws, created = await open_session(server.url)
    async with ws:
        await _say(ws, "turn off the kitchen light")
        await _say(ws, "set a timer for 1 second")
    # The session is gone before the timer runs out: the audit log gets it.
    await asyncio.sleep(2.0)
    await asyncio.to_thread(server.stop)  # flushes and closes the log
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    turns = [line for line in lines if "outcome" in line]
    assert [t.get("reply") for t in turns] == ["Turned off the kitchen light.",
                                              "Timer set for 1 second."]
    finished = [line for line in lines if line.get("event") == "timer.finished"]
    assert [(f["session"], f["duration_s"]) for f in finished] == [(created["session_id"], 1.0)]


async def test_timer_follows_the_client_id_to_its_next_connection(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(clients=[{"id": "kitchen-hub", "area": "kitchen"}])
    hello = json.dumps({"type": "session.update", "client_id": "kitchen-hub"})
    ws, _ = await open_session(server.url)
    async with ws:
        await ws.send(hello)
        assert (await recv_event(ws))["type"] == "session.updated"
        set_it = await _say(ws, "set a timer for 3 seconds")
        uid = set_it.of("metrics")[0]["utterance_id"]
    # Reconnected (a new session) before it ran out: the timer comes back to the client.
    ws, _ = await open_session(server.url)
    async with ws:
        await ws.send(hello)
        assert (await recv_event(ws))["type"] == "session.updated"
        left = await _say(ws, "how much time is left on the timer")
        assert left.of("response.text")[0]["text"].endswith("left on the timer.")
        finished = await recv_until(ws, lambda e: e["type"] == "response.text")
        assert finished.of("timer.finished")[0]["utterance_id"] == uid
        assert finished.of("response.text")[0]["text"] == "Your 3 second timer is done."


class _FakeOutputStream:
    """Stands in for ``sounddevice.RawOutputStream``: a thread pulls real-time blocks from the
    callback, as PortAudio would, and keeps what it was given."""

    played: ClassVar[list[bytes]] = []

    def __init__(self, *, samplerate: int, channels: int, dtype: str,
                 callback: Callable[..., None]) -> None:
        assert (channels, dtype) == (1, "int16")
        self.rate, self.callback = samplerate, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, daemon=True)

    def _pull(self) -> None:
        frames = self.rate // 50
        while not self._stop.is_set():
            out = bytearray(frames * 2)
            self.callback(out, frames, None, None)
            _FakeOutputStream.played.append(bytes(out))
            time.sleep(0.02)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_hearth_listen_plays_the_reply(
    hearth_server: ServerThread,
    speech_pcm: Callable[[str], bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_client_e2e import FakeInputStream, fake_sounddevice

    sd = fake_sounddevice(default_rate=16000)
    sd.RawOutputStream = _FakeOutputStream
    monkeypatch.setattr(FakeInputStream, "pcm", speech_pcm("turn on the hallway light"))
    monkeypatch.setattr(FakeInputStream, "opened", [])
    monkeypatch.setattr(_FakeOutputStream, "played", [])
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    rc = main(["listen", "--url", hearth_server.url, "--seconds", "6"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    reply = next(e for e in events if e["type"] == "response.text")
    assert reply["text"] == "Turned on the hallway light." and reply["audio"] is True
    played = np.frombuffer(b"".join(_FakeOutputStream.played), dtype="<i2")
    loud = np.count_nonzero(np.abs(played) > 300)
    assert loud > 16000 * 0.3, loud  # the spoken reply went to the output device
