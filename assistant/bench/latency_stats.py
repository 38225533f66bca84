"""Pure parts of the latency benchmark: percentiles, and matching the commands an independent
MQTT subscriber saw to the utterances that caused them.

No sockets, no clocks: every time here is a float of one monotonic clock (seconds), taken by the
caller in one process, so the client's send times and the subscriber's arrival times compare
without clock skew.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

#: Frame length the benchmark streams: what microphones and the browser page send.
FRAME_MS = 20


class Summary(TypedDict):
    """Distribution of one measured quantity (milliseconds unless named otherwise)."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    min: float | None
    max: float | None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    This is the definition numpy calls ``linear`` (Hyndman & Fan type 7): for ``n`` sorted
    values the rank is ``(n - 1) * q / 100``. With few samples P99 is close to the maximum,
    which is the honest reading; reports always carry ``n`` beside it.
    Raises ``ValueError`` on an empty sequence or ``q`` outside 0..100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be within 0..100, got {q}")
    xs = sorted(values)
    rank = (len(xs) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (rank - lo))


def summarize(values: Iterable[float | None]) -> Summary:
    """P50/P95/P99, mean, min and max of the values that are not None (NaN counts as None)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not xs:
        return Summary(n=0, p50=None, p95=None, p99=None, mean=None, min=None, max=None)
    return Summary(
        n=len(xs),
        p50=round(percentile(xs, 50), 1),
        p95=round(percentile(xs, 95), 1),
        p99=round(percentile(xs, 99), 1),
        mean=round(sum(xs) / len(xs), 1),
        min=round(min(xs), 1),
        max=round(max(xs), 1),
    )


# -- what was observed -------------------------------------------------------------------


@dataclass
class UtteranceRecord:
    """Everything observed about one spoken command. Times: ``time.monotonic()`` seconds."""

    stream: int
    index: int
    text: str
    voice: str
    intent: str
    device_id: str
    slots: dict[str, Any]
    start_frame: int
    end_frame: int  # the frame holding the last voiced sample
    voiced_ms: float
    t_first_sent: float | None = None
    t_speech_end: float | None = None  # send time of the last voiced frame
    utterance_ids: list[str] = field(default_factory=list)
    t_started: float | None = None  # speech.started received
    t_stopped: float | None = None  # speech.stopped received (the endpoint, seen from outside)
    stopped: dict[str, Any] | None = None
    transcript: str | None = None
    intent_event: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)  # each with "t"
    metrics: dict[str, Any] | None = None
    t_metrics: float | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    # The reply (``response.*`` events), when the session asked for one with audio.
    reply_text: str | None = None
    t_reply_text: float | None = None
    t_first_reply_audio: float | None = None
    reply_end: dict[str, Any] | None = None

    @property
    def start_ms(self) -> float:
        return self.start_frame * FRAME_MS

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.voiced_ms

    @property
    def done(self) -> bool:
        return self.metrics is not None


# -- matching MQTT arrivals to utterances ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message the independent subscriber received. ``t``: monotonic seconds."""

    topic: str
    payload: str
    t: float


@dataclass(slots=True)
class Expectation:
    """What one utterance should make arrive at the broker, and when it could.

    ``commands``: the (topic, payload) pairs the server announced in its ``action`` events for
    this utterance; when it announced none (or no topic), ``topics`` lists the command topics the
    target device listens on, and any payload on them counts.
    ``earliest``: no command caused by this utterance can arrive before its first voiced audio
    was sent. ``latest``: after this, an arrival is not attributed to it (the ``action`` event's
    receive time when there is one: the broker forwarded the command before the server heard the
    PUBACK, so a later arrival must be someone else's).
    """

    key: tuple[int, int]  # (stream, utterance index)
    earliest: float
    latest: float
    commands: list[tuple[str, str]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)


