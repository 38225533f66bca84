"""Home Assistant MQTT discovery / generic templates: topics and payloads come from the device.

``device.topics`` holds the discovery keys (``command_topic``, ``state_topic``,
``brightness_command_topic``, ``brightness_state_topic``, ``color_temp_command_topic``,
``rgb_command_topic``, ``set_position_topic``, ``position_topic``,
``temperature_command_topic``, ``temperature_state_topic``, ``current_temperature_topic``,
``volume_command_topic``, ``volume_state_topic``) and ``device.payloads`` the payload keys
(``payload_on``/``payload_off``, ``state_on``/``state_off``, ``brightness_scale``,
``payload_open``/``payload_close``/``payload_stop``, ``state_open``/``state_closed``,
``position_open``/``position_closed``, ``payload_lock``/``payload_unlock``,
``state_locked``/``state_unlocked``, ``payload_play``/``payload_pause``/``payload_next``,
``volume_scale``, and ``value_template`` when it is the simple ``{{ value_json.KEY }}``), with
Home Assistant's defaults. ``payloads: {schema: json}`` selects the
JSON light schema (one JSON object on ``command_topic`` and ``state_topic``).

Vacuums (the MQTT ``vacuum`` platform, its "state" schema): ``command_topic`` takes
``payload_start``/``payload_pause``/``payload_stop``/``payload_return_to_base`` (defaults
``start``, ``pause``, ``stop``, ``return_to_base``), ``state_topic`` carries JSON with ``state``
(``cleaning``, ``docked``, ``paused``, ``idle``, ``returning``, ``error``) and
``battery_level``. Room cleaning goes the way Home Assistant's ``vacuum.send_command`` would
send it: ``{"command": <payloads.segment_clean_command>, "segment_ids": [...]}`` on
``send_command_topic``, with the segments of ``device.segments``.
"""

from __future__ import annotations

import re
from typing import Any

from devices.actions import AdapterError, Command
from devices.adapters import _common as c
from devices.registry import Device, DeviceKind, MqttSettings
from intents.schema import Intent, IntentName

#: Home Assistant's defaults for the payload keys.
DEFAULTS: dict[str, str] = {
    "payload_on": "ON",
    "payload_off": "OFF",
    "brightness_scale": "255",
    "payload_open": "OPEN",
    "payload_close": "CLOSE",
    "payload_stop": "STOP",
    "state_open": "open",
    "state_closed": "closed",
    "state_opening": "opening",
    "state_closing": "closing",
    "position_open": "100",
    "position_closed": "0",
    "payload_lock": "LOCK",
    "payload_unlock": "UNLOCK",
    "state_locked": "LOCKED",
    "state_unlocked": "UNLOCKED",
    "payload_play": "PLAY",
    "payload_pause": "PAUSE",
    "payload_next": "NEXT",
    "state_playing": "playing",
    "state_paused": "paused",
    "volume_scale": "100",
}


#: Home Assistant's defaults for vacuums (they differ from the cover/media ones above).
VACUUM_DEFAULTS: dict[str, str] = {
    "payload_start": "start",
    "payload_pause": "pause",
    "payload_stop": "stop",
    "payload_return_to_base": "return_to_base",
}

#: The ``supported_features`` entry each vacuum intent needs (checked when the device
#: declares ``capabilities``, as discovery does).
VACUUM_FEATURES: dict[str, str] = {
    IntentName.VACUUM_START: "start",
    IntentName.VACUUM_PAUSE: "pause",
    IntentName.VACUUM_STOP: "stop",
    IntentName.VACUUM_RETURN: "return_home",
}
_VACUUM_PAYLOADS: dict[str, str] = {
    IntentName.VACUUM_START: "payload_start",
    IntentName.VACUUM_PAUSE: "payload_pause",
    IntentName.VACUUM_STOP: "payload_stop",
    IntentName.VACUUM_RETURN: "payload_return_to_base",
}


def _p(device: Device, key: str) -> str:
    if key in device.payloads:
        return device.payloads[key]
    if device.kind == DeviceKind.VACUUM and key in VACUUM_DEFAULTS:
        return VACUUM_DEFAULTS[key]
    if key == "state_on":
        return _p(device, "payload_on")
    if key == "state_off":
        return _p(device, "payload_off")
    return DEFAULTS[key]


