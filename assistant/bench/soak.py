"""``hearth bench soak``: thousands of short connections and a bounded real-time streaming run
against one server, with the server's open files and RSS sampled before, during and after.

Without ``--url`` it starts its own server on free loopback ports, like ``hearth bench
latency``: a private Mosquitto (or the embedded broker in its own process when Mosquitto is
missing) and ``hearth serve`` with the demo home (simulated devices, real speech models).
With ``--url`` it soaks a running server on this machine (loopback only); pass
``--server-pid`` to sample that server's files and memory.

Phases, each bounded in count or time:

1. warm-up: ``--warmup`` cycles (not counted) so that lazily built state and allocator pools
   exist before the baseline is taken;
2. ``--cycles`` connect/disconnect cycles, ``--concurrency`` at a time, of these kinds:
   ``clean`` (open, ``session.created``, close 1000), ``text`` (one command, wait for its
   ``metrics``, close), ``garbage`` (bad JSON, unknown types, wrong field types, odd-length
   PCM, an unsupported rate, an oversized audio frame — each must be answered by one ``error``
   — and now and then a frame over the WebSocket limit, which must close with 1009),
   ``abrupt`` (a command or audio, then the TCP connection dropped without a closing
   handshake) and ``tcp`` (a raw TCP connection that sends half an HTTP request and leaves);
3. ``--streams`` real-time streams of synthesized speech (piper) for ``--duration`` seconds:
   20 ms frames paced by the wall clock, one command every ``--interval`` seconds per stream,
   silence in between.

After each phase the tool waits until the server reports no sessions (``/healthz``) and
``--settle`` seconds more, then samples. The report (``DIR/soak.json``, ``DIR/soak.md``) gives
the cycles by kind and outcome, the streaming outcomes, and open fds / RSS / threads at each
point. Exit status 1 when a cycle failed unexpectedly or open fds did not come back to the
baseline (``FD_SLACK``); RSS growth is reported against ``RSS_SLACK_MB`` but, being subject to
the allocator, does not change the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.bench.cli import command_line, module_main
from assistant.bench.soak_traffic import (
    FRAME_BYTES,
    RATE,
    CycleStats,
    Target,
    cycle_kind,
    run_cycles,
    run_streams,
    stream_frames,
)

logger = logging.getLogger(__name__)

DEFAULT_CYCLES = 10_000
DEFAULT_WARMUP = 200
DEFAULT_CONCURRENCY = 8
DEFAULT_STREAMS = 4
DEFAULT_DURATION_S = 60.0
DEFAULT_INTERVAL_S = 4.0
DEFAULT_SAMPLE_INTERVAL_S = 1.0
DEFAULT_SETTLE_S = 2.0
#: Seconds to wait for the server to report no sessions after a phase.
DRAIN_TIMEOUT_S = 60.0
#: Open fds may differ from the baseline by this much after a phase (a broker reconnect or
#: a log rotation can hold one briefly); more is a leak.
FD_SLACK = 2
#: RSS growth after the phases that still counts as flat.
RSS_SLACK_MB = 32.0

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

SPOKEN_COMMANDS = (
    "turn on the kitchen light",
    "turn off the kitchen light",
    "turn on the bedroom lamp",
    "turn off the bedroom lamp",
    "turn on the hallway light",
    "turn off the hallway light",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``hearth bench soak``."""
    p.description = __doc__.split("\n\n")[0] if __doc__ else None
    p.add_argument("--url", help="soak this running server (ws://127.0.0.1:PORT; loopback only)")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, for fds/RSS")
    p.add_argument("--token", help="access token of the server (sent as a Bearer header)")
    p.add_argument("--config", type=Path, help="home config of the started server (default: demo)")
    p.add_argument(
        "--server-arg",
        dest="server_args",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the started hearth serve (repeatable)",
    )
    p.add_argument("--cycles", type=int, default=DEFAULT_CYCLES, help="connect/disconnect cycles")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="uncounted cycles first")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    p.add_argument("--streams", type=int, default=DEFAULT_STREAMS, help="real-time streams")
    p.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION_S, help="seconds of streaming"
    )
    p.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between commands"
    )
    p.add_argument("--sample-interval", type=float, default=DEFAULT_SAMPLE_INTERVAL_S)
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, help="seconds after a phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="report directory")


# -- resource sampling -------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the soak began
    phase: str
    fds: int | None
    rss_mb: float | None
    threads: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 2),
            "phase": self.phase,
            "fds": self.fds,
            "rss_mb": self.rss_mb,
            "threads": self.threads,
        }


