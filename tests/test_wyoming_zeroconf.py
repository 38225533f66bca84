"""The Wyoming server's zeroconf announcement, found by a real mDNS browser (the ``zeroconf``
package's ``AsyncServiceBrowser`` and ``AsyncServiceInfo``, as Home Assistant uses them) over
real multicast on this machine, then asked ``describe`` at the address and port it announced —
what Home Assistant's Wyoming integration does when it discovers a server.

Multicast must work on the machine: when a plain service registered by the test itself
cannot be seen by a browser either, the tests that need it are skipped with that reason."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from assistant.wyoming_zeroconf import (
    SERVICE_TYPE,
    ZeroconfError,
    _machine_addresses,
    check_name,
    default_name,
    plan,
)
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import ServerThread
from tests.wyoming_serve import hearth_serve

WAIT_S = 15.0


class Browser:
    """Every ``_wyoming._tcp`` change seen on ``interfaces`` (names added and removed)."""

    def __init__(self, interfaces: list[str] | None) -> None:
        kw: dict[str, Any] = {"ip_version": IPVersion.V4Only}
        if interfaces is not None:
            kw["interfaces"] = interfaces
        self.zc = AsyncZeroconf(**kw)
        self.added: set[str] = set()
        self.removed: set[str] = set()
        self._changed = asyncio.Event()
        self._browser = AsyncServiceBrowser(self.zc.zeroconf, SERVICE_TYPE,
                                            handlers=[self._on_change])

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            self.removed.add(name)
        else:
            self.added.add(name)
        self._changed.set()

    async def wait_for(self, seen: Callable[[], bool]) -> bool:
        async def loop() -> None:
            while not seen():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), WAIT_S)
        except TimeoutError:
            return False
        return True

    async def resolve(self, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(self.zc.zeroconf, 3000), f"{name} did not resolve"
        return info

    async def close(self) -> None:
        await self._browser.async_cancel()
        await self.zc.async_close()


async def require_multicast(address: str) -> None:
    """Skip when multicast DNS verifiably does not work here: a service registered with the
    zeroconf package alone (no Hearth code) is not seen by a browser on ``address``."""
    name = f"probe-{uuid.uuid4().hex[:8]}.{SERVICE_TYPE}"
    zc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(SERVICE_TYPE, name, port=9, parsed_addresses=[address])
    browser = Browser([address])
    try:
        await (await zc.async_register_service(info))
        found = await browser.wait_for(lambda: name in browser.added)
    finally:
        await browser.close()
        await zc.async_close()
    if not found:
        pytest.skip(f"multicast DNS does not work on {address} here: the zeroconf package's "
                    "own service was not seen by its own browser")


def unique_name() -> str:
    return f"hearth-test-{uuid.uuid4().hex[:8]}"


async def describe(host: str, port: int) -> Info:
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
    assert event is not None and Info.is_type(event.type), event
    return Info.from_event(event)


# -- the command line, on loopback ---------------------------------------------------------


async def test_hearth_serve_is_discovered_and_says_goodbye(hearth_mosquitto: Mosquitto) -> None:
    await require_multicast("127.0.0.1")
    name = unique_name()
    full = f"{name}.{SERVICE_TYPE}"
    browser = Browser(["127.0.0.1"])
    try:
        with hearth_serve("--mqtt-url", hearth_mosquitto.url, "--wyoming-zeroconf", name,
                          extra_lines=1) as served:
            assert served.lines[-1].startswith(
                f"Wyoming announced over zeroconf: {name!r} (_wyoming._tcp) at 127.0.0.1 "
                f"port {served.wyoming_port}"), served.lines
            assert await browser.wait_for(lambda: full in browser.added), browser.added
            info = await browser.resolve(full)
            assert info.port == served.wyoming_port
            assert info.parsed_addresses() == ["127.0.0.1"]
            assert info.server == f"{name}.local."
            # What Home Assistant does next: describe at the announced address and port.
            found = await describe(info.parsed_addresses()[0], info.port)
            assert [p.name for p in found.handle] == ["hearth"]
            code, _out = served.stop()
            assert code == 0
        # The goodbye (TTL 0) sent at shutdown removes it from browsers at once.
        assert await browser.wait_for(lambda: full in browser.removed), browser.removed
    finally:
        await browser.close()


def test_a_dotted_zeroconf_name_is_a_config_error(tmp_path: Any) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--no-audio",
         "--wyoming", "tcp://127.0.0.1:0", "--wyoming-zeroconf", "bad.name"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "zeroconf_name" in proc.stderr


# -- the default: loopback is not announced, an address of the machine is ------------------


def machine_ipv4() -> str | None:
    found = [a for a in _machine_addresses() if ipaddress.ip_address(a).version == 4]
    return found[0] if found else None


async def test_loopback_is_not_announced_by_default(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    hearth = server.hearth
    assert hearth is not None

    async def start() -> tuple[bool, str | None]:
        wy = await hearth.start_wyoming("tcp://127.0.0.1:0")
        return wy.announcement is not None, wy.zeroconf_error

    assert server.call(start) == (False, None)


async def test_an_address_of_the_machine_is_announced_by_default(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    address = machine_ipv4()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback")
    await require_multicast(address)
    server = text_server_factory()
    hearth = server.hearth
    assert hearth is not None
    name = unique_name()
    full = f"{name}.{SERVICE_TYPE}"
    browser = Browser([address])
    try:
        async def start() -> int:
            wy = await hearth.start_wyoming(f"tcp://{address}:0", zeroconf_name=name)
            assert wy.announcement is not None, wy.zeroconf_error
            return wy.port

        port = server.call(start)
        assert await browser.wait_for(lambda: full in browser.added), browser.added
        info = await browser.resolve(full)
        assert (info.port, info.parsed_addresses()) == (port, [address])
        assert [p.name for p in (await describe(address, port)).handle] == ["hearth"]
    finally:
        await browser.close()


# -- units -----------------------------------------------------------------------------


def test_what_is_announced_for_each_bound_host() -> None:
    assert plan(["127.0.0.1"]).addresses == ("127.0.0.1",)
    assert plan(["127.0.0.1"]).interfaces == ("127.0.0.1",)  # never beyond the machine
    if not _machine_addresses():
        with pytest.raises(ZeroconfError):  # nothing but loopback: nothing to announce
            plan(["0.0.0.0"])
        return
    everywhere = plan(["0.0.0.0"])
    assert everywhere.interfaces is None
    assert everywhere.addresses
    for a in everywhere.addresses:
        ip = ipaddress.ip_address(a)
        assert not (ip.is_loopback or ip.is_link_local or ip.is_unspecified), a


def test_every_interface_announces_only_the_ip_version_it_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server on 0.0.0.0 refuses IPv6 connections and one on :: (asyncio sets IPV6_V6ONLY)
    IPv4 ones: neither announces an address of the other version."""
    import assistant.wyoming_zeroconf as zc

    monkeypatch.setattr(zc, "_machine_addresses", lambda: ["192.0.2.2", "fd00::2"])
    assert plan(["0.0.0.0"]).addresses == ("192.0.2.2",)
    assert plan(["::"]).addresses == ("fd00::2",)
    assert plan(["0.0.0.0", "::"]).addresses == ("192.0.2.2", "fd00::2")
    monkeypatch.setattr(zc, "_machine_addresses", lambda: ["fd00::2"])
    with pytest.raises(ZeroconfError):
        plan(["0.0.0.0"])


def test_names() -> None:
    assert default_name() == "hearth-" + (socket.gethostname().split(".")[0] or "host")
    assert check_name("  Kitchen Hearth ") == "Kitchen Hearth"
    for bad in ("", "a.b", "x" * 64):
        with pytest.raises(ValueError):
            check_name(bad)


async def test_a_zeroconf_failure_of_any_kind_leaves_the_server_serving(
    text_server_factory: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error while announcing (not a ZeroconfError) is logged, kept in
    ``zeroconf_error``, and the Wyoming port still answers."""
    from assistant import wyoming_zeroconf

    async def broken(self: Any) -> None:
        raise RuntimeError("mDNS stack exploded")

    monkeypatch.setattr(wyoming_zeroconf.Announcement, "register", broken)
    server = text_server_factory()
    hearth = server.hearth
    assert hearth is not None

    async def start() -> tuple[bool, str | None, int]:
        wy = await hearth.start_wyoming("tcp://127.0.0.1:0", zeroconf=True)
        return wy.announcement is not None, wy.zeroconf_error, wy.port

    announced, error, port = server.call(start)
    assert not announced and error is not None and "exploded" in error
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'{"type": "describe"}\n')
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 10)
    assert b'"info"' in line, line
    writer.close()