def match_arrivals(
    expectations: Sequence[Expectation],
    arrivals: Sequence[Arrival],
    *,
    slack_s: float = 0.5,
) -> dict[tuple[int, int], Arrival]:
    """Attribute each arrival to at most one utterance and each utterance to its first arrival.

    Exact (topic, payload) matches announced by the server are assigned first, then the
    topic-only fallbacks, so a guess never steals an arrival that an announced command owns.
    Within a pass, utterances are taken in order of ``earliest`` and each takes the earliest
    unclaimed arrival inside ``[earliest, latest + slack_s]``. The slack covers a subscriber
    process that was descheduled between the broker's forward and its clock read, on a loaded
    machine; it is harmless because an earlier arrival is always preferred. Greedy by time is
    optimal here: two utterances only compete for one (topic, payload) when two streams say the
    same command within one latency of each other, and then the earlier speaker's command
    arrived first.
    """
    order = sorted(arrivals, key=lambda a: a.t)
    claimed: set[int] = set()
    out: dict[tuple[int, int], Arrival] = {}
    by_start = sorted(expectations, key=lambda e: e.earliest)

    def take(exp: Expectation, ok: set[tuple[str, str]] | None, topics: set[str] | None) -> None:
        for i, a in enumerate(order):
            if a.t < exp.earliest:
                continue
            if a.t > exp.latest + slack_s:
                break
            if i in claimed:
                continue
            if ok is not None and (a.topic, a.payload) not in ok:
                continue
            if topics is not None and a.topic not in topics:
                continue
            claimed.add(i)
            out[exp.key] = a
            return

    for exp in by_start:
        if exp.commands:
            take(exp, set(exp.commands), None)
    for exp in by_start:
        if exp.key not in out and not exp.commands and exp.topics:
            take(exp, None, set(exp.topics))
    return out


# -- judging one utterance ---------------------------------------------------------------

#: JSON keys that differ between two publishes of the same command (Shelly RPC request ids).
_VOLATILE_KEYS = frozenset({"id", "src"})


def _normalized(payload: str) -> Any:
    try:
        obj = json.loads(payload)
    except ValueError:
        return payload.strip()
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k not in _VOLATILE_KEYS}
    return obj


