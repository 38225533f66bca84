"""ASR service time, measured in the benchmark's own process with no server running.

The server's ``asr`` stage is endpoint -> final transcript: queueing plus compute. To tell them
apart under load, this times the audio package's :class:`WhisperTranscriber` alone on the very
utterances the streams speak (each padded as the endpointer pads it), once per encoder window
mode. With the service time ``S`` and ``N`` streams each speaking every ``I`` seconds, one ASR
worker is busy ``rho = N / I * S * calls_per_utterance`` of the time; queueing explodes as rho
approaches 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.bench.latency_corpus import STREAM_SAMPLE_RATE, Utterance
from assistant.bench.latency_stats import summarize

#: Padding the endpointer adds around voiced audio (pre-roll 320 ms, post-roll 64 ms; see
#: assistant/audio/endpoint.py), so the calibrated audio has the server's length.
PRE_ROLL_S = 0.32
POST_ROLL_S = 0.064


#: (label, window mode, with the registry's hotwords prompt as the server sends it).
DEFAULT_CASES: tuple[tuple[str, str, bool], ...] = (
    ("trimmed", "trimmed", True),
    ("trimmed-no-hotwords", "trimmed", False),
    ("full", "full", True),
)


def hotwords_of(config_path: Path) -> tuple[str, ...]:
    """The phrases the server biases Whisper with (``Hearth._load_recognizer``)."""
    from devices.registry import load_config
    from intents.recognizer import Recognizer

    vocabulary = Recognizer(load_config(config_path)).vocabulary("en")
    try:
        from intents.repair import bias_phrases
    except ImportError:  # older servers prompt with the vocabulary itself
        return tuple(vocabulary)
    return tuple(bias_phrases(vocabulary))


def calibrate(
    utterances: Sequence[Utterance],
    cases: Sequence[tuple[str, str, bool]] = DEFAULT_CASES,
    *,
    hotwords: Sequence[str] = (),
    asr_overrides: dict[str, Any] | None = None,
    limit: int = 12,
) -> dict[str, Any]:
    """Per-call ASR compute (ms) and transcripts for each case over up to ``limit`` distinct
    utterances. Loads one model per window mode (a few seconds each)."""
    from assistant.audio.asr import AsrSettings, WhisperTranscriber

    seen: set[tuple[str, str]] = set()
    chosen: list[Utterance] = []
    for u in utterances:
        if (u.command.text, u.voice) not in seen and len(chosen) < limit:
            seen.add((u.command.text, u.voice))
            chosen.append(u)
    pre = np.zeros(int(PRE_ROLL_S * STREAM_SAMPLE_RATE), dtype=np.float32)
    post = np.zeros(int(POST_ROLL_S * STREAM_SAMPLE_RATE), dtype=np.float32)
    audios = [np.concatenate([pre, u.pcm.astype(np.float32) / 32768.0, post]) for u in chosen]
    out: dict[str, Any] = {"utterances": len(chosen), "hotwords": len(hotwords), "windows": {}}
    models: dict[str, Any] = {}
    for label, mode, with_hotwords in cases:
        t0 = time.perf_counter()
        if mode not in models:
            models.clear()  # one model in memory at a time
            models[mode] = WhisperTranscriber(
                AsrSettings(**{**(asr_overrides or {}), "window": mode})
            )
            models[mode].warmup()
        tr = models[mode]
        settings = tr.settings
        load_s = time.perf_counter() - t0
        times: list[float] = []
        texts: list[dict[str, Any]] = []
        hw = tuple(hotwords) if with_hotwords else ()
        for u, audio in zip(chosen, audios, strict=True):
            t1 = time.perf_counter()
            result = tr.transcribe(audio, hotwords=hw)
            times.append((time.perf_counter() - t1) * 1000.0)
            texts.append(
                {
                    "text": u.command.text,
                    "voice": u.voice,
                    "transcript": result.text,
                    "window_s": result.window_s,
                    "ms": round(times[-1], 1),
                }
            )
        out["windows"][label] = {
            "settings": settings.model_dump(mode="json"),
            "hotwords": with_hotwords,
            "load_and_warmup_s": round(load_s, 2),
            "compute_ms": summarize(times),
            "calls": texts,
        }
    return out
