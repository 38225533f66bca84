"""``hearth bench latency``: speech-end -> action latency of real-time streams, measured from
the outside (definitions in docs/benchmarks.md, "Latency").

Without ``--url`` the benchmark starts everything itself on free loopback ports and stops it at
the end: a private Mosquitto (or the project's embedded broker when Mosquitto is missing), an
independent MQTT subscriber process, and ``hearth serve`` with the demo home (simulated devices)
pointed at that broker, once per ``--variant``.

Each of ``--streams`` connections is a microphone: 20 ms PCM frames paced by the wall clock,
silence between commands, a synthesized command every ``--interval`` seconds. For each command
the client knows when its last voiced frame left (``speech_end``); the subscriber stamps when
the command reached the broker (``action``); the ``speech.stopped`` event's arrival is the
endpoint as seen from outside. Latencies are taken on one monotonic clock shared by these
processes (Linux ``CLOCK_MONOTONIC``).

Variants (``--variant NAME=SPEC``) compare settings within one run on the same audio. SPEC is a
space-separated list of tokens:

* ``dotted.key=value``: an override of the home config given to the server, value as YAML
  (``assistant.asr.extra.window=full``, ``assistant.turn_detection.silence_ms=300``);
* ``@key=value``: a session setting sent in ``session.update`` (``@silence_ms=300``,
  ``@partials=true``, ``@threshold=0.6``);
* anything else: passed verbatim to ``hearth serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.bench import latency_report
from assistant.bench.cli import command_line, module_main
from assistant.bench.latency_corpus import (
    DEFAULT_VOICES,
    Synthesizer,
    Utterance,
    plan,
)
from assistant.bench.latency_idle import run_idle
from assistant.bench.latency_runner import (
    CpuWindow,
    EmbeddedBrokerProcess,
    HearthServer,
    Mosquitto,
    ProcessMonitor,
    Stream,
    Subscriber,
    machine_info,
    own_cpu_seconds,
    pump,
    scrape_metrics,
)
from assistant.bench.latency_stats import (
    FRAME_MS,
    Arrival,
    UtteranceRecord,
    analyze,
    expectation_for,
    match_arrivals,
    summarize,
)
from assistant.bench.latency_variants import (
    Variant,
    _parse_sets,
    apply_overrides,
    effective_settings,
    expected_commands,
    parse_variant,
)

logger = logging.getLogger(__name__)


DEFAULT_UTTERANCES = 10


#: One stream: a command every 4 s leaves ~2 s after a ~1.5 s command for the endpoint and
#: the action; more streams: every ~10 s per stream, as the issue's load model says.
DEFAULT_INTERVAL_ONE_S = 4.0


DEFAULT_INTERVAL_MANY_S = 10.0


DEFAULT_IDLE_SECONDS = 30.0


#: Silence before a stream's first command (the VAD and the session settle).
LEAD_MS = 1000


#: A command with no ``metrics`` event this long after its speech end counts as lost.
DEFAULT_UTTERANCE_TIMEOUT_S = 20.0


# -- arguments ---------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``hearth bench latency``."""
    p.description = __doc__.split("\n\n")[0] if __doc__ else None
    p.add_argument("--url", help="measure this running server (ws://...) instead of starting one")
    p.add_argument(
        "--broker",
        help="MQTT broker the server publishes to (mqtt://host:port); "
        "with --url it is required, without it replaces the private Mosquitto",
    )
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, for CPU/RSS")
    p.add_argument("--config", type=Path, help="home config (default: the demo home)")
    p.add_argument("--streams", type=int, default=1, help="concurrent real-time streams")
    p.add_argument(
        "--utterances",
        type=int,
        help=f"commands per stream (default {DEFAULT_UTTERANCES}; 0 with --idle-connections)",
    )
    p.add_argument(
        "--interval",
        type=float,
        help="seconds between a stream's commands "
        f"(default {DEFAULT_INTERVAL_ONE_S} for 1 stream, "
        f"{DEFAULT_INTERVAL_MANY_S} for more)",
    )
    p.add_argument(
        "--voices",
        default=",".join(DEFAULT_VOICES),
        help="comma-separated: piper:joe, espeak:<voice>",
    )
    p.add_argument("--seed", type=int, default=0, help="which commands each stream says")
    p.add_argument("--silence-ms", type=int, help="session endpoint silence (session.update)")
    p.add_argument("--partials", action="store_true", help="ask for partial transcripts")
    p.add_argument(
        "--reply-audio",
        action="store_true",
        help="ask for spoken replies (16 kHz) and report speech end -> first reply audio "
        "and the voice's real-time factor",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="home config override for the started server, e.g. "
        "assistant.asr.threads=2 (repeatable)",
    )
    p.add_argument(
        "--server-arg",
        dest="server_args",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for hearth serve (repeatable)",
    )
    p.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a configuration to compare (repeatable; see "
        "module docs): dotted.key=value, @session_key=value, server args",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="run all variants' servers at once and let them take turns utterance by "
        "utterance (same audio, same machine noise; best for comparing variants)",
    )
    p.add_argument(
        "--embedded-broker",
        action="store_true",
        help="use the embedded broker even when Mosquitto is installed",
    )
    p.add_argument(
        "--idle-connections",
        type=int,
        default=0,
        metavar="M",
        help="also measure the server CPU with M idle connections",
    )
    p.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    p.add_argument(
        "--calibrate-asr",
        action="store_true",
        help="first time the ASR alone (trimmed and full window) on the same audio, "
        "to tell ASR queueing from ASR compute",
    )
    p.add_argument("--utterance-timeout", type=float, default=DEFAULT_UTTERANCE_TIMEOUT_S)
    p.add_argument("--out", type=Path, required=True, help="report directory")


