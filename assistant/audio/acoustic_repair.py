"""Acoustic repair of guessed custom-intent readings: Whisper's decoder picks the slot values.

The text decode (``intents.decode.HypothesisDecoder``) turns a misheard transcript into the
closest grammar sentence; when that reading is a *guess* (a lower hypothesis, repaired words,
a grammar alignment) its slot values come from what Whisper wrote, which in noise is often
wrong ("foam lamp" → "milk" for "whole milk"). :class:`AcousticRepair` then scores that
sentence, the grammar sentences aligned to each hypothesis and their one-slot neighbours
against the utterance audio (``intents.constrained.choose`` with
``assistant.audio.sentence_score.SentenceScorer``) and replaces the reading when another
sentence fits the audio better by a margin. Readings parsed as heard are never touched, so
clean speech costs nothing.

Wiring (the session owns it): build one :class:`AcousticRepair` per process with
:meth:`AcousticRepair.for_transcriber` (it shares the transcriber's model) and, for *final*
utterances only, recognize with ``functools.partial(decode_then_repair, <the decoder call>,
repair, audio, hypotheses, language=...)`` in the worker thread that ran the decoder — the
same shape as ``assistant.turn.understanding.decode_or``. Speculative transcripts at a pause
must not be repaired: a guessed reading never ends a turn early anyway, and the repair costs a
decoder pass. See docs/benchmarks.md for the figures.

Thread-safe: the aligners and the scorer are shared read-only; per-call state is local.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from devices.dispatcher import ASK_BACK_BAND
from intents.align import _Similarity
from intents.constrained import (
    DEFAULT_MARGIN,
    DEFAULT_PER_SLOT,
    DEFAULT_ROUNDS,
    MAX_CANDIDATES,
    Choice,
    SlotLists,
    choose,
    value_margin,
)
from intents.decode import (
    Hypothesis,
    drops_negation,
    guess_is_sensitive,
    sensitive_guess_cap,
)
from intents.languages import has_cjk
from intents.repair import collapse_repeats, normalize_transcript, spell_numbers
from intents.schema import Recognition

if TYPE_CHECKING:
    from assistant.audio.grammar_decode import Decoded, GrammarDecoder
    from assistant.audio.sentence_score import SentenceScorer
    from assistant.audio.whisper_decoder import WhisperTextDecoder
    from assistant.audio.zh_grammar import ZhGrammarCheck
    from intents.recognizer import Recognizer

logger = logging.getLogger(__name__)

#: With nothing decoded, alignments costing up to this many times the acceptance bound of
#: ``intents.align`` may seed a rescue (chatter and noise align far from every sentence).
RESCUE_COST: Final = 2.0
#: The repair runs only on utterances whose estimated SNR (:func:`estimated_snr_db`) is below
#: this: measured on the Picovoice clips, every utterance at 6 dB estimates 9–15.5 dB, at
#: 24 dB ≥ 24.9 (5th percentile) and clean ≥ 31.6, and the repair changed nothing clean or at
#: 24 dB; so clean speech pays nothing for it.
MAX_SNR_DB: Final = 20.0
#: Frame length of the SNR estimate (20 ms at 16 kHz).
_SNR_FRAME: Final = 320
#: A rescued reading needs a slot value word at least this alike (spelling and sound,
#: ``intents.align``) to a word Whisper wrote (:meth:`AcousticRepair.heard_some`).
RESCUE_SUPPORT: Final = 0.7
#: Words of slot values that say nothing about which value was meant.
_FILLER: Final = frozenset("a an the of and with to in on at for some bit little lot lots "
                           "my me".split())
_VALUE_WORD: Final = re.compile(r"[a-z0-9']+")
#: How far below the acting bar a guessed home reading on a sensitive device is put.
BELOW_BAR: Final = 0.01
#: Nats added per token to a candidate's log-probability (see :func:`with_bonus`).
LENGTH_BONUS: Final = 1.0


@dataclass(frozen=True, slots=True)
class Repaired:
    """The recognition to act on, and what the acoustic choice saw (None: it did not run)."""

    recognition: Recognition
    choice: Choice | None


class AcousticRepair:
    """Grammar-constrained acoustic rescoring for one recognizer's custom intents.

    Scores are log-probabilities plus ``length_bonus`` nats per token (:func:`with_bonus`);
    ``margin`` is in nats. ``max_snr_db``: only utterances estimated noisier than this are
    rescored (None: every guessed one).
    ``rescue``: also when nothing was decoded, act on the best-scoring candidate if it scores
    within ``rescue`` nats of Whisper's own top hypothesis and Whisper wrote something like
    one of its slot values (:meth:`heard_some`) (None: never). With grammar decoding, 16 nats
    gave +2.6 points at 6 dB and no false action on the negatives (docs/benchmarks.md).
    ``decoders``: grammar-constrained decoders (``assistant.audio.grammar_decode``), one per
    custom file (:meth:`grammar_decoders` builds them); their best sentences join the seeds,
    so the search is no longer limited to what Whisper wrote.
    ``home``: also the built-in home grammar: guessed home readings engage, a rescue may find
    a home command, and :meth:`grammar_decoders` adds a decoder over the home's sentences,
    with the decoy names of ``intents/data/decoys_en.txt`` among the device and area names,
    so that speech about a thing the home lacks decodes to a name the recognizer rejects,
    not to the nearest real device (docs/benchmarks.md).
    """

    def __init__(self, recognizer: Recognizer, scorer: SentenceScorer | None = None, *,
                 margin: float = DEFAULT_MARGIN, rounds: int = DEFAULT_ROUNDS,
                 limit: int = MAX_CANDIDATES, per_slot: int = DEFAULT_PER_SLOT,
                 rescue: float | None = None, length_bonus: float = LENGTH_BONUS,
                 max_snr_db: float | None = MAX_SNR_DB,
                 decoders: Sequence[GrammarDecoder] = (), home: bool = False) -> None:
        from hassil import Intents

        from intents.align import GrammarAligner, build_automaton
        from intents.grammar import build_slot_lists

        self._recognizer = recognizer
        self._scorer = scorer
        self.margin = margin
        self.rounds = rounds
        self.limit = limit
        self.per_slot = per_slot
        self.rescue = rescue
        self.length_bonus = length_bonus
        self.max_snr_db = max_snr_db
        files = list(recognizer.custom_files)
        self.lists: Final = SlotLists.from_custom_data(f.data for f in files)
        registry = build_slot_lists(recognizer.config)
        self.automata: Final = tuple(
            build_automaton(Intents.from_dict(f.data), registry) for f in files)
        self._aligners: Final = tuple(GrammarAligner(a) for a in self.automata)
        self._languages: Final = tuple(str(f.language or "en") for f in files)
        self._similarity: Final = _Similarity()
        self.home: Final = home
        self._decoys: tuple[str, ...] = ()
        if home:
            from intents.respell import decoy_names

            self._decoys = tuple(" ".join(_VALUE_WORD.findall(d.lower()))
                                 for d in decoy_names("en"))
        self.home_automaton = home_automaton(recognizer) if home else None
        self.decoders: tuple[GrammarDecoder, ...] = tuple(decoders)
        #: Mandarin turns: the zh-CN home grammar against the audio (``home`` with a
        #: multilingual model and Chinese names in the home; :meth:`for_transcriber`).
        self.zh: ZhGrammarCheck | None = None

    def grammar_decoders(self, scorer: SentenceScorer, text_decoder: WhisperTextDecoder | None,
                         **settings: Any) -> tuple[GrammarDecoder, ...]:
        """One grammar-constrained decoder per custom file, on ``scorer``'s model
        (``text_decoder`` None: the slower CTranslate2-only steps)."""
        from assistant.audio.grammar_decode import GrammarDecoder

        # Words are tokenized as English text is (a space before each): other languages'
        # files are left to the text repairs.
        out = [GrammarDecoder(a, scorer, text_decoder, **settings)
               for a, lang in zip(self.automata, self._languages, strict=True)
               if lang.lower().startswith("en")]
        if self.home_automaton is not None:
            out.append(GrammarDecoder(self.home_automaton, scorer, text_decoder, **settings))
        return tuple(out)

    def engages(self, recognition: Recognition) -> bool:
        """Whether :meth:`repair` may change ``recognition``: a guessed custom-intent reading
        (any guessed reading with ``home``), or nothing at all when ``rescue`` is set."""
        intent = recognition.intent
        if intent is None:
            # never a rescue of what the speaker said not to do
            return self.rescue is not None and not recognition.negated
        return recognition.guessed and (intent.source == "custom" or self.home)

    def heard_some(self, intent: Any, hypotheses: Sequence[str | Hypothesis]) -> bool:
        """Whether Whisper wrote something like one of ``intent``'s slot values: a word of the
        value (not a function or quantity word) within :data:`RESCUE_SUPPORT` of a word of
        some hypothesis. A rescue needs it: on noise alone ("Oh, yeah.") or chatter, the
        best grammar sentence can score within the rescue distance of Whisper's hallucination,
        but none of its values was heard (measured: all 13 such false actions on the
        negatives had none, all 12 right rescues at 6 dB had one; docs/benchmarks.md)."""
        heard = {w for h in hypotheses for w in _VALUE_WORD.findall(_text(h).lower())}
        if not heard:
            return False
        for word in _slot_words(intent, self._recognizer):
            if any(self._similarity(word, w) >= RESCUE_SUPPORT for w in heard):
                return True
        return False

    def names_a_decoy(self, text: str, hypotheses: Sequence[str | Hypothesis]) -> bool:
        """Whether Whisper's top hypothesis names a thing the home lacks (a decoy name:
        "basement", "microwave") that the chosen sentence does not say. A home sentence may
        leave out its area or say "it", so the best one for "turn off the lights in the
        basement" can be "turn off the lights"."""
        if not hypotheses or not self._decoys:
            return False
        heard = " " + " ".join(_VALUE_WORD.findall(_text(hypotheses[0]).lower())) + " "
        said = " " + " ".join(_VALUE_WORD.findall(text.lower())) + " "
        return any(f" {d} " in heard and f" {d} " not in said for d in self._decoys)

    def _bar(self) -> float:
        return float(self._recognizer.config.security.min_confidence)

    def contradicts(self, custom: Mapping[str, Any], top: str) -> str | None:
        """The slot whose value a reading takes where Whisper's top hypothesis wrote another
        value of the same list word for word ("…, skim milk, and a lot of sugar." read as
        "some milk"), or None. The audio scorer may prefer a value it was never told; one
        Whisper spelled out is evidence the scorer does not outweigh (measured through the
        server at 6 dB: such a repair made a wrong order)."""
        words = tuple(_VALUE_WORD.findall(
            collapse_repeats(spell_numbers(normalize_transcript(top))).lower()))

        def said(form: tuple[str, ...]) -> bool:
            n = len(form)
            return n > 0 and any(words[i:i + n] == form for i in range(len(words) - n + 1))

        for name, value in custom.items():
            values = self.lists.lists.get(name, ())
            mine = next((v for v in values if v.out == str(value)), None)
            if mine is None or any(said(f) for f in mine.surfaces):
                continue
            own = {w for f in mine.surfaces for w in f}
            if any(said(f) and not set(f) <= own
                   for other in values if other is not mine for f in other.surfaces):
                return name
        return None

    def decode_grammar(self, audio: Any, encoded: Any | None = None) -> list[Decoded]:
        """The grammar-constrained decoders' sentences for ``audio``, best first."""
        if not self.decoders:
            return []
        if encoded is None and self._scorer is not None:
            encoded = self._scorer.encode(audio)
        found = [d for g in self.decoders for d in g.decode(audio, encoded).sentences]
        return sorted(found, key=lambda d: d.score, reverse=True)

    @classmethod
    def for_transcriber(cls, recognizer: Recognizer, transcriber: Any, *,
                        grammar_decode: bool = True, **settings: Any) -> AcousticRepair | None:
        """The repair for a server: scores with the transcriber's own Whisper model (no second
        copy of the CTranslate2 model; the grammar decoder reads the decoder weights once more
        into torch). None when the recognizer has no custom intents and ``home`` is off
        (nothing to repair)."""
        if not recognizer.custom_files and not settings.get("home"):
            return None
        from assistant.audio.sentence_score import SentenceScorer

        text_decoder = text_decoder_for(transcriber) if grammar_decode else None
        scorer = SentenceScorer.from_transcriber(transcriber, decoder=text_decoder)
        repair = cls(recognizer, scorer, **settings)
        if grammar_decode:
            repair.decoders = repair.grammar_decoders(scorer, text_decoder)
            if repair.home and getattr(transcriber, "multilingual", False) and any(
                    not n.isascii() for d in recognizer.config.devices
                    for n in (d.name, *d.aliases)):
                from assistant.audio.zh_grammar import ZhGrammarCheck

                repair.zh = ZhGrammarCheck(recognizer, scorer, text_decoder)
        return repair

    @classmethod
    def for_settings(cls, recognizer: Recognizer, transcriber: Any,
                     asr: Any) -> AcousticRepair | None:
        """:meth:`for_transcriber` with the server's ``asr`` settings (``grammar_decode``,
        ``rescue_nats``, ``home_grammar_decode``: ``auto`` is on when the home has no custom
        intents). The server and ``hearth bench accuracy`` both build it here."""
        home = asr.home_grammar_decode
        if home == "auto":
            home = not recognizer.custom_files
        return cls.for_transcriber(
            recognizer, transcriber, grammar_decode=asr.grammar_decode,
            rescue=asr.rescue_nats if asr.grammar_decode else None,
            home=bool(home) and asr.grammar_decode)

    def seeds(self, hypotheses: Sequence[str | Hypothesis], recognition: Recognition,
              decoded: Sequence[Decoded] = ()
              ) -> tuple[list[tuple[str, Mapping[str, Any]]], int | None]:
        """(seed sentences with their slots, index of the decoded one or None). ``decoded``:
        sentences of :meth:`decode_grammar` to seed as well."""
        from intents.align import ACCEPT_BASE, ACCEPT_PER_WORD

        seeds: list[tuple[str, Mapping[str, Any]]] = []
        base: int | None = None
        intent = recognition.intent
        if intent is not None and intent.text and (intent.source == "custom" or self.home):
            seeds.append((intent.text, reading_key(intent)))
            base = 0
        texts = list(dict.fromkeys(
            collapse_repeats(spell_numbers(normalize_transcript(_text(h))))
            for h in hypotheses))
        known = {s for s, _ in seeds}
        for aligner in self._aligners:
            for t in texts:
                al = aligner.align(t)
                if al is None or al.text in known:
                    continue
                if base is None and al.cost > RESCUE_COST * (
                        ACCEPT_PER_WORD * al.words + ACCEPT_BASE):
                    continue
                known.add(al.text)
                rec = self._recognizer.recognize(al.text)
                if rec.intent is not None and rec.intent.source == "custom":
                    seeds.append((al.text, rec.intent.slots.custom))
        said = (intent.slots.custom if base is not None and intent is not None
                and intent.source == "custom" else None)
        for d in decoded:
            if d.text in known:
                continue
            known.add(d.text)
            new = self._recognizer.recognize(d.text).intent
            if new is None or (new.source != "custom" and not self.home):
                continue
            if said is not None and new.source == "custom" and says_less(new.slots.custom, said):
                continue
            seeds.append((d.text, reading_key(new)))
        return seeds, base

    def repair(self, audio: Any, hypotheses: Sequence[str | Hypothesis],
               recognition: Recognition, *, language: str | None = None) -> Repaired:
        """``recognition``, or the reading the audio supports better (see the module
        docstring)."""
        intent = recognition.intent
        if not self.engages(recognition) or (intent is None and not hypotheses):
            return Repaired(recognition, None)
        if not english(language, hypotheses):
            if self.zh is None or not mandarin(language, hypotheses):
                return Repaired(recognition, None)
            texts = [_text(h) for h in hypotheses]
            return Repaired(self.zh.check(audio, texts, recognition).recognition, None)
        if (self.max_snr_db is not None and not (self.home and intent is None)
                and estimated_snr_db(audio) >= self.max_snr_db):
            return Repaired(recognition, None)  # clean enough: the text reading stands
        if self._scorer is None:
            raise ValueError("AcousticRepair needs a scorer")
        scorer = self._scorer
        bonus = self.length_bonus
        encoded = scorer.encode(audio)
        seed_list, base = self.seeds(hypotheses, recognition, self.decode_grammar(audio, encoded))

        def score(sentences: Sequence[str]) -> list[float]:
            res = scorer.score(audio, sentences, encoded=encoded)
            return [with_bonus(lp, n, bonus) for lp, n in zip(res.log_probs, res.tokens,
                                                              strict=True)]

        if not seed_list:
            return Repaired(recognition, None)
        c = choose(seed_list, self.lists, score, base=base, margin=self.margin, rounds=self.rounds,
                   limit=self.limit, per_slot=self.per_slot)

        def measured(out: Recognition) -> Repaired:
            # how clearly the audio picks the reading's values (intents.evidence weighs it)
            if out.intent is None or out.intent.source != "custom":
                return Repaired(out, c)
            m = value_margin(c, out.intent.slots.custom, self.lists, score)
            return Repaired(out if m is None else out.model_copy(
                update={"audio_margin": round(m, 2)}), c)

        if c.candidate is None:
            return measured(recognition)
        if intent is None:
            assert self.rescue is not None
            free = float(score([_text(hypotheses[0])])[0])
            if c.score < free - self.rescue:
                return measured(recognition)
        elif not c.switched:
            return measured(recognition)
        rec = self._recognizer.recognize(c.candidate.text, language=language)
        new = rec.intent
        if new is None:
            return measured(recognition)
        if intent is None and not self.heard_some(new, hypotheses):
            return measured(recognition)
        top = _text(hypotheses[0]) if hypotheses else ""
        if self.contradicts(new.slots.custom, top) or drops_negation(top, c.candidate.text):
            # Whisper wrote another value there, word for word; or "I don't want …"
            return measured(recognition)
        if new.source != "custom" and self.names_a_decoy(c.candidate.text, hypotheses):
            return measured(recognition)
        gain = c.score - (c.base_score if c.base_score is not None else c.score)
        why = (f"rescored by the audio as {c.candidate.text!r} ({gain:+.1f} nats over the text "
               f"reading, {c.scored} sentences scored)")
        conf = new.confidence if intent is None else min(new.confidence, intent.confidence)
        if guess_is_sensitive(self._recognizer, new):
            # A reading the audio chose is still a guess: never enough for a sensitive action.
            conf = min(conf, sensitive_guess_cap(self._recognizer))
            if new.source != "custom":
                # ... nor, for a home command, for any action on that device: "unlock" and
                # "lock" differ by one syllable the noise hides (the synthetic set at 5 and
                # 10 dB: "unlock the front door lock" chosen as "lock …" twice).
                conf = min(conf, max(0.0, self._bar() - BELOW_BAR))
        if new.source != "custom" and intent is None and len(new.slots.device_ids) > 1:
            # A rescue reaches one device at most: "The robot arm lit." (the question "who
            # wrote Hamlet" at 10 dB) rescued as "turn the lights red" would set every light.
            # Refused, not asked back: the questions that did this were no commands at all.
            conf = min(conf, max(0.0, self._bar() - ASK_BACK_BAND - BELOW_BAR))
        reason = f"{why}: {rec.reason}"
        new = new.model_copy(update={"confidence": conf, "reason": reason})
        logger.debug("acoustic repair: %s", why)
        return measured(Recognition(intent=new, reason=reason, alternatives=rec.alternatives,
                                    guessed=True))


