"""A thin asyncio front end over paho-mqtt, built so that no command is silently lost.

Design (see also docs/devices.md):

- paho runs its network loop in its own thread; every paho callback is handed to the asyncio
  loop with ``call_soon_threadsafe``, so all of this class's state lives on the loop thread.
- ``publish()`` resolves on PUBACK (QoS 1). Every publish is an entry of our own *outbox*
  until acknowledged: while connected it is handed to paho at once; while disconnected it
  waits. When the connection drops, entries that were handed to paho but not acknowledged go
  back to the front of the outbox and are sent again after the reconnect (QoS 1 is
  at-least-once: a command may arrive twice, never zero times unreported).
- Each connection uses a fresh paho client with paho's own reconnect switched off, so a
  command whose deadline passed while disconnected can never be sent later by a stale client:
  it fails with :class:`PublishFailed` and stays failed.
- The outbox is bounded in size (``max_outbox``, overflow: the new publish fails at once) and
  in time (``publish_timeout_s``).
- Reconnect runs in a task with exponential backoff; subscriptions are restored on every
  connect (clean session: retained state topics are delivered again, so device state is
  rebuilt from the broker, not from memory).
- The socket has ``TCP_NODELAY``: a command and the state that confirms it are small packets
  sent right after another one (a PUBACK), which Nagle's algorithm would hold for the peer's
  delayed ACK, ~40 ms per hop. The broker needs it too (Mosquitto: ``set_tcp_nodelay true``,
  deploy/mosquitto/mosquitto.conf): a command → confirmation round trip through Mosquitto on
  one machine took 43 ms without, 1.8 ms with both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices.actions import BrokerUnavailable, PublishFailed
from devices.registry import ConfigError, MqttSettings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_PUBLISH_TIMEOUT_S = 15.0
DEFAULT_MAX_OUTBOX = 10_000
DEFAULT_RECONNECT_MIN_S = 0.1
DEFAULT_RECONNECT_MAX_S = 5.0
MAX_INFLIGHT = 100
BARRIER_TOPIC = "hearth/_barrier"


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One received message."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


MessageCallback = Callable[[MqttMessage], None]


@dataclass(eq=False)
class _Pending:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    future: asyncio.Future[float]
    mid: int | None = None
    sent_once: bool = False


@dataclass
class _Endpoint:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str) -> _Endpoint:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (also ``tcp://``, ``ssl://``)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl", "tls"):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)")
    tls = scheme in ("mqtts", "ssl", "tls")
    if not parts.hostname:
        raise ValueError("MQTT URL has no host")
    return _Endpoint(
        host=parts.hostname,
        port=parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def unique_client_id(prefix: str) -> str:
    """Client ids must be unique per broker: several Hearth replicas share one broker."""
    return f"{prefix}-{secrets.token_hex(4)}"


class MqttClient:
    """An asyncio MQTT client with an outbox and automatic reconnect.

    ``connect()`` raises :class:`BrokerUnavailable` if the first connection fails; after that,
    connection losses are handled by reconnecting. ``publish()`` raises
    :class:`PublishFailed` when a message could not be acknowledged in time.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = "hearth",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        tls_insecure: bool = False,
        keepalive_s: int = 30,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
        max_outbox: int = DEFAULT_MAX_OUTBOX,
        reconnect_min_s: float = DEFAULT_RECONNECT_MIN_S,
        reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S,
        clean_session: bool = True,
    ) -> None:
        self._endpoint = parse_url(url)
        if username is not None:
            self._endpoint.username = username
        if password is not None:
            self._endpoint.password = password
        self.client_id = client_id
        self._ca_file = ca_file
        self._tls_insecure = tls_insecure
        self._keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self.max_outbox = max_outbox
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        #: False: a persistent session (needs a stable client_id); the broker keeps our
        #: subscriptions and queues QoS 1 messages for us while we are away.
        self.clean_session = clean_session

        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._generation = 0
        self._connected = False
        self._closing = False
        self._running = False  # True between a successful connect() and close()
        self._lost_generation = -1
        self._background: set[asyncio.Task[None]] = set()
        self._connack: asyncio.Future[tuple[bool, str]] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._seq = itertools.count()
        self._outbox: deque[_Pending] = deque()
        self._inflight: dict[int, _Pending] = {}
        self._subs: dict[str, list[MessageCallback]] = {}
        self.reconnects = 0
        #: The last will (topic, payload, retain), QoS 1: the broker publishes it when this
        #: client goes without a DISCONNECT. Set before :meth:`connect`.
        self.will: tuple[str, bytes, bool] | None = None
        self._connect_listeners: list[Callable[[], None]] = []

    @classmethod
    def from_settings(
        cls, settings: MqttSettings, *, url: str | None = None, **kwargs: Any
    ) -> MqttClient:
        """Build from the config: the password comes from the env var ``password_env`` names;
        the client id gets a random suffix so that replicas do not kick each other off."""
        target = url or settings.url
        if target is None:
            raise ConfigError("no broker URL configured", field="mqtt.url")
        password = None
        if settings.password_env:
            password = os.environ.get(settings.password_env)
            if password is None:
                raise ConfigError(
                    f"environment variable {settings.password_env} is not set",
                    field="mqtt.password_env",
                )
        return cls(
            target,
            client_id=unique_client_id(settings.client_id),
            username=settings.username,
            password=password,
            ca_file=settings.ca_file,
            tls_insecure=settings.tls_insecure,
            keepalive_s=settings.keepalive_s,
            **kwargs,
        )

    # -- state ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The broker address, without credentials."""
        return str(self._endpoint)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def outbox_size(self) -> int:
        """Publishes not yet acknowledged (waiting or in flight)."""
        return len(self._outbox) + len(self._inflight)

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop) after every later connect and reconnect, once
        subscriptions are restored."""
        self._connect_listeners.append(listener)

    # -- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect once; raises :class:`BrokerUnavailable` with the reason if that fails."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        await self._connect_once()
        self._running = True

    def _make_client(self, generation: int) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        client.connect_timeout = self.connect_timeout_s
        client.max_inflight_messages_set(MAX_INFLIGHT)
        if self.will is not None:
            topic, payload, retain = self.will
            client.will_set(topic, payload, qos=1, retain=retain)
        ep = self._endpoint
        if ep.username is not None:
            client.username_pw_set(ep.username, ep.password)
        if ep.tls:
            client.tls_set(ca_certs=self._ca_file, cert_reqs=ssl.CERT_REQUIRED)
            if self._tls_insecure:
                client.tls_insecure_set(True)
        loop = self._loop
        assert loop is not None

        def on_connect(_c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_connack, generation, bool(rc.is_failure), str(rc))

        def on_disconnect(_c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_lost, generation, str(rc))

        def on_publish(_c: paho.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_puback, generation, mid, time.monotonic())

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            m = MqttMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
            loop.call_soon_threadsafe(self._on_message, m)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    async def _connect_once(self) -> None:
        self._generation += 1
        generation = self._generation
        client = self._make_client(generation)
        loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        ep = self._endpoint
        try:
            # Bounded by paho's connect_timeout (TCP) and socket timeouts (TLS). No wait_for
            # here: a connect abandoned by us could still finish in its thread and, with our
            # client id, kick off the connection that replaced it.
            await asyncio.to_thread(client.connect, ep.host, ep.port, self._keepalive_s)
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise BrokerUnavailable(f"cannot reach MQTT broker at {ep}: {reason}") from None
        sock = client.socket()
        with contextlib.suppress(OSError, AttributeError):  # not TCP (a unix socket): no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        client.loop_start()
        try:
            failed, reason = await asyncio.wait_for(self._connack, self.connect_timeout_s)
        except TimeoutError:
            failed, reason = True, "no CONNACK"
        if failed:
            await self._discard(client)
            raise BrokerUnavailable(f"MQTT broker at {ep} refused the connection: {reason}")
        if self._lost_generation == generation:
            await self._discard(client)
            raise BrokerUnavailable(f"connection to MQTT broker at {ep} dropped at once")
        self._client = client
        self._connected = True
        logger.info("connected to MQTT broker %s as %s", ep, self.client_id)
        if self._subs:
            client.subscribe([(f, 1) for f in self._subs])
        self._flush()
        for listener in list(self._connect_listeners):
            try:
                listener()
            except Exception:
                logger.exception("MQTT connect listener failed")

    def _on_connack(self, generation: int, failed: bool, reason: str) -> None:
        if generation == self._generation and self._connack and not self._connack.done():
            self._connack.set_result((failed, reason))

    def _on_lost(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        if self._client is None:
            # Lost while _connect_once is still finishing: it must not adopt a dead client.
            self._lost_generation = generation
            return
        old = self._client
        self._client = None
        self._connected = False
        # Unacknowledged publishes go back to the front of the outbox, in their original order.
        returned = sorted(self._inflight.values(), key=lambda p: p.seq)
        self._inflight.clear()
        self._outbox = deque(sorted([*returned, *self._outbox], key=lambda p: p.seq))
        for p in returned:
            p.mid = None
        if self._closing:
            return
        logger.warning(
            "lost connection to MQTT broker %s (%s); %d publishes waiting, reconnecting",
            self._endpoint,
            reason,
            len(self._outbox),
        )
        discard = asyncio.get_running_loop().create_task(self._discard(old))
        self._background.add(discard)
        discard.add_done_callback(self._background.discard)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect(), name="mqtt-reconnect"
            )

    async def _discard(self, client: paho.Client) -> None:
        with contextlib.suppress(Exception):
            client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    async def _reconnect(self) -> None:
        delay = self._reconnect_min_s
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._connect_once()
            except BrokerUnavailable as e:
                logger.debug("reconnect failed: %s", e)
                delay = min(delay * 2, self._reconnect_max_s)
                continue
            except Exception:
                # Keep trying whatever went wrong: giving up would strand the outbox.
                logger.exception("reconnect to %s failed", self._endpoint)
                delay = self._reconnect_max_s
                continue
            self.reconnects += 1
            return

    async def close(self) -> None:
        """Disconnect; publishes still waiting fail with :class:`PublishFailed`."""
        self._closing = True
        self._running = False
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        for p in [*self._outbox, *self._inflight.values()]:
            if not p.future.done():
                p.future.set_exception(
                    PublishFailed(f"MQTT client closed before {p.topic} was acknowledged")
                )
        self._outbox.clear()
        self._inflight.clear()
        client, self._client = self._client, None
        self._connected = False
        self._generation += 1
        if client is not None:
            await self._discard(client)

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> float:
        """Publish and wait for the broker's acknowledgement (PUBACK for QoS 1, the write for
        QoS 0). Returns ``time.monotonic()`` of the acknowledgement. While disconnected the
        message waits in the outbox; raises :class:`PublishFailed` after ``timeout`` (default
        ``publish_timeout_s``) or at once when the outbox is full or the client is closed."""
        if self._loop is None or self._closing or not self._running:
            raise PublishFailed(f"MQTT client for {self._endpoint} is not connected")
        if self.outbox_size >= self.max_outbox:
            raise PublishFailed(f"MQTT outbox full ({self.max_outbox} publishes waiting)")
        if not topic or "+" in topic or "#" in topic or "\0" in topic:
            raise PublishFailed(f"invalid topic for a publish: {topic!r}")
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        fut: asyncio.Future[float] = self._loop.create_future()
        p = _Pending(next(self._seq), topic, data, qos, retain, fut)
        if self._connected:
            self._send(p)
        else:
            self._outbox.append(p)
        limit = self.publish_timeout_s if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(fut), limit)
        except TimeoutError:
            if p.mid is not None and self._inflight.get(p.mid) is p:
                del self._inflight[p.mid]
                detail = "sent but not acknowledged; it may still arrive"
            else:
                with contextlib.suppress(ValueError):
                    self._outbox.remove(p)
                detail = (
                    "not sent: broker unreachable"
                    if not p.sent_once
                    else ("connection lost before acknowledgement; it may have arrived")
                )
            fut.cancel()
            raise PublishFailed(f"publish to {topic} failed after {limit:g} s ({detail})") from None
        except asyncio.CancelledError:
            # The caller gave up (cancel, barge-in): a command not yet sent is never sent.
            with contextlib.suppress(ValueError):
                self._outbox.remove(p)
            fut.cancel()
            raise

    def _send(self, p: _Pending) -> None:
        client = self._client
        assert client is not None
        info = client.publish(p.topic, p.payload, p.qos, p.retain)
        p.sent_once = True
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            if not p.future.done():
                p.future.set_exception(PublishFailed(f"publish to {p.topic} refused: {info.rc}"))
            return
        # On MQTT_ERR_NO_CONN paho has queued it; the coming on_disconnect returns it to us.
        p.mid = info.mid
        self._inflight[info.mid] = p

    def _flush(self) -> None:
        while self._outbox and self._connected:
            p = self._outbox.popleft()
            if not p.future.done():
                self._send(p)

    def _on_puback(self, generation: int, mid: int, at: float) -> None:
        if generation != self._generation:
            return
        p = self._inflight.pop(mid, None)
        if p is not None and not p.future.done():
            p.future.set_result(at)

    async def barrier(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until everything the broker queued for us before now has been delivered.

        A QoS 1 round trip on the same connection: the broker answers in order, so retained
        messages of earlier subscriptions arrive before this PUBACK."""
        await self.publish(f"{BARRIER_TOPIC}/{self.client_id}", b"", qos=1, timeout=timeout)

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Callable[[], None]:
        """Call ``callback`` on the asyncio loop for every message matching ``topic_filter``
        (QoS 1 subscription, restored after reconnects). Returns a function that unsubscribes
        this callback."""
        callbacks = self._subs.setdefault(topic_filter, [])
        callbacks.append(callback)
        if len(callbacks) == 1 and self._client is not None and self._connected:
            self._client.subscribe(topic_filter, 1)

        def unsubscribe() -> None:
            cbs = self._subs.get(topic_filter)
            if cbs is None or callback not in cbs:
                return
            cbs.remove(callback)
            if not cbs:
                del self._subs[topic_filter]
                if self._client is not None and self._connected:
                    self._client.unsubscribe(topic_filter)

        return unsubscribe

    def _on_message(self, msg: MqttMessage) -> None:
        for topic_filter, callbacks in list(self._subs.items()):
            if topic_filter == msg.topic or paho.topic_matches_sub(topic_filter, msg.topic):
                for cb in list(callbacks):
                    try:
                        cb(msg)
                    except Exception:
                        logger.exception("MQTT message callback failed for %s", msg.topic)
