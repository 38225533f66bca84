"""Token-level grammar-constrained decoding: Whisper's beam search restricted to the grammar.

Rescoring (``intents.constrained``, ``assistant.audio.acoustic_repair``) can only choose among
sentences someone proposed: the n-best list, its grammar alignments and their one-slot
neighbours. In loud noise tiny.en often writes a slot word in *none* of its hypotheses
("foam lamp" for "whole milk"), and then no neighbourhood reaches it. A grammar-based engine
searches the grammar itself against the audio. :class:`GrammarDecoder` does that with
Whisper's own decoder: a beam search in which, at every step, only the tokens that keep the
text inside the grammar may follow.

How:

* The grammar is the word automaton of ``intents.align`` (an epsilon-NFA over words, built
  from hassil templates with their lists and rules). Sets of its states are the search
  states (determinized lazily, memoized).
* Every word the grammar allows next is tokenized as Whisper writes it mid-sentence
  (``" word"``; GPT-2 BPE splits at spaces, so a sentence's tokens are its words' tokens in a
  row), and the words of a state form a token trie. The first word may also be capitalized,
  and "i", "i'd"… are always ("I"), as Whisper writes them. A comma may follow any word, and a
  full stop or question mark may end a complete sentence, before end-of-text.
* Each step scores the next token of every live beam in one batch with
  ``assistant.audio.whisper_decoder.WhisperTextDecoder`` (the same decoder weights in torch,
  with a key/value cache, so a step costs one small decoder pass; the encoder runs once per
  utterance, in CTranslate2). Without it (a model whose weights it cannot read), each step is
  a CTranslate2 ``generate`` call with the beam's tokens as a forced prefix, which repeats the
  whole prefix every step (~10× slower: 3–7 s against 0.3–0.7 s per order on this CPU).
* Beams are ranked by their summed log-probability; finished sentences by the same sum plus
  ``length_bonus`` nats per token (the rule ``acoustic_repair.with_bonus`` ranks candidates
  by), because the plain sum favours stopping early when the audio is unclear.

The result is a list of grammar sentences (words), best first, with their scores; what to do
with them (add them to the repair's candidates, compare with Whisper's free hypothesis) is the
caller's decision. Pure apart from the model; thread-safe (per-call state is local; the
memoized state tables are written whole under the GIL).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

if TYPE_CHECKING:
    from assistant.audio.sentence_score import SentenceScorer
    from assistant.audio.whisper_decoder import WhisperTextDecoder
    from intents.align import WordAutomaton

#: Live beams kept per step.
DEFAULT_BEAM: Final = 8
#: Finished sentences returned at most.
DEFAULT_RESULTS: Final = 5
#: Tokens decoded at most (a command is 10–25 tokens).
MAX_TOKENS: Final = 48
#: Stop when the best live beam trails the best finished sentence by this many nats (its
#: bonus included: a live beam can still gain ``length_bonus`` per token it adds).
STOP_MARGIN: Final = 8.0
#: What the automaton's range-list placeholder (``"<number>"``) may be: the numbers Whisper
#: writes as digits, 0–100.
NUMBER_WORDS: Final = tuple(str(n) for n in range(101))
#: Memoized state-set tables kept at most (a long-running server visits ever more subsets of a
#: large grammar's states; dropping the memo only costs rebuilding).
MAX_TABLES: Final = 20_000
#: Words Whisper always capitalizes.
_ALWAYS_CAPITAL: Final = frozenset({"i", "i'd", "i'll", "i'm", "i've"})

States = frozenset[int]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One grammar sentence the decoder found: its words, summed log-probability (end-of-text
    included) and token count (end-of-text included), and the rank score."""

    words: tuple[str, ...]
    log_prob: float
    tokens: int
    score: float
    sep: str = " "

    @property
    def text(self) -> str:
        return self.sep.join(self.words)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    sentences: tuple[Decoded, ...]
    steps: int
    ms: float


@dataclass
class _Table:
    """The token trie of the words that may follow one state set."""

    #: token prefix of a word in progress → tokens that may come next
    children: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    #: complete token sequence → (word, next state set) pairs
    complete: dict[tuple[int, ...], list[tuple[str, States]]] = field(default_factory=dict)
    final: bool = False


@dataclass(slots=True)
class _Beam:
    log_prob: float
    tokens: tuple[int, ...]
    words: tuple[str, ...]
    states: States
    partial: tuple[int, ...]  # tokens of the word in progress (empty at a word boundary)
    punct: bool  # the last token was a comma


