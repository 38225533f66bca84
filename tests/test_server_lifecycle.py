"""Authentication, limits and graceful shutdown, on text-only servers started per test, and
``hearth serve`` as a real process (SIGTERM -> close code 1001)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.mqtt_fixtures import Mosquitto, free_port
from tests.server_fixtures import (
    MqttRecorder,
    ServerThread,
    open_session,
    recv_event,
    recv_utterances,
)

TOKEN = "s3cret-token"


async def test_token_in_first_session_update(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(token=TOKEN)
    async with connect(server.url) as ws:
        await ws.send(b"\x00\x00" * 320)  # audio before authentication: dropped, not processed
        await ws.send(json.dumps({"type": "session.update", "token": TOKEN, "language": "en"}))
        created = await recv_event(ws)
        assert created["type"] == "session.created"
        updated = await recv_event(ws)
        assert updated["type"] == "session.updated"
        assert "token" not in json.dumps(updated)
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_token_in_authorization_header(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(token=TOKEN)
    ws, _ = await open_session(server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_wrong_header_is_refused_with_401(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(token=TOKEN)
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url, additional_headers={"Authorization": "Bearer nope"})
    assert info.value.response.status_code == 401


@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"type": "session.update", "token": "wrong"}),
        json.dumps({"type": "text", "text": "unlock the front door"}),
        "not json",
    ],
)
async def test_unauthenticated_client_gets_error_and_1008(
    text_server_factory: Callable[..., ServerThread], first: str
) -> None:
    server = text_server_factory(token=TOKEN)
    async with connect(server.url) as ws:
        await ws.send(first)
        error = await recv_event(ws)
        assert (error["type"], error["code"]) == ("error", "unauthorized")
        with pytest.raises(ConnectionClosed):
            await recv_event(ws)
        assert ws.close_code == 1008
        assert TOKEN not in error["message"]


async def test_message_rate_limit(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(**{"limits.max_messages_per_s": 5.0})
    ws, _ = await open_session(server.url)
    async with ws:
        for _ in range(20):
            await ws.send(json.dumps({"type": "audio.clear"}))  # answers nothing unless dropped
        error = await recv_event(ws)
        assert error["code"] == "rate_limited"
        await asyncio.sleep(1.2)  # the bucket refills; the connection is still usable
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_connection_limit(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(**{"limits.max_connections": 1})
    ws, _ = await open_session(server.url)
    async with ws:
        with pytest.raises(InvalidStatus) as info:
            await connect(server.url)
        assert info.value.response.status_code == 503


async def test_shutdown_closes_sessions_with_1001_and_refuses_new_ones(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    url = server.url
    ws, _ = await open_session(url)
    await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
    assert server.server is not None
    shutdown = asyncio.create_task(asyncio.to_thread(server.call, server.server.shutdown))
    # The utterance in flight still finishes and reports before the close.
    got = await recv_utterances(ws, 1)
    assert got.of("metrics")[0]["outcome"] in ("actions", "cancelled")
    last = await recv_event(ws)
    assert (last["type"], last["code"]) == ("error", "shutting_down")
    with pytest.raises(ConnectionClosed):
        await recv_event(ws)
    assert ws.close_code == 1001
    await shutdown
    with pytest.raises(OSError):
        await connect(url, open_timeout=5)


def start_hearth_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``hearth serve ARGS`` as a process; returns it and its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("Hearth ready: "):
        proc.kill()
        raise AssertionError(line + (proc.stderr.read() if proc.stderr else ""))
    return proc, line


def test_hearth_serve_sigterm(hearth_mosquitto: Mosquitto) -> None:
    port = free_port()
    proc, line = start_hearth_serve(
        "--port", str(port), "--mqtt-url", hearth_mosquitto.url, "--no-audio"
    )
    try:
        assert line.startswith(f"Hearth ready: ws://127.0.0.1:{port}  ")
        assert f"(browser: http://127.0.0.1:{port}/)" in line

        async def client() -> int | None:
            ws, _ = await open_session(f"ws://127.0.0.1:{port}")
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
            got = await recv_utterances(ws, 1)
            assert got.of("action")[-1]["status"] == "confirmed"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv_event(ws)
            return ws.close_code

        assert asyncio.run(client()) == 1001
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_hearth_serve_with_a_config_uses_its_broker_and_devices(
    hearth_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "home.yaml"
    config.write_text(
        f"""
