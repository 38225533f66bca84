"""Writing the latency report: ``latency.json``, ``latency.md`` (markdown tables) and
``latency.png`` (histograms; matplotlib with the Agg backend, imported lazily)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Targets from the latency issue (2 cores, bundled tiny.en int8).
TARGETS: dict[str, float] = {
    "one_stream_p50_ms": 210.0,
    "one_stream_p99_ms": 300.0,
    "many_streams_p99_ms": 1000.0,
    "peak_rss_mb": 1536.0,
    "idle_200_cpu_percent": 5.0,
    "startup_s": 5.0,
}


def _f(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def evaluate_targets(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each applicable target with the measured value and whether it is met."""
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, value: float | None, limit: float, *, at_most: bool = True) -> None:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        out[name] = {"value": value, "target": limit, "met": met}

    m = run.get("measurements") or {}
    lat = m.get("speech_end_to_action_ms") or {}
    if run.get("streams") == 1:
        put("one_stream_p50_ms", lat.get("p50"), TARGETS["one_stream_p50_ms"])
        put("one_stream_p99_ms", lat.get("p99"), TARGETS["one_stream_p99_ms"])
    elif run.get("streams"):
        put("many_streams_p99_ms", lat.get("p99"), TARGETS["many_streams_p99_ms"])
        put("errors", float(run.get("errors", {}).get("count", 0)), 0.0)
        put(
            "dropped_audio_events",
            float(run.get("dropped_audio", {}).get("server_overflow", 0)),
            0.0,
        )
    rss = (run.get("resources") or {}).get("server_peak_rss_mb")
    if rss is not None:
        put("peak_rss_mb", rss, TARGETS["peak_rss_mb"])
    start = (run.get("server") or {}).get("startup_to_ready_s")
    if start is not None:
        put("startup_s", start, TARGETS["startup_s"])
    return out


