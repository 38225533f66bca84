"""The robust tier's shared parts: confidences, the parse record, the home's lexicon, word sets
and small helpers, and the base class holding the home."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.registry import DeviceKind, HomeConfig
from intents import robust_lexicon as L
from intents.resolve import Resolver
from intents.robust_text import _singular
from intents.schema import Intent, IntentName

#: Confidences: below the grammar's exact 1.0.
CONF_EXPLICIT = 0.9  # verb + a device named outright


CONF_AREA = 0.88  # verb + kind + a named area (or floor, or the whole home said)


CONF_SPEAKER_AREA = 0.85  # no place said: the speaker's area


CONF_HOME_IMPLIED = 0.8  # no place said and no speaker area: the whole home


CONF_INDIRECT = 0.75  # "it's too dark in here"


GUESS_PENALTY = 0.05  # per guessed piece (a partial name, a kind taken from the action)


#: Below ``security.sensitive_min_confidence`` by this much when a sensitive action is a guess.
SENSITIVE_MARGIN = 0.3


#: Coverage: confidence lost when the whole sentence is words the parse could not explain
#: (scaled by the unexplained share: one stray word in six costs a sixth of this).
UNEXPLAINED_WEIGHT = 0.5


#: The same when the sentence does not start with a verb: "the fan club meets on Sundays" is
#: a statement that happens to hold a device word and "on", not a command.
UNEXPLAINED_WEIGHT_NO_VERB = 1.0


#: Chinese: per unexplained character (a misheard verb such as 吊 for 调 changes the reading).
UNEXPLAINED_CHAR_ZH = 0.15


#: Setpoints a household thermostat takes, by unit; others are misheard numbers.
SETPOINT_RANGE = {"C": (5.0, 35.0), "F": (40.0, 95.0)}


def plausible_setpoint(value: float, unit: str | None) -> bool:
    """A setpoint a household thermostat takes; with no unit, either scale's range."""
    units = [unit.upper()[:1]] if unit and unit.upper()[:1] in SETPOINT_RANGE else ["C", "F"]
    return any(SETPOINT_RANGE[u][0] <= value <= SETPOINT_RANGE[u][1] for u in units)


_VACUUM_KIND = getattr(DeviceKind, "VACUUM", None)


_GENERIC_SWITCH_WORDS = frozenset({"plug", "socket", "outlet", "wemo"})


_SYNONYMS: dict[str, frozenset[str]] = {
    "plug": _GENERIC_SWITCH_WORDS, "socket": _GENERIC_SWITCH_WORDS,
    "outlet": _GENERIC_SWITCH_WORDS, "wemo": _GENERIC_SWITCH_WORDS,
    "tv": frozenset({"tv", "television"}), "television": frozenset({"tv", "television"}),
    "speaker": frozenset({"speaker", "music", "stereo"}),
    "music": frozenset({"speaker", "music", "stereo"}),
}


class Rejected(Exception):
    """The sentence was understood well enough to know Hearth must not act; ``str()`` is
    the reason shown to the user. ``final``: no repair of words may change that (out of
    scope, "here" with no room known, a question); False for an unknown name, which may be a
    misspelling the fuzzy tier can repair."""

    def __init__(self, reason: str, *, final: bool = True, unknown: str | None = None,
                 negated: bool = False) -> None:
        super().__init__(reason)
        self.final = final
        #: The name the sentence gave that the home lacks ("I don't know a device called …").
        self.unknown = unknown
        #: The sentence says not to do it ("don't open the garage door", 不要打开车库门).
        self.negated = negated


class _NeedsRoom(Rejected):
    """A rejection that, when the speaker's room is unknown, is first of all about that."""


