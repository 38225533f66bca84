"""Stage tests of the audio front end with the real silero-vad and synthesized speech."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.endpoint import (
    EndpointEvent,
    EndpointSettings,
    SpeechPaused,
    SpeechStarted,
    SpeechStopped,
)
from assistant.audio.errors import AudioFormatError
from assistant.audio.frontend import AudioFrontEnd
from assistant.audio.vad import FRAME_SAMPLES, SileroVad
from tests.speech import (
    chunks,
    mix_noise,
    speech_bounds,
    synth,
    to_float,
    white_noise,
    with_silence,
)

COMMAND = "turn on the kitchen light"


def stream(
    fe: AudioFrontEnd, pcm: np.ndarray, rate: int, chunk_ms: int = 20
) -> list[EndpointEvent]:
    events: list[EndpointEvent] = []
    for data, t in chunks(pcm, rate=rate, chunk_ms=chunk_ms):
        events.extend(fe.feed(data, t))
    return events


def only(events: list[EndpointEvent], kind: type) -> list[EndpointEvent]:
    return [e for e in events if isinstance(e, kind)]


def test_silence_and_noise_give_no_speech(silero_vad: SileroVad) -> None:
    fe = AudioFrontEnd(silero_vad)
    assert stream(fe, np.zeros(16000 * 2, np.int16), 16000) == []
    assert stream(fe, white_noise(16000 * 2, level=0.02), 16000) == []
    assert fe.frames_processed == (16000 * 4) // FRAME_SAMPLES


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_command_gives_one_utterance(silero_vad: SileroVad, rate: int) -> None:
    speech = synth(COMMAND, rate=rate)
    pcm = with_silence(speech, 1000, 1500, rate=rate)
    fe = AudioFrontEnd(silero_vad, EndpointSettings(), rate)
    events = stream(fe, pcm, rate)
    started, stopped = only(events, SpeechStarted), only(events, SpeechStopped)
    assert len(started) == 1 and len(stopped) == 1
    stop = stopped[0]
    assert isinstance(stop, SpeechStopped) and stop.reason == "silence"
    # the real end of the voiced audio, measured on the signal itself
    _, end_s = speech_bounds(pcm, rate=rate)
    assert end_s - 0.25 <= stop.speech_end_t <= end_s + 0.15
    # the endpoint decision comes silence_ms after the last voiced frame, plus up to a frame,
    # a chunk and the resampler's filter delay (~21 ms; ~26 ms at 8 kHz), plus the frames of
    # the fading syllable the VAD's hysteresis still counts as speech without calling them
    # voiced (up to ~100 ms, more at 8 kHz; it depends on the speech synthesizer's version)
    assert 0.5 <= stop.t - stop.speech_end_t <= 0.5 + 0.032 + 0.02 + 0.03 + 0.1
    # audio: 16 kHz float32, holds the whole command plus pre-roll
    start_s, _ = speech_bounds(pcm, rate=rate)
    assert stop.audio.dtype == np.float32
    assert stop.audio_start_ms / 1000 <= start_s
    assert stop.audio.size / 16000 >= (end_s - start_s) - 0.1
    assert stop.audio.size == (stop.audio_end_ms - stop.audio_start_ms) * 16


def test_pause_audio_matches_stopped_audio(silero_vad: SileroVad) -> None:
    pcm = with_silence(synth(COMMAND), 500, 1000)
    events = stream(AudioFrontEnd(silero_vad), pcm, 16000)
    paused = only(events, SpeechPaused)
    stop = only(events, SpeechStopped)[0]
    assert paused and isinstance(stop, SpeechStopped)
    last = paused[-1]
    assert isinstance(last, SpeechPaused)
    np.testing.assert_array_equal(last.audio, stop.audio)


def test_commit_mid_speech(silero_vad: SileroVad) -> None:
    speech = synth(COMMAND, rate=48000)
    pcm = with_silence(speech, 300, 0, rate=48000)[: int(48000 * 1.2)]
    fe = AudioFrontEnd(silero_vad, EndpointSettings(), 48000)
    events = stream(fe, pcm, 48000)
    assert len(only(events, SpeechStarted)) == 1
    committed = fe.commit(now=5.0)
    assert isinstance(committed[-1], SpeechStopped)
    assert committed[-1].reason == "commit" and committed[-1].t == 5.0
    assert fe.commit(now=6.0) == []


def test_clear_drops_speech(silero_vad: SileroVad) -> None:
    pcm = with_silence(synth(COMMAND), 300, 0)
    fe = AudioFrontEnd(silero_vad)
    events = stream(fe, pcm[:16000], 16000)
    assert only(events, SpeechStarted)
    fe.clear()
    assert not fe.in_speech
    assert stream(fe, np.zeros(16000, np.int16), 16000) == []


def test_odd_length_pcm_is_rejected(silero_vad: SileroVad) -> None:
    fe = AudioFrontEnd(silero_vad, in_rate=44100)
    with pytest.raises(ValueError, match="even number of bytes"):
        fe.feed(b"\x00" * 883, 0.0)
    with pytest.raises(AudioFormatError):
        fe.feed(b"\x01", 0.0)
    assert fe.feed(b"\x00" * 882, 0.0) == []  # still usable


def test_set_rate(silero_vad: SileroVad) -> None:
    fe = AudioFrontEnd(silero_vad)
    fe.set_rate(48000)
    assert fe.rate == 48000
    with pytest.raises(ValueError, match="unsupported sample rate"):
        fe.set_rate(12345)
    assert fe.rate == 48000


def test_vad_stream_rejects_wrong_frame(silero_vad: SileroVad) -> None:
    with pytest.raises(AudioFormatError, match="512"):
        silero_vad.new_stream().process(np.zeros(480, np.float32))


def test_streams_share_model_safely(silero_vad: SileroVad) -> None:
    """Per-stream state: interleaved, batched and threaded use give the same probabilities."""
    audio = to_float(with_silence(synth(COMMAND), 200, 200))
    frames = [audio[i : i + 512] for i in range(0, audio.size - 511, 512)]
    ref_stream = silero_vad.new_stream()
    ref = [ref_stream.process(f) for f in frames]
    assert max(ref) > 0.9 and min(ref) < 0.1

    a, b = silero_vad.new_stream(), silero_vad.new_stream()
    batched = [silero_vad.process_many([a, b], [f, f]) for f in frames]
    np.testing.assert_allclose([p[0] for p in batched], ref, atol=1e-5)
    np.testing.assert_allclose([p[1] for p in batched], ref, atol=1e-5)

    results: dict[int, list[float]] = {}

    def worker(k: int) -> None:
        s = silero_vad.new_stream()
        results[k] = [s.process(f) for f in frames]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_allclose(results[k], ref, atol=1e-5)


def test_command_in_noise_gives_one_utterance(silero_vad: SileroVad) -> None:
    speech = with_silence(synth("open the garage door"), 800, 1200)
    noisy = mix_noise(speech, white_noise(16000, seed=7), snr_db=15.0)
    events = stream(AudioFrontEnd(silero_vad), noisy, 16000)
    assert len(only(events, SpeechStarted)) == 1
    assert len(only(events, SpeechStopped)) == 1


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_frames_stamped_with_arrival_of_their_audio(silero_vad: SileroVad, rate: int) -> None:
    """A frame's time is the receive time of the chunk holding its last input sample, not the
    later chunk that pushed it out of the resampler's delay line."""
    fe = AudioFrontEnd(silero_vad, in_rate=rate)
    stamps: list[tuple[float, float]] = []
    original = fe.endpointer.process

    def record(
        frame: np.ndarray, prob: float, t: float, now: float | None = None
    ) -> list[EndpointEvent]:
        stamps.append((t, now if now is not None else t))
        return original(frame, prob, t, now)

    fe.endpointer.process = record  # type: ignore[method-assign]
    step = rate // 100  # 10 ms chunks, chunk i arrives at t = (i + 1) / 100
    pcm = white_noise(rate * 2, level=0.01)
    for i in range(0, pcm.size, step):
        fe.feed(pcm[i : i + step].tobytes(), (i + step) / rate)
    # all frames but those still in the resampler's delay line (< 70 ms)
    assert 2 * 16000 // FRAME_SAMPLES - 3 <= len(stamps) <= 2 * 16000 // FRAME_SAMPLES
    for k, (t, now) in enumerate(stamps):
        frame_end_s = (k + 1) * FRAME_SAMPLES / 16000
        assert t <= now
        # the chunk holding the frame's last sample arrived within 10 ms after it
        assert frame_end_s - 1e-9 <= t <= frame_end_s + 0.01 + 1e-9


