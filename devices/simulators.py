"""Simulated devices that speak each adapter's MQTT conventions (demo home, tests, benchmarks).

Each simulator is a small sans-I/O state machine: ``initial()`` gives the state messages to
publish at start, ``handle(topic, payload)`` applies a command and returns the messages a real
device would publish in answer. :class:`SimulatedHome` wires them to a broker.

Layout: :mod:`devices.simulators_base` (``Publish``, initial states, ``DeviceSimulator``),
:mod:`devices.simulators_firmware` (zigbee2mqtt, Tasmota, Shelly, Valetudo),
:mod:`devices.simulators_homeassistant` (Home Assistant discovery); this module keeps the
registry (:data:`SIMULATORS`) and :class:`SimulatedHome`, and re-exports the rest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from typing import Any

from devices.mqtt import MqttClient, MqttMessage, unique_client_id
from devices.registry import AdapterName, HomeConfig
from devices.simulators_base import DeviceSimulator, Publish, initial_state
from devices.simulators_firmware import (
    ShellySimulator,
    TasmotaSimulator,
    ValetudoSimulator,
    Zigbee2MqttSimulator,
)
from devices.simulators_homeassistant import HomeAssistantSimulator

logger = logging.getLogger(__name__)

__all__ = [
    "SIMULATORS",
    "DeviceSimulator",
    "HomeAssistantSimulator",
    "Publish",
    "ShellySimulator",
    "SimulatedHome",
    "TasmotaSimulator",
    "ValetudoSimulator",
    "Zigbee2MqttSimulator",
    "initial_state",
]


SIMULATORS: dict[AdapterName, type[DeviceSimulator]] = {
    AdapterName.ZIGBEE2MQTT: Zigbee2MqttSimulator,
    AdapterName.TASMOTA: TasmotaSimulator,
    AdapterName.SHELLY: ShellySimulator,
    AdapterName.HOMEASSISTANT: HomeAssistantSimulator,
    AdapterName.VALETUDO: ValetudoSimulator,
}


class SimulatedHome:
    """Every device of ``config`` simulated on the broker at ``mqtt_url``.

    Devices in ``silent`` never publish anything (to test ``unconfirmed``); ``latency_s`` delays
    every answer. Initial states are published retained at start.
    """

    def __init__(
        self,
        config: HomeConfig,
        mqtt_url: str,
        *,
        silent: Iterable[str] = frozenset(),
        latency_s: float = 0.0,
    ) -> None:
        self.config = config
        self.silent = set(silent)
        self.latency_s = latency_s
        self.mqtt = MqttClient(mqtt_url, client_id=unique_client_id("hearth-sim"))
        self.sims: dict[str, DeviceSimulator] = {
            d.id: SIMULATORS[d.adapter](d, config.mqtt) for d in config.devices
        }
        self.commands: dict[str, int] = {d.id: 0 for d in config.devices}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Any] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def state(self, device_id: str) -> dict[str, Any]:
        """The simulated device's own (normalized) state."""
        return dict(self.sims[device_id].state)

    async def start(self) -> None:
        await self.mqtt.connect()
        for device_id, sim in self.sims.items():
            if device_id in self.silent:
                continue
            for topic in sim.command_topics():
                self._unsubscribe.append(self.mqtt.subscribe(topic, self._handler(device_id, sim)))
        await asyncio.gather(
            *(
                self._publish(p)
                for device_id, sim in self.sims.items()
                if device_id not in self.silent
                for p in sim.initial()
            )
        )
        await self.mqtt.barrier()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.mqtt.close()

    def _handler(self, device_id: str, sim: DeviceSimulator) -> Any:
        def handle(msg: MqttMessage) -> None:
            self.commands[device_id] += 1
            sim.epoch += 1
            try:
                publishes = sim.handle(msg.topic, msg.payload)
            except Exception:
                logger.exception("simulator %s failed on %s", device_id, msg.topic)
                return
            task = asyncio.get_running_loop().create_task(self._answer(publishes, sim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return handle

    async def _answer(self, publishes: list[Publish], sim: DeviceSimulator) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        # A real device reports each command's result in one go, in the order the commands
        # came: the reports due at the same moment go out together, holding the device's lock,
        # so an earlier command's second report never lands after a later command's first.
        lock = self._locks.setdefault(sim.device.id, asyncio.Lock())
        waited = 0.0
        for delay, due in itertools.groupby(publishes, key=lambda p: p.delay_s):
            if delay > waited:
                await asyncio.sleep(delay - waited)
                waited = delay
            async with lock:
                for p in due:
                    if p.epoch is not None and p.epoch != sim.epoch:
                        continue  # another command came in meanwhile: this one is out of date
                    if p.settle:
                        sim.state.update(p.settle)
                    await self._publish(p)

    async def _publish(self, p: Publish) -> None:
        try:
            await self.mqtt.publish(p.topic, p.payload, qos=1, retain=p.retain)
        except Exception as e:  # a simulator must not die with the broker
            logger.warning("simulator publish to %s failed: %s", p.topic, e)
