"""Import devices from Home Assistant MQTT discovery messages.

Discovery configs are retained JSON objects on ``<prefix>/<component>/[<node_id>/]<object_id>/
config`` (zigbee2mqtt, Tasmota, ESPHome and others publish them). :func:`parse_discovery` turns
one into a :class:`Device` with adapter ``homeassistant`` (pure); :func:`discover` collects them
from a broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import yaml
from pydantic import ValidationError

from devices.mqtt import MqttClient, MqttMessage
from devices.registry import AdapterName, Device, DeviceKind

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "homeassistant"
#: Time allowed for retained configs to arrive after the subscription is acknowledged.
SETTLE_S = 0.3

COMPONENT_KINDS: dict[str, DeviceKind] = {
    "light": DeviceKind.LIGHT,
    "switch": DeviceKind.SWITCH,
    "climate": DeviceKind.CLIMATE,
    "lock": DeviceKind.LOCK,
    "cover": DeviceKind.COVER,
    "fan": DeviceKind.FAN,
    "sensor": DeviceKind.SENSOR,
    "media_player": DeviceKind.MEDIA_PLAYER,  # not an HA MQTT platform; some bridges use it
    "vacuum": DeviceKind.VACUUM,  # the "state" schema (Valetudo announces its robots so)
}

#: Vacuum ``supported_features`` that Hearth uses, and Home Assistant's default list.
VACUUM_FEATURES = ("start", "pause", "stop", "return_home")
VACUUM_DEFAULT_FEATURES = ("start", "stop", "return_home", "status", "battery", "clean_spot")

#: The discovery abbreviations we use (Home Assistant "MQTT discovery", abbreviations table).
ABBREVIATIONS: dict[str, str] = {
    "cmd_t": "command_topic",
    "stat_t": "state_topic",
    "bri_cmd_t": "brightness_command_topic",
    "bri_stat_t": "brightness_state_topic",
    "bri_scl": "brightness_scale",
    "clr_temp_cmd_t": "color_temp_command_topic",
    "clr_temp_stat_t": "color_temp_state_topic",
    "rgb_cmd_t": "rgb_command_topic",
    "pos_t": "position_topic",
    "set_pos_t": "set_position_topic",
    "temp_cmd_t": "temperature_command_topic",
    "temp_stat_t": "temperature_state_topic",
    "curr_temp_t": "current_temperature_topic",
    "json_attr_t": "json_attributes_topic",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "stat_on": "state_on",
    "stat_off": "state_off",
    "pl_open": "payload_open",
    "pl_cls": "payload_close",
    "pl_stop": "payload_stop",
    "stat_open": "state_open",
    "stat_clsd": "state_closed",
    "pos_open": "position_open",
    "pos_clsd": "position_closed",
    "pl_lock": "payload_lock",
    "pl_unlk": "payload_unlock",
    "stat_locked": "state_locked",
    "stat_unlocked": "state_unlocked",
    "uniq_id": "unique_id",
    "obj_id": "object_id",
    "dev": "device",
    "sa": "suggested_area",
    "dev_cla": "device_class",
    "val_tpl": "value_template",
    "send_cmd_t": "send_command_topic",
    "sup_feat": "supported_features",
    "pl_strt": "payload_start",
    "pl_paus": "payload_pause",
    "pl_ret": "payload_return_to_base",
    "pl_cln_sp": "payload_clean_spot",
    "pl_loc": "payload_locate",
}

_TOPIC_KEYS = frozenset(
    {
        "command_topic", "state_topic", "brightness_command_topic", "brightness_state_topic",
        "color_temp_command_topic", "color_temp_state_topic", "rgb_command_topic",
        "position_topic", "set_position_topic", "temperature_command_topic",
        "temperature_state_topic", "current_temperature_topic", "json_attributes_topic",
        "volume_command_topic", "volume_state_topic", "send_command_topic",
    }
)  # fmt: skip
_PAYLOAD_KEYS = frozenset(
    {
        "payload_on", "payload_off", "state_on", "state_off", "brightness_scale",
        "payload_open", "payload_close", "payload_stop", "state_open", "state_closed",
        "position_open", "position_closed", "payload_lock", "payload_unlock", "state_locked",
        "state_unlocked", "schema", "payload_play", "payload_pause", "payload_next",
        "value_template", "payload_start", "payload_return_to_base", "payload_clean_spot",
        "payload_locate",
    }
)  # fmt: skip
_CONFIG_TOPIC = re.compile(r"^(?P<prefix>.+?)/(?P<component>[^/]+)/(?:(?P<node>[^/]+)/)?"
                           r"(?P<object>[^/]+)/config$")  # fmt: skip


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9_\-]+", "_", text.lower()).strip("_-")
    return s or "device"


def _expand(config: dict[str, Any]) -> dict[str, Any]:
    out = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    base = out.get("~")
    if isinstance(base, str):
        for k, v in list(out.items()):
            if isinstance(v, str) and k.endswith("_topic"):
                if v.startswith("~"):
                    out[k] = base + v[1:]
                elif v.endswith("~"):
                    out[k] = v[:-1] + base
    return out


def parse_discovery(topic: str, payload: bytes) -> Device | None:
    """A device from one discovery message, or None (removal, unsupported component, invalid)."""
    m = _CONFIG_TOPIC.match(topic)
    if m is None or not payload:
        return None
    kind = COMPONENT_KINDS.get(m["component"])
    if kind is None:
        logger.debug("discovery: skipping unsupported component %s", m["component"])
        return None
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        logger.warning("discovery: %s is not JSON", topic)
        return None
    if not isinstance(raw, dict):
        return None
    cfg = _expand(raw)
    if kind == DeviceKind.VACUUM and cfg.get("schema") == "legacy":
        logger.warning("discovery: %s uses the legacy vacuum schema, not supported", topic)
        return None
    device_info = cfg.get("device") if isinstance(cfg.get("device"), dict) else {}
    assert isinstance(device_info, dict)
    entity_name = cfg.get("name")
    device_name = device_info.get("name")
    if isinstance(entity_name, str) and entity_name:
        name = entity_name
        if isinstance(device_name, str) and device_name and device_name not in entity_name:
            name = f"{device_name} {entity_name}"
    elif isinstance(device_name, str) and device_name:
        name = device_name
    else:
        name = m["object"].replace("_", " ")
    ident = cfg.get("object_id") or cfg.get("unique_id") or m["object"]
    topics = {k: v for k, v in cfg.items() if k in _TOPIC_KEYS and isinstance(v, str)}
    payloads = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in cfg.items()
        if k in _PAYLOAD_KEYS and isinstance(v, str | int | float | bool)
    }
    capabilities: list[str] = []
    if "brightness_command_topic" in topics or cfg.get("brightness") is True:
        capabilities.append("brightness")
    if "color_temp_command_topic" in topics or cfg.get("color_temp") is True:
        capabilities.append("color_temp")
    if "rgb_command_topic" in topics:
        capabilities.append("color")
    if "set_position_topic" in topics:
        capabilities.append("position")
    if kind == DeviceKind.VACUUM:
        features = cfg.get("supported_features", VACUUM_DEFAULT_FEATURES)
        if isinstance(features, list | tuple):
            capabilities += [f for f in VACUUM_FEATURES if f in features]
    if kind in (DeviceKind.CLIMATE, DeviceKind.SENSOR) and (
        kind == DeviceKind.CLIMATE or cfg.get("device_class") == "temperature"
    ):
        capabilities.append("temperature")
    try:
        return Device(
            id=_slug(str(ident)),
            name=name,
            kind=kind,
            adapter=AdapterName.HOMEASSISTANT,
            topics=topics,
            payloads=payloads,
            capabilities=capabilities,
            # Garage doors and gates open the house: sensitive by default, the user can relax it.
            sensitive=kind == DeviceKind.COVER
            and cfg.get("device_class") in ("garage", "gate", "door"),
        )
    except ValidationError as e:
        logger.warning("discovery: %s: %s", topic, e.errors()[0]["msg"])
        return None


async def discover(
    mqtt: MqttClient, *, prefix: str = DEFAULT_PREFIX, within: float = 5.0
) -> list[Device]:
    """Collect the retained discovery configs under ``prefix`` (ids made unique)."""
    found: dict[str, Device] = {}

    def on_config(msg: MqttMessage) -> None:
        device = parse_discovery(msg.topic, msg.payload)
        if device is not None:
            found[msg.topic] = device
        else:
            found.pop(msg.topic, None)

    unsubscribe = [
        mqtt.subscribe(f"{prefix}/+/+/config", on_config),
        mqtt.subscribe(f"{prefix}/+/+/+/config", on_config),
    ]
    try:
        await mqtt.barrier(within)
        await asyncio.sleep(min(SETTLE_S, within))
    finally:
        for u in unsubscribe:
            u()
    devices: list[Device] = []
    seen: set[str] = set()
    for topic in sorted(found):
        device = found[topic]
        unique, n = device.id, 2
        while unique in seen:
            unique, n = f"{device.id}_{n}", n + 1
        seen.add(unique)
        devices.append(device if unique == device.id else device.model_copy(update={"id": unique}))
    return devices


def devices_to_yaml(devices: list[Device]) -> str:
    """A ``devices:`` YAML section to paste into a home config."""
    items = [d.model_dump(mode="json", exclude_defaults=True) for d in devices]
    for item, d in zip(items, devices, strict=True):
        item["kind"], item["adapter"] = d.kind.value, d.adapter.value
    return yaml.safe_dump({"devices": items}, sort_keys=False, allow_unicode=True)
