"""zigbee2mqtt: ``<base>/<friendly name>/set`` with a JSON object, state on ``<base>/<name>``.

Conventions (zigbee2mqtt docs, "MQTT topics and messages"): brightness is 0-254, ``color_temp``
is in mireds, ``color`` is ``{"r":..,"g":..,"b":..}`` or ``{"hex":..}``, locks take
``{"state":"LOCK"|"UNLOCK"}`` and report ``lock_state``, covers take ``{"state":"OPEN"|"CLOSE"}``
or ``{"position":0-100}``, thermostats take ``occupied_heating_setpoint`` and report
``local_temperature``.
"""

from __future__ import annotations

from typing import Any

from devices.actions import AdapterError, Command
from devices.adapters import _common as c
from devices.registry import Device, DeviceKind, MqttSettings
from intents.schema import Intent, IntentName

BRIGHTNESS_SCALE = 254

_SWITCHABLE = (DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN)


def _base(device: Device, settings: MqttSettings) -> str:
    return f"{settings.zigbee2mqtt_base}/{device.base_topic}"


def commands_for(device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
    """One ``/set`` publish carrying every attribute the intent changes."""
    name = intent.name
    s = intent.slots
    body: dict[str, Any]
    if name in c.ON_INTENTS or name in c.OFF_INTENTS:
        c.require_kind(device, intent, *_SWITCHABLE)
        body = {"state": "ON" if name in c.ON_INTENTS else "OFF"}
    elif name == IntentName.LIGHT_SET:
        c.require_kind(device, intent, DeviceKind.LIGHT)
        body = {"state": "ON"}
        if s.brightness is not None:
            if s.brightness == 0:
                body = {"state": "OFF"}
            else:
                c.require_capability(device, "brightness")
                body["brightness"] = c.pct_to_scale(s.brightness, BRIGHTNESS_SCALE)
        elif s.brightness_step is not None:
            c.require_capability(device, "brightness")
            # zigbee2mqtt steps natively; the dispatcher turns steps into absolute values when
            # it knows the current brightness, so this is the fallback.
            body["brightness_step"] = round(s.brightness_step * BRIGHTNESS_SCALE / 100)
        if s.color_temp_kelvin is not None:
            c.require_capability(device, "color_temp")
            body["color_temp"] = c.kelvin_to_mireds(s.color_temp_kelvin)
        rgb = c.rgb_of(intent)
        if rgb is not None:
            c.require_capability(device, "color")
            body["color"] = {"r": rgb[0], "g": rgb[1], "b": rgb[2]}
        if len(body) == 1 and body["state"] == "ON" and s.brightness is None:
            raise AdapterError("light_set without brightness, colour or colour temperature")
    elif name in (IntentName.LOCK, IntentName.UNLOCK):
        c.require_kind(device, intent, DeviceKind.LOCK)
        body = {"state": "LOCK" if name == IntentName.LOCK else "UNLOCK"}
    elif name in (IntentName.COVER_OPEN, IntentName.COVER_CLOSE):
        c.require_kind(device, intent, DeviceKind.COVER)
        body = {"state": "OPEN" if name == IntentName.COVER_OPEN else "CLOSE"}
    elif name == IntentName.COVER_SET_POSITION:
        c.require_kind(device, intent, DeviceKind.COVER)
        if s.position is None:
            raise AdapterError("cover_set_position needs a position")
        body = {"position": s.position}
    elif name == IntentName.CLIMATE_SET_TEMPERATURE:
        c.require_kind(device, intent, DeviceKind.CLIMATE)
        body = {"occupied_heating_setpoint": c.celsius_target(intent)}
    else:
        raise AdapterError(f"zigbee2mqtt device {device.id} cannot {name}")
    return [Command(f"{_base(device, settings)}/set", c.json_payload(body))]


def state_topics(device: Device, settings: MqttSettings) -> list[str]:
    return [_base(device, settings)]


def parse_state(device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
    """Normalize a zigbee2mqtt state object; None for anything that is not one."""
    obj = c.loads_object(payload)
    if obj is None:
        return None
    out: dict[str, Any] = {}
    raw_state = obj.get("state")
    if device.kind == DeviceKind.LOCK:
        lock_state = obj.get("lock_state")
        if isinstance(lock_state, str) and lock_state in ("locked", "unlocked"):
            out["state"] = lock_state
        elif raw_state in ("LOCK", "UNLOCK"):
            out["state"] = "locked" if raw_state == "LOCK" else "unlocked"
    elif device.kind == DeviceKind.COVER:
        if "position" in obj and isinstance(obj["position"], int | float):
            out["position"] = int(obj["position"])
        if raw_state in ("OPEN", "CLOSE", "CLOSED"):
            out["state"] = "open" if raw_state == "OPEN" else "closed"
        elif "position" in out:
            out["state"] = "closed" if out["position"] == 0 else "open"
    elif isinstance(raw_state, str) and raw_state.upper() in ("ON", "OFF"):
        out["state"] = raw_state.lower()
    if isinstance(obj.get("brightness"), int | float):
        out["brightness"] = c.scale_to_pct(obj["brightness"], BRIGHTNESS_SCALE)
    if isinstance(obj.get("color_temp"), int | float) and obj["color_temp"] > 0:
        out["color_temp_kelvin"] = c.mireds_to_kelvin(obj["color_temp"])
    color = obj.get("color")
    if isinstance(color, dict) and all(k in color for k in ("r", "g", "b")):
        out["rgb"] = [color["r"], color["g"], color["b"]]
    if isinstance(obj.get("occupied_heating_setpoint"), int | float):
        out["temperature"] = float(obj["occupied_heating_setpoint"])
    if isinstance(obj.get("local_temperature"), int | float):
        out["current_temperature"] = float(obj["local_temperature"])
    if device.kind == DeviceKind.SENSOR and isinstance(obj.get("temperature"), int | float):
        # A sensor's "temperature" is a measurement; expose it under both names so that
        # climate_get_temperature reads the same key for sensors and thermostats.
        out["current_temperature"] = out["temperature"] = float(obj["temperature"])
    for key in ("humidity", "battery", "linkquality", "system_mode", "running_state"):
        if key in obj:
            out[key] = obj[key]
    return out or None


confirms = c.confirms  # the generic check: the state shows what was asked
