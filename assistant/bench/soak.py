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
import random
import shlex
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_CYCLES = 10_000
DEFAULT_WARMUP = 200
DEFAULT_CONCURRENCY = 8
DEFAULT_STREAMS = 4
DEFAULT_DURATION_S = 60.0
DEFAULT_INTERVAL_S = 4.0
DEFAULT_SAMPLE_INTERVAL_S = 1.0
DEFAULT_SETTLE_S = 2.0
#: Seconds any single step of a cycle may take (connect, an event, a close).
STEP_TIMEOUT_S = 30.0
#: Seconds to wait for the server to report no sessions after a phase.
DRAIN_TIMEOUT_S = 60.0
#: Open fds may differ from the baseline by this much after a phase (a broker reconnect or
#: a log rotation can hold one briefly); more is a leak.
FD_SLACK = 2
#: RSS growth after the phases that still counts as flat.
RSS_SLACK_MB = 32.0

FRAME_MS = 20
RATE = 16_000
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
WEBSOCKET_LIMIT_BYTES = 4 * 1024 * 1024  # the server's default max(max_message, max_frame)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

CycleKind = Literal["clean", "text", "garbage", "abrupt", "tcp"]
#: One period of the cycle schedule: 30 % clean, 25 % text, 20 % garbage, 15 % abrupt,
#: 10 % raw TCP. A fixed pattern rather than random draws keeps runs comparable.
SCHEDULE: tuple[CycleKind, ...] = (
    ("clean",) * 6 + ("text",) * 5 + ("garbage",) * 4 + ("abrupt",) * 3 + ("tcp",) * 2
)
TEXT_COMMANDS = (
    "turn on the kitchen light",
    "turn off the kitchen light",
    "turn on the office light",
    "turn off the office light",
    "what is the meaning of life",  # no intent: the other common ending of an utterance
)
SPOKEN_COMMANDS = (
    "turn on the kitchen light",
    "turn off the kitchen light",
    "turn on the bedroom lamp",
    "turn off the bedroom lamp",
    "turn on the hallway light",
    "turn off the hallway light",
)
#: (frame, error code the server must answer with). Audio frames assume the default limits.
GARBAGE: tuple[tuple[str | bytes, str], ...] = (
    ("{not json", "bad_json"),
    ("[1, 2, 3]", "bad_json"),
    ('{"type": "audio.append"}', "unknown_type"),
    ('{"no_type": true}', "unknown_type"),
    ('{"type": "text", "text": 5}', "invalid_message"),
    ('{"type": "session.update", "zz": 1}', "invalid_message"),
    ('{"type": "session.update", "sample_rate": 11025}', "unsupported_sample_rate"),
    ('{"type": "image", "data": "%%%"}', "invalid_message"),
    (b"\x01\x02\x03", "odd_length_audio"),
    (b"\x00" * 96_002, "frame_too_large"),
)
#: One garbage cycle in this many (drawn per cycle index, so runs repeat) also sends a frame
#: over the WebSocket limit, which must close the connection with 1009.
OVERSIZE_EVERY = 50


def cycle_kind(i: int) -> CycleKind:
    return SCHEDULE[i % len(SCHEDULE)]


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


# -- connect/disconnect cycles -------------------------------------------------------------


@dataclass
class CycleStats:
    """Outcomes of the cycles, by kind."""

    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    error_codes: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    action_statuses: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def count(self, kind: str, outcome: str) -> None:
        self.by_kind.setdefault(kind, Counter())[outcome] += 1

    @property
    def failed(self) -> int:
        return sum(c["failed"] for c in self.by_kind.values())

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_kind.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "ok": self.total - self.failed,
            "failed": self.failed,
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
            "error_codes": dict(sorted(self.error_codes.items())),
            "close_codes": dict(sorted(self.close_codes.items())),
            "text_action_statuses": dict(sorted(self.action_statuses.items())),
            "failure_examples": self.failures[:20],
        }


class CycleFailed(Exception):
    """A cycle did not see what the protocol promises (the message says what)."""


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    ssl: ssl.SSLContext | None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        return parts.hostname or "127.0.0.1", port

    @property
    def http_base(self) -> str:
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}"


async def _recv(ws: Any) -> dict[str, Any]:
    """The next event other than ``device.state``."""
    while True:
        data = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S)
        if not isinstance(data, str):
            raise CycleFailed("server sent a binary frame")
        event: dict[str, Any] = json.loads(data)
        if event.get("type") != "device.state":
            return event


async def _open(target: Target) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(
        target.url,
        additional_headers=target.headers or None,
        ssl=target.ssl,
        open_timeout=STEP_TIMEOUT_S,
        ping_interval=None,
        max_size=None,
    )
    created = await _recv(ws)
    if created.get("type") != "session.created":
        await ws.close()
        raise CycleFailed(f"first event {created.get('type')!r}, not session.created")
    return ws