class GrammarDecoder:
    """Grammar-constrained beam search over one word automaton with a ``SentenceScorer``'s
    model and tokenizer (shared, not owned)."""

    def __init__(self, automaton: WordAutomaton, scorer: SentenceScorer,
                 decoder: WhisperTextDecoder | None = None, *, beam: int = DEFAULT_BEAM,
                 results: int = DEFAULT_RESULTS, length_bonus: float = 1.0,
                 max_tokens: int = MAX_TOKENS, language: str = "en") -> None:
        from assistant.audio.sentence_score import UNSPACED

        self._fa = automaton
        self._scorer = scorer
        self._decoder = decoder
        self._tok: Any = scorer._tok
        self._ct2: Any = scorer._ct2
        self._start: list[int] = list(scorer.start_for(language))
        self.eot: Final = int(scorer.eot)
        self.beam = beam
        self.results = results
        self.length_bonus = length_bonus
        self.max_tokens = max_tokens
        #: Chinese: words written without spaces or capitals, full-width punctuation too.
        self._spaced: Final = language not in UNSPACED
        self._sep: Final = " " if self._spaced else ""
        commas = (",",) if self._spaced else (",", "，")
        enders = (".", "?") if self._spaced else (".", "?", "。", "？")
        self._commas: Final = frozenset(t for t in map(self._single, commas) if t is not None)
        self._enders: Final = frozenset(t for t in map(self._single, enders) if t is not None)
        self._tables: dict[tuple[States, bool], _Table] = {}
        self._word_tokens: dict[str, tuple[int, ...]] = {}
        self.initial: Final = self._closure([automaton.start])

    # -- grammar side ---------------------------------------------------------------------

    def _single(self, text: str) -> int | None:
        ids = list(self._tok.encode(text))
        return int(ids[0]) if len(ids) == 1 else None

    def _closure(self, states: Sequence[int]) -> States:
        out: set[int] = set()
        todo = list(states)
        while todo:
            s = todo.pop()
            if s in out:
                continue
            out.add(s)
            todo.extend(t for w, t in self._fa.arcs[s] if w is None and t not in out)
        return frozenset(out)

    def _tokens_of(self, text: str) -> tuple[int, ...]:
        hit = self._word_tokens.get(text)
        if hit is None:
            hit = tuple(int(t) for t in self._tok.encode(" " + text if self._spaced else text))
            self._word_tokens[text] = hit
        return hit

    def _table(self, states: States, first: bool) -> _Table:
        key = (states, first)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        nexts: dict[str, set[int]] = {}
        for s in states:
            for w, t in self._fa.arcs[s]:
                if w is not None:
                    nexts.setdefault(w, set()).add(t)
        table = _Table(final=self._fa.final in states)
        for word, targets in nexts.items():
            spoken = NUMBER_WORDS if word == "<number>" else (word,)
            target = self._closure(sorted(targets))
            for w in spoken:
                forms = {w}
                if self._spaced and (first or w in _ALWAYS_CAPITAL):
                    forms.add(w[:1].upper() + w[1:])
                for form in forms:
                    toks = self._tokens_of(form)
                    for i in range(len(toks)):
                        table.children.setdefault(toks[:i], set()).add(toks[i])
                    table.complete.setdefault(toks, []).append((w, target))
        if len(self._tables) >= MAX_TABLES:
            self._tables.clear()
        self._tables[key] = table
        return table

    # -- search ---------------------------------------------------------------------------

    def decode(self, audio: Any, encoded: Any | None = None) -> DecodeResult:
        """The best grammar sentences for ``audio`` (one utterance, 16 kHz float32)."""
        t0 = time.perf_counter()
        enc = self._scorer.encode(audio) if encoded is None else encoded
        stepper: _Stepper = (_CachedSteps(self._decoder, enc, self._start)
                             if self._decoder is not None
                             else _ForcedSteps(self._ct2, enc, self._start))
        log_probs = stepper.first()
        rows: dict[tuple[int, ...], int] = {(): 0}
        beams = [_Beam(0.0, (), (), self.initial, (), False)]
        finished: list[Decoded] = []
        steps = 0
        while beams and steps < self.max_tokens:
            steps += 1
            grown: list[_Beam] = []
            for b in beams:
                self._expand(b, log_probs[rows[b.tokens]], grown, finished)
            grown.sort(key=lambda b: b.log_prob, reverse=True)
            beams = _dedupe(grown)[: self.beam]
            if finished:
                best = max(d.score for d in finished)
                if len(finished) >= self.results and all(
                        b.log_prob + self.length_bonus * (len(b.tokens) + 1) < best - STOP_MARGIN
                        for b in beams):
                    break
            if not beams:
                break
            fresh = list(dict.fromkeys(b.tokens for b in beams))
            log_probs = stepper.next(fresh, [rows[t[:-1]] for t in fresh])
            rows = {t: i for i, t in enumerate(fresh)}
        finished.sort(key=lambda d: d.score, reverse=True)
        out: list[Decoded] = []
        seen: set[tuple[str, ...]] = set()
        for d in finished:
            if d.words not in seen:
                seen.add(d.words)
                out.append(d)
            if len(out) >= self.results:
                break
        return DecodeResult(tuple(out), steps, (time.perf_counter() - t0) * 1000.0)

    def _expand(self, b: _Beam, lp: Any, grown: list[_Beam], finished: list[Decoded]) -> None:
        first = not b.words
        table = self._table(b.states, first)
        n = len(b.tokens) + 1
        if not b.partial:
            if table.final and b.words:
                # End-of-text now, or after a full stop / question mark.
                lp_end = b.log_prob + float(lp[self.eot])
                finished.append(self._done(b.words, lp_end, n))
                for t in self._enders:
                    grown.append(_Beam(b.log_prob + float(lp[t]), (*b.tokens, t), b.words,
                                       frozenset(), (), True))
            if b.words and not b.punct:
                for t in self._commas:
                    grown.append(_Beam(b.log_prob + float(lp[t]), (*b.tokens, t), b.words,
                                       b.states, (), True))
        if not b.states and b.punct and b.words:
            # After a final full stop: only end-of-text.
            lp_end = b.log_prob + float(lp[self.eot])
            finished.append(self._done(b.words, lp_end, n))
            return
        for t in table.children.get(b.partial, ()):
            toks = (*b.partial, t)
            score = b.log_prob + float(lp[t])
            ext = (*b.tokens, t)
            if toks in table.children:
                grown.append(_Beam(score, ext, b.words, b.states, toks, False))
            for word, target in table.complete.get(toks, ()):
                grown.append(_Beam(score, ext, (*b.words, word), target, (), False))


    def _done(self, words: tuple[str, ...], log_prob: float, tokens: int) -> Decoded:
        return Decoded(words, log_prob, tokens, log_prob + self.length_bonus * tokens, self._sep)


