"""Grammar-constrained choice: let an acoustic scorer pick among sentences the grammar allows.

Text repair (:mod:`intents.decode`) picks the grammar sentence closest to what the speech
recognizer *wrote*. In noise the written slot words are often wrong in a way text cannot
undo: "foam lamp" for "whole milk", "value in here" for "almond milk", and the alignment then
picks a valid but wrong sentence. A grammar-based engine (Rhino) instead asks which sentence
of its grammar the *audio* supports best. This module does that over a small neighbourhood:

1. seeds: the decoded sentence and the grammar sentences aligned to each hypothesis, each
   with its slot values (from the recognizer);
2. candidates: every seed with one slot value replaced by another value of the same list
   ("a little bit of milk" → "... almond milk", "... soy milk", ...). Replacing a list value
   by another of the same list keeps the sentence inside the grammar, so no candidate needs a
   parse; the slots of each candidate are known;
3. an acoustic score for each (:class:`Score`: the log-probability Whisper's decoder gives the
   sentence, see ``assistant.audio.sentence_score``); the best candidate becomes the next
   seed and its one-slot neighbours are scored too (``rounds``), so two wrong slots can both
   be fixed;
4. a margin rule: the text decode's sentence is replaced only when a candidate beats it by
   ``margin`` — the text choice already agrees with what was written, so the audio must be
   clearly better to overrule it.

Pure: no audio, no model. The caller injects the scorer. Domain-agnostic: it works on the
lists of any custom intent file (:meth:`SlotLists.from_custom_data`).
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Candidates scored per round at most (one batched decoder pass each). 24: same acceptance
#: as 40 at 6 dB for 2/3 of the cost; 12 loses 2 of 150 clips (docs/benchmarks.md).
MAX_CANDIDATES: Final = 24
#: Alternatives per slot for seeds other than the text decode's sentence.
DEFAULT_PER_SLOT: Final = 3
#: Rounds of "best so far → its one-slot neighbours".
DEFAULT_ROUNDS: Final = 2
#: How much better a candidate must score than the text decode's sentence to replace it, in
#: the scorer's units (nats for ``assistant.audio.acoustic_repair``; chosen by measurement,
#: docs/benchmarks.md).
DEFAULT_MARGIN: Final = 2.0
#: Surface forms expanded per list value at most (a guard against huge templates).
_MAX_SURFACES: Final = 64

_WORD: Final = re.compile(r"[a-z0-9']+")

#: Sentences → their acoustic scores (higher is better), same order.
Score = Callable[[Sequence[str]], Sequence[float]]


def sentence_words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower().replace("’", "'")))


def render(words: Sequence[str]) -> str:
    """Words as Whisper writes a sentence: capital first letter, final full stop. Scores of
    differently formatted texts are not comparable, so every candidate is rendered alike."""
    text = " ".join(words)
    if not text:
        return text
    return text[0].upper() + text[1:] + "."


@dataclass(frozen=True, slots=True)
class SlotValue:
    """One value of a slot list: its output and every way of saying it (word tuples)."""

    out: str
    surfaces: tuple[tuple[str, ...], ...]

    @property
    def canonical(self) -> tuple[str, ...]:
        return self.surfaces[0]


def expand_template(template: str) -> list[tuple[str, ...]]:
    """Every word sequence of a simple hassil template (alternatives ``(a | b)``, optionals
    ``[x]``, plain words). Lists and rules are not expanded: a value using them gets its
    literal text only."""
    from hassil.expression import Alternative, TextChunk
    from hassil.expression import Sequence as Seq
    from hassil.parse_expression import parse_sentence

    def walk(e: Any) -> list[tuple[str, ...]]:
        if isinstance(e, TextChunk):
            return [sentence_words(e.text)]
        if isinstance(e, Alternative):
            out: list[tuple[str, ...]] = []
            for item in e.items:
                out += walk(item)
            if e.is_optional:
                out.append(())
            return out[:_MAX_SURFACES]
        if isinstance(e, Seq):
            acc: list[tuple[str, ...]] = [()]
            for item in e.items:
                acc = [a + b for a in acc for b in walk(item)][:_MAX_SURFACES]
            return acc
        raise ValueError(f"unsupported element {type(e).__name__}")

    try:
        forms = walk(parse_sentence(template).expression)
    except Exception:  # hassil's parser raises several types; fall back to the words
        forms = [sentence_words(template)]
    seen: dict[tuple[str, ...], None] = {f: None for f in forms if f}
    return list(seen) or [sentence_words(template)]


class SlotLists:
    """The text slot lists of custom intent files, ready for substitution."""

    def __init__(self, lists: Mapping[str, Sequence[SlotValue]]) -> None:
        self.lists: Final = {k: tuple(v) for k, v in lists.items() if v}

    @classmethod
    def from_custom_data(cls, datas: Iterable[Mapping[str, Any]]) -> SlotLists:
        """Lists of custom intent files (hassil data: ``{values: [str | {in, out}]}``)."""
        lists: dict[str, list[SlotValue]] = {}
        for data in datas:
            for name, body in (data.get("lists") or {}).items():
                values = (body or {}).get("values") if isinstance(body, Mapping) else None
                if not values:
                    continue  # range and wildcard lists have no values to swap
                vals: list[SlotValue] = []
                for v in values:
                    if isinstance(v, Mapping):
                        out, text_in = str(v.get("out")), str(v.get("in", v.get("out")))
                    else:
                        out = text_in = str(v)
                    # The output first when it is itself a way of saying the value.
                    forms = expand_template(text_in)
                    own = sentence_words(out)
                    if own in forms:
                        forms.remove(own)
                        forms.insert(0, own)
                    vals.append(SlotValue(out, tuple(forms)))
                lists[str(name)] = vals
        return cls(lists)

    def locate(self, words: Sequence[str],
               slots: Mapping[str, Any]) -> dict[str, tuple[int, int]] | None:
        """Where each slot's value is said in ``words`` ((start, end) word span). Longest
        values first, spans never overlap ("milk" is not found inside "soy milk"). None when
        a slot of a known list cannot be found (the sentence is not a plain substitution)."""
        spans: dict[str, tuple[int, int]] = {}
        taken = [False] * len(words)
        order = sorted(((k, str(v)) for k, v in slots.items() if k in self.lists),
                       key=lambda kv: -len(kv[1]))
        for name, out in order:
            value = next((v for v in self.lists[name] if v.out == out), None)
            if value is None:
                return None
            found = None
            for form in sorted(value.surfaces, key=len, reverse=True):
                n = len(form)
                for i in range(len(words) - n + 1):
                    if tuple(words[i : i + n]) == form and not any(taken[i : i + n]):
                        found = (i, i + n)
                        break
                if found:
                    break
            if found is None:
                return None
            spans[name] = found
            for j in range(*found):
                taken[j] = True
        return spans


@dataclass(frozen=True, slots=True)
class Candidate:
    """A grammar sentence (rendered for scoring) and the slot values it carries."""

    text: str
    slots: tuple[tuple[str, str], ...]  # sorted (name, out)

    @property
    def slot_dict(self) -> dict[str, str]:
        return dict(self.slots)


def _candidate(words: Sequence[str], slots: Mapping[str, str]) -> Candidate:
    return Candidate(render(words), tuple(sorted((k, str(v)) for k, v in slots.items())))


def neighbours(words: Sequence[str], slots: Mapping[str, Any], lists: SlotLists,
               per_slot: int | None = None) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    """``words`` with one slot value replaced by another value of its list. Empty when the
    slots cannot be located.

    Order: round-robin over the slots, each slot's alternatives by how alike they are to the
    value said ("a little bit of milk" → "a little bit of soy milk" before "cream"), so that
    a cap on the candidates still tries every slot; ``per_slot`` keeps only the closest
    alternatives of each slot.
    """
    spans = lists.locate(words, slots)
    if spans is None:
        return []
    per: list[list[tuple[tuple[str, ...], dict[str, str]]]] = []
    base = {k: str(v) for k, v in slots.items()}
    for name, (a, b) in spans.items():
        said = " ".join(words[a:b])
        alts = [v for v in lists.lists[name] if v.out != base[name]]
        alts.sort(key=lambda v: -difflib.SequenceMatcher(None, said, " ".join(v.canonical))
                  .ratio())
        if per_slot is not None:
            alts = alts[:per_slot]
        per.append([((*words[:a], *v.canonical, *words[b:]), {**base, name: v.out})
                    for v in alts])
    out: list[tuple[tuple[str, ...], dict[str, str]]] = []
    for i in range(max((len(x) for x in per), default=0)):
        out += [x[i] for x in per if i < len(x)]
    return out


@dataclass(slots=True)
class Choice:
    """The outcome of :func:`choose`."""

    candidate: Candidate | None  # the winner (None: nothing could be scored)
    score: float
    base_score: float | None  # score of the text decode's sentence, when there was one
    switched: bool  # the winner's slots differ from the text decode's
    scored: int  # candidates scored, all rounds
    rounds: int
    ms: float
    scores: dict[Candidate, float] = field(default_factory=dict, repr=False)


def choose(
    seeds: Sequence[tuple[str, Mapping[str, Any]]],
    lists: SlotLists,
    score: Score,
    *,
    base: int | None = 0,
    margin: float = DEFAULT_MARGIN,
    rounds: int = DEFAULT_ROUNDS,
    limit: int = MAX_CANDIDATES,
    per_slot: int = DEFAULT_PER_SLOT,
) -> Choice:
    """The seed or one-slot neighbour the scorer likes best (see the module docstring).

    ``seeds``: (sentence, its slot values) — grammar sentences, e.g. the text decode's choice
    and the alignments of each hypothesis. ``base``: index of the text decode's own sentence
    in ``seeds`` (None: there was none, the best candidate wins outright). The winner replaces
    the base only when it scores at least ``margin`` higher.
    """
    t0 = time.perf_counter()
    scores: dict[Candidate, float] = {}
    pending: dict[Candidate, tuple[tuple[str, ...], dict[str, str]]] = {}

    def add(words: Sequence[str], slots: Mapping[str, Any]) -> None:
        c = _candidate(words, {k: str(v) for k, v in slots.items()})
        if c not in scores and c not in pending and len(pending) < limit:
            pending[c] = (tuple(words), {k: str(v) for k, v in slots.items()})

    def flush() -> None:
        batch = list(pending)
        if batch:
            for c, s in zip(batch, score([c.text for c in batch]), strict=True):
                scores[c] = float(s)
        pending.clear()

    seed_cands: list[tuple[Candidate, tuple[str, ...], dict[str, str]]] = []
    for text, slots in seeds:
        w = sentence_words(text)
        sl = {k: str(v) for k, v in slots.items()}
        seed_cands.append((_candidate(w, sl), w, sl))
    for _, w, sl in seed_cands:
        add(w, sl)
    # The first seed (the text decode's choice) gets the most neighbours; every other seed
    # its closest alternatives only.
    for j, (_, w, sl) in enumerate(seed_cands):
        for nw, ns in neighbours(w, sl, lists, None if j == 0 else per_slot):
            add(nw, ns)
    flush()
    done_rounds = 1
    expanded = {c for c, _, _ in seed_cands[:1]}
    while done_rounds < rounds and scores:
        best = max(scores, key=lambda c: scores[c])
        if best in expanded:
            break
        expanded.add(best)
        for nw, ns in neighbours(sentence_words(best.text), best.slot_dict, lists):
            add(nw, ns)
        flush()
        done_rounds += 1
    if not scores:
        return Choice(None, float("-inf"), None, False, 0, done_rounds,
                      (time.perf_counter() - t0) * 1000.0)
    best = max(scores, key=lambda c: scores[c])
    base_c = seed_cands[base][0] if base is not None and base < len(seed_cands) else None
    base_score = scores.get(base_c) if base_c is not None else None
    winner = best
    if base_c is not None and base_score is not None and scores[best] < base_score + margin:
        winner = base_c
    switched = base_c is not None and winner.slots != base_c.slots
    return Choice(winner, scores[winner], base_score, switched, len(scores), done_rounds,
                  (time.perf_counter() - t0) * 1000.0, scores)


def value_margin(choice: Choice, slots: Mapping[str, Any], lists: SlotLists,
                 score: Score) -> float | None:
    """How clearly the audio picks each of a reading's slot values: over the reading's slots,
    the least of (the reading's score - the best score of a scored sentence with another value
    in that slot), in the scorer's units. Negative: for some slot the audio prefers another
    value. The reading (one of ``choice``'s candidates, by its ``slots``) has its one-slot
    neighbours scored first where the rounds left some out (one batch). None when the reading
    was not among the candidates or has no slot."""
    want = {k: str(v) for k, v in slots.items()}
    mine = [c for c in choice.scores if c.slot_dict == want]
    if not mine or not want:
        return None
    scores = dict(choice.scores)
    reading = max(mine, key=lambda c: scores[c])
    missing = [c for c in (_candidate(w, s) for w, s in
                           neighbours(sentence_words(reading.text), want, lists))
               if c not in scores]
    if missing:
        for c, s in zip(missing, score([c.text for c in missing]), strict=True):
            scores[c] = float(s)
    own = scores[reading]
    margins = []
    for name, value in want.items():
        others = [s for c, s in scores.items()
                  if name in c.slot_dict and c.slot_dict[name] != value]
        if others:
            margins.append(own - max(others))
    return min(margins) if margins else None