def _scale(device: Device, key: str) -> int:
    try:
        return int(float(_p(device, key)))
    except ValueError as e:
        raise AdapterError(f"{device.id}: payloads.{key} is not a number") from e


def _topic(device: Device, key: str, what: str) -> str:
    topic = device.topics.get(key)
    if not topic:
        raise AdapterError(f"{device.id} has no {key} ({what})")
    return topic


def _is_json_schema(device: Device) -> bool:
    return device.payloads.get("schema") == "json"


def _json_light(device: Device, intent: Intent) -> list[Command]:
    s = intent.slots
    body: dict[str, Any]
    if intent.name in c.ON_INTENTS or intent.name in c.OFF_INTENTS:
        body = {"state": "ON" if intent.name in c.ON_INTENTS else "OFF"}
    elif s.brightness == 0:
        body = {"state": "OFF"}
    else:
        body = {"state": "ON"}
        if s.brightness is not None:
            body["brightness"] = c.pct_to_scale(s.brightness, _scale(device, "brightness_scale"))
        if s.color_temp_kelvin is not None:
            body["color_temp"] = c.kelvin_to_mireds(s.color_temp_kelvin)
        rgb = c.rgb_of(intent)
        if rgb is not None:
            body["color"] = {"r": rgb[0], "g": rgb[1], "b": rgb[2]}
        if len(body) == 1:
            raise AdapterError("light_set without brightness, colour or colour temperature")
    return [Command(_topic(device, "command_topic", "commands"), c.json_payload(body))]


def _vacuum(device: Device, intent: Intent) -> list[Command]:
    c.require_kind(device, intent, DeviceKind.VACUUM)
    name = intent.name
    if name == IntentName.VACUUM_CLEAN_AREA:
        segments = c.vacuum_segments(device, intent)
        command = device.payloads.get("segment_clean_command")
        if not command:
            raise AdapterError(f"{device.id} has no payloads.segment_clean_command (room cleaning)")
        topic = _topic(device, "send_command_topic", "room cleaning")
        return [Command(topic, c.json_payload({"command": command, "segment_ids": segments}))]
    c.require_capability(device, VACUUM_FEATURES[name])
    payload = _p(device, _VACUUM_PAYLOADS[name])
    return [Command(_topic(device, "command_topic", "vacuum commands"), payload)]