class _Stepper(Protocol):
    """Next-token log-probabilities of a growing set of token prefixes."""

    def first(self) -> Any:
        """``[1, vocab]``: after the start sequence."""

    def next(self, prefixes: list[tuple[int, ...]], parents: list[int]) -> Any:
        """``[len(prefixes), vocab]``: after each prefix, whose last token is new and whose
        rest was row ``parents[i]`` of the previous call."""


class _CachedSteps:
    """Steps with :class:`~assistant.audio.whisper_decoder.WhisperTextDecoder` (KV cache)."""

    def __init__(self, decoder: WhisperTextDecoder, encoded: Any, start: list[int]) -> None:
        self._decoder = decoder
        self._state = decoder.start(encoded)
        self._start = start

    def first(self) -> Any:
        return self._decoder.step(self._state, [self._start]).numpy()

    def next(self, prefixes: list[tuple[int, ...]], parents: list[int]) -> Any:
        return self._decoder.step(self._state, [[p[-1]] for p in prefixes], parents).numpy()


class _ForcedSteps:
    """Steps with CTranslate2 alone: each prefix forced again at every step (O(length²),
    ~15× slower; for models whose weights the cached decoder cannot read)."""

    def __init__(self, ct2: Any, encoded: Any, start: list[int]) -> None:
        self._ct2 = ct2
        self._enc = np.asarray(encoded)
        self._start = start

    def first(self) -> Any:
        return self.next([()], [0])

    def next(self, prefixes: list[tuple[int, ...]], parents: list[int]) -> Any:
        import ctranslate2

        from assistant.audio.sentence_score import log_softmax

        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(self._enc, len(prefixes), axis=0)))
        n = len(prefixes[0])
        res = self._ct2.generate(
            batch, [self._start + list(p) for p in prefixes], beam_size=1,
            # Measured (4.8): this returns exactly the n forced steps and the one after.
            max_length=max(len(self._start) + n, 2 * (n + 1)),
            return_logits_vocab=True, suppress_blank=False, suppress_tokens=[])
        out = np.full((len(prefixes), int(np.asarray(res[0].logits[0][0]).size)), -np.inf)
        for i, r in enumerate(res):
            if len(r.logits[0]) > n:
                out[i] = log_softmax(np.asarray(r.logits[0][n], dtype=np.float32).reshape(-1))
        return out


def _dedupe(beams: list[_Beam]) -> list[_Beam]:
    """Beams with the same tokens, words and states are one (a word completed two ways)."""
    seen: set[tuple[Any, ...]] = set()
    out: list[_Beam] = []
    for b in beams:
        key = (b.tokens, b.words, b.states, b.partial)
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out

