"""The HTTP responses of :mod:`assistant.server`: every one with the same security headers
(content security policy, no caching, no framing, no sniffing), and the 401/429 answers of
the token check."""

from __future__ import annotations

import math
import re
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Response

#: Sent with every HTTP response. The page's scripts and styles are static files of this
#: server (no inline code), the favicon a data: URI; nothing may frame the page.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'{ws}; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def _csp(host: str) -> str:
    # 'self' covers ws:/wss: to the same host in CSP 3; older engines need them spelled out.
    ws = f" ws://{host} wss://{host}" if host and _HOST_RE.match(host) else ""
    return CONTENT_SECURITY_POLICY.format(ws=ws)


def _respond(
    status: HTTPStatus,
    body: str | bytes,
    ctype: str = "text/plain; charset=utf-8",
    *,
    host: str = "",
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    headers = Headers(
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            ("Content-Security-Policy", _csp(host)),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
            *(extra or []),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def _unauthorized() -> Response:
    return _respond(
        HTTPStatus.UNAUTHORIZED,
        "unauthorized\n",
        extra=[("WWW-Authenticate", 'Bearer realm="hearth"')],
    )


def _too_many(wait_s: float) -> Response:
    return _respond(
        HTTPStatus.TOO_MANY_REQUESTS,
        "too many failed tokens: try again later\n",
        extra=[("Retry-After", str(max(1, math.ceil(wait_s))))],
    )
