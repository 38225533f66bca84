"""The recognizer: text (plus the previous intent) → :class:`~intents.schema.Recognition`.

Tiers, cheapest first, the first that produces a resolved intent wins:

1. ``custom``: the user's custom intent files (they may override built-in phrasings);
2. ``grammar``: hassil with home-assistant-intents data and Hearth's templates
   (``intents/data/sentences_<lang>.yaml``); "it"/"again" sentences use the previous intent and
   are reported with source ``context``;
3. ``robust``: everyday phrasings parsed by words rather than templates (``intents/robust.py``):
   verbs and particles anywhere, loose names, relative changes, "here", indirect requests;
4. ``fuzzy``: unknown words repaired to the nearest known word, then the grammar again;
5. rejection: ``Recognition(intent=None, reason=...)``.

A :class:`Recognizer` is immutable after construction except for its lazily loaded sentence
data, which is guarded by a lock: sessions may call :meth:`Recognizer.recognize` from worker
threads concurrently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hassil import Intents, recognize_all

from devices.registry import HomeConfig, load_config, load_demo_config
from intents.custom import (
    CustomAction,
    CustomIntentError,
    CustomIntentFile,
    load_custom_intents,
    snake_case,
)
from intents.fuzzy import (
    COMMAND_WORDS,
    FUZZY_BASE_CONFIDENCE,
    Repair,
    known_words,
    repair,
    repair_cjk,
)
from intents.grammar import (
    GrammarMatch,
    GrammarTier,
    build_slot_lists,
    language_skip_words,
    prepare,
)
from intents.languages import has_cjk, normalize_language, shipped_languages
from intents.resolve import WHOLE_HOME, Resolved, ResolveError, Resolver
from intents.robust import RobustTier
from intents.robust_base import _cjk, plausible_setpoint
from intents.schema import ROOM_UNKNOWN, Intent, IntentName, Recognition, Slots

_LOGGER = logging.getLogger(__name__)

#: Confidence of an exact template match that named its target.
CONF_EXACT = 1.0
#: ... whose target is the area the caller is in (satellite area).
CONF_CALLER_AREA = 0.95
#: ... that names no place at all, so we act on the whole home ("turn on the lights").
CONF_HOME_WIDE_IMPLIED = 0.85
#: ... that uses the previous intent ("turn it off").
CONF_CONTEXT = 0.9
#: Subtracted when several readings were equally good and we picked one.
AMBIGUITY_PENALTY = 0.1
#: How far below the security threshold fuzzy sensitive results are capped.
SENSITIVE_FUZZY_MARGIN = 0.3
#: Custom intents matched exactly.
CONF_CUSTOM = 0.98
#: A robust reading at least this sure may use a word the custom intents also use.
CONF_ROBUST_OWN_WORDS = 0.8

_QUESTION_WORDS = frozenset(
    {"what", "what's", "why", "who", "when", "where", "how", "tell", "is", "are", "do", "does",
     "can", "could", "should", "will", "would"}
)

#: Words that are never part of a device name in a rejection message.
_FILLER_WORDS = frozenset({"then", "also", "so", "now", "okay", "ok", "thanks", "please"})

_SENSITIVE_FUZZY = frozenset({IntentName.LOCK, IntentName.UNLOCK})
#: A timer read outside the grammar: its words are plain ("timer", a length), so it is sure.
CONF_TIMER_FALLBACK = 0.9


@dataclass
class _Scored:
    resolved: Resolved
    match: GrammarMatch
    confidence: float
    source: str
    rank: tuple[int, ...]

    def key(self) -> tuple[str, tuple[str, ...], str]:
        s = self.resolved.slots
        return (self.resolved.name, tuple(s.device_ids), s.scene or "")


class Recognizer:
    """Recognizes intents for one home. See the module docstring for the tiers."""

    def __init__(
        self,
        config: HomeConfig,
        *,
        custom_intent_files: Sequence[str | Path] = (),
        hearth_templates: bool = True,
        robust: bool = True,
    ) -> None:
        """``hearth_templates=False`` leaves out Hearth's own sentence templates (only the
        home-assistant-intents data): for measuring what they add, not for production.
        ``robust=False`` leaves out the robust tier (for measuring it)."""
        self.config = config
        self._resolver = Resolver(config)
        self._grammar = GrammarTier(config, hearth_templates=hearth_templates)
        self._robust: RobustTier | None = RobustTier(config, self._resolver) if robust else None
        self._custom_files: list[CustomIntentFile] = [
            load_custom_intents(p) for p in [*config.custom_intents, *custom_intent_files]
        ]
        #: custom intent name → MQTT action, for the dispatcher
        self.custom_actions: dict[str, CustomAction] = {}
        for f in self._custom_files:
            self.custom_actions.update(f.actions)
        self._custom_intents: dict[str, list[tuple[CustomIntentFile, Intents]]] = {}
        self._custom_lists = build_slot_lists(config)
        for f in self._custom_files:
            try:
                lang = normalize_language(f.language)
            except ValueError as e:
                raise CustomIntentError(str(e), path=f.path) from e
            data = f.data
            if "skip_words" not in data:
                # "please ..." should work for custom sentences as for built-in ones
                data = {**data, "skip_words": language_skip_words(lang)}
            self._custom_intents.setdefault(lang, []).append(
                (f, prepare(Intents.from_dict(data)))
            )
        self._vocab = known_words(config, self._custom_spellings())
        #: Words of the custom intents' lists ("latte", "oat milk"), by language: a sentence
        #: with one of them belongs to the custom intents (and the decoder's repairs of
        #: them), never to the robust tier's guesses ("make me a 12oz latte" is an order,
        #: not "switch on the coffee maker").
        home_words = {w.casefold() for s in self._all_spellings(custom=False)
                      for w in re.findall(r"\w+", s)}
        self._custom_words: dict[str, frozenset[str]] = {}
        #: All words of the custom lists, home words included ("coffee"): a robust guess that
        #: reaches a device only through such a word ("light roost coffee" -> the coffee
        #: maker) is an order the custom intents could not read, not a device command.
        self._custom_all_words: dict[str, frozenset[str]] = {}
        for f in self._custom_files:
            lang = normalize_language(f.language)
            words = {w.casefold() for s in _file_spellings(f) for w in re.findall(r"\w+", s)}
            self._custom_all_words[lang] = self._custom_all_words.get(
                lang, frozenset()) | frozenset(w for w in words if len(w) > 2)
            self._custom_words[lang] = self._custom_words.get(lang, frozenset()) | frozenset(
                w for w in words - home_words if len(w) > 2 and not w.isdigit())

    @classmethod
    def from_config_path(
        cls, path: str | Path | None, *, custom_intent_files: Sequence[str | Path] = ()
    ) -> Recognizer:
        """Build from a config file, or from the demo home when ``path`` is None. Raises
        :class:`~devices.registry.ConfigError` (and ``CustomIntentError``) on bad files."""
        config = load_demo_config() if path is None else load_config(path)
        return cls(config, custom_intent_files=custom_intent_files)

    # -- public API ------------------------------------------------------------------------

    def recognize(self, text: str, *, language: str | None = None,
                  context: Intent | None = None, area: str | None = None) -> Recognition:
        """Recognize one utterance (see :meth:`_recognize`); a thermostat setpoint no home
        would take ("set the heat to 2 degrees": a misheard number) is refused whichever tier
        read it."""
        rec = self._recognize(text, language=language, context=context, area=area)
        i = rec.intent
        # 度 in Chinese is Celsius ("暖气调到五十度" is no 50 °F)
        zh = (language or "").lower().startswith("zh") or any(_cjk(ch) for ch in text)
        if i is not None and i.name == IntentName.CLIMATE_SET_TEMPERATURE \
                and i.slots.temperature is not None \
                and not plausible_setpoint(i.slots.temperature,
                                           i.slots.temperature_unit or ("C" if zh else None)):
            return Recognition(intent=None, reason=(
                f"no intent: {i.slots.temperature:g} degrees is not a temperature I would set; "
                "say one between 5 and 35 degrees"))
        return rec

    def _recognize(self, text: str, *, language: str | None = None,
                   context: Intent | None = None, area: str | None = None) -> Recognition:
        """Recognize one utterance.

        ``language``: any spelling (``zh-cn``, ``zh-CN``, ``en-US``); when None, zh-CN if the
        text has CJK characters, else the config's language. ``context``: the previous intent
        of this session, used by "turn it off" / "turn it back on" / "dim it". ``area``: the
        area id of the device that heard the utterance (satellite), used by "turn on the
        lights" without a place; without it such sentences mean the whole home.
        """
        stripped = text.strip()
        if not stripped:
            return Recognition(intent=None, reason="empty text")
        try:
            lang = self._pick_language(stripped, language)
        except ValueError as e:
            return Recognition(intent=None, reason=str(e))
        if area is not None and area not in {a.id for a in self.config.areas}:
            area = None

        custom = self._recognize_custom(stripped, lang)
        if custom is not None:
            return custom

        scored, failures = self._grammar_candidates(stripped, lang, area, context)
        if scored:
            return self._finish(scored, stripped, lang)
        timer = self._fallback_timer(stripped, lang)
        if timer is not None:
            return timer

        robust = None
        final = bool(failures and _HERE_FAILURE in failures[0])
        custom_words = self._custom_words.get(lang, frozenset())
        owned = bool(custom_words) and any(
            w.casefold() in custom_words for w in re.findall(r"\w+", stripped))
        if self._robust is not None and not final and not owned:
            robust, final = self._robust.analyze(
                stripped, lang, area=area,
                follow_ids=context.slots.device_ids if context is not None else ())
            if robust is not None and robust.intent is not None:
                if not self._custom_order_guess(robust.intent, stripped, lang):
                    return robust
                robust = Recognition(intent=None, reason=(
                    "no intent: that sounds like an order I could not read in full; say it again"))
                final = True

        if not final:  # an out-of-scope request is not a misspelt command
            fuzzy = self._recognize_fuzzy(stripped, lang, area, context)
            if fuzzy is not None:
                return fuzzy

        if failures and (robust is None or _HERE_FAILURE in failures[0]):
            return Recognition(intent=None, reason=f"no intent: {failures[0]}",
                               needs_area=_HERE_FAILURE in failures[0] and area is None)
        if robust is not None:
            return robust
        return Recognition(intent=None, reason=self._rejection_reason(stripped, lang))

    def _fallback_timer(self, text: str, lang: str) -> Recognition | None:
        """A timer said in a way Home Assistant's sentences do not have ("set a pasta timer
        for 8 minutes", 设一个五分钟的定时器), read by :func:`intents.timers.fallback_timer`."""
        from intents.robust_text import normalize_en
        from intents.timers import TimerError, fallback_timer

        cjk = has_cjk(text)
        said = text if cjk else " ".join(normalize_en(text, correct=False))
        try:
            found = fallback_timer(said, lang)
        except TimerError as e:
            return Recognition(intent=None, reason=f"no intent: {e}")
        if found is None:
            return None
        name, slots, reason = found
        intent = Intent(name=name, slots=slots, confidence=CONF_TIMER_FALLBACK, source="robust",
                        reason=reason, text=text, language=lang)
        return Recognition(intent=intent, reason=reason)

    def _custom_order_guess(self, intent: Intent, text: str, lang: str) -> bool:
        """A robust guess (not a confident one) whose device is named only by words of the
        custom intents' lists: "a light roast coffee" with coffee orders loaded."""
        words = self._custom_all_words.get(lang)
        if not words or intent.confidence >= CONF_ROBUST_OWN_WORDS:
            return False
        said = {w.casefold() for w in re.findall(r"\w+", text)}
        by_id = {d.id: d for d in self.config.devices}
        for device_id in intent.slots.device_ids:
            device = by_id.get(device_id)
            if device is None:
                continue
            names = {w.casefold() for n in (device.name, *device.aliases)
                     for w in re.findall(r"\w+", n)}
            if said & names & words:
                return True
        return False

    def vocabulary(self, language: str = "en") -> list[str]:
        """Names and aliases of devices, areas, floors and scenes plus custom list values in
        ``language``'s script (CJK spellings for zh, the others otherwise), for biasing speech
        recognition. Sorted, without duplicates."""
        try:
            lang = normalize_language(language)
        except ValueError:
            lang = language
        want_cjk = lang.lower().startswith(("zh", "ja", "ko"))
        out = {s for s in self._all_spellings() if has_cjk(s) == want_cjk}
        return sorted(out, key=lambda s: (s.lower(), s))

    @property
    def custom_files(self) -> tuple[CustomIntentFile, ...]:
        """The loaded custom intent files (config's first, then the constructor's)."""
        return tuple(self._custom_files)

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language with sentence data (package spelling)."""
        return shipped_languages()

    # -- tiers -----------------------------------------------------------------------------

    def _pick_language(self, text: str, language: str | None) -> str:
        if language:
            return normalize_language(language)
        if has_cjk(text):
            return "zh-CN"
        return normalize_language(self.config.language or "en")

    def _recognize_custom(self, text: str, lang: str) -> Recognition | None:
        for f, intents in self._custom_intents.get(lang, []):
            best = None
            for result in recognize_all(text, intents, slot_lists=self._custom_lists,
                                        language=lang):
                score = (sum(1 for e in result.entities_list if e.is_wildcard),
                         -result.text_chunks_matched)
                if best is None or score < best[0]:
                    best = (score, result)
            if best is None:
                continue
            result = best[1]
            slots: dict[str, str | int | float | bool] = {}
            for ent in result.entities_list:
                slots[snake_case(ent.name)] = _slot_value(ent.value)
            described = ", ".join(f"{k}={v}" for k, v in slots.items())
            name = result.intent.name
            intent = Intent(
                name=name,
                slots=Slots(custom=slots),
                confidence=CONF_CUSTOM,
                source="custom",
                reason=f"custom intent {name} ({Path(f.path).name})"
                + (f": {described}" if described else ""),
                text=text,
                language=lang,
            )
            return Recognition(intent=intent, reason=intent.reason)
        return None

    def _grammar_candidates(
        self, text: str, lang: str, area: str | None, context: Intent | None
    ) -> tuple[list[_Scored], list[str]]:
        context_ids = list(context.slots.device_ids) if context is not None else []
        scored: list[_Scored] = []
        failures: list[str] = []
        here = area is None and says_here(text)
        for match in self._grammar.matches(text, lang, area=area):
            if here and match.area_from_context and "name" not in match.values:
                # "the lights in here" with no known room must not mean the whole home
                failures.append(_HERE_FAILURE)
                continue
            if _bare_level(text, match):
                # "the kitchen one" answers "which light?"; it does not set 1 % brightness
                continue
            try:
                resolved = self._resolver.resolve(match.intent, match.values,
                                                  context_device_ids=context_ids)
            except ResolveError as e:
                failures.append(str(e))
                continue
            said_area, floor = match.values.get("area"), match.values.get("floor")
            floors = {a.id: a.floor for a in self.config.areas}
            if "name" in match.values and resolved.slots.device_ids and (all(
                    floors.get(self.config.device(d).area or "") != floor
                    for d in resolved.slots.device_ids) if floor else not match.area_from_context
                    and said_area in floors and all(self.config.device(d).area != said_area
                                                    for d in resolved.slots.device_ids)):
                # "turn off the office fan" where the fan is in the bedroom: not that fan
                failures.append(f"the {match.texts.get('name', 'device')} is not "
                                + (f"on {match.texts.get('floor', floor)}" if floor else
                                   f"in the {match.texts.get('area', said_area)}"))
                continue
            scored.append(self._score(resolved, match, area))
        return scored, failures

    def _score(self, resolved: Resolved, match: GrammarMatch, area: str | None) -> _Scored:
        named = "name" in match.values
        from_context = resolved.from_context
        implied_home = match.area_from_context and match.values.get("area") == WHOLE_HOME
        if from_context:
            conf, source = CONF_CONTEXT, "context"
        elif implied_home:
            conf, source = CONF_HOME_WIDE_IMPLIED, "grammar"
        elif match.area_from_context and not named:
            conf, source = CONF_CALLER_AREA, "grammar"
        else:
            conf, source = CONF_EXACT, "grammar"
        ids = resolved.slots.device_ids
        near = area is not None and bool(ids) and all(
            self._resolver.device(i).area == area for i in ids
        )
        rank = (
            0 if named else 1,  # a device named outright beats an area reading
            match.wildcards,
            -match.literal_chunks,
            0 if near else 1,  # same name twice: the one in the caller's area
            1 if match.area_from_context else 0,
        )
        return _Scored(resolved, match, conf, source, rank)

    def _finish(
        self, scored: list[_Scored], text: str, lang: str, *, fuzzy: Repair | None = None
    ) -> Recognition:
        scored.sort(key=lambda s: (s.rank, s.key()))
        best = scored[0]
        others: dict[tuple[str, tuple[str, ...], str], _Scored] = {}
        for s in scored[1:]:
            if s.key() != best.key() and s.key() not in others:
                others[s.key()] = s
        conf = best.confidence
        reason = best.resolved.reason
        tied = [s for s in others.values() if s.rank == best.rank]
        if tied:
            conf -= AMBIGUITY_PENALTY
        source = best.source
        if fuzzy is not None:
            conf = min(conf, FUZZY_BASE_CONFIDENCE) * fuzzy.similarity
            source = "fuzzy"
            reason = f"heard as {fuzzy.text!r} ({fuzzy.describe()}): {reason}"
            conf = self._cap_sensitive(best.resolved, conf)
        else:
            reason = f"{'our template' if best.match.ours else 'template'}: {reason}"
        alternatives: list[Intent] = []
        if others:
            shown = list(others.values())[:3]
            reason += "; also possible: " + "; ".join(s.resolved.reason for s in shown)
            for s in shown:
                alternatives.append(self._intent(s, text, lang, s.confidence - 0.2, s.source,
                                                 s.resolved.reason))
        intent = self._intent(best, text, lang, conf, source, reason)
        _LOGGER.debug("%r -> %s %s (%s, %.2f)", text, intent.name, intent.slots.device_ids,
                      source, intent.confidence)
        return Recognition(intent=intent, reason=reason, alternatives=alternatives)

    def _intent(self, s: _Scored, text: str, lang: str, conf: float, source: str,
                reason: str) -> Intent:
        return Intent(
            name=s.resolved.name,
            slots=s.resolved.slots,
            confidence=round(max(0.0, min(1.0, conf)), 3),
            source=source,  # type: ignore[arg-type]
            reason=reason,
            text=text,
            language=lang,
        )

    def _cap_sensitive(self, resolved: Resolved, conf: float) -> float:
        """A repaired (guessed) word must never carry enough confidence for a sensitive
        action: lock/unlock, or moving a cover or touching any device marked sensitive."""
        touches_sensitive = any(
            self._resolver.device(i).sensitive for i in resolved.slots.device_ids
        )
        # Scenes may lock doors (the demo's "good night" does), so they count as sensitive.
        sensitive = (
            resolved.name in _SENSITIVE_FUZZY
            or resolved.name == IntentName.SCENE_ACTIVATE
            or touches_sensitive
        )
        if not sensitive:
            return conf
        cap = self.config.security.sensitive_min_confidence - SENSITIVE_FUZZY_MARGIN
        return min(conf, max(0.0, cap))

    def _recognize_fuzzy(
        self, text: str, lang: str, area: str | None, context: Intent | None
    ) -> Recognition | None:
        if has_cjk(text):
            fixed = repair_cjk(text, self._all_spellings())
        else:
            fixed = repair(text, self._vocab)
        if fixed is None:
            return None
        scored, _ = self._grammar_candidates(fixed.text, lang, area, context)
        if not scored:
            return None
        return self._finish(scored, text, lang, fuzzy=fixed)

    def _rejection_reason(self, text: str, lang: str) -> str:
        words = text.lower().split()
        if text.rstrip().endswith(("?", "？")) or (words and words[0] in _QUESTION_WORDS):
            return "no intent: a question Hearth cannot answer"
        from intents.robust import normalize_en

        if not has_cjk(text) and not normalize_en(text):
            return "no intent: no command heard"
        known = {n.casefold() for n in self._all_spellings()}
        for candidate in self._grammar.unknown_names(text, lang):
            unknown = _strip_command_words(candidate)
            if any(known_name in candidate.casefold() for known_name in known):
                continue  # a real name was heard; the sentence around it is what failed
            if unknown and unknown.casefold() not in known and _name_like(unknown):
                return f"no intent: I don't know a device, room or scene called {unknown!r}"
        return "no intent: I didn't understand that as a command for the home"

    # -- vocabulary ----------------------------------------------------------------------

    def _custom_spellings(self) -> list[str]:
        out: list[str] = []
        for f in self._custom_files:
            out += _file_spellings(f)
        return out

    def _all_spellings(self, *, custom: bool = True) -> list[str]:
        out = self.config.spellings()
        if custom:
            out += self._custom_spellings()
        return [s for s in out if s.strip()]


_HERE_FAILURE = f"{ROOM_UNKNOWN}; say the room"
_HERE_EN = re.compile(r"\b(here|this room|my room|this area)\b", re.IGNORECASE)
_HERE_ZH = ("这里", "这儿", "这个房间", "这间", "这边", "屋里", "房间里")


def says_here(text: str) -> bool:
    """The sentence points at the speaker's room ("in here", "this room", "这里")."""
    return bool(_HERE_EN.search(text)) or any(w in text for w in _HERE_ZH)


