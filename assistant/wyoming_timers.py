"""Timers over Wyoming for :mod:`assistant.wyoming_server`: what a timer sentence changed,
told with the ``wyoming`` package's timer events, and ``timer-finished`` routed to the
connection that set the timer.

* Timers belong to the client's **address** (owner ``wyoming ADDRESS`` in the shared
  :class:`~assistant.answers.timers.TimerManager`): Home Assistant opens one connection per
  sentence, so "cancel the timer" must find the timer an earlier connection set.
* ``timer-started`` / ``timer-updated`` (pause, resume) / ``timer-cancelled`` go out on the
  connection that asked, before ``handled``.
* ``timer-finished`` goes to the connection that set the timer while it is open; otherwise the
  audit log gets the line a WebSocket session that has gone would get.
* A connection waiting for its timers is not closed for idleness before they run out.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Protocol

from wyoming.event import Event
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted, TimerUpdated

if TYPE_CHECKING:
    from assistant.answers.reply import Reply
    from assistant.answers.timers import Timer, TimerManager
    from intents.schema import Intent


class TimerClient(Protocol):
    """A Wyoming connection, as the timers see it."""

    @property
    def open(self) -> bool: ...

    async def send_quietly(self, event: Event) -> None: ...


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-6))


class WyomingTimers:
    """The timers of one Wyoming server (event-loop thread only)."""

    def __init__(self, hearth: Any) -> None:
        self._hearth = hearth
        self._set_by: dict[str, TimerClient] = {}  # timer id -> the connection that set it
        self._owners: set[str] = set()
        self._sends: set[asyncio.Task[None]] = set()

    def manager(self) -> TimerManager | None:
        services = getattr(self._hearth, "answers", None)
        return services.timers if services is not None else None

    def owner(self, client: str) -> str:
        """The timers' owner for a client address (this server hears when they run out)."""
        owner = f"wyoming {client}"
        timers = self.manager()
        if owner not in self._owners and timers is not None:
            timers.attach(owner, self._finished)
            self._owners.add(owner)
        return owner

    def answer(self, conn: TimerClient, client: str, intent: Intent,
               timers: TimerManager) -> tuple[Reply, list[Event]]:
        """Carry out a timer or clock intent; the reply and the timer events to send first."""
        from assistant.answers.timers import answer_local

        owner = self.owner(client)
        before = {t.id: t.paused for t in timers.timers_of(owner)}
        reply = answer_local(intent, timers, owner=owner, utterance_id="wyoming")
        after = timers.timers_of(owner)
        now = timers.now()
        events: list[Event] = []
        still = {t.id for t in after}
        for timer_id in before:
            if timer_id not in still:  # cancelled
                self._set_by.pop(timer_id, None)
                events.append(TimerCancelled(id=timer_id).event())
        for t in after:
            if t.id not in before:  # set now
                self._set_by[t.id] = conn
                total = _seconds(t.duration_s)
                hours, rest = divmod(total, 3600)
                minutes, seconds = divmod(rest, 60)
                events.append(TimerStarted(
                    id=t.id, total_seconds=total, name=t.name, start_hours=hours,
                    start_minutes=minutes, start_seconds=seconds).event())
            elif before[t.id] != t.paused:  # paused or resumed
                events.append(TimerUpdated(id=t.id, is_active=not t.paused,
                                           total_seconds=_seconds(t.remaining(now))).event())
        return reply, events

    def idle_timeout(self, conn: TimerClient, client: str, idle: float) -> float | None:
        """``idle`` counted from the end of the last running timer ``conn`` set; None while
        one of them is paused."""
        timers = self.manager()
        if timers is None or not any(c is conn for c in self._set_by.values()):
            return idle
        mine = [t for t in timers.timers_of(self.owner(client)) if self._set_by.get(t.id) is conn]
        if not mine:
            return idle
        if any(t.paused for t in mine):
            return None
        return idle + max(t.remaining(timers.now()) for t in mine)

    def closed(self, conn: TimerClient) -> None:
        """``conn`` has ended: its timers' ends go to the audit log."""
        for timer_id in [i for i, c in self._set_by.items() if c is conn]:
            del self._set_by[timer_id]

    def _finished(self, t: Timer) -> None:
        conn = self._set_by.pop(t.id, None)
        if conn is None or not conn.open:
            audit = getattr(self._hearth, "audit", None)
            if audit is not None:
                audit.record({
                    "event": "timer.finished", "session": t.owner,
                    "utterance_id": t.utterance_id, "timer_id": t.id, "client_id": t.client,
                    "duration_s": t.duration_s, "name": t.name,
                })
            return
        task = asyncio.create_task(conn.send_quietly(TimerFinished(id=t.id).event()))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def close(self) -> None:
        """The server stops: its owners are detached (their timers report to the audit log)."""
        timers = self.manager()
        for owner in self._owners:
            if timers is not None:
                timers.detach(owner)
        self._owners.clear()
        self._set_by.clear()
        for task in list(self._sends):
            task.cancel()
