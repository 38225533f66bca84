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
import contextlib
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
from assistant.bench.latency_corpus import (
    DEFAULT_VOICES,
    SpokenCommand,
    Synthesizer,
    Utterance,
    plan,
)
from assistant.bench.latency_runner import (
    CpuWindow,
    EmbeddedBrokerProcess,
    HearthServer,
    Mosquitto,
    ProcessMonitor,
    Stream,
    Subscriber,
    machine_info,
    open_idle,
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
#: Session settings sent by every stream: a satellite that shows no text needs no partial
#: transcripts or device events; they are variants (``@partials=true``), not the baseline.
BASE_SESSION: dict[str, Any] = {"sample_rate": 16000, "partials": False, "device_events": False}
_TURN_KEYS = ("threshold", "min_speech_ms", "silence_ms", "prefix_padding_ms", "max_utterance_ms")


@dataclass
class Variant:
    """One configuration of the server and the sessions to measure."""

    name: str
    config_overrides: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)

    def session_update(self) -> dict[str, Any]:
        msg: dict[str, Any] = dict(BASE_SESSION)
        turn: dict[str, Any] = {}
        for k, v in self.session.items():
            if k in _TURN_KEYS:
                turn[k] = v
            else:
                msg[k] = v
        if turn:
            msg["turn_detection"] = turn
        return msg

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config_overrides": self.config_overrides,
            "session": self.session,
            "server_args": self.server_args,
        }


def parse_variant(spec: str) -> Variant:
    """``NAME=TOKENS`` (see the module docstring). Raises ``ValueError`` with what is wrong."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--variant wants NAME=SPEC, got {spec!r}")
    v = Variant(name=name.strip())
    for tok in shlex.split(rest):
        if tok.startswith("@"):
            key, eq, val = tok[1:].partition("=")
            if not eq or not key:
                raise ValueError(f"session setting wants @key=value, got {tok!r}")
            v.session[key] = yaml.safe_load(val)
        elif "=" in tok and not tok.startswith("-"):
            key, _, val = tok.partition("=")
            v.config_overrides[key] = yaml.safe_load(val)
        else:
            v.server_args.append(tok)
    return v


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw home config with dotted keys set (intermediate mappings created)."""
    out: dict[str, Any] = json.loads(json.dumps(config))
    for key, value in overrides.items():
        target = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = target.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                target[p] = nxt
            target = nxt
        target[parts[-1]] = value
    return out


def expected_commands(
    config_path: Path, commands: list[SpokenCommand]
) -> dict[str, list[tuple[str, str]]]:
    """The (topic, payload) publishes each spoken command should cause, from the devices
    package's pure adapters: the benchmark's ground truth, independent of the server."""
    from devices.adapters import adapter_for
    from devices.registry import load_config
    from intents.schema import Intent, Slots

    cfg = load_config(config_path)
    out: dict[str, list[tuple[str, str]]] = {}
    for c in commands:
        dev = cfg.device(c.device_id)
        intent = Intent(
            name=c.intent,
            slots=Slots(device_ids=[c.device_id], **c.slots),
            confidence=1.0,
            source="grammar",
            reason="benchmark ground truth",
        )
        out[c.text] = [
            (cmd.topic, cmd.payload) for cmd in adapter_for(dev).commands_for(dev, intent, cfg.mqtt)
        ]
    return out


def effective_settings(config: dict[str, Any], server_args: list[str]) -> dict[str, Any]:
    """What the started server runs with: the ``assistant:`` section resolved through the
    server's own settings classes (so defaults are reported, not only overrides), the ASR model
    and its settings. ``hearth serve`` flags (``--threads``, ``--model``, ...) are listed as given.
    """
    out: dict[str, Any] = {"server_args": server_args}
    try:
        from assistant.audio.asr import AsrSettings, default_model_path
        from assistant.config import parse_assistant_settings

        settings = parse_assistant_settings(config.get("assistant") or {})
        out["assistant"] = settings.model_dump(mode="json")
        asr = AsrSettings(**settings.asr.overrides())
        out["asr"] = asr.model_dump(mode="json")
        if asr.num_workers is None:  # one per core: say how many that is on this machine
            out["asr"]["num_workers"] = asr.resolved_workers(asr.resolved_device())
        out["asr_model"] = asr.model or str(default_model_path())
    except Exception as e:  # reporting aid only: a settings change must not stop the run
        out["error"] = f"{type(e).__name__}: {e}"
    return out


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


