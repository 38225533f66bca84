"""An in-process MQTT broker (amqtt) for the demo home: ``hearth serve`` with no broker URL.

Only for demos and tests on one machine: it listens on 127.0.0.1, allows anonymous clients and
keeps nothing on disk. Real homes point ``mqtt.url`` at Mosquitto (or their existing broker).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from devices.actions import BrokerUnavailable

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
_PORT_ATTEMPTS = 5


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedBroker:
    """amqtt's broker on ``127.0.0.1:port`` (a free port when ``port`` is None)."""

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self.port: int | None = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedBroker is not started")
        return f"mqtt://{HOST}:{self.port}"

    def _config(self, port: int) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
            # Only authentication: amqtt's default packet logger and $SYS publisher are noise.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    async def start(self) -> None:
        from amqtt.broker import Broker  # heavy import, only where the demo needs it

        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        last: Exception | None = None
        for _ in range(attempts):
            port = self._requested_port or _free_port()
            broker = Broker(self._config(port), loop=asyncio.get_running_loop())
            try:
                await broker.start()
            except Exception as e:  # amqtt wraps bind errors in its own BrokerError
                last = e
                logger.debug("embedded broker could not bind %s:%d: %s", HOST, port, e)
                continue
            self._broker = broker
            self.port = port
            logger.info("embedded MQTT broker listening on %s", self.url)
            return
        raise BrokerUnavailable(f"cannot start the embedded MQTT broker: {last}")

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
