"""Grammar tier: hassil with the home-assistant-intents sentence data plus Hearth's templates.

Slot lists (``name``, ``area``, ``floor``) come from the registry; their values are registry ids
so that a match resolves without another lookup. Sentence data is loaded once per language,
lazily, under a lock (recognition itself only reads it).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hassil import Intents, recognize_all
from hassil.expression import TextChunk
from hassil.intents import SlotList, TextSlotList, TextSlotValue
from hassil.recognize import RecognizeResult

from devices.registry import HomeConfig
from intents.resolve import KIND_TO_HA_DOMAIN, SCENE_PREFIX, WHOLE_HOME

_LOGGER = logging.getLogger(__name__)

#: Results looked at per utterance; the HA data can yield many equivalent parses.
MAX_RESULTS = 40

#: Hearth's own sentence templates, ``sentences_<language>.yaml``.
DATA_DIR = Path(__file__).resolve().parent / "data"

#: Metadata key our own templates carry, so a reason can say which data matched.
HEARTH_METADATA = "hearth"


@dataclass(frozen=True)
class GrammarMatch:
    """One parse of the utterance: an intent name and slot values (ids, numbers)."""

    intent: str
    values: dict[str, Any]
    texts: dict[str, str]
    literal_chunks: int
    wildcards: int
    ours: bool
    #: the ``area`` slot came from the caller's context, not from the words
    area_from_context: bool


def _ours_for(language: str) -> dict[str, Any] | None:
    name = f"sentences_{language}.yaml"
    ref = DATA_DIR / name
    if not ref.is_file():
        return None
    data = yaml.safe_load(ref.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def merge_sentence_data(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a hassil data dict ``extra`` into a copy of ``base`` (intents' data lists append)."""
    out = copy.deepcopy(base)
    for key in ("lists", "expansion_rules"):
        out.setdefault(key, {}).update(extra.get(key) or {})
    intents = out.setdefault("intents", {})
    for name, body in (extra.get("intents") or {}).items():
        intents.setdefault(name, {"data": []})["data"].extend(copy.deepcopy(body["data"]))
    if extra.get("skip_words"):
        out["skip_words"] = list(out.get("skip_words") or []) + list(extra["skip_words"])
    return out


def load_language(language: str, *, hearth_templates: bool = True) -> Intents:
    """Home Assistant's sentences for ``language`` (package spelling) plus ours when we ship
    any (and ``hearth_templates``). Raises ``ValueError`` when the package has no data."""
    from home_assistant_intents import get_intents

    data = get_intents(language)
    if data is None:
        raise ValueError(f"home-assistant-intents has no data for {language!r}")
    ours = _ours_for(language) if hearth_templates else None
    if ours is not None:
        for body in (ours.get("intents") or {}).values():
            for block in body["data"]:
                block.setdefault("metadata", {})[HEARTH_METADATA] = True
        data = merge_sentence_data(data, ours)
    return prepare(Intents.from_dict(data))


def language_skip_words(language: str) -> list[str]:
    """The polite filler words ("please", "can you") of a language's sentence data."""
    from home_assistant_intents import get_intents

    data = get_intents(language) or {}
    return [str(w) for w in data.get("skip_words") or []]


def prepare(intents: Intents) -> Intents:
    """Build hassil's lazily computed parts now, while the caller holds a lock: the index of
    each text slot list is two attributes set one after the other, and a second thread
    reading between them would fail an assertion inside hassil."""
    for slot_list in intents.slot_lists.values():
        if isinstance(slot_list, TextSlotList):
            slot_list.get_candidates("")
    for intent in intents.intents.values():
        for data in intent.data:
            for sentence in data.sentences:
                sentence.get_required_clauses(intents.expansion_rules)
    return intents


def _values(pairs: Sequence[tuple[str, str, dict[str, Any] | None]]) -> TextSlotList:
    seen: set[tuple[str, str]] = set()
    values: list[TextSlotValue] = []
    for text, value, ctx in pairs:
        text = text.strip()
        if not text or (text.casefold(), value) in seen:
            continue
        seen.add((text.casefold(), value))
        values.append(TextSlotValue(text_in=TextChunk(text), value_out=value, context=ctx))
    return TextSlotList(name=None, values=values)


