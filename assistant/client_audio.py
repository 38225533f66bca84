"""Audio for :mod:`assistant.client`: 16-bit PCM read from WAV files, and silence.
Re-exported by :mod:`assistant.client`."""

from __future__ import annotations

import array
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.protocol import (
    SAMPLE_WIDTH,
    SUPPORTED_SAMPLE_RATES,
)

# -- audio files ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PcmAudio:
    """Mono PCM s16le audio and its rate."""

    pcm: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_WIDTH / self.sample_rate

    def chunks(self, chunk_ms: int) -> Iterator[bytes]:
        step = max(1, self.sample_rate * chunk_ms // 1000) * SAMPLE_WIDTH
        for i in range(0, len(self.pcm), step):
            yield self.pcm[i : i + step]


def read_wav(path: str | Path) -> PcmAudio:
    """Read a 16-bit PCM WAV (mono, or stereo mixed down to mono) at a rate the protocol
    accepts. Raises ``ValueError`` naming the file for anything else."""
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        if w.getcomptype() != "NONE" or width != SAMPLE_WIDTH:
            raise ValueError(f"{path}: need 16-bit PCM WAV, got {8 * width}-bit {w.getcomptype()}")
        if rate not in SUPPORTED_SAMPLE_RATES:
            rates = ", ".join(map(str, SUPPORTED_SAMPLE_RATES))
            raise ValueError(
                f"{path}: sample rate {rate} Hz is not accepted by the server ({rates}); "
                f"convert it, e.g. sox {path} -r 16000 out.wav"
            )
        if channels not in (1, 2):
            raise ValueError(f"{path}: need mono or stereo audio, got {channels} channels")
        frames = w.readframes(w.getnframes())
    if channels == 2:
        samples = array.array("h")
        samples.frombytes(frames)
        if sys.byteorder == "big":  # WAV is little-endian on disk
            samples.byteswap()
        mono = array.array(
            "h", ((a + b) // 2 for a, b in zip(samples[::2], samples[1::2], strict=True))
        )
        if sys.byteorder == "big":
            mono.byteswap()
        frames = mono.tobytes()
    return PcmAudio(frames, rate)


def silence(sample_rate: int, ms: int) -> bytes:
    return bytes(sample_rate * ms // 1000 * SAMPLE_WIDTH)
