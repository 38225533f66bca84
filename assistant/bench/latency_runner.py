"""I/O of the latency benchmark: the processes it starts (Mosquitto, ``hearth serve``, the MQTT
subscriber), the real-time streams and idle connections, and resource sampling.

The streams speak the wire protocol with ``websockets`` directly rather than through
:class:`assistant.client.HearthClient`: the measurement needs the exact moment each frame left
(after ``send`` returned, i.e. the bytes are in the kernel), one shared frame clock for all
streams, and events stamped the moment they are read, with nothing in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.bench.latency_corpus import STREAM_SAMPLE_RATE, Utterance
from assistant.bench.latency_procs import (
    EmbeddedBrokerProcess,
    HearthServer,
    Mosquitto,
    ServerStart,
    Subscriber,
    free_port,
    parse_mqtt_url,
)
from assistant.bench.latency_stats import FRAME_MS, UtteranceRecord
from assistant.protocol import SAMPLE_WIDTH

logger = logging.getLogger(__name__)

FRAME_SAMPLES = STREAM_SAMPLE_RATE * FRAME_MS // 1000


FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH


#: A frame sent later than this behind its wall-clock slot counts as late (the client, not the
#: server, fell behind; reported so a slow client is not mistaken for a slow server).
LATE_FRAME_MS = 60.0


# -- resources ---------------------------------------------------------------------------


class ProcessMonitor:
    """Samples a process tree's RSS and CPU time every ``interval_s`` in a thread.

    CPU is the sum of user+system time of the process and its children (the server may run
    workers); peak RSS is the largest sampled sum, and at least the kernel's own high-water mark
    (``VmHWM``) of the main process, which catches peaks between samples.
    """

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_rss = 0
        self.rss_samples: list[tuple[float, int]] = []

    def _tree(self) -> list[Any]:
        import psutil

        procs = [self._proc]
        with contextlib.suppress(psutil.Error):
            procs += self._proc.children(recursive=True)
        return procs

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        import psutil

        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def hwm(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self.rss()
            self.peak_rss = max(self.peak_rss, rss)
            self.rss_samples.append((time.monotonic(), rss))

    def start(self) -> None:
        self.peak_rss = self.rss()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, self.hwm() or 0)
        return self.peak_rss


@dataclass
class CpuWindow:
    """CPU used by a process tree over a wall-clock window."""

    cpu_s: float
    wall_s: float

    @property
    def percent_of_one_core(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self, cores: int) -> dict[str, float]:
        return {
            "cpu_s": round(self.cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
            "percent_of_one_core": round(self.percent_of_one_core, 1),
            "percent_of_machine": round(self.percent_of_one_core / max(cores, 1), 1),
        }


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- streams -----------------------------------------------------------------------------


class Stream:
    """One real-time connection: a microphone that says ``utterances`` at ``start_frames``
    and is silent (digital zeros) in between."""

    def __init__(
        self,
        index: int,
        url: str,
        utterances: Sequence[Utterance],
        start_frames: Sequence[int],
        session_update: dict[str, Any],
    ) -> None:
        self.index = index
        self.url = url
        self.session_update = session_update
        self.records: list[UtteranceRecord] = []
        self._pcm: list[tuple[int, bytes]] = []  # (start frame, padded PCM bytes)
        for k, (utt, start) in enumerate(zip(utterances, start_frames, strict=True)):
            n_frames = -(-len(utt.pcm) // FRAME_SAMPLES)
            padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.int16)
            padded[: len(utt.pcm)] = utt.pcm
            self._pcm.append((start, padded.astype("<i2").tobytes()))
            self.records.append(
                UtteranceRecord(
                    stream=index,
                    index=k,
                    text=utt.command.text,
                    voice=utt.voice,
                    intent=utt.command.intent,
                    device_id=utt.command.device_id,
                    slots=dict(utt.command.slots),
                    start_frame=start,
                    end_frame=start + (utt.voiced_samples - 1) // FRAME_SAMPLES,
                    voiced_ms=utt.voiced_ms,
                )
            )
        self._by_id: dict[str, UtteranceRecord] = {}
        self.spurious: dict[str, dict[str, Any]] = {}  # utterance ids not matching a command
        self.errors: list[dict[str, Any]] = []
        self.events = 0
        self.bytes_sent = 0
        self.closed_reason: str | None = None
        self.ws: Any = None
        self.session: dict[str, Any] | None = None
        self._silence = bytes(FRAME_BYTES)
        self._recv_task: asyncio.Task[None] | None = None
        self._session_updated = asyncio.Event()

    @property
    def last_frame(self) -> int:
        start, pcm = self._pcm[-1]
        return start + len(pcm) // FRAME_BYTES - 1

    def frame(self, i: int) -> bytes:
        for start, pcm in self._pcm:
            off = (i - start) * FRAME_BYTES
            if 0 <= off < len(pcm):
                return pcm[off : off + FRAME_BYTES]
        return self._silence

    async def open(self, timeout_s: float = 30.0) -> None:
        from websockets.asyncio.client import connect

        # Keepalive pings off: with 50 busy streams a late pong would close a healthy
        # connection mid-run, and the benchmark ends long before an idle timeout matters.
        self.ws = await asyncio.wait_for(
            connect(self.url, max_size=4 * 1024 * 1024, ping_interval=None, open_timeout=timeout_s),
            timeout_s,
        )
        first = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
        if first.get("type") != "session.created":
            raise RuntimeError(f"stream {self.index}: expected session.created, got {first}")
        self.session = first
        self._recv_task = asyncio.create_task(self._receive(), name=f"bench-recv-{self.index}")
        await self.ws.send(json.dumps({"type": "session.update", **self.session_update}))
        await asyncio.wait_for(self._session_updated.wait(), timeout_s)

    async def send_frame(self, i: int) -> None:
        frame = self.frame(i)
        await self.ws.send(frame)
        self.bytes_sent += len(frame)
        now = time.monotonic()
        for rec in self.records:
            if rec.start_frame == i:
                rec.t_first_sent = now
            if rec.end_frame == i:
                rec.t_speech_end = now

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5.0)
        if self._recv_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._recv_task, 5.0)

    def _record_for(self, audio_ms: float) -> UtteranceRecord | None:
        """The command whose audio holds stream position ``audio_ms`` (with slack for VAD lag
        and pre-roll), nearest first."""
        best: tuple[float, UtteranceRecord] | None = None
        for rec in self.records:
            if rec.start_ms - 500 <= audio_ms <= rec.end_ms + 1500:
                d = (
                    0.0
                    if rec.start_ms <= audio_ms <= rec.end_ms
                    else min(abs(audio_ms - rec.start_ms), abs(audio_ms - rec.end_ms))
                )
                if best is None or d < best[0]:
                    best = (d, rec)
        return None if best is None else best[1]

    async def _receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self.ws:
                t = time.monotonic()
                self.events += 1
                try:
                    ev = json.loads(raw)
                except ValueError:
                    self.errors.append({"code": "bench_bad_event", "message": str(raw)[:200]})
                    continue
                self._on_event(ev, t)
        except ConnectionClosed as e:
            self.closed_reason = f"{e.rcvd.code if e.rcvd else 'none'}"
        except Exception as e:  # record, never hide: a dead receiver would stall the run
            logger.exception("stream %d: receive failed", self.index)
            self.closed_reason = f"receiver failed: {type(e).__name__}"

    def _on_event(self, ev: dict[str, Any], t: float) -> None:
        kind = ev.get("type")
        uid = ev.get("utterance_id")
        if kind == "session.updated":
            self._session_updated.set()
            return
        if (
            kind == "error"
            and ev.get("code") in ("invalid_message", "unknown_type")
            and not self._session_updated.is_set()
        ):
            self._session_updated.set()  # an older server refusing a setting: go on, recorded
        rec = self._by_id.get(uid) if isinstance(uid, str) else None
        if rec is None and isinstance(uid, str) and kind in ("speech.started", "speech.stopped"):
            pos = ev.get("audio_ms") if kind == "speech.started" else ev.get("speech_end_ms")
            if isinstance(pos, int | float):
                rec = self._record_for(float(pos))
            if rec is not None:
                self._by_id[uid] = rec
                rec.utterance_ids.append(uid)
        if rec is None:
            if kind == "error":
                self.errors.append({**ev, "t": t})
            elif isinstance(uid, str):
                self.spurious.setdefault(uid, {"events": []})["events"].append(
                    {k: v for k, v in ev.items() if k in ("type", "text", "outcome", "status")}
                )
            return
        if kind == "speech.started":
            rec.t_started = rec.t_started or t
        elif kind == "speech.stopped":
            if rec.t_stopped is None:
                rec.t_stopped = t
                rec.stopped = ev
        elif kind == "transcript.final":
            rec.transcript = (
                ev.get("text")
                if rec.transcript is None
                else (f"{rec.transcript} | {ev.get('text')}")
            )
        elif kind == "intent":
            if rec.intent_event is None or rec.intent_event.get("intent") is None:
                rec.intent_event = ev
        elif kind == "action":
            rec.actions.append({**ev, "t": t})
        elif kind == "error":
            rec.errors.append({**ev, "t": t})
        elif kind == "response.text":
            if rec.t_reply_text is None:
                rec.t_reply_text = t
                rec.reply_text = ev.get("text")
        elif kind == "response.audio":
            rec.t_first_reply_audio = rec.t_first_reply_audio or t
        elif kind in ("response.done", "response.interrupted"):
            rec.reply_end = rec.reply_end or ev
        elif kind == "metrics":
            # A command split in two by the VAD sends two metrics; keep the one that acted.
            if rec.metrics is None or ev.get("outcome") == "actions":
                rec.metrics = ev
                rec.t_metrics = t


@dataclass
class PumpStats:
    frames: int = 0
    late_frames: int = 0
    max_late_ms: float = 0.0
    lateness_ms: list[float] = field(default_factory=list)


async def pump(
    streams: Sequence[Stream], *, utterance_timeout_s: float, tail_frames: int
) -> PumpStats:
    """Send one frame per stream every 20 ms by the wall clock, until every stream's last
    utterance was sent plus ``tail_frames`` of silence, and every command finished (``metrics``
    received) or timed out ``utterance_timeout_s`` after its speech end.

    Deadlines are absolute (``t0 + i * 20 ms``) so that a late tick does not shift the rest of
    the stream: like a microphone, audio keeps its real-time rate and a late frame is only late.
    """
    stats = PumpStats()
    last = max(s.last_frame for s in streams) + tail_frames
    t0 = time.monotonic() + 0.05
    i = 0
    while True:
        target = t0 + i * FRAME_MS / 1000.0
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        late = (time.monotonic() - target) * 1000.0
        stats.lateness_ms.append(late)
        stats.max_late_ms = max(stats.max_late_ms, late)
        if late > LATE_FRAME_MS:
            stats.late_frames += 1
        for s in streams:
            if s.ws is not None and s.closed_reason is None:
                await s.send_frame(i)
        stats.frames += 1
        i += 1
        if i > last:
            now = time.monotonic()
            pending = [
                r
                for s in streams
                if s.closed_reason is None
                for r in s.records
                if not r.done
                and (r.t_speech_end is None or now - r.t_speech_end < utterance_timeout_s)
            ]
            if not pending:
                break
    return stats


async def open_idle(url: str, n: int, *, concurrency: int = 20) -> list[Any]:
    """Open ``n`` connections and wait for each one's ``session.created``."""
    from websockets.asyncio.client import connect

    sem = asyncio.Semaphore(concurrency)
    conns: list[Any] = []

    async def one() -> None:
        async with sem:
            ws = await connect(url, ping_interval=None, open_timeout=30)
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg.get("type") != "session.created":
                raise RuntimeError(f"expected session.created, got {msg.get('type')}")
            conns.append(ws)

    await asyncio.gather(*(one() for _ in range(n)))
    return conns


def scrape_metrics(ws_url: str, timeout_s: float = 5.0) -> dict[str, float] | None:
    """The server's Prometheus series at ``/metrics`` (same host and port as the WebSocket):
    each counter and gauge summed over its labels (``{"hearth_audio_dropped_frames_total": 0.0,
    ...}``), plus every histogram's ``_sum`` and ``_count`` per label set
    (``'hearth_stage_seconds_sum{stage="asr"}'``). None when the server has no such page."""
    http = ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    url = "/".join(http.split("/", 3)[:3]) + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith("_bucket"):
            continue
        key = name_labels if name.endswith(("_sum", "_count")) else name
        with contextlib.suppress(ValueError):
            out[key] = out.get(key, 0.0) + float(value)
    return out


def machine_info() -> dict[str, Any]:
    import platform

    import psutil

    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# The processes live in latency_procs since the split; still importable from here.
__all__ = ["FRAME_BYTES", "FRAME_SAMPLES", "CpuWindow", "EmbeddedBrokerProcess", "HearthServer",
           "Mosquitto", "ProcessMonitor", "ServerStart", "Stream", "Subscriber", "free_port",
           "machine_info", "open_idle", "own_cpu_seconds", "parse_mqtt_url", "pump",
           "scrape_metrics"]