@dataclass
class _Parse:
    """What one command says, before it is mapped to an intent."""

    action: str | None = None  # on off open close lock unlock up down set pause resume next
    #                            volume temp get_temp get_state scene vstart vstop vreturn
    explicit_verb: bool = False
    indirect: bool = False
    devices: list[str] = field(default_factory=list)  # named outright
    partial_devices: list[str] = field(default_factory=list)  # named loosely
    kinds: list[str] = field(default_factory=list)  # in order said
    kind_words: list[str] = field(default_factory=list)
    cover_class: str | None = None
    areas: list[str] = field(default_factory=list)
    floor: str | None = None
    here: bool = False
    home: bool = False
    everything: bool = False
    scene: str | None = None
    brightness: int | None = None
    step: int | None = None
    tstep: float | None = None  # setpoint step, degrees ("turn the heat up")
    vstep: int | None = None  # volume step, percent ("louder")
    color: str | None = None
    kelvin: int | None = None
    temperature: float | None = None
    unit: str | None = None
    number: float | None = None
    percent: bool = False
    kind_from_action: bool = False
    notes: list[str] = field(default_factory=list)
    joined: bool = False  # targets joined by "and" ("the light and the tv")
    hedged: bool = False  # "maybe open the garage": never outright
    #: the command starts with its verb ("unlock the front door"), nothing stray before it
    imperative: bool = False
    #: words neither the home nor the lexicon knows (a mishearing, a name the home lacks)
    unknown: list[str] = field(default_factory=list)
    corrected: bool = False  # taken back and said again as it was spoken: never outright
    #: how many tokens (en) or characters (zh) the sentence had, for the coverage rule
    size: int = 0
    zh: bool = False
    #: a step with nothing named ("brighter", "up a bit"): where the speaker is
    bare_step: bool = False
    #: the previous command's devices (a bare step with no room known follows them)
    follow_ids: list[str] = field(default_factory=list)

    def has_target(self) -> bool:
        return bool(self.devices or self.partial_devices or self.kinds or self.scene)


@dataclass
class _Lex:
    """The home's words: device, area, floor and scene spellings as token tuples."""

    devices: list[tuple[tuple[str, ...], str]]
    areas: list[tuple[tuple[str, ...], str]]
    floors: list[tuple[tuple[str, ...], str]]
    scenes: list[tuple[tuple[str, ...], str]]
    distinctive: dict[str, set[str]]  # token -> device ids whose names carry it
    device_words: dict[str, set[str]]  # device id -> all its name tokens
    known: frozenset[str]
    singular: frozenset[str]
    kind_redirect: dict[str, list[str]]  # kind word → the devices of another kind named so
    cjk_devices: list[tuple[str, str]]
    cjk_areas: list[tuple[str, str]]
    cjk_floors: list[tuple[str, str]]
    cjk_scenes: list[tuple[str, str]]