def _file_spellings(f: CustomIntentFile) -> list[str]:
    """The values of one custom file's lists, expanded."""
    out: list[str] = []
    for body in (f.data.get("lists") or {}).values():
        for v in (body or {}).get("values") or []:
            if isinstance(v, dict):
                v = v.get("in", "")
            if isinstance(v, str):
                out.extend(_expand_simple(v))
    return out


#: Words that make a bare number a level ("kitchen to 50", "kitchen 50 percent").
_LEVEL_WORDS = frozenset({"to", "at", "percent", "per", "cent", "brightness", "bright",
                          "set", "dim", "brighten", "make", "turn", "put", "level"})


def _bare_level(text: str, match: GrammarMatch) -> bool:
    """Home Assistant's "[the] {area} {brightness}" read "the kitchen one" as 1 %: a level
    with no verb, no "to" and no percent sign is no command."""
    if "brightness" not in match.values or "%" in text:
        return False
    words = set(re.findall(r"[a-z]+", text.lower()))
    return not has_cjk(text) and not words & _LEVEL_WORDS


def _strip_command_words(name: str) -> str | None:
    """``"the spaceship"`` → ``"spaceship"``; None when what is left is not name-like (command
    words inside, such as "light and then set", or nothing at all)."""
    stop = COMMAND_WORDS | _FILLER_WORDS
    words = name.split()
    while words and words[0].lower() in stop:
        words.pop(0)
    while words and words[-1].lower() in stop:
        words.pop()
    if not words or any(w.lower() in stop for w in words) or len(words) > 4:
        return None
    return " ".join(words)


def _name_like(words: str) -> bool:
    """Not a greeting, wake name or politeness ("olly", "hey", "please")."""
    from intents.robust_lexicon import GREETINGS_EN, WAKE_WORDS_EN

    toks = words.lower().split()
    return not all(t in WAKE_WORDS_EN or t in GREETINGS_EN or t in _FILLER_WORDS for t in toks)


def _slot_value(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return str(value)


def _expand_simple(template: str) -> list[str]:
    """Spellings of a list value template for the vocabulary: alternatives ``(a|b)`` split,
    optional ``[x]`` parts dropped. Good enough for biasing, not a full expansion."""
    flat = re.sub(r"\[[^\[\]]*\]", "", template)
    m = re.search(r"\(([^()]*)\)", flat)
    if m is None:
        return [" ".join(flat.split())]
    out: list[str] = []
    for alt in m.group(1).split("|"):
        out += _expand_simple(flat[: m.start()] + alt + flat[m.end():])
    return out

