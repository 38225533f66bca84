"""``hearth bench wake --sweep WORD``: the detection rule's sweep. The model's per-step
probabilities are recorded once (over the false-wake background, the wake phrases and the
near-homophones, clean and at 10 dB), then every rule (threshold x steps averaged x
consecutive steps above) is scored on them; :func:`choose` picks the one the detector ships
(``assistant.audio.wake.TUNED``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np

from assistant.bench.wake import (
    NEAR_PHRASES,
    RATE,
    WAKE_PHRASES,
    Float32Array,
    make_speaker,
    to_pcm,
    wake_voices,
    with_noise,
)

logger = logging.getLogger(__name__)

#: The rules the sweep scores: threshold x model steps averaged x consecutive steps above.
SWEEP_THRESHOLDS: Final = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
SWEEP_WINDOWS: Final = (1, 2, 3, 5, 8)
SWEEP_STEPS: Final = (1, 2, 3)


def step_scores(word: str, audio: Float32Array, chunk: int = 320) -> tuple[Any, Any]:
    """The model's raw per-step probabilities over ``audio`` (fed as the gate feeds it) and
    each step's position in ms."""
    from assistant.audio.wake import WakeDetector

    det = WakeDetector(word)
    pcm = to_pcm(audio)
    pairs: list[tuple[int, float]] = []
    for i in range(0, len(pcm), chunk * 2):
        pairs.extend(det.scores(pcm[i : i + chunk * 2]))
    at = np.array([a for a, _ in pairs], np.int64)
    return at, np.array([p for _, p in pairs], np.float64)


def rule_hits(at: Any, raw: Any, threshold: float, window: int, steps: int,
              refractory_ms: int) -> list[int]:
    """Detections (ms) the detector's rule gives on recorded scores (same as
    :meth:`WakeDetector.process`)."""
    if raw.size < window:
        return []
    mean = np.convolve(raw, np.ones(window) / window, mode="valid")
    above = (mean > threshold).astype(np.int64)
    if steps > 1:
        run = np.convolve(above, np.ones(steps, np.int64), mode="full")[: above.size]
        above = (run >= steps).astype(np.int64)
    hits: list[int] = []
    quiet = -1
    for i in np.nonzero(above)[0]:
        t = int(at[i + window - 1])
        if t >= quiet:
            hits.append(t)
            quiet = t + refractory_ms
    return hits