async def run_cycle(i: int, target: Target, stats: CycleStats) -> None:
    """One connect/disconnect cycle of kind :func:`cycle_kind` (i); counts its outcome."""
    from websockets.exceptions import WebSocketException

    kind = cycle_kind(i)
    try:
        if kind == "tcp":
            await _raw_tcp(target)
        else:
            ws = await _open(target)
            try:
                if kind == "clean":
                    await ws.close()
                elif kind == "text":
                    await _text(ws, TEXT_COMMANDS[i % len(TEXT_COMMANDS)], stats)
                    await ws.close()
                elif kind == "garbage":
                    await _garbage(ws, i, stats)
                else:
                    await _abrupt(ws, i)
            finally:
                if ws.close_code is not None:
                    stats.close_codes[str(ws.close_code)] += 1
                elif kind != "abrupt":
                    ws.transport.abort()
    # Anything a broken server can cause (refusals, resets, timeouts, bad JSON) is a failed
    # cycle, counted with an example; a bug in this tool still raises.
    except (CycleFailed, WebSocketException, OSError, TimeoutError, ValueError) as e:
        stats.count(kind, "failed")
        stats.failures.append({"cycle": i, "kind": kind, "error": f"{type(e).__name__}: {e}"})
        return
    stats.count(kind, "ok")


async def _raw_tcp(target: Target) -> None:
    """Half an upgrade request, then gone: the server must not keep anything for it."""
    host, port = target.host_port
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=target.ssl), STEP_TIMEOUT_S
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n")
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.transport.abort()


async def _text(ws: Any, text: str, stats: CycleStats) -> None:
    await ws.send(json.dumps({"type": "text", "text": text}))
    while True:
        event = await _recv(ws)
        if event["type"] == "action" and event.get("final"):
            stats.action_statuses[str(event.get("status"))] += 1
        elif event["type"] == "error":
            stats.error_codes[str(event.get("code"))] += 1
        elif event["type"] == "metrics":
            return


async def _garbage(ws: Any, i: int, stats: CycleStats) -> None:
    from websockets.exceptions import ConnectionClosed

    rng = random.Random(i)
    picks = rng.sample(GARBAGE, rng.randint(1, 3))
    for frame, _code in picks:
        await ws.send(frame)
    for _frame, code in picks:
        event = await _recv(ws)
        if event.get("type") != "error" or event.get("code") != code:
            raise CycleFailed(f"expected error {code}, got {event}")
        stats.error_codes[code] += 1
    if rng.random() < 1 / OVERSIZE_EVERY:
        with contextlib.suppress(ConnectionClosed):
            # The server may close before the whole frame is written.
            await ws.send(b"\x00" * (WEBSOCKET_LIMIT_BYTES + 2))
            while True:
                await _recv(ws)
        if ws.close_code != 1009:
            raise CycleFailed(f"oversized frame closed with {ws.close_code}, not 1009")
        return
    # The session still works after its garbage.
    await ws.send(json.dumps({"type": "session.update", "language": "en"}))
    event = await _recv(ws)
    if event.get("type") != "session.updated":
        raise CycleFailed(f"expected session.updated after garbage, got {event.get('type')}")
    await ws.close()


async def _abrupt(ws: Any, i: int) -> None:
    """Work in flight, then the TCP connection dropped without a closing handshake."""
    if i % 2:
        await ws.send(json.dumps({"type": "text", "text": TEXT_COMMANDS[0]}))
    else:
        for _ in range(5):
            await ws.send(bytes(FRAME_BYTES))
    ws.transport.abort()


async def run_cycles(
    target: Target, first: int, n: int, concurrency: int, stats: CycleStats
) -> float:
    """Cycles ``first`` … ``first + n - 1``, ``concurrency`` at a time. Returns wall seconds."""
    t0 = time.monotonic()
    counter = iter(range(first, first + n))

    async def worker() -> None:
        for i in counter:  # shared iterator: each index runs once
            await run_cycle(i, target, stats)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return time.monotonic() - t0


# -- real-time streaming -------------------------------------------------------------------


@dataclass
class StreamStats:
    index: int
    frames: int = 0
    commands: int = 0  # commands spoken
    ended: int = 0  # utterances ended (metrics)
    outcomes: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    close_code: int | None = None
    failure: str | None = None