def english(language: str | None, hypotheses: Sequence[str | Hypothesis]) -> bool:
    """Whether an utterance is one the repair may touch: its scorer and grammars are English
    (the English start sequence, English words), so a Mandarin utterance - its session's
    language, or Chinese characters in what Whisper wrote - is left to the zh-CN text repairs.
    Measured: at 10 dB a guessed Mandarin reading scored against the English home grammar
    could be replaced by an English command (docs/asr.md)."""
    if language is not None and not language.lower().startswith("en"):
        return False
    return not any(has_cjk(_text(h)) for h in hypotheses[:1])


def mandarin(language: str | None, hypotheses: Sequence[str | Hypothesis]) -> bool:
    """Whether an utterance is Mandarin: its session's language, or else Chinese characters
    in what Whisper wrote."""
    if language is not None:
        return language.lower().startswith("zh")
    return any(has_cjk(_text(h)) for h in hypotheses[:1])


def _slot_words(intent: Any, recognizer: Recognizer) -> set[str]:
    """The content words of ``intent``'s slot values: custom values, and for home intents
    the area and the names of the devices (every alias)."""
    values: list[str] = [str(v) for v in intent.slots.custom.values()]
    slots = intent.slots
    if getattr(slots, "area", None):
        values.append(str(slots.area))
    ids = set(getattr(slots, "device_ids", None) or ())
    for d in recognizer.config.devices:
        if d.id in ids:
            values.extend([d.name, *getattr(d, "aliases", ())])
    return {w for v in values for w in _VALUE_WORD.findall(v.lower()) if w not in _FILLER}


