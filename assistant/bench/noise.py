"""Noise mixing for the accuracy benchmark: pure numpy, deterministic given a seed.

SNR convention: the speech power is measured over the *active* part of the speech only (frames
that carry speech, not the leading/trailing silence of a recording), the noise power over the
whole noise excerpt that is added. This is the convention of speech-in-noise benchmarks
(ITU-T P.56 "active speech level", simplified here): measuring speech power over the whole
clip would make a clip with 2 s of silence look 3 dB quieter than the same words without it,
so the same nominal SNR would be harsher on the recordings with long silences.
"""

from __future__ import annotations

import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

#: Length of the frames the activity detector measures.
ACTIVE_FRAME_MS: Final = 20
#: A frame is active when it is at most this far below the loudest frame...
ACTIVE_BELOW_PEAK_DB: Final = 30.0
#: ...and at least this far above the recording's noise floor (its 10th-percentile frame).
ACTIVE_ABOVE_FLOOR_DB: Final = 10.0
_EPS: Final = 1e-12


def active_mask(speech: Float32Array, rate: int) -> npt.NDArray[np.bool_]:
    """Per-frame activity of ``speech`` (frames of :data:`ACTIVE_FRAME_MS`).

    Energy-based on purpose: it needs no model, so the test of the mixing code is exact and
    fast, and it is applied to clean speech only, where energy separates speech from silence
    well. Falls back to "all frames active" for a clip with no frame above the thresholds.
    """
    frame = max(1, rate * ACTIVE_FRAME_MS // 1000)
    n = len(speech) // frame
    if n == 0:
        return np.ones(1, dtype=np.bool_)
    frames = np.asarray(speech[: n * frame], dtype=np.float64).reshape(n, frame)
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + _EPS)
    peak = float(np.max(energy_db))
    floor = float(np.percentile(energy_db, 10))
    mask: npt.NDArray[np.bool_] = (energy_db >= peak - ACTIVE_BELOW_PEAK_DB) & (
        energy_db >= floor + ACTIVE_ABOVE_FLOOR_DB
    )
    if not mask.any():
        mask = np.ones(n, dtype=np.bool_)
    return mask


def active_power(speech: Float32Array, rate: int) -> float:
    """Mean power of the active frames of ``speech`` (linear, full scale = 1.0)."""
    frame = max(1, rate * ACTIVE_FRAME_MS // 1000)
    mask = active_mask(speech, rate)
    n = len(speech) // frame
    if n == 0:
        return float(np.mean(np.asarray(speech, dtype=np.float64) ** 2))
    frames = np.asarray(speech[: n * frame], dtype=np.float64).reshape(n, frame)
    return float(np.mean(frames[mask] ** 2))


def noise_excerpt(noise: Float32Array, length: int, rng: np.random.Generator) -> Float32Array:
    """``length`` samples of ``noise`` from a random offset, wrapping around (looping)."""
    if len(noise) == 0:
        raise ValueError("empty noise signal")
    start = int(rng.integers(0, len(noise)))
    idx = (start + np.arange(length)) % len(noise)
    return np.asarray(noise[idx], dtype=np.float32)


def mix_parts(
    speech: Float32Array,
    noise: Float32Array,
    snr_db: float,
    rng: np.random.Generator,
    rate: int = 16000,
) -> tuple[Float32Array, Float32Array, float]:
    """(mixture, the noise as added, common scale). ``mixture == scale * speech + noise_added``.

    The noise is a random excerpt of ``noise`` scaled to ``snr_db`` (active speech power over
    noise power). The speech keeps its level unless the sum would clip; then speech and noise
    are scaled down together (``scale`` < 1), which leaves the SNR unchanged.
    """
    excerpt = noise_excerpt(noise, len(speech), rng).astype(np.float64)
    p_speech = active_power(speech, rate)
    p_noise = float(np.mean(excerpt**2))
    if p_noise <= _EPS:
        raise ValueError("noise excerpt is silent; cannot mix at an SNR")
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    added = gain * excerpt
    mixed = np.asarray(speech, dtype=np.float64) + added
    peak = float(np.max(np.abs(mixed))) if len(mixed) else 0.0
    scale = 0.99 / peak if peak > 0.99 else 1.0
    return (mixed * scale).astype(np.float32), (added * scale).astype(np.float32), scale


def mix_at_snr(
    speech: Float32Array,
    noise: Float32Array,
    snr_db: float,
    rng: np.random.Generator,
    rate: int = 16000,
) -> Float32Array:
    """``speech`` plus a random excerpt of ``noise`` at ``snr_db``; see :func:`mix_parts`."""
    return mix_parts(speech, noise, snr_db, rng, rate)[0]


def measured_snr_db(speech: Float32Array, noise_added: Float32Array, rate: int = 16000) -> float:
    """SNR of a mixture from its parts, by the same convention (active speech power over the
    power of the noise as added; both carry the same clipping scale, which cancels)."""
    p_noise = float(np.mean(np.asarray(noise_added, dtype=np.float64) ** 2))
    return 10.0 * float(np.log10(active_power(speech, rate) / max(p_noise, _EPS)))


def stable_seed(*parts: str | int) -> int:
    """A seed from strings/ints that is the same on every run and platform (``hash()`` is
    salted per process), so an utterance gets the same noise whatever else is in the run."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


def white_noise(seconds: float, rate: int, rng: np.random.Generator) -> Float32Array:
    """Gaussian white noise at unit-ish level (its scale is irrelevant: mixing rescales)."""
    return rng.standard_normal(int(seconds * rate)).astype(np.float32) * 0.1


def babble(
    talkers: list[Float32Array], seconds: float, rate: int, rng: np.random.Generator
) -> Float32Array:
    """Babble noise: the sum of ``talkers`` clips, each looped from a random offset and
    normalized to the same active level, so no single voice dominates."""
    if not talkers:
        raise ValueError("babble needs at least one talker")
    n = int(seconds * rate)
    out = np.zeros(n, dtype=np.float64)
    for t in talkers:
        p = active_power(t, rate)
        out += noise_excerpt(t, n, rng).astype(np.float64) / np.sqrt(max(p, _EPS))
    out /= max(float(np.max(np.abs(out))), _EPS)
    return (out * 0.5).astype(np.float32)
