"""Slot respelling by sound (intents.phonetic, intents.respell) and where the decoder uses it;
numbers are never invented by a repair. Pure text tests on the demo home plus the
coffee-maker custom intents (no audio, no models)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from devices.registry import load_demo_config
from intents.decode import FULL_DECODE, HypothesisDecoder
from intents.fuzzy import repair
from intents.phonetic import PhoneticIndex, phone_distance, phones, phonetic_similarity
from intents.recognizer import Recognizer
from intents.repair import VocabularySnapper
from intents.respell import (
    SlotRespeller,
    decoy_names,
    grammar_colors,
    grammar_words,
    home_spellings,
)

ROOT = Path(__file__).resolve().parents[1]
COFFEE = ROOT / "intents" / "data" / "examples" / "picovoice_coffee.yaml"
#: The demo home's security.sensitive_min_confidence.
SENSITIVE_MIN = 0.9


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(load_demo_config(), custom_intent_files=[COFFEE])


@pytest.fixture(scope="module")
def decoder(recognizer: Recognizer) -> HypothesisDecoder:
    d = HypothesisDecoder(recognizer, FULL_DECODE)
    d.warmup()
    return d


@pytest.fixture(scope="module")
def respeller() -> SlotRespeller:
    spellings = home_spellings(load_demo_config(), grammar_colors("en"))
    return SlotRespeller(spellings, grammar_words("en"), decoy_names("en"))


# -- sounds -----------------------------------------------------------------------------------


def test_phones_follow_english_spelling() -> None:
    assert phones("lounge lamp") == "lVnJlVmp"
    assert phones("bed room") == phones("bedroom")  # word boundaries are not sounds
    assert phones("Knight") == phones("night")
    assert phone_distance("td", "dt") < phone_distance("tk", "kt")  # t/d is a voicing pair


def test_sound_alike_names_are_closer_than_unrelated_ones() -> None:
    assert phonetic_similarity("round jump", "lounge lamp") > 0.7
    assert phonetic_similarity("round jump", "bedroom lamp") < 0.5
    assert phonetic_similarity("movie light", "movie night") > 0.85
    assert phonetic_similarity("kitchen", "kitchen") == 1.0
    assert phonetic_similarity("", "kitchen") == 0.0


def test_a_floor_prunes_only_names_that_cannot_matter() -> None:
    index = PhoneticIndex({"lounge lamp": "a", "bedroom lamp": "b", "kitchen light": "c"})
    full, pruned = index.closest("round jump"), index.closest("round jump", floor=0.58)
    assert full is not None and pruned is not None
    assert (full.spelling, full.similarity) == (pruned.spelling, pruned.similarity)
    assert full.runner_up > 0.0 and pruned.runner_up == 0.0  # below the floor: not scored
    assert index.closest("round jump", floor=0.95) is None
    assert phone_distance("lVnJlVmp", "kVCVnlVt", limit=1.0) == math.inf


# -- which spans are respelled ----------------------------------------------------------------


def test_a_misheard_name_is_respelled(respeller: SlotRespeller) -> None:
    found = respeller.respellings("turn on the round jump")
    assert [r.text for r in found] == ["turn on the lounge lamp"]
    assert found[0].entity == "device:living_room_light"
    assert found[0].margin >= 0.12


def test_frame_words_numbers_and_on_off_are_never_respelled(respeller: SlotRespeller) -> None:
    assert respeller.slot_runs("turn off the round jump") == [(3, 5)]
    assert respeller.slot_runs("set the heater to nineteen degrees") == [(2, 3)]
    assert respeller.is_frame("off") and respeller.is_frame("19")
    # "hunting" is no number: nothing may turn it into one
    assert respeller.respellings("set the thermostat to hunting degrees") == []


@pytest.mark.parametrize(
    "text",
    [
        "turn on the lava lamp",  # shares "lamp" with "lounge lamp", nothing else
        "turn on the lights in the bathroom",  # a decoy: a room this home does not have
        "turn on the sitting room light",  # "sitting" is not "living"
        "unlock the back door",
        "turn on the spaceship",
        "turn on the kitchen light",  # already right: nothing to respell
        "Good time.",  # no command around it: not the scene "bedtime"
        "the good time",
    ],
)
def test_other_names_are_not_respelled(respeller: SlotRespeller, text: str) -> None:
    assert respeller.respellings(text) == []


def test_a_decoy_the_home_has_is_the_homes_name() -> None:
    spellings = {"lamp": "device:lamp", "kitchen light": "device:kitchen_light"}
    r = SlotRespeller(spellings, grammar_words("en"), ["lamp", "oven"])
    assert [x.name for x in r.respellings("turn on the lamb")] == ["lamp"]
    assert r.respellings("turn on the oven") == []


# -- in the decoder ---------------------------------------------------------------------------


def test_decoder_respells_a_misheard_device_name(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["Turn on the round jump.", "turn on the round jump"])
    assert r.intent is not None and r.intent.name == "light_on"
    assert r.intent.slots.device_ids == ["living_room_light"]
    assert "respelled by sound" in r.reason and r.guessed
    assert r.intent.source == "fuzzy"
    assert 0.4 < r.intent.confidence < 0.8  # similarity × the snap penalty


def test_decoder_respells_a_misheard_scene(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["turn on movie light."])
    assert r.intent is not None and r.intent.slots.scene == "movie_night"
    # a scene may lock doors: a guessed one stays below the sensitive threshold
    assert r.intent.confidence < SENSITIVE_MIN


@pytest.mark.parametrize(
    "text",
    ["unlock the back door", "turn on the lava lamp", "turn on the lights in the bathroom",
     "turn on the drawing room light", "switch off the router", "turn on the spaceship",
     "Good time."],
)
def test_decoder_keeps_other_names_rejected(decoder: HypothesisDecoder, text: str) -> None:
    assert decoder.decode([text]).intent is None


def test_respelling_can_be_turned_off(recognizer: Recognizer) -> None:
    plain = HypothesisDecoder(recognizer, dataclasses.replace(FULL_DECODE, respell=False))
    assert plain.decode(["turn on the round jump"]).intent is None
    assert FULL_DECODE.respells and not dataclasses.replace(FULL_DECODE, snap=False).respells


# -- numbers are values -----------------------------------------------------------------------


def test_no_repair_turns_a_word_into_a_number(recognizer: Recognizer) -> None:
    # "white" heard as "right": once repaired to "eight", i.e. brightness 8 %
    assert recognizer.recognize("set the lounge lamp to right").intent is None
    vocabulary = frozenset({"set", "the", "lounge", "lamp", "to", "eight", "white"})
    fixed = repair("set the lounge lamp to right", vocabulary)
    assert fixed is None or "eight" not in fixed.text.split()
    assert VocabularySnapper(["eight", "light"]).snap("right") == "light"
    assert VocabularySnapper(["eight"]).snap("right") == "right"
    # a number may still be repaired to a number
    assert VocabularySnapper(["eighteen"]).snap("eighteen") == "eighteen"
