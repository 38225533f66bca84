"""The Hearth server: WebSocket sessions plus a little HTTP on one port.

The server only moves bytes: frames go to the connection's :class:`~assistant.session.Session`,
events come back through a bounded outbox and are written to the socket. Everything else
(decoding, state, pipelines) lives in :mod:`assistant.protocol` and :mod:`assistant.session`.

HTTP (plain GET without ``Upgrade: websocket``): ``/healthz``, ``/metrics`` (Prometheus),
``/api/devices`` and the static browser page from ``assistant/web/``. WebSocket upgrades are
accepted on ``/`` and ``/ws``.

Policies (see docs/protocol.md for the client's view):

* Authentication, when a token is configured: ``Authorization: Bearer <token>`` on the upgrade
  request (a wrong one is refused with HTTP 401), or, for browsers, a first ``session.update``
  carrying ``token`` within :data:`AUTH_TIMEOUT_S`. Otherwise ``error unauthorized`` and close
  1008; no audio of an unauthenticated client is processed. Tokens are never logged.
* Messages per second are limited per connection (token bucket); excess messages are dropped
  with a throttled ``rate_limited`` error.
* Slow consumers: events wait in a bounded outbox; a client that lets it fill is closed with
  1008 instead of growing the server's memory.
* Frames over the WebSocket ``max_size`` close the connection with 1009 (websockets does it);
  audio frames under it but over the audio frame limit get ``frame_too_large``.
* A fault in one connection's handling is logged and reported as ``internal_error``; it never
  reaches other connections. A fault the connection cannot survive closes it with 1011.
* :meth:`HearthServer.shutdown` (SIGTERM): stop accepting, let utterances in flight finish
  for a grace period (their events are still delivered), then close every socket with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import ssl
import time
import weakref
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from assistant.config import AssistantSettings
from assistant.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from assistant.protocol import (
    CloseCode,
    ErrorCode,
    ErrorEvent,
    ProtocolError,
    SessionUpdate,
    parse_client_message,
)
from assistant.redact import protect_websockets_logs
from assistant.session import Session, SessionResources

logger = logging.getLogger(__name__)

#: Seconds a client without an Authorization header has to send its token.
AUTH_TIMEOUT_S = 10.0
#: Seconds the server waits for queued events to be written before closing a socket.
FLUSH_TIMEOUT_S = 2.0
WEBSOCKET_PATHS = frozenset({"/", "/ws"})
DEFAULT_WEB_ROOT = Path(__file__).resolve().parent / "web"

DevicesSnapshot = Callable[[], list[dict[str, Any]]]


class _TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)  # one second of burst
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class _Connection:
    """One WebSocket connection: reader, writer and the session between them."""

    def __init__(self, server: HearthServer, ws: ServerConnection, authorized: bool) -> None:
        self.server = server
        self.ws = ws
        self.authorized = authorized
        limits = server.settings.limits
        self.outbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=limits.outbox_events)
        self.overflowed = asyncio.Event()
        self.session = Session(server.resources, self.emit, client=_peer(ws))
        self.bucket = _TokenBucket(limits.max_messages_per_s, time.monotonic)
        self.close_code = CloseCode.NORMAL
        self.close_reason = ""

    def emit(self, event: Any) -> None:
        try:
            self.outbox.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()

    async def _writer(self) -> None:
        while True:
            event = await self.outbox.get()
            try:
                await self.ws.send(event.to_json())
            finally:
                self.outbox.task_done()

    async def _authenticate(self) -> SessionUpdate | None:
        """Wait for a first ``session.update`` with the token. None: refused (already told)."""
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                while True:
                    data = await self.ws.recv()
                    if isinstance(data, str):
                        break  # audio before authentication is dropped unprocessed
        except TimeoutError:
            data = None
        msg: Any = None
        if data is not None:
            with contextlib.suppress(ProtocolError):
                msg = parse_client_message(data)
        token = self.server.settings.token or ""
        if (
            isinstance(msg, SessionUpdate)
            and msg.token is not None
            and hmac.compare_digest(msg.token.encode(), token.encode())
        ):
            return msg
        self.session.error(ErrorCode.UNAUTHORIZED, "a valid token is required")
        self.close_code, self.close_reason = CloseCode.POLICY_VIOLATION, "unauthorized"
        return None

    async def _reader(self) -> None:
        idle = self.server.settings.limits.idle_timeout_s
        session = self.session
        while True:
            try:
                async with asyncio.timeout(idle):
                    data = await self.ws.recv()
            except TimeoutError:
                self.close_code, self.close_reason = CloseCode.NORMAL, "idle timeout"
                return
            if not self.bucket.take():
                session.report(ProtocolError(ErrorCode.RATE_LIMITED, "too many messages"))
                continue
            try:
                if isinstance(data, bytes):
                    session.handle_audio(data, time.monotonic())
                else:
                    session.handle_text(data)
            except Exception:
                # A bug in handling one message must not end the connection or leak details.
                logger.exception("session %s: internal error handling a message", session.id)
                session.error(ErrorCode.INTERNAL_ERROR, "internal error")

    async def run(self) -> None:
        session = self.session
        writer = asyncio.create_task(self._writer(), name=f"writer-{session.id}")
        audio: asyncio.Task[None] | None = None
        reader: asyncio.Task[None] | None = None
        try:
            first: SessionUpdate | None = None
            if not self.authorized:
                first = await self._authenticate()
                if first is None:
                    return
            self.emit(session.created_event())
            if first is not None:
                session.handle_message(first.model_copy(update={"token": None}))
            audio = asyncio.create_task(session.run(), name=f"audio-{session.id}")
            reader = asyncio.create_task(self._reader(), name=f"reader-{session.id}")
            stop = asyncio.create_task(self.server.stopping.wait())
            overflow = asyncio.create_task(self.overflowed.wait())
            try:
                await asyncio.wait(
                    {reader, writer, audio, stop, overflow}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
                overflow.cancel()
            if self.overflowed.is_set():
                self.close_code, self.close_reason = CloseCode.POLICY_VIOLATION, "slow consumer"
            elif self.server.stopping.is_set():
                self.close_code, self.close_reason = CloseCode.GOING_AWAY, "server shutting down"
            elif audio.done() and not audio.cancelled() and audio.exception() is not None:
                logger.error("session %s: audio loop died", session.id, exc_info=audio.exception())
                session.error(ErrorCode.INTERNAL_ERROR, "internal error")
                self.close_code, self.close_reason = CloseCode.INTERNAL_ERROR, "internal error"
            client_gone = reader.done() and self.close_code == CloseCode.NORMAL
            reader.cancel()
            # Work in flight finishes (and reports) within the grace period; when the client
            # has gone, only dispatches already publishing are waited for.
            grace = self.server.settings.limits.shutdown_grace_s
            await session.close(grace_s=grace, finish=not client_gone)
            if self.close_code == CloseCode.GOING_AWAY:
                session.error(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        except ConnectionClosed:
            pass
        finally:
            for task in (reader, audio):
                if task is not None:
                    task.cancel()
            if not writer.done() and not self.overflowed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_TIMEOUT_S):
                        await self.outbox.join()
            writer.cancel()
            await asyncio.gather(writer, *(t for t in (reader, audio) if t), return_exceptions=True)
            await self.ws.close(self.close_code, self.close_reason)


class HearthServer:
    """The WebSocket + HTTP server. ``await start()``, then ``await shutdown()``."""

    def __init__(
        self,
        resources: SessionResources,
        *,
        devices: DevicesSnapshot | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.resources = resources
        self.settings: AssistantSettings = resources.settings
        self.metrics = resources.metrics
        self.host = host if host is not None else self.settings.server.host
        self._port = port if port is not None else self.settings.server.port
        root = self.settings.server.web_root
        self.web_root = (Path(root) if root else DEFAULT_WEB_ROOT).resolve()
        self._devices = devices
        self._health = health
        self._server: Server | None = None
        self._ssl: ssl.SSLContext | None = None
        self._connections: set[_Connection] = set()
        self._per_client: dict[str, int] = {}
        # Connections whose upgrade request carried a valid token. Weak: a handshake that fails
        # after process_request must not leave an entry behind (ids are reused).
        self._preauthorized: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self.stopping = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        lim = self.settings.limits
        # websockets logs handshake headers and frames at DEBUG: keep tokens out of them.
        protect_websockets_logs()
        self._ssl = self._ssl_context()
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            origins=self._origins(),
            compression=None,  # PCM does not compress; deflate would only cost CPU
            max_size=max(lim.max_message_bytes, lim.max_audio_frame_bytes),
            max_queue=64,  # frames buffered by websockets before TCP backpressure
            server_header="hearth",
            ssl=self._ssl,
        )
        sock = next(iter(self._server.sockets))
        self._port = sock.getsockname()[1]
        logger.info("Hearth listening on %s", self.url)

    def _ssl_context(self) -> ssl.SSLContext | None:
        cfg = self.settings.server
        if cfg.tls_cert is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        return ctx

    def _origins(self) -> list[Any] | None:
        allowed = self.settings.server.allowed_origins
        if allowed is None:
            return None
        return [*allowed, None]  # None: non-browser clients send no Origin

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.server.tls_cert else "ws"
        return f"{scheme}://{self._display_host()}:{self._port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.server.tls_cert else "http"
        return f"{scheme}://{self._display_host()}:{self._port}/"

    def _display_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def shutdown(self) -> None:
        """Graceful stop: refuse new connections, finish work in flight, close with 1001."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.close(close_connections=False)
        connections = list(self._connections)
        if connections:
            logger.info("shutting down: %d connection(s) open", len(connections))
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> HearthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- device states -------------------------------------------------------------------

    def broadcast_device_state(self, device_id: str, state: dict[str, Any]) -> None:
        """Fan a device's new state out to every session that wants ``device.state``."""
        for conn in list(self._connections):
            conn.session.device_state(device_id, state)

    # -- WebSocket -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        authorized = self.settings.token is None or ws in self._preauthorized
        self._preauthorized.discard(ws)
        conn = _Connection(self, ws, authorized)
        self._connections.add(conn)
        client = _client_ip(ws)
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self.metrics.sessions_total.inc()
        self.metrics.sessions_active.inc()
        logger.info("session %s opened from %s", conn.session.id, _peer(ws))
        try:
            await conn.run()
        except Exception:
            logger.exception("session %s: connection failed", conn.session.id)
            with contextlib.suppress(Exception):
                await ws.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._connections.discard(conn)
            left = self._per_client.get(client, 1) - 1
            if left > 0:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)
            self.metrics.sessions_active.dec()
            logger.info(
                "session %s closed (%s %s)", conn.session.id, conn.close_code, conn.close_reason
            )

    # -- HTTP ----------------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade:
            if path not in WEBSOCKET_PATHS:
                return _respond(HTTPStatus.NOT_FOUND, "not found\n")
            if self.stopping.is_set():
                return _respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
            limits = self.settings.limits
            if len(self._connections) >= limits.max_connections:
                return _respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
            if self._per_client.get(_client_ip(ws), 0) >= limits.max_connections_per_client:
                return _respond(HTTPStatus.TOO_MANY_REQUESTS, "too many connections\n")
            token = self.settings.token
            auth = request.headers.get("Authorization")
            if token is not None and auth is not None:
                scheme, _, given = auth.partition(" ")
                ok = scheme.lower() == "bearer" and hmac.compare_digest(
                    given.strip().encode(), token.encode()
                )
                if not ok:
                    return _respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
                self._preauthorized.add(ws)
            return None
        try:
            return self._http(path)
        except Exception:
            logger.exception("HTTP %s failed", path)
            return _respond(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _http(self, path: str) -> Response:
        if path == "/healthz":
            # 503 only while stopping (take this replica out of rotation); a broker that is
            # down makes the server "degraded", not dead: commands then end "failed".
            extra = self._health() if self._health is not None else {}
            status = HTTPStatus.SERVICE_UNAVAILABLE if self.stopping.is_set() else HTTPStatus.OK
            state = "ok" if all(v is not False for v in extra.values()) else "degraded"
            body = {
                "status": "stopping" if self.stopping.is_set() else state,
                "sessions": len(self._connections),
                **extra,
            }
            return _respond(status, json.dumps(body) + "\n", "application/json")
        if path == "/metrics":
            return _respond(HTTPStatus.OK, self.metrics.render(), METRICS_CONTENT_TYPE)
        if path == "/api/devices":
            devices = self._devices() if self._devices is not None else []
            return _respond(HTTPStatus.OK, json.dumps({"devices": devices}), "application/json")
        return self._static(path)

    def _static(self, path: str) -> Response:
        rel = "index.html" if path in ("", "/") else path.lstrip("/")
        try:
            file = (self.web_root / rel).resolve()
        except (OSError, ValueError):
            return _respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not file.is_relative_to(self.web_root) or not file.is_file():
            return _respond(HTTPStatus.NOT_FOUND, "not found\n")
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix in (".js", ".mjs"):
            ctype = "text/javascript"  # AudioWorklet modules need a JavaScript MIME type
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        return _respond(HTTPStatus.OK, file.read_bytes(), ctype)


def _respond(
    status: HTTPStatus, body: str | bytes, ctype: str = "text/plain; charset=utf-8"
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    headers = Headers(
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def _client_ip(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return str(addr)


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


__all__ = ["ErrorEvent", "HearthServer"]