def stream_frames(
    commands: list[bytes], *, offset_s: float, interval_s: float, duration_s: float
) -> Iterator[tuple[bytes, bool]]:
    """20 ms frames of one microphone: ``offset_s`` of silence, then a command every
    ``interval_s`` (in turn from ``commands``, each PCM s16le at 16 kHz), silence in between,
    for ``duration_s`` in all. Yields (frame, True on the first frame of a command)."""
    silence = bytes(FRAME_BYTES)
    total = int(duration_s * 1000 / FRAME_MS)
    every = max(1, int(interval_s * 1000 / FRAME_MS))
    first = int(offset_s * 1000 / FRAME_MS)
    n = 0
    k = 0
    while n < total:
        if n >= first and (n - first) % every == 0:
            pcm = commands[k % len(commands)]
            k += 1
            frames = [pcm[o : o + FRAME_BYTES] for o in range(0, len(pcm), FRAME_BYTES)]
            for j, f in enumerate(frames):
                if n >= total:
                    return
                yield f.ljust(FRAME_BYTES, b"\0"), j == 0
                n += 1
        else:
            yield silence, False
            n += 1


async def run_streams(
    target: Target, commands: list[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """``args.streams`` paced microphones for ``args.duration`` s, then a silent tail until
    every spoken command ended (or ``STEP_TIMEOUT_S``)."""
    from websockets.exceptions import ConnectionClosed

    n = args.streams
    stats = [StreamStats(i) for i in range(n)]
    socks = [await _open(target) for _ in range(n)]

    async def read(ws: Any, st: StreamStats) -> None:
        try:
            while True:
                event = await ws.recv()
                ev = json.loads(event)
                kind = ev.get("type")
                if kind == "metrics":
                    st.ended += 1
                    st.outcomes[str(ev.get("outcome"))] += 1
                elif kind == "action" and ev.get("final"):
                    st.actions[str(ev.get("status"))] += 1
                elif kind == "error":
                    st.errors[str(ev.get("code"))] += 1
        except ConnectionClosed:
            st.close_code = ws.close_code

    readers = [asyncio.create_task(read(ws, st)) for ws, st in zip(socks, stats, strict=True)]
    gens = [
        stream_frames(
            commands,
            offset_s=0.5 + args.interval * i / n,
            interval_s=args.interval,
            duration_s=args.duration,
        )
        for i in range(n)
    ]
    late = 0
    max_late_ms = 0.0
    t0 = time.monotonic() + 0.05
    i = 0
    live = list(range(n))
    while live:
        delay = t0 + i * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late_ms = -delay * 1000
            max_late_ms = max(max_late_ms, late_ms)
            late += late_ms > 60  # a late frame is the client's lag, counted, not hidden
        for k in list(live):
            item = next(gens[k], None)
            if item is None or stats[k].failure is not None:
                live.remove(k)
                continue
            frame, starts = item
            try:
                await socks[k].send(frame)
            except ConnectionClosed as e:
                stats[k].failure = f"closed while streaming: {e}"
                live.remove(k)
                continue
            stats[k].frames += 1
            stats[k].commands += starts
        i += 1
    # Silence until every spoken command has ended: the last one needs its endpoint.
    deadline = time.monotonic() + STEP_TIMEOUT_S
    silence = bytes(FRAME_BYTES)
    while time.monotonic() < deadline and any(
        st.ended < st.commands and st.close_code is None and st.failure is None for st in stats
    ):
        for ws, st in zip(socks, stats, strict=True):
            if st.close_code is None and st.failure is None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(silence)
        await asyncio.sleep(FRAME_MS / 1000)
    for ws in socks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
    await asyncio.gather(*readers, return_exceptions=True)
    return summarize_streams(stats, args, late, max_late_ms)


def summarize_streams(
    stats: list[StreamStats], args: argparse.Namespace, late: int, max_late_ms: float
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for st in stats:
        outcomes.update(st.outcomes)
        actions.update(st.actions)
        errors.update(st.errors)
    return {
        "streams": len(stats),
        "duration_s": args.duration,
        "interval_s": args.interval,
        "frames_sent": sum(st.frames for st in stats),
        "audio_s": round(sum(st.frames for st in stats) * FRAME_MS / 1000, 1),
        "late_frames": late,
        "max_late_ms": round(max_late_ms, 1),
        "commands_spoken": sum(st.commands for st in stats),
        "utterances_ended": sum(st.ended for st in stats),
        "outcomes": dict(sorted(outcomes.items())),
        "final_actions": dict(sorted(actions.items())),
        "errors": dict(sorted(errors.items())),
        "close_codes": [st.close_code for st in stats],
        "failures": [st.failure for st in stats if st.failure],
    }


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
        "command": _command_line(),
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


def _command_line() -> str:
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "soak" and i > 0 and argv[i - 1] == "bench":
            return shlex.join(["hearth", *argv[i - 1 :]])
    return shlex.join(argv)


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
    parser = argparse.ArgumentParser(prog="hearth bench soak")
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
