"""The processes the latency benchmark (and capacity, soak, wake) starts: a private
Mosquitto or the embedded broker in its own process, the MQTT subscriber that timestamps the
publishes, and ``hearth serve`` itself, each on a free loopback port and stopped again.
Re-exported by :mod:`assistant.bench.latency_runner`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long the server may take from process start to answering ``/healthz``.
SERVER_START_TIMEOUT_S = 120.0


MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.02)
    return False


def _stop_process(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace_s``. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
    return proc.returncode


class _Child:
    """A helper process of the benchmark, stopped (SIGTERM, then SIGKILL) by :meth:`stop`."""

    _proc: subprocess.Popen[Any] | None = None

    def stop(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc, 5.0)
            self._proc = None


# -- broker ------------------------------------------------------------------------------


class _Broker(_Child):
    """A broker process on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


class Mosquitto(_Broker):
    """A private Mosquitto on a free loopback port, stopped by :meth:`stop`."""

    def __init__(self, workdir: Path, exe: str = MOSQUITTO) -> None:
        super().__init__()
        self._workdir = workdir
        self._exe = exe

    @staticmethod
    def available(exe: str = MOSQUITTO) -> bool:
        return os.access(exe, os.X_OK) or shutil.which("mosquitto") is not None

    def start(self) -> None:
        conf = self._workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest none\nset_tcp_nodelay true\n",  # as deploy/mosquitto/mosquitto.conf
            encoding="utf-8",
        )
        exe = self._exe if os.access(self._exe, os.X_OK) else (shutil.which("mosquitto") or "")
        self._proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not _wait_port(self.port, 10.0):
            self.stop()
            raise RuntimeError("mosquitto did not start listening within 10 s")


class EmbeddedBrokerProcess(_Broker):
    """The project's embedded broker (amqtt) in its own process, for machines without
    Mosquitto. Its own process so that broker CPU is not charged to the Hearth server."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self._log = workdir / "broker.log"

    def start(self) -> None:
        # The project's own broker class, so the benchmark runs what `hearth serve` would.
        code = (
            "import asyncio, sys\n"
            "from devices.broker import EmbeddedBroker\n"
            "async def main(port):\n"
            "    b = EmbeddedBroker(port)\n"
            "    await b.start()\n"
            "    await asyncio.Event().wait()\n"
            "asyncio.run(main(int(sys.argv[1])))\n"
        )
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(self.port)], stdout=log, stderr=log
            )
        if not _wait_port(self.port, 20.0):
            self.stop()
            raise RuntimeError(f"embedded broker did not start; see {self._log}")


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` -> (host, port); port 1883 when left out."""
    rest = url.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or 1883)


class Subscriber(_Child):
    """The independent MQTT subscriber (:mod:`assistant.bench.latency_mqtt`) as a process."""

    def __init__(self, broker_url: str, out_file: Path) -> None:
        self._host, self._port = parse_mqtt_url(broker_url)
        self.out_file = out_file

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistant.bench.latency_mqtt",
                "--host",
                self._host,
                "--port",
                str(self._port),
                "--out",
                str(self.out_file),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"MQTT subscriber failed: {line or 'no output'}")

    def arrivals(self) -> list[dict[str, Any]]:
        if not self.out_file.exists():
            return []
        out = []
        for line in self.out_file.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


# -- the Hearth server -------------------------------------------------------------------


@dataclass
class ServerStart:
    """Start-up timings of a server process (seconds from ``Popen``)."""

    healthz_s: float | None  # first HTTP 200 from /healthz
    healthz: Any = None  # its body (JSON when the server sends JSON)


class HearthServer:
    """``hearth serve`` in a subprocess on a free port, with a generated config file.

    The command line is ``python -m assistant.cli serve --config CFG --host 127.0.0.1 --port P``
    plus ``extra_args``; stdout and stderr go to ``log_path``.
    """

    def __init__(self, config_path: Path, log_path: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.config_path = config_path
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "assistant.cli",
            "serve",
            "--config",
            str(self.config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def start(self) -> ServerStart:
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() - t0 < SERVER_START_TIMEOUT_S:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"hearth serve exited with {self._proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    body = resp.read()
                    if resp.status == 200:
                        ready = time.monotonic() - t0
                        try:
                            parsed: Any = json.loads(body)
                        except ValueError:
                            parsed = body.decode("utf-8", "replace")[:500]
                        return ServerStart(healthz_s=ready, healthz=parsed)
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"hearth serve not ready after {SERVER_START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self._proc is not None:
            self.returncode = _stop_process(self._proc, 15.0)
            self._proc = None
