"""Grammar-constrained choice (intents.constrained): slot lists, substitution neighbours and
the choice rule, with a scorer that stands in for Whisper (pure; no audio, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from intents.constrained import (
    SlotLists,
    choose,
    expand_template,
    neighbours,
    render,
    sentence_words,
    value_margin,
)
from intents.custom import load_custom_intents

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / (
    "picovoice_coffee.yaml")


@pytest.fixture(scope="module")
def lists() -> SlotLists:
    return SlotLists.from_custom_data([load_custom_intents(COFFEE).data])


def _truth_scorer(truth: str, calls: list[int]) -> object:
    """Log-probability stand-in: minus the word edit distance to what was "said"."""
    said = sentence_words(truth)

    def score(sentences: Sequence[str]) -> list[float]:
        calls.append(len(sentences))
        out = []
        for s in sentences:
            w = sentence_words(s)
            prev = list(range(len(w) + 1))
            for i, a in enumerate(said, 1):
                cur = [i] + [0] * len(w)
                for j, b in enumerate(w, 1):
                    cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b))
                prev = cur
            out.append(-3.0 * prev[-1])
        return out

    return score


def test_template_values_expand_to_every_spoken_form(lists: SlotLists) -> None:
    forms = expand_template("(twelve | 12) (ounce | ounces | oz)")
    assert ("twelve", "ounce") in forms and ("12", "oz") in forms and len(forms) == 6
    size = {v.out: v for v in lists.lists["size"]}
    # The output text leads when it is a way of saying the value: substitutions write it.
    assert size["twelve ounce"].canonical == ("twelve", "ounce")
    assert ("12", "ounces") in size["twelve ounce"].surfaces


def test_locate_prefers_long_values_and_never_overlaps(lists: SlotLists) -> None:
    words = sentence_words("give me a latte with some soy milk and sugar")
    spans = lists.locate(words, {"coffee_drink": "latte", "milk_amount": "some soy milk",
                                 "sugar_amount": "sugar"})
    assert spans == {"coffee_drink": (3, 4), "milk_amount": (5, 8), "sugar_amount": (9, 10)}
    # Digits are found through the value's spoken forms.
    assert lists.locate(sentence_words("brew a 12 oz latte"),
                        {"size": "twelve ounce", "coffee_drink": "latte"}) == {
        "size": (2, 4), "coffee_drink": (4, 5)}
    # A value that is not said is not a plain substitution: no neighbours.
    assert lists.locate(words, {"coffee_drink": "mocha"}) is None
    assert neighbours(words, {"coffee_drink": "mocha"}, lists) == []


def test_neighbours_swap_one_slot_and_try_every_slot_early(lists: SlotLists) -> None:
    words = sentence_words("give me a double shot mocha with a little bit of milk")
    slots = {"number_of_shots": "double shot", "coffee_drink": "mocha",
             "milk_amount": "a little bit of milk"}
    out = neighbours(words, slots, lists)
    assert len(out) == 2 + 9 + 35  # every other value of each list, once
    first = {next(k for k in s if s[k] != slots[k]) for _, s in out[:3]}
    assert first == set(slots)  # round-robin: each slot in the first three
    texts = {" ".join(w) for w, _ in out}
    assert "give me a double shot mocha with a little bit of almond milk" in texts
    assert "give me a single shot mocha with a little bit of milk" in texts
    # The closest alternatives of a slot come first.
    milk = [s["milk_amount"] for _, s in out if s["milk_amount"] != slots["milk_amount"]]
    assert milk[0].startswith("a little bit of")
    assert len(neighbours(words, slots, lists, per_slot=2)) == 6


def test_choose_fixes_two_wrong_slots_in_two_rounds(lists: SlotLists) -> None:
    calls: list[int] = []
    said = "give me a single shot mocha with a little bit of almond milk"
    decoded = ("give me a double shot mocha with a little bit of milk",
               {"number_of_shots": "double shot", "coffee_drink": "mocha",
                "milk_amount": "a little bit of milk"})
    c = choose([decoded], lists, _truth_scorer(said, calls), margin=2.0, rounds=2)  # type: ignore[arg-type]
    assert c.candidate is not None and c.switched
    assert c.candidate.slot_dict["number_of_shots"] == "single shot"
    assert c.candidate.slot_dict["milk_amount"] == "a little bit of almond milk"
    assert c.candidate.text == render(sentence_words(said))
    assert c.rounds == 2 and len(calls) == 2 and all(n <= 24 for n in calls)
    # One round fixes one slot only.
    c1 = choose([decoded], lists, _truth_scorer(said, []), margin=2.0, rounds=1)  # type: ignore[arg-type]
    assert c1.candidate is not None and c1.switched
    assert sum(c1.candidate.slot_dict[k] != v for k, v in decoded[1].items()) == 1


def test_margin_keeps_the_text_decode_unless_clearly_beaten(lists: SlotLists) -> None:
    said = "give me a mocha with some milk"
    decoded = ("give me a mocha with some milk", {"coffee_drink": "mocha",
                                                  "milk_amount": "some milk"})
    c = choose([decoded], lists, _truth_scorer(said, []), margin=2.0)  # type: ignore[arg-type]
    assert c.candidate is not None and not c.switched and c.base_score == 0.0
    # A candidate 3 points better (one word) does not beat a margin of 4.
    wrong = ("give me a latte with some milk", {"coffee_drink": "latte",
                                                "milk_amount": "some milk"})
    assert not choose([wrong], lists, _truth_scorer(said, []), margin=4.0).switched  # type: ignore[arg-type]
    assert choose([wrong], lists, _truth_scorer(said, []), margin=2.0).switched  # type: ignore[arg-type]


def test_other_seeds_and_no_base(lists: SlotLists) -> None:
    said = "make me a large latte"
    seeds = [("make me a small mocha", {"size": "small", "coffee_drink": "mocha"}),
             ("make me a large latte", {"size": "large", "coffee_drink": "latte"})]
    c = choose(seeds, lists, _truth_scorer(said, []), margin=2.0)  # type: ignore[arg-type]
    assert c.switched and c.candidate is not None
    assert c.candidate.slot_dict == {"size": "large", "coffee_drink": "latte"}
    c = choose(seeds[:1], lists, _truth_scorer(said, []), base=None, rounds=2)  # type: ignore[arg-type]
    assert c.candidate is not None and not c.switched and c.base_score is None
    assert c.candidate.slot_dict == {"size": "large", "coffee_drink": "latte"}
    empty = choose([], lists, _truth_scorer(said, []))  # type: ignore[arg-type]
    assert empty.candidate is None and empty.scored == 0


def test_value_margin_is_how_clearly_the_audio_picks_every_value(lists: SlotLists) -> None:
    said = "give me a large latte with soy milk"
    reading = {"size": "large", "coffee_drink": "latte", "milk_amount": "soy milk"}
    calls: list[int] = []
    score = _truth_scorer(said, calls)
    c = choose([(said, reading)], lists, score, rounds=1, limit=4)  # type: ignore[arg-type]
    assert c.scored == 4  # the cap left most neighbours unscored...
    m = value_margin(c, reading, lists, score)  # type: ignore[arg-type]
    # ... so they are scored now, in one batch; every other value costs at least one word
    assert len(calls) == 2 and m == 3.0
    # a reading the audio disagrees with on one slot: negative, by that slot's difference
    wrong = {**reading, "coffee_drink": "mocha"}
    c = choose([(said.replace("latte", "mocha"), wrong)], lists, score, margin=99.0)  # type: ignore[arg-type]
    assert not c.switched and value_margin(c, wrong, lists, score) == -3.0  # type: ignore[arg-type]
    # a reading that was not among the candidates has no margin
    assert value_margin(c, {"coffee_drink": "americano"}, lists, score) is None  # type: ignore[arg-type]