def _cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def _build_lex(config: HomeConfig) -> _Lex:
    kind_tokens = {w for k in L.KIND_WORDS_EN for w in k.split()}
    base = frozenset(kind_tokens | {w for a in config.areas for n in (a.name, *a.aliases)
                                    for w in n.lower().split()}
                     | {w for d in config.devices for n in (d.name, *d.aliases)
                        for w in n.lower().split()})

    def toks(s: str) -> tuple[str, ...]:
        return tuple(_singular(w, base) for w in
                     re.sub(r"[^a-z0-9 ]+", " ", s.lower().replace("'s", "")).split())

    devices: list[tuple[tuple[str, ...], str]] = []
    cjk_devices: list[tuple[str, str]] = []
    device_words: dict[str, set[str]] = {}
    for d in config.devices:
        for n in (d.name, *d.aliases):
            if _cjk(n):
                cjk_devices.append((n, d.id))
            elif toks(n):
                devices.append((toks(n), d.id))
                device_words.setdefault(d.id, set()).update(toks(n))
    areas: list[tuple[tuple[str, ...], str]] = []
    cjk_areas: list[tuple[str, str]] = []
    for a in config.areas:
        for n in (a.name, *a.aliases):
            (cjk_areas.append((n, a.id)) if _cjk(n) else areas.append((toks(n), a.id)))
            if not _cjk(n) and len(toks(n)) == 2:  # "bed room" said for "bedroom" and back
                areas.append((("".join(toks(n)),), a.id))
    floors: list[tuple[tuple[str, ...], str]] = []
    cjk_floors: list[tuple[str, str]] = []
    for f in config.floors:
        for n in (f.name, *f.aliases):
            (cjk_floors.append((n, f.id)) if _cjk(n) else floors.append((toks(n), f.id)))
    by_level = sorted((f for f in config.floors if f.level is not None),
                      key=lambda f: f.level or 0)
    if len(by_level) == 2:  # 楼下 / 楼上 in a two-storey home: its lower and upper floor
        for word, f in (("楼下", by_level[0]), ("楼上", by_level[1])):
            if not any(n == word for n, _ in cjk_floors):
                cjk_floors.append((word, f.id))
    scenes: list[tuple[tuple[str, ...], str]] = []
    cjk_scenes: list[tuple[str, str]] = []
    for s in config.scenes:
        for n in (s.name, *s.aliases):
            (cjk_scenes.append((n, s.id)) if _cjk(n) else scenes.append((toks(n), s.id)))
    area_tokens = {w for t, _ in areas for w in t} | {w for t, _ in floors for w in t}
    distinctive: dict[str, set[str]] = {}
    for t, dev_id in devices:
        for w in t:
            if w in kind_tokens or w in area_tokens or w in L.FUNCTION_WORDS_EN \
                    or w in L.HARMLESS_MODIFIERS_EN or w.isdigit():
                continue
            distinctive.setdefault(w, set()).add(dev_id)
    known = frozenset(
        base | area_tokens | {w for t, _ in scenes for w in t}
        | L.FUNCTION_WORDS_EN | L.HARMLESS_MODIFIERS_EN | L.COLORS_EN
        | {w for k in L.COLOR_TEMP_EN for w in k.split()} | L.ALL_WORDS_EN | L.HOME_WORDS_EN
        | L.VERBS_ON_OFF_EN | L.VERBS_ON_EN | L.VERBS_OFF_EN | L.VERBS_OPEN_EN
        | L.VERBS_CLOSE_EN | L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN | L.VERBS_SET_EN
        | L.VERBS_PAUSE_EN | L.VERBS_RESUME_EN | L.VERBS_NEXT_EN | L.SMALL_STEP_WORDS
        | L.BIG_STEP_WORDS | {w for k in L.LEVEL_WORDS_EN for w in k.split()}
        | set(L.NUMBERS_EN) | L.WAKE_WORDS_EN | L.GREETINGS_EN
        | {"unlock", "lock", "secure", "dark", "bright", "hot", "cold", "warm", "chilly", "see",
           "pitch", "hear",
           "cannot", "barely", "hardly",
           "freezing", "boiling", "stuffy", "status", "state", "glow",
           "dim", "up", "clean", "cleaning", "mute", "unmute", "degrees", "celsius", "kelvin",
           "fahrenheit", "c", "f", "halfway", "open", "closed", "shut", "louder", "quieter",
           "back", "prepare", "brew", "making", "need", "couple", "few", "warmer",
           "cooler", "hotter", "colder", "softer", "volume", "replace", "swap",
           "adjust"} | _MORE_VERBS
    )
    singular = frozenset(base | area_tokens | kind_tokens)
    redirect: dict[str, list[str]] = {}
    for word, kind in L.KIND_WORDS_EN.items():
        if " " in word or kind in ("light", "door"):
            continue
        same_kind = [d for d in config.devices if d.kind.value == kind
                     and word in device_words.get(d.id, set())]
        other = sorted(d.id for d in config.devices if d.kind.value != kind
                       and word in device_words.get(d.id, set()))
        if other and not same_kind:
            redirect[word] = other
    return _Lex(devices, areas, floors, scenes, distinctive, device_words, known, singular,
                redirect, cjk_devices, cjk_areas, cjk_floors, cjk_scenes)


def _find_spans(tokens: Sequence[str], table: Iterable[tuple[tuple[str, ...], str]],
                used: list[bool]) -> list[tuple[int, int, str]]:
    """Non-overlapping occurrences of the table's token tuples, longest first."""
    found: list[tuple[int, int, str]] = []
    for phrase, ident in sorted(table, key=lambda p: -len(p[0])):
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) == phrase and not any(used[i:i + n]):
                for k in range(i, i + n):
                    used[k] = True
                found.append((i, i + n, ident))
    return sorted(found)


#: "I left the lights on", "my neighbour turned off his lights": told, not asked.
_SUBJECTS = frozenset({"i", "he", "she", "they", "we", "someone", "somebody", "my", "his",
                       "her", "their", "our", "you"})


_PAST_VERBS = frozenset({"left", "turned", "switched", "forgot", "did", "didnt", "opened",
                         "closed", "locked", "unlocked", "dimmed", "neighbour", "neighbor",
                         "wife", "husband", "son", "daughter", "kids", "friend", "dad", "mum",
                         "mom", "brother", "sister", "never", "always", "usually", "often"})


lex_play_ok = frozenset({"play", "some", "the", "a", "me", "my", "music", "again", "on", "in",
                         "it", "resume", "continue", "please", "now", "playing", "keep",
                         "start", "unpause", "to", "louder", "quieter", "softer", "up",
                         "down"})


def media_words(tset: set[str]) -> bool:
    return bool(tset & {"tv", "television", "speaker", "music", "song", "track"})


