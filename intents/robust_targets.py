"""From a parse to intents: which devices (named, by kind and place, the speaker's area),
how far an action may reach, the confidence (coverage, guesses, sensitive actions)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from devices.registry import DeviceKind
from intents import robust_lexicon as L
from intents.resolve import KIND_TO_HA_DOMAIN
from intents.robust_base import (
    _GENERIC_SWITCH_WORDS,
    _SYNONYMS,
    CONF_AREA,
    CONF_EXPLICIT,
    CONF_HOME_IMPLIED,
    CONF_INDIRECT,
    CONF_SPEAKER_AREA,
    GUESS_PENALTY,
    SENSITIVE_MARGIN,
    UNEXPLAINED_CHAR_ZH,
    UNEXPLAINED_WEIGHT,
    UNEXPLAINED_WEIGHT_NO_VERB,
    Rejected,
    _describe,
    _NeedsRoom,
    _noun,
    _Parse,
    _TierBase,
    _unique,
)
from intents.schema import ROOM_UNKNOWN, SENSITIVE_INTENTS, Intent, IntentName, Slots

#: Window coverings: asked for one that the place lacks, the answer names the others.
_WINDOW_COVERINGS = frozenset({"blind", "curtain", "shade", "shutter"})


class _Targets(_TierBase):
    """Parses to intents."""

    def _intents(self, p: _Parse, text: str, lang: str, speaker_area: str | None) -> list[Intent]:
        action = p.action
        assert action is not None
        if action == "scene":
            assert p.scene is not None
            conf = CONF_EXPLICIT if p.explicit_verb else CONF_AREA - GUESS_PENALTY
            name = next(s.name for s in self.config.scenes if s.id == p.scene)
            return [self._intent(IntentName.SCENE_ACTIVATE, Slots(scene=p.scene), conf,
                                 f"scene {name!r}", text, lang, p)]
        if action == "vstart" and p.floor and not p.areas:  # "vacuum upstairs": its rooms there
            mapped = {a for v in self._vacuums() for a in self._devices[v].segments}
            p.areas = [a.id for a in self.config.areas if a.floor == p.floor and a.id in mapped]
            if not p.areas:
                raise Rejected("the robot vacuum has no map of any room on that floor")
        if action == "vstart" and p.areas:
            return [self._clean_rooms(p, text, lang)]
        groups, where, conf = self._targets(p, speaker_area)
        self._check_reach(p, groups, where)
        out: list[Intent] = []
        for kind, ids in groups:
            out.append(self._one(p, kind, ids, where, conf, text, lang))
        return out

    def _targets(self, p: _Parse, speaker_area: str | None
                 ) -> tuple[list[tuple[DeviceKind, list[str]]], str, float]:
        """Devices grouped by kind, a description of where, and the base confidence."""
        if p.indirect and not (p.areas or p.floor or p.home):
            p.here = True  # "it's too dark": where the speaker is, never the whole home
        explicit = p.devices + p.partial_devices
        if explicit:
            ids = sorted(set(explicit))
            conf = CONF_EXPLICIT - (GUESS_PENALTY if p.partial_devices else 0)
            kinds: dict[DeviceKind, list[str]] = {}
            for i in ids:
                kinds.setdefault(self._devices[i].kind, []).append(i)
            covered = {self._devices[i].area for i in ids}
            for other in p.areas:  # "the kitchen and living room lights"
                if other not in covered:
                    for dk in [k for k, v in kinds.items()  # not "the tv" said for a plug
                               if k.value in p.kinds or set(v) & set(p.devices)]:
                        kinds[dk].extend(self._select(dk.value, p, other))
            if p.kinds and p.devices:  # "the speaker and the lights": add kind words' devices
                extra = {k for k in p.kinds if k not in {kk.value for kk in kinds}}
                for k in extra:
                    sel = self._select(k, p, p.areas[0] if p.areas else None)
                    if sel:
                        kinds.setdefault(DeviceKind(k), []).extend(sel)
            elif p.kinds and p.partial_devices and p.joined:
                # "turn on the light and the tv" (the tv a plug): the light where the speaker
                # is, or in the room said; with neither, which room?
                for k in {k for k in p.kinds if k not in {kk.value for kk in kinds}}:
                    room = p.areas[0] if p.areas else speaker_area
                    if room is None:
                        raise _NeedsRoom(f"{ROOM_UNKNOWN}; say the room")
                    if sel := self._select(k, p, room):
                        kinds.setdefault(DeviceKind(k), []).extend(sel)
            names = ", ".join(f"{self._devices[i].name} ({i})" for i in ids)
            return [(k, sorted(set(v))) for k, v in kinds.items()], names, conf

        if not p.kinds:
            if p.everything or p.home or p.areas or p.here or p.floor or p.action in (
                    "on", "off", "step", "set"):
                if p.action in ("on", "off") and (p.everything or p.home):
                    kinds_wanted = ["light", "switch", "fan"] if p.action == "off" else ["light"]
                elif p.action in ("on", "off", "step", "set"):
                    kinds_wanted = ["light"]
                    p.kind_from_action = True
                else:
                    raise Rejected("I don't know which device you mean")
            else:
                raise Rejected("I don't know which device you mean")
        else:
            kinds_wanted = _unique(p.kinds)
        if p.kind_from_action and p.action == "set" and p.number is not None and not (
                p.areas or p.floor or p.home or p.everything or p.here):
            # "50 percent", "to 30 percent": a level alone names no light — the light just
            # asked for, or where the speaker is ("which room?"), never every light in the home
            p.here = p.bare_step = True
        if p.here and p.areas and not p.home:
            # "lights off in here and the hallway": the speaker's room is one of them
            if speaker_area is None:
                raise _NeedsRoom(f"{ROOM_UNKNOWN}; say the room")
            p.areas = _unique([speaker_area, *p.areas])
        # where
        area: str | None = None
        conf = CONF_AREA
        if p.areas:
            area = p.areas[0]
            where = "in the " + " and ".join(self._area_names.get(a, a) for a in p.areas)
        elif p.floor is not None:
            where = f"on {next(f.name for f in self.config.floors if f.id == p.floor)}"
        elif p.here and not p.home:
            follow = [i for i in p.follow_ids if i in self._devices
                      and self._devices[i].kind.value in kinds_wanted] if p.bare_step else []
            if speaker_area is None and follow:
                # "turn on the office light" ... "brighter": the light just asked for
                return ([(self._devices[follow[0]].kind, sorted(follow))],
                        "you last asked for", CONF_SPEAKER_AREA)
            if speaker_area is None:
                raise _NeedsRoom(f"{ROOM_UNKNOWN}; say the room")
            area = speaker_area
            conf = CONF_SPEAKER_AREA
            where = f"in the {self._area_names.get(area, area)} (where you are)"
        elif p.home or p.everything or "all" in p.notes:
            where = "in the home"
        elif speaker_area is not None:
            area = speaker_area
            conf = CONF_SPEAKER_AREA
            where = f"in the {self._area_names.get(area, area)} (where you are)"
        else:
            where = "in the home"
            conf = CONF_HOME_IMPLIED
        groups: list[tuple[DeviceKind, list[str]]] = []
        for k in kinds_wanted:
            ids = self._select(k, p, area)
            for other in p.areas[1:]:
                ids = sorted(set(ids) | set(self._select(k, p, other)))
            if not ids and area is not None and area == speaker_area and not p.areas \
                    and not p.here:
                everywhere = self._select(k, p, None)
                if len(everywhere) == 1:  # the only one in the home
                    ids = everywhere
                    where = "in the home"
            if ids:
                groups.append((DeviceKind(k), ids))
        if not groups:
            noun = _noun(kinds_wanted[0], p)
            if area is None and p.floor is None:
                raise Rejected(f"there is no {noun} in the home{self._other_coverings(p, None)}")
            place = where.replace(" (where you are)", "")
            raise Rejected(f"there is no {noun} {place}{self._other_coverings(p, area)}")
        if len(groups) > 1 and p.action not in ("on", "off"):
            groups = groups[:1]
        return groups, where, conf

    def _other_coverings(self, p: _Parse, area: str | None) -> str:
        """"; did you mean the bedroom blinds?" where curtains were asked for and the place
        has another kind of window covering (a device class is taken as said, as Home
        Assistant does: the blinds are not the curtains)."""
        if p.cover_class not in _WINDOW_COVERINGS:
            return ""
        ids = self._resolver.select(kinds=[DeviceKind.COVER], area=area, floor=p.floor)
        names = [self._devices[i].name for i in ids
                 if self._resolver.cover_class(self._devices[i]) in _WINDOW_COVERINGS]
        return f"; did you mean the {' or the '.join(names)}?" if names else ""

    def _check_reach(self, p: _Parse, groups: list[tuple[DeviceKind, list[str]]],
                     where: str) -> None:
        """An action never reaches further than was understood: a home-wide or several-kind
        reading needs every word around it explained, and each kind said."""
        n = sum(len(ids) for _, ids in groups)
        broad = (len(groups) > 1 or (n > 1 and where == "in the home")) \
            and not (p.devices or p.partial_devices)
        if broad and p.unknown:
            heard = " ".join(p.unknown)
            raise Rejected(f"I didn't catch {heard!r}, so I won't act on the whole home; "
                           "say which room or device")
        if len(groups) > 1:
            said = set(p.kinds) | {self._devices[d].kind.value
                                   for d in p.devices + p.partial_devices}
            whole = (p.everything or p.home) and p.action in ("on", "off")
            if not whole and any(k.value not in said for k, _ in groups):
                raise Rejected("I'm not sure which devices you mean; name them")

    def _coverage(self, p: _Parse, name: str, conf: float) -> float:
        """The share of the sentence left unexplained lowers the confidence."""
        if not p.unknown:
            return conf
        if p.zh:
            conf -= UNEXPLAINED_CHAR_ZH * sum(len(u) for u in p.unknown)
            if p.action in ("set", "step", "temp", "tstep", "volume", "vstep", "position"):
                # a half-heard Chinese verb (吊 for 调) decides which value changes
                conf = min(conf, self.config.security.min_confidence - 0.05)
            return conf
        weight = UNEXPLAINED_WEIGHT if p.imperative else UNEXPLAINED_WEIGHT_NO_VERB
        return conf - weight * len(p.unknown) / max(1, p.size)

    def _select(self, kind: str, p: _Parse, area: str | None) -> list[str]:
        try:
            dk = DeviceKind(kind)
        except ValueError:
            return []
        ids = self._resolver.select(kinds=[dk], area=area, floor=p.floor)
        if dk == DeviceKind.COVER and p.cover_class is not None:
            ids = [i for i in ids if self._resolver.cover_class(self._devices[i]) == p.cover_class]
        words = [w for w in p.kind_words if L.KIND_WORDS_EN.get(w) == kind]
        syn: set[str] = set()
        for w in words:
            syn |= _SYNONYMS.get(w, set())
        if syn and dk in (DeviceKind.SWITCH, DeviceKind.MEDIA_PLAYER):
            named = [i for i in ids if self._lex.device_words.get(i, set()) & syn]
            if named or (dk == DeviceKind.SWITCH and words and all(
                    w in _GENERIC_SWITCH_WORDS for w in words)):
                ids = named
        if dk == DeviceKind.CLIMATE and p.action == "get_temp":
            sensors = self._resolver.select(kinds=[DeviceKind.SENSOR], area=area, floor=p.floor)
            ids = ids or sensors
        return ids

    def _one(self, p: _Parse, kind: DeviceKind, ids: list[str], where: str, conf: float,
             text: str, lang: str) -> Intent:
        a = p.action
        names = ", ".join(ids)
        noun = _noun(kind.value, p)
        what = f"{noun}s {where} ({names})" if not (p.devices or p.partial_devices) else \
            ", ".join(f"{self._devices[i].name} ({i})" for i in ids)
        slots: dict[str, Any] = {"device_ids": ids, "domain": KIND_TO_HA_DOMAIN.get(kind)}
        if len(p.areas) == 1:
            slots["area"] = p.areas[0]
        if p.floor:
            slots["floor"] = p.floor
        name: str
        if a in ("on", "off"):
            table = {
                DeviceKind.LIGHT: (IntentName.LIGHT_ON, IntentName.LIGHT_OFF),
                DeviceKind.SWITCH: (IntentName.SWITCH_ON, IntentName.SWITCH_OFF),
                DeviceKind.FAN: (IntentName.FAN_ON, IntentName.FAN_OFF),
                DeviceKind.MEDIA_PLAYER: (IntentName.MEDIA_RESUME, IntentName.MEDIA_PAUSE),
                DeviceKind.COVER: (IntentName.COVER_OPEN, IntentName.COVER_CLOSE),
                DeviceKind.LOCK: (IntentName.LOCK, IntentName.UNLOCK),
            }
            if kind not in table:
                raise Rejected(f"I can't switch the {noun} on or off; "
                               + ("set a temperature instead" if kind == DeviceKind.CLIMATE
                                  else "try another command"))
            name = table[kind][0 if a == "on" else 1]
            if name == IntentName.LIGHT_ON and p.step is not None and p.step > 0:
                slots["brightness_step"] = p.step  # brighter where it is on already
            if kind in (DeviceKind.COVER, DeviceKind.LOCK):
                p.explicit_verb = False  # "turn off the lock": not how one asks to unlock
        elif a in ("open", "close", "position"):
            if kind != DeviceKind.COVER:
                raise Rejected(f"I can't open or close the {noun}")
            name = {"open": IntentName.COVER_OPEN, "close": IntentName.COVER_CLOSE,
                    "position": IntentName.COVER_SET_POSITION}[a]
            if a == "position":
                slots["position"] = int(p.number if p.number is not None else 50)
        elif a in ("lock", "unlock"):
            if kind != DeviceKind.LOCK:
                raise Rejected(f"the {noun} has no lock")
            name = IntentName.LOCK if a == "lock" else IntentName.UNLOCK
        elif a in ("step", "set"):
            if kind != DeviceKind.LIGHT:
                raise Rejected(f"I can't change the {noun} that way")
            name = IntentName.LIGHT_SET
            if p.brightness is not None:
                slots["brightness"] = p.brightness
            if p.step is not None:
                slots["brightness_step"] = p.step
            if p.color is not None:
                slots["color"] = p.color
            if p.kelvin is not None:
                slots["color_temp_kelvin"] = p.kelvin
            if not any(k in slots for k in ("brightness", "brightness_step", "color",
                                            "color_temp_kelvin")):
                raise Rejected("nothing to set on the light")
        elif a == "temp":
            if kind != DeviceKind.CLIMATE:
                raise Rejected(f"the {noun} has no temperature to set")
            name = IntentName.CLIMATE_SET_TEMPERATURE
            slots["temperature"] = p.temperature
            slots["temperature_unit"] = p.unit
        elif a == "tstep":
            if kind != DeviceKind.CLIMATE:
                raise Rejected(f"the {noun} has no temperature to set")
            name = IntentName.CLIMATE_SET_TEMPERATURE
            slots["temperature_step"] = p.tstep
            slots["temperature_unit"] = p.unit
        elif a == "vstep":
            if kind != DeviceKind.MEDIA_PLAYER:
                raise Rejected(f"the {noun} has no volume")
            name = IntentName.MEDIA_SET_VOLUME
            slots["volume_step"] = p.vstep
        elif a == "get_temp":
            if kind not in (DeviceKind.CLIMATE, DeviceKind.SENSOR):
                # "风扇温度", a misheard "温度" next to a fan: not a reading of two devices
                raise Rejected(f"the {noun} does not measure temperature")
            name = IntentName.CLIMATE_GET_TEMPERATURE
        elif a == "get_state":
            name = IntentName.GET_STATE
        elif a in ("pause", "resume", "next", "volume"):
            if kind != DeviceKind.MEDIA_PLAYER:
                if a == "pause" and kind == DeviceKind.FAN:
                    name = IntentName.FAN_OFF
                else:
                    raise Rejected(f"the {noun} does not play media")
            else:
                name = {"pause": IntentName.MEDIA_PAUSE, "resume": IntentName.MEDIA_RESUME,
                        "next": IntentName.MEDIA_NEXT,
                        "volume": IntentName.MEDIA_SET_VOLUME}[a]
            if a == "volume":
                slots["volume"] = max(0, min(100, int(p.number or 0)))
        elif a in ("vstart", "vstop", "vpause", "vreturn"):
            vname = {"vstart": "VACUUM_START", "vstop": "VACUUM_STOP", "vpause": "VACUUM_PAUSE",
                     "vreturn": "VACUUM_RETURN"}[a]
            if a == "vstart" and p.areas and hasattr(IntentName, "VACUUM_CLEAN_AREA"):
                vname = "VACUUM_CLEAN_AREA"
            found = getattr(IntentName, vname, None)
            if found is None:
                raise Rejected("Hearth cannot run a vacuum yet")
            name = str(found)
        else:
            raise Rejected("I don't know how to do that")
        if p.indirect:
            conf = min(conf, CONF_INDIRECT)
        if not p.explicit_verb:
            conf -= GUESS_PENALTY
        if p.kind_from_action:
            conf -= GUESS_PENALTY
        conf = self._coverage(p, name, conf)
        conf = self._sensitive(name, ids, conf, p)
        verb = str(name).replace("_", " ")
        detail = _describe(slots)
        reason = f"{verb}: {what}{detail}"
        try:
            built = Slots(**{k: v for k, v in slots.items() if v is not None})
        except ValidationError as e:
            # "dim the light by 150 percent", "open the blinds 200 percent": a value no device
            # takes is refused with the reason, not a recognizer failure.
            field = str(e.errors()[0]["loc"][0]).replace("_", " ")
            raise Rejected(f"a {field} of {_out_of_range(slots, e)} is out of range for the "
                           f"{noun}") from None
        return self._intent(name, built, conf, reason, text, lang, p)

    def _sensitive(self, name: str, ids: list[str], conf: float, p: _Parse) -> float:
        threshold = self.config.security.sensitive_min_confidence
        explicit_target = bool(p.devices) or (bool(p.kinds) and len(ids) == 1
                                               and not p.kind_from_action and not p.everything)
        explicit = p.explicit_verb and explicit_target and not p.indirect and p.imperative \
            and not p.unknown and not p.corrected and not p.hedged
        touches_sensitive = any(self._devices[i].sensitive for i in ids)
        if name in SENSITIVE_INTENTS or touches_sensitive:
            # said outright ("unlock the front door", "open the garage" with one garage
            # door): as confident as the dispatcher requires; else never enough to open
            if explicit or (name == IntentName.LOCK and p.imperative and not p.unknown):
                return conf if name == IntentName.LOCK else max(conf, threshold)
            return min(conf, max(0.0, threshold - SENSITIVE_MARGIN))
        return conf

    def _clean_rooms(self, p: _Parse, text: str, lang: str) -> Intent:
        """"Vacuum the kitchen and the hallway": one run over the rooms' map segments, by the
        vacuum named or the home's one vacuum that maps every room said."""
        found = getattr(IntentName, "VACUUM_CLEAN_AREA", None)
        if found is None:
            raise Rejected("Hearth cannot run a vacuum yet")
        named = [d for d in p.devices + p.partial_devices
                 if self._devices[d].kind.value == "vacuum"]
        vacuums = named or [d.id for d in self.config.devices if d.kind.value == "vacuum"]
        if not vacuums:
            raise Rejected("there is no robot vacuum in the home")
        rooms = [self._area_names.get(a, a) for a in p.areas]
        able = [v for v in vacuums if all(self._devices[v].segments.get(a) for a in p.areas)]
        if not able:
            missing = [self._area_names.get(a, a) for a in p.areas
                       if not any(self._devices[v].segments.get(a) for v in vacuums)]
            what = " and the ".join(missing or rooms)
            mapped = _unique([self._area_names.get(a, a) for v in vacuums
                              for a in self._devices[v].segments])
            can = f"; it can clean the {', the '.join(mapped)}" if mapped else ""
            raise Rejected(f"the robot vacuum has no map of the {what}{can}")
        if len(able) > 1:
            raise Rejected("which vacuum? name one")
        dev = self._devices[able[0]]
        custom: dict[str, str | int | float | bool] = (
            {} if len(p.areas) == 1 else {"areas": ",".join(p.areas)})
        slots = Slots(device_ids=[dev.id], area=p.areas[0], domain="vacuum", custom=custom)
        conf = CONF_EXPLICIT if p.explicit_verb else CONF_AREA - GUESS_PENALTY
        conf = self._coverage(p, str(found), conf)
        reason = f"clean the {' and the '.join(rooms)} with {dev.name} ({dev.id})"
        return self._intent(str(found), slots, conf, reason, text, lang, p)

    def _intent(self, name: str, slots: Slots, conf: float, reason: str, text: str,
                lang: str, p: _Parse) -> Intent:
        return Intent(name=name, slots=slots, confidence=round(max(0.0, min(1.0, conf)), 3),
                      source="robust", reason=reason, text=text, language=lang)


def _out_of_range(slots: dict[str, Any], e: ValidationError) -> str:
    """The value a slot refused, as said ("150", "30")."""
    value = slots.get(str(e.errors()[0]["loc"][0]))
    return f"{value:g}" if isinstance(value, float) else str(value)
