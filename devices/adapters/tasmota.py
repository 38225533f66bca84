"""Tasmota: one command per topic under ``cmnd/<topic>/``, answers on ``stat/<topic>/``.

``POWER`` (``POWER<n>`` for relay n) takes ``ON``/``OFF``; ``Dimmer`` 0-100; ``CT`` 153-500
mireds; ``Color`` ``r,g,b``; shutters take ``ShutterOpen``/``ShutterClose``/``ShutterPosition``.
Tasmota answers every command on ``stat/<topic>/RESULT`` (JSON such as ``{"POWER":"ON",
"Dimmer":40}``), also on ``stat/<topic>/POWER``, and reports periodically on ``tele/<topic>/STATE``.
"""

from __future__ import annotations

from typing import Any

from devices.actions import AdapterError, Command
from devices.adapters import _common as c
from devices.registry import Device, DeviceKind, MqttSettings
from intents.schema import Intent, IntentName

_SWITCHABLE = (DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN)


def _power_key(device: Device) -> str:
    return "POWER" if device.channel == 0 else f"POWER{device.channel}"


def _shutter(device: Device) -> int:
    return max(1, device.channel)


def commands_for(device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
    """Tasmota takes one value per command topic, so a light_set can be several publishes."""
    t = device.base_topic
    name = intent.name
    s = intent.slots
    if name in c.ON_INTENTS or name in c.OFF_INTENTS:
        c.require_kind(device, intent, *_SWITCHABLE)
        return [Command(f"cmnd/{t}/{_power_key(device)}", "ON" if name in c.ON_INTENTS else "OFF")]
    if name == IntentName.LIGHT_SET:
        c.require_kind(device, intent, DeviceKind.LIGHT)
        cmds: list[Command] = []
        if s.brightness is not None:
            if s.brightness == 0:
                return [Command(f"cmnd/{t}/{_power_key(device)}", "OFF")]
            c.require_capability(device, "brightness")
            # Dimmer > 0 also switches the light on.
            cmds.append(Command(f"cmnd/{t}/Dimmer", str(s.brightness)))
        elif s.brightness_step is not None:
            raise AdapterError("relative brightness needs the current brightness")
        if s.color_temp_kelvin is not None:
            c.require_capability(device, "color_temp")
            cmds.append(Command(f"cmnd/{t}/CT", str(c.kelvin_to_mireds(s.color_temp_kelvin))))
        rgb = c.rgb_of(intent)
        if rgb is not None:
            c.require_capability(device, "color")
            cmds.append(Command(f"cmnd/{t}/Color", f"{rgb[0]},{rgb[1]},{rgb[2]}"))
        if not cmds:
            raise AdapterError("light_set without brightness, colour or colour temperature")
        if s.brightness is None:
            cmds.insert(0, Command(f"cmnd/{t}/{_power_key(device)}", "ON"))
        return cmds
    if name in (IntentName.COVER_OPEN, IntentName.COVER_CLOSE, IntentName.COVER_SET_POSITION):
        c.require_kind(device, intent, DeviceKind.COVER)
        n = _shutter(device)
        if name == IntentName.COVER_OPEN:
            return [Command(f"cmnd/{t}/ShutterOpen{n}", "")]
        if name == IntentName.COVER_CLOSE:
            return [Command(f"cmnd/{t}/ShutterClose{n}", "")]
        if s.position is None:
            raise AdapterError("cover_set_position needs a position")
        return [Command(f"cmnd/{t}/ShutterPosition{n}", str(s.position))]
    raise AdapterError(f"Tasmota device {device.id} cannot {name}")


def state_topics(device: Device, settings: MqttSettings) -> list[str]:
    t = device.base_topic
    return [f"stat/{t}/RESULT", f"stat/{t}/{_power_key(device)}", f"tele/{t}/STATE"]


def parse_state(device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
    """Normalize ``stat/<t>/RESULT``, ``tele/<t>/STATE`` (JSON) and ``stat/<t>/POWER`` (text)."""
    key = _power_key(device)
    if topic.endswith(f"/{key}"):
        text = payload.decode("utf-8", "replace").strip().upper()
        return {"state": text.lower()} if text in ("ON", "OFF") else None
    obj = c.loads_object(payload)
    if obj is None:
        return None
    out: dict[str, Any] = {}
    power = obj.get(key)
    if power is None and device.channel == 1:
        power = obj.get("POWER")
    if isinstance(power, str) and power.upper() in ("ON", "OFF"):
        out["state"] = power.lower()
    if isinstance(obj.get("Dimmer"), int | float):
        out["brightness"] = int(obj["Dimmer"])
    if isinstance(obj.get("CT"), int | float) and obj["CT"] > 0:
        out["color_temp_kelvin"] = c.mireds_to_kelvin(obj["CT"])
    shutter = obj.get(f"Shutter{_shutter(device)}")
    if isinstance(shutter, dict) and isinstance(shutter.get("Position"), int | float):
        out["position"] = int(shutter["Position"])
        if shutter.get("Direction", 0) == 0:
            out["state"] = "closed" if out["position"] == 0 else "open"
    return out or None


def confirms(device: Device, intent: Intent, state: dict[str, Any]) -> bool:
    if device.kind == DeviceKind.COVER and intent.name == IntentName.COVER_OPEN:
        # Tasmota reports a position, not a named state; "open" means fully open.
        return state.get("position") == 100
    return c.confirms(device, intent, state)
