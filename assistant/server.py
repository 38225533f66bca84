"""The Hearth server: WebSocket sessions plus a little HTTP on one port.

The server only moves bytes: frames go to the connection's :class:`~assistant.session.Session`,
events come back through a bounded outbox and are written to the socket. Everything else
(decoding, state, pipelines) lives in :mod:`assistant.protocol` and :mod:`assistant.session`.

HTTP (plain GET without ``Upgrade: websocket``): ``/healthz``, ``/metrics`` (Prometheus),
``/api/devices`` and the static browser page from ``assistant/web/``. WebSocket upgrades are
accepted on ``/`` and ``/ws``.

Policies (see docs/protocol.md for the client's view, docs/reliability.md for the security
model):

* Authentication, when a token is configured: ``Authorization: Bearer <token>`` on the upgrade
  request (a wrong one is refused with HTTP 401), or, for browsers, a first ``session.update``
  carrying ``token`` within :data:`AUTH_TIMEOUT_S`. Otherwise ``error unauthorized`` and close
  1008; no audio of an unauthenticated client is processed. Tokens are never logged.
* HTTP with a token configured: ``/api/devices`` and ``/metrics`` (unless
  ``server.metrics_public``) need ``Authorization: Bearer <token>`` (401 otherwise).
  ``/healthz`` answers everyone but tells only ``{"status": ok|degraded|stopping}`` without the
  token. The static page (the same files for every home, no state) is public: it asks for the
  token itself and keeps it in the tab's ``sessionStorage``.
* Failed tokens (HTTP or WebSocket) are counted per client address (:class:`AuthGuard`): after
  :data:`AUTH_FREE_FAILURES`, the address is locked out for a time that doubles with each
  further failure (HTTP 429 with ``Retry-After``; the token is not even compared meanwhile).
  Each failure is logged and written to the audit log. Compares are constant-time.
* Every response carries a strict Content-Security-Policy (scripts and styles from this server
  only, no framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
  A browser's WebSocket must come from the server's own origin unless
  ``server.allowed_origins`` says otherwise; a loopback server without a token answers only
  requests for a loopback or IP-literal ``Host`` (DNS rebinding).
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
import ipaddress
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
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
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
from assistant.server_auth import (
    AUTH_FORGET_S,
    AUTH_FREE_FAILURES,
    AUTH_LOCKOUT_MAX_S,
    AUTH_LOCKOUT_S,
    AUTH_MAX_ADDRESSES,
    AuthGuard,
    InsecureBindError,
    _token_matches,
    check_exposure,
    is_loopback,
)
from assistant.server_http import (
    _respond,
    _too_many,
    _unauthorized,
)
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
        update = msg if isinstance(msg, SessionUpdate) else None
        given = update.token if update is not None else None
        if update is not None and given is not None:
            client = _client_ip(self.ws)
            if self.server.auth_guard.retry_after(client) > 0:
                self.session.error(
                    ErrorCode.UNAUTHORIZED, "too many failed tokens: try again later"
                )
                self.close_code, self.close_reason = CloseCode.POLICY_VIOLATION, "unauthorized"
                return None
            if _token_matches(given, token):
                self.server.auth_guard.succeeded(client)
                return update
            self.server.auth_failed(client, "websocket", "session.update")
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
        self.auth_guard = AuthGuard()
        self.stopping = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.settings.server
        check_exposure(self.host, self.settings.token, cfg.allow_unauthenticated)
        lim = self.settings.limits
        # websockets logs handshake headers and frames at DEBUG: keep tokens out of them.
        protect_websockets_logs()
        self._ssl = self._ssl_context()
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            # Origins are checked in _process_request (the default is the request's own).
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
        host = request.headers.get("Host", "")
        if not self._host_allowed(host):
            return _respond(HTTPStatus.FORBIDDEN, "unknown host\n")
        client = _client_ip(ws)
        if upgrade:
            if path not in WEBSOCKET_PATHS:
                return _respond(HTTPStatus.NOT_FOUND, "not found\n")
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(origin, host):
                return _respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
            if self.stopping.is_set():
                return _respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
            limits = self.settings.limits
            if len(self._connections) >= limits.max_connections:
                return _respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
            if self._per_client.get(client, 0) >= limits.max_connections_per_client:
                return _respond(HTTPStatus.TOO_MANY_REQUESTS, "too many connections\n")
            refusal, authorized = self._authorize(
                request, client, path, require=False, via="websocket"
            )
            if refusal is not None:
                return refusal
            if authorized and self.settings.token is not None:
                self._preauthorized.add(ws)
            return None
        try:
            return self._http(path, request, client, host)
        except Exception:
            logger.exception("HTTP %s failed", path)
            return _respond(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    # -- authentication ------------------------------------------------------------------

    def _authorize(
        self, request: Request, client: str, path: str, *, require: bool, via: str = "http"
    ) -> tuple[Response | None, bool]:
        """(refusal or None, authorized). Without a token configured everything is
        authorized. A locked-out client is refused (429) before its token is looked at; a
        wrong ``Authorization`` is a failure (401); none at all is refused only when
        ``require`` (the WebSocket may still authenticate with its first message)."""
        token = self.settings.token
        if token is None:
            return None, True
        wait = self.auth_guard.retry_after(client)
        auth = request.headers.get("Authorization")
        if wait > 0 and (auth is not None or require):
            return _too_many(wait), False
        if auth is None:
            return (_unauthorized() if require else None), False
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and _token_matches(given.strip(), token):
            self.auth_guard.succeeded(client)
            return None, True
        self.metrics.errors_total.inc("unauthorized")  # no error event tells it here
        self.auth_failed(client, via, path)
        return _unauthorized(), False

    def auth_failed(self, client: str, via: str, where: str) -> None:
        """Count a failed token from ``client``: log it and write it to the audit log."""
        failures, lock = self.auth_guard.failed(client)
        logger.warning(
            "failed token from %s (%s %s): %d in a row%s",
            client, via, where, failures,
            f", locked out for {lock:g} s" if lock else "",
        )
        audit = self.resources.audit
        if audit is not None:
            audit.record(
                {
                    "event": "auth_failed",
                    "client": client,
                    "via": via,
                    "path": where,
                    "failures": failures,
                    "locked_out_s": lock,
                }
            )

    def _origin_allowed(self, origin: str, host: str) -> bool:
        allowed = self.settings.server.allowed_origins
        if allowed is not None:
            return "*" in allowed or origin in allowed
        # The server's own origin: the page it served connects back to it.
        scheme = "https" if self._ssl is not None else "http"
        default_port = 443 if scheme == "https" else 80
        try:
            o = urlsplit(origin)
            h = urlsplit(f"//{host}")
            return (
                o.scheme == scheme
                and o.hostname is not None
                and o.hostname == h.hostname
                and (o.port or default_port) == (h.port or default_port)
            )
        except ValueError:
            return False

    def _host_allowed(self, host: str) -> bool:
        """DNS rebinding: a loopback server without a token answers only for a loopback name
        or an IP literal (or a host named in ``allowed_origins``), so that a web page whose
        name was re-pointed at 127.0.0.1 cannot read it."""
        if self.settings.token is not None or not is_loopback(self.host):
            return True
        try:
            name = urlsplit(f"//{host}").hostname
        except ValueError:
            return False
        if not name:
            return False
        if name == "localhost" or name.endswith(".localhost"):
            return True
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            return True
        for origin in self.settings.server.allowed_origins or ():
            with contextlib.suppress(ValueError):
                if urlsplit(origin).hostname == name:
                    return True
        return False

    # -- HTTP ----------------------------------------------------------------------------

    def _http(self, path: str, request: Request, client: str, host: str) -> Response:
        if path == "/healthz":
            # 503 only while stopping (take this replica out of rotation); a broker that is
            # down makes the server "degraded", not dead: commands then end "failed".
            extra = self._health() if self._health is not None else {}
            status = HTTPStatus.SERVICE_UNAVAILABLE if self.stopping.is_set() else HTTPStatus.OK
            state = "ok" if all(v is not False for v in extra.values()) else "degraded"
            body: dict[str, Any] = {"status": "stopping" if self.stopping.is_set() else state}
            # Components and session counts only with the token: whether anyone is talking
            # to the house is the home's business.
            if self._authorize(request, client, path, require=False)[1]:
                body.update({"sessions": len(self._connections), **extra})
            return _respond(status, json.dumps(body) + "\n", "application/json")
        if path == "/metrics":
            if not self.settings.server.metrics_public:
                refusal, _ = self._authorize(request, client, path, require=True)
                if refusal is not None:
                    return refusal
            return _respond(HTTPStatus.OK, self.metrics.render(), METRICS_CONTENT_TYPE)
        if path == "/api/devices" or path.startswith("/api/"):
            refusal, _ = self._authorize(request, client, path, require=True)
            if refusal is not None:
                return refusal
            if path != "/api/devices":
                return _respond(HTTPStatus.NOT_FOUND, "not found\n")
            devices = self._devices() if self._devices is not None else []
            return _respond(HTTPStatus.OK, json.dumps({"devices": devices}), "application/json")
        return self._static(path, host)

    def _static(self, path: str, host: str = "") -> Response:
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
        return _respond(HTTPStatus.OK, file.read_bytes(), ctype, host=host)


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


# The auth names live in assistant.server_auth since the split; still importable from here.
__all__ = ["AUTH_FORGET_S", "AUTH_FREE_FAILURES", "AUTH_LOCKOUT_MAX_S", "AUTH_LOCKOUT_S",
           "AUTH_MAX_ADDRESSES", "AuthGuard", "ErrorEvent", "HearthServer", "InsecureBindError",
           "check_exposure", "is_loopback"]
