"""Robot vacuums: Home Assistant's vacuum intents and Hearth's, resolved against one home.

The sentences (home-assistant-intents plus ``intents/data/sentences_<lang>.yaml``) produce:

- ``HassVacuumStart`` with ``name`` ("start Rover"), ``floor`` ("clean the first floor") or
  ``domain: vacuum`` (a generic word: "start the vacuum", "clean the house");
- ``HassVacuumReturnToBase`` with ``name`` or ``domain: vacuum`` ("send the robot home");
- ``HassVacuumCleanArea`` with ``area`` and maybe ``name`` ("clean the kitchen", "vacuum the
  kitchen with Rover");
- ``HearthVacuumPause`` / ``HearthVacuumStop`` with ``name`` or ``domain: vacuum``.

A generic word means the home's one vacuum; with several, the user must name one, except for
the whole home ("clean the house", template slot ``scope: home``), which starts them all. A room
is cleaned only by a vacuum whose ``segments`` map that room: Hearth never starts a whole-home
clean when one room was asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices.registry import Device, DeviceKind
from intents.resolve import WHOLE_HOME, Resolved, ResolveError, Resolver
from intents.schema import IntentName, Slots

_INTENTS: dict[str, IntentName] = {
    "HassVacuumStart": IntentName.VACUUM_START,
    "HassVacuumReturnToBase": IntentName.VACUUM_RETURN,
    "HearthVacuumPause": IntentName.VACUUM_PAUSE,
    "HearthVacuumStop": IntentName.VACUUM_STOP,
}
_REASONS: dict[str, str] = {
    IntentName.VACUUM_START: "start {}",
    IntentName.VACUUM_RETURN: "send {} home",
    IntentName.VACUUM_PAUSE: "pause {}",
    IntentName.VACUUM_STOP: "stop {}",
}

NO_VACUUM = "there is no robot vacuum in this home"


def resolve_vacuum(resolver: Resolver, ha_intent: str, values: Mapping[str, Any]) -> Resolved:
    """Resolve one of :data:`intents.resolve.VACUUM_HA_INTENTS`; raises :class:`ResolveError`
    with a reason a person understands when the home cannot do it."""
    if ha_intent == "HassVacuumCleanArea":
        return _clean_area(resolver, values)
    name = _INTENTS[ha_intent]
    named = _named(resolver, values)
    floor = values.get("floor") if isinstance(values.get("floor"), str) else None
    if named is not None:
        ids = [named.id]
        what = f"{named.name} ({named.id})"
        floor = None
    else:
        if not resolver.select(kinds={DeviceKind.VACUUM}):
            raise ResolveError(NO_VACUUM)
        ids = resolver.select(kinds={DeviceKind.VACUUM}, floor=floor)
        where = f" on the {_floor_name(resolver, floor)}" if floor else ""
        if not ids:
            raise ResolveError(f"there is no robot vacuum{where}")
        if len(ids) > 1 and values.get("scope") != "home":
            raise ResolveError(
                f"which vacuum? there are {len(ids)}{where} ({_names(resolver, ids)}); name one"
            )
        what = f"{'the vacuums' if len(ids) > 1 else 'the vacuum'}{where} ({', '.join(ids)})"
    slots = Slots(device_ids=ids, domain="vacuum", floor=floor)
    return Resolved(name, slots, _REASONS[name].format(what))


def _clean_area(resolver: Resolver, values: Mapping[str, Any]) -> Resolved:
    area = values.get("area")
    if not isinstance(area, str) or not area or area == WHOLE_HOME:
        raise ResolveError("which room? I don't know where 'here' is")
    room = _area_name(resolver, area)
    named = _named(resolver, values)
    if named is not None:
        candidates = [named]
    else:
        candidates = [resolver.device(i) for i in resolver.select(kinds={DeviceKind.VACUUM})]
        if not candidates:
            raise ResolveError(NO_VACUUM)
    able = [d for d in candidates if d.segments.get(area)]
    if not able:
        if len(candidates) == 1:
            raise ResolveError(
                f"the {candidates[0].name} cannot clean just the {room}: "
                f"no map segment for the {room} in its config"
            )
        raise ResolveError(f"no robot vacuum has a map segment for the {room}")
    if len(able) > 1:
        ids = [d.id for d in able]
        raise ResolveError(
            f"which vacuum? {len(able)} can clean the {room} ({_names(resolver, ids)}); name one"
        )
    dev = able[0]
    slots = Slots(device_ids=[dev.id], area=area, domain="vacuum")
    segments = ", ".join(dev.segments[area])
    return Resolved(IntentName.VACUUM_CLEAN_AREA, slots,
                    f"clean the {room} with {dev.name} ({dev.id}, segments {segments})")


def _named(resolver: Resolver, values: Mapping[str, Any]) -> Device | None:
    value = values.get("name")
    if not isinstance(value, str) or not value:
        return None
    dev = resolver.device(value)
    if dev.kind != DeviceKind.VACUUM:
        raise ResolveError(f"{dev.name} is a {dev.kind.value}, not a robot vacuum")
    return dev


def _names(resolver: Resolver, ids: list[str]) -> str:
    return ", ".join(resolver.device(i).name for i in ids)


def _area_name(resolver: Resolver, area: str) -> str:
    try:
        return resolver.config.area(area).name
    except KeyError:
        return area


def _floor_name(resolver: Resolver, floor: str) -> str:
    for f in resolver.config.floors:
        if f.id == floor:
            return f.name
    return floor
