"""Pytest plugin: a real Mosquitto on a free port (registered in tests/conftest.py).

``mosquitto`` yields a :class:`Mosquitto` that the test may ``stop()`` and ``start()`` again on
the same port (fault tests). The process is always terminated at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mosquitto_binary() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("mosquitto")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A Mosquitto process with its own config and persistence directory."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        port: int | None = None,
        *,
        anonymous: bool = True,
        extra_config: str = "",
    ) -> None:
        """``extra_config`` is appended to the listener's config (TLS files, password_file)."""
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            # Run as root, Mosquitto drops to user "mosquitto", who cannot write the pytest
            # tmp dir: its persistence file (retained messages, sessions) would be lost.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 10000\n"
            "set_tcp_nodelay true\n"  # as deploy/mosquitto/mosquitto.conf
            "log_dest stderr\n" + extra_config,
            encoding="utf-8",
        )

    @property
    def url(self) -> str:
        scheme = "mqtts" if "certfile" in self.config.read_text(encoding="utf-8") else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (or restart) on the same port; returns once the port accepts connections."""
        if self.running:
            return
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {self.port} in time")
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL); Mosquitto saves retained messages on exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Mosquitto(binary, workdir)
    try:
        broker.start()
        yield broker
    finally:
        with contextlib.suppress(Exception):
            broker.stop()


async def eventually(pred: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``pred()`` holds; raises TimeoutError after ``within`` seconds (a bound, not
    a timing assertion)."""
    async with asyncio.timeout(within):
        # Polling: the conditions are on other processes' effects (broker, simulators).
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
