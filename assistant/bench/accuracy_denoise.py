"""The denoiser (:mod:`assistant.audio.denoise`) in front of Whisper, measured.

``python -m assistant.bench.accuracy_denoise --snr 6 --limit 40 --out DIR`` runs the
accuracy benchmark's own per-clip pipeline (``assistant.bench.accuracy``: the server's
endpointer, the ``beam5-phrases-retry2`` transcription, the full text decode) once per
setting on the same clips and noise: ``none`` (the benchmark as is), ``mild`` and
``strong``. The endpointer always hears the noisy audio (as in the server); only the
utterances handed to Whisper are denoised. Prints command acceptance and ASR ms per
setting; the records (same format as the benchmark's) go to ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.denoise import MILD, STRONG, DenoiseSettings, denoise

SETTINGS: dict[str, DenoiseSettings | None] = {"none": None, "mild": MILD, "strong": STRONG}


class _DenoisedEndpointing:
    """The benchmark's endpointing, with each utterance denoised before transcription."""

    def __init__(self, inner: Any, settings: DenoiseSettings) -> None:
        self._inner = inner
        self._settings = settings

    def segments(self, audio: Any) -> Any:
        segs = self._inner.segments(audio)
        segs.audio = [denoise(a, self._settings) for a in segs.audio]
        return segs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", default="6")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--setting", action="append", choices=sorted(SETTINGS))
    ap.add_argument("--asr", default="beam5-phrases-retry2")
    ap.add_argument("--out", default="bench-out/acc-denoise")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from assistant.bench import accuracy as acc
    from assistant.bench.accuracy_asr import ASR_VARIANTS
    from assistant.bench.accuracy_sets import (
        DEFAULT_SEED,
        default_data_dir,
        kitchen_noise,
        picovoice_items,
        subset,
    )
    from assistant.bench.noise import mix_at_snr, stable_seed
    from intents.custom import snake_case

    settings = args.setting or list(SETTINGS)
    variants = [ASR_VARIANTS[args.asr]]
    decodes = [d for d in acc.DECODE_VARIANTS if d.name == "nbest+norm+fuzzy+align"]
    ns = argparse.Namespace(config=None, custom_intents=None, threads=args.threads)
    p = acc._build_pipeline(ns, variants, decodes)
    plain = p.endpointing
    data_dir = default_data_dir()
    items = subset(picovoice_items(data_dir, snake_case), args.limit, DEFAULT_SEED)
    noise = kitchen_noise(data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok: dict[str, list[bool]] = {s: [] for s in settings}
    ms: dict[str, list[float]] = {s: [] for s in settings}
    files = {s: (out / f"records-{s}.jsonl").open("w", encoding="utf-8") for s in settings}
    for k, item in enumerate(items):
        clean = item.load()
        if args.snr == "clean":
            audio = clean
        else:
            rng = np.random.default_rng(stable_seed("picovoice", item.id, args.snr,
                                                    DEFAULT_SEED))
            audio = mix_at_snr(clean, noise, float(args.snr), rng)
        for s in settings:
            cfg = SETTINGS[s]
            p.endpointing = plain if cfg is None else _DenoisedEndpointing(  # type: ignore[assignment]
                plain, cfg)
            rec = acc._run_clip(p, item, audio, variants, decodes)
            rec["condition"] = args.snr
            files[s].write(json.dumps(rec, ensure_ascii=False) + "\n")
            files[s].flush()
            v = rec["variants"][args.asr]
            ok[s].append(bool(v["decode"]["nbest+norm+fuzzy+align"]["correct"]))
            ms[s].append(float(v["asr_ms"]))
        print(f"[denoise] {k + 1}/{len(items)} " + " ".join(
            f"{s}={sum(ok[s])}" for s in settings), file=sys.stderr, flush=True)
    for f in files.values():
        f.close()
    for s in settings:
        print(f"{s:8s} {100.0 * sum(ok[s]) / len(ok[s]):5.1f} % ({sum(ok[s])}/{len(ok[s])})  "
              f"ASR ms p50 {statistics.median(ms[s]):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
