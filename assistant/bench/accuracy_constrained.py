"""Grammar-constrained acoustic rescoring, measured on the n-best lists of an accuracy run.

``python -m assistant.bench.accuracy_constrained --records DIR/accuracy_records.jsonl``
re-decodes every clip of a ``hearth bench accuracy`` records file without running Whisper's
transcription again: the clip is mixed with the same noise (same seed), cut by the same
endpointer, each utterance's recorded n-best list is decoded by the shipped text decode
(``intents.decode``, as the benchmark's ``nbest+norm+fuzzy+align``), and then
:func:`intents.constrained.choose` lets Whisper's decoder pick among grammar sentences near
it (``assistant.audio.sentence_score``). Several rules (gate, margin, prompt) are compared
on the same clips; the scores are memoized per utterance, so a rule costs no extra decoder
pass. Figures: command acceptance per rule, the clips each rule fixed and broke, and the
cost of the scoring (ms per utterance where it ran).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from assistant.audio.acoustic_repair import (
    MAX_SNR_DB,
    AcousticRepair,
    estimated_snr_db,
    per_token,
    with_bonus,
)
from assistant.audio.sentence_score import Method, SentenceScorer

Float32Array = Any

#: Rules compared: (name, score normalization, margin, rescue, candidates per round at most);
#: each runs only where the
#: text decode guessed (repaired words, an alignment, a lower hypothesis). rescue: also when
#: nothing parsed, accepting the best candidate if it scores within ``rescue`` (in the
#: rule's units) of Whisper's own top hypothesis.
RULES: Final = (
    ("sum/m2", "sum", 2.0, None, 40),
    ("avg/m0.1", "avg", 0.1, None, 40),
    ("bonus1/m2", "bonus1", 2.0, None, 40),
    ("bonus1/m2/L24", "bonus1", 2.0, None, 24),
)
#: The same rules with the grammar-constrained decoder's sentences among the seeds
#: (``assistant.audio.grammar_decode``), and with rescues at several distances from Whisper's
#: own top hypothesis (nats, in the rule's units).
GRAMMAR_RULES: Final = (
    ("gd/bonus1/m2/L24", "bonus1", 2.0, None, 24),
    ("gd/bonus1/m2/L24/r8", "bonus1", 2.0, 8.0, 24),
    ("gd/bonus1/m2/L24/r12", "bonus1", 2.0, 12.0, 24),
    ("gd/bonus1/m2/L24/r16", "bonus1", 2.0, 16.0, 24),
    ("gd/bonus1/m2/L24/r24", "bonus1", 2.0, 24.0, 24),
)
#: Scorer settings: (hotword prompt, minimum encoder window in s, method).
SCORERS: Final[dict[str, tuple[bool, float, Method]]] = {
    "w8": (False, 8.0, "logits"),  # the transcriber's window rule, end-of-text scored
    "w3": (False, 3.0, "logits"),  # a shorter window: cheaper encoder and decoder
    "w8-align": (False, 8.0, "align"),  # CTranslate2 align (no end-of-text)
    "w8-prompt": (True, 8.0, "logits"),  # the hotword prompt before the start sequence
    "t8": (False, 8.0, "torch"),  # w8 with the torch decoder (assistant.audio.whisper_decoder)
}
#: Score of a sentence from (sum of token log-probabilities, tokens): "sum" as is; "avg" per
#: token (how Whisper's beam search ranks, length_penalty 1); "bonus1" adds 1 nat per token
#: (the sum favours short slot values: "sugar" over "skim milk"), the shipped default.
NORMS: Final[dict[str, Callable[[float, int], float]]] = {
    "sum": lambda lp, n: lp,
    "avg": per_token,
    "bonus1": with_bonus,
}


class _Memo:
    """Scores of one utterance, memoized by sentence (one scorer per prompt setting)."""

    def __init__(self, scorer: SentenceScorer, audio: Float32Array) -> None:
        self._scorer = scorer
        self._audio = audio
        self._enc: Any = None
        self.cache: dict[str, tuple[float, int]] = {}
        self.ms = 0.0
        self.calls = 0

    def normalized(self, norm: str) -> Callable[[Sequence[str]], list[float]]:
        f = NORMS[norm]

        def score(sentences: Sequence[str]) -> list[float]:
            return [f(lp, n) for lp, n in self(sentences)]

        return score

    def __call__(self, sentences: Sequence[str]) -> list[tuple[float, int]]:
        todo = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if todo:
            t0 = time.perf_counter()
            if self._enc is None:
                self._enc = self._scorer.encode(self._audio)
            res = self._scorer.score(self._audio, todo, encoded=self._enc)
            self.cache.update(zip(res.sentences, zip(res.log_probs, res.tokens, strict=True),
                                  strict=True))
            self.ms += (time.perf_counter() - t0) * 1000.0
            self.calls += 1
        return [self.cache[s] for s in sentences]


def _text_decode(variant: dict[str, Any]) -> dict[str, Any]:
    """The recorded text decode of a clip: the full decode, or the ``shipped`` one (the same
    decode with the server's confidence rule) when the run kept only that."""
    decodes: dict[str, dict[str, Any]] = variant["decode"]
    return decodes.get("nbest+norm+fuzzy+align") or decodes["shipped"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", required=True, nargs="+")
    ap.add_argument("--asr", default="beam5-phrases-retry2")
    ap.add_argument("--only-failures", action="store_true",
                    help="re-decode only the clips the text decode got wrong (quick look; "
                         "cannot show what a rule breaks)")
    ap.add_argument("--scorer", action="append", choices=sorted(SCORERS),
                    help="scorer settings to compare (default: w8)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="write per-clip results (JSON lines) here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grammar-decode", action="store_true",
                    help="also compare the rules with grammar-constrained decoding")
    ap.add_argument("--beam", type=int, default=8, help="grammar decoder beam")
    ap.add_argument("--home", action="store_true",
                    help="also the built-in home grammar (guessed home readings, a decoder "
                         "over the home grammar with decoys)")
    ap.add_argument("--no-gate", action="store_true",
                    help="rescore whatever the estimated SNR (default: below 20 dB only)")
    ap.add_argument("--condition", action="append",
                    help="only these conditions of the records (e.g. 6)")
    ap.add_argument("--seed", type=int, default=None,
                    help="the accuracy run's --seed (noise mixing; default: the benchmark's)")
    args = ap.parse_args(argv)

    from assistant.audio.asr import hotword_prompt
    from assistant.bench import accuracy as acc
    from assistant.bench.accuracy_asr import ServerEndpointing, bias_phrases
    from assistant.bench.accuracy_sets import (
        DEFAULT_CACHE,
        DEFAULT_SEED,
        Speaker,
        chatter_talkers,
        default_data_dir,
        kitchen_noise,
        negative_items,
        picovoice_items,
        synthetic_items,
    )
    from assistant.bench.accuracy_text import matches, moves_device
    from assistant.bench.noise import mix_at_snr, stable_seed
    from intents.custom import snake_case
    from intents.decode import FULL_DECODE, REPAIRS, Hypothesis, best_alignment, decode

    records = [json.loads(line) for p in args.records for line in Path(p).read_text(
        encoding="utf-8").splitlines() if line.strip()]
    records = [r for r in records if r["set"] in ("picovoice", "negatives", "synthetic")
               and (not args.condition or r["condition"] in args.condition)]
    if args.only_failures:
        records = [r for r in records
                   if not _text_decode(r["variants"][args.asr]).get("correct", True)]
    ns = argparse.Namespace(config=None, custom_intents=None, threads=args.threads)
    full = [d for d in acc.DECODE_VARIANTS if d.name == FULL_DECODE.name]
    p = acc._build_pipeline(ns, [], full)
    data_dir = default_data_dir()
    items = {i.id: i for i in picovoice_items(data_dir, snake_case)}
    noise = kitchen_noise(data_dir)
    speaker = Speaker(DEFAULT_CACHE)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    if any(r["set"] == "negatives" for r in records):
        items.update({i.id: i for i in negative_items(speaker, noise, chatter_talkers(speaker),
                                                      seed=seed)})
    if any(r["set"] == "synthetic" for r in records):
        items.update({i.id: i for i in synthetic_items(p.recognizer.config, speaker, seed=seed)})
    endpointing = ServerEndpointing()
    prompt_text = hotword_prompt(tuple(bias_phrases(p.hotwords["vocabulary"])))
    model = SentenceScorer.load(threads=args.threads)._model
    text_decoder = None
    if args.grammar_decode or "t8" in (args.scorer or []):
        import torch

        from assistant.audio.asr import default_model_path
        from assistant.audio.whisper_decoder import WhisperTextDecoder

        torch.set_num_threads(args.threads)
        text_decoder = WhisperTextDecoder.load(default_model_path())
    scorers = {name: SentenceScorer(model, prompt=prompt_text if prompt else None,
                                    window_min_s=window, method=method,
                                    decoder=text_decoder if method == "torch" else None)
               for name, (prompt, window, method) in SCORERS.items()
               if name in (args.scorer or ["w8"])}

    rules = RULES + (GRAMMAR_RULES if args.grammar_decode else ())
    repairers = {name: AcousticRepair(p.recognizer, margin=margin, rounds=args.rounds,
                                      rescue=rescue, limit=limit, home=args.home,
                                      max_snr_db=None if args.no_gate else MAX_SNR_DB)
                 for name, _, margin, rescue, limit in rules}
    norms = {name: norm for name, norm, _, _, _ in rules}
    grammar: tuple[Any, ...] = ()
    if args.grammar_decode:
        any_repair = next(iter(repairers.values()))
        grammar = any_repair.grammar_decoders(next(iter(scorers.values())), text_decoder,
                                              beam=args.beam)
    gd_ms: list[float] = []
    scored: dict[str, list[int]] = {}

    def recognize(text: str) -> Any:
        return p.recognizer.recognize(text)

    def align(texts: Sequence[str]) -> tuple[str, float] | None:
        return best_alignment(p.aligners, texts)

    results: dict[str, dict[str, list[bool]]] = {}
    per_clip: list[dict[str, Any]] = []
    cost: dict[str, list[float]] = {k: [] for k in scorers}
    t_start = time.perf_counter()
    for k, r in enumerate(records):
        item = items[r["id"]]
        expected = item.expected  # None: a negative, right when nothing moves
        cond = r["condition"]
        clean = item.load()
        if cond == "clean":
            audio = clean
        else:
            rng = np.random.default_rng(stable_seed(
                r["set"], item.id, cond, DEFAULT_SEED if args.seed is None else args.seed))
            audio = mix_at_snr(clean, noise, float(cond), rng)
        segs = endpointing.segments(audio).audio
        v = r["variants"][args.asr]
        nbest = v["nbest"] or []
        if len(segs) != len(nbest):
            print(f"segments differ for {r['id']}: {len(segs)} vs {len(nbest)}", file=sys.stderr)
            continue
        clip: dict[str, Any] = {"id": r["id"], "set": r["set"], "condition": cond,
                                "expected": None if expected is None else expected.to_json(),
                                "rules": {}}
        acted_base: list[Any] = []
        acted: dict[str, list[Any]] = {}
        for seg, hyps in zip(segs, nbest, strict=True):
            d = decode([Hypothesis(h) for h in hyps], recognize, FULL_DECODE, p.snapper, align)
            intent = d.recognition.intent
            if intent is not None:
                acted_base.append(intent)
            # As intents.decode.HypothesisDecoder marks it.
            guessed = d.transform in REPAIRS or d.hypothesis > 0
            recognition = d.recognition.model_copy(update={"guessed": guessed})
            seeds: dict[bool, Any] = {}
            decoded: list[Any] | None = None
            for sname, scorer in scorers.items():
                memo = _Memo(scorer, seg)
                for rname, repairer in repairers.items():
                    name = f"{sname}/{rname}"
                    gd = rname.startswith("gd/")
                    engage = repairer.engages(recognition) and bool(hyps)
                    if engage and gd and decoded is None and (
                            repairer.max_snr_db is None
                            or estimated_snr_db(seg) < repairer.max_snr_db):
                        t_gd = time.perf_counter()
                        decoded = [s for g in grammar for s in g.decode(seg).sentences]
                        gd_ms.append((time.perf_counter() - t_gd) * 1000.0)
                    if engage and gd not in seeds:
                        seeds[gd] = repairer.seeds(hyps, recognition,
                                                   (decoded or []) if gd else ())
                    out = repairer.repair(seg, hyps, recognition, seeds=seeds[gd],
                                          score=memo.normalized(norms[rname])) \
                        if engage else None
                    chosen = intent if out is None else out.recognition.intent
                    if out is not None and out.choice is not None:
                        scored.setdefault(name, []).append(out.choice.scored)
                    acted.setdefault(name, [])
                    if chosen is not None:
                        acted[name].append(chosen)
                if memo.calls:
                    cost[sname].append(memo.ms)
        def right(acted_on: list[Any], expected: Any = expected) -> bool:
            if expected is None:
                return not any(moves_device(i, p.query_intents) for i in acted_on)
            return len(acted_on) == 1 and matches(expected, acted_on[0])

        ok_base = right(acted_base)
        td = _text_decode(v)
        recorded = bool(td["correct"]) if expected is not None else not td["moves"]
        if ok_base != recorded:
            print(f"text decode differs from the record for {r['id']}", file=sys.stderr)
        key = cond if r["set"] == "picovoice" else f"{r['set'][:3]} {cond}"
        results.setdefault("text decode (recorded)", {}).setdefault(key, []).append(recorded)
        results.setdefault("text decode (here)", {}).setdefault(key, []).append(ok_base)
        for name, a in acted.items():
            ok = right(a)
            results.setdefault(name, {}).setdefault(key, []).append(ok)
            clip["rules"][name] = {"correct": ok, "slots": [i.slots.custom for i in a]}
            if ok != ok_base:
                print(f"  {name}: {r['id'][:8]} {cond} {'FIXED' if ok else 'BROKE'} "
                      f"{[i.slots.custom for i in a]}", file=sys.stderr)
        clip["text_decode"] = ok_base
        per_clip.append(clip)
        if (k + 1) % 10 == 0:
            el = time.perf_counter() - t_start
            print(f"[constrained] {k + 1}/{len(records)} ({el / (k + 1):.2f} s/clip)",
                  file=sys.stderr, flush=True)
    print(f"clips: {len(per_clip)}")
    for name, per in results.items():
        row = "  ".join(f"{c}: {100.0 * sum(x) / len(x):5.1f} % ({sum(x)}/{len(x)})"
                        for c, x in per.items())
        print(f"{name:32s} {row}")
    for name, counts in scored.items():
        print(f"{name:32s} candidates scored per utterance: mean {statistics.fmean(counts):.1f},"
              f" max {max(counts)} ({len(counts)} utterances)")
    for sname, ms in cost.items():
        if ms:
            print(f"scoring cost ({sname} prompt): {len(ms)} utterances, p50 "
                  f"{statistics.median(ms):.0f} ms, mean {statistics.fmean(ms):.0f} ms")
    if gd_ms:
        print(f"grammar decoding cost: {len(gd_ms)} utterances, p50 "
              f"{statistics.median(gd_ms):.0f} ms, p95 {np.percentile(gd_ms, 95):.0f} ms")
    if args.out:
        Path(args.out).write_text("\n".join(json.dumps(c) for c in per_clip) + "\n",
                                  encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
