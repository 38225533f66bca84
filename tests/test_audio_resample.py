"""Resampler: supported rates, lengths, streaming equivalence, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.audio.errors import AudioFormatError, UnsupportedRateError
from assistant.audio.resample import SUPPORTED_RATES, Resampler, pcm16_to_float32


def tone(rate: int, seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 0.5 * 32767).astype(np.int16)


@pytest.mark.parametrize("rate", sorted(SUPPORTED_RATES))
def test_streamed_output_has_16k_length_and_pitch(rate: int) -> None:
    pcm = tone(rate)
    r = Resampler(rate)
    step = rate // 50  # 20 ms chunks, like a browser worklet
    parts = [r.process(pcm[i : i + step].tobytes()) for i in range(0, pcm.size, step)]
    parts.append(r.flush())
    out = np.concatenate(parts)
    assert out.dtype == np.float32
    assert abs(out.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(out[:16000]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins over one second


def test_16k_is_passthrough() -> None:
    pcm = tone(16000, 0.1)
    out = Resampler(16000).process(pcm.tobytes())
    np.testing.assert_allclose(out, pcm.astype(np.float32) / 32768.0)


def test_int16_array_equals_bytes() -> None:
    pcm = tone(48000, 0.2)
    a = Resampler(48000).process(pcm)
    b = Resampler(48000).process(pcm.tobytes())
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [0, 11025, 32000, 96000])
def test_unsupported_rate(rate: int) -> None:
    with pytest.raises(UnsupportedRateError, match="unsupported sample rate"):
        Resampler(rate)
    assert issubclass(UnsupportedRateError, ValueError)


def test_odd_length_rejected() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        Resampler(44100).process(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        pcm16_to_float32(b"\x00")


def test_wrong_dtype_rejected() -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        pcm16_to_float32(np.zeros(4, dtype=np.float32))


def test_reset_forgets_buffered_input() -> None:
    r = Resampler(44100)
    r.process(tone(44100, 0.5).tobytes())
    r.reset()
    out = np.concatenate([r.process(np.zeros(44100, np.int16).tobytes()), r.flush()])
    assert float(np.max(np.abs(out))) < 1e-4