def reading_key(intent: Any) -> dict[str, str]:
    """What identifies a custom-intent reading among the candidates: its slot values (the
    lists :func:`intents.constrained.choose` swaps)."""
    return dict(intent.slots.custom)


def home_automaton(recognizer: Recognizer, language: str = "en") -> Any:
    """The built-in grammar of ``language`` (``en`` or ``zh-CN``) as a word automaton
    (``intents.align``; for Chinese a run of characters is one word), its device and area
    names the home's own in that script joined by the language's decoy names (rooms and
    appliances a home may lack: the search may say 洗衣机 or "basement" rather than force the
    nearest of the home's names)."""
    from hassil.intents import TextSlotList

    from intents.align import build_automaton
    from intents.grammar import build_slot_lists
    from intents.respell import decoy_names

    chinese = language.lower().startswith("zh")
    lists: dict[str, Any] = dict(build_slot_lists(recognizer.config))
    decoys = decoy_names(language)
    for key in ("name", "area"):
        lst = lists.get(key)
        if isinstance(lst, TextSlotList):
            own = [v.text_in.text for v in lst.values
                   if hasattr(v.text_in, "text") and v.text_in.text.isascii() != chinese]
            lists[key] = TextSlotList.from_strings(
                [*own, *(d for d in decoys if d not in own)], name=key)
    return build_automaton(recognizer._grammar.intents_for(language), lists, cjk=chinese)