# -- one variant -------------------------------------------------------------------------


@dataclass
class Plan:
    utterances: list[list[Utterance]]
    start_frames: list[list[int]]
    interval_s: float


def make_plan(args: argparse.Namespace, synth: Synthesizer) -> Plan:
    n = args.streams
    k = args.utterances
    interval = args.interval or (DEFAULT_INTERVAL_ONE_S if n == 1 else DEFAULT_INTERVAL_MANY_S)
    voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    said = plan(n, k, voices, seed=args.seed)
    utts = [[synth.synth(cmd, voice) for cmd, voice in stream] for stream in said]
    frames_per_interval = round(interval * 1000 / FRAME_MS)
    lead = LEAD_MS // FRAME_MS
    stagger = frames_per_interval / n  # streams take turns, evenly spread over an interval
    starts = [
        [lead + round(s * stagger) + j * frames_per_interval for j in range(k)] for s in range(n)
    ]
    longest = max((u.voiced_ms for stream in utts for u in stream), default=0.0)
    if longest > interval * 1000 - 1500:
        logger.warning(
            "interval %.1f s leaves < 1.5 s after the longest command (%.0f ms)", interval, longest
        )
    return Plan(utterances=utts, start_frames=starts, interval_s=interval)


async def stream_run(groups: list[list[Stream]], timeout_s: float, tail_ms: int) -> dict[str, Any]:
    """Open every group's streams, speak the plans in real time on one frame clock, close.
    Returns pump statistics (the streams keep what they observed)."""
    streams = [st for g in groups for st in g]
    sem = asyncio.Semaphore(20)

    async def open_one(st: Stream) -> None:
        async with sem:
            await st.open()

    await asyncio.gather(*(open_one(st) for st in streams))
    try:
        stats = await pump(streams, utterance_timeout_s=timeout_s, tail_frames=tail_ms // FRAME_MS)
    finally:
        await asyncio.gather(*(st.close() for st in streams))
    return {
        "frames_per_stream": stats.frames,
        "late_frames": stats.late_frames,
        "frame_lateness_ms": summarize(stats.lateness_ms),
    }


def _errors(streams: list[Stream]) -> dict[str, Any]:
    all_errs = [e for s in streams for e in s.errors]
    all_errs += [e for s in streams for r in s.records for e in r.errors]
    by_code: dict[str, int] = {}
    for e in all_errs:
        code = str(e.get("code"))
        by_code[code] = by_code.get(code, 0) + 1
    closed = [
        f"stream {s.index}: {s.closed_reason}"
        for s in streams
        if s.closed_reason not in (None, "1000")
    ]
    return {
        "count": len(all_errs),
        "by_code": by_code,
        "connections_closed": closed,
        "examples": [{"code": e.get("code"), "message": e.get("message")} for e in all_errs[:10]],
    }


@dataclass
class Target:
    """One variant's server (started here, or the ``--url`` one) and session settings."""

    variant: Variant
    url: str
    pid: int | None
    session_update: dict[str, Any]
    server: HearthServer | None = None
    info: dict[str, Any] = field(default_factory=dict)
    monitor: ProcessMonitor | None = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def session_update_for(args: argparse.Namespace, variant: Variant) -> dict[str, Any]:
    msg = variant.session_update()
    if args.silence_ms is not None and "silence_ms" not in variant.session:
        msg.setdefault("turn_detection", {})["silence_ms"] = args.silence_ms
    if args.partials and "partials" not in variant.session:
        msg["partials"] = True
    if getattr(args, "reply_audio", False):
        msg["reply"] = {"audio": True, "sample_rate": 16000}
    return msg


def start_target(
    args: argparse.Namespace,
    variant: Variant,
    workdir: Path,
    base_config: dict[str, Any] | None,
    broker_url: str | None,
) -> Target:
    """Start ``hearth serve`` for a variant (unless ``--url``) and wait until it is ready."""
    session_update = session_update_for(args, variant)
    if args.url is not None:
        if variant.config_overrides or variant.server_args:
            raise SystemExit(
                f"variant {variant.name}: server settings need a started server (leave out --url)"
            )
        return Target(variant, args.url, args.server_pid, session_update)
    assert base_config is not None and broker_url is not None
    overrides = {"mqtt.url": broker_url, **dict(_parse_sets(args.sets)), **variant.config_overrides}
    cfg = apply_overrides(base_config, overrides)
    cfg_path = workdir / f"config-{variant.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    server_args = [*args.server_args, *variant.server_args]
    server = HearthServer(cfg_path, workdir / f"server-{variant.name}.log", server_args)
    logger.info("starting %s", shlex.join(server.command))
    start = server.start()
    info = {
        "command": shlex.join(server.command),
        "config_overrides": overrides,
        "effective_settings": effective_settings(cfg, server_args),
        "startup_to_ready_s": None if start.healthz_s is None else round(start.healthz_s, 2),
        "healthz": start.healthz,
        "log": str(server.log_path),
    }
    return Target(variant, server.url, server.pid, session_update, server, info)


def measure(
    args: argparse.Namespace,
    targets: list[Target],
    pl: Plan,
    expected: dict[str, list[tuple[str, str]]],
    subscriber: Subscriber,
    broker_pid: int | None,
) -> list[dict[str, Any]]:
    """Speak the plan to every target at once and report one run per target.

    With one target this is a plain run. With several (``--interleave``) each target hears the
    whole plan, its utterances shifted so that the targets take turns: utterance ``j`` of a
    stream goes to target ``v`` at slot ``j * V + v``. Every variant then sees the same audio and
    the same background noise of the machine, which is what makes their ratios trustworthy here.
    """
    n_targets = len(targets)
    frames_per_interval = round(pl.interval_s * 1000 / FRAME_MS)
    groups: list[list[Stream]] = []
    for v, t in enumerate(targets):
        group = []
        for s, (utts, starts) in enumerate(zip(pl.utterances, pl.start_frames, strict=True)):
            shifted = [
                starts[0] + (j * n_targets + v) * frames_per_interval for j in range(len(starts))
            ]
            group.append(Stream(v * len(pl.utterances) + s, t.url, utts, shifted, t.session_update))
        groups.append(group)
    broker_mon = ProcessMonitor(broker_pid) if broker_pid else None
    for t in targets:
        t.monitor = ProcessMonitor(t.pid) if t.pid else None
        if t.monitor:
            t.monitor.start()
    cpu0 = [t.monitor.cpu_seconds() if t.monitor else 0.0 for t in targets]
    bcpu0 = broker_mon.cpu_seconds() if broker_mon else 0.0
    own0 = own_cpu_seconds()
    silence = max(
        int((t.session_update.get("turn_detection") or {}).get("silence_ms") or 1000)
        for t in targets
    )
    t0 = time.monotonic()
    pump_stats = asyncio.run(stream_run(groups, args.utterance_timeout, silence + 2000))
    wall = time.monotonic() - t0
    cores = machine_info()["logical_cores"] or 1
    broker_cpu = CpuWindow(broker_mon.cpu_seconds() - bcpu0, wall) if broker_mon else None
    client_cpu = CpuWindow(own_cpu_seconds() - own0, wall)
    per_target: list[dict[str, Any]] = []
    for t, c0 in zip(targets, cpu0, strict=True):
        cpu = CpuWindow(t.monitor.cpu_seconds() - c0, wall) if t.monitor else None
        peak = t.monitor.stop() if t.monitor else None
        per_target.append(
            {
                "server_cpu": cpu.to_dict(cores) if cpu else None,
                "server_peak_rss_mb": None if peak is None else round(peak / 2**20, 1),
                "broker_cpu": broker_cpu.to_dict(cores) if broker_cpu else None,
                "client_cpu": client_cpu.to_dict(cores),
                "metrics": scrape_metrics(t.url),
            }
        )
    time.sleep(0.3)  # let the subscriber flush its last lines
    arrivals = [
        Arrival(a["topic"], a["payload"], float(a["t"]))
        for a in subscriber.arrivals()
        if t0 <= float(a["t"]) <= time.monotonic()
    ]
    # Attribute arrivals over all targets at once: they share the broker and the devices.
    all_records = [r for g in groups for st in g for r in st.records]
    exps = [expectation_for(r, expected[r.text], args.utterance_timeout) for r in all_records]
    matched = match_arrivals([e for e in exps if e is not None], arrivals)
    runs = []
    for t, group, res in zip(targets, groups, per_target, strict=True):
        records: list[UtteranceRecord] = [r for st in group for r in st.records]
        # Raw observations beside the report, so it can be re-derived without re-running.
        (args.out / "work" / f"records-{t.variant.name}.json").write_text(
            json.dumps([dataclasses.asdict(r) for r in records], default=str), encoding="utf-8"
        )
        measurements = analyze(
            records,
            [expected[r.text] for r in records],
            arrivals,
            timeout_s=args.utterance_timeout,
            matched=matched,
        )
        errors = _errors(group)
        server_metrics = res.pop("metrics")
        bytes_sent = sum(st.bytes_sent for st in group)
        run: dict[str, Any] = {
            "name": t.variant.name,
            "variant": t.variant.to_dict(),
            "streams": len(group),
            "utterances_per_stream": len(pl.utterances[0]) if pl.utterances else 0,
            "interval_s": pl.interval_s,
            "interleaved_with": [o.variant.name for o in targets if o is not t],
            "session_update": t.session_update,
            "server": t.info,
            "duration_s": round(wall, 1),
            "measurements": measurements,
            "errors": errors,
            "dropped_audio": {
                "server_overflow": errors["by_code"].get("audio_overflow", 0),
                "server_dropped_frames": None
                if server_metrics is None
                else server_metrics.get("hearth_audio_dropped_frames_total"),
                "bytes_sent": bytes_sent,
                "server_bytes_received": None
                if server_metrics is None
                else server_metrics.get("hearth_audio_received_bytes_total"),
                "client_late_frames": pump_stats["late_frames"],
                "client_frame_lateness_ms": pump_stats["frame_lateness_ms"],
            },
            "spurious_utterances": sum(len(st.spurious) for st in group),
            "resources": res,
            "mqtt_messages_seen": len(arrivals),
            "server_metrics": server_metrics,
        }
        run["targets"] = latency_report.evaluate_targets(run)
        runs.append(run)
    return runs


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write ``latency.json``, ``latency.md`` and ``latency.png``."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.url and not args.broker:
        print(
            "error: --url needs --broker (the subscriber must watch the server's broker)",
            file=sys.stderr,
        )
        return 2
    if args.utterances is None:
        args.utterances = 0 if args.idle_connections else DEFAULT_UTTERANCES
    if args.streams < 1:
        print("error: --streams must be at least 1", file=sys.stderr)
        return 2
    try:
        variants = [parse_variant(v) for v in args.variants] or [Variant(name="default")]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workdir = out / "work"
    workdir.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "latency",
        "command": command_line("latency"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
        },
        "definitions": {
            "speech_end": "send time of the 20 ms frame holding the last voiced sample "
            "(|x| > -40 dBFS in the synthesized audio)",
            "endpoint": "receive time of speech.stopped",
            "action": "arrival of the command at an independent MQTT subscriber",
        },
        "runs": [],
    }
    config_path: Path = args.config
    if config_path is None:
        from devices.registry import demo_config_path

        config_path = demo_config_path()
    base_config: dict[str, Any] | None = None
    if not args.url:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        # The generated config lives elsewhere: keep relative custom intent paths working.
        raw["custom_intents"] = [
            str((config_path.parent / p).resolve()) for p in raw.get("custom_intents") or []
        ]
        base_config = raw

    broker: Mosquitto | EmbeddedBrokerProcess | None = None
    broker_url = args.broker
    subscriber: Subscriber | None = None
    try:
        if broker_url is None:
            broker = (
                Mosquitto(workdir)
                if Mosquitto.available() and not args.embedded_broker
                else EmbeddedBrokerProcess(workdir)
            )
            broker.start()
            broker_url = broker.url
        report["broker"] = {
            "url": broker_url,
            "kind": type(broker).__name__ if broker else "external",
        }
        if args.idle_connections:
            logger.info("idle: %d connections", args.idle_connections)
            report["idle"] = run_idle(args, workdir, base_config, broker_url)
        if args.utterances > 0:
            t_syn = time.monotonic()
            synth = Synthesizer()
            pl = make_plan(args, synth)
            report["synthesis_s"] = round(time.monotonic() - t_syn, 1)
            if args.calibrate_asr:
                from assistant.bench.latency_calibrate import calibrate, hotwords_of

                logger.info("calibrating ASR")
                report["asr_calibration"] = calibrate(
                    [u for st in pl.utterances for u in st], hotwords=hotwords_of(config_path)
                )
            commands = {u.command.text: u.command for st in pl.utterances for u in st}
            expected = expected_commands(config_path, list(commands.values()))
            subscriber = Subscriber(broker_url, workdir / "arrivals.jsonl")
            subscriber.start()
            broker_pid = broker.pid if broker else None
            batches = [variants] if args.interleave else [[v] for v in variants]
            for batch in batches:
                targets: list[Target] = []
                try:
                    for v in batch:
                        targets.append(start_target(args, v, workdir, base_config, broker_url))
                    logger.info("measuring %s", ", ".join(v.name for v in batch))
                    for run_result in measure(args, targets, pl, expected, subscriber, broker_pid):
                        report["runs"].append(run_result)
                        latency_report.print_run(run_result)
                finally:
                    for t in targets:
                        t.stop()
            report["comparison"] = latency_report.comparison(report["runs"])
    finally:
        if subscriber is not None:
            subscriber.stop()
        if broker is not None:
            broker.stop()
    report["targets"] = {r["name"]: r["targets"] for r in report["runs"]}
    if "idle" in report:
        report["targets"]["idle"] = report["idle"]["targets"]
    paths = latency_report.write(report, out)
    print(latency_report.markdown(report))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.bench.latency ...``: the same as ``hearth bench latency``."""
    return module_main("hearth bench latency", add_arguments, run, argv)




# Moved to latency_variants / latency_idle; still importable from here (capacity, soak, tests).
__all__ = ["Variant", "add_arguments", "apply_overrides", "effective_settings",
           "expected_commands", "main", "make_plan", "measure", "parse_variant", "run",
           "run_idle", "start_target"]


if __name__ == "__main__":
    sys.exit(main())
