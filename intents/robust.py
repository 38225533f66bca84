"""The robust understanding tier: everyday phrasings the exact grammar does not cover.

Between the grammar (exact templates) and the fuzzy/model tiers. Not templates: the sentence is
*normalized* (a leading wake name, greeting or politeness and trailing "please"/"thanks" are
dropped, numbers in words become digits, plurals are reduced), then a small slot-filling parser
looks for the pieces of a command anywhere in it:

* the **action**: verbs and particles in any order ("put the kitchen light on", "lights off",
  "kill the lights", "lock up", "dim", "a bit brighter", "make it blue", "pause");
* the **target**: device names and aliases from the registry (loosely: plural, extra words,
  "the wemo plug socket"), kind words ("lights", "plug", "blinds", "heating", "everything"),
  areas and floors, "here"/"this room" (the speaker's area);
* **amounts**: levels ("fifty percent", "to 30", "max", "half"), relative steps ("a bit",
  "a lot"), colours, colour-temperature words, temperatures;
* **indirect requests**: "it's too dark in here" (lights on), "this room is too bright" (dim).

Two commands joined by "and"/"then" ("和"/"然后") are both parsed: one intent when they are
the same action (their targets merged), else the first intent plus ``Recognition.also``.

What it will not do: act on a device word it does not know ("the closet light" → "I don't know a
device called 'closet light'"), act on the whole home for "here" when the speaker's area is
unknown, act on out-of-scope requests (timers, weather, coffee with no coffee machine...), act
later ("when I get home"), or produce a sensitive action (unlock, opening a garage door) above
the guess cap unless both the verb and the target were said outright.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.registry import Device, DeviceKind, HomeConfig
from intents import robust_lexicon as L
from intents.resolve import KIND_TO_HA_DOMAIN, Resolver
from intents.schema import SENSITIVE_INTENTS, Intent, IntentName, Recognition, Slots

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
#: Chinese: per unexplained character (a misheard verb such as 吊 for 调 changes the reading).
UNEXPLAINED_CHAR_ZH = 0.15

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

    def __init__(self, reason: str, *, final: bool = True) -> None:
        super().__init__(reason)
        self.final = final


class _NeedsRoom(Rejected):
    """A rejection that, when the speaker's room is unknown, is first of all about that."""


# -- normalization ---------------------------------------------------------------------------


def _singular(word: str, known: frozenset[str]) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word[:-1] in known:
        return word[:-1]
    if word in known:
        return word
    if word.endswith("ies") and word[:-3] + "y" in known:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2] in known:
        return word[:-2]
    if word.endswith("s") and word[:-1] in known:
        return word[:-1]
    return word