def says_less(found: Mapping[str, Any], said: Mapping[str, Any]) -> bool:
    """Whether a grammar-decoded reading ``found`` drops what the text reading ``said`` heard:
    a slot left out, or a value cut to part of itself ("iced mocha" → "mocha"). In loud noise
    the decoder's end-of-text is unsure, and every order of the coffee grammar may stop after
    any slot, so the search often prefers the sentence without its last slot; but the text
    reading found words there. Measured at 6 dB: 16 of 18 clips the decoder's seeds broke
    were such cuts (docs/benchmarks.md)."""
    if any(k not in found for k in said):
        return True
    for k, v in said.items():
        mine, theirs = set(str(found[k]).split()), set(str(v).split())
        if mine < theirs:
            return True
    return False


def text_decoder_for(transcriber: Any) -> WhisperTextDecoder | None:
    """The step-by-step decoder for a transcriber's model, read from its ``model.bin``; None
    when the model is not a local float CTranslate2 folder (the grammar decoder then steps
    with CTranslate2 alone)."""
    from pathlib import Path

    from assistant.audio.asr import default_model_path
    from assistant.audio.whisper_decoder import UnsupportedModel, WhisperTextDecoder

    settings = getattr(transcriber, "settings", None)
    ref = getattr(transcriber, "model_path", None) or getattr(settings, "model", None)
    path = default_model_path() if ref is None else Path(str(ref))
    if not (path / "model.bin").is_file():
        return None
    try:
        import torch

        # torch has one process-wide setting; one thread per search, like each Whisper pass,
        # keeps it from fighting the transcriptions for the cores.
        torch.set_num_threads(max(1, int(getattr(settings, "cpu_threads", 1) or 1)))
        return WhisperTextDecoder.load(path)
    except (UnsupportedModel, OSError, KeyError) as e:
        logger.info("grammar decoding steps with CTranslate2 alone: %s", e)
        return None


