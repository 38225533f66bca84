"""A light spectral-subtraction denoiser for an utterance, in numpy (no model).

Measured as a front end to Whisper for the kitchen-noise benchmark (docs/benchmarks.md);
Whisper is trained on noisy audio and is often *hurt* by denoising artefacts ("musical
noise"), so this is not in the server's path unless the measurement says so.

Method: short-time Fourier transform (32 ms Hann windows, 75 % overlap); the noise power of
each frequency bin is estimated from the utterance itself by minimum statistics (a low
percentile of the bin's power over time: in a 1–10 s command most bins are free of speech
for a good part of the time), so no separate noise recording or VAD is needed; each bin is
scaled by a Wiener-like gain ``max(1 - over · N / P, floor)``, smoothed over time, and the
signal is resynthesized by overlap-add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

FRAME: Final = 512  # 32 ms at 16 kHz
HOP: Final = FRAME // 4
_EPS: Final = 1e-10


@dataclass(frozen=True, slots=True)
class DenoiseSettings:
    """``over``: over-subtraction factor; ``floor``: the smallest gain (keeps some noise,
    which Whisper tolerates better than holes); ``percentile``: of each bin's power over
    time, taken as its noise level; ``smooth``: weight of the previous frame's gain."""

    over: float = 1.5
    floor: float = 0.2
    percentile: float = 20.0
    smooth: float = 0.5


MILD: Final = DenoiseSettings(over=1.0, floor=0.3)
STRONG: Final = DenoiseSettings(over=2.0, floor=0.1)


def _stft(x: npt.NDArray[np.float64], window: npt.NDArray[np.float64]) -> npt.NDArray[
        np.complex128]:
    n = 1 + max(0, (len(x) - FRAME + HOP - 1) // HOP)
    padded = np.zeros((n - 1) * HOP + FRAME)
    padded[: len(x)] = x
    idx = np.arange(FRAME)[np.newaxis, :] + HOP * np.arange(n)[:, np.newaxis]
    return np.fft.rfft(padded[idx] * window, axis=1)


def denoise(audio: Float32Array, settings: DenoiseSettings = DenoiseSettings()) -> Float32Array:
    """``audio`` (16 kHz float32) with its stationary noise reduced; same length."""
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < FRAME:
        return np.asarray(audio, dtype=np.float32).copy()
    # Edge padding so the first and last samples get full overlap-add coverage.
    pad = FRAME
    xp = np.concatenate((np.zeros(pad), x, np.zeros(pad)))
    window = np.hanning(FRAME + 1)[:FRAME]
    spec = _stft(xp, window)
    power = np.abs(spec) ** 2
    noise = np.percentile(power, settings.percentile, axis=0)
    gain = np.maximum(1.0 - settings.over * noise / (power + _EPS), settings.floor)
    for t in range(1, gain.shape[0]):
        gain[t] = settings.smooth * gain[t - 1] + (1.0 - settings.smooth) * gain[t]
    frames = np.fft.irfft(spec * gain, n=FRAME, axis=1) * window
    out = np.zeros((frames.shape[0] - 1) * HOP + FRAME)
    norm = np.zeros_like(out)
    for t in range(frames.shape[0]):
        out[t * HOP : t * HOP + FRAME] += frames[t]
        norm[t * HOP : t * HOP + FRAME] += window**2
    out = out / np.maximum(norm, _EPS)
    return out[pad : pad + len(x)].astype(np.float32)
