"""What the replicas of a building share through the one MQTT broker they already use
(docs/scale.md, *Shared through the broker*): who is up, the timers, the pending confirmations
and a building-wide audit stream. One :class:`Share` per process; with a single process it
costs a few retained messages and gives timers that survive a restart.

Topics, all under ``mqtt.topic_prefix`` (``hearth``); client ids are percent-encoded into one
topic level:

* ``<p>/replicas/<replica>/presence`` (retained): ``{"since": ...}`` while the replica is
  up; emptied by its clean stop, or by the broker (the connection's last will) when it dies.
* ``<p>/timers/<client>/<timer id>`` (retained): a timer of a client id (timers of sessions
  without one stay in their process), emptied when it is cancelled or has run out. A running
  one has ``ends_at`` (Unix time), a paused one ``left_s``. ``holder`` is the one replica that
  counts it down and fires it; a message with ``"state": "finished"`` (not retained) tells
  every replica it fired, so a session of that client on any replica hears it.
* ``<p>/confirmations/<client>/pending`` (retained): the sensitive action waiting for a
  "yes" in one session (``state: pending``), or the note that another session of the
  client cancelled it (``state: cancelled``), or empty.
* ``<p>/audit``: every audit entry of every replica (not retained), with ``replica``.

Every record carries ``writer``, the replica that published it: a replica applies what the
others write and has applied its own writes already (its echo is skipped). Mosquitto delivers
the messages of one topic to every subscriber in the same order, which is what the rules below
rely on.

Timers fire exactly once: only the ``holder`` fires, and it fires only while connected to the
broker and in step with it (its presence re-announced and the retained records re-read after
every connect). The holder is the replica that set the timer. When its presence goes (stopped,
or dead: the last will), the live replica with the lowest id claims its timers by publishing
them with itself as the holder; a replica that finds its own timer claimed by another turns its
copy into a mirror. Every other replica keeps a mirror (no countdown) to answer "how much time
is left", and pausing, resuming or cancelling a mirror writes the record, which the holder
applies.

A pending confirmation is never carried to another session: a "yes" acts only in the session
that asked, and only while the broker's record is still that session's. A new session of the
same client id (on any replica, after a reconnect) that finds another session's pending record
cancels it there and tells the user (``confirmation.cancelled`` and a spoken reply); the old
session's "yes" then confirms nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from assistant.answers.timers import TimerManager
    from assistant.audit import AuditLog
    from devices.mqtt import MqttClient, MqttMessage
    from intents.schema import Intent

logger = logging.getLogger(__name__)

#: Seconds a stopping replica waits for the broker to take its empty presence.
STOP_TIMEOUT_S = 3.0
#: Seconds to wait for the broker on (re)connect before trying the announcement again.
ANNOUNCE_TIMEOUT_S = 10.0


def client_level(client_id: str) -> str:
    """A client id as one topic level (``/``, ``+``, ``#`` and ``%`` percent-encoded)."""
    return quote(client_id, safe="")


class Share:
    """This process's view of the building, kept from the broker (event-loop thread only,
    except :meth:`audit_sink`). Build it before the MQTT client connects (it sets the last
    will), :meth:`start` it once the timers exist, :meth:`stop` it before the client closes."""

    def __init__(
        self,
        mqtt: MqttClient,
        *,
        prefix: str = "hearth",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self.replica = mqtt.client_id
        self._wall = wall
        #: Replicas whose presence is up (this one once announced).
        self.live: set[str] = set()
        #: True once this replica's presence is up and the retained records are read; cleared
        #: on every (re)connect until that is done again.
        self.synced = False
        self.timers: TimerManager | None = None
        self.audit: AuditLog | None = None
        #: client id -> its latest confirmation record (None: none).
        self.confirmations: dict[str, dict[str, Any] | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._stopped = False
        mqtt.will = (self._presence_topic(self.replica), b"", True)

    @property
    def tag(self) -> str:
        """A short mark of this replica (its client id's random suffix) for ids it makes."""
        return self.replica.rsplit("-", 1)[-1]

    def topic(self, *levels: str) -> str:
        """A topic under the prefix. Every one is two or four levels deep, so none can be
        a device's ``<p>/<device>/rpc`` (Shelly replies, which devices may write)."""
        return "/".join((self.prefix, *levels))

    def _presence_topic(self, replica: str) -> str:
        return self.topic("replicas", replica, "presence")

    # -- lifecycle -----------------------------------------------------------------------

    async def start(
        self, *, timers: TimerManager | None = None, audit: AuditLog | None = None,
        publish_audit: bool = False,
    ) -> None:
        """Join the building. ``publish_audit`` (``audit.publish``): every audit entry also
        on ``<p>/audit``; off by default, the entries carry what was said."""
        self._loop = asyncio.get_running_loop()
        self.timers = timers
        if timers is not None:
            timers.share_with(self)
        self.audit = audit
        subs = (
            (self.topic("replicas", "+", "presence"), self._on_presence),
            (self.topic("timers", "+", "+"), self._on_timer),
            (self.topic("confirmations", "+", "pending"), self._on_confirmation),
        )
        for topic_filter, callback in subs:
            self._unsubscribe.append(self.mqtt.subscribe(topic_filter, callback))
        self.mqtt.add_connect_listener(self._reconnected)
        await self._announce()
        if audit is not None and publish_audit:
            audit.add_sink(self.audit_sink)

    async def _announce(self) -> None:
        """Presence up, then a barrier: every retained record is here after it."""
        self.synced = False
        payload = json.dumps({"since": self._wall()})
        await self.mqtt.publish(self._presence_topic(self.replica), payload, retain=True)
        await self.mqtt.barrier(timeout=ANNOUNCE_TIMEOUT_S)
        self.live.add(self.replica)
        if self.timers is not None:
            self.timers.resynced()
        self.synced = True
        logger.info("replica %s in step with the broker (%d live)", self.replica, len(self.live))
        if self.timers is not None:
            self.timers.claim_orphans()

    def _reconnected(self) -> None:
        if self._stopped:
            return
        # The broker may have published our last will meanwhile: others may claim our timers.
        self.synced = False
        # What was emptied while we were away is not sent again (an empty retained message is
        # no message): rebuild from the retained records the new subscription brings, which
        # arrive after this (the subscription was just sent). Our own records stay.
        self.live.clear()
        if self.timers is not None:
            self.timers.resync()
        self.confirmations = {
            c: r
            for c, r in self.confirmations.items()
            if r is not None and r.get("writer") == self.replica
        }
        self._spawn(self._announce_retrying())

    async def _announce_retrying(self) -> None:
        while not self._stopped:
            try:
                await self._announce()
                return
            except Exception as e:  # PublishFailed, a timeout: the next connect retries too
                logger.warning("replica %s: announcing failed (%s); retrying", self.replica, e)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop counting down (the timers stay on the broker), then take this replica's
        presence down so that a live replica claims its timers."""
        self._stopped = True
        if self.timers is not None:
            self.timers.close()
        self.synced = False
        with contextlib.suppress(Exception):
            await self.mqtt.publish(
                self._presence_topic(self.replica), b"", retain=True, timeout=STOP_TIMEOUT_S
            )
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._tasks:  # publishes still on their way get a moment, not the full timeout
            _, late = await asyncio.wait(list(self._tasks), timeout=STOP_TIMEOUT_S)
            for task in late:  # never left running past the MQTT client's close
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)

    # -- publishing ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self, within_s: float) -> bool:
        """Wait until what was sent so far has reached the broker (or failed, logged); False
        after ``within_s`` with publishes still on their way."""
        if not self._tasks:
            return True
        _, late = await asyncio.wait(list(self._tasks), timeout=within_s)
        return not late

    def send(self, topic: str, record: dict[str, Any] | None, *, retain: bool) -> None:
        """Publish in the background (in call order); a failure is logged."""
        payload = b"" if record is None else json.dumps({**record, "writer": self.replica})
        self._spawn(self._publish(topic, payload, retain))

    async def _publish(self, topic: str, payload: str | bytes, retain: bool) -> None:
        try:
            await self.mqtt.publish(topic, payload, retain=retain)
        except Exception as e:
            logger.warning("replica %s: publish to %s failed: %s", self.replica, topic, e)

    # -- presence ------------------------------------------------------------------------

    def _on_presence(self, msg: MqttMessage) -> None:
        replica = msg.topic.split("/")[-2]
        if msg.payload:
            self.live.add(replica)
            return
        if replica == self.replica:
            return  # our own stop's echo (or an old will): we know whether we are up
        self.live.discard(replica)
        logger.info("replica %s is gone (%d live)", replica, len(self.live))
        if self.timers is not None:
            self.timers.claim_orphans()

    def can_fire(self) -> bool:
        """A holder fires only while connected and in step with the broker."""
        return self.synced and self.mqtt.connected and not self._stopped

    def should_claim(self, holder: str | None) -> bool:
        """A timer held by a replica that is not up goes to the lowest live replica."""
        return (
            self.synced
            and not self._stopped
            and holder is not None
            and holder != self.replica
            and holder not in self.live
            and bool(self.live)
            and self.replica == min(self.live)
        )

    # -- timers --------------------------------------------------------------------------

    def put_timer(self, record: dict[str, Any]) -> None:
        self.send(self._timer_topic(record["client"], record["id"]), record, retain=True)

    def clear_timer(self, client: str, timer_id: str) -> None:
        self.send(self._timer_topic(client, timer_id), None, retain=True)

    def timer_finished(self, record: dict[str, Any]) -> None:
        topic = self._timer_topic(record["client"], record["id"])
        self.send(topic, {**record, "state": "finished"}, retain=False)
        self.send(topic, None, retain=True)

    def _timer_topic(self, client: str, timer_id: str) -> str:
        return self.topic("timers", client_level(client), timer_id)

    def _on_timer(self, msg: MqttMessage) -> None:
        *_, client, timer_id = msg.topic.split("/")
        valid, record = _record(msg.payload)
        if not valid or self.timers is None:
            return
        if record is not None:
            self.timers.seen(timer_id)
        if record is not None and record.get("writer") == self.replica:
            return  # our own write, applied when we made it
        self.timers.remote(unquote(client), timer_id, record)

    # -- confirmations -------------------------------------------------------------------

    def _confirmation_topic(self, client: str) -> str:
        return self.topic("confirmations", client_level(client), "pending")

    def _on_confirmation(self, msg: MqttMessage) -> None:
        client = unquote(msg.topic.split("/")[-2])
        valid, record = _record(msg.payload)
        if not valid:
            return
        mine = self.confirmations.get(client)
        if record is None:
            # Only the replica that wrote a pending record empties it: an empty payload we
            # receive while our own record stands is the echo of an earlier clear of ours.
            if mine is not None and mine.get("writer") != self.replica:
                self.confirmations[client] = None
            return
        if record.get("writer") == self.replica:
            return
        self.confirmations[client] = record

    def confirmation_asked(
        self,
        client: str,
        session: str,
        utterance_id: str,
        intent: Intent,
        window_s: float,
    ) -> None:
        """``session`` waits for a "yes" to ``intent`` (for ``window_s``)."""
        now = self._wall()
        record = {
            "state": "pending",
            "client": client,
            "session": session,
            "replica": self.replica,
            "utterance_id": utterance_id,
            "intent": intent.name,
            "device_ids": list(intent.slots.device_ids),
            "language": intent.language,
            "asked_at": now,
            "expires_at": now + window_s,
            "writer": self.replica,
        }
        self.confirmations[client] = record
        self.send(self._confirmation_topic(client), record, retain=True)

    def confirmation_holds(self, client: str, session: str) -> bool:
        """Is the broker's record still ``session``'s pending one (not cancelled by a session
        of the same client elsewhere)?"""
        record = self.confirmations.get(client)
        return (
            record is not None
            and record.get("state") == "pending"
            and record.get("session") == session
        )

    def confirmation_settled(self, client: str, session: str) -> None:
        """``session`` acted on its pending confirmation, or withdrew it: empty the record."""
        if self.confirmation_holds(client, session):
            self.confirmations[client] = {"writer": self.replica, "state": "settled"}
            self.send(self._confirmation_topic(client), None, retain=True)

    def take_over_confirmation(self, client: str, session: str) -> dict[str, Any] | None:
        """``session`` now speaks for ``client``: another session's pending confirmation is
        cancelled (on the broker, so the session that asked can no longer act on it).
        Returns its record when the user must be told (it had not lapsed yet)."""
        record = self.confirmations.get(client)
        if record is None or record.get("state") != "pending" or record.get("session") == session:
            return None
        now = self._wall()
        cancelled = {**record, "state": "cancelled", "cancelled_by": session, "cancelled_at": now}
        self.confirmations[client] = {**cancelled, "writer": self.replica}
        self.send(self._confirmation_topic(client), cancelled, retain=True)
        if now > float(record.get("expires_at", 0.0)):
            return None  # it had lapsed: nothing would have been done anyway
        if self.audit is not None:
            self.audit.record(
                {
                    "event": "confirmation.cancelled",
                    "session": session,
                    "client_id": client,
                    "asked_in": record.get("session"),
                    "utterance_id": record.get("utterance_id"),
                    "intent": record.get("intent"),
                    "device_ids": record.get("device_ids"),
                    "reason": "the client reconnected before confirming",
                }
            )
        return record

    # -- audit ---------------------------------------------------------------------------

    def audit_sink(self, line: dict[str, Any]) -> None:
        """Every audit entry, also to ``<p>/audit`` (from any thread)."""
        loop = self._loop
        if loop is None or self._stopped or loop.is_closed():
            return
        record = {**line, "replica": self.replica}
        payload = json.dumps(record, ensure_ascii=False, default=str)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._send_audit, payload)

    def _send_audit(self, payload: str) -> None:
        self._spawn(self._publish(self.topic("audit"), payload, False))


def _record(payload: bytes) -> tuple[bool, dict[str, Any] | None]:
    """(valid, the record): None for an emptied topic; not valid for a payload that is no
    JSON object (ignored)."""
    if not payload:
        return True, None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False, None
    return (True, data) if isinstance(data, dict) else (False, None)
