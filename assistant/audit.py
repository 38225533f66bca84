"""The audit log: one JSON line per utterance (who said what, what was understood, what was
done), in a size-rotated file.

Writes never block the event loop: records go through a queue to a listener thread that owns
the file (``logging.handlers.QueueHandler``/``QueueListener``). Tokens and audio are never
recorded.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


class AuditLog:
    """Append-only JSONL audit trail. ``record()`` is cheap and thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        # A private logger: audit records must not reach the application's log handlers.
        self._logger = logging.Logger(f"hearth.audit.{id(self)}", logging.INFO)
        self._logger.propagate = False
        self._logger.addHandler(logging.handlers.QueueHandler(self._queue))
        self._handler = handler
        self._listener.start()
        self._sinks: list[Callable[[dict[str, Any]], None]] = []

    def add_sink(self, sink: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every entry (with its ``time``) to ``sink``, in the caller's thread (the
        replicas' broker stream, :mod:`assistant.replicas`). A sink must not block or raise."""
        self._sinks.append(sink)

    def record(self, entry: dict[str, Any]) -> None:
        """Append one entry; ``time`` (UTC, ISO 8601) is added."""
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry}
        self._logger.info(json.dumps(line, ensure_ascii=False, default=str))
        for sink in self._sinks:
            sink(line)

    def close(self) -> None:
        """Flush pending records and close the file."""
        self._listener.stop()
        self._handler.close()