def build_slot_lists(config: HomeConfig) -> dict[str, SlotList]:
    """``name`` (devices and scenes), ``area`` and ``floor`` lists from the registry. Every
    spelling (name and aliases, all languages) is in one list: hassil only matches what the
    sentence template allows, so a Chinese alias never matches an English template."""
    names: list[tuple[str, str, dict[str, Any] | None]] = []
    for d in config.devices:
        ctx = {"domain": KIND_TO_HA_DOMAIN[d.kind]}
        if d.area:
            ctx["area"] = d.area
        for text in (d.name, *d.aliases):
            names.append((text, d.id, ctx))
    for s in config.scenes:
        for text in (s.name, *s.aliases):
            names.append((text, SCENE_PREFIX + s.id, {"domain": "scene"}))
    areas = [(t, a.id, None) for a in config.areas for t in (a.name, *a.aliases)]
    floors = [(t, f.id, None) for f in config.floors for t in (f.name, *f.aliases)]
    lists: dict[str, SlotList] = {
        "name": _values(names),
        "area": _values(areas),
        # hassil raises MissingListError for templates using {floor} when no list exists
        "floor": _values(floors),
    }
    for sl in lists.values():
        assert isinstance(sl, TextSlotList)
        sl.get_candidates("")  # build the index now, not racily on first use
    return lists


class GrammarTier:
    """Matches text against the sentence data of one home. Thread-safe."""

    def __init__(self, config: HomeConfig, *, hearth_templates: bool = True) -> None:
        self._hearth_templates = hearth_templates
        self._lists = build_slot_lists(config)
        self._area_names = {a.id: a.name for a in config.areas}
        self._lock = threading.Lock()
        self._intents: dict[str, Intents] = {}

    def intents_for(self, language: str) -> Intents:
        """Sentence data for a package language code, loaded on first use."""
        with self._lock:
            found = self._intents.get(language)
            if found is None:
                _LOGGER.debug("loading sentence data for %s", language)
                found = load_language(language, hearth_templates=self._hearth_templates)
                self._intents[language] = found
            return found

    def matches(self, text: str, language: str, *, area: str | None) -> Iterator[GrammarMatch]:
        """All parses of ``text`` (at most :data:`MAX_RESULTS`), in hassil's order."""
        intents = self.intents_for(language)
        ctx_area = area or WHOLE_HOME
        ctx_text = self._area_names.get(ctx_area, "")
        results = recognize_all(
            text,
            intents,
            slot_lists=self._lists,
            intent_context={"area": {"value": ctx_area, "text": ctx_text}},
            language=language,
        )
        kept = 0
        for result in results:
            if kept >= MAX_RESULTS:
                break
            if _slot_only(result):
                continue
            kept += 1
            yield _to_match(result, ctx_area)


    def unknown_names(self, text: str, language: str) -> list[str]:
        """For rejection messages: the words that sit where a device name would be in some
        template ("turn on the spaceship" → "spaceship"), shortest first. Slower than
        :meth:`matches` (hassil's unmatched-entity search), so only used after a miss."""
        intents = self.intents_for(language)
        found: set[str] = set()
        results = recognize_all(
            text,
            intents,
            slot_lists=self._lists,
            intent_context={"area": {"value": WHOLE_HOME, "text": ""}},
            language=language,
            allow_unmatched_entities=True,
        )
        whole = " ".join(text.lower().split())
        for i, result in enumerate(results):
            if i >= MAX_RESULTS:
                break
            unmatched = {e.name: getattr(e, "text", "") for e in result.unmatched_entities_list}
            name = " ".join(str(unmatched.get("name", "")).split())
            if not name or set(unmatched) - {"name", "domain"} or name.lower() == whole:
                continue
            found.add(name)
        return sorted(found, key=lambda n: (len(n), n))


_SLOT_ONLY = re.compile(r"^(\[<the>\]\s*)?\{[a-z_:]+\}$")


def _slot_only(result: RecognizeResult) -> bool:
    """A template that is nothing but a name ("[<the>] {name}", meant for scripts in Home
    Assistant): a bare device name is not a command, so "coffee machine" — which is all Whisper
    may catch of "could you switch off the coffee machine" — must not switch it on."""
    sentence = result.intent_sentence
    text = sentence.text if sentence is not None else None
    return text is not None and bool(_SLOT_ONLY.match(text.strip()))


def _to_match(result: RecognizeResult, ctx_area: str) -> GrammarMatch:
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for ent in result.entities_list:
        values[ent.name] = ent.value
        texts[ent.name] = ent.text_clean
    area_ent = result.entities.get("area")
    from_ctx = area_ent is not None and area_ent.value == ctx_area and area_ent.text_span is None
    meta = result.intent_metadata or {}
    return GrammarMatch(
        intent=result.intent.name,
        values=values,
        texts=texts,
        literal_chunks=result.text_chunks_matched,
        wildcards=sum(1 for e in result.entities_list if e.is_wildcard),
        ours=bool(meta.get(HEARTH_METADATA)),
        area_from_context=from_ctx,
    )
