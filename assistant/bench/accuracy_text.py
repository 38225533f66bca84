"""Scoring side of the accuracy benchmark: what an utterance should do, whether an intent
does it, word error rate, and the accuracy-vs-confidence table.

The text-side *techniques* (normalization, vocabulary repair, n-best rescoring, grammar
alignment) are the shipped ones in ``intents.decode`` / ``intents.repair`` /
``intents.align``; the benchmark imports them so that it measures what the server runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from intents.repair import normalize_transcript, spell_numbers, words
from intents.schema import Intent

#: Slots that say *what happens*. ``area``/``floor``/``domain`` only describe how the user
#: named the target; the resolved ``device_ids`` carry the consequence, so they are compared
#: instead. ``temperature_unit`` is compared only when the expectation names one.
ACTION_SLOTS: Final = (
    "device_ids", "brightness", "brightness_step", "color", "rgb", "color_temp_kelvin",
    "temperature", "position", "volume", "scene", "custom",
)


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