def lightish_only(p: _Parse) -> bool:
    return bool(p.kinds) and set(p.kinds) == {"light"}


def _light_kind(p: _Parse) -> None:
    if not p.kinds and not p.devices and not p.partial_devices:
        p.kinds.append("light")
        p.kind_from_action = True


def _after_to(tokens: list[str], colors: list[str]) -> str:
    if "to" in tokens:
        after = [t for t in tokens[tokens.index("to"):] if t in colors]
        if after:
            return after[0]
    return colors[-1]


def _noun(kind: str, p: _Parse) -> str:
    if kind == "climate" and not set(p.kind_words) & {"heating", "heater", "ac", "radiator"}:
        return "thermostat"
    if p.kind_words:
        w = p.kind_words[0]
        if L.KIND_WORDS_EN.get(w) == kind or dict(L.KIND_WORDS_ZH).get(w) == kind:
            return w if not _cjk(w) else {"light": "light", "switch": "plug",
                                          "climate": "thermostat"}.get(kind, kind)
    return {"media_player": "media player", "climate": "thermostat", "switch": "switch",
            "cover": "cover"}.get(kind, kind.replace("_", " "))


def _describe(slots: dict[str, Any]) -> str:
    parts = []
    if slots.get("brightness") is not None:
        parts.append(f"brightness {slots['brightness']}%")
    if slots.get("brightness_step") is not None:
        parts.append(f"brightness {slots['brightness_step']:+d}%")
    if slots.get("color"):
        parts.append(f"colour {slots['color']}")
    if slots.get("color_temp_kelvin"):
        parts.append(f"{slots['color_temp_kelvin']} K")
    if slots.get("temperature") is not None:
        t = slots["temperature"]
        parts.append(f"{int(t) if t == int(t) else t}°{slots.get('temperature_unit') or ''}")
    if slots.get("position") is not None:
        parts.append(f"{slots['position']}% open")
    if slots.get("volume") is not None:
        parts.append(f"volume {slots['volume']}%")
    if slots.get("temperature_step") is not None:
        t = slots["temperature_step"]
        parts.append(f"setpoint {int(t) if t == int(t) else t:+}°")
    if slots.get("volume_step") is not None:
        parts.append(f"volume {slots['volume_step']:+d}%")
    return (", " + ", ".join(parts)) if parts else ""


def _explained(t: str, known: frozenset[str]) -> bool:
    """A token the lexicon or the home knows, a number, or an inflection of a known word
    ("colors", "changed", "dimmed", "closing")."""
    if t in known or re.fullmatch(r"\d+(\.\d+)?", t):
        return True
    stems: tuple[str, ...] = ()
    if t.endswith("s"):
        stems = (t[:-1],)
    elif t.endswith("ed"):
        stems = (t[:-2], t[:-1])
    elif t.endswith("ing"):
        stems = (t[:-3], t[:-3] + "e")
    return any(st in known for st in stems if len(st) > 2)


def _degrees(tset: set[str], by_amount: float | None, small: bool, big: bool) -> float:
    """How many degrees a relative temperature change is: "by 3", "a couple", "a few",
    "a lot"; one degree otherwise ("a bit", "warmer")."""
    if by_amount:
        return float(min(10, by_amount))
    if "couple" in tset:
        return 2.0
    if "few" in tset:
        return 3.0
    return 3.0 if big and not small else 1.0


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


_ACTION_WORDS = (L.VERBS_ON_OFF_EN | L.VERBS_ON_EN | L.VERBS_OFF_EN | L.VERBS_OPEN_EN
                 | L.VERBS_CLOSE_EN | L.VERBS_DIM_EN | L.VERBS_BRIGHTEN_EN | L.VERBS_PAUSE_EN
                 | L.VERBS_RESUME_EN | L.VERBS_NEXT_EN
                 | {"lock", "unlock", "dim", "on", "off", "mute"}) - {"more", "less", "set"}


#: What may follow a bare "all" that means every device ("all off", "all of it now").
_ALL_MAY_FOLLOW = frozenset({"on", "off", "up", "down", "out", "please", "now", "again",
                             "at", "once", "in", "around", "over", "here", "there", "and",
                             "then", "right", "away", "for", "me", "us"}) | L.HOME_WORDS_EN


#: Nouns that many appliances share: a loose match on one of them needs no unknown word
#: in front ("the washing machine").
_GENERIC_NOUNS = frozenset({"machine", "maker", "box", "unit", "player", "system", "device",
                            "appliance", "station", "sensor", "thermometer", "cleaner"})


