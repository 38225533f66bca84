"""Who may use the server (:mod:`assistant.server`): the refusal to listen beyond loopback
without a token, the constant-time token check, and the per-address lockout after failed
tokens (:class:`AuthGuard`). Re-exported by :mod:`assistant.server`."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Failed tokens one client address may send before it is locked out.
AUTH_FREE_FAILURES = 5


#: The first lockout (s); it doubles with each further failure, up to AUTH_LOCKOUT_MAX_S.
AUTH_LOCKOUT_S = 1.0


AUTH_LOCKOUT_MAX_S = 900.0


#: An address with no failure for this long starts afresh.
AUTH_FORGET_S = 3600.0


#: Addresses remembered at most (the oldest are forgotten first): bounded memory.
AUTH_MAX_ADDRESSES = 10_000


class InsecureBindError(ValueError):
    """Listening beyond loopback without a token (and without
    ``server.allow_unauthenticated``)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; False for wildcard addresses
    (``0.0.0.0``, ``::``, ``""``) and every other name."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, allow_unauthenticated: bool) -> None:
    """Raise :class:`InsecureBindError` for a non-loopback bind without a token."""
    if token or allow_unauthenticated or is_loopback(host):
        return
    raise InsecureBindError(
        f"refusing to listen on {host or 'all addresses'} without a token: set HEARTH_TOKEN "
        "or --token, or server.allow_unauthenticated: true to serve the home's state to "
        "anyone who can reach the port"
    )


def _token_matches(given: str, token: str) -> bool:
    # Digests first: the compare is constant-time in the token's length too.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()
    )


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class AuthGuard:
    """Failed tokens per client address. After ``free`` failures the address is locked out
    for ``base`` seconds, doubling with each further failure up to ``cap``; a success or
    ``forget`` seconds without a failure clear it. At most ``max_addresses`` are tracked."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free: int = AUTH_FREE_FAILURES,
        base: float = AUTH_LOCKOUT_S,
        cap: float = AUTH_LOCKOUT_MAX_S,
        forget: float = AUTH_FORGET_S,
        max_addresses: int = AUTH_MAX_ADDRESSES,
    ) -> None:
        self.clock = clock
        self._free, self._base, self._cap, self._forget = free, base, cap, forget
        self._max = max_addresses
        self._by_client: OrderedDict[str, _Failures] = OrderedDict()

    def _get(self, client: str) -> _Failures | None:
        entry = self._by_client.get(client)
        if entry is not None and self.clock() - entry.last > self._forget:
            del self._by_client[client]
            return None
        return entry

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` is still locked out; 0: it may present a token."""
        entry = self._get(client)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self.clock())

    def failed(self, client: str) -> tuple[int, float]:
        """Count a failure: (failures so far, seconds the client is now locked out)."""
        now = self.clock()
        entry = self._get(client) or _Failures()
        entry.count += 1
        entry.last = now
        lock = 0.0
        if entry.count >= self._free:
            lock = min(self._cap, self._base * 2.0 ** min(entry.count - self._free, 64))
            entry.locked_until = now + lock
        self._by_client[client] = entry
        self._by_client.move_to_end(client)
        while len(self._by_client) > self._max:
            self._by_client.popitem(last=False)
        return entry.count, lock

    def succeeded(self, client: str) -> None:
        self._by_client.pop(client, None)

    def __len__(self) -> int:
        return len(self._by_client)