name: test home
simulate: true
mqtt: {{url: "{hearth_mosquitto.url}", client_id: test-hearth}}
areas: [{{id: den, name: den}}]
devices:
  - {{id: den_lamp, name: den lamp, area: den, kind: light, adapter: zigbee2mqtt, topic: den_lamp}}
assistant:
  server: {{port: {port}}}
  audio: false
""",
        encoding="utf-8",
    )
    proc, line = start_hearth_serve("--config", str(config))
    try:
        assert line.startswith(f"Hearth ready: ws://127.0.0.1:{port}  ")
        recorder = MqttRecorder(hearth_mosquitto.url)

        async def client() -> None:
            ws, _ = await open_session(f"ws://127.0.0.1:{port}")
            async with ws:
                await ws.send(json.dumps({"type": "text", "text": "turn on the den lamp"}))
                got = await recv_utterances(ws, 1)
            assert got.of("action")[-1]["device_id"] == "den_lamp"
            assert got.of("action")[-1]["status"] == "confirmed"

        try:
            asyncio.run(client())
            recorder.wait_for("zigbee2mqtt/den_lamp/set", "ON")
        finally:
            recorder.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_hearth_serve_reports_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("assistant:\n  server: {port: -1}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "assistant.server.port" in proc.stderr


async def test_connection_limit_per_client(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(**{"limits.max_connections_per_client": 2})
    first, _ = await open_session(server.url)
    second, _ = await open_session(server.url)
    async with first, second:
        with pytest.raises(InvalidStatus) as info:
            await connect(server.url)
        assert info.value.response.status_code == 429
    await asyncio.sleep(0.2)  # the server notices the closes
    third, _ = await open_session(server.url)
    await third.close()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls(text_server_factory: Callable[..., ServerThread], tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = make_certificate(tmp_path)
    server = text_server_factory(**{"server.tls_cert": str(cert), "server.tls_key": str(key)})
    assert server.url.startswith("wss://")
    ctx = ssl.create_default_context(cafile=str(cert))
    ws, _ = await open_session(server.url, ssl=ctx)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def test_audit_log_has_one_line_per_utterance(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    path = tmp_path / "audit" / "hearth.jsonl"
    server = text_server_factory(token=TOKEN, **{"audit.path": str(path)})
    ws, _ = await open_session(server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    async with ws:
        for text in ("turn on the kitchen light", "sing me a song"):
            await ws.send(json.dumps({"type": "text", "text": text}))
            await recv_utterances(ws, 1)
    await asyncio.to_thread(server.stop)  # flushes and closes the log
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["outcome"] for line in lines] == ["actions", "no_intent"]
    first = lines[0]
    assert first["transcript"] == "turn on the kitchen light"
    assert first["intent"] == "light_on"
    assert first["confidence"] > 0.5
    assert first["client"].startswith("127.0.0.1:")
    assert first["actions"][0]["device_id"] == "kitchen_light"
    assert first["actions"][0]["status"] == "confirmed"
    assert first["actions"][0]["topic"] == "zigbee2mqtt/kitchen_light/set"
    assert lines[1]["intent"] is None and lines[1]["reason"]
    assert TOKEN not in path.read_text(encoding="utf-8")


def test_audit_log_rotates(tmp_path: Path) -> None:
    from assistant.audit import AuditLog

    log = AuditLog(tmp_path / "a.jsonl", max_bytes=300, backups=2)
    for i in range(20):
        log.record({"utterance_id": f"u{i}", "transcript": "x" * 50})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["a.jsonl", "a.jsonl.1", "a.jsonl.2"]
    last = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last)["utterance_id"] == "u19"


async def test_rapid_open_close_leaves_nothing_behind(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    for i in range(200):
        ws = await connect(server.url)
        if i % 3 == 0:
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        if i % 5 == 0:
            ws.transport.abort()  # no closing handshake at all
        else:
            await ws.close()
    await assert_sessions_drain(server)
    ws, _ = await open_session(server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("action")[-1]["status"] == "confirmed"


async def assert_sessions_drain(server: ServerThread) -> None:
    import urllib.request

    def sessions() -> int:
        with urllib.request.urlopen(server.http_url + "healthz", timeout=10) as r:
            return int(json.loads(r.read())["sessions"])

    async with asyncio.timeout(30):
        while await asyncio.to_thread(sessions) != 0:  # noqa: ASYNC110 - polls another process view
            await asyncio.sleep(0.1)


async def test_slow_consumer_is_closed_with_1008(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(**{"limits.outbox_events": 50, "limits.max_messages_per_s": 1e6})
    assert server.server is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing
    sock.connect(("127.0.0.1", server.server.port))
    ws = await connect(server.url, sock=sock, max_queue=1)
    update = json.dumps({"type": "session.update", "language": "en"})
    with contextlib.suppress(ConnectionClosed):
        for _ in range(20_000):  # each answered by a ~450-byte session.updated
            await ws.send(update)
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    assert ws.close_code == 1008
    assert ws.close_reason == "slow consumer"
    await assert_sessions_drain(server)


async def test_origin_allowlist(text_server_factory: Callable[..., ServerThread]) -> None:
    server = text_server_factory(**{"server.allowed_origins": ["http://hub.local"]})
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url, origin=Origin("http://evil.example"))
    assert info.value.response.status_code == 403
    for origin in (Origin("http://hub.local"), None):  # a browser on the hub; a CLI
        ws, _ = await open_session(server.url, origin=origin)
        await ws.close()


class _BrokenFrontEnd:
    """Hands the session an event it cannot use: a fault inside the audio loop."""

    def feed(self, pcm: bytes, now: float) -> list[object]:
        from assistant.audio.endpoint import SpeechStopped

        return [SpeechStopped(now, now, None, "silence", 0, 0)]  # type: ignore[arg-type]

    def commit(self, now: float) -> list[object]:
        return []

    def set_complete(self, complete: bool, now: float | None = None) -> list[object]:
        return []

    def clear(self) -> None:
        pass


async def test_a_fault_in_the_audio_loop_closes_that_connection_with_1011() -> None:
    from assistant.config import AssistantSettings
    from assistant.metrics import Metrics
    from assistant.server import HearthServer
    from assistant.session import SessionResources
    from devices.actions import ActionResult
    from intents.schema import Intent, Recognition

    class Recognizer:
        def recognize(
            self, text: str, *, language: str | None = None, context: Intent | None = None
        ) -> Recognition:
            return Recognition(intent=None, reason="no match")

    class Dispatcher:
        async def dispatch(
            self, intent: Intent, *, on_result: Any = None, confirmed: bool = False
        ) -> list[ActionResult]:
            return []

    resources = SessionResources(
        settings=AssistantSettings().with_overrides(**{"server.port": 0}),
        recognizer=Recognizer(),
        dispatcher=Dispatcher(),
        metrics=Metrics(),
        frontend_factory=lambda rate, td, mode: _BrokenFrontEnd(),
        transcribe=lambda audio: "",
    )
    async with HearthServer(resources) as server:
        broken, _ = await open_session(server.url)
        healthy, _ = await open_session(server.url)
        async with broken, healthy:
            await broken.send(b"\x00\x00" * 320)
            error = await recv_event(broken)
            assert (error["code"], error["message"]) == ("internal_error", "internal error")
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv_event(broken)
            assert broken.close_code == 1011
            await healthy.send(json.dumps({"type": "text", "text": "hello"}))
            got = await recv_utterances(healthy, 1)
            assert got.of("metrics")[0]["outcome"] == "no_intent"
