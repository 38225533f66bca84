"""Relative commands made absolute from a device's known state ("dim", "louder", "turn the heat
up", "light up"), and the commands that would change nothing. Pure: state in, intent or reason
out (adapters are pure and cannot know the current value)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from devices.registry import Device, DeviceKind
from intents.schema import Intent, IntentName

#: The lowest brightness (%) a relative dimming goes to: "dim" never turns a light off.
MIN_DIM_BRIGHTNESS = 1
#: A relative setpoint step stays within what household thermostats accept (degrees Celsius).
SETPOINT_MIN_C = 5.0
SETPOINT_MAX_C = 35.0

#: "light up the kitchen", "brighten it up": Home Assistant's sentences read them as *turn on*
#: (the intent's slots stay exactly that); said to a light that is already on they mean brighter.
_LIGHT_UP = re.compile(r"\b(?:light|lighten|brighten)(?:\s+(?:it|them))?\s+up\b", re.I)
LIGHT_UP_STEP = 20


def light_up_step(intent: Intent) -> int | None:
    """The brightness step (percent) a light-on means when the light is already on: an explicit
    ``brightness_step`` on the light-on, or ``LIGHT_UP_STEP`` when its words were "light up";
    None for a plain light-on."""
    if intent.name != IntentName.LIGHT_ON or intent.slots.brightness is not None:
        return None
    if intent.slots.brightness_step is not None:
        return intent.slots.brightness_step if intent.slots.brightness_step > 0 else None
    return LIGHT_UP_STEP if _LIGHT_UP.search(intent.text) else None


def is_step(intent: Intent) -> bool:
    s = intent.slots
    return (
        intent.name == IntentName.LIGHT_SET
        and s.brightness_step is not None
        and not s.brightness
    )


def nothing_to_do(intent: Intent, device: Device, state: Mapping[str, Any]) -> str | None:
    """Why a relative dimming cannot do anything, or None: a light known to be off is not
    dimmed (dimming never turns a light off or on), nor one already at its lowest. Likewise
    a robot vacuum asked for the state it is known to be in (it would report nothing)."""
    if device.kind == DeviceKind.VACUUM:
        return _vacuum_noop(intent.name, device, state)
    if not is_step(intent) or (intent.slots.brightness_step or 0) >= 0:
        return None
    if state.get("state") == "off":
        return f"the {device.name} is off"
    current = state.get("brightness")
    if isinstance(current, int | float) and current <= MIN_DIM_BRIGHTNESS:
        return f"the {device.name} is already at its lowest brightness"
    return None


def absolute_brightness(intent: Intent, state: Mapping[str, Any]) -> Intent:
    """Turn a relative brightness step into an absolute brightness when the current one is
    known. A brighter step on a light that is off turns it on at the step's level; a dimmer
    step stops at ``MIN_DIM_BRIGHTNESS``.

    A light-on said as "light up" / "brighten up" (:func:`light_up_step`) is that step when
    the light is known to be on at a known brightness, else a plain light-on."""
    s = intent.slots
    up = light_up_step(intent)
    if up is not None:
        now = state.get("brightness")
        if state.get("state") == "on" and isinstance(now, int | float):
            bright = max(MIN_DIM_BRIGHTNESS, min(100, round(now + up)))
            slots = s.model_copy(update={"brightness": bright, "brightness_step": None})
            return intent.model_copy(update={"name": IntentName.LIGHT_SET, "slots": slots})
        return intent
    if not is_step(intent) or s.brightness_step is None:
        return intent
    step = s.brightness_step
    current = state.get("brightness")
    if state.get("state") == "off" and step > 0:
        current = 0
    elif not isinstance(current, int | float):
        return intent
    target = max(MIN_DIM_BRIGHTNESS, min(100, round(current + step)))
    slots = s.model_copy(update={"brightness": target, "brightness_step": None})
    return intent.model_copy(update={"slots": slots})


def absolute_level(intent: Intent, device: Device, state: Mapping[str, Any]) -> Intent | str:
    """A setpoint or volume step ("turn the heat up", "louder") made absolute from the
    device's current state, clamped; or why it cannot be: the current value is unknown."""
    s = intent.slots
    if intent.name == IntentName.CLIMATE_SET_TEMPERATURE and s.temperature is None \
            and s.temperature_step is not None:
        current = state.get("temperature")
        if not isinstance(current, int | float):
            return (f"I don't know the {device.name}'s current setpoint yet, so I can't "
                    "change it by a step; say a temperature")
        step = s.temperature_step * (5 / 9 if s.temperature_unit == "F" else 1)
        target = max(SETPOINT_MIN_C, min(SETPOINT_MAX_C, round((current + step) * 2) / 2))
        slots = s.model_copy(update={"temperature": target, "temperature_unit": "C",
                                     "temperature_step": None})
        return intent.model_copy(update={"slots": slots})
    if intent.name == IntentName.MEDIA_SET_VOLUME and s.volume is None \
            and s.volume_step is not None:
        current = state.get("volume")
        if not isinstance(current, int | float):
            return (f"I don't know the {device.name}'s current volume yet, so I can't "
                    "change it by a step; say a level, such as 'volume 30'")
        target_v = max(0, min(100, round(current + s.volume_step)))
        slots = s.model_copy(update={"volume": target_v, "volume_step": None})
        return intent.model_copy(update={"slots": slots})
    return intent


def _vacuum_noop(name: str, device: Device, state: Mapping[str, Any]) -> str | None:
    """A vacuum command that would change nothing, given the robot's known state: Valetudo
    publishes a status only when it changes, so such a command could never be confirmed."""
    now = state.get("state")
    if name in (IntentName.VACUUM_RETURN, IntentName.VACUUM_STOP) and now == "docked":
        return f"the {device.name} is already docked"
    if name == IntentName.VACUUM_START and now == "cleaning":
        return f"the {device.name} is already cleaning"
    if name == IntentName.VACUUM_PAUSE and now in ("docked", "idle", "paused"):
        return f"the {device.name} is {'already paused' if now == 'paused' else 'not cleaning'}"
    return None


__all__ = [
    "LIGHT_UP_STEP",
    "MIN_DIM_BRIGHTNESS",
    "SETPOINT_MAX_C",
    "SETPOINT_MIN_C",
    "absolute_brightness",
    "absolute_level",
    "is_step",
    "light_up_step",
    "nothing_to_do",
]
