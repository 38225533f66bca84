"""Timers and the clock: the intents the session answers itself (``intents.timers``).

:class:`TimerManager` is shared by the server's sessions. A timer belongs to the session that
set it; when it runs out, that session is told (``timer.finished`` and a spoken reply) if it is
still connected, else the audit log gets a line (``event: timer.finished``). Timers run on the
event loop (``loop.call_later``); pausing keeps the time left.

:func:`answer_local` answers one local intent with a :class:`~assistant.answers.reply.Reply`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from assistant.answers.reply import Reply, reply_language, templates
from intents.schema import Intent
from intents.timers import (
    DATE_GET,
    TIME_GET,
    TIMER_CANCEL,
    TIMER_PAUSE,
    TIMER_RESUME,
    TIMER_START,
    TIMER_STATUS,
)

logger = logging.getLogger(__name__)

#: How long a shared timer's reply waits for its record to reach the broker.
SETTLE_TIMEOUT_S: Final = 2.0


class AuditLike(Protocol):
    def record(self, row: dict[str, Any]) -> None: ...


class TimerShare(Protocol):
    """What the timers need from the replicas' broker share (:class:`assistant.replicas.Share`)."""

    replica: str

    @property
    def tag(self) -> str: ...

    def can_fire(self) -> bool: ...

    def should_claim(self, holder: str | None) -> bool: ...

    def put_timer(self, record: dict[str, Any]) -> None: ...

    def clear_timer(self, client: str, timer_id: str) -> None: ...

    def timer_finished(self, record: dict[str, Any]) -> None: ...

    async def settled(self, within_s: float) -> bool: ...


#: Seconds a holder cut off from the broker waits before trying to fire again.
FIRE_RETRY_S = 0.5


@dataclass
class Timer:
    id: str
    owner: str  # session id ("" for a mirror no session here has taken yet)
    utterance_id: str
    duration_s: float
    language: str
    name: str | None = None
    client: str | None = None  # the client id it was set under (it follows the client)
    ends_at: float | None = None  # clock time it runs out (None: paused)
    left_s: float = 0.0  # time left when paused
    handle: asyncio.TimerHandle | None = None
    #: The replica that counts it down and fires it (None: not shared, this process).
    holder: str | None = None

    def remaining(self, now: float) -> float:
        if self.ends_at is None:
            return self.left_s
        return max(0.0, self.ends_at - now)

    @property
    def paused(self) -> bool:
        return self.ends_at is None


#: Called when a timer of a connected session runs out.
OnFinished = Callable[[Timer], None]


