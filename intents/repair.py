"""Transcript repair: make what a speech recognizer wrote match what a grammar expects.

Pure text functions used by :mod:`intents.decode` before parsing: number and unit
normalization ("12oz" → "12 oz", "50%" → "50 percent"), number spelling ("12" → "twelve"),
collapsing Whisper's repetition loops, and snapping words the grammar does not know to the
closest word it does know ("ice mocha" → "iced mocha"). Every function is domain-agnostic:
the vocabulary comes from the recognizer's grammar and slot lists, never from a hard-coded
word list. Measured in ``hearth bench accuracy`` (docs/benchmarks.md), which uses these very
functions.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

#: Words this short are never snapped: "a"/"an"/"of" confusions are the grammar's business.
MIN_SNAP_LEN: Final = 3
#: difflib ratio needed to replace an out-of-vocabulary word with a vocabulary word.
SNAP_CUTOFF: Final = 0.75
#: Memoized snaps kept at most (heard words are unbounded in a long-running server).
MEMO_LIMIT: Final = 50_000

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
#: Words that spell numbers. A repair never produces one from a word that is not one:
#: "set the lounge lamp to right" must not become brightness 8 ("eight").
NUMBER_WORDS: Final = frozenset([*_UNITS, *_TENS, "hundred", "thousand", "point", "half"])
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?:\.(\d+))?(?![\w.])")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")


# -- normalization --------------------------------------------------------------------------


def number_words(n: int) -> str:
    """English words for 0 <= n < 10000 ("twenty one", "one hundred five")."""
    if n < 0 or n >= 10000:
        return str(n)
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens - 2] + ("" if unit == 0 else " " + _UNITS[unit])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _UNITS[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    thousands, rest = divmod(n, 1000)
    return _UNITS[thousands] + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def collapse_repeats(text: str, max_n: int = 12) -> str:
    """Drop immediate repetitions of a 2..``max_n``-word phrase ("with sugar, with sugar,
    with sugar" → "with sugar"): Whisper's repetition loops on short windows. Punctuation
    is not kept in the result."""
    ws = words(text)
    changed = True
    while changed:
        changed = False
        for n in range(max_n, 1, -1):
            i = 0
            while i + 2 * n <= len(ws):
                if ws[i : i + n] == ws[i + n : i + 2 * n]:
                    del ws[i + n : i + 2 * n]
                    changed = True
                else:
                    i += 1
    return " ".join(ws)


def normalize_transcript(text: str) -> str:
    """Make Whisper's written forms match spoken-form grammars, without losing information.

    "12oz" → "12 oz", "20-ounce" → "20 ounce", "50%" → "50 percent", "21°C" → "21 degrees C".
    Digits stay digits: the hassil range lists accept digits and number words alike, and
    custom lists list both forms (see :func:`spell_numbers` for the other direction).
    """
    t = text.replace("%", " percent ").replace("°", " degrees ")
    t = _DIGIT_LETTER.sub(" ", t)
    t = _HYPHEN.sub(" ", t)
    t = _LIVING_ROOM.sub("living room", t)
    return re.sub(r"\s+", " ", t).strip()


#: How Whisper writes "living room" when it hears it as words ("Please live in room light
#: off.", "the livin room"): the room every home has, as the grammar spells it.
_LIVING_ROOM = re.compile(r"\b(?:live in|livin'?|leaving) room\b", re.IGNORECASE)


def spell_numbers(text: str) -> str:
    """Digits to English words ("12" → "twelve", "21.5" → "twenty one point five")."""

    def repl(m: re.Match[str]) -> str:
        whole = number_words(int(m.group(1)))
        if m.group(2):
            whole += " point " + " ".join(_UNITS[int(d)] for d in m.group(2))
        return whole

    return _NUMBER.sub(repl, text)


def is_number(word: str) -> bool:
    """Whether ``word`` is a number: digits or a number word."""
    return word in NUMBER_WORDS or any(c.isdigit() for c in word)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes inside words kept)."""
    return _WORD.findall(text.lower().replace("’", "'"))


# -- vocabulary snapping ----------------------------------------------------------------------


class VocabularySnapper:
    """Replaces words the grammar does not know by the closest word it does know.

    Fuzzy matching at the word level: "ice mocha" → "iced mocha", "roasted" → "roast",
    "lounge" stays. Only words absent from the vocabulary are touched, so a transcript that
    is already made of grammar words is never changed; the grammar must still parse the
    result, which is what keeps chatter from turning into commands.

    Safe to share between threads: the only mutable state is a memo whose entries are
    written whole (a lost write or a cleared memo only means recomputing).
    """

    def __init__(self, vocabulary: Iterable[str], *, cutoff: float = SNAP_CUTOFF) -> None:
        self._vocab = sorted({w for v in vocabulary for w in words(v)})
        self._known = frozenset(self._vocab)
        self._cutoff = cutoff
        self._memo: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._vocab)

    def snap_word(self, word: str) -> str:
        """``word`` (lower case, as :func:`words` yields it) or the closest vocabulary word
        at least :data:`SNAP_CUTOFF` alike. Known words, short words, digits and number
        words are returned unchanged."""
        # Numbers are values, not names: "four" must never become "our".
        if (word in self._known or len(word) < MIN_SNAP_LEN or word.isdigit()
                or word in NUMBER_WORDS):
            return word
        hit = self._memo.get(word)
        if hit is None:
            close = difflib.get_close_matches(word, self._vocab, n=1, cutoff=self._cutoff)
            # ... nor may a word become a number: that invents a value ("right" → "eight").
            hit = close[0] if close and not is_number(close[0]) else word
            if len(self._memo) >= MEMO_LIMIT:
                # Dropping the memo only costs recomputation; a bound keeps memory flat.
                self._memo.clear()
            self._memo[word] = hit
        return hit

    def snap(self, text: str) -> str:
        """``text`` as lower-case words, each unknown one snapped (punctuation dropped)."""
        return " ".join(self.snap_word(w) for w in words(text))


