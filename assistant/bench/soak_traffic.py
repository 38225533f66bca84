"""The traffic of ``hearth bench soak`` (:mod:`assistant.bench.soak`): the
connect/disconnect cycles of each kind (clean, text, garbage, abrupt, raw TCP) with their
outcomes, and the real-time speech streams with theirs. Re-exported by
:mod:`assistant.bench.soak`, which runs the phases and samples the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

#: Seconds any single step of a cycle may take (connect, an event, a close).
STEP_TIMEOUT_S = 30.0
FRAME_MS = 20
RATE = 16_000
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
WEBSOCKET_LIMIT_BYTES = 4 * 1024 * 1024  # the server's default max(max_message, max_frame)

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
