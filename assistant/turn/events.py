"""Events out of one session: every event the stages produce goes through :meth:`Events.emit`,
which counts errors and actions, keeps the audit trail's row per utterance, and hands the event
to the server's synchronous ``emit`` (its bounded outbox; a list in tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistant.protocol import (
    ActionEvent,
    ErrorCode,
    ErrorEvent,
    IntentEvent,
    MetricsEvent,
    ProtocolError,
    ResponseAudio,
    ResponseDone,
    ResponseInterrupted,
    ResponseText,
    TimerFinished,
    TranscriptFinal,
)
from assistant.turn.types import Emit, SessionResources

#: Minimum seconds between two ``audio_overflow`` / ``rate_limited`` error events of a session.
ERROR_REPORT_INTERVAL_S = 1.0


class Events:
    """The session's way out. Synchronous, so that callbacks from the dispatcher and results
    from worker threads emit without scheduling tasks, which keeps event order
    deterministic."""

    def __init__(
        self,
        resources: SessionResources,
        emit: Emit,
        *,
        session_id: str,
        client: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._emit_raw = emit
        self._session_id = session_id
        self._client = client
        self._clock = clock
        self._last_report: dict[ErrorCode, float] = {}
        self._audit_rows: dict[str, dict[str, Any]] = {}

    def emit(self, event: Any) -> None:
        if isinstance(event, ErrorEvent):
            self._res.metrics.errors_total.inc(event.code.value)
        elif isinstance(event, ActionEvent):
            self._res.metrics.actions_total.inc(event.status)
        if self._res.audit is not None:
            self._audit_event(event)
        self._emit_raw(event)

    def error(self, code: ErrorCode, message: str, *, utterance_id: str | None = None) -> None:
        """Send an ``error`` event (the one place errors are counted)."""
        self.emit(ErrorEvent(code=code, message=message, utterance_id=utterance_id))

    def error_throttled(self, code: ErrorCode, message: str) -> None:
        """An ``error`` event at most once per :data:`ERROR_REPORT_INTERVAL_S` per code."""
        now = self._clock()
        if now - self._last_report.get(code, -1e9) >= ERROR_REPORT_INTERVAL_S:
            self._last_report[code] = now
            self.error(code, message)

    def report(self, exc: ProtocolError) -> None:
        """Map a protocol error to an event (overload errors throttled)."""
        if exc.code in (ErrorCode.RATE_LIMITED, ErrorCode.AUDIO_OVERFLOW):
            self.error_throttled(exc.code, exc.message)
        else:
            self.error(exc.code, exc.message, utterance_id=exc.utterance_id)

    def _audit_event(self, event: Any) -> None:
        uid = getattr(event, "utterance_id", None)
        if uid is None:
            return
        if isinstance(event, ResponseText):
            # The reply comes before the turn's metrics; a later one (a timer's
            # announcement) belongs to no open row.
            if uid in self._audit_rows:
                self._audit_rows[uid]["reply"] = event.text
            return
        if isinstance(event, ResponseAudio | ResponseDone | ResponseInterrupted | TimerFinished):
            return  # may come after the turn's metrics: never open a row for them
        row = self._audit_rows.setdefault(uid, {"actions": []})
        if isinstance(event, TranscriptFinal):
            row["transcript"], row["source"] = event.text, event.source
        elif isinstance(event, IntentEvent):
            row["intent"] = None if event.intent is None else event.intent.name
            row["slots"] = (
                None
                if event.intent is None
                else event.intent.slots.model_dump(mode="json", exclude_defaults=True)
            )
            row["confidence"] = event.confidence
            row["reason"] = event.reason
        elif isinstance(event, ActionEvent) and event.final:
            row["actions"].append(
                {
                    "device_id": event.device_id,
                    "intent": event.intent,
                    "status": event.status,
                    "topic": event.topic,
                    "payload": event.payload,
                    "detail": event.detail,
                }
            )
        elif isinstance(event, ErrorEvent):
            row["error"] = event.code.value
        elif isinstance(event, MetricsEvent) and self._res.audit is not None:
            row = self._audit_rows.pop(uid)
            self._res.audit.record(
                {
                    "session": self._session_id,
                    "client": self._client,
                    "utterance_id": uid,
                    "outcome": event.outcome,
                    **row,
                }
            )
