"""Sound-alike comparison of English words and names, for repairing misheard slot values.

Whisper mishears names as other *real* words that sound alike ("round jump" for "lounge lamp",
"cloth machine" for "coffee machine"); spelling similarity misses most of these, since the
letters differ where the sounds agree. Here a word becomes a coarse phone string
(:func:`phones`: spelling rules for the common English digraphs, one symbol per vowel group,
silent letters dropped), and two phone strings are compared by an edit distance whose
substitution cost depends on how alike the two sounds are (:func:`phone_distance`: a voicing
pair such as t/d or s/z is cheap, two nasals or two liquids fairly cheap, a vowel for another
vowel cheap, unrelated consonants a full edit). Word boundaries are ignored: "bed room" and
"bedroom" are the same sounds.

Crude on purpose: no pronunciation dictionary, no dependency. It only has to rank the few
names of one home against what was heard, and the caller accepts a name only when it is
clearly the closest (see :mod:`intents.slots`).

Pure functions; :class:`PhoneticIndex` is immutable after construction and thread-safe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

#: Spelling → sound rewrites, applied in order to a lower-case word. Upper-case letters in
#: the output are phones with no single letter: C = "ch", S = "sh", T = "th", N = "ng",
#: J = the "j"/soft "g" sound.
_RULES: Final[tuple[tuple[str, str], ...]] = (
    (r"[^a-z]", ""),
    (r"^kn", "n"), (r"^wr", "r"), (r"^ps", "s"), (r"^x", "s"), (r"mb$", "m"),
    (r"tch", "C"), (r"ch", "C"), (r"sh", "S"), (r"ti(?=on)", "S"), (r"th", "T"),
    (r"ph", "f"), (r"wh", "w"), (r"ck", "k"), (r"qu", "kw"), (r"x", "ks"),
    (r"dge", "J"), (r"dg", "J"), (r"g(?=[eiy])", "J"), (r"igh", "i"), (r"gh", ""),
    (r"c(?=[eiy])", "s"), (r"c", "k"), (r"ng$", "N"), (r"ng(?=[^aeiouy])", "N"),
    (r"j", "J"), (r"^y(?=[aeiou])", "Y"), (r"y", "i"),
    # A final "e" after a consonant is silent ("lounge", "shade"), but not in "be", "the".
    (r"(?<=[a-zCSTJN][^aeiou])e$", ""),
    (r"([a-zCSTJN])\1+", r"\1"),
    (r"[aeiou]+", "V"),
)

#: Groups of sounds that are confused with each other, and the substitution cost inside the
#: group. A sound may be in several groups; the cheapest shared group counts.
_GROUPS: Final[tuple[tuple[str, float], ...]] = (
    ("pb", 0.3), ("td", 0.3), ("kg", 0.3), ("fv", 0.3), ("sz", 0.2), ("CJ", 0.3),
    ("SC", 0.4), ("SJ", 0.5), ("Ts", 0.5), ("Tf", 0.4), ("Td", 0.5), ("dJ", 0.5),
    ("tC", 0.5), ("mnN", 0.4), ("lr", 0.4), ("wr", 0.5), ("ln", 0.6), ("rn", 0.7),
    ("ptk", 0.6), ("bdg", 0.6), ("wv", 0.5), ("hV", 0.6), ("kN", 0.7), ("gN", 0.7),
)
#: Cost of a vowel for a vowel: vowel spellings are too loose to compare here.
_VOWEL_SUB: Final = 0.0
#: Cost of a vowel heard or lost (unstressed vowels vanish in fast speech).
_VOWEL_INDEL: Final = 0.5
#: ... of "h", which is often not heard.
_H_INDEL: Final = 0.4
#: ... of any other sound.
_INDEL: Final = 1.0


def _build_costs() -> dict[tuple[str, str], float]:
    costs: dict[tuple[str, str], float] = {}
    for group, cost in _GROUPS:
        for a in group:
            for b in group:
                if a != b and costs.get((a, b), 1.0) > cost:
                    costs[(a, b)] = cost
    return costs


_SUB_COSTS: Final = _build_costs()


@lru_cache(maxsize=8192)
def phones(text: str) -> str:
    """The coarse phone string of ``text`` (every word, boundaries dropped).

    >>> phones("lounge lamp"), phones("round jump")
    ('lVnJlVmp', 'rVndJVmp')
    """
    out: list[str] = []
    for word in text.lower().split():
        w = word
        for pattern, repl in _RULES:
            w = re.sub(pattern, repl, w)
        out.append(w)
    return "".join(out)


def _sub(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if a == "V" and b == "V":
        return _VOWEL_SUB
    return _SUB_COSTS.get((a, b), _INDEL)


def _indel(a: str) -> float:
    if a == "V":
        return _VOWEL_INDEL
    if a == "h":
        return _H_INDEL
    return _INDEL


def phone_distance(a: str, b: str, limit: float = math.inf) -> float:
    """Weighted edit distance between two phone strings (see the module docstring); once it
    is sure to exceed ``limit`` it stops and returns ``math.inf``."""
    prev = [0.0]
    for ch in b:
        prev.append(prev[-1] + _indel(ch))
    for ca in a:
        cur = [prev[0] + _indel(ca)]
        da = _indel(ca)
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + da, cur[j - 1] + _indel(cb), prev[j - 1] + _sub(ca, cb)))
        if min(cur) > limit:
            return math.inf  # every alignment already costs more
        prev = cur
    return prev[-1]


def _weight(p: str) -> float:
    return sum(_indel(c) for c in p)


def phonetic_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of how ``a`` and ``b`` sound: 1 − distance / the larger phone
    weight (what deleting everything would cost), so a short name is not close to
    everything."""
    pa, pb = phones(a), phones(b)
    if not pa or not pb:
        return 1.0 if pa == pb else 0.0
    return max(0.0, 1.0 - phone_distance(pa, pb) / max(_weight(pa), _weight(pb)))


