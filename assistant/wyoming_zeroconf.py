"""Announce the Wyoming server over zeroconf (mDNS / DNS-SD) so that Home Assistant's Wyoming
integration discovers it: one ``_wyoming._tcp.local.`` service with the address and port
Hearth listens on.

Home Assistant reads only the address, the port and the instance name (its unique id is the
instance name with the name of the program ``describe`` lists); it then connects and asks
``describe`` itself. The TXT record carries nothing it needs, so Hearth adds only its version.

Which addresses are announced follows the bound host:

* a loopback address (``127.0.0.1``): that address, sent on the loopback interface only, so
  a Home Assistant on the same machine sees it and nothing beyond the machine does;
* one address of the machine: that address, on its interface;
* ``0.0.0.0`` / ``::`` (every interface): every address of the machine except loopback and
  link-local ones, of that IP version (``0.0.0.0`` serves IPv4 only, ``::`` IPv6 only), on
  every interface.

The announcement is unregistered (mDNS "goodbye" packets) when the server shuts down.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

logger = logging.getLogger(__name__)

#: The DNS-SD service type of Wyoming servers (Home Assistant's integration browses it).
SERVICE_TYPE: Final = "_wyoming._tcp.local."

#: DNS-SD instance names are at most 63 bytes.
MAX_NAME_BYTES: Final = 63


class ZeroconfError(RuntimeError):
    """The announcement could not be made (no usable interface, multicast refused)."""


def default_name() -> str:
    """``hearth-<short host name>``: unique on a home network with one Hearth per machine."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"hearth-{host}"


def _label(name: str) -> str:
    """A DNS label for the host record (``<label>.local.``): letters, digits, hyphens."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:MAX_NAME_BYTES]
    return label or "hearth"


def check_name(name: str) -> str:
    """The instance name, stripped; raises ValueError when it is empty, too long or has a dot
    (a dot would split it into DNS labels)."""
    name = name.strip()
    if not name or "." in name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(
            f"zeroconf name must be 1 to {MAX_NAME_BYTES} bytes without dots, got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Plan:
    """What to announce: the addresses, and the interfaces to send on (None: all)."""

    addresses: tuple[str, ...]
    interfaces: tuple[str, ...] | None


def _machine_addresses() -> list[str]:
    import ifaddr  # zeroconf's own dependency

    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        for a in adapter.ips:
            raw = a.ip if isinstance(a.ip, str) else a.ip[0]
            ip = ipaddress.ip_address(raw.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
                out.append(str(ip))
    return list(dict.fromkeys(out))


def plan(addresses: list[str]) -> Plan:
    """The announcement for a server bound to ``addresses`` (the host resolved)."""
    ips = [ipaddress.ip_address(a.split("%")[0]) for a in addresses]
    if any(ip.is_unspecified for ip in ips):
        # 0.0.0.0 serves IPv4 only, and :: IPv6 only (asyncio sets IPV6_V6ONLY): announce the
        # machine's addresses of the bound versions, never one the server refuses.
        versions = {ip.version for ip in ips if ip.is_unspecified}
        found = [a for a in _machine_addresses() if ipaddress.ip_address(a).version in versions]
        if not found:
            raise ZeroconfError("no network address to announce (only loopback is up)")
        return Plan(tuple(found), None)
    shown = tuple(dict.fromkeys(str(ip) for ip in ips))
    # Send on the interfaces of these addresses: zeroconf binds IPv4 interfaces by address;
    # IPv6 ones are chosen by the kernel (all interfaces).
    v4 = tuple(str(ip) for ip in ips if ip.version == 4)
    return Plan(shown, v4 if v4 and len(v4) == len(ips) else None)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` binds to (a name may stand for several)."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Announcement:
    """One registered ``_wyoming._tcp`` service; :meth:`close` unregisters it."""

    def __init__(self, name: str, port: int, where: Plan, *, version: str = "0") -> None:
        self.requested = check_name(name)
        self.port = port
        self.plan = where
        self._version = version
        #: The registered instance name (zeroconf renames on a clash: ``hearth-x (2)``).
        self.name = self.requested
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def register(self) -> None:
        """Probe for the name and announce; raises :class:`ZeroconfError`."""
        from zeroconf import Error as ZeroconfLibError
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        versions = {ipaddress.ip_address(a).version for a in self.plan.addresses}
        ip_version = (
            IPVersion.V4Only if versions == {4}
            else IPVersion.V6Only if versions == {6} else IPVersion.All
        )
        interfaces = list(self.plan.interfaces) if self.plan.interfaces else InterfaceChoice.All
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.requested}.{SERVICE_TYPE}",
            port=self.port,
            parsed_addresses=list(self.plan.addresses),
            server=f"{_label(self.requested)}.local.",
            properties={"version": self._version, "protocol": "wyoming"},
        )
        try:
            zc = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
        except (OSError, ZeroconfLibError) as e:
            raise ZeroconfError(f"zeroconf: cannot open the mDNS sockets: {e}") from e
        try:
            # Probing for the name, then the announcements (both awaited: when this returns,
            # browsers on the network have been told).
            announced = await zc.async_register_service(info, allow_name_change=True)
            await announced
        except Exception as e:  # any failure: close the sockets, the server goes on
            await zc.async_close()
            raise ZeroconfError(f"zeroconf: cannot announce {self.requested!r}: {e}") from e
        self._zc, self._info = zc, info
        full = info.name
        suffix = "." + SERVICE_TYPE
        self.name = full[: -len(suffix)] if full.endswith(suffix) else full
        logger.info(
            "zeroconf: announced %s at %s port %d",
            info.name, ", ".join(self.plan.addresses), self.port,
        )

    async def close(self) -> None:
        """Unregister (goodbye packets) and close the sockets. Safe to call twice."""
        zc, info, self._zc, self._info = self._zc, self._info, None, None
        if zc is None:
            return
        try:
            if info is not None:
                goodbye = await zc.async_unregister_service(info)
                await goodbye
        except Exception:  # the goodbye is a courtesy: the TTL expires anyway
            logger.warning("zeroconf: unregistering failed", exc_info=True)
        finally:
            await zc.async_close()
