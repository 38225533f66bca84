"""The CLI and the client library against a real Hearth server.

Text commands use a text-only server (no speech models, ~0.3 s to start); spoken commands
use the shared server with the real VAD and Whisper models (``slow``). Every command is also
observed on the real Mosquitto by an independent subscriber. No timing assertions.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import sys
import threading
import time
import types
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from assistant.cli import main
from assistant.client import HearthClient, HearthConnectionError, UnknownEvent
from assistant.client_cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE
from assistant.protocol import DeviceState, ErrorEvent, SessionUpdated
from tests.server_fixtures import MqttRecorder, ServerThread
from tests.speech import synth, with_silence

KITCHEN_SET = "zigbee2mqtt/kitchen_light/set"


def json_lines(out: str) -> list[dict[str, Any]]:
    """Parse stdout; every line must be one JSON object."""
    return [json.loads(line) for line in out.splitlines()]


def finals(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["device_id"], e["status"]) for e in events if e["type"] == "action" and e["final"]]


def write_wav(path: Path, audio: np.ndarray[Any, Any], rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    return path


# -- hearth say ------------------------------------------------------------------------------


def test_say_prints_intent_and_confirmed_action(
    text_server_factory: Callable[..., ServerThread],
    mqtt_recorder: MqttRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = text_server_factory()
    rc = main(["say", "turn", "on", "the", "kitchen", "light", "--url", server.url])
    out, err = capsys.readouterr()
    events = json_lines(out)
    assert rc == EXIT_OK, err
    assert err == ""
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.created"
    assert kinds[-1] == "metrics" and events[-1]["outcome"] == "actions"
    intent = next(e for e in events if e["type"] == "intent")["intent"]
    assert (intent["name"], intent["slots"]["device_ids"]) == ("light_on", ["kitchen_light"])
    assert finals(events) == [("kitchen_light", "confirmed")]
    # Not just the server's word for it: the command is on the broker.
    assert json.loads(mqtt_recorder.wait_for(KITCHEN_SET))["state"] == "ON"


def test_say_chinese_output_is_readable_utf8(
    text_server_factory: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = text_server_factory()
    rc = main(["say", "把客厅灯打开", "--url", server.url, "--language", "zh-CN"])
    out, err = capsys.readouterr()
    assert rc == EXIT_OK, err
    assert "把客厅灯打开" in out  # ensure_ascii=False: not \u escapes
    assert finals(json_lines(out)) == [("living_room_light", "confirmed")]


def test_say_without_intent_fails(
    text_server_factory: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = text_server_factory()
    rc = main(["say", "what a lovely afternoon", "--url", server.url])
    out, err = capsys.readouterr()
    events = json_lines(out)
    assert rc == EXIT_FAILED
    assert events[-1]["type"] == "metrics" and events[-1]["outcome"] == "no_intent"
    assert "no_intent" in err and len(err.strip().splitlines()) == 1


def test_say_with_token(
    text_server_factory: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = text_server_factory(token="s3cret")
    rc = main(["say", "turn off the kitchen light", "--url", server.url, "--token", "wrong"])
    _, err = capsys.readouterr()
    assert rc == EXIT_UNAVAILABLE
    assert "HTTP 401" in err and "token" in err
    rc = main(["say", "turn off the kitchen light", "--url", server.url, "--token", "s3cret"])
    out, err = capsys.readouterr()
    assert rc == EXIT_OK, err
    assert finals(json_lines(out)) == [("kitchen_light", "confirmed")]


# -- the library -----------------------------------------------------------------------------


async def test_library_say_and_session_update(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    seen: list[Any] = []
    async with HearthClient(server.url) as client:
        assert client.session is not None and client.sample_rate == 16000
        await client.update_session(sample_rate=48000)
        utt = await client.say("turn on the coffee maker", on_event=seen.append)
        assert client.sample_rate == 48000
    assert utt.ok and utt.summary == "ok"
    assert utt.intent is not None and utt.intent.intent is not None
    assert utt.intent.intent.name == "switch_on"
    assert [(a.device_id, a.status) for a in utt.final_actions] == [("coffee_maker", "confirmed")]
    assert not any(isinstance(e, UnknownEvent) for e in seen)
    updated = [e for e in seen if isinstance(e, SessionUpdated)]
    assert updated and updated[0].config.sample_rate == 48000
    states = [e for e in seen if isinstance(e, DeviceState) and e.device_id == "coffee_maker"]
    assert states and states[-1].state["state"] == "on"


async def test_library_control_messages(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    server = text_server_factory()
    # A 1x1 PNG: the image is only kept as context for the next utterance.
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    (tmp_path / "room.png").write_bytes(png)
    seen: list[Any] = []
    async with HearthClient(server.url) as client:
        await client.send_image(tmp_path / "room.png")  # mime from the file name
        await client.send_image(png, "image/png")
        await client.clear()
        await client.commit()
        await client.cancel()
        # Any error event about these messages would arrive before the command's events;
        # say() raises HearthServerError on a session-level error.
        utt = await client.say("turn off the coffee maker", on_event=seen.append)
    assert utt.ok
    assert not [e for e in seen if isinstance(e, ErrorEvent)]


async def test_library_wrong_path_is_refused(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    with pytest.raises(HearthConnectionError, match="HTTP 404"):
        async with HearthClient(server.url + "/nowhere"):
            pass


# -- hearth stream (real speech models) ------------------------------------------------------


@pytest.mark.slow
def test_stream_realtime_prints_events_through_confirmed(
    hearth_server: ServerThread,
    mqtt_recorder: MqttRecorder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 22.05 kHz, piper's own rate: the client must declare it and the server resample.
    speech = with_silence(synth("turn on the kitchen light", rate=22050), 300, 0, rate=22050)
    wav = write_wav(tmp_path / "command.wav", speech, 22050)
    rc = main(["stream", str(wav), "--url", hearth_server.url, "--realtime"])
    out, err = capsys.readouterr()
    events = json_lines(out)
    assert rc == EXIT_OK, err
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert events[1]["config"]["sample_rate"] == 22050
    order = ["speech.started", "speech.stopped", "transcript.final", "intent", "metrics"]
    assert [k for k in kinds if k in order] == order
    assert "kitchen" in next(e for e in events if e["type"] == "transcript.final")["text"].lower()
    assert finals(events) == [("kitchen_light", "confirmed")]
    assert events[-1]["type"] in ("metrics", "device.state")
    assert json.loads(mqtt_recorder.wait_for(KITCHEN_SET, '"ON"'))["state"] == "ON"


@pytest.mark.slow
def test_stream_fast_with_two_commands(
    hearth_server: ServerThread,
    mqtt_recorder: MqttRecorder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rate = 16000
    first = with_silence(synth("turn off the office light", rate=rate), 300, 1200, rate=rate)
    second = with_silence(synth("turn on the office light", rate=rate), 0, 300, rate=rate)
    wav = write_wav(tmp_path / "two.wav", np.concatenate([first, second]), rate)
    rc = main(["stream", str(wav), "--url", hearth_server.url])  # as fast as allowed + commit
    out, err = capsys.readouterr()
    events = json_lines(out)
    assert rc == EXIT_OK, err
    intents = [e["intent"]["name"] for e in events if e["type"] == "intent"]
    assert intents == ["light_off", "light_on"]
    assert finals(events) == [("office_light", "confirmed"), ("office_light", "confirmed")]
    assert len([e for e in events if e["type"] == "metrics"]) == 2
    assert mqtt_recorder.wait_for("home/office_light/set", "ON") == "ON"


# -- hearth listen, with a stand-in for the sounddevice package ------------------------------


class FakeInputStream:
    """Stands in for ``sounddevice.RawInputStream``: while entered, a thread plays
    :attr:`pcm` (then silence) to the callback in real-time blocks, as PortAudio would."""

    pcm = b""
    opened: ClassVar[list[FakeInputStream]] = []

    def __init__(
        self,
        *,
        samplerate: int,
        channels: int,
        dtype: str,
        blocksize: int,
        device: Any,
        callback: Callable[[bytes, int, Any, Any], None],
    ) -> None:
        assert (channels, dtype) == (1, "int16")
        self.rate, self.blocksize, self.callback = samplerate, blocksize, callback
        self.closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)
        FakeInputStream.opened.append(self)

    def _play(self) -> None:
        step = self.blocksize * 2
        start = time.monotonic()
        for i in itertools.count():
            if self._stop.is_set():
                return
            block = self.pcm[i * step : (i + 1) * step]
            block += bytes(step - len(block))  # silence after the speech
            self.callback(block, self.blocksize, None, None)
            delay = start + (i + 1) * self.blocksize / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self) -> FakeInputStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.close()

    def close(self) -> None:
        self.closed = True


def fake_sounddevice(default_rate: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        RawInputStream=FakeInputStream,
        PortAudioError=type("PortAudioError", (Exception,), {}),
        query_devices=lambda device, kind: {"default_samplerate": float(default_rate)},
    )


@pytest.mark.slow
def test_listen_streams_the_microphone(
    hearth_server: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    speech = with_silence(synth("turn on the hallway light", rate=16000), 300, 0)
    monkeypatch.setattr(FakeInputStream, "pcm", speech.astype("<i2").tobytes())
    monkeypatch.setattr(FakeInputStream, "opened", [])
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(default_rate=48000))
    rc = main(["listen", "--url", hearth_server.url, "--seconds", "4"])
    out, err = capsys.readouterr()
    events = json_lines(out)
    assert rc == EXIT_OK, err
    assert "listening at 16000 Hz for 4 s" in err
    assert [s.rate for s in FakeInputStream.opened] == [16000]
    assert all(s.closed for s in FakeInputStream.opened)
    assert finals(events) == [("hallway_light", "confirmed")]


def test_listen_closes_the_microphone_when_the_server_is_away(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeInputStream, "opened", [])
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(default_rate=44100))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["listen", "--url", f"ws://127.0.0.1:{port}", "--seconds", "1"])
    assert rc == EXIT_UNAVAILABLE
    assert "connection refused" in capsys.readouterr().err
    assert FakeInputStream.opened and all(s.closed for s in FakeInputStream.opened)
