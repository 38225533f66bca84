"""The client library's sans-I/O parts and the CLI's failure paths (no server needed)."""

from __future__ import annotations

import asyncio
import json
import socket
import wave
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from assistant.cli import main
from assistant.client import (
    DEFAULT_TRAILING_SILENCE_MS,
    TRAILING_SILENCE_MARGIN_MS,
    HearthClient,
    HearthConnectionError,
    PcmAudio,
    UnknownEvent,
    UtteranceTracker,
    decode_event,
    read_wav,
)
from assistant.client_cli import EXIT_TIMEOUT, EXIT_UNAVAILABLE
from assistant.protocol import (
    ActionEvent,
    ErrorCode,
    ErrorEvent,
    IntentEvent,
    Limits,
    MetricsEvent,
    SessionConfig,
    SessionCreated,
    StageTimings,
    TranscriptFinal,
    TurnDetection,
)
from intents.schema import Intent, Slots


def _write_wav(path: Path, rate: int, channels: int, frames: bytes, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def _closed_port() -> int:
    """A localhost port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _utterance_events(uid: str, *statuses: str, outcome: str = "actions") -> list[object]:
    intent = Intent(
        name="light_on",
        slots=Slots(device_ids=["kitchen_light"]),
        confidence=1.0,
        source="grammar",
        reason="template",
    )
    events: list[object] = [
        TranscriptFinal(utterance_id=uid, text="turn on the kitchen light", source="text"),
        IntentEvent(utterance_id=uid, intent=intent, reason="template"),
    ]
    for status in statuses:
        events.append(
            ActionEvent(
                utterance_id=uid,
                intent="light_on",
                status=status,  # type: ignore[arg-type]
                final=status != "published",
                device_id="kitchen_light",
            )
        )
    events.append(
        MetricsEvent(utterance_id=uid, outcome=outcome, timings_ms=StageTimings())  # type: ignore[arg-type]
    )
    return events


# -- events and tracking ---------------------------------------------------------------------


def test_decode_event_typed_and_unknown() -> None:
    event = decode_event('{"type":"speech.started","utterance_id":"u1","audio_ms":40}')
    assert event.type == "speech.started"
    assert not isinstance(event, UnknownEvent)

    future = decode_event('{"type":"speech.maybe","utterance_id":"u1"}')
    assert isinstance(future, UnknownEvent)
    assert future.type == "speech.maybe"
    assert future.to_dict() == {"type": "speech.maybe", "utterance_id": "u1"}

    garbage = decode_event("not json")
    assert isinstance(garbage, UnknownEvent) and garbage.type == "?"


def test_tracker_utterance_finishes_on_metrics() -> None:
    tracker = UtteranceTracker()
    events = _utterance_events("u1", "published", "confirmed")
    for event in events[:-1]:
        tracker.feed(event)  # type: ignore[arg-type]
    (utt,) = tracker.utterances.values()
    assert not utt.done and not tracker.all_done and tracker.pending == [utt]
    tracker.feed(events[-1])  # type: ignore[arg-type]
    assert utt.done and tracker.all_done
    assert utt.ok and utt.summary == "ok"
    assert [a.status for a in utt.final_actions] == ["confirmed"]
    assert utt.transcript is not None and utt.transcript.text == "turn on the kitchen light"


@pytest.mark.parametrize(
    ("statuses", "outcome", "summary"),
    [
        (("published", "unconfirmed"), "actions", "kitchen_light: unconfirmed"),
        (("rejected",), "actions", "kitchen_light: rejected"),
        ((), "no_intent", "no_intent"),
    ],
)
def test_tracker_failed_utterances(statuses: tuple[str, ...], outcome: str, summary: str) -> None:
    tracker = UtteranceTracker()
    for event in _utterance_events("u1", *statuses, outcome=outcome):
        tracker.feed(event)  # type: ignore[arg-type]
    utt = tracker.utterances["u1"]
    assert utt.done and not utt.ok
    assert utt.summary.startswith(summary)


def test_tracker_errors_by_scope() -> None:
    tracker = UtteranceTracker()
    tracker.feed(ErrorEvent(code=ErrorCode.BAD_JSON, message="text frames must be one JSON"))
    tracker.feed(ErrorEvent(code=ErrorCode.ASR_FAILED, message="asr failed", utterance_id="u2"))
    tracker.feed(MetricsEvent(utterance_id="u2", outcome="error", timings_ms=StageTimings()))
    assert [e.code for e in tracker.session_errors] == [ErrorCode.BAD_JSON]
    utt = tracker.utterances["u2"]
    assert utt.done and not utt.ok and utt.summary == "error asr_failed: asr failed"


def test_tracker_keeps_session_created() -> None:
    tracker = UtteranceTracker()
    created = _session_created(silence_ms=None)
    tracker.feed(created)
    assert tracker.session is created and not tracker.utterances


# -- audio files -------------------------------------------------------------------------------


def test_read_wav_mono(tmp_path: Path) -> None:
    pcm = b"".join(i.to_bytes(2, "little", signed=True) for i in range(-800, 800))
    audio = read_wav(_write_wav(tmp_path / "a.wav", 16000, 1, pcm))
    assert audio == PcmAudio(pcm, 16000)
    assert audio.duration_s == pytest.approx(0.1)
    chunks = list(audio.chunks(20))
    assert [len(c) for c in chunks] == [640] * 5
    assert b"".join(chunks) == pcm


def test_read_wav_stereo_is_mixed_down(tmp_path: Path) -> None:
    def s16(v: int) -> bytes:
        return v.to_bytes(2, "little", signed=True)

    frames = s16(1000) + s16(-1000) + s16(300) + s16(100) + s16(-32768) + s16(-32768)
    audio = read_wav(_write_wav(tmp_path / "s.wav", 22050, 2, frames))
    assert audio.sample_rate == 22050
    assert audio.pcm == s16(0) + s16(200) + s16(-32768)


@pytest.mark.parametrize(
    ("rate", "width", "message"),
    [(11025, 2, "11025 Hz is not accepted"), (16000, 1, "need 16-bit PCM")],
)
def test_read_wav_rejects(tmp_path: Path, rate: int, width: int, message: str) -> None:
    path = _write_wav(tmp_path / "bad.wav", rate, 1, bytes(100), width=width)
    with pytest.raises(ValueError, match=message):
        read_wav(path)


def _session_created(silence_ms: int | None) -> SessionCreated:
    return SessionCreated(
        session_id="s1",
        config=SessionConfig(turn_detection=TurnDetection(silence_ms=silence_ms)),
        limits=Limits(
            max_audio_frame_bytes=96000,
            max_message_bytes=1 << 20,
            max_utterance_ms=15000,
            max_messages_per_s=100.0,
        ),
    )


def test_trailing_silence_follows_server_setting() -> None:
    client = HearthClient()
    assert client.trailing_silence_ms() == DEFAULT_TRAILING_SILENCE_MS
    client.session = _session_created(silence_ms=500)
    assert client.trailing_silence_ms() == 500 + TRAILING_SILENCE_MARGIN_MS


# -- failure paths -----------------------------------------------------------------------------


async def test_library_connection_refused() -> None:
    url = f"ws://127.0.0.1:{_closed_port()}"
    with pytest.raises(HearthConnectionError, match="connection refused"):
        async with HearthClient(url):
            pass


@pytest.mark.parametrize("command", ["say", "stream"])
def test_cli_connection_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}"
    wav = _write_wav(tmp_path / "a.wav", 16000, 1, bytes(3200))
    arg = "turn on the kitchen light" if command == "say" else str(wav)
    rc = main([command, arg, "--url", url])
    out, err = capsys.readouterr()
    assert rc == EXIT_UNAVAILABLE == 2
    assert out == ""
    assert err.strip() == f"hearth: cannot connect to {url}: connection refused " + (
        "(is 'hearth serve' running?)"
    )
    assert len(err.strip().splitlines()) == 1


def test_cli_stream_unreadable_wav(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not.wav"
    bad.write_text("hello")
    rc = main(["stream", str(bad), "--url", f"ws://127.0.0.1:{_closed_port()}"])
    assert rc == EXIT_UNAVAILABLE
    assert "cannot read" in capsys.readouterr().err


def test_cli_listen_without_sounddevice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    rc = main(["listen", "--url", f"ws://127.0.0.1:{_closed_port()}"])
    assert rc == EXIT_UNAVAILABLE
    assert "sounddevice" in capsys.readouterr().err


def test_event_json_lines_are_utf8() -> None:
    event = decode_event(
        json.dumps(
            {
                "type": "transcript.final",
                "utterance_id": "u",
                "text": "把客厅灯打开",
                "source": "text",
            },
            ensure_ascii=False,
        )
    )
    line = json.dumps(event.to_dict(), ensure_ascii=False)
    assert "把客厅灯打开" in line


async def _silent_server(ws: ServerConnection) -> None:
    """Says hello, then never answers (a stuck server)."""
    await ws.send(_session_created(silence_ms=500).to_json())
    async for _ in ws:
        pass


@pytest.mark.parametrize("command", ["say", "stream"])
async def test_cli_timeout(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = _write_wav(tmp_path / "a.wav", 16000, 1, bytes(3200))
    async with serve(_silent_server, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        arg = "turn on the kitchen light" if command == "say" else str(wav)
        argv = [command, arg, "--url", f"ws://127.0.0.1:{port}", "--timeout", "1"]
        # The CLI runs its own event loop: run it in a thread while this loop serves.
        rc = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert rc == EXIT_TIMEOUT == 3
    assert json.loads(out.splitlines()[0])["type"] == "session.created"
    assert "timed out after 1 s" in err