# -- the VAD in a stream that never stops (real recordings, real kitchen noise) -------------


def _picovoice_dir() -> Path:
    from assistant.bench.accuracy_sets import default_data_dir

    return default_data_dir()


@pytest.mark.skipif(not (_picovoice_dir() / "labels.json").is_file(),
                    reason="../shared picovoice data absent")
def test_a_command_after_seconds_of_kitchen_noise_is_heard_from_its_start() -> None:
    """Two orders streamed back to back in 6 dB kitchen noise, as a satellite streams: with
    the VAD's recurrent state carried through the noise, the second order's first 1.5 s were
    scored 0.00-0.03 and cut off ("Make me a sixteen ounce, dark roast, …" heard as "Dark
    roast, …"). Its start must be found where a fresh stream finds it."""
    from assistant.audio.endpoint import SpeechStarted
    from assistant.bench.accuracy import _snake
    from assistant.bench.accuracy_sets import kitchen_noise, picovoice_items
    from assistant.bench.noise import stable_seed
    from assistant.bench.serve_clips import clip_pcm

    data = _picovoice_dir()
    items = {it.id[:8]: it for it in picovoice_items(data, _snake())}
    noise = kitchen_noise(data)

    def pcm(key: str) -> np.ndarray:
        it = items[key]
        raw = clip_pcm(it.load(), noise, "6", stable_seed("picovoice", it.id, "6", 20261123))
        return np.frombuffer(raw, "<i2")

    def starts(audio: np.ndarray) -> list[int]:
        front = AudioFrontEnd(SileroVad())
        return [e.audio_start_ms for i in range(0, len(audio), 320)
                for e in front.feed(audio[i : i + 320], now=i / 16000)
                if isinstance(e, SpeechStarted)]

    first, second = pcm("a1f7dc7a"), pcm("a9e57ad9")
    alone = starts(second)[0]
    offset = len(first) // 16
    after = [s - offset for s in starts(np.concatenate((first, second))) if s >= offset - 400]
    assert after and abs(after[0] - alone) <= 200, (alone, after)
