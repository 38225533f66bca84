"""Test speech: synthesized commands (piper joe voice, espeak-ng voices), cached on disk.

The cache lives in ``$HEARTH_TEST_CACHE/speech`` (default ``~/.cache/hearth-tests/speech``),
so only the first run pays for synthesis. Nothing here is committed audio.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from assistant.audio.synth import ESPEAK, PIPER, Synthesizer

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]

__all__ = [
    "ESPEAK",
    "PIPER",
    "cache_dir",
    "chunks",
    "mix_noise",
    "normalize_text",
    "speech_bounds",
    "synth",
    "to_float",
    "white_noise",
    "with_silence",
]


def cache_dir() -> Path:
    """Root of the on-disk test cache."""
    env = os.environ.get("HEARTH_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hearth-tests"


@cache
def _synthesizer() -> Synthesizer:
    return Synthesizer(cache_dir() / "speech")


def synth(text: str, *, voice: str = PIPER, rate: int = 16000) -> Int16Array:
    """Speak ``text``; int16 mono at ``rate``. ``voice``: "piper" or "espeak[:VOICE]"."""
    return _synthesizer().synth(text, voice=voice, rate=rate)


def with_silence(
    audio: Int16Array, lead_ms: int, trail_ms: int, *, rate: int = 16000
) -> Int16Array:
    """``audio`` with digital silence before and after."""
    lead = np.zeros(lead_ms * rate // 1000, dtype=np.int16)
    trail = np.zeros(trail_ms * rate // 1000, dtype=np.int16)
    return np.concatenate((lead, audio.astype(np.int16), trail))


def white_noise(n: int, *, seed: int = 0, level: float = 0.05) -> Int16Array:
    """Gaussian noise with RMS ``level`` of full scale."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * level * 32767.0
    return np.clip(x, -32768, 32767).astype(np.int16)


def mix_noise(audio: Int16Array, noise: Int16Array, snr_db: float) -> Int16Array:
    """Add ``noise`` (tiled or cut to length) at ``snr_db`` relative to the speech power.

    Speech power is measured over samples louder than -40 dBFS, so leading and trailing
    silence do not lower it.
    """
    a = audio.astype(np.float64)
    active = a[np.abs(a) > 32768 * 0.01]
    p_speech = float(np.mean(active**2)) if active.size else float(np.mean(a**2))
    reps = int(np.ceil(audio.size / max(1, noise.size)))
    n = np.tile(noise.astype(np.float64), reps)[: audio.size]
    p_noise = float(np.mean(n**2)) or 1.0
    gain = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    mixed: Int16Array = np.clip(a + gain * n, -32768, 32767).astype(np.int16)
    return mixed


def to_float(audio: Int16Array) -> Float32Array:
    """int16 → float32 in [-1, 1)."""
    return audio.astype(np.float32) / np.float32(32768.0)


def speech_bounds(
    audio: Int16Array, *, rate: int = 16000, floor_dbfs: float = -40.0
) -> tuple[float, float]:
    """(start_s, end_s) of the part of ``audio`` above ``floor_dbfs`` in 10 ms windows."""
    win = rate // 100
    n = audio.size // win
    x = audio[: n * win].astype(np.float64).reshape(n, win) / 32768.0
    rms = np.sqrt(np.mean(x**2, axis=1))
    loud = np.nonzero(rms > 10 ** (floor_dbfs / 20))[0]
    if loud.size == 0:
        return 0.0, 0.0
    return float(loud[0] * win / rate), float((loud[-1] + 1) * win / rate)


def chunks(pcm: Int16Array, *, rate: int, chunk_ms: int = 20) -> Iterator[tuple[bytes, float]]:
    """Split into PCM s16le chunks with the (virtual) time at which each chunk's last sample
    would arrive from a real-time client, starting at t = 0."""
    step = chunk_ms * rate // 1000
    for i in range(0, pcm.size, step):
        part = pcm[i : i + step]
        yield part.astype("<i2").tobytes(), (i + part.size) / rate


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, single spaces (for comparing transcripts)."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())
