"""Custom intent files: loading, errors with file and line, recognition, the coffee example."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from devices.registry import load_config, load_demo_config
from intents.custom import CustomIntentError, load_custom_intents, parse_custom_intents, snake_case
from intents.recognizer import Recognizer

EXAMPLE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / "coffee.yaml"
RHINO = Path(__file__).resolve().parents[2] / "shared" / "data" / "picovoice-speech-to-intent" / (
    "rhino-context-coffee_maker.yaml")

GARDEN = """\
language: en
intents:
  waterGarden:
    data:
      - sentences:
          - "water the {zone} [garden] [for {minutes} minutes]"
          - "(start|run) the sprinkler[s] [in the {zone}]"
        slots: {minutes: 10}
  feedFish:
    data:
      - sentences: ["feed the fish"]
lists:
  zone:
    values:
      - {in: "(front|front yard)", out: front}
      - back
  minutes:
    range: {from: 1, to: 60}
actions:
  water_garden:
    topic: garden/{zone}/water
    payload: '{{"minutes": {minutes}}}'
    sensitive: false
"""


@pytest.fixture(scope="module")
def garden_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("custom") / "garden.yaml"
    p.write_text(GARDEN, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def rec(garden_file: Path) -> Recognizer:
    return Recognizer(load_demo_config(), custom_intent_files=[garden_file, EXAMPLE])


def test_snake_case() -> None:
    assert snake_case("orderDrink") == "order_drink"
    assert snake_case("Feed-Fish") == "feed_fish"


def test_custom_recognition_with_synonyms_and_numbers(rec: Recognizer) -> None:
    i = rec.recognize("water the front yard garden for 25 minutes").intent
    assert i is not None
    assert (i.name, i.source) == ("water_garden", "custom")
    assert i.slots.custom == {"zone": "front", "minutes": 25}
    assert i.slots.device_ids == []
    assert "garden.yaml" in i.reason


def test_custom_defaults_for_unsaid_slots(rec: Recognizer) -> None:
    i = rec.recognize("water the back").intent
    assert i is not None
    assert i.slots.custom == {"zone": "back", "minutes": 10}


def test_custom_actions_exposed(rec: Recognizer) -> None:
    assert rec.custom_actions["water_garden"].topic == "garden/{zone}/water"
    assert "order_drink" in rec.custom_actions
    assert "feed_fish" not in rec.custom_actions  # declared without an action


def test_built_in_intents_still_work(rec: Recognizer) -> None:
    i = rec.recognize("turn on the kitchen light").intent
    assert i is not None and i.name == "light_on"


def test_config_custom_intents_are_loaded(tmp_path: Path, garden_file: Path) -> None:
    cfg = tmp_path / "home.yaml"
    cfg.write_text(
        "areas: [{id: yard, name: yard}]\n"
        f"custom_intents: [{garden_file}]\n", encoding="utf-8")
    r = Recognizer(load_config(cfg))
    i = r.recognize("feed the fish").intent
    assert i is not None and i.name == "feed_fish"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("language: en\nintents:\n  x:\n    data:\n      - sentences: ['turn {nothing}']\n",
         5, "undefined list"),
        ("language: en\nintents:\n  x:\n    data:\n      - sentences: ['use <rule>']\n",
         5, "undefined rule"),
        ("language: en\nintents:\n  x:\n    data:\n      - sentences:\n          - 'a (b'\n",
         6, "bad template"),
        ("language: en\nintents:\n  x:\n    data: [{sentences: [go]}]\nactions:\n"
         "  y: {topic: t, payload: p}\n", 6, "unknown intent"),
        ("language: en\nintents:\n  x:\n    data: [{sentences: [go]}]\nactions:\n"
         "  x:\n    topic: t\n    qos: 7\n    payload: p\n", 8, "qos"),
        ("language: en\nintents:\n  x:\n    data: [{sentences: [go]}]\nbogus: 1\n", 5,
         "unknown key"),
        ("intents:\n  x:\n    data: [{sentences: [go]}]\n", 1, "language"),
        ("language: en\nintents: [1, 2\n", None, "invalid YAML"),
        ("language: en\nintents:\n  x:\n    data: [{sentences: [go]}]\nlists:\n  l: [a]\n",
         6, "list 'l'"),
    ],
)
def test_load_errors_name_file_and_line(text: str, line: int | None, words: str) -> None:
    with pytest.raises(CustomIntentError) as err:
        parse_custom_intents(text, path="my.yaml")
    msg = str(err.value)
    assert msg.startswith("my.yaml")
    assert words in msg
    if line is not None:
        assert err.value.line == line
        assert msg.startswith(f"my.yaml:{line}:")


def test_missing_file() -> None:
    with pytest.raises(CustomIntentError, match="cannot read"):
        load_custom_intents("/nonexistent/custom.yaml")


# -- the coffee example -----------------------------------------------------------------------


def test_example_file_loads() -> None:
    f = load_custom_intents(EXAMPLE)
    assert f.intent_names == ["cancel_order", "order_drink"]
    assert set(f.actions) == {"cancel_order", "order_drink"}


@pytest.mark.parametrize(
    ("text", "slots"),
    [
        ("can I get a large dark roast double shot latte with some soy milk and a bit of sugar",
         {"size": "large", "roast": "dark roast", "number_of_shots": "double shot",
          "coffee_drink": "latte", "milk_amount": "some soy milk",
          "sugar_amount": "a bit of sugar"}),
        ("make me a 12 oz iced mocha", {"size": "twelve ounce", "coffee_drink": "iced mocha"}),
        ("espresso", {"coffee_drink": "espresso"}),
        # the language's skip words apply to custom sentences too
        ("can you brew a large americano please",
         {"size": "large", "coffee_drink": "americano"}),
    ],
)
def test_example_orders(rec: Recognizer, text: str, slots: dict[str, str]) -> None:
    i = rec.recognize(text).intent
    assert i is not None and i.name == "order_drink"
    assert i.slots.custom == slots  # snake_case slot names, nothing the user did not say


def _rhino_samples(n: int) -> list[tuple[str, dict[str, str]]]:
    """Sentences generated from the Picovoice (Rhino) grammar with their slot values."""
    doc = yaml.safe_load(RHINO.read_text(encoding="utf-8"))["context"]
    exprs: list[str] = doc["expressions"]["orderDrink"]
    values: dict[str, list[str]] = doc["slots"]
    rng = random.Random(7)
    out = []
    for _ in range(n):
        expr = rng.choice(exprs)
        slots: dict[str, str] = {}

        def optional(m: re.Match[str]) -> str:
            return rng.choice(["", *[x.strip() for x in m.group(1).split(",")]])

        text = re.sub(r"\[([^\]]*)\]", optional, expr)
        for m in re.finditer(r"\$(\w+):(\w+)", text):
            slots[m.group(2)] = rng.choice(values[m.group(1)])
        for name, value in slots.items():
            text = re.sub(rf"\$\w+:{name}\b", value, text)
        out.append((" ".join(text.split()), slots))
    return out


@pytest.mark.skipif(not RHINO.is_file(), reason="Picovoice grammar not available")
def test_example_covers_the_picovoice_grammar(rec: Recognizer) -> None:
    for text, slots in _rhino_samples(120):
        i = rec.recognize(text).intent
        assert i is not None and i.name == "order_drink", text
        assert i.slots.custom == {snake_case(k): v for k, v in slots.items()}, text


def test_unknown_custom_language_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "xx.yaml"
    p.write_text("language: xx\nintents:\n  foo: {data: [{sentences: [foo]}]}\n",
                 encoding="utf-8")
    with pytest.raises(CustomIntentError, match=str(p)):
        Recognizer(load_demo_config(), custom_intent_files=[p])


def test_example_action_templates_fill_from_slots(rec: Recognizer) -> None:
    import json

    i = rec.recognize("make me a 12 oz iced mocha").intent
    assert i is not None
    action = rec.custom_actions[i.name]
    assert "{coffee_drink}" in action.payload  # camelCase placeholder converted
    values = {**i.slots.custom, "text": i.text}
    payload = re.sub(r"\{([a-z_]+)\}", lambda m: str(values[m.group(1)]), action.payload)
    assert json.loads(payload) == {"drink": "iced mocha", "order": "make me a 12 oz iced mocha"}


def test_placeholders_converted_but_json_braces_kept() -> None:
    f = parse_custom_intents(
        "language: en\nintents:\n  setMode: {data: [{sentences: ['mode {modeName}']}]}\n"
        "lists:\n  modeName: {values: [eco]}\n"
        "actions:\n  setMode: {topic: 'hvac/{modeName}', payload: '{\"m\": \"{modeName}\"}'}\n",
        path="m.yaml")
    a = f.actions["set_mode"]
    assert a.topic == "hvac/{mode_name}"
    assert a.payload == '{"m": "{mode_name}"}'
