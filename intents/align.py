"""Grammar-constrained repair: the sentence of a hassil grammar closest to what Whisper heard.

When no hypothesis parses, the words are aligned against the *grammar itself*: the templates
(with their lists and expansion rules) are compiled into a word automaton, and a Levenshtein
alignment between the hypothesis and every path of the automaton finds the grammar sentence
with the smallest edit cost. Substituting a word costs less the more alike the two words look
and sound ("rose" → "roast", "costume" → "coffee"); words the speaker did not say but the
grammar needs, or extra words, cost a full edit (short function words less). The closest
sentence is then given to the real recognizer, which parses it and yields the intent; the
repair is accepted only when the cost per word is small, which keeps chatter from being forced
into a command.

This is what grammar-based engines (Rhino) get for free by decoding against the grammar; here
it is a post-hoc step over Whisper's n-best list. Domain-agnostic: it works for any custom
intent file (Hearth uses it for the custom intents only; the built-in grammar has its own
fuzzy tier, and aligning against it was measured as too slow and too eager, see
docs/benchmarks.md).

Thread safety: a :class:`WordAutomaton` is never changed after :func:`build_automaton`
returns, and a :class:`GrammarAligner` keeps per-call state in locals; its only shared state
is a similarity memo whose entries are written whole. One aligner may serve many threads.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Cost of a word the grammar needs but the transcript lacks, or the other way round.
EDIT_COST: Final = 1.0
#: ... for short function words, which Whisper drops and invents most often.
FUNCTION_WORD_COST: Final = 0.5
FUNCTION_WORDS: Final = frozenset(
    "a an the of and with to in on at for me my some i it is be".split()
)
#: Accept a repair when cost <= ACCEPT_PER_WORD * words of the grammar sentence + ACCEPT_BASE.
ACCEPT_PER_WORD: Final = 0.18
ACCEPT_BASE: Final = 0.3
#: Partial alignments costing more than the best one by this much are dropped (beam search):
#: they could only win by a long run of exact matches, and keeping them costs time.
ALIGN_BEAM: Final = 2.5
#: Permutations larger than this are not expanded (k! paths).
_MAX_PERMUTATION: Final = 4
#: Memoized word similarities kept at most: heard words are unbounded in a long-running
#: server, and dropping the memo only costs recomputation.
MEMO_LIMIT: Final = 100_000

_WORD = re.compile(r"[a-z0-9']+")
#: ``cjk`` automata (:func:`build_automaton`): a run of Chinese characters is one word, as a
#: template writes it (Whisper's tokens split characters into bytes; within a run they are
#: tokenized as written, so only the runs' boundaries may differ from how Whisper writes).
_CJK_WORD = re.compile(r"[a-z0-9']+|[\u3400-\u9fff]+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _sound_key(w: str) -> str:
    """A crude English sound key: consonant skeleton after common spelling merges."""
    s = re.sub(r"[^a-z]", "", w.lower())
    for a, b in (("ph", "f"), ("ck", "k"), ("qu", "kw"), ("c", "k"), ("z", "s"), ("x", "ks"),
                 ("gh", "g"), ("wh", "w"), ("dg", "j")):
        s = s.replace(a, b)
    if not s:
        return s
    head, tail = s[0], re.sub(r"[aeiouy]", "", s[1:])
    return re.sub(r"(.)\1+", r"\1", head + tail)


class _Similarity:
    """Memoized word similarity in [0, 1] (spelling and sound)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], float] = {}

    def __call__(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        key = (a, b)
        hit = self._memo.get(key)
        if hit is None:
            spell = difflib.SequenceMatcher(None, a, b).ratio()
            ka, kb = _sound_key(a), _sound_key(b)
            sound = difflib.SequenceMatcher(None, ka, kb).ratio() if ka and kb else 0.0
            hit = max(spell, 0.9 * sound)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = hit
        return hit


# -- automaton --------------------------------------------------------------------------------


@dataclass
class WordAutomaton:
    """An epsilon-NFA over words. ``arcs[s]`` holds ``(word or None, target)``."""

    arcs: list[list[tuple[str | None, int]]]
    start: int
    final: int

    @property
    def states(self) -> int:
        return len(self.arcs)


class _Builder:
    def __init__(self, lists: Mapping[str, Any], rules: Mapping[str, Any], *,
                 cjk: bool = False) -> None:
        self.arcs: list[list[tuple[str | None, int]]] = []
        self._split = _CJK_WORD.findall if cjk else _WORD.findall
        self._lists = lists
        self._rules = rules

    def new(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def words(self, start: int, words: Sequence[str]) -> int:
        cur = start
        for w in words:
            nxt = self.new()
            self.arcs[cur].append((w, nxt))
            cur = nxt
        return cur

    def expr(self, e: Any, start: int, depth: int = 0) -> int:
        from hassil.expression import (
            Alternative,
            ListReference,
            Permutation,
            RuleReference,
            Sequence,
            TextChunk,
        )

        if depth > 30:
            raise ValueError("grammar nests too deeply")
        if isinstance(e, TextChunk):
            return self.words(start, self._split(e.text.lower().replace("’", "'")))
        if isinstance(e, RuleReference):
            rule = self._rules.get(e.rule_name)
            if rule is None:
                raise KeyError(f"unknown rule <{e.rule_name}>")
            return self.expr(rule.expression, start, depth + 1)
        if isinstance(e, ListReference):
            return self.slot_list(e.list_name, start, depth)
        if isinstance(e, Permutation):
            if len(e.items) > _MAX_PERMUTATION:
                raise ValueError("permutation too large")
            end = self.new()
            for order in itertools.permutations(e.items):
                cur = start
                for item in order:
                    cur = self.expr(item, cur, depth + 1)
                self.arcs[cur].append((None, end))
            return end
        if isinstance(e, Alternative):
            end = self.new()
            for item in e.items:
                self.arcs[self.expr(item, start, depth + 1)].append((None, end))
            if e.is_optional:
                self.arcs[start].append((None, end))
            return end
        if isinstance(e, Sequence):
            cur = start
            for item in e.items:
                cur = self.expr(item, cur, depth + 1)
            return cur
        raise ValueError(f"unsupported template element {type(e).__name__}")

    def slot_list(self, name: str, start: int, depth: int) -> int:
        from hassil.intents import RangeSlotList, TextSlotList

        lst = self._lists.get(name)
        end = self.new()
        if isinstance(lst, TextSlotList):
            for v in lst.values:
                self.arcs[self.expr(v.text_in, start, depth + 1)].append((None, end))
        elif isinstance(lst, RangeSlotList):
            self.arcs[start].append(("<number>", end))
        else:
            raise ValueError(f"list {{{name}}} cannot be aligned (wildcard or missing)")
        return end


def build_automaton(intents: Any, slot_lists: Mapping[str, Any] | None = None, *,
                    cjk: bool = False) -> WordAutomaton:
    """Compile every sentence of a hassil ``Intents`` object into one automaton. Sentences
    that use wildcards or unknown lists are left out (they cannot be aligned word by word).
    ``cjk``: Chinese characters are kept, a run of them one word (else they are dropped)."""
    lists = {**(slot_lists or {}), **intents.slot_lists}
    b = _Builder(lists, intents.expansion_rules, cjk=cjk)
    start, final = b.new(), b.new()
    for intent in intents.intents.values():
        for data in intent.data:
            b_rules = {**intents.expansion_rules, **data.expansion_rules}
            b._rules = b_rules
            b._lists = {**lists, **data.slot_lists}
            for sentence in data.sentences:
                mark = len(b.arcs)
                try:
                    end = b.expr(sentence.expression, start)
                except (ValueError, KeyError):
                    del b.arcs[mark:]
                    b.arcs[start] = [a for a in b.arcs[start] if a[1] < mark]
                    continue
                b.arcs[end].append((None, final))
    return WordAutomaton(b.arcs, start, final)


# -- alignment --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alignment:
    """The closest grammar sentence and its edit cost against the hypothesis."""

    text: str
    cost: float
    words: int

    @property
    def accepted(self) -> bool:
        return self.cost <= ACCEPT_PER_WORD * self.words + ACCEPT_BASE

    @property
    def similarity(self) -> float:
        """1 for an exact sentence of the grammar, falling with the cost per word."""
        return max(0.0, 1.0 - self.cost / max(1, self.words))


def _edit(word: str) -> float:
    return FUNCTION_WORD_COST if word in FUNCTION_WORDS else EDIT_COST


class GrammarAligner:
    """Aligns transcripts to the closest sentence of a grammar automaton (thread-safe)."""

    def __init__(self, automaton: WordAutomaton) -> None:
        self._a = automaton
        self._sim = _Similarity()

    def _sub(self, heard: str, word: str) -> float:
        if word == "<number>":
            return 0.0 if heard.isdigit() else EDIT_COST
        s = self._sim(heard, word)
        # Below ~0.5 similarity the words are unrelated: a plain substitution.
        return EDIT_COST if s < 0.5 else (1.0 - s) * 1.6

    def _closure(self, cost: dict[int, float], back: dict[int, Any], i: int) -> None:
        """Relax epsilon arcs (free) and grammar words the speaker skipped (deletions)."""
        heap = [(c, s) for s, c in cost.items()]
        if not heap:
            return
        heapq.heapify(heap)
        cut = heap[0][0] + ALIGN_BEAM
        while heap:
            c, s = heapq.heappop(heap)
            if c > cost.get(s, float("inf")):
                continue
            for word, t in self._a.arcs[s]:
                nc = c + (0.0 if word is None else _edit(word))
                if nc <= cut and nc < cost.get(t, float("inf")) - 1e-12:
                    cost[t] = nc
                    back[t] = (i, s, word)
                    heapq.heappush(heap, (nc, t))

    def align(self, text: str, *, budget: float | None = None) -> Alignment | None:
        """The closest grammar sentence, or None when the grammar is empty or every path
        costs more than ``budget``."""
        heard = _tokens(text)
        a = self._a
        inf = float("inf")
        cost: dict[int, float] = {a.start: 0.0}
        backs: list[dict[int, Any]] = [{}]
        self._closure(cost, backs[0], 0)
        for i, h in enumerate(heard):
            nxt: dict[int, float] = {}
            back: dict[int, Any] = {}
            for s, c in cost.items():
                if budget is not None and c > budget:
                    continue
                # The heard word is extra: stay.
                ins = c + _edit(h)
                if ins < nxt.get(s, inf):
                    nxt[s], back[s] = ins, (i, s, "")
                for word, t in a.arcs[s]:
                    if word is None:
                        continue
                    nc = c + self._sub(h, word)
                    if nc < nxt.get(t, inf):
                        nxt[t], back[t] = nc, (i, s, word)
            self._closure(nxt, back, i + 1)
            if nxt:
                cut = min(nxt.values()) + ALIGN_BEAM
                nxt = {s2: c2 for s2, c2 in nxt.items() if c2 <= cut}
            cost = nxt
            backs.append(back)
            if not cost:
                return None
        final_cost = cost.get(a.final)
        if final_cost is None:
            return None
        # Walk back: collect the grammar words on the path.
        out: list[str] = []
        i, s = len(heard), a.final
        while not (i == 0 and s == a.start):
            prev_i, prev_s, word = backs[i][s]
            if word == "<number>" and prev_i < i:
                out.append(heard[prev_i])  # a range slot takes the number as heard
            elif word:
                out.append(word)
            i, s = prev_i, prev_s
        out.reverse()
        return Alignment(" ".join(out), final_cost, len(out))

    def best(self, texts: Iterable[str]) -> Alignment | None:
        """The cheapest alignment over several hypotheses."""
        best: Alignment | None = None
        for t in texts:
            al = self.align(t)
            if al is not None and (best is None or al.cost < best.cost):
                best = al
        return best
