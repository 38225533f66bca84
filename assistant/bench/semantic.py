"""``hearth bench semantic``: does the semantic tier (``intents/semantic.py``) help?

Data: ``intents/data/paraphrases_en.yaml`` — paraphrases of demo-home commands that the grammar
rejects, each with its expected intent and slots, and negatives (chatter, questions, devices the
home lacks, statements, negations, deferred requests, fragments, requests the schema cannot
express). Both lists are split in two halves by a fixed seed: the *tuning* half is where the
threshold, margin and guards were chosen; the *held-out* half (the default) is what the
figures report.

Every sentence goes through the pipeline as the server would run it
(:func:`intents.semantic.recognize_with_semantic`): the recognizer first, the semantic tier only
when it rejected. The nearest canonical sentence is computed once per sentence and the
threshold × margin grid is applied afterwards, so every cell sees the same encoder output.

An intent *runs* when the dispatcher's policy would let it: confidence ≥
``security.min_confidence`` and, for a sensitive action (unlock, opening a device marked
sensitive), ≥ ``security.sensitive_min_confidence``. Per command: **correct** (runs, intent and
every action slot right — ``assistant.bench.accuracy_text.matches``), **held** (right, but its
capped confidence stops it: asked again instead), **wrong** (runs, something not asked for),
**rejected**. Per negative: **false action** (runs and moves a device; queries and ``cancel``
move nothing).

Writes ``DIR/semantic.json`` and ``DIR/semantic.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from assistant.bench.accuracy_text import Expected, matches, moves_device
from devices.dispatcher import OPENING_INTENTS
from devices.registry import HomeConfig, load_demo_config
from intents.recognizer import Recognizer
from intents.schema import QUERY_INTENTS, SENSITIVE_INTENTS, IntentName, Recognition
from intents.semantic import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    Proposal,
    SemanticSettings,
    SemanticTier,
)

DEFAULT_SET: Final = Path(__file__).resolve().parents[2] / "intents" / "data" / (
    "paraphrases_en.yaml")
#: Fixed seed of the tuning / held-out split.
SPLIT_SEED: Final = 5
THRESHOLDS: Final = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
MARGINS: Final = (0.0, 0.02, 0.05, 0.08, 0.1)
VARIANTS: Final = ("guards", "no-guards")

T = TypeVar("T")


@dataclass(frozen=True)
class Positive:
    text: str
    expected: tuple[Expected, ...]  # the label first, then acceptable alternatives


@dataclass(frozen=True)
class Negative:
    text: str
    why: str


def _expected(entry: Mapping[str, Any]) -> Expected:
    return Expected(str(entry["intent"]), dict(entry.get("slots") or {}))


def load_set(path: Path) -> tuple[list[Positive], list[Negative]]:
    """The paraphrase file as positives (with alternatives) and negatives."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    positives = [
        Positive(str(p["text"]), (_expected(p), *(_expected(a) for a in p.get("also") or ())))
        for p in doc.get("positives") or []
    ]
    negatives = [Negative(str(n["text"]), str(n.get("why", ""))) for n in
                 doc.get("negatives") or []]
    return positives, negatives


def split(items: Sequence[T], part: str, seed: int = SPLIT_SEED) -> list[T]:
    """``tuning`` (first half of a seeded shuffle), ``held-out`` (the rest) or ``all``."""
    if part == "all":
        return list(items)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    half = (len(order) + 1) // 2
    chosen = sorted(order[:half] if part == "tuning" else order[half:])
    return [items[i] for i in chosen]


def runs(recognition: Recognition, config: HomeConfig) -> bool:
    """Would the dispatcher's confidence policy let this intent through?"""
    intent = recognition.intent
    if intent is None:
        return False
    sec = config.security
    if intent.confidence < sec.min_confidence:
        return False
    devices = {d.id: d for d in config.devices}
    opens = intent.name in OPENING_INTENTS and (
        intent.name != IntentName.COVER_SET_POSITION or (intent.slots.position or 0) > 0)
    sensitive = intent.name in SENSITIVE_INTENTS or any(
        devices[i].sensitive and opens for i in intent.slots.device_ids if i in devices)
    return not sensitive or intent.confidence >= sec.sensitive_min_confidence


@dataclass
class _Row:
    text: str
    first: Recognition  # the recognizer's answer
    proposal: Proposal | None  # the tier's nearest reading when the recognizer rejected


