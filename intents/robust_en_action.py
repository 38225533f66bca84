"""English: the action and its amounts in one command (verbs, particles, levels, steps,
colours, indirect requests, questions); the targets were found by :mod:`intents.robust_en`."""

from __future__ import annotations

import re

from intents import robust_lexicon as L
from intents.robust_base import (
    _ACTION_WORDS,
    SETPOINT_RANGE,
    Rejected,
    _after_to,
    _degrees,
    _light_kind,
    _Parse,
    _TierBase,
    lightish_only,
)

#: A "did I …" / "have I left …" question about these asks for the device's state.
_LEFT_WORDS = frozenset({"lock", "locked", "unlock", "unlocked", "leave", "left", "close",
                         "closed", "shut", "open", "on", "off", "turn", "turned", "switch",
                         "switched"})

class _EnglishActions(_TierBase):
    """What an English command asks to do."""

    def _action_en(self, tokens: list[str], text: str, p: _Parse) -> None:
        tset = set(tokens)
        first = tokens[0]
        # amounts
        said_kelvin = None
        for i, t in enumerate(tokens):
            if re.fullmatch(r"\d+(\.\d+)?", t):
                val = float(t)
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if nxt == "percent" or (i + 2 < len(tokens) and nxt == "per"
                                        and tokens[i + 2] == "cent"):
                    p.number, p.percent = val, True
                elif nxt in ("kelvin", "k") and 1000 <= val <= 10000:
                    said_kelvin = int(val)  # "4000 kelvin": the white, not a level
                elif nxt in ("degrees", "degree", "celsius", "fahrenheit", "c", "f"):
                    p.temperature = val
                    unit = tokens[i + 2] if nxt.startswith("degree") and i + 2 < len(tokens) \
                        else nxt
                    p.unit = "F" if unit.startswith("f") else "C" if unit.startswith("c") \
                        else None
                elif p.number is None:
                    p.number = val
                    if i > 0 and tokens[i - 1] == "level" and val <= 10:
                        p.number, p.percent = val * 10, True
        for phrase, level in L.LEVEL_WORDS_EN.items():
            if f" {phrase} " in text and p.number is None:
                p.number, p.percent = float(level), True
        way = tset & (L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN | {"up", "down"})
        if " all the way " in text and p.number is None and way and "cover" not in {
                self._devices[d].kind.value for d in p.devices + p.partial_devices} | set(
                p.kinds):  # "dim the lamp all the way", "the music all the way down"
            p.number, p.percent = (1.0 if way & (L.VERBS_DIM_EN | {"down"}) else 100.0), True
        said_level = re.search(r" (?:on|to|at) (low|dim|high|bright) ", text)
        if said_level and p.number is None:  # "lights on low in the dining room"
            p.number, p.percent = (L.LOW_LEVEL if said_level.group(1) in ("low", "dim")
                                   else 100.0), True
        small = bool(tset & L.SMALL_STEP_WORDS)
        big = bool(tset & L.BIG_STEP_WORDS) and not small
        by_amount = None
        if p.number is not None and (" by " in text or (tset & {"up", "down"} and not tset & {
                "to", "at"} and p.temperature is None and (
                    "percent" in tset or not p.percent)) or re.search(
                r" \d+(\.\d+)? (percent )?(brighter|dimmer|darker|louder|quieter|softer|higher|"
                r"lower|more|less) ", text)):  # "by 10", "10 percent brighter": a step
            by_amount = int(p.number)
        step = by_amount or (L.STEP_SMALL if small else L.STEP_BIG if big else L.STEP_DEFAULT)
        if re.search(r" (minus|negative) \d", text):
            raise Rejected("I can't set a value below zero")  # "set the heat to minus 5"
        if p.number is not None and p.number > 100 and by_amount is None \
                and not tset & {"degrees", "degree", "heat", "heating", "temperature", "thermostat",
                                "minutes", "minute", "hours", "hour", "seconds", "timer"}:
            raise Rejected(f"{p.number:g} percent is out of range; say up to 100 percent")
        colors = [t for k, t in enumerate(tokens) if t in L.COLORS_EN and tokens[k - 1:k] != [
            "from"]]  # "from blue to white": white
        if len(set(colors)) > 1 and not p.corrected:
            raise Rejected("I heard two colours; say which one")
        if len({t for t in tokens if re.fullmatch(r"\d+(\.\d+)?", t)}) > 1 and not p.corrected \
                and not tset & {"hour", "minute", "second"}:
            raise Rejected("I heard two levels; say which one")  # "to 20 and 60": which?
        kelvin = next((L.COLOR_TEMP_EN[t] for t in tokens if t in L.COLOR_TEMP_EN), None)
        if " bright white " in text:
            kelvin = 6500
        kelvin = said_kelvin or kelvin

        def act(action: str, explicit: bool = True) -> None:
            if p.action is None or (p.action == "get_temp" and action != "get_temp"):
                p.action = action
                p.explicit_verb = explicit

        kinds = set(p.kinds) | {self._devices[d].kind.value for d in p.devices + p.partial_devices}
        lightish = "light" in kinds or (not kinds and not p.scene)
        climate = "climate" in kinds
        media = "media_player" in kinds
        cover = "cover" in kinds
        vac = "vacuum" in kinds

        either = re.search(r" (on or off|off or on|open or (closed|shut)|(closed|shut) or open"
                           r"|locked or unlocked|unlocked or locked) ", text)
        status = tokens[-1] in ("status", "state") and not tset & (_ACTION_WORDS | {"set"})
        if p.has_target() and (either or status):  # "garage door status"
            p.action, p.explicit_verb = "get_state", True  # "lights in the office on or off"
            return
        # questions ("have some music" asks for it: "have" with no one after it)
        if (first in ("what", "how", "which", "is", "are", "does", "do", "whats", "tell",
                      "check", "did", "why", "who", "when", "where", "has", "have",
                      "was", "were") and not (first == "have" and tokens[1:2] and tokens[1] in (
                          "some", "a", "music", "the", "my", "our", "all") and "been" not in tset
                                                 and not tset & {"i", "you", "we"}) and not (
                    # "do the lights off", "(let's) have the blinds down": a verb
                    first == "do" and tokens[1:2] in (["the"], ["my"], ["all"])
                    and tset & {"on", "off"})) or text.rstrip().endswith("?"):
            if "temperature" in tset or tset & {"hot", "cold", "warm", "degrees"} or (
                    climate and first in ("what", "whats", "tell", "check")):
                # "what is the thermostat set to": its setpoint (the answer reads "set to")
                if first in ("what", "how", "tell", "check", "whats") or "temperature" in tset:
                    p.action = "get_temp"
                    p.explicit_verb = True
                    if "climate" not in p.kinds and not any(  # not "… of the kitchen sensor"
                            "temperature" in self._devices[d].capabilities for d in p.devices):
                        p.kinds.append("climate")
                    return
            if first in ("what", "whats", "tell", "check") and p.has_target() and tset & {
                    "status", "state", "brightness", "colour", "color", "position"} \
                    and not p.kind_from_action:  # "what's the status of …", "… brightness of"
                p.action, p.explicit_verb = "get_state", True
                return
            if (first in ("is", "are", "does") and p.has_target() and (
                    tset & {"on", "off", "open", "closed", "locked", "unlocked", "shut",
                            "running", "playing", "lock", "up", "down", "cleaning", "charging",
                            "docked", "working"})) or (  # "is the front door lock?"
                    first == "how" and p.has_target() and tset & {"bright", "loud", "open"}) \
                    or (first == "check" and p.has_target() and not (tset - {"check"}) & (
                        _ACTION_WORDS | L.VERBS_SET_EN)):  # "check the garage door"
                p.action = "get_state"
                p.explicit_verb = True
                return
            if (first in ("did", "have", "has") or (first in ("check", "tell") and tset & {
                    "if", "whether"})) and p.has_target() and tset & _LEFT_WORDS | {"locked",
                                                                                    "unlocked"}:
                # "did I lock the front door", "have I left the garage open": its state
                p.action = "get_state"
                p.explicit_verb = True
                return
            if first in ("what", "how", "which", "do", "does", "tell", "is", "are", "whats",
                         "did", "why", "who", "when", "where", "has", "have", "was", "were"):
                raise Rejected("a question Hearth cannot answer")
        if p.action == "get_temp":
            return
        if tset & {"temperature", "temp"} and p.number is None and p.temperature is None \
                and not tset & (_ACTION_WORDS | L.VERBS_SET_EN | {
                    "warmer", "cooler", "hotter", "colder", "up", "down", "higher", "is", "are",
                    "was", "feels", "seems", "looks"}):
            p.action, p.explicit_verb = "get_temp", True  # "temperature in the living room"
            if p.areas:  # the sensor named by "temperature" only where it is
                p.partial_devices = [d for d in p.partial_devices
                                     if self._devices[d].area in p.areas]
            if "climate" not in p.kinds and not any(
                    "temperature" in self._devices[d].capabilities for d in p.devices):
                p.kinds.append("climate")
            return
        # vacuums
        if vac or (tset & {"clean", "cleaning", "vacuum", "hoover", "vacuuming"}):
            if self._vacuums():
                if tset & {"home", "dock", "base", "charger", "charge", "return"}:
                    act("vreturn")
                elif tset & {"pause"}:
                    act("vpause")
                elif tset & {"stop", "off"}:
                    act("vstop")
                else:
                    # "vacuum" and "hoover" are verbs only where a command starts; "the vacuum
                    # is noisy" asks for nothing
                    verb = bool(tset & {"start", "clean", "on", "run", "activate", "begin",
                                        "resume", "go", "cleaning", "vacuuming", "hoovering"}) \
                        or (first == "get" and "going" in tset) \
                        or first in ("vacuum", "hoover")
                    if not verb:
                        return
                    act("vstart", True)
                if "vacuum" not in p.kinds:
                    p.kinds.append("vacuum")
                return
        # locks
        alone = {t for t in tokens if t not in ("the", "it", "please", "now")}
        if alone in ({"lock"}, {"unlock"}) \
                and not (p.devices or p.partial_devices or p.areas or p.here or p.home
                         or p.everything or p.floor):
            # "lock" / "the lock" / "unlock it" and nothing else: no door named and no command
            # before it to say which ("turn off the TV" + "plug" once came back as "lock,")
            raise Rejected("Which lock do you mean? Say its name.", final=False)
        if "unlock" in tset or ("unbolt" in tset):
            act("unlock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
                p.kind_from_action = True
            return
        if first == "lock" and tokens.count("lock") == 1 and p.kind_words == ["lock"] \
                and not (p.devices or p.partial_devices or p.areas or p.here or p.home
                         or p.everything or p.floor) and p.unknown:
            # "lock stock and …": the verb was all there was of a lock, and the rest is unheard
            raise Rejected(f"I don't know a device called {' '.join(p.unknown)!r}", final=False,
                           unknown=" ".join(p.unknown))
        if first == "lock" or ("lock" in tset and "up" in tset) or (
                first == "secure" and "lock" in kinds) or (
                "lock" in tset and tokens.index("lock") <= 1 and "lock" not in p.kind_words):
            act("lock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
                p.kind_from_action = True
            return
        if "lock" in tset and (tokens.index("lock") <= 1 or (
                tokens[-1] == "lock" and tokens.count("lock") > 1)):  # "Front Door Lock lock"
            act("lock")
            return
        # scenes
        if p.scene and p.kinds and tset & {"on", "off"} and not p.devices:
            p.scene = None  # "lights off, it's bedtime": the lights, the scene's name a remark
        if p.scene and not p.devices:
            if tset & {"off", "stop", "exit", "leave", "quit", "end", "deactivate", "disable",
                       "cancel", "undo", "kill", "out"} and not p.kinds:  # "turn off movie night"
                raise Rejected("a scene can't be switched off; say what to change")
            if tset & {"activate", "start", "set", "put", "run", "turn", "switch", "go",
                       "enable", "begin", "play", "on", "time", "it", "is", "mode", "scene"}:
                act("scene", bool(tset & {"activate", "start", "set", "run", "turn", "on",
                                          "enable"}))
                return
        # media
        if tset & {"mute"}:
            act("volume")
            p.number, p.percent = 0.0, True
            p.kinds.append("media_player") if not media else None
            return
        louder = tset & {"louder", "quieter", "softer", "lower", "raise", "increase",
                         "decrease", "reduce", "up", "down"}
        # "turn on the living room light and the speaker": on/off for each kind said (the
        # player resumes), not the player's verbs for them all
        mixed = media and bool(kinds - {"media_player"}) and bool(tset & {"on", "off"}) \
            and not louder and "volume" not in tset
        if (media or tset & {"song", "track", "music", "louder", "quieter", "softer"}
                or (not kinds and not p.scene and " too loud " in text)) and not mixed:
            if tset & L.VERBS_NEXT_EN or "another song" in text:
                act("next")
                return
            too_loud = bool(re.search(r" (too|so|very|really|quite) loud ", text))
            too_quiet = bool(re.search(r" (too|so|very|really|quite) (quiet|soft) ", text)
                             or re.search(r" (cannot|can not|cant|can't) hear ", text))
            if too_loud != too_quiet and not louder and p.number is None:
                # "the music is too loud": a step the other way, on the player said
                p.vstep = -10 if too_loud else 10
                act("vstep", False)
                if "media_player" not in p.kinds:
                    p.kinds.append("media_player")
                    p.kind_from_action = not media
                return
            if p.number is not None and media and tset & {"to", "at"} and not tset & {
                    "on", "off", "by"}:
                act("volume")  # "set the speaker to 60 percent"
                return
            if ("volume" in tset or louder) and not tset & {"on", "off"} and not (
                    louder <= {"up", "down"} and "volume" not in tset and not tset & {
                        "turn", "crank", "bring", "put"}):
                if p.number is not None and by_amount is None:
                    act("volume")
                    return
                if not louder:
                    return
                up = bool(louder & {"louder", "raise", "increase", "up"}) \
                    and not louder & {"quieter", "softer", "lower", "decrease", "reduce", "down"}
                down = bool(louder & {"quieter", "softer", "lower", "decrease", "reduce",
                                      "down"}) and not up
                if not (up or down):
                    raise Rejected("I heard both louder and quieter")
                amount = by_amount or (20 if big and not small else 10)
                p.vstep = amount if up else -amount
                act("vstep", True)
                if "media_player" not in p.kinds:
                    p.kinds.append("media_player")
                    p.kind_from_action = not media
                return
            if tset & L.VERBS_PAUSE_EN or "off" in tset:
                act("pause")
                return
            if tset & L.VERBS_RESUME_EN or "on" in tset or "start" in tset:
                act("resume")
                return
        elif tset & {"pause"}:
            act("pause")
            p.kinds.append("media_player")
            p.kind_from_action = True
            return
        elif tset & {"skip", "next"} and (first in ("skip", "next", "play")):
            act("next")
            p.kinds.append("media_player")
            p.kind_from_action = True
            return
        elif first in ("resume", "unpause") or text.strip() in ("play", "continue playing"):
            act("resume")
            p.kinds.append("media_player")
            p.kind_from_action = True
            return

        on = "on" in tset
        off = "off" in tset
        if kinds and kinds <= {"fan", "switch"} and not (on or off) and not tset & {
                "start", "stop", "activate", "run", "boot", "fire", "power"} and tset & {
                "up", "down", "faster", "slower", "speed", "higher", "lower", "increase",
                "decrease", "louder", "quieter", "volume", "channel", "raise", "reduce"}:
            # "turn the fan up", "turn up the tv" (on a plug): say what can be done
            raise Rejected("I can switch the fan on and off, but I can't change its speed yet"
                           if "fan" in kinds else
                           "that is on a smart plug: I can switch it on and off, nothing more")
        if on and off:
            raise Rejected("I heard both 'on' and 'off'")
        if off and p.percent and p.number is not None and p.number > 0 \
                and tset & (L.VERBS_SET_EN | {"to", "at"}):
            # "Set the off is light, 80%" (heard for "set the office light to 80 percent"):
            # a level to set and "off" disagree; the "off" is likelier a misheard word
            raise Rejected(f"I heard both 'off' and {p.number:g}%")
        indirect_dark = bool(re.search(r"( (is|it|room|here|in here|getting)( too| so| very| "
                                       r"really| quite| a bit| pretty)?| too| so| very) "
                                       r"(pitch )?(dark|dim|gloomy|black) ", text)) \
            and not tset & L.VERBS_DIM_EN - {"dim"} and " make " not in text \
            and " darker" not in text and " to dark" not in text
        indirect_dark = indirect_dark or bool(re.search(r" (cannot|can not|hard to|cant|"
                                                        r"unable to|barely|hardly) see ", text))
        indirect_bright = bool(re.search(r" (too|so|very|really|quite) bright ", text)) \
            or bool(re.search(r" is bright ", text) and p.here)
        cold = bool(re.search(r" (too |so |very |really |bit |a bit |quite )?"
                              r"(cold|chilly|freezing) ", text)) and not lightish_only(p)
        # "warm it up", "cool things down": a change of temperature asked for, not a complaint
        warm_up = re.search(r" warm (it |things |the \w+ )?up ", text) is not None
        cool_down = re.search(r" cool (it |things |the \w+ )?down ", text) is not None
        hot = bool(re.search(r" (too |so |very |really |bit |a bit |quite )?"
                             r"(hot|warm|stuffy|boiling) ", text)) and " make " not in text \
            and "warmer" not in tset and not lightish_only(p) and not warm_up

        # temperature ("the temperature" may name only the home's sensor: it is the setpoint)
        if climate and "mode" in tset:  # "switch the thermostat to cool mode"
            raise Rejected("I can't change the thermostat's mode yet; set a temperature")
        if tokens[:2] == ["make", "it"] and p.number is not None and not p.percent \
                and 10 <= p.number <= 32 and not kinds and p.temperature is None:
            p.temperature = p.number  # "make it 21 in here": the heat, as people say it
            climate = True
            p.kinds.append("climate")
        sensor_only = bool(kinds) and kinds <= {"sensor"} and bool(tset & {"temperature", "temp"})
        setpoint = climate or sensor_only
        # "lower"/"higher" first in the sentence are verbs ("lower the temperature to 18"), not
        # the comparative of a step ("3 degrees lower")
        comparative = {"higher", "lower", "warmer", "cooler", "hotter", "colder", "more",
                       "less"} - {first}
        if p.temperature is None and climate and p.number is not None and not p.percent \
                and tset & {"by", "up", "down", "increase", "decrease", "raise", "lower"} \
                and not tset & {"to", "at"} and (p.number <= 10 or "by" in tset):
            p.temperature = p.number  # "turn the heat down 2": a step of 2 (below); "down 20"
            by_amount = None  # is a setpoint
        by_degrees: float | None = None
        if p.temperature is not None and tset & {"by", "up", "down", "warmer", "cooler",
                                                  "increase", "decrease", "raise", "lower",
                                                  "higher", "colder", "hotter", "drop",
                                                  "reduce"} \
                and (not tset & {"to", "at"} or tset & comparative):
            # "turn it down 3 degrees", "raise the heat by 1.5 degrees": a step, not a setpoint
            by_amount, by_degrees = int(p.temperature), p.temperature
            p.temperature = None
        elif p.temperature is not None or (setpoint and p.number is not None
                                           and not p.percent):
            if sensor_only:
                p.partial_devices = []  # the thermostat's setpoint, not the sensor's reading
            if p.temperature is None:
                p.temperature = p.number
            sp = p.temperature
            lo, hi = SETPOINT_RANGE[p.unit or "C"]
            if sp is not None and not lo <= sp <= hi and not (
                    p.unit is None and SETPOINT_RANGE["F"][0] <= sp <= SETPOINT_RANGE["F"][1]):
                raise Rejected(f"{p.temperature:g} degrees is not a temperature I would set; "
                               "say one between 5 and 35 degrees")
            act("temp", bool(tset & L.VERBS_SET_EN | {"turn", "to"}))
            if "climate" not in p.kinds:
                p.kinds.append("climate")
                p.kind_from_action = True
            return
        if climate and (m := re.search(r" (too|so|very|really|quite) (high|low) ", text)):
            self._climate_here(p, m.group(2) == "low", indirect=False)  # "the heat is too high"
            p.explicit_verb = False
            return
        warmer = tset & {"warmer", "up", "increase", "raise", "higher", "hotter", "warm"}
        cooler = tset & {"cooler", "down", "decrease", "lower", "colder", "reduce", "cool",
                         "drop"}
        if (climate or tset & {"degree", "degrees"} or sensor_only) and (warmer or cooler) \
                and not (warmer and cooler):
            if sensor_only:  # "increase the temperature": a sensor has no setpoint
                p.partial_devices = []
            self._temperature_step(p, tset, bool(warmer), by_degrees or by_amount, small, big)
            return
        if ((cold or hot) and not colors and kelvin is None) or (
                (cold or hot) and (p.here or not p.has_target())
                and not tset & {"light", "lamp", "white", "glow", "lighting"}
                and not (kelvin is not None and "set" in tset)):  # "set it to a warm glow"
            self._climate_here(p, cold, indirect=True)
            return
        if (warm_up != cool_down) and not tset & {"white", "light", "lamp", "colour", "color"} \
                and (climate or not p.has_target()):
            self._climate_here(p, warm_up, indirect=False,
                               step=_degrees(tset, by_amount, small, big))
            return
        if ("warmer" in tset or "cooler" in tset or "hotter" in tset or "colder" in tset) \
                and not p.has_target() and not tset & {"white", "light", "colour", "color"}:
            self._climate_here(p, bool(tset & {"warmer", "hotter"}), indirect=False,
                               step=_degrees(tset, by_amount, small, big))
            return

        # covers
        if cover:
            if tset & {"stop", "halt", "freeze"}:  # "stop the blinds" is not "close them"
                raise Rejected("I can't stop a cover midway yet; say open, close or a position")
            if p.number is not None and not p.percent and tset & {"to", "at"}:
                p.percent = True  # "blinds to 60"
            if p.number is not None and p.percent and tset & (L.VERBS_CLOSE_EN | {"down"}) \
                    and not tset & {"to", "at", "by"}:
                p.number = 100 - p.number  # "close the blinds 75 percent": a quarter open
            if (p.number is not None and p.percent) or ("halfway" in tset or "half" in tset):
                act("position", True)
                return
            if tset & (L.VERBS_OPEN_EN | {"up"}) and not tset & {"lower", "close", "down"}:
                act("open", bool(tset & L.VERBS_OPEN_EN) or bool(tset & {"pull", "roll"}))
                return
            if tset & (L.VERBS_CLOSE_EN | {"down"}):
                act("close", bool(tset & L.VERBS_CLOSE_EN) or bool(tset & {"pull", "roll"}))
                return
            if on or off:
                act("open" if on else "close", False)
                return
        if not cover and kinds and kinds <= {"light", "fan", "switch"} and p.has_target() \
                and len(tset & {"open", "close"}) == 1 and not (on or off) and not tset & {
                    "door", "lock", "blind", "curtain", "shade", "garage"}:
            # "open the light", "close the fan": how many languages say on and off
            act("on" if "open" in tset else "off", False)
            return
        # colours
        mood = tset & {"night", "nighttime", "sleep", "sleeping", "mood", "romantic",
                       "relaxing", "relax", "evening", "reading"}
        if not colors and kelvin is None and not mood and tset & {"color", "colour"} and (
                tset & {"random", "different", "another", "new", "other"}
                or (tset & {"change", "switch"} and p.number is None)) \
                and (lightish or "light" in kinds):
            palette = ["blue", "cyan", "green", "magenta", "orange", "pink", "purple", "red",
                       "turquoise", "yellow"]
            colors = [palette[sum(map(ord, text)) % len(palette)]]
            p.notes.append("a colour picked for you")
        if not colors and kelvin is None and p.number is None and not p.scene \
                and tset & {"night", "nighttime", "sleep", "sleeping", "mood", "romantic",
                            "relaxing", "relax", "evening", "reading"} \
                and ("light" in kinds or (lightish and tset & (L.VERBS_SET_EN | {
                    "mode", "setting", "settings", "lighting"}))) \
                and not (on or off):
            # "set the lights to a romantic mood", "nighttime mode": said of the lights, with
            # a verb that sets them or as a mode; "night night" alone dims nothing
            night = tset & {"night", "nighttime", "sleep", "sleeping"}
            p.brightness, p.kelvin = (10, 2200) if night else (100, 4000) if "reading" in tset \
                else (30, 2200)  # "reading light in the office": bright, neutral white
            act("set", bool(tset & L.VERBS_SET_EN))
            _light_kind(p)
            return
        if kelvin is not None and colors == ["white"]:
            colors = []
        if p.number is not None and p.percent and (colors or kelvin is not None):
            p.brightness = max(0, min(100, int(p.number)))  # "warm white at 40 percent"
        if colors and (lightish or "light" in kinds):
            p.color = colors[-1] if not (" from " in text and " to " in text) else \
                _after_to(tokens, colors)
            act("set")
            _light_kind(p)
            return
        if kelvin is not None and (lightish or "light" in kinds) and not climate:
            p.kelvin = kelvin
            act("set")
            _light_kind(p)
            return
        if "open" in tset and not cover and not p.has_target():
            return
        # on / off
        if tset & {"stop", "halt"} and p.has_target() and not media:
            act("off", True)
            return
        if off or tset & L.VERBS_OFF_EN or (("shut" in tset or "kill" in tset)
                                            and not cover):
            act("off", bool(tset & (L.VERBS_ON_OFF_EN | L.VERBS_OFF_EN)) or off)
            return
        if on and not (tset & (L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN) - {"set"}) \
                and p.number is None:
            act("on", True)
            return
        if first == "power" and p.has_target() and not tset & {"down", "off"}:
            act("on", True)  # "power the plug", "power up the fan"
            return
        some_light = first == "give" or bool(re.search(
            r" (get|have|need|want) (some |a little |a bit of |more )?light ", text))
        if some_light and "light" in kinds \
                and not tset & (L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN | {"dark", "bright"}) \
                and p.number is None and not (p.devices or p.partial_devices):
            p.indirect = True  # "give me some light", "could I get some light"
            act("on", False)
            _light_kind(p)
            return
        if first in L.VERBS_ON_EN or (tset & {"activate", "enable", "start"} and p.has_target()) \
                or (tset & {"running", "going", "started"} and p.has_target()):
            act("on", True)
            return
        # brightness
        if lightish or "light" in kinds:
            here_dir = re.sub(r" (down|up|over) here ", " here ", text)
            # "the lights are too dim": a complaint about dimness asks for more light
            down = bool(tset & L.VERBS_DIM_EN - ({"dim"} if indirect_dark else set())) \
                or " down " in here_dir or "darker" in tset \
                or " to dark" in text or ("dark" in tset and not indirect_dark)
            # "down a bit more": "more" says how much, not which way
            more_ok = set() if down else {"more"}
            up = bool(tset & (L.VERBS_BRIGHTEN_EN - {"more"} | more_ok)
                      - ({"bright"} if indirect_bright else set())) \
                or " up " in here_dir or "brighter" in tset or "light up" in text
            if indirect_bright and not up:
                down, p.indirect = True, True
            bare = not p.has_target() and not p.percent and not (
                tset & (L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN | {"brightness", "level"}))
            if p.number is not None and bare:
                return  # "turn up at eight": a number with nothing to say what it sets
            named_level = tokens[-1].isdigit() and 10 <= (p.number or 0) <= 100 and tokens[-2] in (
                "light", "lights", "lamp") and not tset & (_ACTION_WORDS | L.VERBS_SET_EN)
            # "living room lights 50": a level said after the light's name, with no verb
            if p.number is not None and (p.percent or tset & {"to", "at", "brightness",
                                                             "level"} or down or up
                                         or named_level) and by_amount is None:
                p.brightness = max(0, min(100, int(p.number)))
                act("set", bool(tset & (L.VERBS_SET_EN | L.VERBS_DIM_EN
                                        | L.VERBS_BRIGHTEN_EN)))
                _light_kind(p)
                return
            if down != up:
                p.step = step if up else -step
                act("step", True)
                _light_kind(p)
                if p.kind_from_action and not (p.areas or p.floor or p.home or p.everything):
                    # "brighter", "up a bit", "more": nothing named, so the lights where the
                    # speaker is (or "which room?"), never every light in the home
                    p.bare_step = not p.here  # "in here" said: the speaker's room only
                    p.here = True
                return
            if indirect_dark:
                # on if it is off, brighter if it is on already (devices.relative)
                p.indirect = True
                p.step = step
                act("on", False)
                _light_kind(p)
                return
        if on:
            act("on", True)
            return
        if (tset & {"switch", "turn", "toggle", "flip"}) and p.has_target() and (
                "to" not in tset) and first in ("switch", "turn", "toggle", "flip"):
            return  # "switch the lights" with no on/off: unclear
        return