class TimerManager:
    """Every timer of the server (event-loop thread only).

    Shared (:meth:`share_with`): a timer set under a client id is also a retained record on
    the broker (:mod:`assistant.replicas`); other replicas keep a mirror of it, answer "how
    much time is left" from it, and write pause/resume/cancel to the record; only its holder
    fires it."""

    def __init__(
        self,
        *,
        audit: AuditLike | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._wall = wall
        self._timers: dict[str, Timer] = {}
        self._owners: dict[str, OnFinished] = {}
        self._client_of: dict[str, str] = {}  # session id -> client id
        self._ids = itertools.count(1)
        self._share: TimerShare | None = None
        #: Timer ids the broker has records of, while re-reading them after a reconnect.
        self._seen: set[str] | None = None

    def share_with(self, share: TimerShare) -> None:
        """Share the timers of client ids with other replicas through ``share``."""
        self._share = share

    async def settled(self, within_s: float = SETTLE_TIMEOUT_S) -> bool:
        """Wait until the records written so far are on the broker, so that a timer reported
        set survives its replica dying the next moment (another claims it). True at once
        when not shared; False (logged) when the broker did not take them in ``within_s``:
        the timer still runs here."""
        if self._share is None:
            return True
        ok = await self._share.settled(within_s)
        if not ok:
            logger.warning("timer records not on the broker after %.1f s", within_s)
        return ok

    # -- sessions ----------------------------------------------------------------------

    def attach(self, session_id: str, on_finished: OnFinished) -> None:
        self._owners[session_id] = on_finished

    def detach(self, session_id: str) -> None:
        """The session is gone; its timers keep running and report to the audit log (or to
        the next session of the same client id)."""
        self._owners.pop(session_id, None)
        client = self._client_of.pop(session_id, None)
        heir = next(
            (s for s, c in self._client_of.items() if c == client and s in self._owners), None
        )
        if heir is not None:  # the client reconnected before this session was closed
            for t in self._timers.values():
                if t.owner == session_id and t.client == client:
                    t.owner = heir

    def adopt(self, session_id: str, client_id: str) -> list[Timer]:
        """``session_id`` now speaks for ``client_id``: its timers are set under that id, and
        running timers of that client whose session has gone come back to it (with replicas:
        those set on another replica too)."""
        self._client_of[session_id] = client_id
        adopted: list[Timer] = []
        for t in list(self._timers.values()):
            if t.owner == session_id:
                if t.client != client_id:
                    if t.client is not None:
                        self._unpublish(t)
                    t.client = client_id
                    self._publish(t)
            elif t.client == client_id and t.owner not in self._owners:
                t.owner = session_id
                adopted.append(t)
        return adopted

    def _session_of(self, client_id: str) -> str | None:
        """The latest connected session here that speaks for ``client_id``."""
        found = [s for s, c in self._client_of.items() if c == client_id and s in self._owners]
        return found[-1] if found else None

    # -- timers ------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def start(
        self,
        owner: str,
        seconds: float,
        *,
        utterance_id: str,
        language: str = "en",
        name: str | None = None,
        client: str | None = None,
    ) -> Timer:
        n = next(self._ids)
        t = Timer(
            id=f"t{n}" if self._share is None else f"t{n}-{self._share.tag}",
            owner=owner,
            utterance_id=utterance_id,
            duration_s=seconds,
            language=language,
            name=name,
            client=client,
            holder=None if self._share is None else self._share.replica,
        )
        self._timers[t.id] = t
        self._run(t, seconds)
        self._publish(t)
        return t

    def _held(self, t: Timer) -> bool:
        """This process counts ``t`` down (it is not another replica's)."""
        return t.holder is None or self._share is None or t.holder == self._share.replica

    def _run(self, t: Timer, seconds: float) -> None:
        t.ends_at = self._clock() + seconds
        if t.handle is not None:
            t.handle.cancel()
            t.handle = None
        if self._held(t):
            t.handle = asyncio.get_running_loop().call_later(max(0.0, seconds), self._fire, t)

    def timers_of(self, owner: str) -> list[Timer]:
        return [t for t in self._timers.values() if t.owner == owner]

    def _latest(self, owner: str, *, paused: bool | None = None) -> Timer | None:
        mine = [t for t in self.timers_of(owner) if paused is None or t.paused == paused]
        return mine[-1] if mine else None

    def pause(self, owner: str) -> Timer | None:
        t = self._latest(owner, paused=False)
        if t is None:
            return None
        self._pause(t, t.remaining(self._clock()))
        self._publish(t)
        return t

    def _pause(self, t: Timer, left_s: float) -> None:
        t.left_s = left_s
        t.ends_at = None
        if t.handle is not None:
            t.handle.cancel()
            t.handle = None

    def resume(self, owner: str) -> Timer | None:
        t = self._latest(owner, paused=True)
        if t is not None:
            self._run(t, t.left_s)
            self._publish(t)
        return t

    def cancel(self, owner: str, *, every: bool = False) -> list[Timer]:
        mine = self.timers_of(owner)
        gone = mine if every else mine[-1:]
        for t in gone:
            if t.handle is not None:
                t.handle.cancel()
            self._timers.pop(t.id, None)
            self._unpublish(t)
        return gone

    def _fire(self, t: Timer) -> None:
        t.handle = None
        if self._share is not None and t.client is not None and not self._share.can_fire():
            # Cut off from the broker: another replica may be claiming it. Fire once back in
            # step, if it is still ours then.
            t.handle = asyncio.get_running_loop().call_later(FIRE_RETRY_S, self._fire, t)
            return
        self._timers.pop(t.id, None)
        if self._share is not None and t.client is not None:
            self._share.timer_finished(self._record(t))
        if self._announce(t):
            return
        if self._audit is not None:
            self._audit.record(
                {
                    "event": "timer.finished",
                    "session": t.owner or None,
                    "utterance_id": t.utterance_id,
                    "timer_id": t.id,
                    "client_id": t.client,
                    "duration_s": t.duration_s,
                    "name": t.name,
                }
            )

    def _announce(self, t: Timer) -> bool:
        """Tell the session here that has ``t`` (True), if one is connected."""
        callback = self._owners.get(t.owner)
        if callback is None:
            return False
        try:
            callback(t)
            return True
        except Exception:
            logger.exception("timer %s: announcing failed", t.id)
            return False

    def close(self) -> None:
        for t in self._timers.values():
            if t.handle is not None:
                t.handle.cancel()
        self._timers.clear()

    # -- shared with other replicas ------------------------------------------------------

    def _record(self, t: Timer) -> dict[str, Any]:
        ends_at = None if t.ends_at is None else self._wall() + (t.ends_at - self._clock())
        return {
            "id": t.id,
            "client": t.client,
            "holder": t.holder,
            "utterance_id": t.utterance_id,
            "duration_s": t.duration_s,
            "language": t.language,
            "name": t.name,
            "ends_at": ends_at,
            "left_s": t.left_s,
        }

    def _publish(self, t: Timer) -> None:
        if self._share is not None and t.client is not None:
            self._share.put_timer(self._record(t))

    def _unpublish(self, t: Timer) -> None:
        if self._share is not None and t.client is not None:
            self._share.clear_timer(t.client, t.id)

    def _apply(self, t: Timer, record: dict[str, Any]) -> None:
        """The record's countdown (running: until ``ends_at``; paused: ``left_s``)."""
        ends_at = record.get("ends_at")
        if ends_at is None:
            self._pause(t, float(record.get("left_s") or 0.0))
        else:
            self._run(t, float(ends_at) - self._wall())

    def remote(self, client: str, timer_id: str, record: dict[str, Any] | None) -> None:
        """Another replica wrote the timer ``timer_id`` of ``client`` (None: emptied)."""
        t = self._timers.get(timer_id)
        if record is None:  # cancelled (or fired) elsewhere
            if t is not None:
                if t.handle is not None:
                    t.handle.cancel()
                self._timers.pop(timer_id, None)
            return
        if record.get("state") == "finished":  # its holder fired it: tell a session here
            if t is not None and self._held(t):
                return
            self._timers.pop(timer_id, None)
            heard = t or self._from_record(client, timer_id, record)
            if heard.owner not in self._owners:
                heard.owner = self._session_of(client) or ""
            self._announce(heard)
            return
        holder = record.get("holder")
        assert self._share is not None
        if holder == self._share.replica and (t is None or not self._held(t)):
            # A record names us for a timer we do not run (it fired meanwhile): empty it.
            self._share.clear_timer(client, timer_id)
            return
        if t is None:
            t = self._from_record(client, timer_id, record)
            self._timers[timer_id] = t
        t.holder = str(holder) if holder is not None else None
        t.name = record.get("name", t.name)
        self._apply(t, record)  # also stops our countdown if another replica claimed it
        if self._share.should_claim(t.holder):
            self._claim(t)

    def _from_record(self, client: str, timer_id: str, record: dict[str, Any]) -> Timer:
        return Timer(
            id=timer_id,
            owner=self._session_of(client) or "",
            utterance_id=str(record.get("utterance_id", "")),
            duration_s=float(record.get("duration_s") or 0.0),
            language=str(record.get("language") or "en"),
            name=record.get("name"),
            client=client,
            holder=record.get("holder"),
        )

    def resync(self) -> None:
        """Reconnected: the broker's retained records come again; note which (:meth:`seen`)."""
        self._seen = set()

    def seen(self, timer_id: str) -> None:
        if self._seen is not None:
            self._seen.add(timer_id)

    def resynced(self) -> None:
        """Every retained record is here: a mirror the broker no longer has was cancelled or
        fired while we were away (an emptied record is not sent again)."""
        seen, self._seen = self._seen, None
        if seen is None:
            return
        for t in list(self._timers.values()):
            if not self._held(t) and t.id not in seen:
                self._timers.pop(t.id, None)

    def claim_orphans(self) -> None:
        """Claim the timers of replicas that are gone, when this replica is the one to."""
        if self._share is None:
            return
        for t in list(self._timers.values()):
            if t.holder is not None and self._share.should_claim(t.holder):
                self._claim(t)

    def _claim(self, t: Timer) -> None:
        assert self._share is not None
        logger.info("timer %s of %s: claimed from %s", t.id, t.client, t.holder)
        t.holder = self._share.replica
        if t.ends_at is not None:
            self._run(t, t.ends_at - self._clock())
        self._publish(t)