def run_idle(
    args: argparse.Namespace,
    workdir: Path,
    base_config: dict[str, Any] | None,
    broker_url: str | None,
) -> dict[str, Any]:
    """Open ``--idle-connections`` idle sessions; the server's CPU over ``--idle-seconds``."""
    server: HearthServer | None = None
    pid = args.server_pid
    url = args.url
    info: dict[str, Any] = {}
    if url is None:
        assert base_config is not None and broker_url is not None
        overrides = {"mqtt.url": broker_url, **dict(_parse_sets(args.sets))}
        cfg_path = workdir / "config-idle.yaml"
        cfg_path.write_text(
            yaml.safe_dump(
                apply_overrides(base_config, overrides), sort_keys=False, allow_unicode=True
            ),
            encoding="utf-8",
        )
        server = HearthServer(cfg_path, workdir / "server-idle.log", args.server_args)
        start = server.start()
        url, pid = server.url, server.pid
        info = {
            "command": shlex.join(server.command),
            "startup_to_ready_s": None if start.healthz_s is None else round(start.healthz_s, 2),
        }
    try:
        monitor = ProcessMonitor(pid) if pid else None
        if monitor:
            monitor.start()

        async def hold() -> tuple[float, CpuWindow | None]:
            t_open = time.monotonic()
            conns = await open_idle(url, args.idle_connections)
            open_s = time.monotonic() - t_open
            await asyncio.sleep(2.0)  # handshakes and session set-up are not idle work
            c0 = monitor.cpu_seconds() if monitor else 0.0
            t0 = time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            window = (
                CpuWindow(monitor.cpu_seconds() - c0, time.monotonic() - t0) if monitor else None
            )
            for ws in conns:
                with contextlib.suppress(Exception):
                    await ws.close()
            return open_s, window

        open_s, window = asyncio.run(hold())
        peak = monitor.stop() if monitor else None
    finally:
        if server is not None:
            server.stop()
    cores = machine_info()["logical_cores"] or 1
    out = {
        "connections": args.idle_connections,
        "open_s": round(open_s, 2),
        "server": info,
        "server_cpu": window.to_dict(cores) if window else None,
        "server_peak_rss_mb": None if peak is None else round(peak / 2**20, 1),
    }
    pct = window.to_dict(cores)["percent_of_machine"] if window else None
    limit = latency_report.TARGETS["idle_200_cpu_percent"]
    out["targets"] = {
        "idle_cpu_percent_of_machine": {
            "value": pct,
            "target": limit,
            "met": None if pct is None else pct <= limit,
        },
    }
    start_s = info.get("startup_to_ready_s")
    if start_s is not None:
        out["targets"]["startup_s"] = {
            "value": start_s,
            "target": latency_report.TARGETS["startup_s"],
            "met": start_s <= latency_report.TARGETS["startup_s"],
        }
    return out


def _parse_sets(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
        out.append((key, yaml.safe_load(val)))
    return out


def _comparison(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
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
        "command": _command_line(),
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
                        _print_run(run_result)
                finally:
                    for t in targets:
                        t.stop()
            report["comparison"] = _comparison(report["runs"])
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


def _command_line() -> str:
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "latency" and i > 0 and argv[i - 1] == "bench":
            return shlex.join(["hearth", *argv[i - 1 :]])
    if argv and argv[0].endswith("latency.py"):
        return shlex.join(["python", "-m", "assistant.bench.latency", *argv[1:]])
    return shlex.join(argv)


def _print_run(r: dict[str, Any]) -> None:
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


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.bench.latency ...``: the same as ``hearth bench latency``."""
    parser = argparse.ArgumentParser(prog="hearth bench latency")
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