def _number_words(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in L.NUMBERS_EN or (t in ("a", "one") and i + 1 < len(tokens)
                                 and tokens[i + 1] == "hundred"):
            value = 0
            j = i
            if t in ("a", "one") and j + 1 < len(tokens) and tokens[j + 1] == "hundred":
                value, j = 100, j + 2
            else:
                value = L.NUMBERS_EN[t]
                j += 1
                if value >= 20 and value % 10 == 0 and j < len(tokens) \
                        and tokens[j] in L.NUMBERS_EN and L.NUMBERS_EN[tokens[j]] < 10:
                    value += L.NUMBERS_EN[tokens[j]]
                    j += 1
                elif value < 10 and j < len(tokens) and tokens[j] == "hundred":
                    value *= 100
                    j += 1
            if j < len(tokens) and tokens[j] == "point" and j + 1 < len(tokens) \
                    and tokens[j + 1] in L.NUMBERS_EN and L.NUMBERS_EN[tokens[j + 1]] < 10:
                out.append(f"{value}.{L.NUMBERS_EN[tokens[j + 1]]}")
                j += 2
            else:
                out.append(str(value))
            i = j
            continue
        out.append(t)
        i += 1
    return out


def normalize_en(text: str) -> list[str]:
    """Lower-cased tokens: punctuation dropped, contractions expanded, numbers as digits,
    "%" as "percent", a leading wake name/greeting/politeness and trailing politeness gone."""
    s = text.lower().replace("’", "'").replace("‘", "'")
    s = re.sub(r"(\d)\s*%", r"\1 percent ", s)
    s = re.sub(r"(\d)\s*°\s*([cf])\b", r"\1 degrees \2", s)
    s = s.replace("°", " degrees ")
    s = re.sub(r"(?<=\d)\.(?=\d)", "\x00", s)
    s = re.sub(r"[^a-z0-9'\x00/ ]+", " ", s.replace("-", " "))
    s = s.replace("\x00", ".")
    tokens: list[str] = []
    for t in s.split():
        t = t.strip("'")
        if not t:
            continue
        if t in L.CONTRACTIONS_EN:
            tokens.extend(L.CONTRACTIONS_EN[t].split())
        elif t.endswith("'s"):
            tokens.append(t[:-2])
        elif t.endswith("s'"):
            tokens.append(t[:-1])
        else:
            tokens.append(t.replace("'", ""))
    tokens = [_GERUNDS.get(t, t) for t in _number_words(tokens)]
    return _strip_politeness(tokens)


_GERUNDS = {"closing": "close", "opening": "open", "turning": "turn", "switching": "switch",
            "dimming": "dim", "locking": "lock", "unlocking": "unlock", "pausing": "pause",
            "lowering": "lower", "raising": "raise", "brightening": "brighten",
            "setting": "set", "putting": "put", "shutting": "shut", "starting": "start",
            "stopping": "stop", "making": "make", "changing": "change"}


def _strip_politeness(tokens: list[str]) -> list[str]:
    changed = True
    while changed and tokens:
        changed = False
        while tokens and (tokens[0] in L.GREETINGS_EN or tokens[0] in L.WAKE_WORDS_EN) \
                and len(tokens) > 1:
            tokens = tokens[1:]
            changed = True
        for p in L.POLITE_PREFIXES_EN:
            if tuple(tokens[: len(p)]) == p and len(tokens) > len(p):
                tokens = tokens[len(p):]
                changed = True
                break
        for p in L.POLITE_SUFFIXES_EN:
            if len(tokens) > len(p) and tuple(tokens[-len(p):]) == p:
                tokens = tokens[: -len(p)]
                changed = True
                break
        while len(tokens) > 1 and tokens[-1] in L.WAKE_WORDS_EN - {"home"}:
            tokens = tokens[:-1]
            changed = True
    return [t for t in tokens if t not in ("please", "kindly")]


# -- the parse ---------------------------------------------------------------------------------


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
    #: the command starts with its verb ("unlock the front door"), nothing stray before it
    imperative: bool = False
    #: words neither the home nor the lexicon knows (a mishearing, a name the home lacks)
    unknown: list[str] = field(default_factory=list)
    #: how many tokens (en) or characters (zh) the sentence had, for the coverage rule
    size: int = 0
    zh: bool = False

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
        | {"unlock", "lock", "dark", "bright", "hot", "cold", "warm", "chilly", "freezing",
           "dim", "up", "clean", "cleaning", "mute", "unmute", "degrees", "celsius",
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


class RobustTier:
    """Parses everyday phrasings against one home. Thread-safe (read-only after init)."""

    def __init__(self, config: HomeConfig, resolver: Resolver | None = None) -> None:
        self.config = config
        self._resolver = resolver or Resolver(config)
        self._lex = _build_lex(config)
        self._devices = {d.id: d for d in config.devices}
        self._area_names = {a.id: a.name for a in config.areas}

    # -- entry point ---------------------------------------------------------------------------

    def recognize(self, text: str, lang: str, *, area: str | None = None) -> Recognition | None:
        """A recognition, a rejection with the reason (``intent=None``) when the sentence was
        understood as something Hearth must not do, or None when it does not parse at all."""
        return self.analyze(text, lang, area=area)[0]

    def analyze(self, text: str, lang: str, *, area: str | None = None
                ) -> tuple[Recognition | None, bool]:
        """:meth:`recognize` plus whether a rejection is final (see :class:`Rejected`)."""
        try:
            return self._analyze(text, lang, area), False
        except _NeedsRoom as e:
            reason = str(e) if area is not None else "I don't know which room you're in; " \
                "say the room"
            return Recognition(intent=None, reason=f"no intent: {reason}"), True
        except Rejected as e:
            return Recognition(intent=None, reason=f"no intent: {e}"), e.final

    def _analyze(self, text: str, lang: str, area: str | None) -> Recognition | None:
        zh = lang.lower().startswith("zh")
        if not zh and not lang.lower().startswith("en"):
            return None
        parts = self._parts_zh(text) if zh else self._parts_en(text)
        if not parts:
            return None
        if len(parts) > 1 and all(isinstance(x, Rejected) and not x.final for x in parts):
            raise next(x for x in parts if isinstance(x, Rejected))
        parts = [None if isinstance(x, Rejected) and not x.final else x for x in parts]
        for x in parts:
            if isinstance(x, Rejected):
                raise x
        intents: list[Intent] = []
        for p in parts:
            assert not isinstance(p, Rejected)
            if p is None:
                if len(parts) == 1:
                    return None
                continue
            intents.extend(self._intents(p, text, "zh-CN" if zh else lang, area))
        if not intents:
            return None
        intents = _merge(intents)
        first, rest = intents[0], intents[1:]
        reason = first.reason
        if rest:
            reason += "; then: " + "; ".join(i.reason for i in rest)
        return Recognition(intent=first.model_copy(update={"reason": reason}), reason=reason,
                           also=rest)

    # -- English -------------------------------------------------------------------------------

    def _parts_en(self, text: str) -> list[_Parse | None]:
        tokens = normalize_en(text)
        if not tokens:
            return []
        tokens = [_singular(t, self._lex.singular) for t in tokens]
        joined: list[str] = []
        for t in tokens:  # "bed room" said for "bedroom"
            if joined and joined[-1] + t in self._lex.singular and joined[-1] not in \
                    self._lex.singular:
                joined[-1] += t
            else:
                joined.append(t)
        tokens = joined
        chunks = _split_commands(tokens)
        return [self._parse_en(c) for c in chunks]

    def _parse_en(self, tokens: list[str]) -> _Parse | None:
        tokens = _strip_politeness(tokens)
        if not tokens:
            return None
        text = " " + " ".join(tokens) + " "
        p = _Parse()
        lex = self._lex
        tset = set(tokens)

        if tokens[0] in L.NEGATIONS_EN or text.startswith((" do not ", " please do not ")):
            raise Rejected("that is not something to do (a negation)")

        used = [False] * len(tokens)
        dev_spans = _find_spans(tokens, lex.devices, used)
        scene_spans = _find_spans(tokens, lex.scenes, used)
        area_spans = _find_spans(tokens, lex.areas, used)
        floor_spans = _find_spans(tokens, lex.floors, used)
        p.devices = _unique([d for _, _, d in dev_spans])
        p.areas = _unique([a for _, _, a in area_spans])
        if floor_spans:
            p.floor = floor_spans[0][2]
        if scene_spans:
            p.scene = scene_spans[0][2]
        for here_ph in L.HERE_PHRASES_EN:
            n = len(here_ph)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i:i + n]) == here_ph and not any(used[i:i + n]):
                    if here_ph == ("room",) and i > 0 and tokens[i - 1] not in (
                            "the", "this", "my", "a", "in", "of", "every"):
                        continue
                    if here_ph == ("room",) and i > 0 and tokens[i - 1] == "every":
                        continue
                    p.here = True
                    for k in range(i, i + n):
                        used[k] = True
        if tset & L.HOME_WORDS_EN or "every room" in text or "all room" in text \
                or "whole house" in text:
            p.home = True
        # kind words, multi-word first
        for phrase in sorted(L.KIND_WORDS_EN, key=lambda k: -len(k.split())):
            ph = tuple(phrase.split())
            n = len(ph)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i:i + n]) == ph and not any(used[i:i + n]):
                    kind = L.KIND_WORDS_EN[phrase]
                    if phrase == "switch" and not self._switch_is_noun(tokens, i):
                        continue
                    if phrase in ("light", "lighting") and i + 1 < len(tokens) \
                            and tokens[i + 1] == "up" and (i == 0 or tokens[i - 1] not in (
                                "the", "my", "all", "a")):
                        continue  # "light up": a verb
                    if phrase in lex.kind_redirect:  # "the tv" where the TV is a plug
                        p.partial_devices.extend(lex.kind_redirect[phrase])
                        for k in range(i, i + n):
                            used[k] = True
                        continue
                    if phrase == "temperature" and ("what" in tset or "how" in tset):
                        p.action = p.action or "get_temp"
                    if phrase == "volume" and False:
                        continue
                    for k in range(i, i + n):
                        used[k] = True
                    p.kinds.append(kind)
                    p.kind_words.append(phrase)
                    if phrase in L.COVER_CLASS_EN:
                        p.cover_class = L.COVER_CLASS_EN[phrase]
        if not p.kinds:  # "open the garage": a room that is also a kind of device
            for i0, i1, _ in area_spans:
                phrase = " ".join(tokens[i0:i1])
                if phrase in L.KIND_WORDS_EN and L.KIND_WORDS_EN[phrase] != "light":
                    p.kinds.append(L.KIND_WORDS_EN[phrase])
                    p.kind_words.append(phrase)
                    if phrase in L.COVER_CLASS_EN:
                        p.cover_class = L.COVER_CLASS_EN[phrase]
        # loose device names: a distinctive word of exactly one device ("the wemo", "desk")
        loose: set[int] = set()
        for i, t in enumerate(tokens):
            if used[i]:
                continue
            ids = lex.distinctive.get(t)
            if ids and len(ids) == 1:
                (dev_id,) = ids
                if dev_id not in p.devices:
                    p.partial_devices.append(dev_id)
                used[i] = True
                loose.add(i)
        if p.partial_devices and p.devices:
            p.partial_devices = []
        p.everything = bool(tset & {"everything", "anything"}) or (
            "all" in tset and not p.kinds and not p.devices and not p.partial_devices)
        if p.everything and "all" in tset and not tset & {"everything", "anything"}:
            self._check_all(tokens, used)

        self._door(p)
        p.unknown = [t for t in tokens if not _explained(t, lex.known)]
        p.size = len(tokens)
        p.imperative = tokens[0] in _ACTION_WORDS | L.VERBS_SET_EN | _MORE_VERBS \
            and tokens[0] not in ("on", "off", "up", "down")
        self._unknown_names_en(tokens, used, loose)
        for i in sorted(loose):  # "the washing machine" is not the coffee machine
            if i > 0 and tokens[i - 1] in p.unknown and tokens[i] in _GENERIC_NOUNS:
                raise Rejected(f"I don't know a device called {tokens[i - 1] + ' ' + tokens[i]!r}",
                               final=False)
        self._out_of_scope_en(tokens, p)
        self._action_en(tokens, text, p)
        if p.action is None:
            return None
        if p.kind_from_action or not p.has_target():
            unknown = [t for t in tokens if t not in lex.known and not t.isdigit()
                       and not re.fullmatch(r"\d+(\.\d+)?", t)]
            if unknown and not p.indirect:
                raise Rejected(f"I don't know a device called {' '.join(unknown)!r}",
                               final=False)
            if p.action in ("on", "off") and not (p.areas or p.here or p.home or p.everything
                                                  or p.floor or p.indirect):
                return None  # "turn on": on what?
        if not (p.has_target() and not p.kind_from_action) and not p.here and not p.home \
                and not p.everything and not p.indirect and not p.areas and not p.floor \
                and tset & {"it", "them", "that", "those"} and p.action != "tstep":
            return None  # "turn it off": the previous command's devices (grammar, context)
        return p

    @staticmethod
    def _check_all(tokens: list[str], used: list[bool]) -> None:
        """A bare "all" reaches the whole home only when nothing unexplained follows it:
        "turn off all", "switch it all off", "all off" — not "turn off all we like" (a
        misheard "the hallway light")."""
        i = tokens.index("all")
        j = i + 1
        while j < len(tokens) and tokens[j] in ("the", "of", "my", "our", "it", "them"):
            j += 1
        if j >= len(tokens) or used[j] or tokens[j] in _ALL_MAY_FOLLOW:
            return
        raise Rejected(f"I didn't catch {' '.join(tokens[i + 1:])!r}, so I won't act on the "
                       "whole home; say which room or device")

    def _switch_is_noun(self, tokens: list[str], i: int) -> bool:
        if i == 0:
            return False
        prev = tokens[i - 1]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt in ("on", "off", "it", "them", "to", "the", "my", "all", "everything", "every"):
            return False
        return prev in ("the", "my", "a", "wall", "light", "smart", "power", "that", "this")

    def _unknown_names_en(self, tokens: list[str], used: list[bool], loose: set[int]) -> None:
        """A word the home does not know right before a kind word, or after "in the", names a
        device or place Hearth does not have: refuse rather than act on another one."""
        lex = self._lex
        for i, t in enumerate(tokens):
            is_kind = used[i] and t in {w for k in L.KIND_WORDS_EN for w in k.split()}
            if is_kind:
                j = i - 1
                name: list[str] = []
                # a word before the kind word that is no modifier, verb, amount or colour
                # ("the closet light", "movie light", "the back door", "drawing room light")
                while j >= 0 and not used[j] and not tokens[j].isdigit() and (
                        tokens[j] in ("room", "hall", "area") or tokens[j] not in _MODIFIERS):
                    name.insert(0, tokens[j])
                    j -= 1
                while name and j >= 0 and j in loose:  # "the front porch light"
                    name.insert(0, tokens[j])
                    j -= 1
                if name and not (name == ["room"] or set(name) <= {"room", "hall", "area"}):
                    while j >= 0 and not used[j] and tokens[j] not in L.FUNCTION_WORDS_EN \
                            and tokens[j] not in L.HARMLESS_MODIFIERS_EN \
                            and tokens[j] not in _ACTION_WORDS and not tokens[j].isdigit():
                        name.insert(0, tokens[j])
                        j -= 1
                    what = "room or device" if t in ("door",) else "device"
                    raise Rejected(f"I don't know a {what} called {' '.join([*name, t])!r}",
                                   final=False)
            if t in ("in", "at") and i + 1 < len(tokens):
                k = i + 1
                while k < len(tokens) and tokens[k] in ("the", "my", "our", "this", "that"):
                    k += 1
                name = []
                while k < len(tokens) and not used[k] and tokens[k] not in lex.known \
                        and not tokens[k].isdigit():
                    name.append(tokens[k])
                    k += 1
                if name and (k >= len(tokens) or tokens[k] in ("room", "hall", "area")
                             or tokens[k] in ("please", "and", "then", "now")
                             or k == len(tokens)):
                    if k < len(tokens) and tokens[k] in ("room", "hall", "area"):
                        name.append(tokens[k])
                    raise Rejected(f"I don't know a room called {' '.join(name)!r}",
                                   final=False)

    def _out_of_scope_en(self, tokens: list[str], p: _Parse) -> None:
        tset = set(tokens)
        said = " " + " ".join(tokens) + " "
        if re.match(r" (i|we) (think|guess|believe|suppose|reckon|bet|noticed|see) ", said) \
                or re.match(r" (seems|looks like|apparently|maybe|perhaps|probably) ", said):
            raise Rejected("that sounds like a statement, not a request")
        if tokens[0] not in _ACTION_WORDS | L.VERBS_SET_EN | _MORE_VERBS | {"make", "let"} \
                and re.search(r" (is|are|am|s|still|been)( still| now| wide| all)? "
                              r"(open|opened|closed|shut|locked|unlocked|on|off|running|"
                              r"playing|ajar|left) ", said):
            raise Rejected("that sounds like a statement, not a request")
        if tset & {"was", "were", "yesterday", "earlier", "last", "had", "been"} or (
                tokens[0] in _SUBJECTS and len(tokens) > 1 and tokens[1] in _PAST_VERBS):
            raise Rejected("that sounds like a statement, not a request")
        for words, reason in L.OUT_OF_SCOPE_EN[:3]:  # timers, alarms, reminders
            if tset & words:
                raise Rejected(reason)
        if not (p.has_target() or p.here):
            for words, reason in L.OUT_OF_SCOPE_EN:
                if tset & words and not (words & {"time", "day", "clock"}
                                         and tset & L.SCHEDULE_WORDS_EN):
                    raise Rejected(reason)
        said = " " + " ".join(tokens) + " "
        if re.search(r"\d (am|pm|oclock|o'clock) ", said):
            raise Rejected("I can't schedule actions for later yet; ask when you want it")
        if tset & {"except", "but", "apart", "besides", "without"}:
            raise Rejected("I can't leave a device or room out yet; name the ones you mean")
        if tset & L.SCHEDULE_WORDS_EN or " every day" in " ".join(tokens):
            sched = tset & L.SCHEDULE_WORDS_EN
            if sched - {"morning", "evening", "afternoon"} or not p.has_target():
                raise Rejected("I can't schedule actions for later yet; ask when you want it")
        coffee = "coffee" in tset or "espresso" in tset or "cappuccino" in tset \
            or "latte" in tset
        if coffee:
            machine = [d.id for d in self.config.devices if d.kind == DeviceKind.SWITCH
                       and any("coffee" in n.lower() or "espresso" in n.lower()
                               for n in (d.name, *d.aliases))]
            if not machine:
                raise Rejected("I can't make coffee: there is no coffee machine in the home")
            if not (tset & {"off", "stop"}) and not p.devices:
                p.partial_devices = machine[:1]
                p.action = "on"
                p.explicit_verb = bool(tset & {"make", "brew", "start", "prepare", "turn",
                                               "switch", "power"})
                return
        vacuum_words = tset & {"vacuum", "roomba", "hoover", "clean", "cleaning", "cleanup",
                               "vacuuming", "hoovering", "dust", "mop", "sweep", "robot"}
        if vacuum_words and not (p.devices or p.partial_devices):
            if not self._vacuums():
                raise Rejected("there is no robot vacuum in the home")
        if "play" in tset or ("back" in tset and media_words(tset)):
            start = tokens.index("play") + 1 if "play" in tset else tokens.index("back")
            what: list[str] = []
            for t in tokens[start:]:
                if t in ("on", "in", "at", "through", "from"):
                    break
                what.append(t)
            rest = [t for t in what if t not in lex_play_ok
                    and L.KIND_WORDS_EN.get(t) != "media_player"]
            if rest or ("back" in tset and "play" not in tset):
                raise Rejected("I can't choose what to play; I can pause, resume and skip")
        if p.has_target() or p.here:
            return
        for words, reason in L.OUT_OF_SCOPE_EN:
            if tset & words:
                raise Rejected(reason)
        if "play" in tset:
            rest = [t for t in tokens if t not in ("play", "some", "the", "a", "me", "my",
                                                   "music", "again")]
            if rest:
                raise Rejected("I can't choose what to play; I can pause, resume and skip")

    def _vacuums(self) -> list[str]:
        if _VACUUM_KIND is None:
            return []
        return [d.id for d in self.config.devices if d.kind == _VACUUM_KIND]

    def _action_en(self, tokens: list[str], text: str, p: _Parse) -> None:
        tset = set(tokens)
        first = tokens[0]
        # amounts
        for i, t in enumerate(tokens):
            if re.fullmatch(r"\d+(\.\d+)?", t):
                val = float(t)
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if nxt == "percent" or (i + 2 < len(tokens) and nxt == "per"
                                        and tokens[i + 2] == "cent"):
                    p.number, p.percent = val, True
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
        small = bool(tset & L.SMALL_STEP_WORDS)
        big = bool(tset & L.BIG_STEP_WORDS) and not small
        by_amount = None
        if " by " in text and p.number is not None:
            by_amount = int(p.number)
        step = by_amount or (L.STEP_SMALL if small else L.STEP_BIG if big else L.STEP_DEFAULT)
        colors = [t for t in tokens if t in L.COLORS_EN]
        kelvin = next((L.COLOR_TEMP_EN[t] for t in tokens if t in L.COLOR_TEMP_EN), None)
        if " bright white " in text:
            kelvin = 6500

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

        # questions
        if first in ("what", "how", "which", "is", "are", "does", "do", "whats", "tell",
                     "check", "did", "why", "who", "when", "where", "has", "have",
                     "was", "were") or text.rstrip().endswith("?"):
            if "temperature" in tset or tset & {"hot", "cold", "warm", "degrees"}:
                if first in ("what", "how", "tell", "check", "whats") or "temperature" in tset:
                    p.action = "get_temp"
                    p.explicit_verb = True
                    if "climate" not in p.kinds:
                        p.kinds.append("climate")
                    return
            if first in ("is", "are", "does") and p.has_target() and (
                    tset & {"on", "off", "open", "closed", "locked", "unlocked", "shut",
                            "running", "playing"}):
                p.action = "get_state"
                p.explicit_verb = True
                return
            if first in ("what", "how", "which", "do", "does", "tell", "is", "are", "whats",
                         "did", "why", "who", "when", "where", "has", "have", "was", "were"):
                raise Rejected("a question Hearth cannot answer")
        if p.action == "get_temp":
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
                    act("vstart", bool(tset & {"start", "clean", "vacuum", "on", "run",
                                               "activate", "begin", "hoover"}))
                if "vacuum" not in p.kinds:
                    p.kinds.append("vacuum")
                return
        # locks
        if "unlock" in tset or ("unbolt" in tset):
            act("unlock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
                p.kind_from_action = True
            return
        if first == "lock" or ("lock" in tset and "up" in tset) or (
                "lock" in tset and tokens.index("lock") <= 1 and "lock" not in p.kind_words):
            act("lock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
                p.kind_from_action = True
            return
        if "lock" in tset and tokens.index("lock") <= 1:
            act("lock")
            return
        # scenes
        if p.scene and not p.devices:
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
        if media or tset & {"song", "track", "music", "louder", "quieter", "softer"}:
            if tset & L.VERBS_NEXT_EN or "another song" in text:
                act("next")
                return
            if ("volume" in tset or louder) and not tset & {"on", "off"} and not (
                    louder <= {"up", "down"} and "volume" not in tset and not tset & {
                        "turn", "crank", "bring", "put"}):
                if p.number is not None and not tset & {"by"}:
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
        if on and off:
            raise Rejected("I heard both 'on' and 'off'")
        indirect_dark = bool(re.search(r"( (is|it|room|here|in here|getting)( too| so| very| "
                                       r"really| quite| a bit| pretty)?| too| so| very) "
                                       r"(dark|dim|gloomy) ", text)) \
            and not tset & L.VERBS_DIM_EN - {"dim"} and " make " not in text \
            and " darker" not in text and " to dark" not in text
        indirect_dark = indirect_dark or bool(re.search(r" (cannot|can not|hard to|cant|"
                                                        r"unable to) see ", text))
        indirect_bright = bool(re.search(r" (too|so|very|really|quite) bright ", text)) \
            or bool(re.search(r" is bright ", text) and p.here)
        cold = bool(re.search(r" (too |so |very |really |bit |a bit |quite )?"
                              r"(cold|chilly|freezing) ", text)) and not lightish_only(p)
        hot = bool(re.search(r" (too |so |very |really |bit |a bit |quite )?"
                             r"(hot|warm|stuffy|boiling) ", text)) and " make " not in text \
            and "warmer" not in tset and not lightish_only(p)

        # temperature
        if p.temperature is not None and tset & {"by", "up", "down", "warmer", "cooler",
                                                  "increase", "decrease", "raise", "lower",
                                                  "higher", "colder", "hotter"} \
                and not tset & {"to", "at"}:
            # "turn it down 3 degrees", "raise the heat by 2 degrees": a step, not a setpoint
            by_amount = int(p.temperature)
            p.temperature = None
        elif p.temperature is not None or (climate and p.number is not None
                                           and not p.percent):
            if p.temperature is None:
                p.temperature = p.number
            act("temp", bool(tset & L.VERBS_SET_EN | {"turn", "to"}))
            if "climate" not in p.kinds:
                p.kinds.append("climate")
                p.kind_from_action = True
            return
        warmer = tset & {"warmer", "up", "increase", "raise", "higher", "hotter", "warm"}
        cooler = tset & {"cooler", "down", "decrease", "lower", "colder", "reduce", "cool"}
        if (climate or tset & {"degree", "degrees"}) and (warmer or cooler) \
                and not (warmer and cooler):
            self._temperature_step(p, tset, bool(warmer), by_amount, small, big)
            return
        if ((cold or hot) and not colors and kelvin is None) or (
                (cold or hot) and (p.here or not p.has_target())
                and not tset & {"light", "lamp", "white"}):
            self._climate_here(p, cold, indirect=True)
            return
        if ("warmer" in tset or "cooler" in tset or "hotter" in tset or "colder" in tset) \
                and not p.has_target() and not tset & {"white", "light", "colour", "color"}:
            self._climate_here(p, bool(tset & {"warmer", "hotter"}), indirect=False,
                               step=_degrees(tset, by_amount, small, big))
            return

        # covers
        if cover:
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
        # colours
        mood = tset & {"night", "nighttime", "sleep", "sleeping", "mood", "romantic",
                       "relaxing", "relax", "evening"}
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
                            "relaxing", "relax", "evening"} \
                and (lightish or "light" in kinds) and not (on or off):
            night = tset & {"night", "nighttime", "sleep", "sleeping"}
            p.brightness, p.kelvin = (10 if night else 30), 2200
            act("set", bool(tset & L.VERBS_SET_EN))
            _light_kind(p)
            return
        if kelvin is not None and colors == ["white"]:
            colors = []
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
        if first in L.VERBS_ON_EN or (tset & {"activate", "enable", "start"} and p.has_target()) \
                or (tset & {"running", "going", "started"} and p.has_target()):
            act("on", True)
            return
        # brightness
        if lightish or "light" in kinds:
            here_dir = re.sub(r" (down|up|over) here ", " here ", text)
            down = bool(tset & L.VERBS_DIM_EN) or " down " in here_dir or "darker" in tset \
                or " to dark" in text or ("dark" in tset and not indirect_dark)
            up = bool(tset & L.VERBS_BRIGHTEN_EN - ({"bright"} if indirect_bright else set())) \
                or " up " in here_dir or "brighter" in tset or "light up" in text
            if indirect_bright and not up:
                down, p.indirect = True, True
            if p.number is not None and (p.percent or tset & {"to", "at", "brightness",
                                                             "level"} or down or up) \
                    and by_amount is None:
                p.brightness = max(0, min(100, int(p.number)))
                act("set", bool(tset & (L.VERBS_SET_EN | L.VERBS_DIM_EN
                                        | L.VERBS_BRIGHTEN_EN)))
                _light_kind(p)
                return
            if down and not up:
                p.step = -step
                act("step", True)
                _light_kind(p)
                return
            if up and not down:
                p.step = step
                act("step", True)
                _light_kind(p)
                return
            if indirect_dark:
                p.indirect = True
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
                          by_amount: int | None, small: bool, big: bool) -> None:
        """"Turn the heat up", "turn it down a couple degrees": a setpoint step."""
        p.tstep = _degrees(tset, by_amount, small, big) * (1 if warmer else -1)
        p.action, p.explicit_verb = "tstep", True
        if "climate" not in p.kinds:
            p.kinds.append("climate")  # "degrees" names the thermostat

    # -- Chinese -------------------------------------------------------------------------------

    def _parts_zh(self, text: str) -> list[_Parse | Rejected | None]:
        s = _normalize_zh(text)
        if not s:
            return []
        chunks = [c for c in re.split(r"然后|接着|再把|并且|同时|，|,|；|;|。", s) if c]
        out: list[_Parse | Rejected | None] = []
        for c in chunks:
            sub = re.split(r"(?<=[灯扇帘门箱视座])和|(?<=[灯扇帘门箱视座])并", c)
            if len(sub) > 1 and all(_zh_has_verb(x) for x in sub):
                out.extend(self._parse_zh_part(x, len(chunks) > 1) for x in sub)
            else:
                out.append(self._parse_zh_part(c, len(chunks) > 1))
        return out

    def _parse_zh_part(self, s: str, several: bool) -> _Parse | Rejected | None:
        """One clause; with several clauses, an unknown-name rejection is kept (not raised)
        so that "我要睡觉了，把灯关了" still acts on its command."""
        try:
            return self._parse_zh(s)
        except Rejected as e:
            if several and not e.final:
                return e
            raise

    def _parse_zh(self, s: str) -> _Parse | None:
        s = _strip_zh(s)
        if not s or "它" in s or "它们" in s:
            return None
        p = _Parse()
        lex = self._lex
        if s.startswith(L.NEGATIONS_ZH):
            raise Rejected("that is not something to do (a negation)")
        for words, reason in L.OUT_OF_SCOPE_ZH:
            if any(w in s for w in words) and not any(n in s for n, _ in lex.cjk_devices):
                raise Rejected(reason)
        if any(w in s for w in L.SCHEDULE_WORDS_ZH):
            raise Rejected("I can't schedule actions for later yet; ask when you want it")
        if "咖啡" in s and not any("咖啡" in n for n, _ in lex.cjk_devices):
            raise Rejected("I can't make coffee: there is no coffee machine in the home")
        if "咖啡" in s and not any(w in s for w in ("关", "停")) and not any(
                n in s for n, _ in lex.cjk_devices if "咖啡" in n):
            machine = _unique(d for n, d in lex.cjk_devices if "咖啡" in n)
            p.partial_devices = machine[:1]
            p.action, p.explicit_verb, p.imperative = "on", True, True
            return p  # "来杯咖啡", "煮杯咖啡": the coffee machine on

        rest = s
        for name, dev in sorted(lex.cjk_devices, key=lambda x: -len(x[0])):
            if name in rest:
                p.devices.append(dev)
                rest = rest.replace(name, "＃")
        for name, sc in sorted(lex.cjk_scenes, key=lambda x: -len(x[0])):
            if name in rest:
                p.scene = sc
                rest = rest.replace(name, "＃")
        for name, a in sorted(lex.cjk_areas, key=lambda x: -len(x[0])):
            if name in rest:
                p.areas.append(a)
                rest = rest.replace(name, "＠")
        for name, f in sorted(lex.cjk_floors, key=lambda x: -len(x[0])):
            if name in rest:
                p.floor = f
                rest = rest.replace(name, "＠")
        for w in L.HERE_WORDS_ZH:
            if w in rest and (w != "这" or "这么" not in rest):
                p.here = True
                rest = rest.replace(w, "＠")
                break
        for w in L.ALL_WORDS_ZH:
            if w in rest:
                p.home = True
                p.everything = w in ("一切",)
                rest = rest.replace(w, "＠")
        for w, kind in L.KIND_WORDS_ZH:
            if w in rest:
                other = sorted({d for n, d in lex.cjk_devices if w in n
                                and self._devices[d].kind.value != kind})
                same = [d for n, d in lex.cjk_devices if w in n
                        and self._devices[d].kind.value == kind]
                if other and not same and kind in ("media_player", "switch"):  # 电视 → plug
                    p.partial_devices.extend(other)
                    rest = rest.replace(w, "＃")
                    continue
                if kind == "climate" and w == "温度":
                    p.action = None
                p.kinds.append(kind)
                p.kind_words.append(w)
                if w in L.COVER_CLASS_ZH:
                    p.cover_class = L.COVER_CLASS_ZH[w]
                rest = rest.replace(w, "＃")
        p.devices = _unique(p.devices)
        p.areas = _unique(p.areas)
        p.imperative = True  # Chinese word order puts the verb anywhere; 把/verb-first alike
        self._door(p)
        leftover = re.sub(r"[＃＠\d%度]|把|的|将|给|打开|开启|开|关闭|关掉|关上|关|一下|都|里|里面|"
                          r"调|到|成|为|设置|设|亮度|一点|点|些|太|好|很|有|暗|亮|颜色|色|拉|上|下|"
                          r"启动|停止|停|暂停|继续|播放|锁|解|请|帮|我|你|现在|马上|立刻|灯|"
                          r"高|低|大|小|多少|少|多|温度|度|吧|吗|了|呢|啊|是|在|"
                          r"最|一半|稍微|熄|灭|起|来|放|升|降|合|换|首|暖|冷|热|白|一|变|光|弄|让|得|更|"
                          + "|".join(map(re.escape, L.COLORS_ZH)) + "|"
                          + "|".join(map(re.escape, L.COLOR_TEMP_ZH)), "", rest)
        leftover = "".join(ch for ch in leftover if _cjk(ch))
        p.zh, p.size = True, len(s)
        if leftover:
            p.unknown = [leftover]  # a sensitive action is then never confident
        if leftover and not p.devices and not p.scene:
            raise Rejected(f"I don't know a device called {leftover!r}", final=False)
        if "东西" in rest or "电器" in rest:
            p.everything = True

        # amounts
        m = re.search(r"(\d+(?:\.\d+)?)(%|度)", rest)
        if m:
            if m.group(2) == "%":
                p.number, p.percent = float(m.group(1)), True
            else:
                p.temperature, p.unit = float(m.group(1)), "C"
        else:
            m = re.search(r"(?:到|成|为|在)(\d+(?:\.\d+)?)", rest)
            if m:
                p.number = float(m.group(1))
        if "最亮" in rest:
            p.number, p.percent = 100.0, True
        elif "最暗" in rest:
            p.number, p.percent = 1.0, True
        elif "一半" in rest:
            p.number, p.percent = 50.0, True
        small = any(w in rest for w in ("一点", "一些", "稍微", "一丢丢", "点儿", "些"))
        big = any(w in rest for w in ("很多", "大大", "多一些", "非常"))
        step = L.STEP_SMALL if small else L.STEP_BIG if big else L.STEP_DEFAULT
        color = next((c for w, c in L.COLORS_ZH.items() if w in rest), None)
        kelvin = next((k for w, k in L.COLOR_TEMP_ZH.items() if w in rest), None)
        kinds = set(p.kinds) | {self._devices[d].kind.value for d in p.devices}
        lightish = "light" in kinds or not kinds

        def act(action: str, explicit: bool = True) -> None:
            p.action = action
            p.explicit_verb = explicit

        # questions
        question = any(w in rest for w in ("多少", "几度", "吗", "怎么样", "是不是", "有没有",
                                           "？", "?", "什么"))
        if question:
            if ("climate" in kinds and any(w in rest for w in ("多少", "几度", "怎么样", "什么"))) \
                    or "几度" in rest:
                act("get_temp")
                if "climate" not in p.kinds:
                    p.kinds.append("climate")
                return p
            if p.has_target() and ("开着" in rest or "关着" in rest or "锁" in rest
                                   or "吗" in rest):
                act("get_state")
                return p
            raise Rejected("a question Hearth cannot answer")
        if "温度" in p.kind_words and p.temperature is None and p.number is None \
                and not any(w in rest for w in ("调", "设", "升", "降", "高", "低")):
            act("get_temp")
            return p
        # vacuum
        if "vacuum" in kinds or "打扫" in rest or "清扫" in rest:
            if not self._vacuums():
                raise Rejected("there is no robot vacuum in the home")
            if any(w in rest for w in ("回", "充电")):
                act("vreturn")
            elif "暂停" in rest:
                act("vpause")
            elif any(w in rest for w in ("停", "关")):
                act("vstop")
            else:
                act("vstart", any(w in rest for w in ("开始", "打扫", "清扫", "启动", "开")))
            if "vacuum" not in p.kinds:
                p.kinds.append("vacuum")
            return p
        # locks
        if "解锁" in rest or "开锁" in rest or ("开门" in rest and "lock" in kinds):
            act("unlock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
            return p
        if any(w in s for w in ("锁上", "锁门", "上锁", "锁好", "把门锁", "锁起来")):
            act("lock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
            return p
        if p.scene and not p.devices:
            act("scene", any(w in rest for w in ("打开", "开启", "启动", "切换", "进入", "开")))
            return p
        # media
        if "静音" in rest:
            act("volume")
            p.number, p.percent = 0.0, True
            p.kinds.append("media_player")
            return p
        if "media_player" in kinds or any(w in rest for w in ("下一首", "暂停", "继续播放",
                                                              "切歌", "上一首")):
            if any(w in rest for w in ("下一首", "下一曲", "切歌", "换一首")):
                act("next")
            elif "音量" in p.kind_words or "大声" in rest or "小声" in rest:
                if p.number is not None:
                    act("volume")
                else:
                    up = any(w in rest for w in ("大", "高", "加", "升"))
                    down = any(w in rest for w in ("小", "低", "减", "降"))
                    if up == down:
                        raise Rejected("louder or quieter? say a level, such as 'volume 30'")
                    amount = 20 if big and not small else 10
                    p.vstep = amount if up else -amount
                    act("vstep")
            elif any(w in rest for w in ("暂停", "停", "关")):
                act("pause")
            elif any(w in rest for w in ("播放", "继续", "开", "放")):
                act("resume")
            if p.action is not None:
                if "media_player" not in p.kinds:
                    p.kinds.append("media_player")
                    p.kind_from_action = True
                return p
        # temperature
        climate = "climate" in kinds
        if p.temperature is not None or (climate and p.number is not None):
            p.temperature = p.temperature if p.temperature is not None else p.number
            act("temp")
            if "climate" not in p.kinds:
                p.kinds.append("climate")
            return p
        if any(w in rest for w in ("太冷", "好冷", "有点冷", "冷死", "太热", "好热", "有点热",
                                   "热死", "冷", "热")) and not color and kelvin is None:
            if climate or not p.has_target():
                self._climate_here(p, "冷" in rest, indirect=True)
                return p
        if climate and any(w in rest for w in ("调高", "调低", "升高", "降低", "高一点",
                                               "低一点", "暖和", "凉快")):
            self._climate_here(p, any(w in rest for w in ("高", "升", "暖")), indirect=False,
                               step=3.0 if big else 1.0)
            return p
        # covers
        if "cover" in kinds:
            if p.number is not None and p.percent:
                act("position")
            elif any(w in rest for w in ("打开", "拉开", "开", "升起", "升")):
                act("open", any(w in rest for w in ("打开", "拉开", "开启", "升起")))
            elif any(w in rest for w in ("关", "拉上", "合上", "放下", "降")):
                act("close")
            return p if p.action else None
        # colour
        if color and lightish:
            p.color = color
            act("set")
            _light_kind(p)
            return p
        if kelvin is not None and lightish:
            p.kelvin = kelvin
            act("set")
            _light_kind(p)
            return p
        # brightness
        dim = any(w in rest for w in ("调暗", "暗一点", "暗一些", "暗点", "调低亮度", "降低亮度",
                                      "亮度调低", "亮度调小", "亮度降低", "调低", "低一点",
                                      "调小亮度", "暗些", "弄暗", "变暗", "暗", "小一点"))
        bright = any(w in rest for w in ("调亮", "亮一点", "亮一些", "亮点", "调高亮度",
                                         "亮度调高", "亮度调大", "亮度提高", "调高", "高一点",
                                         "提高亮度", "调大亮度", "更亮", "亮些", "弄亮",
                                         "变亮", "大一点"))
        too_dark = any(w in rest for w in ("太暗", "好暗", "很暗", "有点暗", "看不见", "看不清",
                                           "黑", "暗了"))
        too_bright = any(w in rest for w in ("太亮", "好亮", "很亮", "刺眼", "晃眼"))
        if lightish and (p.number is not None and (p.percent or "亮度" in rest)):
            p.brightness = max(0, min(100, int(p.number)))
            act("set")
            _light_kind(p)
            return p
        if lightish and too_bright:
            p.step, p.indirect = -step, True
            act("step", False)
            _light_kind(p)
            return p
        if lightish and too_dark and not any(w in rest for w in ("调暗", "暗一点", "暗点")):
            p.indirect = True
            act("on", False)
            _light_kind(p)
            return p
        if lightish and (dim or bright) and not (dim and bright):
            p.step = -step if dim else step
            act("step")
            _light_kind(p)
            return p
        # on / off
        if not p.has_target() and not (p.areas or p.here or p.home or p.floor):
            return None  # "把后门打开": on/off of something the home does not name
        off = any(w in rest for w in ("关", "熄", "灭", "停"))
        on = any(w in rest for w in ("开", "启动", "点亮", "亮起"))
        if off and not ("打开" in rest or "开启" in rest):
            act("off")
            return p
        if on:
            act("on")
            return p
        return None

    # -- from a parse to intents -------------------------------------------------------------

    def _intents(self, p: _Parse, text: str, lang: str, speaker_area: str | None) -> list[Intent]:
        action = p.action
        assert action is not None
        if action == "scene":
            assert p.scene is not None
            conf = CONF_EXPLICIT if p.explicit_verb else CONF_AREA - GUESS_PENALTY
            name = next(s.name for s in self.config.scenes if s.id == p.scene)
            return [self._intent(IntentName.SCENE_ACTIVATE, Slots(scene=p.scene), conf,
                                 f"scene {name!r}", text, lang, p)]
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
        explicit = p.devices or p.partial_devices
        if explicit:
            ids = sorted(set(explicit))
            conf = CONF_EXPLICIT - (GUESS_PENALTY if p.partial_devices and not p.devices else 0)
            kinds: dict[DeviceKind, list[str]] = {}
            for i in ids:
                kinds.setdefault(self._devices[i].kind, []).append(i)
            covered = {self._devices[i].area for i in ids}
            for other in p.areas:  # "the kitchen and living room lights"
                if other not in covered:
                    for dk in list(kinds):
                        kinds[dk].extend(self._select(dk.value, p, other))
            if p.kinds and p.devices:  # "the speaker and the lights": add kind words' devices
                extra = {k for k in p.kinds if k not in {kk.value for kk in kinds}}
                for k in extra:
                    sel = self._select(k, p, p.areas[0] if p.areas else None)
                    if sel:
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
        # where
        area: str | None = None
        conf = CONF_AREA
        if p.areas:
            area = p.areas[0]
            where = "in the " + " and ".join(self._area_names.get(a, a) for a in p.areas)
        elif p.floor is not None:
            where = f"on {next(f.name for f in self.config.floors if f.id == p.floor)}"
        elif p.here and not p.home:
            if speaker_area is None:
                raise Rejected("I don't know which room you're in; say the room")
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
                raise Rejected(f"there is no {noun} in the home")
            place = where.replace(" (where you are)", "")
            raise Rejected(f"there is no {noun} {place}")
        if len(groups) > 1 and p.action not in ("on", "off"):
            groups = groups[:1]
        return groups, where, conf

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
            said = set(p.kinds) | {self._devices[d].kind.value for d in p.devices}
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
        return conf - UNEXPLAINED_WEIGHT * len(p.unknown) / max(1, p.size)

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
        what = f"{noun}s {where} ({names})" if not (p.devices or p.partial_devices) else where
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
        return self._intent(name, Slots(**{k: v for k, v in slots.items() if v is not None}),
                            conf, reason, text, lang, p)

    def _sensitive(self, name: str, ids: list[str], conf: float, p: _Parse) -> float:
        threshold = self.config.security.sensitive_min_confidence
        explicit_target = bool(p.devices) or (bool(p.kinds) and len(ids) == 1
                                               and not p.kind_from_action and not p.everything)
        explicit = p.explicit_verb and explicit_target and not p.indirect and p.imperative \
            and not p.unknown
        touches_sensitive = any(self._devices[i].sensitive for i in ids)
        if name in SENSITIVE_INTENTS or touches_sensitive:
            # said outright ("unlock the front door", "open the garage" with one garage
            # door): as confident as the dispatcher requires; else never enough to open
            if explicit or (name == IntentName.LOCK and p.imperative and not p.unknown):
                return conf if name == IntentName.LOCK else max(conf, threshold)
            return min(conf, max(0.0, threshold - SENSITIVE_MARGIN))
        return conf

    def _intent(self, name: str, slots: Slots, conf: float, reason: str, text: str,
                lang: str, p: _Parse) -> Intent:
        return Intent(name=name, slots=slots, confidence=round(max(0.0, min(1.0, conf)), 3),
                      source="robust", reason=reason, text=text, language=lang)


# -- helpers -----------------------------------------------------------------------------------


#: "I left the lights on", "my neighbour turned off his lights": told, not asked.
_SUBJECTS = frozenset({"i", "he", "she", "they", "we", "someone", "somebody", "my", "his",
                       "her", "their", "our", "you"})
_PAST_VERBS = frozenset({"left", "turned", "switched", "forgot", "did", "didnt", "opened",
                         "closed", "locked", "unlocked", "dimmed", "neighbour", "neighbor",
                         "wife", "husband", "son", "daughter", "kids", "friend", "dad", "mum",
                         "mom", "brother", "sister", "never", "always", "usually", "often"})

lex_play_ok = frozenset({"play", "some", "the", "a", "me", "my", "music", "again", "on", "in",
                         "it", "resume", "continue", "please", "now", "playing", "keep",
                         "start", "unpause", "to"})


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


def _degrees(tset: set[str], by_amount: int | None, small: bool, big: bool) -> float:
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


def _split_commands(tokens: list[str]) -> list[list[str]]:
    """Split at "and"/"then" where both sides carry an action word."""
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
            if any(w in _ACTION_WORDS for w in cur) and rest and (
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


# -- Chinese helpers ---------------------------------------------------------------------------


def _zh_number(s: str) -> int | None:
    if not s:
        return None
    if s.isdigit():
        return int(s)
    total, cur = 0, 0
    for ch in s:
        if ch in L.DIGITS_ZH:
            cur = L.DIGITS_ZH[ch]
        elif ch in L.UNITS_ZH:
            unit = L.UNITS_ZH[ch]
            total += (cur or 1) * unit
            cur = 0
        else:
            return None
    return total + cur


_ZH_NUM = "零〇一二两三四五六七八九十百"


def _normalize_zh(text: str) -> str:
    s = re.sub(r"\s+", "", text.lower())
    s = s.replace("％", "%")
    s = re.sub(rf"百分之([{_ZH_NUM}\d]+)",
               lambda m: f"{_zh_number(m.group(1))}%" if _zh_number(m.group(1)) is not None
               else m.group(0), s)
    s = re.sub(rf"([{_ZH_NUM}]+)(度|%|摄氏度)",
               lambda m: f"{_zh_number(m.group(1))}{'度' if '度' in m.group(2) else '%'}"
               if _zh_number(m.group(1)) is not None else m.group(0), s)
    s = re.sub(rf"(到|成|为|在|音量)([{_ZH_NUM}]+)(?!点|下|些|半|个)",
               lambda m: f"{m.group(1)}{_zh_number(m.group(2))}"
               if _zh_number(m.group(2)) is not None else m.group(0), s)
    s = s.replace("摄氏度", "度")
    return s


def _strip_zh(s: str) -> str:
    s = s.strip("，。！？!?,. ")
    changed = True
    while changed:
        changed = False
        for w in L.WAKE_PREFIXES_ZH:
            if s.startswith(w) and len(s) > len(w):
                s = s[len(w):].lstrip("，,、 ")
                changed = True
    for w in L.POLITE_ZH:
        if w in ("了", "吧", "呢", "啊", "呀", "哦", "嘛"):
            continue
        s = s.replace(w, "")
    s = re.sub(r"[吧呢啊呀哦嘛]+$", "", s)
    s = re.sub(r"(?<=[关开])了", "", s)
    return s.strip("，。！？!?,. ")


def _zh_has_verb(s: str) -> bool:
    return any(w in s for w in ("开", "关", "调", "设", "锁", "暂停", "播放", "拉"))


def devices_of(config: HomeConfig, ids: Sequence[str]) -> list[Device]:
    wanted = set(ids)
    return [d for d in config.devices if d.id in wanted]
