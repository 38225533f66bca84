"""From a matched sentence (Home Assistant intent name + slot values) to a resolved Hearth intent.

Pure functions over a :class:`~devices.registry.HomeConfig`: names, areas, floors, domains and
device classes become concrete ``device_ids``; Home Assistant intents become our snake_case
intents. Nothing here knows about hassil; the grammar tier feeds it plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devices.registry import Device, DeviceKind, HomeConfig
from intents.schema import IntentName, Slots
from intents.timers import TIMER_HA_INTENTS, TimerError, timer_slots

#: Value of the ``area`` context we give hassil when the caller named no area: sentences that
#: need "the area I am in" then mean the whole home.
WHOLE_HOME = "__home__"

#: Brightness change of "dim"/"brighten" without an amount, in percent.
DEFAULT_BRIGHTNESS_STEP = 20

#: Prefix of ``name`` slot values that are scenes rather than devices.
SCENE_PREFIX = "scene:"

HA_DOMAIN_TO_KIND: dict[str, DeviceKind] = {
    "light": DeviceKind.LIGHT,
    "switch": DeviceKind.SWITCH,
    "fan": DeviceKind.FAN,
    "cover": DeviceKind.COVER,
    "lock": DeviceKind.LOCK,
    "climate": DeviceKind.CLIMATE,
    "media_player": DeviceKind.MEDIA_PLAYER,
    "sensor": DeviceKind.SENSOR,
    "vacuum": DeviceKind.VACUUM,
}

KIND_TO_HA_DOMAIN: dict[DeviceKind, str] = {v: k for k, v in HA_DOMAIN_TO_KIND.items()}

_ON: dict[DeviceKind, IntentName] = {
    DeviceKind.LIGHT: IntentName.LIGHT_ON,
    DeviceKind.SWITCH: IntentName.SWITCH_ON,
    DeviceKind.FAN: IntentName.FAN_ON,
    DeviceKind.COVER: IntentName.COVER_OPEN,
    DeviceKind.LOCK: IntentName.LOCK,  # Home Assistant: "turn on" a lock = lock it
    DeviceKind.MEDIA_PLAYER: IntentName.MEDIA_RESUME,
    DeviceKind.VACUUM: IntentName.VACUUM_START,
}
_OFF: dict[DeviceKind, IntentName] = {
    DeviceKind.LIGHT: IntentName.LIGHT_OFF,
    DeviceKind.SWITCH: IntentName.SWITCH_OFF,
    DeviceKind.FAN: IntentName.FAN_OFF,
    DeviceKind.COVER: IntentName.COVER_CLOSE,
    DeviceKind.LOCK: IntentName.UNLOCK,
    DeviceKind.MEDIA_PLAYER: IntentName.MEDIA_PAUSE,
    DeviceKind.VACUUM: IntentName.VACUUM_STOP,
}

_MEDIA: dict[str, IntentName] = {
    "HassMediaPause": IntentName.MEDIA_PAUSE,
    "HassMediaUnpause": IntentName.MEDIA_RESUME,
    "HassMediaNext": IntentName.MEDIA_NEXT,
    "HassSetVolume": IntentName.MEDIA_SET_VOLUME,
}

#: Cover device classes (Home Assistant's ``cover_classes`` list) recognised from words in a
#: device's name or aliases, since our registry has no device-class field. Checked in order:
#: a "garage door" is a garage, not a door.
COVER_CLASS_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("garage", ("garage", "车库门")),
    ("awning", ("awning", "遮阳棚", "雨棚", "遮阳蓬", "雨蓬")),
    ("shutter", ("shutter", "百叶窗户")),
    ("blind", ("blind", "百叶", "卷帘")),
    ("curtain", ("curtain", "窗帘")),
    ("shade", ("shade", "遮阳帘")),
    ("gate", ("gate", "大门", "铁门")),
    ("window", ("window", "窗户")),
    ("door", ("door", "门")),
)


#: Home Assistant's vacuum intents and Hearth's (``intents/vacuum.py`` resolves them).
VACUUM_HA_INTENTS = frozenset({"HassVacuumStart", "HassVacuumReturnToBase", "HassVacuumCleanArea",
                               "HearthVacuumPause", "HearthVacuumStop"})


#: What Hearth says about Home Assistant intents it does not serve (never the internal name).
_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    ("Timer", "I can't do that with a timer yet"),
    ("Weather", "I can't tell the weather"),
    ("ShoppingList", "I can't keep shopping lists"),
    ("ListAdd", "I can't keep lists"),
    ("Time", "I can't tell the time yet"),
    ("Date", "I can't tell the date yet"),
    ("Vacuum", "Hearth cannot run a vacuum in this home"),
    ("Broadcast", "I can't broadcast messages"),
    ("Respond", "I can only control the home"),
    ("Media", "I can't do that with the media player yet"),
    ("Volume", "I can't change the volume that way yet; say a level"),
    ("Climate", "I can't do that with the heating yet"),
    ("Fan", "I can't do that with the fan yet"),
    ("Light", "I can't do that with the lights yet"),
    ("Lawn", "I can't control a lawn mower"),
    ("Valve", "I can't control valves"),
)


def unsupported_reason(ha_intent: str) -> str:
    """A user-facing reason for a Home Assistant intent Hearth does not handle."""
    for key, reason in _UNSUPPORTED:
        if key in ha_intent:
            return reason
    return "I can't do that yet"


class ResolveError(Exception):
    """The sentence matched but does not fit this home (no such device, wrong kind, ...)."""


@dataclass
class Resolved:
    """A resolved intent before provenance (confidence, source) is attached."""

    name: str
    slots: Slots
    reason: str
    #: True when the targets are the previous intent's devices ("turn it off")
    from_context: bool = False
    #: True when the target came from "everything in the home" rather than a named target
    home_wide: bool = False


class Resolver:
    """Resolves names/areas/floors/domains against one home config."""

    def __init__(self, config: HomeConfig) -> None:
        self.config = config
        self._devices = {d.id: d for d in config.devices}
        self._scenes = {s.id: s for s in config.scenes}
        self._areas = {a.id: a for a in config.areas}
        self._floors = {f.id: f for f in config.floors}

    # -- helpers ---------------------------------------------------------------------------

    def device(self, device_id: str) -> Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise ResolveError(f"unknown device {device_id!r}") from None

    def cover_class(self, device: Device) -> str | None:
        words = [device.name.lower(), *(a.lower() for a in device.aliases)]
        for cls, keys in COVER_CLASS_WORDS:
            if any(k in w for k in keys for w in words):
                return cls
        return None

    def _label(self, kind: str, ident: str | None) -> str:
        if ident is None:
            return ""
        if kind == "area" and ident in self._areas:
            return self._areas[ident].name
        if kind == "floor" and ident in self._floors:
            return self._floors[ident].name
        return ident

    def select(
        self,
        *,
        kinds: Iterable[DeviceKind],
        area: str | None = None,
        floor: str | None = None,
        device_class: str | None = None,
    ) -> list[str]:
        """All devices of the given kinds in an area/floor (or the whole home), sorted by id."""
        wanted = set(kinds)
        out: list[str] = []
        for d in self.config.devices:
            if d.kind not in wanted:
                continue
            if area is not None and area != WHOLE_HOME and d.area != area:
                continue
            if floor is not None and self.config.floor_of(d) != floor:
                continue
            if device_class is not None and (
                d.kind != DeviceKind.COVER or self.cover_class(d) != device_class
            ):
                continue
            out.append(d.id)
        return sorted(out)

    # -- the mapping -----------------------------------------------------------------------

    def resolve(
        self,
        ha_intent: str,
        values: Mapping[str, Any],
        *,
        context_device_ids: Sequence[str] = (),
    ) -> Resolved:
        """Map a Home Assistant (or Hearth template) intent with slot ``values`` to ours.

        ``values`` holds slot values as the grammar produced them: ``name`` is a device id (or
        ``scene:<id>``), ``area``/``floor`` are ids, numbers are numbers. Raises
        :class:`ResolveError` with a user-facing reason when it does not fit the home.
        """
        if ha_intent == "HassNevermind":
            return Resolved(IntentName.CANCEL, Slots(), "cancel")
        if ha_intent in TIMER_HA_INTENTS:  # answered by the session, no device
            try:
                name, slots, why = timer_slots(ha_intent, values)
            except TimerError as e:
                raise ResolveError(str(e)) from None
            return Resolved(name, slots, why)
        if ha_intent in ("HearthContextOn", "HearthContextOff"):
            return self._from_context(ha_intent == "HearthContextOn", values, context_device_ids)
        if ha_intent in ("HassTurnOn", "HassTurnOff"):
            return self._on_off(ha_intent == "HassTurnOn", values)
        if ha_intent in ("HassLightSet", "HearthLightStepUp", "HearthLightStepDown"):
            if ha_intent != "HassLightSet":
                step = _number(values.get("brightness_step")) or DEFAULT_BRIGHTNESS_STEP
                sign = 1 if ha_intent == "HearthLightStepUp" else -1
                values = {**values, "brightness_step": sign * abs(step)}
            return self._light_set(values, context_device_ids)
        if ha_intent == "HassClimateSetTemperature":
            targets = self._targets(values, {DeviceKind.CLIMATE}, "thermostat")
            temp = _number(values.get("temperature"))
            if temp is None:
                raise ResolveError("no temperature given")
            unit = _unit(values.get("temperature_unit"))
            slots = targets.slots.model_copy(update={"temperature": temp, "temperature_unit": unit})
            return _done(IntentName.CLIMATE_SET_TEMPERATURE, slots, targets,
                         f"set {targets.reason} to {_fmt(temp)}°{unit or ''}")
        if ha_intent == "HassClimateGetTemperature":
            targets = self._targets(values, {DeviceKind.CLIMATE, DeviceKind.SENSOR}, "thermostat",
                                    prefer={DeviceKind.CLIMATE})
            return _done(IntentName.CLIMATE_GET_TEMPERATURE, targets.slots, targets,
                         f"temperature of {targets.reason}")
        if ha_intent == "HassGetState":
            kinds = set(KIND_TO_HA_DOMAIN)
            targets = self._targets(values, kinds, "device")
            return _done(IntentName.GET_STATE, targets.slots, targets,
                         f"state of {targets.reason}")
        if ha_intent == "HassSetPosition":
            targets = self._targets(values, {DeviceKind.COVER}, "cover")
            pos = _number(values.get("position"))
            if pos is None:
                raise ResolveError("no position given")
            slots = targets.slots.model_copy(update={"position": int(pos)})
            return _done(IntentName.COVER_SET_POSITION, slots, targets,
                         f"set {targets.reason} to {int(pos)}% open")
        if ha_intent in _MEDIA:
            name = _MEDIA[ha_intent]
            targets = self._targets(values, {DeviceKind.MEDIA_PLAYER}, "media player")
            slots = targets.slots
            what = {IntentName.MEDIA_PAUSE: "pause", IntentName.MEDIA_RESUME: "resume",
                    IntentName.MEDIA_NEXT: "next track on"}.get(name, "volume of")
            if name == IntentName.MEDIA_SET_VOLUME:
                vol = _number(values.get("volume_level", values.get("volume")))
                if vol is None:
                    raise ResolveError("no volume given")
                slots = slots.model_copy(update={"volume": int(vol)})
                return _done(name, slots, targets, f"volume of {targets.reason} to {int(vol)}%")
            return _done(name, slots, targets, f"{what} {targets.reason}")
        if ha_intent in VACUUM_HA_INTENTS:
            from intents.vacuum import resolve_vacuum  # it builds on this module

            return resolve_vacuum(self, ha_intent, values)
        raise ResolveError(unsupported_reason(ha_intent))

    # -- per intent --------------------------------------------------------------------------

    def _on_off(self, on: bool, values: Mapping[str, Any]) -> Resolved:
        table = _ON if on else _OFF
        name_value = values.get("name")
        if isinstance(name_value, str) and name_value.startswith(SCENE_PREFIX):
            if not on:
                raise ResolveError("scenes can only be activated")
            scene_id = name_value[len(SCENE_PREFIX):]
            if scene_id not in self._scenes:
                raise ResolveError(f"unknown scene {scene_id!r}")
            return Resolved(IntentName.SCENE_ACTIVATE, Slots(scene=scene_id),
                            f"scene {self._scenes[scene_id].name!r}")
        targets = self._targets(values, set(table), "device that turns on and off")
        kinds = {self.device(i).kind for i in targets.slots.device_ids}
        if len(kinds) != 1:
            raise ResolveError(
                f"{targets.reason} holds several kinds of devices "
                f"({', '.join(sorted(kinds))}); name one"
            )
        kind = kinds.pop()
        verb = table[kind]
        return _done(verb, targets.slots, targets, f"{verb.replace('_', ' ')}: {targets.reason}")

    def _light_set(self, values: Mapping[str, Any], context_ids: Sequence[str]) -> Resolved:
        if values.get("target") == "it":
            if not context_ids:
                raise ResolveError('"it" refers to nothing: no previous command')
            targets = self._context_targets(context_ids, {DeviceKind.LIGHT})
        else:
            targets = self._targets(values, {DeviceKind.LIGHT}, "light")
        update: dict[str, Any] = {}
        what: list[str] = []
        if (b := _number(values.get("brightness"))) is not None:
            update["brightness"] = max(0, min(100, round(b)))
            what.append(f"brightness {update['brightness']}%")
        if (s := _number(values.get("brightness_step"))) is not None:
            update["brightness_step"] = max(-100, min(100, round(s)))
            what.append(f"brightness {update['brightness_step']:+d}%")
        if isinstance(values.get("color"), str):
            update["color"] = values["color"]
            what.append(f"colour {values['color']}")
        kelvin = _number(values.get("temperature", values.get("color_temp_kelvin")))
        if kelvin is not None:
            update["color_temp_kelvin"] = max(1000, min(10000, round(kelvin)))
            what.append(f"{update['color_temp_kelvin']} K")
        if not update:
            raise ResolveError("nothing to set on the light")
        slots = targets.slots.model_copy(update=update)
        return _done(IntentName.LIGHT_SET, slots, targets,
                     f"set {targets.reason}: {', '.join(what)}")

    def _from_context(
        self, on: bool, values: Mapping[str, Any], context_ids: Sequence[str]
    ) -> Resolved:
        if not context_ids:
            raise ResolveError('"it" refers to nothing: no previous command')
        table = _ON if on else _OFF
        targets = self._context_targets(context_ids, set(table))
        kinds = {self.device(i).kind for i in targets.slots.device_ids}
        if len(kinds) != 1:
            raise ResolveError("the previous command covered several kinds of devices")
        verb = table[kinds.pop()]
        return _done(verb, targets.slots, targets, f"{verb.replace('_', ' ')}: {targets.reason}")

    # -- targets -----------------------------------------------------------------------------

    def _context_targets(self, ids: Sequence[str], kinds: set[DeviceKind]) -> _Targets:
        usable = sorted(i for i in ids if i in self._devices and self._devices[i].kind in kinds)
        if not usable:
            raise ResolveError("the previous command's devices cannot do that")
        return _Targets(Slots(device_ids=usable), f"same as before ({', '.join(usable)})",
                        from_context=True)

    def _targets(
        self,
        values: Mapping[str, Any],
        kinds: set[DeviceKind],
        noun: str,
        *,
        prefer: set[DeviceKind] | None = None,
    ) -> _Targets:
        domain = values.get("domain")
        if isinstance(domain, str) and domain:
            if domain not in HA_DOMAIN_TO_KIND:
                raise ResolveError(f"Hearth has no {domain} devices")
            kinds = kinds & {HA_DOMAIN_TO_KIND[domain]}
            noun = domain.replace("_", " ")
        area = values.get("area")
        floor = values.get("floor")
        area = area if isinstance(area, str) else None
        floor = floor if isinstance(floor, str) else None
        device_class = values.get("device_class")
        device_class = device_class if isinstance(device_class, str) else None
        slot_area = None if area == WHOLE_HOME else area
        dom = domain if isinstance(domain, str) and domain else None

        name_value = values.get("name")
        if isinstance(name_value, str) and name_value:
            dev = self.device(name_value)
            if dev.kind not in kinds:
                raise ResolveError(f"{dev.name} is a {dev.kind.value}, not a {noun}")
            # A spoken area next to a name narrows nothing; a satellite area is ignored.
            return _Targets(
                Slots(device_ids=[dev.id], domain=dom or KIND_TO_HA_DOMAIN[dev.kind],
                      area=slot_area if slot_area == dev.area else None),
                f"{dev.name} ({dev.id})",
            )
        if prefer is not None:
            preferred = self.select(kinds=kinds & prefer, area=area, floor=floor,
                                    device_class=device_class)
            if preferred:
                kinds = kinds & prefer
        ids = self.select(kinds=kinds, area=area, floor=floor, device_class=device_class)
        plural = f"{device_class or noun}s"
        if floor is not None:
            where = f"on {self._label('floor', floor)}"
        elif slot_area is not None:
            where = f"in {self._label('area', slot_area)}"
        else:
            where = "in the home"
        if not ids:
            raise ResolveError(f"no {plural} {where}")
        slots = Slots(device_ids=ids, area=slot_area, floor=floor, domain=dom)
        return _Targets(slots, f"{plural} {where} ({', '.join(ids)})",
                        home_wide=floor is None and slot_area is None)


@dataclass
class _Targets:
    slots: Slots
    reason: str
    home_wide: bool = False
    from_context: bool = False


def _done(name: str, slots: Slots, targets: _Targets, reason: str) -> Resolved:
    return Resolved(name, slots, reason, from_context=targets.from_context,
                    home_wide=targets.home_wide)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _unit(value: Any) -> str | None:
    if isinstance(value, str) and value[:1].upper() in ("C", "F"):
        return value[:1].upper()
    return None


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)
