"""``hearth serve --wyoming`` as a real process for the Wyoming tests that need the command
line (zeroconf, timers): started, its ready lines read, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

START_TIMEOUT_S = 120.0


@dataclass
class Served:
    proc: subprocess.Popen[str]
    wyoming_host: str
    wyoming_port: int
    lines: list[str]  # stdout lines up to and including "Wyoming ready" (and what follows it)

    stopped: tuple[int, str] | None = None

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and the rest of stdout (once; later calls repeat it)."""
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.stopped = (self.proc.returncode, out)
        return self.stopped


@contextmanager
def hearth_serve(*args: str, wyoming: str = "tcp://127.0.0.1:0",
                 extra_lines: int = 0) -> Iterator[Served]:
    """``hearth serve --no-audio --port 0 --wyoming URI ARGS``; yields once "Wyoming ready"
    (and ``extra_lines`` more stdout lines) have been printed."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8")  # stderr: never blocks the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--no-audio", "--port", "0",
         "--wyoming", wyoming, *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    served: Served | None = None
    try:
        while served is None:
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=60)
                log.seek(0)
                err = log.read()
                raise AssertionError(f"hearth serve exited: {''.join(lines)}{err}")
            lines.append(line)
            m = re.match(r"Wyoming ready: tcp://(\S+):(\d+) ", line)
            if m:
                served = Served(proc, m.group(1), int(m.group(2)), lines)
        for _ in range(extra_lines):
            lines.append(proc.stdout.readline())
        yield served
    finally:
        if served is not None:
            served.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.communicate()
        log.close()
