"""Keeps access tokens out of logs.

websockets logs every handshake header and every frame at DEBUG (``hearth serve -vv``,
``hearth say -vv``): the ``Authorization`` header of hubs and CLIs and the first
``session.update`` of browsers carry the token in clear. :func:`protect_websockets_logs`
attaches a filter to websockets' loggers that rewrites such records before any handler sees
them. Hearth's own log calls never include a token in the first place.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
#: Loggers websockets uses by default for servers and clients.
WEBSOCKETS_LOGGERS = ("websockets.server", "websockets.client")

# An Authorization header line (any scheme), and a JSON "token" member — complete, or cut
# short by websockets' frame preview (which ends in "..." without a closing quote).
_AUTHORIZATION = re.compile(r"(?im)^([<>]?\s*(?:proxy-)?authorization\s*:\s*).*$")
_TOKEN_MEMBER = re.compile(r'("token"\s*:\s*")(?:\\.|[^"\\])*("?)')


def redact(text: str) -> str:
    """``text`` with Authorization header values and JSON ``"token"`` strings replaced."""
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN_MEMBER.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message holds a secret; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: leave it to logging's own error handling
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def protect_websockets_logs() -> None:
    """Attach :class:`RedactSecrets` to websockets' loggers (once per process)."""
    for name in WEBSOCKETS_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in log.filters):
            log.addFilter(RedactSecrets())
