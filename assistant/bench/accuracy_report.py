"""Markdown rendering of the accuracy report (``accuracy.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100.0 * float(x):.1f} %"


def _cond_label(c: str) -> str:
    return c if c in ("clean", "average_24_6") else f"{c} dB"


def render_markdown(report: dict[str, Any]) -> str:
    """Tables: headline per set and condition, published figures, every variant, the
    confidence-threshold table, negatives."""
    lines: list[str] = ["# Speech → intent accuracy", ""]
    lines.append(f"Headline variant: `{report['keep']}`; command: `{report.get('command', '')}`")
    m = report.get("machine", {})
    if m:
        lines.append(f"Machine: {m.get('cpu')} ({m.get('cores')} cores), load average before "
                     f"{m.get('load_average_before')}, wall {report.get('wall_s')} s")
    lines.append("")
    for s, per in report["sets"].items():
        lines += [f"## {s}", "",
                  "| condition | clips | command acceptance | false actions | WER | text only "
                  "| ASR ms p50/p95 | intent ms p50 | multi-utterance clips |",
                  "|---|---|---|---|---|---|---|---|---|"]
        keep = report["keep"]
        for c, v in per.items():
            fig = v["variants"].get(keep, {})
            asr = fig.get("asr_ms", {})
            lines.append(
                f"| {_cond_label(c)} | {v['n']} | {_pct(v.get('command_acceptance'))} | "
                f"{_pct(v.get('false_action_rate'))} | {_pct(v.get('word_error_rate'))} | "
                f"{_pct(v.get('text_acceptance'))} | {asr.get('p50', 0):.0f}/"
                f"{asr.get('p95', 0):.0f} | {fig.get('intent_ms', {}).get('p50', 0):.1f} | "
                f"{v.get('multi_segment_clips', 0)} |")
        acc = report["command_acceptance"].get(s, {})
        if "average_24_6" in acc:
            lines.append(f"| **average 24–6 dB** | | **{_pct(acc['average_24_6'])}** | | | | | | |")
        lines.append("")
        if s == "picovoice":
            lines += ["Published (average over 24–6 dB, cafe and kitchen noise): " + ", ".join(
                f"{k} {_pct(v['average'])}" + (f" ({_pct(v['6'])} at 6 dB)" if "6" in v else "")
                for k, v in report["published"].items()), ""]
    lines += ["## Variants", "",
              "Each ASR variant is a separate Whisper pass over the same audio; decode variants "
              "reuse its output. Cells: command acceptance (false-action rate for negatives), "
              "ASR ms p50 + intent ms p50.", ""]
    for s in report["sets"]:
        conds = list(report["sets"][s])
        extra = ["average_24_6"] if s == "picovoice" else []
        lines += [f"### {s}", "", "| variant | " + " | ".join(
            _cond_label(c) for c in conds + extra) + " |",
            "|---" * (len(conds) + len(extra) + 1) + "|"]
        for name, per_set in report["variants"].items():
            row = per_set.get(s)
            if not row:
                continue
            cells = []
            for c in conds:
                f = row.get(c)
                if f is None:
                    cells.append("–")
                    continue
                val = f.get("command_acceptance", f.get("false_action_rate"))
                cells.append(f"{_pct(val)} ({f['asr_ms_p50']:.0f}+{f['intent_ms_p50']:.1f} ms)")
            for c in extra:
                cells.append(_pct(row.get(c, {}).get("command_acceptance")))
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        lines.append("")
    for s, table in report.get("threshold_table", {}).items():
        lines += [f"### Confidence threshold ({s}, all conditions, `{report['keep']}`)", "",
                  "| threshold | command acceptance | acted | wrong actions | precision | "
                  "negatives acted |", "|---|---|---|---|---|---|"]
        for row in table:
            lines.append(f"| {row['threshold']:.1f} | {_pct(row['command_acceptance'])} | "
                         f"{_pct(row['acted'])} | {_pct(row['wrong_action_rate'])} | "
                         f"{_pct(row['precision'])} | {int(row['negatives_acted'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    path.write_text(render_markdown(report), encoding="utf-8")
