"""The server's events for :mod:`assistant.client`, sans-I/O: decoding a text frame (never
failing on an unknown shape), and grouping events per utterance until it is done.
Re-exported by :mod:`assistant.client`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from assistant.protocol import (
    ActionEvent,
    ErrorEvent,
    IntentEvent,
    MetricsEvent,
    ResponseAudio,
    ResponseDone,
    ResponseInterrupted,
    ResponseText,
    ServerEvent,
    SessionCreated,
    TranscriptFinal,
    parse_server_event,
)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event this client version cannot decode (a newer server, or a malformed event).

    Kept rather than dropped so that printing every event stays true to the wire."""

    type: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


Event: TypeAlias = ServerEvent | UnknownEvent


def decode_event(data: str | bytes) -> Event:
    """Decode one server text frame; never raises for a JSON object of an unknown shape."""
    try:
        return parse_server_event(data)
    except ValueError:
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            kind = obj.get("type")
            return UnknownEvent(type=kind if isinstance(kind, str) else "?", data=obj)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return UnknownEvent(type="?", data={"raw": text[:200]})


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event, as it was on the wire (for printing)."""
    return event.to_dict()


# -- utterance tracking (sans-I/O) ---------------------------------------------------------


#: Final action statuses that mean the device did what was asked.
SUCCESS_STATUSES: Final = frozenset({"confirmed"})


@dataclass
class Utterance:
    """What the server reported about one utterance, in arrival order."""

    utterance_id: str
    transcript: TranscriptFinal | None = None
    intent: IntentEvent | None = None
    actions: list[ActionEvent] = field(default_factory=list)
    errors: list[ErrorEvent] = field(default_factory=list)
    metrics: MetricsEvent | None = None
    #: The reply (``response.text``), its audio (PCM s16le at ``reply_rate``) and how the
    #: audio ended (``response.done`` or ``response.interrupted``).
    reply: ResponseText | None = None
    reply_audio: bytearray = field(default_factory=bytearray)
    reply_rate: int | None = None
    reply_end: ResponseDone | ResponseInterrupted | None = None

    @property
    def done(self) -> bool:
        """True once the ``metrics`` event (always the utterance's last) has arrived."""
        return self.metrics is not None

    @property
    def reply_pending(self) -> bool:
        """A reply's audio is still coming (``response.text`` said so, no end yet)."""
        return self.reply is not None and self.reply.audio and self.reply_end is None

    @property
    def final_actions(self) -> list[ActionEvent]:
        return [a for a in self.actions if a.final]

    @property
    def ok(self) -> bool:
        """Finished with an intent whose every final action is ``confirmed``, and no error.

        A query intent (no device command) with outcome ``actions`` and no failures is ok."""
        if not self.done or self.errors or self.metrics is None:
            return False
        if self.metrics.outcome != "actions":
            return False
        return all(a.status in SUCCESS_STATUSES for a in self.final_actions)

    @property
    def summary(self) -> str:
        """One line for humans: why the utterance did or did not succeed."""
        if self.errors:
            e = self.errors[0]
            return f"error {e.code}: {e.message}"
        if self.metrics is None:
            return "unfinished"
        if self.metrics.outcome != "actions":
            reason = f": {self.intent.reason}" if self.intent is not None else ""
            return f"{self.metrics.outcome}{reason}"
        bad = [a for a in self.final_actions if a.status not in SUCCESS_STATUSES]
        if bad:
            return ", ".join(f"{a.device_id}: {a.status} {a.detail}".strip() for a in bad)
        return "ok"


class UtteranceTracker:
    """Feed it every event; it groups them by utterance and says which are finished.

    Errors without an ``utterance_id`` are kept in :attr:`session_errors`: they concern the
    session (a rejected message, rate limiting) rather than one utterance.
    """

    def __init__(self) -> None:
        self.utterances: dict[str, Utterance] = {}
        self.session_errors: list[ErrorEvent] = []
        self.session: SessionCreated | None = None

    def feed(self, event: Event) -> Utterance | None:
        """Record one event; return the utterance it belongs to, if any."""
        if isinstance(event, UnknownEvent):
            return None
        if isinstance(event, SessionCreated):
            self.session = event
            return None
        if isinstance(event, ErrorEvent) and event.utterance_id is None:
            self.session_errors.append(event)
            return None
        uid: str | None = getattr(event, "utterance_id", None)
        if uid is None:
            return None
        utt = self.utterances.get(uid)
        if utt is None:
            utt = self.utterances[uid] = Utterance(uid)
        if isinstance(event, TranscriptFinal):
            utt.transcript = event
        elif isinstance(event, IntentEvent):
            utt.intent = event
        elif isinstance(event, ActionEvent):
            utt.actions.append(event)
        elif isinstance(event, ErrorEvent):
            utt.errors.append(event)
        elif isinstance(event, MetricsEvent):
            utt.metrics = event
        elif isinstance(event, ResponseText):
            if utt.reply is None or utt.reply_end is not None:  # a later reply (a timer)
                utt.reply, utt.reply_end = event, None
                utt.reply_audio.clear()
        elif isinstance(event, ResponseAudio):
            utt.reply_rate = event.sample_rate
            utt.reply_audio += base64.b64decode(event.audio)
        elif isinstance(event, ResponseDone | ResponseInterrupted):
            utt.reply_end = event
        return utt

    @property
    def pending(self) -> list[Utterance]:
        return [u for u in self.utterances.values() if not u.done]

    @property
    def finished(self) -> list[Utterance]:
        return [u for u in self.utterances.values() if u.done]

    @property
    def all_done(self) -> bool:
        return all(u.done and not u.reply_pending for u in self.utterances.values())
