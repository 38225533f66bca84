"""A small Prometheus-text metrics registry (counters, gauges, histograms with labels).

Written here rather than depending on ``prometheus_client`` because Hearth needs a handful of
series and a process-local registry per server (tests run several servers in one process).
Updates are cheap and guarded by a lock, so worker threads may record too.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

#: Latency buckets in seconds: fine around the 100-300 ms targets, coarse up to 10 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip


#: What an overloaded server (``asr_shed_jobs``) gives up on a turn, the ``skipped`` label of
#: ``hearth_asr_shed_total``: the final transcription's own pass (the cheap, speculative
#: settings stand in for it), the full-window retry of a transcript that decoded to nothing,
#: the acoustic repair of a guessed reading, and a speculation's escalation to the final
#: settings. Each costs accuracy, never correctness: it is counted and logged, never silent.
SHED_FINAL_PASS = "final_pass"
SHED_FULL_WINDOW_RETRY = "full_window_retry"
SHED_ACOUSTIC_REPAIR = "acoustic_repair"
SHED_ESCALATION = "escalation"
SHED_KINDS: tuple[str, ...] = (
    SHED_FINAL_PASS, SHED_FULL_WINDOW_RETRY, SHED_ACOUSTIC_REPAIR, SHED_ESCALATION,
)

LabelValues = tuple[str, ...]


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: Sequence[str], lock: threading.Lock) -> None:
        self.name = name
        self.help = help_
        self.label_names = tuple(labels)
        self._lock = lock

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {labels}")
        return tuple(str(v) for v in labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, labels: Sequence[str], lock: threading.Lock) -> None:
        super().__init__(name, help_, labels, lock)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def counts(self) -> dict[str, float]:
        """Every label value's count (labels joined by ``,``; ``""`` for none)."""
        with self._lock:
            return {",".join(k): v for k, v in sorted(self._values.items())}

    def render(self) -> list[str]:
        out = self.header()
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.label_names:
            items = [((), 0.0)]
        for key, v in items:
            out.append(f"{self.name}{_labels(self.label_names, key)} {_num(v)}")
        return out


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def dec(self, *labels: str, amount: float = 1.0) -> None:
        self.inc(*labels, amount=-amount)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_: str,
        labels: Sequence[str],
        lock: threading.Lock,
        buckets: Iterable[float] = LATENCY_BUCKETS_S,
    ) -> None:
        super().__init__(name, help_, labels, lock)
        self.buckets = tuple(sorted(buckets))
        # per label set: (bucket counts (non-cumulative, +1 for +Inf), sum, count)
        self._data: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[i] += 1
            total[0] += value

    def count(self, *labels: str) -> int:
        with self._lock:
            entry = self._data.get(self._key(labels))
            return sum(entry[0]) if entry else 0

    def render(self) -> list[str]:
        out = self.header()
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._data.items())
        for key, (counts, total) in items:
            running = 0
            for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
                running += c
                le = _labels(self.label_names, key, f'le="{_num(bound)}"')
                out.append(f"{self.name}_bucket{le} {running}")
            lbl = _labels(self.label_names, key)
            out.append(f"{self.name}_sum{lbl} {_num(total)}")
            out.append(f"{self.name}_count{lbl} {running}")
        return out


class Metrics:
    """The server's metrics. One instance per server; rendered at ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all: list[_Metric] = []
        self.sessions_total = self._counter("hearth_sessions_total", "WebSocket sessions opened")
        self.sessions_active = self._gauge("hearth_sessions_active", "WebSocket sessions open")
        self.utterances_total = self._counter(
            "hearth_utterances_total", "Utterances by outcome", "outcome"
        )
        self.actions_total = self._counter(
            "hearth_actions_total", "Action events by status", "status"
        )
        self.errors_total = self._counter("hearth_errors_total", "Error events by code", "code")
        self.audio_bytes_total = self._counter(
            "hearth_audio_received_bytes_total", "PCM bytes received"
        )
        self.audio_dropped_total = self._counter(
            "hearth_audio_dropped_frames_total", "Audio frames dropped on queue overflow"
        )
        self.asr_jobs = self._gauge("hearth_asr_jobs", "ASR jobs queued or running")
        self.speculations_total = self._counter(
            "hearth_speculations_total",
            "Speculative transcriptions: started, skipped (ASR busy), reused, stale",
            "result",
        )
        self.asr_retries_total = self._counter(
            "hearth_asr_retries_total",
            "Final utterances transcribed again on the full window (nothing decoded)",
        )
        self.asr_shed_total = self._counter(
            "hearth_asr_shed_total",
            "ASR passes skipped because the ASR was overloaded (asr_shed_jobs): final_pass "
            "(cheap settings instead), full_window_retry, acoustic_repair, escalation",
            "skipped",
        )
        for kind in SHED_KINDS:  # every series from the start: 0 says "no shedding"
            self.asr_shed_total.inc(kind, amount=0)
        self.stage_seconds = self._histogram(
            "hearth_stage_seconds", "Per-utterance stage latency", "stage"
        )
        self.speech_end_to_action = self._histogram(
            "hearth_speech_end_to_action_seconds",
            "End of speech to broker acknowledgement of the first command",
        )
        self.endpoint_to_action = self._histogram(
            "hearth_endpoint_to_action_seconds",
            "Endpoint decision to broker acknowledgement of the first command",
        )
        self.speech_end_to_reply = self._histogram(
            "hearth_speech_end_to_reply_seconds",
            "End of speech (input=speech) or the text's arrival (input=text) to the reply's "
            "response.text (reply=text) or its first response.audio chunk (reply=audio) sent",
            "reply",
            "input",
        )

    def asr_shed(
        self, skipped: str, *, session_id: str, utterance_id: str, jobs: int, limit: int
    ) -> None:
        """Count and log (INFO, one line) one pass an overloaded server skipped on a turn
        (``skipped``: one of :data:`SHED_KINDS`), so that understanding less under load is
        never silent."""
        if skipped not in SHED_KINDS:
            raise ValueError(f"unknown shed kind {skipped!r}")
        self.asr_shed_total.inc(skipped)
        logger.info(
            "session %s utterance %s: ASR overloaded (%d jobs queued or running, "
            "asr_shed_jobs %d): %s skipped",
            session_id, utterance_id, jobs, limit, skipped.replace("_", " "),
        )

    def _counter(self, name: str, help_: str, *labels: str) -> Counter:
        m = Counter(name, help_, labels, self._lock)
        self._all.append(m)
        return m

    def _gauge(self, name: str, help_: str, *labels: str) -> Gauge:
        m = Gauge(name, help_, labels, self._lock)
        self._all.append(m)
        return m

    def _histogram(self, name: str, help_: str, *labels: str) -> Histogram:
        m = Histogram(name, help_, labels, self._lock)
        self._all.append(m)
        return m

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for m in self._all:
            lines.extend(m.render())
        return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