@dataclass(frozen=True, slots=True)
class SoundMatch:
    """The closest known spelling to a heard span, and how clearly it is the closest."""

    spelling: str
    entity: str
    similarity: float
    #: Similarity of the closest spelling of *another* entity (0 when there is none).
    runner_up: float

    @property
    def margin(self) -> float:
        return self.similarity - self.runner_up


class PhoneticIndex:
    """The spellings of one home's slot values, compared by sound.

    ``spellings`` maps a spelling ("lounge lamp") to the entity it names
    ("device:living_room_light"); the spellings of one entity never compete with each other
    for the margin.
    """

    def __init__(self, spellings: Mapping[str, str]) -> None:
        self._entries = tuple(
            (s, e, phones(s), _weight(phones(s))) for s, e in sorted(spellings.items())
            if phones(s)
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(s for s, _, _, _ in self._entries)

    def closest(self, heard: str, floor: float = 0.0) -> SoundMatch | None:
        """The spelling that sounds most like ``heard``, with the runner-up of another
        entity; None when nothing is indexed, ``heard`` has no sounds or nothing is at least
        ``floor`` alike. Spellings less alike than ``floor`` are not scored (they count as
        0 for the runner-up), which makes a high floor much faster."""
        ph = phones(heard)
        if not ph:
            return None
        wh = _weight(ph)
        best: dict[str, tuple[float, str]] = {}
        for spelling, entity, p, w in self._entries:
            # Cheap bound: the distance is at least the weight difference.
            top = max(w, wh)
            sim_bound = 1.0 - abs(w - wh) / top
            cur = best.get(entity)
            if sim_bound <= 0.0 or sim_bound < floor or (cur is not None and sim_bound <= cur[0]):
                continue
            sim = max(0.0, 1.0 - phone_distance(ph, p, (1.0 - floor) * top) / top)
            if sim < floor or sim == 0.0:
                continue
            if cur is None or sim > cur[0]:
                best[entity] = (sim, spelling)
        if not best:
            return None
        ranked = sorted(((sim, spelling, entity) for entity, (sim, spelling) in best.items()),
                        reverse=True)
        sim, spelling, entity = ranked[0]
        runner = ranked[1][0] if len(ranked) > 1 else 0.0
        return SoundMatch(spelling, entity, sim, runner)


def describe(pairs: Iterable[tuple[str, str]]) -> str:
    """``"'round jump'→'lounge lamp' (0.71)"`` for a reason string."""
    return ", ".join(f"{a!r}→{b!r} ({phonetic_similarity(a, b):.2f})" for a, b in pairs)
