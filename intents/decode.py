"""Hypothesis decoding: a speech recognizer's n-best list → one :class:`Recognition`.

The recognizer parses text; a speech recognizer *mishears* it ("light rose cappuccino",
"ice mocha", "12oz"). :class:`HypothesisDecoder` turns what was heard into a command the
grammar accepts, trying the cheapest and safest readings first and stopping at the first
that parses (:func:`decode`):

1. each hypothesis as heard, best first (a lower-ranked hypothesis that parses beats any
   repair of the top one);
2. number/unit normalization ("12oz" → "12 oz", "50%" → "50 percent"), then numbers
   spelled out, then repetition loops collapsed (lossless rewrites);
3. vocabulary snapping: unknown words → the closest grammar word (a guess);
4. slot respelling (the built-in grammar's restricted alignment): one run of non-frame
   words replaced by the home's device, area, floor or scene name (or colour) that clearly
   sounds most like it ("turn on the round jump" → "… lounge lamp"; :mod:`intents.respell`,
   a guess);
5. grammar alignment (custom intents only): the sentence of the custom grammars closest to
   any hypothesis, accepted only under :data:`intents.align.ACCEPT_PER_WORD` ×
   words + :data:`intents.align.ACCEPT_BASE` (a guess).

``hearth bench accuracy`` runs this decoder as the server builds it (docs/benchmarks.md).

A guessed reading's confidence (:func:`combined_confidence`) is the recognizer's times the
speech recognizer's (``exp(avg_logprob) × (1 − no_speech_prob)``; 1 when no score is given)
times a repair penalty (0.8 for snapped words, the sound similarity of a respelled name times
0.8, the alignment's similarity); the top hypothesis parsed as heard keeps the recognizer's
confidence. A guessed reading (snapped,
respelled, aligned, or a hypothesis other than the first) never carries a sensitive action
at or above ``security.sensitive_min_confidence``: it is capped as the recognizer's fuzzy
tier caps its own repairs.

Pure: no I/O. Thread-safe: a decoder may be shared by every session.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from intents.align import GrammarAligner, build_automaton
from intents.fuzzy import known_words
from intents.languages import has_cjk, normalize_language
from intents.repair import (
    VocabularySnapper,
    collapse_repeats,
    custom_template_texts,
    normalize_transcript,
    spell_numbers,
    template_words,
    words,
)
from intents.respell import (
    MAX_CANDIDATES,
    Respelling,
    SlotRespeller,
    decoy_names,
    grammar_colors,
    grammar_words,
    home_spellings,
)
from intents.schema import Intent, IntentName, Recognition, lacks_capability

if TYPE_CHECKING:
    from intents.recognizer import Recognizer

#: Confidence factor of a reading with snapped (fuzzy-repaired) words.
SNAP_PENALTY: Final = 0.8
#: Floor of the per-token log-probability in the speech confidence (exp(-10) ≈ 0).
MIN_AVG_LOGPROB: Final = -10.0
#: Transforms that guess words the speaker may not have said.
REPAIRS: Final = frozenset({"snapped", "respelled", "aligned"})


#: How far below the bar a lower hypothesis's reading is put when the top one named a thing
#: the home lacks (within ``devices.dispatcher.ASK_BACK_BAND``: asked back).
UNKNOWN_BELOW_BAR: Final = 0.05


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One speech-recognition hypothesis. ``avg_logprob`` is per token, as faster-whisper
    reports it; None when there is no score (typed text, a transcriber without one)."""

    text: str
    avg_logprob: float | None = None


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Which text-side techniques a decode uses (the ASR output is the same for all)."""

    name: str
    n_best: bool = False
    normalize: bool = False
    spell: bool = False
    snap: bool = False
    #: Slot respelling by sound for the built-in grammar (:mod:`intents.respell`); None:
    #: whenever ``snap`` is on (a name respelled by sound is a snapped slot value).
    respell: bool | None = None
    align: bool = False

    @property
    def respells(self) -> bool:
        """Whether slot respelling runs (``respell``, else ``snap``)."""
        return self.snap if self.respell is None else self.respell


#: The decode Hearth ships: every hypothesis, normalization, snapping, alignment.
FULL_DECODE: Final = DecodeOptions(
    "nbest+norm+fuzzy+align", n_best=True, normalize=True, spell=True, snap=True, align=True
)


@dataclass(slots=True)
class Decoded:
    """The outcome of one decode for one utterance."""

    recognition: Recognition
    text: str  # the text that was given to the recognizer last
    hypothesis: int  # index of the n-best hypothesis used
    #: "raw", "normalized", "spelled", "deduplicated", "snapped", "respelled" or "aligned"
    transform: str
    avg_logprob: float | None
    intent_ms: float
    calls: int
    #: of a grammar alignment or a respelled name; 1 for text that parsed as heard
    similarity: float = 1.0


Recognize = Callable[[str], Recognition]
#: Grammar alignment: hypotheses → (closest grammar sentence, similarity) or None.
Align = Callable[[Sequence[str]], tuple[str, float] | None]
#: Slot respelling: one text → readings with a name respelled, most alike first.
Respell = Callable[[str], Sequence[Respelling]]


def decode(
    hypotheses: Sequence[Hypothesis],
    recognize: Recognize,
    options: DecodeOptions,
    snapper: VocabularySnapper | None = None,
    aligner: Align | None = None,
    respeller: Respell | None = None,
    unable: Callable[[Intent], bool] | None = None,
) -> Decoded:
    """Pick the first (hypothesis, transform) the recognizer turns into an intent.

    Transforms are tried cheapest and safest first, across all hypotheses before the next
    transform: a lower-ranked hypothesis that parses as is beats a fuzzy repair of the top
    one. Then slot respelling (the most alike respelled name over all hypotheses, at most
    :data:`intents.respell.MAX_CANDIDATES` parses), last grammar alignment (the closest
    sentence of the custom grammars over all hypotheses). With nothing parsing, the result is
    the recognizer's answer for the top hypothesis. Each distinct text is given to
    ``recognize`` at most once.

    ``unable``: whether the home's devices cannot do a reading (a colour for a light without
    one). As heard, such a reading of the top hypothesis gives way to a lower hypothesis
    that parses as heard into one they can do ("Turn on the kitchen white." / "Turn on the
    kitchen light."); with none, it stands (and the dispatcher says why it cannot).
    """
    cands = list(hypotheses) if options.n_best else list(hypotheses[:1])
    if not cands:
        cands = [Hypothesis("", MIN_AVG_LOGPROB)]
    steps: list[tuple[str, Callable[[str], str]]] = [("raw", lambda s: s)]
    if options.normalize:
        steps.append(("normalized", normalize_transcript))
    if options.spell:
        steps.append(("spelled", lambda s: spell_numbers(normalize_transcript(s))))
    if options.normalize:
        steps.append(("deduplicated", lambda s: collapse_repeats(normalize_transcript(s))))
    if options.snap and snapper is not None:
        snap = snapper.snap
        steps.append(("snapped", lambda s: snap(spell_numbers(normalize_transcript(s)))))
    seen: set[str] = set()
    first: Decoded | None = None
    calls = 0
    t0 = time.perf_counter()
    unable_raw: Decoded | None = None
    for step_name, fn in steps:
        for i, h in enumerate(cands):
            text = fn(h.text)
            key = " ".join(words(text))
            if key in seen:
                continue
            seen.add(key)
            rec = recognize(text)
            calls += 1
            d = Decoded(rec, text, i, step_name, h.avg_logprob, 0.0, 0)
            if first is None:
                first = d
            if rec.intent is not None:
                d.intent_ms = (time.perf_counter() - t0) * 1000.0
                d.calls = calls
                if step_name == "raw" and unable is not None and unable(rec.intent):
                    unable_raw = unable_raw or d
                    continue
                return d
        if unable_raw is not None:
            return unable_raw
    texts = [collapse_repeats(spell_numbers(normalize_transcript(h.text))) for h in cands]
    if options.respells and respeller is not None:
        found: list[tuple[Respelling, int]] = []
        for i, text in enumerate(texts):
            found += [(r, i) for r in respeller(text)]
        found.sort(key=lambda f: (-f[0].similarity, f[1]))
        tried = 0
        for r, i in found:
            key = " ".join(words(r.text))
            if key in seen:
                continue
            if tried >= MAX_CANDIDATES:
                break
            seen.add(key)
            tried += 1
            rec = recognize(r.text)
            calls += 1
            if rec.intent is not None:
                return Decoded(rec, r.text, i, "respelled", cands[i].avg_logprob,
                               (time.perf_counter() - t0) * 1000.0, calls, r.similarity)
    if options.align and aligner is not None:
        hit = aligner(texts)
        if hit is not None:
            text, similarity = hit
            rec = recognize(text)
            calls += 1
            if rec.intent is not None:
                return Decoded(rec, text, 0, "aligned", cands[0].avg_logprob,
                               (time.perf_counter() - t0) * 1000.0, calls, similarity)
    assert first is not None  # the "raw" step always recognizes the first hypothesis
    first.intent_ms = (time.perf_counter() - t0) * 1000.0
    first.calls = calls
    return first


def combined_confidence(
    intent: Intent | None,
    avg_logprob: float | None,
    no_speech_prob: float,
    transform: str,
    similarity: float = 1.0,
) -> float:
    """Confidence of acting on ``intent``: the recognizer's confidence times the ASR's
    (per-token probability, discounted by the no-speech probability; a missing
    ``avg_logprob`` counts as certain), times a penalty for repairs (snapped words:
    :data:`SNAP_PENALTY`; a respelled name: its sound similarity × :data:`SNAP_PENALTY`;
    grammar alignment: its similarity). 0 without an intent.
    Calibration is checked by the benchmark's accuracy-vs-threshold table."""
    if intent is None:
        return 0.0
    logprob = 0.0 if avg_logprob is None else max(avg_logprob, MIN_AVG_LOGPROB)
    asr = math.exp(logprob) * (1.0 - no_speech_prob)
    penalty = (
        SNAP_PENALTY if transform == "snapped"
        else SNAP_PENALTY * similarity if transform == "respelled"
        else similarity if transform == "aligned" else 1.0
    )
    return max(0.0, min(1.0, intent.confidence * asr * penalty))


# -- the decoder the server uses ------------------------------------------------------------


#: Scenes may lock doors (the demo's "good night" does), so guessed ones count as sensitive,
#: as in the recognizer's fuzzy tier.
_GUESS_SENSITIVE: Final = frozenset(
    {IntentName.LOCK, IntentName.UNLOCK, IntentName.COVER_OPEN, IntentName.SCENE_ACTIVATE}
)

_DESCRIBE: Final = {
    "normalized": "numbers normalized",
    "spelled": "numbers spelled out",
    "deduplicated": "repetition collapsed",
    "snapped": "misheard words repaired",
    "respelled": "a misheard name respelled by sound",
    "aligned": "aligned to the closest grammar sentence",
}


@dataclass(frozen=True, slots=True)
class _Grammar:
    """What decoding needs for one language, built once."""

    snapper: VocabularySnapper
    aligners: tuple[GrammarAligner, ...]
    respeller: SlotRespeller | None


class HypothesisDecoder:
    """Decodes speech-recognition hypotheses with one :class:`~intents.recognizer.Recognizer`.

    The vocabulary and the custom grammars' automata are built once per language, on first
    use or by :meth:`warmup`, under a lock; afterwards :meth:`decode` only reads them, so one
    decoder may serve concurrent sessions from worker threads.
    """

    def __init__(self, recognizer: Recognizer, options: DecodeOptions = FULL_DECODE) -> None:
        self._recognizer = recognizer
        self.options = options
        self._grammars: dict[str, _Grammar] = {}
        self._decoys: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def warmup(self, language: str | None = None) -> None:
        """Build the vocabulary and automata of ``language`` (default: the home's) now,
        rather than on the first utterance."""
        self._grammar(normalize_language(language or self._recognizer.config.language or "en"))

    def decode(
        self,
        hypotheses: Sequence[str | Hypothesis],
        *,
        language: str | None = None,
        context: Intent | None = None,
        no_speech_prob: float = 0.0,
        area: str | None = None,
    ) -> Recognition:
        """The recognition of the first hypothesis/reading that parses (see the module
        docstring), or the recognizer's answer for the top hypothesis when none does.
        ``area``: the speaker's room, passed to the recognizer.

        ``hypotheses``: best first; plain strings have no score. ``language`` and
        ``context`` are passed to the recognizer. The intent's confidence is
        :func:`combined_confidence`, capped for sensitive actions read from a guess; its
        reason says which reading was used.
        """
        hyps = [h if isinstance(h, Hypothesis) else Hypothesis(h) for h in hypotheses]
        grammar = self._grammar_for(hyps[0].text if hyps else "", language)
        rec = self._recognizer

        def recognize(text: str) -> Recognition:
            if area is not None:
                return rec.recognize(text, language=language, context=context, area=area)
            return rec.recognize(text, language=language, context=context)

        devices = rec.config.devices
        d = decode(hyps, recognize, self.options,
                   None if grammar is None else grammar.snapper,
                   None if grammar is None else _align_with(grammar.aligners),
                   None if grammar is None or grammar.respeller is None
                   else grammar.respeller.respellings,
                   lambda intent: lacks_capability(intent, devices))
        intent = d.recognition.intent
        if intent is None:
            return d.recognition
        guessed = d.transform in REPAIRS or d.hypothesis > 0
        top = d.recognition
        if guessed:
            top = recognize(hyps[0].text)  # what the top hypothesis says as heard
            if top.negated:
                # 不要打开车库门, heard right, and "要打开车库门" as hypothesis 2: the speaker
                # said not to; a reading without the "not" is no guess worth making.
                return top
            conf = combined_confidence(intent, d.avg_logprob, no_speech_prob, d.transform,
                                       d.similarity)
        else:
            conf = intent.confidence
        if guessed and self._sensitive(intent):
            conf = min(conf, self._sensitive_cap())
        unknown = None
        if d.hypothesis > 0:
            unknown = self._decoy_named(top.unknown_name, language)
            if unknown is not None:
                # The top hypothesis names a thing homes have and this one lacks (打开客房的灯,
                # the guest room) and a lower one names the home's own in its place (口房 →
                # 厨房, hypothesis 3 of 3, turned the kitchen light on): a guess at what was
                # meant, asked back, never acted on. (A garbled name - "the kitten lied" - is
                # no such thing: the lower hypothesis stands.)
                bar = float(rec.config.security.min_confidence)
                conf = min(conf, max(0.0, bar - UNKNOWN_BELOW_BAR))
        # Floor, not round: rounding up could lift a value onto a threshold.
        conf = math.floor(conf * 1000.0 + 1e-9) / 1000.0
        reason = d.recognition.reason
        if d.transform != "raw" or d.hypothesis > 0:
            how = _DESCRIBE.get(d.transform, "as heard")
            if d.hypothesis > 0:
                how = f"hypothesis {d.hypothesis + 1} of {len(hyps)}, {how}"
            if d.transform in ("aligned", "respelled"):
                how += f", similarity {d.similarity:.2f}"
            if unknown is not None:
                how += f", in place of {unknown!r}, which the home lacks"
            reason = f"decoded as {d.text!r} from {hyps[0].text!r} ({how}): {reason}"
        source = intent.source
        if d.transform in REPAIRS and source == "grammar":
            source = "fuzzy"
        decoded = intent.model_copy(
            update={"confidence": conf, "reason": reason, "source": source}
        )
        in_n_best = (d.hypothesis > 0 and d.transform not in REPAIRS
                     and len(d.text.split()) <= len(hyps[0].text.split()))
        return Recognition(intent=decoded, reason=reason,
                           alternatives=d.recognition.alternatives, guessed=guessed,
                           heard_in_n_best=in_n_best and unknown is None, in_place_of=unknown)

    # -- internals -----------------------------------------------------------------------

    def _decoy_named(self, name: str | None, language: str | None) -> str | None:
        """``name`` when it is, or holds, a decoy name of the language (a room or thing homes
        have: ``intents/data/decoys_<language>.txt``) the home lacks; else None."""
        if not name:
            return None
        lang = "zh-CN" if has_cjk(name) else "en"
        decoys = self._decoys.get(lang)
        if decoys is None:
            decoys = self._decoys[lang] = tuple(d.casefold() for d in decoy_names(lang))
        said = name.casefold()
        padded = f" {said} "
        for d in decoys:
            if (d in said) if lang == "zh-CN" else (f" {d} " in padded):
                return name
        return None

    def _grammar_for(self, text: str, language: str | None) -> _Grammar | None:
        # Same language rule as the recognizer: CJK text is Chinese, else the home's.
        try:
            if language:
                lang = normalize_language(language)
            elif has_cjk(text):
                lang = "zh-CN"
            else:
                lang = normalize_language(self._recognizer.config.language or "en")
        except ValueError:
            return None  # the recognizer reports the bad language
        return self._grammar(lang)

    def _grammar(self, lang: str) -> _Grammar:
        hit = self._grammars.get(lang)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._grammars.get(lang)
            if hit is None:
                hit = self._build(lang)
                self._grammars[lang] = hit
            return hit

    def _build(self, lang: str) -> _Grammar:
        from hassil import Intents

        from intents.grammar import build_slot_lists

        rec = self._recognizer
        config = rec.config
        files = [f for f in rec.custom_files if _same_language(f.language, lang)]
        templates: list[str] = []
        aligners: list[GrammarAligner] = []
        registry_lists = build_slot_lists(config)
        for f in files:
            templates += custom_template_texts(f.data)
            if self.options.align:
                aligners.append(
                    GrammarAligner(build_automaton(Intents.from_dict(f.data), registry_lists))
                )
        # Vocabulary for snapping: the recognizer's known words (registry names, command
        # words, custom list values) plus the literal words of the custom sentence templates.
        vocabulary = rec.vocabulary(lang)
        known = set(known_words(config, vocabulary)) | set(template_words(templates))
        respeller = None
        if self.options.respells:
            spellings = home_spellings(config, grammar_colors(lang))
            respeller = SlotRespeller(spellings, grammar_words(lang), decoy_names(lang))
        return _Grammar(VocabularySnapper(known), tuple(aligners), respeller)

    def _sensitive(self, intent: Intent) -> bool:
        return guess_is_sensitive(self._recognizer, intent)

    def _sensitive_cap(self) -> float:
        return sensitive_guess_cap(self._recognizer)


def guess_is_sensitive(recognizer: Recognizer, intent: Intent) -> bool:
    """Whether acting on a guessed ``intent`` could open, unlock or touch a sensitive device
    (scenes count: they may lock doors)."""
    if intent.name in _GUESS_SENSITIVE or intent.is_sensitive:
        return True
    action = recognizer.custom_actions.get(intent.name)
    if action is not None and action.sensitive:
        return True
    sensitive_ids = {d.id for d in recognizer.config.devices if d.sensitive}
    return any(i in sensitive_ids for i in intent.slots.device_ids)


def sensitive_guess_cap(recognizer: Recognizer) -> float:
    """The highest confidence a guessed sensitive reading may carry: below the threshold at
    which sensitive actions run, like the recognizer's fuzzy tier."""
    from intents.recognizer import SENSITIVE_FUZZY_MARGIN

    cap = recognizer.config.security.sensitive_min_confidence - SENSITIVE_FUZZY_MARGIN
    return max(0.0, cap)


def _same_language(a: str, b: str) -> bool:
    try:
        return normalize_language(a) == normalize_language(b)
    except ValueError:
        return False


def best_alignment(
    aligners: Sequence[GrammarAligner], texts: Sequence[str]
) -> tuple[str, float] | None:
    """The accepted alignment of ``texts`` with the lowest cost over the custom grammars'
    aligners, as (sentence, similarity); None when no grammar accepts one."""
    best = None
    for aligner in aligners:
        for t in texts:
            al = aligner.align(t)
            if al is None or not al.accepted or drops_negation(t, al.text):
                continue
            if best is None or al.cost < best.cost:
                best = al
    return None if best is None else (best.text, best.similarity)


#: Words that turn a request into its refusal ("I don't want a double shot cappuccino").
_NEGATION = re.compile(r"\b(?:don'?t|do not|doesn'?t|didn'?t|never|not|no longer)\b", re.I)


def drops_negation(heard: str, reading: str) -> bool:
    """Whether ``reading`` (a grammar sentence aligned to or chosen for ``heard``) leaves out a
    negation Whisper wrote: "I don't want a double shot cappuccino" is no order, whatever
    sentence it is closest to (measured at 6 dB: an alignment that dropped "don't" ordered)."""
    return bool(_NEGATION.search(heard)) and not _NEGATION.search(reading)


def _align_with(aligners: Sequence[GrammarAligner]) -> Align | None:
    """The cheapest accepted alignment over every custom grammar."""
    if not aligners:
        return None
    return functools.partial(best_alignment, aligners)
