"""Valetudo, the open-source firmware of robot vacuums, over its own MQTT topics.

Valetudo publishes one topic tree per robot, ``<prefix>/<identifier>/...`` (``prefix`` is
Valetudo's "topic prefix", ``mqtt.valetudo_base``, default ``valetudo``; ``identifier`` is the
device's ``topic``). The handles used here:

- ``BasicControlCapability/operation/set``: ``START``, ``STOP``, ``PAUSE``, ``HOME``;
- ``MapSegmentationCapability/clean/set``: the REST API's JSON,
  ``{"segment_ids": ["16", "17"], "iterations": 1, "customOrder": true}``;
- ``StatusStateAttribute/status`` (retained): ``docked``, ``idle``, ``cleaning``, ``paused``,
  ``returning``, ``error``, ``manual_control``, ``moving``;
- ``StatusStateAttribute/detail``: ``none``, ``zone``, ``segment``, ``spot``, ``target``,
  ``resumable``, ``mapping``;
- ``BatteryStateAttribute/level``: percent.

Room cleaning needs the robot's segment ids for each area (``device.segments``): Valetudo's web
interface shows them, and with "provide map data" on it publishes ``MapData/segments``.
"""

from __future__ import annotations

from typing import Any

from devices.actions import AdapterError, Command
from devices.adapters import _common as c
from devices.registry import Device, DeviceKind, MqttSettings
from intents.schema import Intent, IntentName

OPERATION: dict[str, str] = {
    IntentName.VACUUM_START: "START",
    IntentName.VACUUM_PAUSE: "PAUSE",
    IntentName.VACUUM_STOP: "STOP",
    IntentName.VACUUM_RETURN: "HOME",
}

#: Valetudo's status values that Home Assistant shows as another activity (as Valetudo's own
#: Home Assistant mapping does).
_STATUS_ALIASES = {"manual_control": "cleaning", "moving": "cleaning"}


def base(device: Device, settings: MqttSettings) -> str:
    return f"{settings.valetudo_base}/{device.base_topic}"


def commands_for(device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
    name = intent.name
    if name not in c.VACUUM_INTENTS:
        raise AdapterError(f"{device.id} is a Valetudo robot; it cannot {name}")
    c.require_kind(device, intent, DeviceKind.VACUUM)
    b = base(device, settings)
    if name == IntentName.VACUUM_CLEAN_AREA:
        body = {"segment_ids": c.vacuum_segments(device, intent), "iterations": 1,
                "customOrder": True}
        return [Command(f"{b}/MapSegmentationCapability/clean/set", c.json_payload(body))]
    return [Command(f"{b}/BasicControlCapability/operation/set", OPERATION[name])]


def state_topics(device: Device, settings: MqttSettings) -> list[str]:
    b = base(device, settings)
    return [
        f"{b}/StatusStateAttribute/status",
        f"{b}/StatusStateAttribute/detail",
        f"{b}/BatteryStateAttribute/level",
    ]


def parse_state(device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        return None
    if topic.endswith("/StatusStateAttribute/status"):
        status = _STATUS_ALIASES.get(text.lower(), text.lower())
        return {"state": status} if status in c.VACUUM_STATES else None
    if topic.endswith("/StatusStateAttribute/detail"):
        return {"status_detail": text.lower()}
    if topic.endswith("/BatteryStateAttribute/level"):
        try:
            return {"battery": int(float(text))}
        except ValueError:
            return None
    return None


confirms = c.confirms  # the generic check: the state shows what was asked