# -- vocabulary of custom intent files ------------------------------------------------------

_TEMPLATE_SYNTAX = re.compile(r"[\[\]()|;{}<>:]")


def template_words(templates: Iterable[str]) -> list[str]:
    """The literal words of hassil templates (``{list}`` and ``<rule>`` references dropped)."""
    out: list[str] = []
    for t in templates:
        t = re.sub(r"\{[^}]*\}|<[^>]*>", " ", t)
        out.extend(w for w in _TEMPLATE_SYNTAX.sub(" ", t).lower().split() if w)
    return out


def custom_template_texts(data: Mapping[str, Any]) -> list[str]:
    """Sentence templates and expansion rules of a custom intent file's hassil data."""
    out: list[str] = []
    for body in (data.get("intents") or {}).values():
        for block in (body or {}).get("data") or []:
            out.extend(str(s) for s in (block or {}).get("sentences") or [])
    out.extend(str(v) for v in (data.get("expansion_rules") or {}).values())
    return out


_FILLER = frozenset("a an the of bit little lot lots some oz".split())


def bias_phrases(vocabulary: Sequence[str]) -> list[str]:
    """The fewest vocabulary phrases that still contain every content word once.

    The recognizer's vocabulary lists every spelling of every list value ("a little bit of soy
    milk", "some soy milk", "12 oz", "twelve ounces", ...): ~500 tokens for the demo home plus
    the coffee file, of which a 96-token prompt keeps only the alphabetical tail. Longest
    phrases first, a phrase is kept only if it brings a content word (not a filler, not a
    plural of a kept word) that no kept phrase has; digit spellings are dropped, since Whisper
    needs no help writing digits. Phrases are kept on *stems*, so "ounce" covers "ounces".
    """
    kept: list[str] = []
    covered: set[str] = set()
    def content(p: str) -> list[str]:
        return [w for w in p.lower().split() if w not in _FILLER]

    # Most content words first; among equals the shortest spelling ("soy milk", not "a
    # little bit of soy milk").
    for p in sorted(dict.fromkeys(vocabulary), key=lambda x: (-len(content(x)), len(x), x)):
        ws = content(p)
        if not ws or any(any(c.isdigit() for c in w) for w in ws):
            continue
        stems = {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in ws}
        if stems - covered:
            kept.append(p)
            covered |= stems
    return sorted(kept)
