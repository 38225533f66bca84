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
from typing import Any

import numpy as np

from assistant.bench.latency_corpus import STREAM_SAMPLE_RATE, Utterance
from assistant.bench.latency_stats import summarize

#: Padding the endpointer adds around voiced audio (pre-roll 320 ms, post-roll 64 ms; see
#: assistant/audio/endpoint.py), so the calibrated audio has the server's length.
PRE_ROLL_S = 0.32
POST_ROLL_S = 0.064


def calibrate(
    utterances: Sequence[Utterance],
    windows: Sequence[str] = ("trimmed", "full"),
    *,
    asr_overrides: dict[str, Any] | None = None,
    limit: int = 12,
) -> dict[str, Any]:
    """Per-call ASR compute (ms) and transcripts for each window mode over up to ``limit``
    distinct utterances. Loads one model per mode (a few seconds each)."""
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
    out: dict[str, Any] = {"utterances": len(chosen), "windows": {}}
    for mode in windows:
        settings = AsrSettings(**{**(asr_overrides or {}), "window": mode})
        t0 = time.perf_counter()
        tr = WhisperTranscriber(settings)
        tr.warmup()
        load_s = time.perf_counter() - t0
        times: list[float] = []
        texts: list[dict[str, Any]] = []
        for u, audio in zip(chosen, audios, strict=True):
            t1 = time.perf_counter()
            result = tr.transcribe(audio)
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
        out["windows"][mode] = {
            "settings": settings.model_dump(mode="json"),
            "load_and_warmup_s": round(load_s, 2),
            "compute_ms": summarize(times),
            "calls": texts,
        }
        del tr
    return out
