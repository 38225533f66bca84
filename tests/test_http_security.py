"""The HTTP side's security: the token on every endpoint but ``/healthz``, the page's headers,
the Origin and Host checks, the failed-token lockout (with its audit lines) and the refusal
to listen beyond loopback without a token. Real servers on loopback ports (text only)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from assistant.server import (
    AUTH_FREE_FAILURES,
    DEFAULT_WEB_ROOT,
    AuthGuard,
    InsecureBindError,
    check_exposure,
    is_loopback,
)
from tests.mqtt_fixtures import free_port
from tests.server_fixtures import ServerThread, open_session, recv_event

TOKEN = "s3cret-token"
WRONG = "not-the-token"
PAGE_FILES = ("/", "/index.html", "/app.js", "/style.css", "/worklet.js")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def _get(url: str, headers: dict[str, str]) -> Reply:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, dict(e.headers), e.read().decode())


async def get(
    server: ServerThread, path: str, token: str | None = None, **headers: str
) -> Reply:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    return await asyncio.to_thread(_get, server.http_url + path.lstrip("/"), hdrs)


def freeze_auth_clock(server: ServerThread) -> list[float]:
    """The server's failed-token clock, frozen at 1000 s: the test moves it (no sleeps)."""
    assert server.server is not None
    now = [1000.0]
    server.server.auth_guard.clock = lambda: now[0]
    return now


# -- every endpoint: no token, a wrong one, the right one --------------------------------------


@pytest.mark.parametrize("path", ["/api/devices", "/metrics", "/api/anything"])
async def test_protected_endpoints_need_the_token(
    text_server_factory: Callable[..., ServerThread], path: str
) -> None:
    server = text_server_factory(token=TOKEN)
    missing = await get(server, path)
    wrong = await get(server, path, WRONG)
    basic = await get(server, path, Authorization=f"Basic {TOKEN}")
    right = await get(server, path, TOKEN)
    for reply in (missing, wrong, basic):
        assert reply.status == 401, (path, reply.status, reply.body)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert reply.body == "unauthorized\n"  # nothing about the home
    if path == "/api/devices":
        assert right.status == 200
        devices = {d["id"]: d for d in right.json()["devices"]}
        assert devices["front_door_lock"]["kind"] == "lock"
    elif path == "/metrics":
        assert right.status == 200
        assert "# TYPE hearth_sessions_total counter" in right.body
        # The refused requests were counted (the code only, never a token).
        assert 'hearth_errors_total{code="unauthorized"}' in right.body
        assert TOKEN not in right.body and WRONG not in right.body
    else:
        assert right.status == 404  # its existence is not told before the token


