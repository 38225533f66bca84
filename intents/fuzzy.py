"""Fuzzy tier: repair near-miss words from speech recognition, then let the grammar decide.

Only words that are *not* known (registry names, aliases, command words) are replaced, each by
the closest known word above :data:`MIN_WORD_SIMILARITY`; the repaired sentence must then match
a template exactly. So chatter stays chatter, and the confidence of a repaired match falls
with the edit distance. Sensitive results are capped in the recognizer.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from devices.registry import HomeConfig
from intents.repair import is_number

#: A word is only repaired to a known word at least this similar (difflib ratio).
MIN_WORD_SIMILARITY = 0.74
#: At most this many words repaired per utterance; more means we are guessing.
MAX_REPAIRS = 2
#: Confidence of a repaired match before the similarity penalty.
FUZZY_BASE_CONFIDENCE = 0.85

#: Words of the command templates (English). Names and aliases come from the registry.
COMMAND_WORDS: frozenset[str] = frozenset(
    """
    turn switch on off set to the a an all my our in of please light lights lamp lamps lighting
    dim brighten brighter darker dimmer up down by percent brightness colour color temperature
    degrees warmer cooler open close shut lock unlock locked unlocked pause resume play next skip
    song track volume activate scene stop cancel never mind fan fans blinds curtains curtain door
    doors garage thermostat heating what is are it back again everything every off and for me
    make change increase decrease lower raise start
    """.split()
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?|\d+%?", re.UNICODE)


@dataclass(frozen=True)
class Repair:
    """A repaired sentence and what was changed."""

    text: str
    changes: tuple[tuple[str, str, float], ...]  # (heard, assumed, similarity)

    @property
    def similarity(self) -> float:
        out = 1.0
        for _, _, ratio in self.changes:
            out *= ratio
        return out

    def describe(self) -> str:
        return ", ".join(f"{a!r}→{b!r} ({r:.2f})" for a, b, r in self.changes)


#: Spelling → sound rewrites for English, applied in order (crude, but ASR errors are mostly
#: homophones: "lite"/"light", "lok"/"lock").
_SOUND_RULES: tuple[tuple[str, str], ...] = (
    (r"ght", "t"), (r"gh", ""), (r"ph", "f"), (r"ck", "k"), (r"c(?=[eiy])", "s"), (r"c", "k"),
    (r"q", "k"), (r"x", "ks"), (r"z", "s"), (r"(?<=.)y", "i"), (r"ee|ea|ie", "i"),
    (r"oo|ou", "u"), (r"(.)\1", r"\1"), (r"(?<=...)e$", ""),
)
#: Similarity given to two words heard apart that form a known word together.
_SPLIT_SIMILARITY = 0.95
#: Similarity of two words that only sound alike is discounted by this factor.
_SOUND_DISCOUNT = 0.95


def sound_key(word: str) -> str:
    """A rough phonetic key of an English word."""
    key = word.lower()
    for pattern, repl in _SOUND_RULES:
        key = re.sub(pattern, repl, key)
    return key


def similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two words: spelling, or sound (slightly discounted)."""
    spelled = difflib.SequenceMatcher(None, a, b).ratio()
    sounded = difflib.SequenceMatcher(None, sound_key(a), sound_key(b)).ratio()
    return max(spelled, sounded * _SOUND_DISCOUNT)


def _closest(word: str, candidates: list[str]) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    # A number is a value: it is never made out of a word that is not one ("set the lounge
    # lamp to right" is not brightness 8, "eight").
    numeric = is_number(word)
    for cand in candidates:
        if abs(len(cand) - len(word)) > max(2, len(word) // 2):
            continue
        if is_number(cand) and not numeric:
            continue
        score = similarity(word, cand)
        if score >= MIN_WORD_SIMILARITY and (best is None or score > best[1]):
            best = (cand, score)
    return best


def known_words(config: HomeConfig, extra: Iterable[str] = ()) -> frozenset[str]:
    """Lower-case words of every name and alias in the home, plus command words."""
    words: set[str] = set(COMMAND_WORDS)
    for text in [*extra, *config.spellings()]:
        words.update(w.lower() for w in _WORD.findall(text) if w.isascii())
    return frozenset(words)


def repair(text: str, vocabulary: frozenset[str]) -> Repair | None:
    """Replace unknown words by their nearest known word. ``None`` when nothing is repairable
    or when too much would have to change."""
    tokens = text.lower().split()
    changes: list[tuple[str, str, float]] = []
    out: list[str] = []
    candidates = sorted(vocabulary)
    skip = False
    for n, tok in enumerate(tokens):
        if skip:
            skip = False
            continue
        word = tok.strip(".,!?;:\"'")
        joined = word + tokens[n + 1].strip(".,!?;:\"'") if n + 1 < len(tokens) else ""
        if joined in vocabulary and (word not in vocabulary or len(word) < 4):
            # ASR splits compounds: "bed room" -> "bedroom"
            changes.append((f"{word} {tokens[n + 1]}", joined, _SPLIT_SIMILARITY))
            out.append(joined)
            skip = True
            continue
        if not word or word in vocabulary or not word.isascii() or not word.isalpha() \
                or len(word) < 3:
            out.append(tok)
            continue
        found = _closest(word, candidates)
        if found is None:
            out.append(tok)
            continue
        changes.append((word, found[0], found[1]))
        out.append(found[0])
    if not changes or len(changes) > MAX_REPAIRS or len(changes) * 2 > len(tokens):
        return None
    return Repair(" ".join(out), tuple(changes))


#: Chinese names shorter than this are never repaired: one wrong character in "前门" could be
#: "后门", a different door.
MIN_CJK_NAME_LEN = 3


#: Characters that tell one place from another: 后门 differing from 前门 in one of them is
#: the back door, another door the home may lack, not a mistyped front door.
_CONTRASTIVE: Final = frozenset("前后左右上下东西南北里外内主次大小新旧一二三四楼")


def repair_cjk(text: str, names: Iterable[str]) -> Repair | None:
    """Chinese input errors are mostly one wrong character with the same sound ("客厅等" for
    "客厅灯"). Replace one window of the text that differs from a known name (of at least
    :data:`MIN_CJK_NAME_LEN` characters) in exactly one character. ``None`` when there is no
    such window or more than one candidate name."""
    found: list[tuple[int, str, str]] = []
    names = list(names)
    cjk_names = sorted({n for n in names if len(n) >= MIN_CJK_NAME_LEN and not n.isascii()})
    # shorter names too: a window that spells one of them right is not a typo of another
    # ("书房的灯" names the study; it is not "厨房的灯" misspelt)
    short = {n for n in names if len(n) >= 2 and not n.isascii()}
    if any(n in text for n in cjk_names):
        return None  # a name is already spelled right; the error is elsewhere
    for name in cjk_names:
        size = len(name)
        for start in range(len(text) - size + 1):
            window = text[start:start + size]
            diff = [(a, b) for a, b in zip(window, name, strict=True) if a != b]
            if len(diff) == 1 and not (set(diff[0]) & _CONTRASTIVE) \
                    and not any(n in window and n not in name for n in short):
                found.append((start, window, name))
    if not found:
        return None
    # "厨房的登" is one wrong character from "厨房的灯" and its prefix from "厨房灯": the longer
    # name explains more of the text.
    longest = max(len(name) for _, _, name in found)
    found = [f for f in found if len(f[2]) == longest]
    if len(found) != 1:
        return None
    start, window, name = found[0]
    ratio = (len(name) - 1) / len(name)
    return Repair(text[:start] + name + text[start + len(name):], ((window, name, ratio),))
