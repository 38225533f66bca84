"""Adapters: pure mappers between intents and one device family's MQTT conventions.

Each adapter module provides the four functions of :class:`Adapter`. They do no I/O, so every
mapping is testable without a broker.

Normalized state (what ``parse_state`` returns, merged by the dispatcher into the device's last
known state) uses these keys, each only when the device reports it:

- ``state``: ``on``/``off`` (lights, switches, fans), ``locked``/``unlocked``, ``open``/``closed``,
  ``playing``/``paused``
- ``brightness`` (0-100 %), ``color_temp_kelvin``, ``rgb`` ([r, g, b])
- ``position`` (0-100 % open)
- ``temperature`` (climate: target setpoint; sensors: the measurement) and
  ``current_temperature`` (measured), degrees Celsius
- ``volume`` (0-100 %), plus adapter extras (``humidity``, ``battery``, ``apower``, ...)
- vacuums: ``state`` ``cleaning``/``paused``/``idle``/``returning``/``docked``/``error``
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

from devices.actions import Command
from devices.adapters import homeassistant, shelly, tasmota, valetudo, zigbee2mqtt
from devices.registry import AdapterName, Device, MqttSettings
from intents.schema import Intent


class Adapter(Protocol):
    """What every adapter module provides."""

    def commands_for(self, device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
        """The publishes that carry out ``intent`` on ``device``; raises AdapterError for what
        the device cannot do."""
        ...

    def state_topics(self, device: Device, settings: MqttSettings) -> list[str]:
        """Topics on which the device reports its state."""
        ...

    def parse_state(self, device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Normalized state carried by one message, or None if it carries none."""
        ...

    def confirms(self, device: Device, intent: Intent, state: dict[str, Any]) -> bool:
        """Whether ``state`` (normalized, merged) shows ``intent`` took effect."""
        ...


ADAPTERS: dict[AdapterName, ModuleType] = {
    AdapterName.ZIGBEE2MQTT: zigbee2mqtt,
    AdapterName.TASMOTA: tasmota,
    AdapterName.SHELLY: shelly,
    AdapterName.HOMEASSISTANT: homeassistant,
    AdapterName.VALETUDO: valetudo,
}


def adapter_for(device: Device) -> Adapter:
    """The adapter module of a device, typed as :class:`Adapter`."""
    module: Adapter = ADAPTERS[device.adapter]
    return module


__all__ = ["ADAPTERS", "Adapter", "adapter_for"]