# -- words ----------------------------------------------------------------------------------


def say_duration(seconds: float, language: str, *, adjective: bool = False) -> str:
    """300 → "5 minutes", 3900 → "1 hour and 5 minutes" / "1小时5分钟" (seconds rounded up);
    ``adjective``: "5 minute" (as in "your 5 minute timer")."""
    tt = templates(language)["timer"]
    total = max(0, math.ceil(seconds - 1e-6))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = []
    for n, key in ((h, "hour"), (m, "minute"), (s, "second")):
        if n:
            unit = tt[key][0 if n == 1 or adjective else 1]
            parts.append(str(tt["unit"]).format(n=n, unit=unit))
    if not parts:
        parts.append(str(tt["unit"]).format(n=0, unit=tt["second"][1]))
    return str(tt["join"]).join(parts)


def say_time(now: dt.datetime, language: str) -> str:
    ct = templates(language)["clock"]
    hour12 = now.hour % 12 or 12
    if language == "zh-CN":
        h = now.hour
        period = (
            "凌晨" if h < 5 else "早上" if h < 8 else "上午" if h < 12 else "中午" if h == 12
            else "下午" if h < 18 else "晚上"
        )
        return str(ct["time"]).format(period=period, hour12=hour12, minute=now.minute)
    ampm = "AM" if now.hour < 12 else "PM"
    return str(ct["time"]).format(hour12=hour12, minute=now.minute, ampm=ampm)