_MORE_VERBS = frozenset({"lock", "unlock", "open", "pull", "roll", "lift", "draw", "close",
                         "shut", "raise", "lower", "let", "bring"})


#: Words that may stand before a kind word without naming a device or place.
_MODIFIERS = (L.HARMLESS_MODIFIERS_EN | L.FUNCTION_WORDS_EN | _ACTION_WORDS | L.COLORS_EN
              | frozenset(L.COLOR_TEMP_EN) | L.SMALL_STEP_WORDS | L.BIG_STEP_WORDS
              | frozenset(L.LEVEL_WORDS_EN) | L.ALL_WORDS_EN | L.HOME_WORDS_EN
              | L.VERBS_SET_EN | L.GREETINGS_EN | L.WAKE_WORDS_EN
              | frozenset({"unlock", "lock", "brighter", "dimmer", "darker", "louder",
                           "quieter", "bright", "dark", "low", "high", "white", "percent",
                           "degrees", "brightness", "turn", "please", "kindly", "power"}))


def _sets_to(tokens: list[str]) -> bool:
    """Whether the words set something to a value ("… to 20", "… at 40 percent", "… to red",
    "… red")."""
    def value(w: str) -> bool:
        return w.replace(".", "").isdigit() or w in L.COLORS_EN or w in L.COLOR_TEMP_EN \
            or w in L.LEVEL_WORDS_EN
    return any(a in ("to", "at") and value(b) for a, b in itertools.pairwise(tokens)) or (
        len(tokens) > 2 and (value(tokens[-1]) or tokens[-1] == "percent"))


def _split_commands(tokens: list[str]) -> list[list[str]]:
    """Split at "and"/"then" where both sides carry an action word, or where each side sets
    its own target to its own value ("set the kitchen light to 20 and the office light to
    60": the second with the first's verb)."""
    out: list[list[str]] = []
    cur: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in ("and", "then", "also") and cur:
            j = i + 1
            while j < len(tokens) and tokens[j] in ("then", "also", "and"):
                j += 1
            rest = tokens[j:]
            verb = cur[:next((k for k, w in enumerate(cur) if w in ("the", "my", "our")), 1)]
            if (cur[0] in _ACTION_WORDS | L.VERBS_SET_EN and len(verb) <= 2 and _sets_to(cur)
                    and rest and rest[0] not in ("to", "at") and _sets_to(rest)
                    and not any(w in _ACTION_WORDS | L.VERBS_SET_EN for w in rest)):
                out.append(cur)
                cur = list(verb)
                i = j
                continue
            if (any(w in _ACTION_WORDS for w in cur) or (
                    cur[0] in L.VERBS_SET_EN and rest and rest[0] in _ACTION_WORDS)) and rest and (
                    rest[0] in _ACTION_WORDS or (
                        any(w in _ACTION_WORDS for w in rest)
                        and not (rest[-1] in ("on", "off") and not any(
                            w in _ACTION_WORDS - {"on", "off"} for w in rest))
                        and rest[0] not in ("the", "my"))
                    or (rest[-1] in ("on", "off") and cur[-1] in ("on", "off"))):
                out.append(cur)
                cur = []
                i = j
                continue
        cur.append(t)
        i += 1
    if cur:
        out.append(cur)
    return out


def _merge(intents: list[Intent]) -> list[Intent]:
    """Same intent with the same settings twice ("the kitchen light and the bedroom lamp
    off"): one intent on both targets."""
    out: list[Intent] = []
    for it in intents:
        same = next((k for k, prev in enumerate(out) if prev.name == it.name
                     and prev.slots.device_ids == it.slots.device_ids), None)
        if same is not None:  # "太亮了，调暗一点": said twice, done once
            if it.confidence > out[same].confidence:
                out[same] = it
            continue
        for k, prev in enumerate(out):
            a = prev.slots.model_dump(exclude={"device_ids", "area", "floor", "domain"})
            b = it.slots.model_dump(exclude={"device_ids", "area", "floor", "domain"})
            if prev.name == it.name and a == b and it.name != IntentName.SCENE_ACTIVATE:
                ids = sorted(set(prev.slots.device_ids) | set(it.slots.device_ids))
                slots = prev.slots.model_copy(update={
                    "device_ids": ids,
                    "area": prev.slots.area if prev.slots.area == it.slots.area else None,
                    "floor": prev.slots.floor if prev.slots.floor == it.slots.floor else None})
                out[k] = prev.model_copy(update={
                    "slots": slots, "confidence": min(prev.confidence, it.confidence),
                    "reason": f"{prev.reason}; and {it.reason}"})
                break
        else:
            out.append(it)
    return out