def _row(text: str, firsts: Mapping[str, Recognition], tier: SemanticTier) -> _Row:
    first = firsts[text]
    if first.intent is not None:
        return _Row(text, first, None)
    return _Row(text, first, tier.propose(text))


def _final(row: _Row, tier: SemanticTier, threshold: float, margin: float) -> Recognition:
    if row.proposal is None:
        return row.first
    tier.settings = replace(tier.settings, threshold=threshold, margin=margin)
    return tier.accept(row.proposal)


def _score_positive(pos: Positive, rec: Recognition, config: HomeConfig) -> str:
    right = any(matches(e, rec.intent) for e in pos.expected)
    ran = runs(rec, config)
    if right:
        return "correct" if ran else "held"
    return "wrong" if ran else "rejected"


def _grid(
    rows_pos: Sequence[tuple[Positive, _Row]],
    rows_neg: Sequence[tuple[Negative, _Row]],
    tier: SemanticTier,
    config: HomeConfig,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for th in THRESHOLDS:
        for m in MARGINS:
            counts = dict.fromkeys(("correct", "held", "wrong", "rejected"), 0)
            for pos, row in rows_pos:
                counts[_score_positive(pos, _final(row, tier, th, m), config)] += 1
            false_actions = 0
            answered = 0
            for _, row in rows_neg:
                rec = _final(row, tier, th, m)
                if runs(rec, config):
                    if moves_device(rec.intent, QUERY_INTENTS):
                        false_actions += 1
                    else:
                        answered += 1
            n_pos, n_neg = len(rows_pos), len(rows_neg)
            out.append({
                "threshold": th, "margin": m, **counts,
                "accuracy": counts["correct"] / n_pos if n_pos else 0.0,
                "wrong_rate": counts["wrong"] / n_pos if n_pos else 0.0,
                "false_actions": false_actions,
                "false_action_rate": false_actions / n_neg if n_neg else 0.0,
                "negatives_answered": answered,
            })
    return out


def _examples(
    rows_pos: Sequence[tuple[Positive, _Row]],
    rows_neg: Sequence[tuple[Negative, _Row]],
    tier: SemanticTier,
    config: HomeConfig,
    threshold: float,
    margin: float,
) -> dict[str, list[dict[str, Any]]]:
    """Per-sentence outcomes at one setting, for reading the errors."""
    out: dict[str, list[dict[str, Any]]] = {"positives": [], "negatives": []}
    for pos, row in rows_pos:
        rec = _final(row, tier, threshold, margin)
        p = row.proposal
        out["positives"].append({
            "text": pos.text, "outcome": _score_positive(pos, rec, config),
            "expected": pos.expected[0].to_json(),
            "got": None if rec.intent is None else {
                "name": rec.intent.name, "device_ids": rec.intent.slots.device_ids,
                "confidence": rec.intent.confidence},
            "similarity": None if p is None else round(p.similarity, 3),
            "margin": None if p is None else round(p.margin, 3),
            "reason": rec.reason,
        })
    for neg, row in rows_neg:
        rec = _final(row, tier, threshold, margin)
        p = row.proposal
        acted = runs(rec, config) and moves_device(rec.intent, QUERY_INTENTS)
        out["negatives"].append({
            "text": neg.text, "why": neg.why, "false_action": acted,
            "got": None if rec.intent is None else rec.intent.name,
            "similarity": None if p is None else round(p.similarity, 3),
            "margin": None if p is None else round(p.margin, 3),
            "reason": rec.reason,
        })
    return out


def _percentile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def evaluate(
    positives: Sequence[Positive],
    negatives: Sequence[Negative],
    *,
    config: HomeConfig,
    variants: Sequence[str] = VARIANTS,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Any]:
    """Run every variant over the sentences; the JSON-able report."""
    recognizer = Recognizer(config)
    tier = SemanticTier(config, recognizer=recognizer, settings=SemanticSettings(enabled=True))
    started = time.perf_counter()
    tier.load()
    load_s = time.perf_counter() - started
    firsts = {s: recognizer.recognize(s, language="en")
              for s in [p.text for p in positives] + [n.text for n in negatives]}
    report: dict[str, Any] = {
        "load": {"total_s": round(load_s, 2), "model_s": round(tier.stats.model_s, 2),
                 "canonical_parse_s": round(tier.stats.canonical_s, 2),
                 "embed_s": round(tier.stats.embed_s, 2),
                 "canonical_sentences": tier.stats.sentences,
                 "canonical_dropped": tier.stats.dropped},
        "grammar_parsed": {"positives": [t for t in (p.text for p in positives)
                                         if firsts[t].intent is not None],
                           "negatives": [t for t in (n.text for n in negatives)
                                         if firsts[t].intent is not None]},
        "variants": {},
    }
    for variant in variants:
        tier.settings = SemanticSettings(enabled=True, guards=variant == "guards")
        rows_pos = [(p, _row(p.text, firsts, tier)) for p in positives]
        rows_neg = [(n, _row(n.text, firsts, tier)) for n in negatives]
        seconds = [r.proposal.seconds for _, r in [*rows_pos, *rows_neg]
                   if r.proposal is not None]
        report["variants"][variant] = {
            "latency_ms": {"mean": round(1000 * statistics.fmean(seconds), 1) if seconds else 0,
                           "p50": round(1000 * _percentile(seconds, 0.5), 1),
                           "p95": round(1000 * _percentile(seconds, 0.95), 1),
                           "n": len(seconds)},
            "grid": _grid(rows_pos, rows_neg, tier, config),
            "at_default": {"threshold": threshold, "margin": margin,
                           **_examples(rows_pos, rows_neg, tier, config, threshold, margin)},
        }
    return report


def markdown(report: Mapping[str, Any]) -> str:
    """The figures as Markdown tables."""
    lines = [
        f"# Semantic tier — {report['split']} half "
        f"({report['n_positives']} commands, {report['n_negatives']} negatives)",
        "",
        f"Load: {report['load']['total_s']} s (model {report['load']['model_s']} s, "
        f"{report['load']['canonical_sentences']} canonical sentences parsed in "
        f"{report['load']['canonical_parse_s']} s, embedded in {report['load']['embed_s']} s).",
        "",
    ]
    for name, v in report["variants"].items():
        lat = v["latency_ms"]
        lines += [
            f"## {name}: per sentence {lat['mean']} ms mean, {lat['p50']} p50, "
            f"{lat['p95']} p95 (n={lat['n']})",
            "",
            "| threshold | margin | correct | held | wrong | rejected | accuracy | wrong actions "
            "| negatives acting |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for g in v["grid"]:
            lines.append(
                f"| {g['threshold']:.2f} | {g['margin']:.2f} | {g['correct']} | {g['held']} | "
                f"{g['wrong']} | {g['rejected']} | {100 * g['accuracy']:.1f} % | "
                f"{100 * g['wrong_rate']:.1f} % | {g['false_actions']} "
                f"({100 * g['false_action_rate']:.1f} %) |")
        lines.append("")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hearth bench semantic``."""
    parser.add_argument("--out", required=True, help="directory for semantic.json/.md")
    parser.add_argument("--set", default=str(DEFAULT_SET), help="paraphrase YAML file")
    parser.add_argument("--split", default="held-out", choices=("held-out", "tuning", "all"),
                        help="which half to score (default: held-out)")
    parser.add_argument("--seed", type=int, default=SPLIT_SEED, help="split seed")
    parser.add_argument("--limit", type=int, default=0,
                        help="seeded subset of N commands and N negatives (0: all)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="setting whose per-sentence outcomes are written")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                        help="setting whose per-sentence outcomes are written")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write the report, print the tables."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    positives, negatives = load_set(Path(args.set))
    positives = split(positives, args.split, args.seed)
    negatives = split(negatives, args.split, args.seed)
    if args.limit:
        rng = random.Random(args.seed)
        positives = sorted(rng.sample(positives, min(args.limit, len(positives))),
                           key=positives.index)
        negatives = sorted(rng.sample(negatives, min(args.limit, len(negatives))),
                           key=negatives.index)
    variants = [v.strip() for v in str(args.variants).split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    config = load_demo_config()
    report = evaluate(positives, negatives, config=config, variants=variants,
                      threshold=args.threshold, margin=args.margin)
    report.update({
        "split": args.split, "seed": args.seed, "set": str(args.set),
        "n_positives": len(positives), "n_negatives": len(negatives),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "threads": args.threads or None,
    })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "semantic.json").write_text(json.dumps(report, ensure_ascii=False, indent=2),
                                       encoding="utf-8")
    table = markdown(report)
    (out / "semantic.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
