"""Helpers shared by the adapters: value scaling, colours and the generic confirmation rule.

Every adapter normalizes device state to the same vocabulary (see ``devices.adapters``), so
"did the device do what the intent asked?" is answered once, here, on normalized state.
"""

from __future__ import annotations

import json
from typing import Any

from devices.actions import AdapterError
from devices.registry import Device, DeviceKind
from intents.schema import Intent, IntentName

#: Tolerances when comparing the state a device reports with what was asked: devices round
#: (brightness 0-254 vs percent, setpoints in 0.5 degree steps).
BRIGHTNESS_TOLERANCE = 2
POSITION_TOLERANCE = 2
TEMPERATURE_TOLERANCE = 0.3
VOLUME_TOLERANCE = 2

MIREDS_MIN = 153  # ~6500 K, the cold end most bulbs (and Tasmota CT) accept
MIREDS_MAX = 500  # 2000 K

#: CSS colour names a user is likely to say. Anything else must come as ``rgb``.
CSS_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "warmwhite": (255, 223, 179),
    "yellow": (255, 255, 0),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "violet": (238, 130, 238),
    "magenta": (255, 0, 255),
    "fuchsia": (255, 0, 255),
    "pink": (255, 192, 203),
    "cyan": (0, 255, 255),
    "aqua": (0, 255, 255),
    "teal": (0, 128, 128),
    "turquoise": (64, 224, 208),
    "gold": (255, 215, 0),
    "indigo": (75, 0, 130),
    "brown": (165, 42, 42),
    "coral": (255, 127, 80),
    "salmon": (250, 128, 114),
    "lavender": (230, 230, 250),
    "navy": (0, 0, 128),
    "crimson": (220, 20, 60),
}

ON_INTENTS = frozenset({IntentName.LIGHT_ON, IntentName.SWITCH_ON, IntentName.FAN_ON})
VACUUM_INTENTS = frozenset(
    {
        IntentName.VACUUM_START,
        IntentName.VACUUM_PAUSE,
        IntentName.VACUUM_STOP,
        IntentName.VACUUM_RETURN,
        IntentName.VACUUM_CLEAN_AREA,
    }
)
#: Normalized vacuum states (Home Assistant's vacuum activities).
VACUUM_STATES = frozenset({"cleaning", "paused", "idle", "returning", "docked", "error"})
#: The states that show a vacuum command took effect. Stopping a docked robot leaves it docked;
#: a robot sent home may already be there by the time it reports.
VACUUM_EXPECTED: dict[str, frozenset[str]] = {
    IntentName.VACUUM_START: frozenset({"cleaning"}),
    IntentName.VACUUM_CLEAN_AREA: frozenset({"cleaning"}),
    IntentName.VACUUM_PAUSE: frozenset({"paused"}),
    IntentName.VACUUM_STOP: frozenset({"idle", "docked"}),
    IntentName.VACUUM_RETURN: frozenset({"returning", "docked"}),
}
OFF_INTENTS = frozenset({IntentName.LIGHT_OFF, IntentName.SWITCH_OFF, IntentName.FAN_OFF})


def pct_to_scale(pct: int, scale: int) -> int:
    return round(max(0, min(100, pct)) * scale / 100)


def scale_to_pct(value: float, scale: int) -> int:
    return round(max(0.0, min(float(scale), value)) * 100 / scale)


def kelvin_to_mireds(kelvin: int, *, clamp: bool = True) -> int:
    mireds = round(1_000_000 / kelvin)
    return max(MIREDS_MIN, min(MIREDS_MAX, mireds)) if clamp else mireds


def mireds_to_kelvin(mireds: float) -> int:
    return round(1_000_000 / mireds) if mireds > 0 else 0


def rgb_of(intent: Intent) -> tuple[int, int, int] | None:
    """The colour an intent asks for, or None. Unknown colour names raise AdapterError."""
    if intent.slots.rgb is not None:
        return intent.slots.rgb
    if intent.slots.color is None:
        return None
    key = intent.slots.color.lower().replace(" ", "").replace("-", "")
    if key not in CSS_COLORS:
        raise AdapterError(f"unknown colour {intent.slots.color!r}")
    return CSS_COLORS[key]


def celsius_target(intent: Intent) -> float:
    """The setpoint in degrees Celsius (devices here speak Celsius)."""
    t = intent.slots.temperature
    if t is None:
        raise AdapterError("climate_set_temperature needs a temperature")
    if intent.slots.temperature_unit == "F":
        return round((t - 32) * 5 / 9 * 2) / 2
    return float(t)


