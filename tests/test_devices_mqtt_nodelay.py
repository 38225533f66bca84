"""A command's confirmation is not held back by Nagle's algorithm: the client's socket has
TCP_NODELAY, and a command → state round trip through a real Mosquitto (configured like
deploy/mosquitto/mosquitto.conf) arrives."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from devices.mqtt import MqttClient, MqttMessage
from tests.mqtt_fixtures import Mosquitto


def test_deploy_broker_sets_tcp_nodelay() -> None:
    conf = Path(__file__).parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
    lines = [ln.strip() for ln in conf.read_text(encoding="utf-8").splitlines()]
    assert "set_tcp_nodelay true" in lines


async def test_client_socket_has_tcp_nodelay(mosquitto: Mosquitto) -> None:
    hearth, device = MqttClient(mosquitto.url, client_id="hearth"), MqttClient(
        mosquitto.url, client_id="device")
    await hearth.connect()
    await device.connect()
    try:
        for c in (hearth, device):
            sock = c._client.socket() if c._client is not None else None
            assert isinstance(sock, socket.socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[bytes] = loop.create_future()
        answers: list[asyncio.Task[float]] = []

        def on_command(msg: MqttMessage) -> None:
            answers.append(loop.create_task(device.publish("light/state", b'{"state":"ON"}')))

        def on_state(msg: MqttMessage) -> None:
            if not confirmed.done():
                confirmed.set_result(msg.payload)

        device.subscribe("light/set", on_command)
        hearth.subscribe("light/state", on_state)
        await hearth.barrier()
        await device.barrier()
        await hearth.publish("light/set", b'{"state":"ON"}')
        assert await asyncio.wait_for(confirmed, 10) == b'{"state":"ON"}'
    finally:
        await hearth.close()
        await device.close()
