"""Text side of the accuracy benchmark: transcript normalization, vocabulary snapping (fuzzy
matching of misheard words), grammar rescoring of n-best hypotheses, scoring and WER.

Everything here is pure and domain-agnostic: the vocabulary comes from the recognizer's
grammar and slot lists, never from a hard-coded word list.
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from intents.schema import Intent, Recognition

#: Slots that say *what happens*. ``area``/``floor``/``domain`` only describe how the user
#: named the target; the resolved ``device_ids`` carry the consequence, so they are compared
#: instead. ``temperature_unit`` is compared only when the expectation names one.
ACTION_SLOTS: Final = (
    "device_ids",
    "brightness",
    "brightness_step",
    "color",
    "rgb",
    "color_temp_kelvin",
    "temperature",
    "position",
    "volume",
    "scene",
    "custom",
)

#: Words this short are never snapped: "a"/"an"/"of" confusions are the grammar's business.
MIN_SNAP_LEN: Final = 3
#: difflib ratio needed to replace an out-of-vocabulary word with a vocabulary word.
SNAP_CUTOFF: Final = 0.75



@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One ASR hypothesis; ``avg_logprob`` is per token, as faster-whisper reports it."""

    text: str
    avg_logprob: float


_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = frozenset([*_UNITS, *_TENS, "hundred", "thousand", "point", "half"])
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
    return re.sub(r"\s+", " ", t).strip()


def spell_numbers(text: str) -> str:
    """Digits to English words ("12" → "twelve", "21.5" → "twenty one point five")."""

    def repl(m: re.Match[str]) -> str:
        whole = number_words(int(m.group(1)))
        if m.group(2):
            whole += " point " + " ".join(_UNITS[int(d)] for d in m.group(2))
        return whole

    return _NUMBER.sub(repl, text)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes inside words kept)."""
    return _WORD.findall(text.lower().replace("’", "'"))


# -- word error rate --------------------------------------------------------------------------


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after :func:`normalize_transcript`, number
    spelling and punctuation/case removal, so "50%" and "fifty percent" are the same words."""
    ref = words(spell_numbers(normalize_transcript(reference)))
    hyp = words(spell_numbers(normalize_transcript(hypothesis)))
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


# -- vocabulary snapping ----------------------------------------------------------------------


class VocabularySnapper:
    """Replaces words the grammar does not know by the closest word it does know.

    Fuzzy matching at the word level: "ice mocha" → "iced mocha", "roasted" → "roast",
    "lounge" stays. Only words absent from the vocabulary are touched, so a transcript that
    is already made of grammar words is never changed; the grammar must still parse the
    result, which is what keeps chatter from turning into commands.
    """

    def __init__(self, vocabulary: Iterable[str], *, cutoff: float = SNAP_CUTOFF) -> None:
        self._vocab = sorted({w for v in vocabulary for w in words(v)})
        self._known = frozenset(self._vocab)
        self._cutoff = cutoff
        self._memo: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._vocab)

    def snap_word(self, word: str) -> str:
        # Numbers are values, not names: "four" must never become "our".
        if (word in self._known or len(word) < MIN_SNAP_LEN or word.isdigit()
                or word in _NUMBER_WORDS):
            return word
        hit = self._memo.get(word)
        if hit is None:
            close = difflib.get_close_matches(word, self._vocab, n=1, cutoff=self._cutoff)
            hit = close[0] if close else word
            self._memo[word] = hit
        return hit

    def snap(self, text: str) -> str:
        return " ".join(self.snap_word(w) for w in words(text))


# -- decoding policy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Which text-side techniques a variant uses (the ASR output is shared by all)."""

    name: str
    n_best: bool = False
    normalize: bool = False
    spell: bool = False
    snap: bool = False
    align: bool = False
    #: Acoustic rescoring of custom-intent slot values: "no", "repaired" (only when the text
    #: was repaired or aligned), "always".
    rescore: str = "no"


@dataclass(slots=True)
class Decoded:
    """The outcome of one decode variant for one utterance segment."""

    recognition: Recognition
    text: str  # the text that was given to the recognizer last
    hypothesis: int  # index of the n-best hypothesis used
    transform: str  # "raw", "normalized", "spelled", "snapped"
    avg_logprob: float
    intent_ms: float
    calls: int
    similarity: float = 1.0  # of a grammar alignment; 1 for text that parsed as heard


Recognize = Callable[[str], Recognition]
#: Grammar alignment: hypotheses → (closest grammar sentence, similarity) or None.
Align = Callable[[Sequence[str]], tuple[str, float] | None]