def sweep(word: str, audio: Float32Array, noise: Float32Array, out: Path) -> dict[str, Any]:
    """Misses and false wakes per hour of every rule, from scores recorded once."""
    from assistant.audio.wake import REFRACTORY_S, TUNED, available, check_word

    check_word(word)
    info = available()[word]
    refr = int(REFRACTORY_S * 1000)
    hours = audio.size / RATE / 3600
    logger.info("scoring %.2f h clean and at 10 dB ...", hours)
    bg = {"clean": step_scores(word, audio),
          "10dB": step_scores(word, with_noise(audio, noise, 10.0, 7))}
    speaker = make_speaker(out)
    voices = wake_voices()
    clips: dict[str, list[tuple[str, str, Any, Any]]] = {"clean": [], "10dB": []}
    for vi, voice in enumerate(voices):
        for pi, text in enumerate(WAKE_PHRASES.get(word, ())):
            x = speaker.say(text, voice)
            sil = np.zeros(RATE, np.float32)
            clip = np.concatenate((sil, x.astype(np.float32), sil))
            clips["clean"].append((voice.name, text, *step_scores(word, clip)))
            noisy = with_noise(clip, noise, 10.0, 1000 * vi + pi)
            clips["10dB"].append((voice.name, text, *step_scores(word, noisy)))
    near: dict[str, list[tuple[Any, Any]]] = {"clean": [], "10dB": []}
    for vi, voice in enumerate(voices):
        for pi, text in enumerate(NEAR_PHRASES.get(word, ())):
            sil = np.zeros(RATE, np.float32)
            clip = np.concatenate((sil, speaker.say(text, voice).astype(np.float32), sil))
            near["clean"].append(step_scores(word, clip))
            noisy = with_noise(clip, noise, 10.0, 50 + 1000 * vi + pi)
            near["10dB"].append(step_scores(word, noisy))
    rows: list[dict[str, Any]] = []
    for t in SWEEP_THRESHOLDS:
        for w in SWEEP_WINDOWS:
            for k in SWEEP_STEPS:
                row: dict[str, Any] = {"threshold": t, "window": w, "steps": k}
                for cond in ("clean", "10dB"):
                    fw = len(rule_hits(*bg[cond], t, w, k, refr))
                    missed = [f"{v}: {txt}" for v, txt, at, raw in clips[cond]
                              if not rule_hits(at, raw, t, w, k, refr)]
                    row[cond] = {"false_wakes_per_hour": round(fw / hours, 2),
                                 "missed": len(missed), "phrases": len(clips[cond]),
                                 "missed_items": missed,
                                 "near_homophones_woke": sum(
                                     1 for at, raw in near[cond]
                                     if rule_hits(at, raw, t, w, k, refr)),
                                 "near_homophones": len(near[cond])}
                rows.append(row)
    # Peak per voice (the model's probability averaged over its own window): which voice
    # the model does not take at all, whatever the rule.
    peaks: dict[str, dict[str, float]] = {}
    for cond in ("clean", "10dB"):
        for v, _txt, _at, raw in clips[cond]:
            m = np.convolve(raw, np.ones(info.window) / info.window, mode="valid")
            peak = float(m.max()) if m.size else 0.0
            d = peaks.setdefault(v, {})
            d[cond] = round(min(d.get(cond, 1.0), peak), 3)
    tuned = TUNED.get(word, (info.cutoff, info.window, 1))
    return {"word": word, "hours": round(hours, 3), "model_rule": [info.cutoff, info.window, 1],
            "default_rule": list(tuned), "rows": rows, "lowest_peak_by_voice": peaks,
            "choice": choose(rows)}


def choose(rows: list[dict[str, Any]], max_per_hour: float = 0.5) -> dict[str, Any] | None:
    """False wakes <= ``max_per_hour`` clean and at 10 dB first, then the fewest misses
    (both conditions), then the fewest false wakes, then the higher threshold."""
    ok = [r for r in rows if r["clean"]["false_wakes_per_hour"] <= max_per_hour
          and r["10dB"]["false_wakes_per_hour"] <= max_per_hour]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["clean"]["missed"] + r["10dB"]["missed"],
                                  r["clean"]["false_wakes_per_hour"]
                                  + r["10dB"]["false_wakes_per_hour"], -r["threshold"]))


def render_sweep(r: dict[str, Any]) -> str:
    lines = [f"# hearth bench wake --sweep {r['word']}", "",
             f"{r['hours']} h without the wake word; model rule {r['model_rule']}, "
             f"detector default {r['default_rule']} (threshold, window, steps).", "",
             "| threshold | window | steps | missed clean | missed 10 dB | false/h clean "
             "| false/h 10 dB | near-homophones woke (clean + 10 dB) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        c, n = row["clean"], row["10dB"]
        lines.append(f"| {row['threshold']} | {row['window']} | {row['steps']} | "
                     f"{c['missed']}/{c['phrases']} | {n['missed']}/{n['phrases']} | "
                     f"{c['false_wakes_per_hour']} | {n['false_wakes_per_hour']} | "
                     f"{c['near_homophones_woke'] + n['near_homophones_woke']}/"
                     f"{c['near_homophones'] + n['near_homophones']} |")
    lines += ["", "Lowest peak (model window) per voice: "
              + json.dumps(r["lowest_peak_by_voice"])]
    ch = r["choice"]
    lines += ["", "Choice (false wakes <= 0.5/h, then fewest misses): "
              + (f"{ch['threshold']}, window {ch['window']}, steps {ch['steps']}: missed "
                 f"{ch['clean']['missed_items']} clean, {ch['10dB']['missed_items']} at 10 dB"
                 if ch else "none meets 0.5/h")]
    return "\n".join(lines) + "\n"
