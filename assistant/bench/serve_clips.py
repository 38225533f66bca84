"""Recorded clips streamed into a real in-process server, as a client streams them: the part
that ``hearth bench accuracy --serve`` (:mod:`assistant.bench.accuracy_serve`) and the zh-CN set
(:mod:`assistant.bench.accuracy_zh`) share.

A clip becomes 16-bit PCM (its audio, a second of trailing silence, kitchen noise mixed over
both at a condition's SNR), goes over a WebSocket session in real time (20 ms frames), and its
record is every event the server sent until each utterance it started has reported its
``metrics``. The report files and the one-line errors are the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from assistant.bench.accuracy_sets import RATE
from assistant.bench.noise import mix_at_snr

FRAME_MS: Final = 20
#: Silence (or noise, mixed with the rest) streamed after each clip: the endpoint fires.
TAIL_S: Final = 1.0
#: After the tail, up to this much more is streamed while an utterance has yet to report, as
#: a client's microphone goes on (noise conditions: the noise goes on). A stream that stops
#: right after the tail leaves an endpoint still deciding in noise waiting for frames that
#: never come (measured: 60 s, then the next clip's audio joined the turn).
KEEP_S: Final = 4.0
#: How long to wait for the last utterance of a clip to report (its ``metrics``).
SETTLE_TIMEOUT_S: Final = 60.0
#: After the clip, how long to wait for any speech to start before giving up on it.
NOTHING_HEARD_S: Final = 3.0
#: ``action`` statuses that mean the server acted.
ACTING: Final = frozenset({"published", "confirmed", "unconfirmed"})


@dataclass
class Clip:
    """The events the server sent while a clip streamed and settled (``device.state`` left
    out)."""

    events: list[dict[str, Any]] = field(default_factory=list)


def pcm16(x: np.ndarray[Any, Any]) -> bytes:
    """Float samples, clipped to [-1, 1], as 16-bit little-endian PCM."""
    clipped = np.clip(x.astype(np.float32), -1.0, 1.0)
    return bytes((clipped * 32767.0).astype("<i2").tobytes())


def clip_pcm(audio: np.ndarray[Any, Any], noise: np.ndarray[Any, Any] | None, condition: str,
             seed: int) -> bytes:
    """The clip with :data:`TAIL_S` + :data:`KEEP_S` of silence after it, and, unless
    ``condition`` is ``clean``, ``noise`` mixed over both at ``condition`` dB (an excerpt
    chosen by ``seed``). :func:`run_clip` streams the last :data:`KEEP_S` only while needed."""
    x = np.concatenate([audio.astype(np.float32),
                        np.zeros(int((TAIL_S + KEEP_S) * RATE), np.float32)])
    if condition != "clean":
        assert noise is not None
        x = mix_at_snr(x, noise, float(condition), np.random.default_rng(seed))
    return pcm16(x)


async def stream(ws: Any, pcm: bytes) -> None:
    """Send ``pcm`` in :data:`FRAME_MS` frames at real-time pace."""
    step = RATE * FRAME_MS // 1000 * 2
    t0 = time.monotonic()
    for i, off in enumerate(range(0, len(pcm), step)):
        await ws.send(pcm[off : off + step])
        delay = t0 + (i + 1) * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_clip(ws: Any, inbox: asyncio.Queue[dict[str, Any]], pcm: bytes, *,
                   keep_s: float = 0.0) -> Clip:
    """Stream one clip and collect what the server sent until every utterance it started
    has reported (or :data:`SETTLE_TIMEOUT_S`; :data:`NOTHING_HEARD_S` when none started).
    ``keep_s``: the last seconds of ``pcm`` (:func:`clip_pcm`'s :data:`KEEP_S`) are streamed
    only while an utterance has yet to report."""
    clip = Clip()
    started: set[str] = set()
    finished: set[str] = set()
    step = RATE * FRAME_MS // 1000 * 2
    keep = int(keep_s * RATE) * 2
    pcm, rest = (pcm[:-keep], pcm[-keep:]) if 0 < keep < len(pcm) else (pcm, b"")
    sender = asyncio.create_task(stream(ws, pcm))

    def take(e: dict[str, Any]) -> None:
        if e["type"] == "device.state":
            return
        clip.events.append(e)
        if e["type"] == "speech.started":
            started.add(e["utterance_id"])
        elif e["type"] == "metrics":
            finished.add(e["utterance_id"])

    while not sender.done():
        try:
            take(await asyncio.wait_for(inbox.get(), 0.05))
        except TimeoutError:
            pass
    await sender
    end = time.monotonic()
    sent = 0
    while time.monotonic() < end + SETTLE_TIMEOUT_S:
        if started and started <= finished:
            break
        if not started and time.monotonic() > end + NOTHING_HEARD_S:
            break  # the clip's whole tail has been streamed and no speech started
        due = end + (sent // step + 1) * FRAME_MS / 1000
        if sent < len(rest) and time.monotonic() >= due - FRAME_MS / 1000:
            await ws.send(rest[sent : sent + step])  # the microphone goes on
            sent += step
        try:
            wait = max(0.0, due - time.monotonic()) if sent < len(rest) else 0.1
            take(await asyncio.wait_for(inbox.get(), wait))
        except TimeoutError:
            pass
    while not inbox.empty():
        take(inbox.get_nowait())
    return clip


@asynccontextmanager
async def client_session(url: str) -> AsyncIterator[tuple[Any, asyncio.Queue[dict[str, Any]]]]:
    """A WebSocket session with the server at ``url``, its ``session.created`` received: the
    socket and a queue of the JSON events that follow."""
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def reader() -> None:
            async for msg in ws:
                if isinstance(msg, str):
                    inbox.put_nowait(json.loads(msg))

        reading = asyncio.create_task(reader())
        try:
            created = await asyncio.wait_for(inbox.get(), 30)
            assert created["type"] == "session.created", created
            yield ws, inbox
        finally:
            reading.cancel()


def pct(xs: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile, to 0.1; None for no values."""
    if not xs:
        return None
    return round(float(np.percentile(np.asarray(xs, dtype=np.float64), q)), 1)


def snr_ok(conditions: Iterable[str] | None) -> bool:
    """Whether every condition is ``clean`` or a number; prints the one-line error if not."""
    for c in conditions or []:
        if c != "clean":
            try:
                float(c)
            except ValueError:
                print("error: --snr takes 'clean' or numbers (dB)", file=sys.stderr)
                return False
    return True


def measured(
    measure: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    args: argparse.Namespace,
) -> dict[str, Any] | None:
    """Run ``measure(args)``; None (after a one-line error) when the ASR model cannot load."""
    from assistant.audio.errors import ModelLoadError

    try:
        return asyncio.run(measure(args))
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def write_report(out: Path, summary: dict[str, Any], records: list[dict[str, Any]],
                 markdown: str) -> None:
    """``report.json``, ``records.jsonl`` and ``report.md`` in ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "records.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    (out / "report.md").write_text(markdown, encoding="utf-8")