def say_date(now: dt.datetime, language: str) -> str:
    ct = templates(language)["clock"]
    return str(ct["date"]).format(
        weekday=ct["weekdays"][now.weekday()], month=ct["months"][now.month - 1], day=now.day
    )


def _end(text: str, language: str) -> str:
    return text + ("。" if language == "zh-CN" else ".")


def finished_reply(t: Timer) -> Reply:
    tt = templates(t.language)["timer"]
    duration = say_duration(t.duration_s, t.language, adjective=True)
    text = str(tt["finished"]).format(duration=duration)
    return Reply(_end(text, t.language), t.language, "timer")


def answer_local(
    intent: Intent,
    timers: TimerManager,
    *,
    owner: str,
    utterance_id: str,
    now: dt.datetime | None = None,
    client: str | None = None,
) -> Reply:
    """Carry out a timer/clock intent and say what happened."""
    lang = reply_language(intent.language, intent.text)
    tt = templates(lang)["timer"]
    custom = intent.slots.custom
    name = intent.name
    text: str
    if name == TIME_GET:
        text = say_time(now or dt.datetime.now(), lang)
    elif name == DATE_GET:
        text = say_date(now or dt.datetime.now(), lang)
    elif name == TIMER_START:
        seconds = float(custom.get("seconds", 0) or 0)
        label = custom.get("name")
        t = timers.start(
            owner,
            seconds,
            utterance_id=utterance_id,
            language=lang,
            name=str(label) if label else None,
            client=client,
        )
        key = "started_named" if t.name else "started"
        text = str(tt[key]).format(duration=say_duration(seconds, lang), name=t.name or "")
        text = text[:1].upper() + text[1:]
    elif name == TIMER_STATUS:
        mine = timers.timers_of(owner)
        if not mine:
            text = str(tt["none"])
        else:
            t = mine[-1]
            left = say_duration(t.remaining(timers.now()), lang)
            text = str(tt["left_paused" if t.paused else "left"]).format(remaining=left)
    elif name == TIMER_PAUSE:
        text = str(tt["paused" if timers.pause(owner) is not None else "none"])
    elif name == TIMER_RESUME:
        text = str(tt["resumed" if timers.resume(owner) is not None else "none"])
    elif name == TIMER_CANCEL:
        gone = timers.cancel(owner, every=bool(custom.get("all")))
        if not gone:
            text = str(tt["none"])
        elif len(gone) == 1:
            text = str(tt["cancelled"])
        else:
            text = str(tt["cancelled_many"]).format(count=len(gone))
    else:
        raise ValueError(f"not a local intent: {name}")
    return Reply(_end(text, lang), lang, "answer" if name in (TIME_GET, DATE_GET) else "done")
