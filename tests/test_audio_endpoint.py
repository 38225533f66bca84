"""Unit tests of the sans-I/O Endpointer with scripted speech probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from assistant.audio.endpoint import (
    Endpointer,
    EndpointEvent,
    EndpointSettings,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
)

FRAME = 512
FRAME_S = FRAME / 16000


def frame(i: int) -> np.ndarray:
    """A frame whose samples all equal its index, so audio slices can be traced back."""
    return np.full(FRAME, float(i), dtype=np.float32)


def run(ep: Endpointer, probs: list[float], start: int = 0) -> list[tuple[int, EndpointEvent]]:
    """Feed frames ``start..`` with the given probabilities; frame i is received at i*32 ms."""
    out: list[tuple[int, EndpointEvent]] = []
    for k, p in enumerate(probs):
        i = start + k
        out.extend((i, e) for e in ep.process(frame(i), p, i * FRAME_S))
    return out


def kinds(events: list[tuple[int, EndpointEvent]]) -> list[str]:
    return [type(e).__name__ for _, e in events]


def frames_of(audio: np.ndarray) -> list[int]:
    return [int(v) for v in audio[::FRAME]]


def test_silence_emits_nothing() -> None:
    ep = Endpointer()
    assert run(ep, [0.01] * 200) == []
    assert not ep.in_speech


def test_one_utterance_start_pause_stop() -> None:
    s = EndpointSettings(silence_ms=320, pre_roll_ms=96, post_roll_ms=64, pause_ms=64)
    ep = Endpointer(s)
    # frames 0..9 silence, 10..29 speech, then silence
    events = run(ep, [0.0] * 10 + [0.9] * 20 + [0.0] * 20)
    assert kinds(events) == ["SpeechStarted", "SpeechPaused", "SpeechStopped"]
    (i_start, started), (i_pause, paused), (i_stop, stopped) = events
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert isinstance(paused, SpeechPaused)
    # min_speech_ms=128 → 4 voiced frames confirm the start
    assert i_start == 13 and started.audio_start_ms == 320
    assert stopped.reason == "silence"
    assert stopped.speech_end_t == pytest.approx(29 * FRAME_S)
    assert i_pause == 31  # 64 ms after the last voiced frame
    assert i_stop == 39  # 320 ms of silence = 10 frames after frame 29
    # pre-roll (3 frames) + speech (20) + post-roll (2)
    assert frames_of(stopped.audio) == list(range(7, 32))
    np.testing.assert_array_equal(paused.audio, stopped.audio)
    assert paused.audio_end_ms == stopped.audio_end_ms
    assert not ep.in_speech


def test_short_blip_is_not_speech() -> None:
    ep = Endpointer(EndpointSettings(min_speech_ms=128))
    assert run(ep, [0.0] * 5 + [0.9] * 2 + [0.0] * 30) == []


def test_preroll_limited_by_available_audio() -> None:
    ep = Endpointer(EndpointSettings(pre_roll_ms=320, silence_ms=160))
    events = run(ep, [0.0] * 2 + [0.9] * 6 + [0.0] * 10)
    stopped = events[-1][1]
    assert isinstance(stopped, SpeechStopped)
    assert frames_of(stopped.audio)[0] == 0
    assert stopped.audio_start_ms == 0


def test_ambiguous_frames_keep_utterance_but_not_speech_end() -> None:
    s = EndpointSettings(silence_ms=160, pause_ms=64, post_roll_ms=64)
    ep = Endpointer(s)
    events = run(ep, [0.9] * 6 + [0.4] * 10 + [0.0] * 10)
    stopped = [e for _, e in events if isinstance(e, SpeechStopped)]
    assert len(stopped) == 1
    assert stopped[0].speech_end_t == pytest.approx(5 * FRAME_S)
    # the ambiguous frames are inside the utterance
    assert frames_of(stopped[0].audio)[-1] == 17


def test_resume_after_pause_and_single_stop() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=320))
    events = run(ep, [0.9] * 10 + [0.0] * 4 + [0.9] * 10 + [0.0] * 12)
    assert kinds(events) == [
        "SpeechStarted",
        "SpeechPaused",
        "SpeechResumed",
        "SpeechPaused",
        "SpeechStopped",
    ]
    stopped = events[-1][1]
    assert isinstance(stopped, SpeechStopped)
    assert stopped.speech_end_t == pytest.approx(23 * FRAME_S)


def test_max_length_cut() -> None:
    ep = Endpointer(EndpointSettings(max_utterance_ms=1000))
    events = run(ep, [0.9] * 80)
    stops = [e for _, e in events if isinstance(e, SpeechStopped)]
    assert stops and stops[0].reason == "max_length"
    assert stops[0].audio.size >= 16000
    assert stops[0].audio.size < 16000 + 2 * FRAME
    # speech continues: a new utterance starts after the cut
    assert kinds(events).count("SpeechStarted") >= 2


def test_commit_closes_now() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=5000))
    run(ep, [0.9] * 10 + [0.0] * 3)
    events = ep.commit(now=99.0)
    assert len(events) == 1 and isinstance(events[0], SpeechStopped)
    assert events[0].reason == "commit" and events[0].t == 99.0
    assert frames_of(events[0].audio)[-1] == 12  # nothing trimmed on commit
    assert ep.commit(now=100.0) == []


def test_commit_confirms_pending_speech() -> None:
    ep = Endpointer(EndpointSettings(min_speech_ms=500))
    run(ep, [0.0] * 3 + [0.9] * 3)
    events = ep.commit(now=1.0)
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechStopped"]


def test_commit_without_speech_is_empty() -> None:
    ep = Endpointer()
    run(ep, [0.0] * 20)
    assert ep.commit(now=1.0) == []


def test_clear_drops_utterance() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=160))
    run(ep, [0.9] * 10)
    assert ep.in_speech
    ep.clear()
    assert not ep.in_speech
    assert run(ep, [0.0] * 20, start=10) == []


def test_complete_command_ends_turn_early() -> None:
    s = EndpointSettings(silence_ms=640, silence_ms_when_complete=96)
    ep = Endpointer(s)
    run(ep, [0.9] * 10)
    assert ep.set_complete(True) == []
    events = run(ep, [0.0] * 5, start=10)
    stops = [(i, e) for i, e in events if isinstance(e, SpeechStopped)]
    assert len(stops) == 1
    i, stop = stops[0]
    assert isinstance(stop, SpeechStopped)
    assert stop.reason == "complete" and i == 12  # 3 silent frames = 96 ms


def test_set_complete_after_enough_silence_stops_immediately() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=640, silence_ms_when_complete=96))
    run(ep, [0.9] * 10 + [0.0] * 5)
    assert ep.in_speech
    events = ep.set_complete(True, now=7.5)
    assert len(events) == 1 and isinstance(events[0], SpeechStopped)
    assert events[0].t == 7.5 and events[0].reason == "complete"


def test_resumed_speech_clears_complete_flag() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=640, silence_ms_when_complete=128))
    run(ep, [0.9] * 10 + [0.0] * 2)
    ep.set_complete(True)
    events = run(ep, [0.9] * 3 + [0.0] * 6, start=12)
    assert "SpeechResumed" in kinds(events)
    assert not any(isinstance(e, SpeechStopped) for _, e in events)
    assert not ep.complete


def test_manual_turn_detection_waits_for_commit() -> None:
    ep = Endpointer(EndpointSettings(turn_detection="manual", silence_ms=160))
    events = run(ep, [0.9] * 10 + [0.0] * 50)
    assert "SpeechStopped" not in kinds(events)
    stop = ep.commit(now=3.0)
    assert isinstance(stop[-1], SpeechStopped) and stop[-1].reason == "commit"


def test_events_pair_over_many_utterances() -> None:
    ep = Endpointer(EndpointSettings(silence_ms=160))
    rng = np.random.default_rng(1)
    probs = [float(p) for p in rng.choice([0.0, 0.95], size=2000, p=[0.7, 0.3])]
    depth = 0
    for _, e in run(ep, probs):
        if isinstance(e, SpeechStarted):
            assert depth == 0
            depth = 1
        elif isinstance(e, SpeechStopped):
            assert depth == 1
            depth = 0
        else:
            assert depth == 1 and isinstance(e, SpeechPaused | SpeechResumed)


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 0.3, "neg_threshold": 0.4},
        {"silence_ms": 100, "silence_ms_when_complete": 200},
        {"threshold": 1.5},
        {"unknown": 1},
    ],
)
def test_settings_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EndpointSettings.model_validate(bad)


def test_bad_probability_raises() -> None:
    ep = Endpointer()
    with pytest.raises(ValueError):
        ep.process(frame(0), float("nan"), 0.0)
    with pytest.raises(ValueError):
        ep.process(frame(0), 1.5, 0.0)
