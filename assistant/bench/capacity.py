"""``hearth bench capacity``: how many people can talk to one server at once.

Raises the number of concurrently speaking streams step by step (``--steps 1,2,4,8,12,16``)
until P99 speech end -> action passes ``--p99-ms`` (1 s) or command acceptance falls below the
first step's, and reports the **knee** (the last step within both limits), the server's CPU per
stream, its RSS, and where the time goes at the knee (the server's per-stage timings from its
``metrics`` events and the ``/metrics`` counters of the step: full-window retries, shed passes).

It is the latency benchmark's machinery (``assistant.bench.latency``): the same private
Mosquitto, independent MQTT subscriber, real-time 20 ms frame pacing, synthesized commands and
ground truth, and one ``hearth serve`` started here (once per ``--variant``, kept across its
steps). Each stream says ``--utterances`` commands, one every ``--interval`` seconds (the pause
between commands is silence, as from a microphone), streams evenly staggered over the interval.
Reports: ``capacity.json`` (every step's full latency run) and ``capacity.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from assistant.bench import latency as lat
from assistant.bench.cli import command_line, module_main
from assistant.bench.latency_corpus import DEFAULT_VOICES, Synthesizer
from assistant.bench.latency_runner import (
    EmbeddedBrokerProcess,
    Mosquitto,
    Subscriber,
    machine_info,
    scrape_metrics,
)

logger = logging.getLogger(__name__)

DEFAULT_STEPS = "1,2,4,8,12,16"
DEFAULT_UTTERANCES = 3
#: A step with few streams says more commands per stream, so that its P99 rests on at least
#: this many commands (1 stream: 12 commands; 8 streams: 3 each).
DEFAULT_MIN_COMMANDS = 12
DEFAULT_INTERVAL_S = 8.0
DEFAULT_P99_MS = 1000.0
#: Acceptance may fall this far below the first step's before the step counts as failed
#: (one command in ~50 is the noise of the synthesized voices, not load).
DEFAULT_ACCEPTANCE_SLACK = 0.02
#: A turn slower than this is in the tail and gets its causes listed.
TAIL_MS = 500.0
#: Counters of ``/metrics`` whose change over a step explains its tail.
_COUNTERS = (
    "hearth_asr_retries_total",
    "hearth_asr_shed_total",
    "hearth_speculations_total",
    "hearth_audio_dropped_frames_total",
    "hearth_errors_total",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``hearth bench capacity``."""
    p.description = __doc__.split("\n\n")[0] if __doc__ else None
    p.add_argument("--steps", default=DEFAULT_STEPS, help="stream counts to try, in order")
    p.add_argument(
        "--utterances", type=int, default=DEFAULT_UTTERANCES, help="per stream, at least"
    )
    p.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL_S, help="s between a stream's commands"
    )
    p.add_argument(
        "--min-commands",
        type=int,
        default=DEFAULT_MIN_COMMANDS,
        help="commands per step at least (few streams say more each)",
    )
    p.add_argument("--p99-ms", type=float, default=DEFAULT_P99_MS, help="the latency limit")
    p.add_argument(
        "--acceptance-slack",
        type=float,
        default=DEFAULT_ACCEPTANCE_SLACK,
        help="how far acceptance may fall below the first step's (rate)",
    )
    p.add_argument(
        "--all-steps", action="store_true", help="run every step even after the limit is passed"
    )
    p.add_argument("--config", type=Path, help="home config (default: the demo home)")
    p.add_argument("--voices", default=",".join(DEFAULT_VOICES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--server-arg", dest="server_args", action="append", default=[], metavar="ARG")
    p.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a configuration to measure (repeatable; as hearth bench latency --variant); "
        "each variant gets its own server and all steps",
    )
    p.add_argument("--embedded-broker", action="store_true")
    p.add_argument("--utterance-timeout", type=float, default=20.0)
    p.add_argument("--out", type=Path, required=True, help="report directory")


def _latency_args(args: argparse.Namespace, streams: int) -> argparse.Namespace:
    """The latency benchmark's options for one step."""
    return argparse.Namespace(
        url=None,
        broker=None,
        server_pid=None,
        streams=streams,
        utterances=max(args.utterances, -(-args.min_commands // streams)),
        interval=args.interval,
        voices=args.voices,
        seed=args.seed,
        silence_ms=None,
        partials=False,
        reply_audio=False,
        sets=args.sets,
        server_args=args.server_args,
        utterance_timeout=args.utterance_timeout,
        out=args.out,
    )


def _delta(after: dict[str, float] | None, before: dict[str, float] | None) -> dict[str, float]:
    if not after:
        return {}
    before = before or {}
    return {k: round(v - before.get(k, 0.0), 4) for k, v in after.items()}


def stage_means_ms(delta: dict[str, float]) -> dict[str, float]:
    """Mean ms per stage over a step, from the ``hearth_stage_seconds`` histogram's change."""
    out: dict[str, float] = {}
    for key, total in delta.items():
        if key.startswith("hearth_stage_seconds_sum{"):
            label = key[len("hearth_stage_seconds_sum") :]
            count = delta.get("hearth_stage_seconds_count" + label, 0.0)
            if count > 0:
                stage = label.split('"')[1] if '"' in label else label
                out[stage] = round(total / count * 1000.0, 1)
    return out


def tail_causes(rows: list[dict[str, Any]], tail_ms: float = TAIL_MS) -> dict[str, Any]:
    """Classify the slow turns of a step by what their server timings show.

    * ``silence_path``: the turn ended on the end-of-turn silence (the first look did not
      stand), so it paid the silence and a final pass after it;
    * ``slow_final_pass``: the final transcript came > 300 ms after the endpoint (a first look
      still running, a queued pass, or a second opinion: the step's
      ``hearth_asr_retries_total`` says how many full-window retries ran);
    * ``slow_first_look``: ended early, but the look took > 300 ms (queueing behind others);
    * ``behind_real_time``: the endpoint event came > 200 ms after the audio it was decided on;
    * ``other``.
    """
    slow = [
        r
        for r in rows
        if r.get("speech_end_to_action_ms") is not None and r["speech_end_to_action_ms"] > tail_ms
    ]
    counts: dict[str, int] = {}
    examples = []
    for r in slow:
        t = r.get("server_timings_ms") or {}
        causes = []
        if r.get("endpoint_reason") == "silence":
            causes.append("silence_path")
        if (t.get("asr") or 0) > 300:
            causes.append("slow_final_pass")
        if r.get("endpoint_reason") == "complete" and (t.get("speculation_asr") or 0) > 300:
            causes.append("slow_first_look")
        behind = None
        if (
            r.get("speech_end_to_endpoint_event_ms") is not None
            and r.get("server_endpoint_audio_ms") is not None
        ):
            behind = r["speech_end_to_endpoint_event_ms"] - (
                r["server_endpoint_audio_ms"] - r["client_speech_end_ms"]
            )
            if behind > 200:
                causes.append("behind_real_time")
        for c in causes or ["other"]:
            counts[c] = counts.get(c, 0) + 1
        examples.append(
            {
                "ms": r["speech_end_to_action_ms"],
                "text": r["text"],
                "transcript": r["transcript"],
                "endpoint_reason": r.get("endpoint_reason"),
                "timings_ms": {k: v for k, v in t.items() if v is not None},
                "behind_real_time_ms": None if behind is None else round(behind, 1),
                "causes": causes or ["other"],
            }
        )
    examples.sort(key=lambda e: -float(e["ms"]))
    return {
        "threshold_ms": tail_ms,
        "turns": len(slow),
        "by_cause": counts,
        "slowest": examples[:8],
    }


def step_summary(run: dict[str, Any], streams: int, delta: dict[str, float]) -> dict[str, Any]:
    """The figures of one step that the capacity report compares."""
    m = run["measurements"]
    lat_ms = m["speech_end_to_action_ms"]
    acc = m["acceptance"]
    cpu = (run["resources"] or {}).get("server_cpu") or {}
    pct_one = cpu.get("percent_of_one_core")
    return {
        "streams": streams,
        "commands": acc["utterances"],
        "accepted": acc["accepted"],
        "acceptance": acc["rate"],
        "p50_ms": lat_ms.get("p50"),
        "p95_ms": lat_ms.get("p95"),
        "p99_ms": lat_ms.get("p99"),
        "max_ms": lat_ms.get("max"),
        "n": lat_ms.get("n"),
        "server_cpu_percent_of_one_core": pct_one,
        "server_cpu_percent_of_machine": cpu.get("percent_of_machine"),
        "cpu_per_stream_percent_of_one_core": None
        if pct_one is None
        else round(pct_one / streams, 1),
        "server_peak_rss_mb": (run["resources"] or {}).get("server_peak_rss_mb"),
        "errors": run["errors"]["count"],
        "dropped_frames": run["dropped_audio"]["server_dropped_frames"],
        "by_endpoint_reason": {
            k: {
                "count": v["count"],
                "p50_ms": v["speech_end_to_action_ms"].get("p50"),
                "p99_ms": v["speech_end_to_action_ms"].get("p99"),
            }
            for k, v in m["by_endpoint_reason"].items()
        },
        "server_stages_ms": {
            k: {q: v.get(q) for q in ("p50", "p95", "p99")}
            for k, v in m["server_stages_ms"].items()
        },
        "stage_means_ms": stage_means_ms(delta),
        "counters": {k: delta.get(k, 0.0) for k in _COUNTERS},
        "endpoint_behind_real_time_ms": {
            q: m["endpoint_behind_real_time_ms"].get(q) for q in ("p50", "p99")
        },
        "tail": tail_causes(m["utterances"]),
        "load_average": [round(x, 2) for x in _loadavg()],
    }


def _loadavg() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


def within(step: dict[str, Any], first: dict[str, Any] | None, args: argparse.Namespace) -> bool:
    """The step keeps P99 under the limit and acceptance at the first step's."""
    p99 = step["p99_ms"]
    if p99 is None or p99 > args.p99_ms:
        return False
    if step["errors"]:
        return False
    if first is None or first["acceptance"] is None or step["acceptance"] is None:
        return True
    return bool(step["acceptance"] >= first["acceptance"] - args.acceptance_slack)


class _VariantRun:
    """One variant's server and the steps measured on it so far."""

    def __init__(self, variant: lat.Variant, target: lat.Target) -> None:
        self.variant = variant
        self.target = target
        self.steps: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.done = False

    def measure_step(
        self,
        args: argparse.Namespace,
        n: int,
        pl: lat.Plan,
        expected: dict[str, list[tuple[str, str]]],
        subscriber: Subscriber,
        broker_pid: int | None,
    ) -> None:
        largs = _latency_args(args, n)
        before = scrape_metrics(self.target.url)
        logger.info("%s: %d streams", self.variant.name, n)
        self.target.variant = dataclasses.replace(self.variant, name=f"{self.variant.name}-{n}")
        (run,) = lat.measure(largs, [self.target], pl, expected, subscriber, broker_pid)
        step = step_summary(run, n, _delta(run.get("server_metrics"), before))
        step["within_limits"] = within(step, self.steps[0] if self.steps else None, args)
        self.steps.append(step)
        self.runs.append(run)
        _print_step(self.variant.name, step)
        if not step["within_limits"] and not args.all_steps:
            self.done = True

    def result(self) -> dict[str, Any]:
        knee = None
        for s in self.steps:
            if not s["within_limits"]:
                break
            knee = s
        return {
            "name": self.variant.name,
            "variant": self.variant.to_dict(),
            "server": dict(self.target.info),
            "steps": self.steps,
            "knee_streams": None if knee is None else knee["streams"],
            "knee": knee,
            "limit_reached": any(not s["within_limits"] for s in self.steps),
            "latency_runs": self.runs,
        }


def run_steps(
    args: argparse.Namespace,
    variants: list[lat.Variant],
    steps: list[int],
    workdir: Path,
    base_config: dict[str, Any],
    broker_url: str,
    broker_pid: int | None,
    config_path: Path,
    subscriber: Subscriber,
    synth: Synthesizer,
) -> list[dict[str, Any]]:
    """Every variant's server is started first; then at each step the variants take turns on
    the same audio (one after the other, so each has the server side of the machine to itself
    while measured, and all see the background load of the same minutes). A variant past the
    limits leaves (unless ``--all-steps``)."""
    vruns: list[_VariantRun] = []
    try:
        for v in variants:
            target = lat.start_target(_latency_args(args, 1), v, workdir, base_config, broker_url)
            vruns.append(_VariantRun(v, target))
        for n in steps:
            active = [vr for vr in vruns if not vr.done]
            if not active:
                break
            largs = _latency_args(args, n)
            pl = lat.make_plan(largs, synth)
            commands = {u.command.text: u.command for st in pl.utterances for u in st}
            expected = lat.expected_commands(config_path, list(commands.values()))
            for vr in active:
                vr.measure_step(args, n, pl, expected, subscriber, broker_pid)
    finally:
        for vr in vruns:
            vr.target.stop()
    return [vr.result() for vr in vruns]


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write ``capacity.json`` and ``capacity.md``."""
    out: Path = args.out
    try:
        steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    except ValueError:
        print(f"error: --steps wants comma-separated integers, got {args.steps!r}", file=sys.stderr)
        return 2
    if not steps or min(steps) < 1 or steps != sorted(set(steps)):
        print("error: --steps wants increasing stream counts >= 1", file=sys.stderr)
        return 2
    if args.utterances < 1 or args.interval <= 0:
        print("error: --utterances and --interval must be positive", file=sys.stderr)
        return 2
    try:
        variants = [lat.parse_variant(v) for v in args.variants] or [lat.Variant(name="default")]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "work"
    workdir.mkdir(exist_ok=True)
    config_path: Path = args.config
    if config_path is None:
        from devices.registry import demo_config_path

        config_path = demo_config_path()
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    raw["custom_intents"] = [
        str((config_path.parent / p).resolve()) for p in raw.get("custom_intents") or []
    ]
    report: dict[str, Any] = {
        "benchmark": "capacity",
        "command": command_line("capacity"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
        },
        "limits": {"p99_ms": args.p99_ms, "acceptance_slack": args.acceptance_slack},
        "variants": [],
    }
    broker: Mosquitto | EmbeddedBrokerProcess = (
        Mosquitto(workdir)
        if Mosquitto.available() and not args.embedded_broker
        else EmbeddedBrokerProcess(workdir)
    )
    subscriber: Subscriber | None = None
    try:
        broker.start()
        subscriber = Subscriber(broker.url, workdir / "arrivals.jsonl")
        subscriber.start()
        synth = Synthesizer()
        report["variants"] = run_steps(
            args,
            variants,
            steps,
            workdir,
            raw,
            broker.url,
            broker.pid,
            config_path,
            subscriber,
            synth,
        )
    finally:
        if subscriber is not None:
            subscriber.stop()
        broker.stop()
    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in _loadavg()]
    (out / "capacity.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    md = markdown(report)
    (out / "capacity.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {out / 'capacity.json'}, {out / 'capacity.md'}")
    return 0


def _f(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    """The human summary: per variant, the steps, the knee and where the time goes there."""
    m = report["machine"]
    lines = [
        "# Capacity",
        "",
        f"`{report['command']}`",
        "",
        f"{m.get('cpu_model')}, {m.get('logical_cores')} logical cores; load average at start "
        f"{m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}. "
        f"Limit: P99 speech end -> action <= {report['limits']['p99_ms']:.0f} ms, no errors, "
        "acceptance no lower than the first step's.",
        "",
    ]
    for v in report["variants"]:
        lines += [f"## {v['name']}", ""]
        lines += [
            "| streams | commands | accepted | P50 ms | P95 ms | P99 ms | server CPU % of one "
            "core | per stream | peak RSS MB | silence-ended | retries | shed | load | within |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for s in v["steps"]:
            sil = (s["by_endpoint_reason"].get("silence") or {}).get("count", 0)
            lines.append(
                f"| {s['streams']} | {s['commands']} | {s['accepted']} | {_f(s['p50_ms'])} | "
                f"{_f(s['p95_ms'])} | {_f(s['p99_ms'])} | "
                f"{_f(s['server_cpu_percent_of_one_core'])} | "
                f"{_f(s['cpu_per_stream_percent_of_one_core'])} | {_f(s['server_peak_rss_mb'])} | "
                f"{sil} | {_f(s['counters'].get('hearth_asr_retries_total'))} | "
                f"{_f(s['counters'].get('hearth_asr_shed_total'))} | "
                f"{s['load_average'][0]} | {'yes' if s['within_limits'] else '**no**'} |"
            )
        knee = v["knee"]
        lines.append("")
        if knee is None:
            lines.append("**Knee: none** (the first step is already past the limits).")
        else:
            more = "" if v["limit_reached"] else " (no step passed the limits: the knee is higher)"
            lines.append(f"**Knee: {knee['streams']} speaking streams**{more}.")
        focus = knee or (v["steps"][0] if v["steps"] else None)
        if focus is not None:
            lines += ["", f"Where the time goes at {focus['streams']} streams (server, ms):", ""]
            lines.append("| stage | P50 | P95 | P99 | mean (/metrics) |")
            lines.append("|---|---:|---:|---:|---:|")
            for k, q in focus["server_stages_ms"].items():
                lines.append(
                    f"| {k} | {_f(q['p50'])} | {_f(q['p95'])} | {_f(q['p99'])} | "
                    f"{_f(focus['stage_means_ms'].get(k))} |"
                )
        for s in v["steps"]:
            t = s["tail"]
            if not t["turns"]:
                continue
            lines += [
                "",
                f"Tail at {s['streams']} streams: {t['turns']} turns over {t['threshold_ms']:.0f}"
                f" ms; causes {t['by_cause']}",
            ]
            for e in t["slowest"][:4]:
                lines.append(
                    f'- {e["ms"]:.0f} ms "{e["text"]}" heard {e["transcript"]!r}, ended by '
                    f"{e['endpoint_reason']}, {e['timings_ms']}"
                )
        lines.append("")
    return "\n".join(lines)


def _print_step(name: str, s: dict[str, Any]) -> None:
    print(
        f"[{name}] {s['streams']} streams: P50 {s['p50_ms']} P95 {s['p95_ms']} P99 {s['p99_ms']} "
        f"ms; accepted {s['accepted']}/{s['commands']}; CPU {s['server_cpu_percent_of_one_core']}"
        f" % of one core; RSS {s['server_peak_rss_mb']} MB; "
        f"{'within' if s['within_limits'] else 'PAST'} limits",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.bench.capacity ...``: the same as ``hearth bench capacity``."""
    return module_main("hearth bench capacity", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
