"""Streaming conversion of client PCM (s16le mono, any supported rate) to 16 kHz float32.

Sans-I/O: feed chunks as they arrive, get the 16 kHz samples that are ready. soxr keeps the
filter state between chunks, so chunk boundaries leave no clicks and the total output length
matches a one-shot resample of the concatenated input (after :meth:`Resampler.flush`).
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

from assistant.audio.errors import AudioFormatError, UnsupportedRateError

logger = logging.getLogger(__name__)

#: Sample rate of everything downstream (silero-vad and Whisper both want 16 kHz).
TARGET_RATE: Final = 16000
#: Input rates a client may declare (telephony, wideband, piper, CD, browsers).
SUPPORTED_RATES: Final[frozenset[int]] = frozenset({8000, 16000, 22050, 44100, 48000})
#: soxr quality. Its filter delay is latency: the last voiced audio leaves the resampler that
#: much later. Measured steady-state delay (16 kHz samples): HQ 341-346 (~21 ms) from
#: 22.05/44.1/48 kHz but 1060 (~66 ms) from 8 kHz, where MQ gives 412 (~26 ms). Speech
#: recognition gains nothing from "VHQ", and "QQ" has no anti-alias filter.
DEFAULT_QUALITY: Final = "HQ"
_QUALITY_BY_RATE: Final = {8000: "MQ"}

_INT16_SCALE: Final = 1.0 / 32768.0

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]


def pcm16_to_float32(pcm: bytes | bytearray | memoryview | Int16Array) -> Float32Array:
    """Decode PCM s16le bytes (or an int16 array) to float32 in [-1, 1).

    Raises :class:`AudioFormatError` on an odd byte count or a non-int16 array.
    """
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise AudioFormatError(f"PCM arrays must be int16, got {pcm.dtype}")
        samples = pcm.reshape(-1)
    else:
        if len(pcm) % 2:
            raise AudioFormatError(
                f"PCM s16le audio must have an even number of bytes, got {len(pcm)}"
            )
        samples = np.frombuffer(pcm, dtype="<i2")
    return samples.astype(np.float32) * np.float32(_INT16_SCALE)


def check_rate(rate: int) -> int:
    """Return ``rate`` if it is supported, else raise :class:`UnsupportedRateError`."""
    if rate not in SUPPORTED_RATES:
        allowed = ", ".join(str(r) for r in sorted(SUPPORTED_RATES))
        raise UnsupportedRateError(f"unsupported sample rate {rate} Hz (allowed: {allowed})")
    return rate


class Resampler:
    """Streaming resampler from ``in_rate`` PCM16 to ``out_rate`` float32 (mono).

    Not thread-safe: one instance per audio stream.
    """

    def __init__(
        self, in_rate: int, out_rate: int = TARGET_RATE, *, quality: str | None = None
    ) -> None:
        self.in_rate: Final = check_rate(in_rate)
        self.out_rate: Final = out_rate
        self._quality = quality or _QUALITY_BY_RATE.get(in_rate, DEFAULT_QUALITY)
        quality = self._quality
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=quality
            )

    def process(self, pcm: bytes | bytearray | memoryview | Int16Array) -> Float32Array:
        """Resample one chunk; returns the output samples available so far (may be empty)."""
        x = pcm16_to_float32(pcm)
        if self._stream is None:
            return x
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        out: Float32Array = self._stream.resample_chunk(x, last=False)
        return out

    def flush(self) -> Float32Array:
        """Drain the filter's delay line (end of stream); the resampler is reset afterwards."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out: Float32Array = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self.reset()
        return out

    def reset(self) -> None:
        """Forget buffered input (``audio.clear``)."""
        if self._stream is not None:
            self._stream = soxr.ResampleStream(
                self.in_rate, self.out_rate, 1, dtype="float32", quality=self._quality
            )

    @property
    def delay_s(self) -> float:
        """Filter delay in seconds (output lags input by this much until flushed)."""
        if self._stream is None:
            return 0.0
        return float(self._stream.delay()) / self.out_rate