async def test_healthz_says_only_the_status_without_the_token(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(token=TOKEN)
    for token in (None, WRONG):
        reply = await get(server, "/healthz", token)
        assert reply.status == 200
        assert reply.json() == {"status": "ok"}  # no components, no session count
    full = (await get(server, "/healthz", TOKEN)).json()
    assert full["status"] == "ok"
    assert full["mqtt"] is True and "sessions" in full


async def test_the_page_is_public_and_carries_no_state(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    """The page's files are the same for every home: they load without the token (the page
    asks for it), and nothing in them is the home's."""
    server = text_server_factory(token=TOKEN)
    for path in PAGE_FILES:
        reply = await get(server, path)
        assert reply.status == 200, path
        for secret in (TOKEN, "front_door_lock", "garage_door", '"locked"'):
            assert secret not in reply.body, (path, secret)
    for path in ("nope.html", "../pyproject.toml", "%2e%2e/server.py"):
        assert (await get(server, path)).status == 404, path


async def test_websocket_needs_the_token(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(token=TOKEN)
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url, additional_headers={"Authorization": f"Bearer {WRONG}"})
    assert info.value.response.status_code == 401
    async with connect(server.url) as ws:  # no header: the first message must carry it
        await ws.send(json.dumps({"type": "text", "text": "unlock the front door"}))
        error = await recv_event(ws)
        assert (error["type"], error["code"]) == ("error", "unauthorized")
        with pytest.raises(ConnectionClosed):
            await recv_event(ws)
    ws, created = await open_session(
        server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    await ws.close()
    assert created["type"] == "session.created"


async def test_metrics_public(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(token=TOKEN, **{"server.metrics_public": True})
    assert (await get(server, "/metrics")).status == 200
    assert (await get(server, "/api/devices")).status == 401


async def test_loopback_without_a_token_stays_open(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    for path in ("/api/devices", "/metrics", "/"):
        assert (await get(server, path)).status == 200, path
    health = (await get(server, "/healthz")).json()
    assert health["status"] == "ok" and health["mqtt"] is True
    ws, _ = await open_session(server.url)
    await ws.close()


# -- the page's headers, Origin, Host ----------------------------------------------------------


def _assert_hardened(reply: Reply) -> None:
    csp = reply.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["X-Frame-Options"] == "DENY"


async def test_page_headers(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(token=TOKEN)
    page = await get(server, "/")
    assert page.headers["Content-Type"].startswith("text/html")
    _assert_hardened(page)
    script = await get(server, "/app.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    _assert_hardened(script)
    for path in ("/api/devices", "/healthz", "/nope"):  # errors and JSON too
        _assert_hardened(await get(server, path))


def test_page_has_no_inline_script_or_style() -> None:
    """The policy allows scripts and styles from files only; the page must not need more."""
    html = (DEFAULT_WEB_ROOT / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<style\b", html, re.I)
    assert not re.search(r"\sstyle\s*=", html, re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # onclick= and the like
    assert not re.search(r"javascript:", html, re.I)
    app = (DEFAULT_WEB_ROOT / "app.js").read_text(encoding="utf-8")
    assert "eval(" not in app and "new Function" not in app and "innerHTML" not in app


async def test_websocket_origin_defaults_to_the_servers_own(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    assert server.server is not None
    own = f"http://127.0.0.1:{server.server.port}"
    for bad in ("http://evil.example", f"http://127.0.0.1:{server.server.port + 1}",
                f"https://127.0.0.1:{server.server.port}", "null"):
        with pytest.raises(InvalidStatus) as info:
            await connect(server.url, origin=Origin(bad))
        assert info.value.response.status_code == 403, bad
    for origin in (Origin(own), None):  # the page it served; a CLI without Origin
        ws, _ = await open_session(server.url, origin=origin)
        await ws.close()


async def test_origin_allowlist_star(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(**{"server.allowed_origins": ["*"]})
    ws, _ = await open_session(server.url, origin=Origin("http://anywhere.example"))
    await ws.close()


async def test_dns_rebinding_host_refused_without_a_token(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    """A page on attacker.example whose name now points at 127.0.0.1 is same-origin with
    itself; only the Host header tells. A loopback server without a token answers only for
    loopback names and IP literals."""
    open_server = text_server_factory()
    assert open_server.server is not None
    port = open_server.server.port
    refused = await get(open_server, "/api/devices", Host=f"attacker.example:{port}")
    assert refused.status == 403 and "kitchen" not in refused.body
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert (await get(open_server, "/api/devices", Host=host)).status == 200, host
    # With a token the token protects it: the name does not matter.
    locked = text_server_factory(token=TOKEN)
    assert locked.server is not None
    host = f"hearth.example:{locked.server.port}"
    assert (await get(locked, "/api/devices", TOKEN, Host=host)).status == 200


# -- failed tokens: lockout and audit ----------------------------------------------------------


def test_auth_guard_doubles_the_lockout_and_forgets() -> None:
    now = [0.0]
    guard = AuthGuard(lambda: now[0], free=3, base=1.0, cap=8.0, forget=100.0, max_addresses=2)
    assert [guard.failed("a") for _ in range(2)] == [(1, 0.0), (2, 0.0)]
    assert guard.retry_after("a") == 0.0
    assert guard.failed("a") == (3, 1.0)
    assert guard.retry_after("a") == 1.0
    now[0] += 1.0
    assert guard.retry_after("a") == 0.0
    locks = [guard.failed("a")[1] for _ in range(5)]
    assert locks == [2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    assert guard.retry_after("b") == 0.0  # per address
    guard.succeeded("a")
    assert guard.retry_after("a") == 0.0 and guard.failed("a") == (1, 0.0)
    now[0] += 101.0  # a long quiet spell: the count starts afresh
    assert guard.failed("a") == (1, 0.0)
    guard.failed("b")
    guard.failed("c")  # a third address: the oldest ("a") is forgotten
    assert len(guard) == 2


async def test_failed_tokens_lock_the_address_out_and_are_audited(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = text_server_factory(token=TOKEN, **{"audit.path": str(audit)})
    now = freeze_auth_clock(server)
    for i in range(AUTH_FREE_FAILURES):
        path = "/metrics" if i % 2 else "/api/devices"
        assert (await get(server, path, f"guess-{i}")).status == 401
    # Locked out: even the right token is not looked at, over HTTP or WebSocket.
    refused = await get(server, "/api/devices", TOKEN)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert "kitchen" not in refused.body
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert info.value.response.status_code == 429
    async with connect(server.url) as ws:  # the browser's way: refused as well
        await ws.send(json.dumps({"type": "session.update", "token": TOKEN}))
        error = await recv_event(ws)
        assert error["code"] == "unauthorized" and "too many" in error["message"]
    # /healthz still answers, with the status only.
    assert (await get(server, "/healthz", TOKEN)).json() == {"status": "ok"}
    # The lockout ends; the next failure locks for twice as long.
    now[0] += 1.0
    assert (await get(server, "/api/devices", WRONG)).status == 401
    second = await get(server, "/api/devices", TOKEN)
    assert (second.status, second.headers["Retry-After"]) == (429, "2")
    now[0] += 2.0
    assert (await get(server, "/api/devices", TOKEN)).status == 200  # a success clears it
    assert (await get(server, "/api/devices", WRONG)).status == 401  # one failure: no lock
    assert (await get(server, "/api/devices", TOKEN)).status == 200

    await asyncio.to_thread(server.stop)  # flushes the audit log
    text = audit.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [line for line in lines if line.get("event") == "auth_failed"]
    assert [f["failures"] for f in failed] == [1, 2, 3, 4, 5, 6, 1]
    assert [f["locked_out_s"] for f in failed] == [0, 0, 0, 0, 1.0, 2.0, 0]
    assert {f["client"] for f in failed} == {"127.0.0.1"}
    assert failed[0]["via"] == "http" and failed[0]["path"] == "/api/devices"
    assert TOKEN not in text and "guess-" not in text and WRONG not in text


async def test_websocket_token_failures_count_too(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = text_server_factory(token=TOKEN, **{"audit.path": str(audit)})
    freeze_auth_clock(server)
    with pytest.raises(InvalidStatus):  # a wrong upgrade header
        await connect(server.url, additional_headers={"Authorization": "Bearer guess"})
    for i in range(AUTH_FREE_FAILURES - 1):  # wrong first messages
        async with connect(server.url) as ws:
            await ws.send(json.dumps({"type": "session.update", "token": f"guess-{i}"}))
            assert (await recv_event(ws))["code"] == "unauthorized"
    assert (await get(server, "/api/devices", TOKEN)).status == 429
    await asyncio.to_thread(server.stop)
    failed = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [(f["via"], f["path"]) for f in failed] == [("websocket", "/")] + [
        ("websocket", "session.update")
    ] * (AUTH_FREE_FAILURES - 1)


async def test_requests_without_a_token_are_not_guesses(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    """A page opened without the token asks for it; that is not a failed guess."""
    server = text_server_factory(token=TOKEN)
    freeze_auth_clock(server)
    for _ in range(AUTH_FREE_FAILURES * 2):
        assert (await get(server, "/api/devices")).status == 401
    assert (await get(server, "/api/devices", TOKEN)).status == 200


# -- start-up: no public bind without a token --------------------------------------------------


def test_loopback_detection_and_exposure_check() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback(host), host
        check_exposure(host, None, False)
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "hub.local"):
        assert not is_loopback(host), host
        with pytest.raises(InsecureBindError):
            check_exposure(host, None, False)
        check_exposure(host, TOKEN, False)
        check_exposure(host, None, True)  # the user says they mean it


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_hearth_serve_refuses_a_public_bind_without_a_token(host: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--host", host,
         "--port", str(free_port()), "--no-audio"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: refusing to listen on {host} without a token")
    assert "allow_unauthenticated" in lines[0]
    assert "Hearth ready" not in proc.stdout