def estimated_snr_db(audio: Any) -> float:
    """A crude SNR of one utterance: the spread between its loud (90th percentile) and quiet
    (10th percentile) 20 ms frame energies, in dB. An utterance holds its own pre-roll and
    pauses, so the quiet frames are the noise floor; it needs no model and ~0.1 ms."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n = len(x) // _SNR_FRAME
    if n < 2:
        return math.inf
    energy = 10.0 * np.log10(np.mean(x[: n * _SNR_FRAME].reshape(n, _SNR_FRAME) ** 2, axis=1)
                             + 1e-12)
    return float(np.percentile(energy, 90) - np.percentile(energy, 10))


def decode_then_repair(decode: Callable[[], Recognition], repair: AcousticRepair | None,
                       audio: Any, hypotheses: Sequence[str | Hypothesis], *,
                       language: str | None = None) -> Recognition:
    """``decode()``'s recognition, repaired by the audio when the repair engages (a guessed
    custom-intent reading, or nothing with ``rescue``; ``repair`` None: as decoded)."""
    result = decode()
    if repair is None or not repair.engages(result):
        return result
    return repair.repair(audio, hypotheses, result, language=language).recognition


def with_bonus(log_prob: float, tokens: int, bonus: float = LENGTH_BONUS) -> float:
    """The score a candidate is ranked by: its log-probability plus ``bonus`` nats per token.
    The plain sum favours short slot values when the audio is unclear ("with sugar" over
    "with skim milk": every token costs); measured at 6 dB on 150 clips, the sum broke 1–2
    clips that the bonus did not, and the bonus beat the per-token mean (:func:`per_token`)
    by one clip with either scoring method (docs/benchmarks.md)."""
    return log_prob + bonus * tokens


def per_token(log_prob: float, tokens: int) -> float:
    """Log-probability per token, as Whisper's own beam search ranks hypotheses (length
    penalty 1); compared in the benchmark, not the default."""
    return log_prob / max(1, tokens)


def _text(h: str | Hypothesis) -> str:
    return h.text if isinstance(h, Hypothesis) else h