def require_kind(device: Device, intent: Intent, *kinds: DeviceKind) -> None:
    if device.kind not in kinds:
        raise AdapterError(f"{device.id} is a {device.kind.value}; it cannot {intent.name}")


def vacuum_segments(device: Device, intent: Intent) -> list[str]:
    """The map segments of the rooms ``vacuum_clean_area`` asks for (``device.segments``):
    ``slots.area``, and with several rooms ("the kitchen and the hallway") the comma-separated
    ``slots.custom["areas"]``, in the order said, in one cleaning run."""
    area = intent.slots.area
    if area is None:
        raise AdapterError("vacuum_clean_area needs an area")
    more = intent.slots.custom.get("areas")
    areas = [a for a in str(more).split(",") if a] if more else [area]
    out: list[str] = []
    for a in areas:
        ids = device.segments.get(a)
        if not ids:
            raise AdapterError(f"{device.id} has no map segment for area {a!r} (segments)")
        out += [i for i in ids if i not in out]
    return out


def require_capability(device: Device, capability: str) -> None:
    # An empty capability list means "not declared": trust the intent rather than refuse.
    if device.capabilities and capability not in device.capabilities:
        raise AdapterError(f"{device.id} has no {capability} capability")


def json_payload(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def loads_object(payload: bytes) -> dict[str, Any] | None:
    """A JSON object payload, or None when the payload is not one."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def expected_state(device: Device, intent: Intent) -> dict[str, Any]:
    """The normalized state that shows an intent took effect. ``{}`` means any fresh state
    report confirms (e.g. ``media_next``, where nothing observable is guaranteed)."""
    name = intent.name
    s = intent.slots
    if name in ON_INTENTS:
        return {"state": "on"}
    if name in OFF_INTENTS:
        return {"state": "off"}
    if name == IntentName.LIGHT_SET:
        if s.brightness == 0:
            return {"state": "off"}
        exp: dict[str, Any] = {"state": "on"}
        if s.brightness is not None:
            exp["brightness"] = s.brightness
        if s.color_temp_kelvin is not None:
            exp["color_temp_kelvin"] = s.color_temp_kelvin
        return exp
    if name == IntentName.LOCK:
        return {"state": "locked"}
    if name == IntentName.UNLOCK:
        return {"state": "unlocked"}
    if name == IntentName.COVER_OPEN:
        return {"state": "open"}
    if name == IntentName.COVER_CLOSE:
        return {"state": "closed"}
    if name == IntentName.COVER_SET_POSITION and s.position is not None:
        return {"position": s.position}
    if name == IntentName.CLIMATE_SET_TEMPERATURE:
        return {"temperature": celsius_target(intent)}
    if name == IntentName.MEDIA_PAUSE:
        return {"state": "paused"}
    if name == IntentName.MEDIA_RESUME:
        return {"state": "playing"}
    if name == IntentName.MEDIA_SET_VOLUME and s.volume is not None:
        return {"volume": s.volume}
    if name in VACUUM_EXPECTED:
        return {"state": VACUUM_EXPECTED[name]}  # any one of these states
    return {}


_TOLERANCES: dict[str, float] = {
    "brightness": BRIGHTNESS_TOLERANCE,
    "position": POSITION_TOLERANCE,
    "temperature": TEMPERATURE_TOLERANCE,
    "volume": VOLUME_TOLERANCE,
}


def state_matches(expected: dict[str, Any], state: dict[str, Any]) -> bool:
    for key, want in expected.items():
        have = state.get(key)
        if have is None:
            return False
        if isinstance(want, frozenset):
            if have not in want:
                return False
        elif key == "color_temp_kelvin":
            # Mireds are integers and clamped: compare in mireds, allowing the clamp.
            if abs(kelvin_to_mireds(int(want)) - kelvin_to_mireds(int(have))) > 2:
                return False
        elif key in _TOLERANCES:
            if not isinstance(have, int | float):
                return False
            if abs(float(have) - float(want)) > _TOLERANCES[key]:
                return False
        elif have != want:
            return False
    return True


def confirms(device: Device, intent: Intent, state: dict[str, Any]) -> bool:
    """Generic confirmation: the normalized state shows what the intent asked for."""
    return state_matches(expected_state(device, intent), state)
