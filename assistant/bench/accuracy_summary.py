"""The figures of ``hearth bench accuracy`` (:mod:`assistant.bench.accuracy`): per condition
and variant, command acceptance, word error rate, false actions and timings; the report's
summary with the published figures and targets it is compared to. Re-exported by
:mod:`assistant.bench.accuracy`."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Final

from assistant.bench.accuracy_text import threshold_table
from devices.registry import DEFAULT_MIN_CONFIDENCE

#: The SNRs whose mean the published Picovoice figures report.
PICOVOICE_AVERAGED: Final = ("24", "18", "12", "6")


#: Published command acceptance on the Picovoice set (average over 24–6 dB, cafe and kitchen
#: noise; Picovoice speech-to-intent benchmark).
PUBLISHED: Final = {
    "Picovoice Rhino": {"average": 0.976, "6": 0.935},
    "Microsoft LUIS": {"average": 0.899},
    "IBM Watson": {"average": 0.868},
    "Amazon Lex": {"average": 0.845},
    "Google Dialogflow": {"average": 0.776},
}


TARGETS: Final = {
    "picovoice": {"clean": 0.99, "average_24_6": 0.976},
    "synthetic": {"clean": 0.99, "10": 0.96, "5": 0.90},
    "negatives": {"false_action_rate_max": 0.005},
}


# -- summaries ------------------------------------------------------------------------------


def _pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _timing(xs: Sequence[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(xs), 1) if xs else 0.0,
            "p50": round(_pct(xs, 0.5), 1), "p95": round(_pct(xs, 0.95), 1)}


def _variant_names(records: Sequence[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for r in records:
        for a, v in r["variants"].items():
            for d in v["decode"]:
                names[f"{a}/{d}"] = None
    return list(names)


def _get(rec: dict[str, Any], variant: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    a, _, d = variant.partition("/")
    v = rec["variants"].get(a)
    if v is None or d not in v["decode"]:
        return None
    return v, v["decode"][d]


def summarize_condition(records: Sequence[dict[str, Any]], variants: Sequence[str],
                        keep: str, threshold: float) -> dict[str, Any]:
    """Figures of one (set, condition)."""
    out: dict[str, Any] = {"n": len(records), "variants": {}}
    commands = [r for r in records if r["expected"] is not None]
    for name in variants:
        got = [(r, _get(r, name)) for r in records]
        pairs = [(r, g) for r, g in got if g is not None]
        if not pairs:
            continue
        s: dict[str, Any] = {}
        cmd = [(r, g) for r, g in pairs if r["expected"] is not None]
        if cmd:
            ok = [g[1].get("correct", False) and g[1]["confidence"] >= threshold for _, g in cmd]
            s["command_acceptance"] = round(sum(ok) / len(cmd), 4)
            s["correct"] = sum(ok)
        neg = [(r, g) for r, g in pairs if r["expected"] is None]
        if neg:
            # a false action is one the server would take: at the dispatcher's threshold
            acts_at = max(threshold, DEFAULT_MIN_CONFIDENCE)
            moved = [g[1]["moves"] and g[1]["confidence"] >= acts_at for _, g in neg]
            s["false_action_rate"] = round(sum(moved) / len(neg), 4)
            s["false_actions"] = sum(moved)
        errs = sum(g[0].get("word_errors", 0) for _, g in pairs)
        words_n = sum(g[0].get("ref_words", 0) for _, g in pairs)
        if words_n:
            s["word_error_rate"] = round(errs / words_n, 4)
        s["asr_ms"] = _timing([g[0]["asr_ms"] for _, g in pairs])
        s["intent_ms"] = _timing([g[1]["intent_ms"] for _, g in pairs])
        # The acoustic repair's decoder passes (only on the noisy utterances it engages on).
        s["repair_ms"] = _timing([g[1].get("repair_ms", 0.0) for _, g in pairs])
        out["variants"][name] = s
    head = out["variants"].get(keep, {})
    out.update({k: head[k] for k in ("command_acceptance", "false_action_rate",
                                     "word_error_rate") if k in head})
    if commands and any("text_correct" in r for r in commands):
        out["text_acceptance"] = round(
            sum(bool(r.get("text_correct")) for r in commands) / len(commands), 4)
    out["vad_ms"] = _timing([r["vad_ms"] for r in records])
    out["multi_segment_clips"] = sum(1 for r in records if r["segments"] > 1)
    out["no_segment_clips"] = sum(1 for r in records if r["segments"] == 0)
    return out


def _confidence_rows(records: Sequence[dict[str, Any]], keep: str) -> tuple[
        list[tuple[float, bool]], list[float]]:
    rows: list[tuple[float, bool]] = []
    neg: list[float] = []
    for r in records:
        g = _get(r, keep)
        if g is None:
            continue
        d = g[1]
        if r["expected"] is not None:
            rows.append((d["confidence"] if d["intent"] else -1.0, bool(d.get("correct"))))
        elif d["moves"]:
            neg.append(d["confidence"])
    return rows, neg


def build_report(records: Sequence[dict[str, Any]], sets: Sequence[str],
                 conditions: dict[str, list[str]], variants: Sequence[str], keep: str,
                 threshold: float) -> dict[str, Any]:
    """The ``accuracy.json`` summary (everything but machine/model/settings)."""
    report: dict[str, Any] = {
        "keep": keep, "command_acceptance": {}, "word_error_rate": {},
        "false_action_rate": {}, "sets": {}, "variants": {}, "published": PUBLISHED,
        "targets": TARGETS, "threshold_table": {},
    }
    for s in sets:
        recs = [r for r in records if r["set"] == s]
        per: dict[str, Any] = {}
        for c in conditions[s]:
            cr = [r for r in recs if r["condition"] == c]
            if cr:
                per[c] = summarize_condition(cr, variants, keep, threshold)
        report["sets"][s] = per
        if s in ("picovoice", "synthetic"):
            acc = {c: v["command_acceptance"] for c, v in per.items()
                   if "command_acceptance" in v}
            noisy = [acc[c] for c in PICOVOICE_AVERAGED if c in acc] if s == "picovoice" else []
            if s == "picovoice" and len(noisy) == len(PICOVOICE_AVERAGED):
                acc["average_24_6"] = round(statistics.fmean(noisy), 4)
            report["command_acceptance"][s] = acc
            report["word_error_rate"][s] = {c: v["word_error_rate"] for c, v in per.items()
                                            if "word_error_rate" in v}
        if s == "negatives":
            report["false_action_rate"][s] = {c: v.get("false_action_rate") for c, v in
                                              per.items()}
            report["word_error_rate"][s] = {c: v["word_error_rate"] for c, v in per.items()
                                            if "word_error_rate" in v}
        for name in variants:
            row: dict[str, Any] = {}
            for c, v in per.items():
                fig = v["variants"].get(name)
                if fig is None:
                    continue
                row[c] = {k: fig[k] for k in ("command_acceptance", "false_action_rate",
                                              "word_error_rate") if k in fig}
                row[c]["asr_ms_p50"] = fig["asr_ms"]["p50"]
                row[c]["intent_ms_p50"] = fig["intent_ms"]["p50"]
            if s == "picovoice":
                noisy_v = [row[c]["command_acceptance"] for c in PICOVOICE_AVERAGED if c in row]
                if len(noisy_v) == len(PICOVOICE_AVERAGED):
                    row["average_24_6"] = {"command_acceptance": round(
                        statistics.fmean(noisy_v), 4)}
            if row:
                report["variants"].setdefault(name, {})[s] = row
    neg_recs = [r for r in records if r["set"] == "negatives"]
    for s in sets:
        if s == "negatives":
            continue
        rows, _ = _confidence_rows([r for r in records if r["set"] == s], keep)
        _, neg = _confidence_rows(neg_recs, keep)
        if rows:
            report["threshold_table"][s] = threshold_table(rows, neg)
    if neg_recs and not report["threshold_table"]:
        _, neg = _confidence_rows(neg_recs, keep)
        report["threshold_table"]["negatives"] = threshold_table([], neg)
    return report