def same_command(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two (topic, payload) publishes are the same command: same topic and payload,
    JSON payloads compared as objects without request ids (``{"id": 7, ...}`` per RPC call)."""
    return a[0] == b[0] and (a[1] == b[1] or _normalized(a[1]) == _normalized(b[1]))


def _slot_ok(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return abs(float(expected) - float(got)) < 0.51
    return bool(expected == got)


def judge(
    rec: UtteranceRecord,
    expected: Sequence[tuple[str, str]],
    arrival: Arrival | None,
) -> tuple[bool, str]:
    """Command acceptance: did this utterance make the right command arrive at the broker?

    Accepted when the arrival attributed to this utterance (:func:`match_arrivals`) equals one
    of ``expected``, the adapter's commands for the spoken intent (:func:`same_command`). Any
    arrival of the right command is not enough: with many streams another stream may have said
    the same command at the same time. Otherwise the reason names the first stage that went
    wrong, from the server's events.
    """
    if arrival is not None and any(
        same_command((arrival.topic, arrival.payload), e) for e in expected
    ):
        extra = [a for a in rec.actions
                 if a.get("topic") and a.get("status") in ("published", "confirmed", "unconfirmed")
                 and not any(same_command((str(a["topic"]), str(a.get("payload") or "")), e)
                             for e in expected)]
        if extra:
            # the right command and another one too ("turn off the tv plug" once also locked
            # the front door, from "plug" heard alone after an early end)
            a = extra[0]
            return False, (f"extra command {a['topic']} {str(a.get('payload'))[:60]} for "
                           f"{rec.transcript!r}")[:200]
        return True, "ok"
    if arrival is not None:
        return False, f"wrong command {arrival.topic} {arrival.payload[:60]} for {rec.transcript!r}"
    if not rec.utterance_ids:
        return False, "no speech detected"
    if rec.errors:
        return False, f"error {rec.errors[0].get('code')}"
    ev = rec.intent_event
    intent = ev.get("intent") if ev else None
    if not isinstance(intent, dict):
        reason = ev.get("reason", "") if ev else "no intent event"
        return False, f"no intent for {rec.transcript!r}: {reason}"[:200]
    if intent.get("name") != rec.intent:
        return False, f"intent {intent.get('name')} for {rec.transcript!r}"[:200]
    slots = intent.get("slots") or {}
    if rec.device_id not in (slots.get("device_ids") or []):
        return False, f"devices {slots.get('device_ids')} for {rec.transcript!r}"[:200]
    for k, v in rec.slots.items():
        if not _slot_ok(v, slots.get(k)):
            return False, f"slot {k}={slots.get(k)!r} for {rec.transcript!r}"[:200]
    statuses = [a.get("status") for a in rec.actions]
    if not statuses:
        return False, "right intent, no action event"
    return False, f"right intent, actions {statuses}, no matching command at the broker"


def expectation_for(
    rec: UtteranceRecord, expected: Sequence[tuple[str, str]], timeout_s: float
) -> Expectation | None:
    """The matching window of one utterance (None when its audio never went out)."""
    if rec.t_first_sent is None or rec.t_speech_end is None:
        return None
    announced = [
        (str(a["topic"]), str(a.get("payload") or ""))
        for a in rec.actions
        if a.get("topic") and a.get("status") in ("published", "confirmed", "unconfirmed")
    ]
    action_times = [float(a["t"]) for a in rec.actions if a.get("topic")]
    latest = max(action_times) if action_times else rec.t_speech_end + timeout_s
    return Expectation(
        key=(rec.stream, rec.index),
        earliest=rec.t_first_sent,
        latest=latest,
        commands=announced,
        topics=[] if announced else sorted({t for t, _ in expected}),
    )


def utterance_result(
    rec: UtteranceRecord, arrival: Arrival | None, accepted: bool, reason: str
) -> dict[str, Any]:
    """One utterance's row in the report: texts, what happened, and its latencies (ms)."""

    def ms(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 1000.0, 1)

    t_action = arrival.t if arrival else None
    first_pub = next((a for a in rec.actions if a.get("status") == "published"), None)
    intent = (rec.intent_event or {}).get("intent")
    return {
        "stream": rec.stream,
        "index": rec.index,
        "voice": rec.voice,
        "text": rec.text,
        "transcript": rec.transcript,
        "expected": {"intent": rec.intent, "device_id": rec.device_id, "slots": rec.slots},
        "intent": intent.get("name") if isinstance(intent, dict) else None,
        "accepted": accepted,
        "reason": reason,
        "utterance_ids": rec.utterance_ids,
        "outcome": (rec.metrics or {}).get("outcome"),
        "voiced_ms": round(rec.voiced_ms, 1),
        "command": None
        if arrival is None
        else {"topic": arrival.topic, "payload": arrival.payload},
        "speech_end_to_action_ms": ms(rec.t_speech_end, t_action),
        "endpoint_to_action_ms": ms(rec.t_stopped, t_action),
        "speech_end_to_endpoint_event_ms": ms(rec.t_speech_end, rec.t_stopped),
        "speech_end_to_published_event_ms": ms(
            rec.t_speech_end, float(first_pub["t"]) if first_pub else None
        ),
        "reply_text": rec.reply_text,
        "speech_end_to_reply_text_ms": ms(rec.t_speech_end, rec.t_reply_text),
        "speech_end_to_first_reply_audio_ms": ms(rec.t_speech_end, rec.t_first_reply_audio),
        "reply_audio_ms": (rec.reply_end or {}).get("audio_ms"),
        "reply_synthesis_ms": ((rec.reply_end or {}).get("timings_ms") or {}).get("synthesis"),
        "reply_synthesized_audio_ms": ((rec.reply_end or {}).get("timings_ms") or {}).get(
            "synthesized_audio"
        ),
        "reply_cached_sentences": (rec.reply_end or {}).get("cached_sentences"),
        "server_timings_ms": (rec.metrics or {}).get("timings_ms"),
        "server_speech_end_ms": (rec.stopped or {}).get("speech_end_ms"),
        "server_endpoint_audio_ms": (rec.stopped or {}).get("audio_ms"),
        "endpoint_reason": (rec.stopped or {}).get("reason"),
        "client_speech_end_ms": round(rec.end_ms, 1),
        "errors": [{"code": e.get("code"), "message": e.get("message")} for e in rec.errors],
    }


def _slowest_replies(rows: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The ``n`` accepted turns with the latest first reply audio, each split into speech end
    → action (hearing), action → reply text (the device's confirmation) and reply text →
    first audio (synthesis), with how the turn ended and whether its reply was cached."""
    timed = [
        r for r in rows if r["accepted"] and r.get("speech_end_to_first_reply_audio_ms") is not None
    ]
    timed.sort(key=lambda r: -float(r["speech_end_to_first_reply_audio_ms"]))
    out = []
    for r in timed[:n]:
        act, text = r["speech_end_to_action_ms"], r["speech_end_to_reply_text_ms"]
        audio = r["speech_end_to_first_reply_audio_ms"]
        out.append(
            {
                "reply_text": r.get("reply_text"),
                "endpoint_reason": r.get("endpoint_reason"),
                "speech_end_to_first_reply_audio_ms": audio,
                "speech_end_to_action_ms": act,
                "action_to_reply_text_ms": None
                if act is None or text is None
                else round(text - act, 1),
                "reply_text_to_first_audio_ms": None if text is None else round(audio - text, 1),
                "cached_sentences": r.get("reply_cached_sentences"),
            }
        )
    return out


def _rtf(rows: Sequence[dict[str, Any]]) -> float | None:
    made = [  # servers that say how much of each reply they synthesized
        (float(r["reply_synthesis_ms"]), float(r["reply_synthesized_audio_ms"]))
        for r in rows
        if r.get("reply_synthesis_ms") is not None and r.get("reply_synthesized_audio_ms")
    ]
    if made:
        return round(sum(s for s, _ in made) / sum(a for _, a in made), 3)
    pairs = [
        (float(r["reply_synthesis_ms"]), float(r["reply_audio_ms"]))
        for r in rows
        if r.get("reply_synthesis_ms") is not None
        and r.get("reply_audio_ms")
        and not r.get("reply_cached_sentences")  # synthesized here, not taken from the cache
    ]
    if not pairs:
        return None
    return round(sum(s for s, _ in pairs) / sum(a for _, a in pairs), 3)


def analyze(
    records: Sequence[UtteranceRecord],
    expected: Sequence[Sequence[tuple[str, str]]],
    arrivals: Sequence[Arrival],
    *,
    timeout_s: float,
    matched: dict[tuple[int, int], Arrival] | None = None,
) -> dict[str, Any]:
    """Match, judge and summarize one run. ``expected[i]``: the adapter's commands for
    ``records[i]``; ``matched``: attribution done beforehand over a larger set of records
    (several servers sharing one broker). Returns the report's measurement sections."""
    if matched is None:
        exps = [expectation_for(r, e, timeout_s) for r, e in zip(records, expected, strict=True)]
        matched = match_arrivals([e for e in exps if e is not None], arrivals)
    rows = []
    for rec, exp in zip(records, expected, strict=True):
        arrival = matched.get((rec.stream, rec.index))
        ok, reason = judge(rec, exp, arrival)
        rows.append(utterance_result(rec, arrival, ok, reason))
    stage_names: list[str] = []
    for row in rows:
        for k in row["server_timings_ms"] or {}:
            if k not in stage_names:
                stage_names.append(k)
    stages = {
        k: summarize(
            (row["server_timings_ms"] or {}).get(k) for row in rows if row["outcome"] == "actions"
        )
        for k in stage_names
    }
    accepted = sum(1 for r in rows if r["accepted"])
    reasons: dict[str, list[float | None]] = {}
    for r in rows:
        if r["endpoint_reason"] is not None:
            ms = r["speech_end_to_action_ms"]
            reasons.setdefault(str(r["endpoint_reason"]), []).append(
                ms if ms is None or ms >= 0 else None
            )
    return {
        # A command that reached the broker before the speaker finished (the turn ended early
        # on a complete prefix: "next" of "next song on the speaker") has no meaningful
        # speech-end latency; it is counted apart rather than pulling the percentiles down.
        "speech_end_to_action_ms": summarize(
            r["speech_end_to_action_ms"]
            for r in rows
            if r["speech_end_to_action_ms"] is not None and r["speech_end_to_action_ms"] >= 0
        ),
        "acted_before_speech_end": [
            {"text": r["text"], "transcript": r["transcript"], "ms": r["speech_end_to_action_ms"]}
            for r in rows
            if r["speech_end_to_action_ms"] is not None and r["speech_end_to_action_ms"] < 0
        ],
        "endpoint_to_action_ms": summarize(r["endpoint_to_action_ms"] for r in rows),
        "speech_end_to_endpoint_event_ms": summarize(
            r["speech_end_to_endpoint_event_ms"] for r in rows
        ),
        # The server's own speech_end_to_action against ours: how far its self-measurement
        # (its VAD's idea of speech end, its PUBACK time) can be trusted.
        "outside_minus_server_ms": summarize(
            r["speech_end_to_action_ms"] - r["server_timings_ms"]["speech_end_to_action"]
            for r in rows
            if r["speech_end_to_action_ms"] is not None
            and (r["server_timings_ms"] or {}).get("speech_end_to_action") is not None
        ),
        # Where the server's VAD put the end of speech, against where the voice really ended
        # (stream positions): positive = the server thinks speech ended later.
        "server_vad_end_offset_ms": summarize(
            r["server_speech_end_ms"] - r["client_speech_end_ms"]
            for r in rows
            if r["server_speech_end_ms"] is not None
        ),
        # speech end -> endpoint split in two: audio the server consumed after the true end
        # before deciding (VAD lag, pause, speculative ASR, end-of-turn silence: real-time
        # waiting), and the rest (the server running behind real time, event delivery).
        "endpoint_audio_after_speech_end_ms": summarize(
            r["server_endpoint_audio_ms"] - r["client_speech_end_ms"]
            for r in rows
            if r["server_endpoint_audio_ms"] is not None
        ),
        "endpoint_behind_real_time_ms": summarize(
            r["speech_end_to_endpoint_event_ms"]
            - (r["server_endpoint_audio_ms"] - r["client_speech_end_ms"])
            for r in rows
            if r["server_endpoint_audio_ms"] is not None
            and r["speech_end_to_endpoint_event_ms"] is not None
        ),
        "accepted_speech_end_to_action_ms": summarize(
            r["speech_end_to_action_ms"]
            for r in rows
            if r["accepted"] and (r["speech_end_to_action_ms"] or 0) >= 0
        ),
        "server_stages_ms": stages,
        # Spoken replies (``--reply-audio``): speech end -> the reply's text and its first
        # audio chunk as received, and the voice's real-time factor (synthesis / audio).
        "speech_end_to_reply_text_ms": summarize(
            r["speech_end_to_reply_text_ms"] for r in rows if r["accepted"]
        ),
        "speech_end_to_first_reply_audio_ms": summarize(
            r["speech_end_to_first_reply_audio_ms"] for r in rows if r["accepted"]
        ),
        # where the reply's time goes: the device's confirmation (action -> reply text, a
        # reply is said once the devices confirm) and synthesis (text -> first audio)
        "action_to_reply_text_ms": summarize(
            r["speech_end_to_reply_text_ms"] - r["speech_end_to_action_ms"]
            for r in rows
            if r["accepted"]
            and r["speech_end_to_reply_text_ms"] is not None
            and r["speech_end_to_action_ms"] is not None
        ),
        "reply_text_to_first_audio_ms": summarize(
            r["speech_end_to_first_reply_audio_ms"] - r["speech_end_to_reply_text_ms"]
            for r in rows
            if r["accepted"]
            and r["speech_end_to_first_reply_audio_ms"] is not None
            and r["speech_end_to_reply_text_ms"] is not None
        ),
        "slowest_replies": _slowest_replies(rows),
        "tts_real_time_factor": _rtf(rows),
        "replies_from_cache": sum(1 for r in rows if r.get("reply_cached_sentences")),
        # Why each turn ended (grammar-complete early end vs plain silence, ...), with the
        # latency of each kind: how often the fast path was taken.
        "by_endpoint_reason": {
            k: {"count": len(v), "speech_end_to_action_ms": summarize(v)}
            for k, v in sorted(reasons.items())
        },
        "acceptance": {
            "utterances": len(rows),
            "accepted": accepted,
            "rate": round(accepted / len(rows), 4) if rows else None,
            "with_command": sum(1 for r in rows if r["command"] is not None),
        },
        "utterances": rows,
    }