def markdown(report: dict[str, Any]) -> str:
    """A compact markdown rendering of the report (the tables docs/benchmarks.md quotes)."""
    lines = ["# Latency benchmark", ""]
    mach = report.get("machine", {})
    lines.append(
        f"Machine: {mach.get('cpu_model')}, {mach.get('logical_cores')} logical cores, "
        f"load at start {mach.get('load_average_at_start')}. Command: `{report.get('command')}`"
    )
    lines.append("")
    runs = report.get("runs", [])
    if runs:
        lines += [
            "| variant | streams | n | accepted | P50 ms | P95 ms | P99 ms | mean ms "
            "| speech end→endpoint P50 ms | endpoint→action P50/P99 ms | errors "
            "| server CPU % (1 core) | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in runs:
            m = r.get("measurements", {})
            lat = m.get("speech_end_to_action_ms", {})
            ep = m.get("endpoint_to_action_ms", {})
            se = m.get("speech_end_to_endpoint_event_ms", {})
            acc = m.get("acceptance", {})
            res = r.get("resources", {})
            lines.append(
                f"| {r['name']} | {r['streams']} | {_f(lat.get('n'))} "
                f"| {acc.get('accepted')}/{acc.get('utterances')} "
                f"| {_f(lat.get('p50'))} | {_f(lat.get('p95'))} | {_f(lat.get('p99'))} "
                f"| {_f(lat.get('mean'))} | {_f(se.get('p50'))} "
                f"| {_f(ep.get('p50'))} / {_f(ep.get('p99'))} "
                f"| {r.get('errors', {}).get('count', 0)} "
                f"| {_f((res.get('server_cpu') or {}).get('percent_of_one_core'))} "
                f"| {_f(res.get('server_peak_rss_mb'))} |"
            )
        lines.append("")
        lines += ["Server per-stage timings (ms, utterances that acted), P50 / P99:", ""]
        stage_names: list[str] = []
        for r in runs:
            for k in r.get("measurements", {}).get("server_stages_ms", {}):
                if k not in stage_names:
                    stage_names.append(k)
        lines.append("| variant | " + " | ".join(stage_names) + " |")
        lines.append("|---|" + "---|" * len(stage_names))
        for r in runs:
            st = r.get("measurements", {}).get("server_stages_ms", {})
            cells = [
                f"{_f(st.get(k, {}).get('p50'))} / {_f(st.get(k, {}).get('p99'))}"
                for k in stage_names
            ]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    if runs:
        lines += [
            "Diagnostics (ms, P50 / P99): speech end → speech.stopped received, split into the "
            "audio the server consumed after the true speech end before deciding and the time "
            "it ran behind real time; where the server's VAD put speech end minus the true end; "
            "outside minus the server's own speech_end_to_action; client frame lateness. "
            "Audio: bytes sent / received by the server, frames it dropped.",
            "",
            "| variant | speech end→endpoint | = audio after end | + behind real time "
            "| VAD end offset | outside − server | frame lateness "
            "| bytes sent / received | dropped frames | spurious utterances |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in runs:
            m = r.get("measurements", {})
            d = r.get("dropped_audio", {})

            def pp(key: str, m: dict[str, Any] = m) -> str:
                x = m.get(key) or {}
                return f"{_f(x.get('p50'))} / {_f(x.get('p99'))}"

            late = d.get("client_frame_lateness_ms") or {}
            lines.append(
                f"| {r['name']} | {pp('speech_end_to_endpoint_event_ms')} "
                f"| {pp('endpoint_audio_after_speech_end_ms')} "
                f"| {pp('endpoint_behind_real_time_ms')} "
                f"| {pp('server_vad_end_offset_ms')} | {pp('outside_minus_server_ms')} "
                f"| {_f(late.get('p50'), 1)} / {_f(late.get('p99'), 1)} "
                f"| {_f(d.get('bytes_sent'))} / {_f(d.get('server_bytes_received'))} "
                f"| {_f(d.get('server_dropped_frames'))} | {r.get('spurious_utterances')} |"
            )
        lines.append("")
    lines += _replies(runs)
    for r in runs:
        early = r.get("measurements", {}).get("acted_before_speech_end") or []
        if early:
            lines.append(
                f"- `{r['name']}`: {len(early)} command(s) reached the broker before the speaker "
                "finished (left out of the percentiles): "
                + "; ".join(
                    f"{e['text']!r} → {e['transcript']!r} ({_f(e['ms'])} ms)" for e in early[:3]
                )
            )
        by_reason = r.get("measurements", {}).get("by_endpoint_reason") or {}
        if by_reason:
            parts = [
                f"{k} {v['count']}× (P50 {_f(v['speech_end_to_action_ms'].get('p50'))} ms)"
                for k, v in by_reason.items()
            ]
            lines.append(f"- `{r['name']}` turns ended by: " + ", ".join(parts))
    for r in runs:
        eff = (r.get("server") or {}).get("effective_settings") or {}
        asr = eff.get("asr") or {}
        td = (eff.get("assistant") or {}).get("turn_detection") or {}
        sess = r.get("session_update") or {}
        lines.append(
            f"- `{r['name']}`: model `{'/'.join(Path(str(eff.get('asr_model', '?'))).parts[-2:])}` "
            f"device {asr.get('device')} compute {asr.get('compute_type') or 'default'} "
            f"threads {asr.get('cpu_threads')} workers {asr.get('num_workers')} "
            f"beam {asr.get('beam_size')} window {asr.get('window')}; server silence_ms "
            f"{td.get('silence_ms')}; session {json.dumps(sess, separators=(',', ':'))}; "
            f"server args {eff.get('server_args')}; overrides "
            f"{json.dumps((r.get('variant') or {}).get('config_overrides') or {})}"
        )
    if runs:
        lines.append("")
    cal = report.get("asr_calibration")
    if cal:
        parts = []
        for mode, w in cal.get("windows", {}).items():
            c = w.get("compute_ms", {})
            parts.append(f"{mode} P50 {_f(c.get('p50'))} / P95 {_f(c.get('p95'))} ms")
        lines += [
            f"ASR alone (no server running, {cal.get('utterances')} utterances, one call each): "
            + "; ".join(parts)
            + ".",
            "",
        ]
    comp = report.get("comparison")
    if comp:
        lines += [
            f"Ratios to `{comp['baseline']}` (same run, same audio):",
            "",
            "| variant | P50 | P95 | P99 | acceptance |",
            "|---|---|---|---|---|",
        ]
        for name, c in comp["ratios"].items():
            lines.append(
                f"| {name} | {_f(c.get('p50'), 2)} | {_f(c.get('p95'), 2)} "
                f"| {_f(c.get('p99'), 2)} | {_f(c.get('acceptance'), 2)} |"
            )
        lines.append("")
    idle = report.get("idle")
    if idle:
        cpu = idle.get("server_cpu", {})
        lines.append(
            f"Idle: {idle['connections']} connections opened in {_f(idle.get('open_s'), 1)} s; "
            f"server CPU over {_f(cpu.get('wall_s'), 0)} s: "
            f"{_f(cpu.get('percent_of_one_core'), 2)} % of one core "
            f"({_f(cpu.get('percent_of_machine'), 2)} % of the machine); "
            f"peak RSS {_f(idle.get('server_peak_rss_mb'))} MB."
        )
        lines.append("")
    targets = report.get("targets") or {}
    if targets:
        lines += ["| target | value | limit | met |", "|---|---|---|---|"]
        for run_name, ts in targets.items():
            for k, t in ts.items():
                met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
                lines.append(
                    f"| {run_name}: {k} | {_f(t['value'], 1)} | {_f(t['target'])} | {met} |"
                )
        lines.append("")
    return "\n".join(lines)


#: Server stages that add up (roughly) to speech end -> action, in pipeline order.
_STACKED_STAGES: tuple[str, ...] = ("endpoint_wait", "asr", "intent", "dispatch")


def plot(report: dict[str, Any], path: Path) -> bool:
    """Left: histogram of speech-end -> action per variant, measured from outside. Right: the
    server's median stage times per variant, stacked, beside the outside P50. False when
    there is nothing to plot."""
    runs = [
        r
        for r in report.get("runs", [])
        if any(
            u.get("speech_end_to_action_ms") is not None
            for u in r.get("measurements", {}).get("utterances", [])
        )
    ]
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(12, 4.8), dpi=100, gridspec_kw={"width_ratios": [3, 2]}
    )
    values = {
        r["name"]: [
            u["speech_end_to_action_ms"]
            for u in r["measurements"]["utterances"]
            if u.get("speech_end_to_action_ms") is not None
        ]
        for r in runs
    }
    positive = [x for v in values.values() for x in v if x > 0]
    hi = max(max(positive, default=1.0) * 1.05, 350.0)
    lo = max(min(positive, default=1.0) * 0.9, 10.0)
    # Variants an order of magnitude apart (or a long tail) are unreadable on a linear axis.
    log = hi / lo > 12
    bins: Any = np.geomspace(lo, hi, 45) if log else np.linspace(0.0, hi, 41)
    for r in runs:
        s = r["measurements"]["speech_end_to_action_ms"]
        n_streams = r["streams"]
        ax.hist(
            [x for x in values[r["name"]] if x > 0],
            bins=bins,
            alpha=0.55,
            label=f"{r['name']} ({n_streams} stream{'s' if n_streams > 1 else ''}): "
            f"P50 {_f(s.get('p50'))}, P99 {_f(s.get('p99'))} ms, n={s.get('n')}",
        )
    if log:
        ax.set_xscale("log")
    ax.axvline(
        TARGETS["one_stream_p99_ms"],
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label="P99 target, 1 stream (300 ms)",
    )
    if any(r["streams"] > 1 for r in runs) and hi >= TARGETS["many_streams_p99_ms"]:
        ax.axvline(
            TARGETS["many_streams_p99_ms"],
            color="tab:purple",
            linestyle="--",
            linewidth=1,
            label="P99 target, 50 streams (1 s)",
        )
    ax.set_xlabel("speech end → command at the broker (ms" + (", log scale)" if log else ")"))
    ax.set_ylabel("utterances")
    ax.set_title("Measured from outside")
    ax.legend(fontsize=7)

    names = [r["name"] for r in runs]
    bottoms = [0.0] * len(runs)
    for stage in _STACKED_STAGES:
        heights = [
            float((r["measurements"]["server_stages_ms"].get(stage) or {}).get("p50") or 0.0)
            for r in runs
        ]
        bx.bar(names, heights, bottom=bottoms, label=f"{stage} (P50)")
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    outside = [float(r["measurements"]["speech_end_to_action_ms"].get("p50") or 0) for r in runs]
    bx.scatter(names, outside, color="black", marker="_", s=600, zorder=3, label="outside P50")
    bx.set_ylim(0, max([*bottoms, *outside, 1.0]) * 1.45)  # room for the legend above
    bx.set_ylabel("ms")
    bx.set_title("Server stages (P50)")
    bx.tick_params(axis="x", labelrotation=20, labelsize=8)
    bx.legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle("Hearth speech-end → action latency")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """Write the three report files into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "latency.json", out / "latency.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(report) + "\n", encoding="utf-8")
    png = out / "latency.png"
    if plot(report, png):
        paths.append(png)
    return paths


def _replies(runs: list[dict[str, Any]]) -> list[str]:
    """Spoken replies (``--reply-audio``): where the time to the first reply audio goes, and
    the slowest turns split the same way."""
    timed = [r for r in runs if (r.get("measurements", {}).get(
        "speech_end_to_first_reply_audio_ms") or {}).get("n")]  # fmt: skip
    if not timed:
        return []
    lines = [
        "Spoken replies (ms, P50 / P95 / P99, accepted turns, as received): speech end → reply "
        "text and → first reply audio; action → reply text (the devices' confirmation); reply "
        "text → first audio (synthesis, or the cache).",
        "",
        "| variant | → reply text | → first audio | action → text | text → first audio "
        "| replies from the cache | TTS real-time factor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in timed:
        m = r["measurements"]

        def ppp(key: str, m: dict[str, Any] = m) -> str:
            x = m.get(key) or {}
            return f"{_f(x.get('p50'))} / {_f(x.get('p95'))} / {_f(x.get('p99'))}"

        lines.append(
            f"| {r['name']} | {ppp('speech_end_to_reply_text_ms')} "
            f"| {ppp('speech_end_to_first_reply_audio_ms')} | {ppp('action_to_reply_text_ms')} "
            f"| {ppp('reply_text_to_first_audio_ms')} | {m.get('replies_from_cache')} "
            f"| {m.get('tts_real_time_factor')} |"
        )
    lines.append("")
    for r in timed:
        slow = r["measurements"].get("slowest_replies") or []
        if slow:
            lines.append(
                f"- `{r['name']}` slowest first reply audio: "
                + "; ".join(
                    f"{s['reply_text']!r} {_f(s['speech_end_to_first_reply_audio_ms'])} = "
                    f"{_f(s['speech_end_to_action_ms'])} to act ({s['endpoint_reason']}) + "
                    f"{_f(s['action_to_reply_text_ms'])} confirm + "
                    f"{_f(s['reply_text_to_first_audio_ms'])} synthesis"
                    f"{'' if s['cached_sentences'] else ' (not cached)'}"
                    for s in slow
                )
            )
    lines.append("")
    return lines


def comparison(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each variant's latency percentiles and acceptance as ratios of the first run's."""
    if len(runs) < 2:
        return None
    base = runs[0]
    b = base["measurements"]["speech_end_to_action_ms"]
    b_acc = base["measurements"]["acceptance"]["rate"]
    ratios = {}
    for r in runs[1:]:
        m = r["measurements"]["speech_end_to_action_ms"]
        acc = r["measurements"]["acceptance"]["rate"]
        ratios[r["name"]] = {
            k: (round(m[k] / b[k], 3) if m.get(k) and b.get(k) else None)
            for k in ("p50", "p95", "p99", "mean")
        } | {"acceptance": round(acc / b_acc, 3) if acc is not None and b_acc else None}
    return {"baseline": base["name"], "ratios": ratios}


def print_run(r: dict[str, Any]) -> None:
    """One run's headline figures on stderr, as the benchmark goes."""
    m = r["measurements"]
    lat = m["speech_end_to_action_ms"]
    print(
        f"[{r['name']}] {r['streams']} stream(s): speech_end->action P50 {lat['p50']} "
        f"P95 {lat['p95']} P99 {lat['p99']} ms (n={lat['n']}); accepted "
        f"{m['acceptance']['accepted']}/{m['acceptance']['utterances']}; errors "
        f"{r['errors']['count']}",
        file=sys.stderr,
        flush=True,
    )
    audio = m.get("speech_end_to_first_reply_audio_ms") or {}
    if audio.get("n"):
        print(
            f"[{r['name']}] speech_end->first reply audio P50 {audio['p50']} "
            f"P95 {audio['p95']} P99 {audio['p99']} ms (n={audio['n']}); "
            f"TTS real-time factor {m.get('tts_real_time_factor')}",
            file=sys.stderr,
            flush=True,
        )
