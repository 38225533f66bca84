"""Markdown rendering of the accuracy report (``accuracy.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100.0 * float(x):.1f} %"


def _cond_label(c: str) -> str:
    return c if c in ("clean", "average_24_6") else f"{c} dB"


def render_markdown(report: dict[str, Any]) -> str:
    """Tables: the server's figures per set and condition, published figures, the
    confidence-threshold table."""
    lines: list[str] = ["# Speech → intent accuracy", ""]
    overrides = report.get("settings", {}).get("overrides") or []
    lines.append(f"Command: `{report.get('command', '')}`; settings: the server's"
                 + "".join(f", `{o}`" for o in overrides))
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