class _TierBase:
    """The home the parsers read (shared by the English, Chinese and target parts) and the
    few lookups they all need."""

    def __init__(self, config: HomeConfig, resolver: Resolver | None = None) -> None:
        self.config = config
        self._resolver = resolver or Resolver(config)
        self._lex = _build_lex(config)
        self._devices = {d.id: d for d in config.devices}
        self._area_names = {a.id: a.name for a in config.areas}
        #: English names said inside Chinese ("把TV关了"), without spaces as the Chinese parse
        self._en_names: dict[str, tuple[str, list[str]]] = {
            **{w.replace(" ", ""): ("kind", [k]) for w, k in L.KIND_WORDS_EN.items()},
            **{w: ("loose", sorted(ids)) for w, ids in self._lex.distinctive.items()
               if len(ids) == 1},
            **{w: ("loose", ids) for w, ids in self._lex.kind_redirect.items()},
            **{"".join(t): ("device", [d]) for t, d in self._lex.devices}}

    def _vacuums(self) -> list[str]:
        if _VACUUM_KIND is None:
            return []
        return [d.id for d in self.config.devices if d.kind == _VACUUM_KIND]

    def _not_there(self, p: _Parse) -> None:
        """"open the kitchen blinds" where the blinds are in the bedroom: not those blinds
        (said of one place; "the kitchen and living room lights" lists two)."""
        named = [self._devices[d] for d in p.devices + p.partial_devices]
        if p.areas and named and not any(d.area in p.areas for d in named) \
                and not any(d.kind.value in ("vacuum", "sensor") for d in named):
            where = self._area_names.get(p.areas[0], p.areas[0])
            are = "are" if named[0].name.endswith("s") else "is"
            raise Rejected(f"the {named[0].name} {are} not in the {where}")
        floors = {a.id: a.floor for a in self.config.areas}
        if p.floor and named and not any(floors.get(d.area or "") == p.floor for d in named) \
                and not any(d.kind.value in ("vacuum", "sensor") for d in named):
            raise Rejected(f"the {named[0].name} is not on that floor")  # "二楼客厅的灯"

    def _door(self, p: _Parse) -> None:
        """"door": a door-like cover (garage door) where there is one, else a lock."""
        if "door" not in p.kinds:
            return
        covers = [d for d in self.config.devices if d.kind == DeviceKind.COVER
                  and (not p.areas or d.area in p.areas)
                  and (self._resolver.cover_class(d) == "door"
                       or (self._resolver.cover_class(d) == "garage" and d.area in p.areas))]
        i = p.kinds.index("door")
        if covers:
            p.kinds[i] = "cover"
            p.cover_class = self._resolver.cover_class(covers[0])
        else:
            p.kinds[i] = "lock"

    def _climate_here(self, p: _Parse, warmer: bool, *, indirect: bool,
                      step: float = 1.0) -> None:
        """"It's cold in here", "make it warmer": the setpoint one step up or down where the
        speaker is (or the home's only thermostat); the dispatcher makes it absolute."""
        thermostats = [d.id for d in self.config.devices if d.kind == DeviceKind.CLIMATE]
        if not thermostats:
            raise Rejected("there is no thermostat in the home")
        where = p.areas[0] if p.areas else None
        if where is not None and not any(self._devices[t].area == where for t in thermostats):
            raise Rejected(f"there is no thermostat in the {self._area_names.get(where, where)}")
        if where is None and p.floor is None and len(thermostats) > 1:
            p.here = True  # several thermostats: the speaker's room, never all of them
        p.tstep = step if warmer else -step
        p.action, p.explicit_verb, p.indirect = "tstep", not indirect, indirect
        if "climate" not in p.kinds:
            p.kinds.append("climate")
            p.kind_from_action = True

    def _temperature_step(self, p: _Parse, tset: set[str], warmer: bool,
                          by_amount: float | None, small: bool, big: bool) -> None:
        """"Turn the heat up", "turn it down a couple degrees": a setpoint step."""
        p.tstep = _degrees(tset, by_amount, small, big) * (1 if warmer else -1)
        p.action, p.explicit_verb = "tstep", True
        if "climate" not in p.kinds:
            p.kinds.append("climate")  # "degrees" names the thermostat