def decode(
    hypotheses: Sequence[Hypothesis],
    recognize: Recognize,
    options: DecodeOptions,
    snapper: VocabularySnapper | None = None,
    aligner: Align | None = None,
) -> Decoded:
    """Pick the first (hypothesis, transform) the recognizer turns into an intent.

    Transforms are tried cheapest and safest first, across all hypotheses before the next
    transform: a lower-ranked hypothesis that parses as is beats a fuzzy repair of the top
    one. Last comes grammar alignment (the closest sentence of the custom grammars over all
    hypotheses). With nothing parsing, the result is the recognizer's answer for the top
    hypothesis.
    """
    cands = list(hypotheses) if options.n_best else list(hypotheses[:1])
    if not cands:
        cands = [Hypothesis("", -10.0)]
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
                return d
    if options.align and aligner is not None:
        texts = [collapse_repeats(spell_numbers(normalize_transcript(h.text))) for h in cands]
        hit = aligner(texts)
        if hit is not None:
            text, similarity = hit
            rec = recognize(text)
            calls += 1
            if rec.intent is not None:
                d = Decoded(rec, text, 0, "aligned", cands[0].avg_logprob,
                            (time.perf_counter() - t0) * 1000.0, calls, similarity)
                return d
    assert first is not None
    first.intent_ms = (time.perf_counter() - t0) * 1000.0
    first.calls = calls
    return first


def combined_confidence(
    intent: Intent | None,
    avg_logprob: float,
    no_speech_prob: float,
    transform: str,
    similarity: float = 1.0,
) -> float:
    """Confidence of acting on ``intent``: the recognizer's confidence times the ASR's
    (per-token probability, discounted by the no-speech probability), times a penalty for
    repairs (fuzzy words: 0.8; grammar alignment: its similarity). Calibration is checked by
    the accuracy-vs-threshold table."""
    if intent is None:
        return 0.0
    asr = math.exp(max(avg_logprob, -10.0)) * (1.0 - no_speech_prob)
    penalty = 0.8 if transform == "snapped" else similarity if transform == "aligned" else 1.0
    return max(0.0, min(1.0, intent.confidence * asr * penalty))


# -- expectations and scoring -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """What an utterance should do: an intent name and the action slots that must match.

    Slots not listed must be empty in the answer (a surprise brightness is a wrong action).
    """

    name: str
    slots: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "slots": dict(self.slots)}


def _slot(intent: Intent, key: str) -> Any:
    value = getattr(intent.slots, key)
    if key == "device_ids":
        return sorted(value)
    if key == "rgb" and value is not None:
        return list(value)
    return value


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _same(expected: Any, got: Any) -> bool:
    if (
        isinstance(expected, float | int)
        and not isinstance(expected, bool)
        and isinstance(got, float | int)
    ):
        return math.isclose(float(expected), float(got), abs_tol=1e-6)
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        return sorted(map(str, expected)) == sorted(map(str, got))
    return bool(expected == got)


def matches(expected: Expected, intent: Intent | None) -> bool:
    """Command acceptance of one answer: the intent and every action slot right."""
    if intent is None or intent.name != expected.name:
        return False
    for key in ACTION_SLOTS:
        got = _slot(intent, key)
        if key in expected.slots:
            if not _same(expected.slots[key], got):
                return False
        elif not _empty(got):
            return False
    unit = expected.slots.get("temperature_unit")
    return unit is None or intent.slots.temperature_unit == unit


def expected_from_label(label: Mapping[str, Any], snake: Callable[[str], str]) -> Expected:
    """A speech-to-intent benchmark label (``{"intent": "orderDrink", "slots": {...}}``) as the
    custom intent Hearth yields: names converted with the custom-intent loader's own
    snake_case rule, slot values compared as strings (``slots.custom``)."""
    slots = {snake(k): str(v) for k, v in dict(label.get("slots", {})).items()}
    return Expected(snake(str(label["intent"])), {"custom": slots})


def moves_device(intent: Intent | None, query_intents: frozenset[str]) -> bool:
    """Would acting on ``intent`` change something? Queries, ``cancel`` and ``confirm`` alone
    do not; everything else, custom intents included, does."""
    if intent is None:
        return False
    return intent.name not in query_intents and intent.name not in {"cancel", "confirm"}


def threshold_table(
    rows: Sequence[tuple[float, bool]],
    negatives: Sequence[float],
    thresholds: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
) -> list[dict[str, float]]:
    """Accuracy against a confidence threshold.

    ``rows``: (confidence, correct) of each command utterance; ``negatives``: the confidence of
    each negative clip that produced a device-moving intent. Below the threshold Hearth asks
    the user to repeat instead of acting.
    """
    out: list[dict[str, float]] = []
    n = len(rows)
    for th in thresholds:
        acted = [c for c, _ in rows if c >= th]
        right = sum(1 for c, ok in rows if ok and c >= th)
        wrong = len(acted) - right
        out.append(
            {
                "threshold": th,
                "command_acceptance": right / n if n else 0.0,
                "acted": len(acted) / n if n else 0.0,
                "wrong_action_rate": wrong / n if n else 0.0,
                "precision": right / len(acted) if acted else 1.0,
                "negatives_acted": float(sum(1 for c in negatives if c >= th)),
            }
        )
    return out