class Sampler:
    """Samples one process's open fds, RSS and threads every ``interval_s`` in a thread, and
    on demand (:meth:`point`). ``pid`` None: nothing to sample, every value is None."""

    def __init__(self, pid: int | None, interval_s: float) -> None:
        import psutil

        self._proc = psutil.Process(pid) if pid is not None else None
        self._interval = interval_s
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.phase = "start"
        self.samples: list[Sample] = []
        self.points: dict[str, Sample] = {}

    def sample(self) -> Sample:
        import psutil

        fds = rss = threads = None
        if self._proc is not None:
            with contextlib.suppress(psutil.Error):
                with self._proc.oneshot():
                    fds = self._proc.num_fds()
                    rss = round(self._proc.memory_info().rss / 2**20, 1)
                    threads = self._proc.num_threads()
        return Sample(time.monotonic() - self._t0, self.phase, fds, rss, threads)

    def point(self, name: str) -> Sample:
        s = self.sample()
        with self._lock:
            self.points[name] = s
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            s = self.sample()
            with self._lock:
                self.samples.append(s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def phase_summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per phase (in order of first appearance): the largest fds, RSS and threads sampled,
    and the RSS growth over the phase's second half (``rss_second_half_mb``). A phase pays
    its one-off costs (thread stacks, first model calls, allocator pools) early; a leak keeps
    growing, so the second half tells one from the other. None with fewer than 4 samples."""
    by_phase: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_phase.setdefault(str(s["phase"]), []).append(s)

    def top(ss: list[dict[str, Any]], key: str) -> Any:
        vals = [s[key] for s in ss if s.get(key) is not None]
        return max(vals) if vals else None

    out: dict[str, dict[str, Any]] = {}
    for phase, ss in by_phase.items():
        rss = [s["rss_mb"] for s in ss if s.get("rss_mb") is not None]
        half = rss[len(rss) // 2 :]
        out[phase] = {
            "samples": len(ss),
            "fds": top(ss, "fds"),
            "rss_mb": top(ss, "rss_mb"),
            "threads": top(ss, "threads"),
            "rss_second_half_mb": round(half[-1] - half[0], 1) if len(rss) >= 4 else None,
        }
    return out


def synthesize(texts: tuple[str, ...], cache: Path) -> list[bytes]:
    """Piper speech at 16 kHz (s16le bytes) for each text; cached in ``cache``."""
    from assistant.audio.synth import Synthesizer

    synth = Synthesizer(cache)
    return [synth.synth(t, rate=RATE).astype("<i2").tobytes() for t in texts]


# -- the server ----------------------------------------------------------------------------


def server_sessions(target: Target) -> int | None:
    """``/healthz`` sessions, or None when it cannot be read."""
    ctx = target.ssl
    try:
        with urllib.request.urlopen(target.http_base + "/healthz", timeout=5, context=ctx) as resp:
            return int(json.loads(resp.read())["sessions"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


async def drain(target: Target, settle_s: float) -> int | None:
    """Wait until the server reports no sessions (bounded), then ``settle_s``. Returns the
    last session count seen."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    sessions = await asyncio.to_thread(server_sessions, target)
    while sessions not in (0, None) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        sessions = await asyncio.to_thread(server_sessions, target)
    await asyncio.sleep(settle_s)
    return sessions


@dataclass
class Started:
    """What this tool started (stopped at the end)."""

    broker: Any = None
    server: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.info["server_exit_status"] = self.server.returncode
            self.server = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def start_server(args: argparse.Namespace, workdir: Path, started: Started) -> tuple[str, int]:
    """A private broker and ``hearth serve`` on free loopback ports. Returns (url, pid)."""
    import yaml

    from assistant.bench.latency import apply_overrides
    from assistant.bench.latency_runner import EmbeddedBrokerProcess, HearthServer, Mosquitto

    broker: Mosquitto | EmbeddedBrokerProcess = (
        Mosquitto(workdir) if Mosquitto.available() else EmbeddedBrokerProcess(workdir)
    )
    broker.start()
    started.broker = broker
    config_path: Path = args.config
    if config_path is None:
        from devices.registry import demo_config_path

        config_path = demo_config_path()
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    # The generated config lives elsewhere: keep relative custom intent paths working.
    raw["custom_intents"] = [
        str((config_path.parent / p).resolve()) for p in raw.get("custom_intents") or []
    ]
    cfg = apply_overrides(raw, {"mqtt.url": broker.url})
    cfg_path = workdir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    server_args = list(args.server_args)
    if args.token:
        server_args += ["--token", args.token]
    server = HearthServer(cfg_path, workdir / "server.log", server_args)
    started.server = server
    start = server.start()
    started.info = {
        # The token is a secret: the report names the option, never its value.
        "command": shlex.join(
            [("***" if args.token and a == args.token else a) for a in server.command]
        ),
        "broker": {"url": broker.url, "kind": type(broker).__name__},
        "startup_to_ready_s": None if start.healthz_s is None else round(start.healthz_s, 2),
        "log": str(server.log_path),
    }
    return server.url, server.pid


def _target(url: str, token: str | None) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise SystemExit(f"error: --url must be ws:// or wss://, not {url!r}")
    if parts.hostname not in LOOPBACK_HOSTS:
        raise SystemExit("error: the soak only runs against a server on this machine (loopback)")
    ctx = None
    if parts.scheme == "wss":
        # Loopback test servers use self-signed certificates.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Target(url, headers, ctx)


# -- the run -------------------------------------------------------------------------------


def verdict(points: dict[str, Sample], cycles: CycleStats) -> dict[str, Any]:
    """Flatness of fds and RSS from the baseline (after warm-up) to each later point."""
    base = points.get("before")
    out: dict[str, Any] = {
        "cycle_failures": cycles.failed,
        "fd_slack": FD_SLACK,
        "rss_slack_mb": RSS_SLACK_MB,
    }
    later = [p for name, p in points.items() if name.startswith("after")]
    if base is None or base.fds is None or base.rss_mb is None or not later:
        out.update(fds_flat=None, rss_flat=None)
        return out
    fd_delta = max((p.fds or 0) - base.fds for p in later)
    rss_delta = max((p.rss_mb or 0.0) - base.rss_mb for p in later)
    out.update(
        fds_delta_max=fd_delta,
        rss_delta_max_mb=round(rss_delta, 1),
        fds_flat=fd_delta <= FD_SLACK,
        rss_flat=rss_delta <= RSS_SLACK_MB,
    )
    return out


async def soak(args: argparse.Namespace, target: Target, sampler: Sampler) -> dict[str, Any]:
    report: dict[str, Any] = {}
    sampler.point("start")
    sampler.start()
    sampler.phase = "warmup"
    warm = CycleStats()
    await run_cycles(target, 0, args.warmup, args.concurrency, warm)
    report["warmup"] = warm.to_dict()
    report["sessions_after_warmup"] = await drain(target, args.settle)
    sampler.point("before")

    sampler.phase = "cycles"
    stats = CycleStats()
    wall = await run_cycles(target, args.warmup, args.cycles, args.concurrency, stats)
    sampler.phase = "drain_cycles"
    report["cycles"] = stats.to_dict() | {
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "cycles_per_s": round(args.cycles / wall, 1) if wall > 0 else None,
    }
    report["cycles"]["sessions_after"] = await drain(target, args.settle)
    sampler.point("after_cycles")
    print(_cycles_line(report["cycles"]), file=sys.stderr, flush=True)

    if args.streams > 0 and args.duration > 0:
        commands = await asyncio.to_thread(synthesize, SPOKEN_COMMANDS, args.out / "work" / "tts")
        sampler.phase = "streaming"
        streaming = await run_streams(target, commands, args)
        sampler.phase = "drain_streaming"
        streaming["sessions_after"] = await drain(target, args.settle)
        report["streaming"] = streaming
        sampler.point("after_streaming")
        print(_streaming_line(streaming), file=sys.stderr, flush=True)
    sampler.stop()
    report["verdict"] = verdict(sampler.points, stats)
    return report


def run(args: argparse.Namespace) -> int:
    """Run the soak and write ``soak.json`` and ``soak.md`` into ``--out``."""
    for name in ("cycles", "warmup", "concurrency", "streams"):
        if getattr(args, name) < 0:
            print(f"error: --{name} must not be negative", file=sys.stderr)
            return 2
    if args.duration < 0 or args.interval <= 0:
        print("error: --duration must be >= 0 and --interval > 0", file=sys.stderr)
        return 2
    out: Path = args.out
    workdir = out / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    from assistant.bench.latency_runner import machine_info

    report: dict[str, Any] = {
        "benchmark": "soak",
        "command": command_line("soak"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("func", "token")
        },
    }
    started = Started()
    try:
        if args.url:
            target = _target(args.url, args.token)
            pid = args.server_pid
            report["server"] = {"url": args.url, "pid": pid, "started_here": False}
        else:
            url, pid = start_server(args, workdir, started)
            target = _target(url, args.token)
            report["server"] = {"url": url, "pid": pid, "started_here": True, **started.info}
        sampler = Sampler(pid, args.sample_interval)
        try:
            report |= asyncio.run(soak(args, target, sampler))
        finally:
            sampler.stop()
            report["resources"] = {
                "points": {k: s.to_dict() for k, s in sampler.points.items()},
                "samples": [s.to_dict() for s in sampler.samples],
            }
            report["resources"]["phases"] = phase_summary(report["resources"]["samples"])
    finally:
        started.stop()
        report["server"] = report.get("server", {}) | {
            k: v for k, v in started.info.items() if k == "server_exit_status"
        }
    paths = write(report, out)
    md = markdown(report)
    print(md)
    print("wrote " + ", ".join(str(p) for p in paths))
    v = report.get("verdict", {})
    return 1 if v.get("cycle_failures") or v.get("fds_flat") is False else 0


def _cycles_line(c: dict[str, Any]) -> str:
    return (
        f"cycles: {c['total']} ({c['ok']} ok, {c['failed']} failed) in {c['wall_s']} s "
        f"({c['cycles_per_s']}/s); sessions after: {c.get('sessions_after')}"
    )


def _streaming_line(s: dict[str, Any]) -> str:
    return (
        f"streaming: {s['streams']} streams x {s['duration_s']} s, {s['commands_spoken']} "
        f"commands spoken, {s['utterances_ended']} utterances ended, actions "
        f"{s['final_actions']}, errors {s['errors']}"
    )


# -- report --------------------------------------------------------------------------------


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "soak.json", out / "soak.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(report) + "\n", encoding="utf-8")
    return paths


def markdown(report: dict[str, Any]) -> str:
    """The summary docs/reliability.md quotes."""
    mach = report.get("machine", {})
    srv = report.get("server", {})
    lines = [
        "# Soak",
        "",
        f"Command: `{report.get('command')}`  ",
        f"Machine: {mach.get('cpu_model')}, {mach.get('logical_cores')} logical cores, "
        f"load at start {mach.get('load_average_at_start')}  ",
        f"Server: {srv.get('url')} (pid {srv.get('pid')})",
        "",
    ]
    c = report.get("cycles")
    if c:
        lines += [
            f"## Connect/disconnect cycles: {c['total']} ({c['ok']} ok, {c['failed']} failed)",
            "",
            f"{c['concurrency']} at a time, {c['wall_s']} s ({c['cycles_per_s']} cycles/s); "
            f"sessions left after: {c.get('sessions_after')}.",
            "",
            "| kind | ok | failed |",
            "|---|---|---|",
        ]
        for kind, counts in c["by_kind"].items():
            lines.append(f"| {kind} | {counts.get('ok', 0)} | {counts.get('failed', 0)} |")
        lines += [
            "",
            f"Error events: {c['error_codes']}; close codes: {c['close_codes']}; "
            f"text command final actions: {c['text_action_statuses']}.",
            "",
        ]
        if c["failure_examples"]:
            lines += ["Failures:", ""] + [f"- {f}" for f in c["failure_examples"]] + [""]
    s = report.get("streaming")
    if s:
        lines += [
            f"## Real-time streaming: {s['streams']} streams x {s['duration_s']} s",
            "",
            f"{s['audio_s']} s of audio in {s['frames_sent']} frames ({s['late_frames']} late, "
            f"max {s['max_late_ms']} ms); {s['commands_spoken']} commands spoken, "
            f"{s['utterances_ended']} utterances ended {s['outcomes']}; final actions "
            f"{s['final_actions']}; errors {s['errors']}; close codes {s['close_codes']}; "
            f"sessions left after: {s.get('sessions_after')}.",
            "",
        ]
    res = report.get("resources", {})
    points = res.get("points", {})
    if points:
        lines += [
            "## Server process",
            "",
            "| point | t s | open fds | RSS MB | threads |",
            "|---|---|---|---|---|",
        ]
        for name, p in points.items():
            lines.append(f"| {name} | {p['t']} | {p['fds']} | {p['rss_mb']} | {p['threads']} |")
        lines += [
            "",
            "| phase | samples | max fds | max RSS MB | RSS growth, 2nd half MB | max threads |",
            "|---|---|---|---|---|---|",
        ]
        for ph, pk in phase_summary(res.get("samples", [])).items():
            lines.append(
                f"| {ph} | {pk['samples']} | {pk['fds']} | {pk['rss_mb']} "
                f"| {pk['rss_second_half_mb']} | {pk['threads']} |"
            )
        lines.append("")
    v = report.get("verdict")
    if v:
        lines += [
            f"Verdict: cycle failures {v['cycle_failures']}; open fds flat "
            f"{v.get('fds_flat')} (max delta {v.get('fds_delta_max')}, slack {v['fd_slack']}); "
            f"RSS flat {v.get('rss_flat')} (max delta {v.get('rss_delta_max_mb')} MB, "
            f"slack {v['rss_slack_mb']} MB). Baseline: `before` (after the warm-up).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.bench.soak ...``: the same as ``hearth bench soak``."""
    return module_main("hearth bench soak", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())



# The cycles and streams moved to assistant.bench.soak_traffic; these stay importable here.
__all__ = ["FRAME_BYTES", "RATE", "CycleStats", "cycle_kind", "stream_frames"]