def commands_for(device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
    name = intent.name
    s = intent.slots
    if name in c.VACUUM_INTENTS:
        return _vacuum(device, intent)
    if name in c.ON_INTENTS or name in c.OFF_INTENTS:
        c.require_kind(device, intent, DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN)
        if _is_json_schema(device):
            return _json_light(device, intent)
        payload = _p(device, "payload_on" if name in c.ON_INTENTS else "payload_off")
        return [Command(_topic(device, "command_topic", "on/off"), payload)]
    if name == IntentName.LIGHT_SET:
        c.require_kind(device, intent, DeviceKind.LIGHT)
        if _is_json_schema(device):
            return _json_light(device, intent)
        if s.brightness == 0:
            return [Command(_topic(device, "command_topic", "on/off"), _p(device, "payload_off"))]
        cmds: list[Command] = []
        if s.brightness is not None:
            value = c.pct_to_scale(s.brightness, _scale(device, "brightness_scale"))
            cmds.append(
                Command(_topic(device, "brightness_command_topic", "brightness"), str(value))
            )
        elif s.brightness_step is not None:
            raise AdapterError("relative brightness needs the current brightness")
        if s.color_temp_kelvin is not None:
            topic = _topic(device, "color_temp_command_topic", "colour temperature")
            if device.payloads.get("color_temp_kelvin") == "true":
                cmds.append(Command(topic, str(s.color_temp_kelvin)))
            else:
                cmds.append(Command(topic, str(c.kelvin_to_mireds(s.color_temp_kelvin))))
        rgb = c.rgb_of(intent)
        if rgb is not None:
            cmds.append(
                Command(
                    _topic(device, "rgb_command_topic", "colour"), f"{rgb[0]},{rgb[1]},{rgb[2]}"
                )
            )
        if not cmds:
            raise AdapterError("light_set without brightness, colour or colour temperature")
        if s.brightness is None and "command_topic" in device.topics:
            # HA lights turn on with a brightness; other attributes need an explicit on first.
            cmds.insert(0, Command(device.topics["command_topic"], _p(device, "payload_on")))
        return cmds
    if name in (IntentName.LOCK, IntentName.UNLOCK):
        c.require_kind(device, intent, DeviceKind.LOCK)
        payload = _p(device, "payload_lock" if name == IntentName.LOCK else "payload_unlock")
        return [Command(_topic(device, "command_topic", "lock"), payload)]
    if name in (IntentName.COVER_OPEN, IntentName.COVER_CLOSE):
        c.require_kind(device, intent, DeviceKind.COVER)
        payload = _p(device, "payload_open" if name == IntentName.COVER_OPEN else "payload_close")
        return [Command(_topic(device, "command_topic", "open/close"), payload)]
    if name == IntentName.COVER_SET_POSITION:
        c.require_kind(device, intent, DeviceKind.COVER)
        if s.position is None:
            raise AdapterError("cover_set_position needs a position")
        lo, hi = _scale(device, "position_closed"), _scale(device, "position_open")
        value = round(lo + (hi - lo) * s.position / 100)
        return [Command(_topic(device, "set_position_topic", "position"), str(value))]
    if name == IntentName.CLIMATE_SET_TEMPERATURE:
        c.require_kind(device, intent, DeviceKind.CLIMATE)
        topic = _topic(device, "temperature_command_topic", "setpoint")
        return [Command(topic, f"{c.celsius_target(intent):g}")]
    if name in (IntentName.MEDIA_PAUSE, IntentName.MEDIA_RESUME, IntentName.MEDIA_NEXT):
        c.require_kind(device, intent, DeviceKind.MEDIA_PLAYER)
        key = {
            IntentName.MEDIA_PAUSE: "payload_pause",
            IntentName.MEDIA_RESUME: "payload_play",
            IntentName.MEDIA_NEXT: "payload_next",
        }[IntentName(name)]
        return [Command(_topic(device, "command_topic", "media"), _p(device, key))]
    if name == IntentName.MEDIA_SET_VOLUME:
        c.require_kind(device, intent, DeviceKind.MEDIA_PLAYER)
        if s.volume is None:
            raise AdapterError("media_set_volume needs a volume")
        value = c.pct_to_scale(s.volume, _scale(device, "volume_scale"))
        return [Command(_topic(device, "volume_command_topic", "volume"), str(value))]
    raise AdapterError(f"{device.id} cannot {name}")


_STATE_KEYS = (
    "state_topic",
    "brightness_state_topic",
    "color_temp_state_topic",
    "position_topic",
    "temperature_state_topic",
    "current_temperature_topic",
    "volume_state_topic",
    "json_attributes_topic",
)


def state_topics(device: Device, settings: MqttSettings) -> list[str]:
    topics: list[str] = []
    for key in _STATE_KEYS:
        t = device.topics.get(key)
        if t and t not in topics:
            topics.append(t)
    return topics


def _number(payload: bytes) -> float | None:
    try:
        return float(payload.decode("utf-8").strip())
    except (ValueError, UnicodeDecodeError):
        return None


def _text_state(device: Device, text: str) -> str | None:
    if device.kind == DeviceKind.VACUUM:
        lowered = text.strip().lower()
        return lowered if lowered in c.VACUUM_STATES else None
    candidates = {
        DeviceKind.LOCK: (("state_locked", "locked"), ("state_unlocked", "unlocked")),
        DeviceKind.COVER: (("state_open", "open"), ("state_closed", "closed")),
        DeviceKind.MEDIA_PLAYER: (("state_playing", "playing"), ("state_paused", "paused")),
    }.get(device.kind, (("state_on", "on"), ("state_off", "off")))
    for key, normalized in candidates:
        if text == _p(device, key):
            return normalized
    lowered = text.lower()
    for _, normalized in candidates:
        if lowered == normalized:
            return normalized
    return None


def _from_object(device: Device, obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw = obj.get("state")
    if isinstance(raw, str):
        st = _text_state(device, raw)
        if st is not None:
            out["state"] = st
    if isinstance(obj.get("brightness"), int | float):
        out["brightness"] = c.scale_to_pct(obj["brightness"], _scale(device, "brightness_scale"))
    if isinstance(obj.get("color_temp"), int | float) and obj["color_temp"] > 0:
        out["color_temp_kelvin"] = c.mireds_to_kelvin(obj["color_temp"])
    if isinstance(obj.get("position"), int | float):
        out["position"] = int(obj["position"])
    if isinstance(obj.get("volume"), int | float):
        out["volume"] = c.scale_to_pct(obj["volume"], _scale(device, "volume_scale"))
    for key in ("temperature", "current_temperature", "media_title", "source"):
        if key in obj:
            out[key] = obj[key]
    if device.kind == DeviceKind.VACUUM:
        if isinstance(obj.get("battery_level"), int | float):
            out["battery"] = int(obj["battery_level"])
        if isinstance(obj.get("fan_speed"), str):
            out["fan_speed"] = obj["fan_speed"]
    return out


_SIMPLE_TEMPLATE = re.compile(
    r"^\{\{\s*value_json(?:\.(\w+)|\[\s*['\"]([^'\"]+)['\"]\s*\])\s*\}\}$"
)


def _template_key(template: str | None) -> str | None:
    """The key of a ``{{ value_json.KEY }}`` template; richer Jinja is not supported."""
    if not template:
        return None
    m = _SIMPLE_TEMPLATE.match(template.strip())
    return None if m is None else (m.group(1) or m.group(2))


def parse_state(device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
    """One device can have several state topics; each yields the keys it carries."""
    t = device.topics
    out: dict[str, Any] = {}
    if topic == t.get("brightness_state_topic"):
        v = _number(payload)
        if v is not None:
            out["brightness"] = c.scale_to_pct(v, _scale(device, "brightness_scale"))
    if topic == t.get("color_temp_state_topic"):
        v = _number(payload)
        if v is not None and v > 0:
            out["color_temp_kelvin"] = (
                int(v)
                if device.payloads.get("color_temp_kelvin") == "true"
                else c.mireds_to_kelvin(v)
            )
    if topic == t.get("position_topic"):
        v = _number(payload)
        if v is not None:
            lo, hi = _scale(device, "position_closed"), _scale(device, "position_open")
            out["position"] = round((v - lo) * 100 / (hi - lo)) if hi != lo else int(v)
    if topic == t.get("temperature_state_topic"):
        v = _number(payload)
        if v is not None:
            out["temperature"] = v
    if topic == t.get("current_temperature_topic"):
        v = _number(payload)
        if v is not None:
            out["current_temperature"] = v
            if device.kind == DeviceKind.SENSOR:
                out["temperature"] = v
    if topic == t.get("volume_state_topic"):
        v = _number(payload)
        if v is not None:
            out["volume"] = c.scale_to_pct(v, _scale(device, "volume_scale"))
    if topic in (t.get("state_topic"), t.get("json_attributes_topic")):
        obj = c.loads_object(payload)
        key = _template_key(device.payloads.get("value_template"))
        if obj is not None and key is not None and topic == t.get("state_topic"):
            # e.g. Tasmota's discovery: tele/<t>/STATE with "{{ value_json.POWER }}".
            value = obj.get(key)
            obj = None
            payload = b"" if value is None else str(value).encode()
        if obj is not None:
            out.update(_from_object(device, obj))
        elif topic == t.get("state_topic"):
            text = payload.decode("utf-8", "replace").strip()
            st = _text_state(device, text)
            if st is not None:
                out["state"] = st
            elif device.kind == DeviceKind.SENSOR:
                v = _number(payload)
                if v is not None:
                    out["current_temperature"] = out["temperature"] = v
    return out or None


confirms = c.confirms  # the generic check: the state shows what was asked
