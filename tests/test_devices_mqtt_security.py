"""MQTT over TLS with username/password against a real Mosquitto; secrets never logged."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.actions import BrokerUnavailable
from devices.mqtt import MqttClient, MqttMessage
from devices.registry import ConfigError, MqttSettings
from tests.mqtt_fixtures import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.timeout(60)

USER = "hearth"
PASSWORD = "s3cret-Pa55word-xyz"


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs(d: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=hearth-test-ca",
        "-days",
        "2",
        cwd=d,
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        cwd=d,
    )


@pytest.fixture
def secure_mosquitto(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    binary = mosquitto_binary()
    passwd_tool = shutil.which("mosquitto_passwd")
    if binary is None or passwd_tool is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    _make_certs(workdir)
    (workdir / "passwd").touch()
    _run(passwd_tool, "-b", str(workdir / "passwd"), USER, PASSWORD, cwd=workdir)
    broker = Mosquitto(
        binary,
        workdir,
        anonymous=False,
        extra_config=(
            f"password_file {workdir}/passwd\n"
            f"cafile {workdir}/ca.crt\n"
            f"certfile {workdir}/server.crt\n"
            f"keyfile {workdir}/server.key\n"
        ),
    )
    try:
        broker.start()
        yield broker, workdir / "ca.crt"
    finally:
        with contextlib.suppress(Exception):
            broker.stop()


async def test_tls_and_password_from_env(
    secure_mosquitto: tuple[Mosquitto, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, ca = secure_mosquitto
    assert broker.url.startswith("mqtts://")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HEARTH_TEST_MQTT_PASSWORD", PASSWORD)
    settings = MqttSettings(
        url=broker.url, username=USER, password_env="HEARTH_TEST_MQTT_PASSWORD", ca_file=str(ca)
    )
    client = MqttClient.from_settings(settings)
    await client.connect()
    got: list[MqttMessage] = []
    try:
        client.subscribe("secure/#", got.append)
        await client.barrier()
        await client.publish("secure/hello", "world")
        await client.barrier()
        assert [m.payload for m in got] == [b"world"]
    finally:
        await client.close()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(client.__dict__)


async def test_wrong_password_is_a_clear_error(
    secure_mosquitto: tuple[Mosquitto, Path], caplog: pytest.LogCaptureFixture
) -> None:
    broker, ca = secure_mosquitto
    caplog.set_level(logging.DEBUG)
    client = MqttClient(
        broker.url,
        username=USER,
        password="wrong-password-123",
        ca_file=str(ca),
        connect_timeout_s=3,
    )
    with pytest.raises(BrokerUnavailable, match="refused"):
        await client.connect()
    assert "wrong-password-123" not in caplog.text


async def test_untrusted_certificate_is_refused(
    secure_mosquitto: tuple[Mosquitto, Path],
) -> None:
    broker, _ = secure_mosquitto
    client = MqttClient(broker.url, username=USER, password=PASSWORD, connect_timeout_s=3)
    with pytest.raises(BrokerUnavailable, match="cannot reach"):
        await client.connect()


def test_missing_password_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEARTH_NO_SUCH_VAR", raising=False)
    settings = MqttSettings(url="mqtt://127.0.0.1:1", password_env="HEARTH_NO_SUCH_VAR")
    with pytest.raises(ConfigError, match="HEARTH_NO_SUCH_VAR"):
        MqttClient.from_settings(settings)
