"""Custom intents offered to the model tier: the coffee example's intents join the
``hearth_command`` enum, their slots a typed ``custom_slots`` object, and the model's answer is
validated like a built-in intent's (only that intent's slots, only listed values, what the MQTT
action needs present, sensitive actions capped). The routing layer is driven by a tier whose
answer each test scripts; the request side is checked against the OpenAI backend's body."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from devices.registry import HomeConfig, load_demo_config
from intents.model_tier import (
    COMMAND_TOOL,
    ImageInput,
    ModelAnswer,
    ModelBackend,
    ModelQuery,
    ModelTier,
    ModelTierSettings,
    ToolCall,
    build_model_tier,
    build_tools,
)
from intents.model_tier_openai import OpenAIModelTier

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / "coffee.yaml"


@pytest.fixture
def home(tmp_path: Path) -> HomeConfig:
    cfg = load_demo_config()
    path = tmp_path / "coffee.yaml"
    shutil.copy(COFFEE, path)
    cfg.custom_intents = [str(path)]
    return cfg


class _Scripted(ModelTier):
    def __init__(self, answer: dict[str, Any], **kw: Any) -> None:
        super().__init__(
            ModelTierSettings(backend=ModelBackend.OPENAI, url="http://127.0.0.1:9/v1", **kw)
        )
        self.answer = answer

    def _ask(self, query: ModelQuery) -> ModelAnswer:
        return ModelAnswer(tool_calls=(ToolCall(COMMAND_TOOL, json.dumps(self.answer)),))


def _command_schema(home: HomeConfig, **kw: Any) -> dict[str, Any]:
    settings = ModelTierSettings(backend=ModelBackend.OPENAI, url="http://x/v1", **kw)
    params: dict[str, Any] = build_tools(home, settings)[0]["function"]["parameters"]
    return params


def test_custom_intents_are_offered_with_typed_slots(home: HomeConfig) -> None:
    params = _command_schema(home)
    intent = params["properties"]["intent"]
    assert {"order_drink", "cancel_order"} <= set(intent["enum"])
    assert "light_on" in intent["enum"] and "confirm" not in intent["enum"]
    assert "order_drink: custom; custom_slots" in intent["description"]
    slots = params["properties"]["custom_slots"]
    assert slots["additionalProperties"] is False
    props = slots["properties"]
    assert {"size", "roast", "number_of_shots", "coffee_drink", "milk_amount",
            "sugar_amount"} <= set(props)
    # canonical values (`out`), not what may be said (`in`)
    assert "eight ounce" in props["size"]["enum"] and "large" in props["size"]["enum"]
    assert "double shot" in props["number_of_shots"]["enum"]
    assert "latte" in props["coffee_drink"]["enum"]
    assert "needs coffee_drink" in slots["description"]


def test_custom_intents_can_be_narrowed_or_withheld(home: HomeConfig) -> None:
    only = _command_schema(home, custom_intents=["cancel_order"])
    assert "cancel_order" in only["properties"]["intent"]["enum"]
    assert "order_drink" not in only["properties"]["intent"]["enum"]
    none = _command_schema(home, custom_intents=[])
    assert "cancel_order" not in none["properties"]["intent"]["enum"]
    assert "custom_slots" not in none["properties"]
    rec = _Scripted({"intent": "cancel_order"}, custom_intents=[]).recognize(
        "cancel my coffee", config=home
    )
    assert rec.intent is None and "not allowed" in rec.reason


def test_valid_custom_answer_becomes_a_custom_intent(home: HomeConfig) -> None:
    tier = _Scripted({
        "intent": "order_drink",
        "custom_slots": {"coffee_drink": "latte", "size": "large"},
        "confidence": 0.8,
    })
    rec = tier.recognize("I could murder a big latte", config=home)
    assert rec.intent is not None
    assert (rec.intent.name, rec.intent.source) == ("order_drink", "llm")
    assert rec.intent.slots.custom == {"coffee_drink": "latte", "size": "large"}
    assert rec.intent.slots.device_ids == [] and rec.intent.confidence == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"intent": "order_drink", "custom_slots": {"coffee_drink": "whisky"}}, "not a value"),
        ({"intent": "order_drink", "custom_slots": {"size": "large"}}, "needs coffee_drink"),
        ({"intent": "order_drink", "custom_slots": {"coffee_drink": "latte", "colour": "red"}},
         "has no slot"),
        ({"intent": "cancel_order", "custom_slots": {"coffee_drink": "latte"}}, "has no slot"),
        ({"intent": "order_drink", "custom_slots": {"coffee_drink": "latte"},
          "device_ids": ["kitchen_light"]}, "device_ids not taken"),
        ({"intent": "light_on", "device_ids": ["kitchen_light"],
          "custom_slots": {"coffee_drink": "latte"}}, "takes no custom_slots"),
        ({"intent": "order_drink", "custom_slots": "latte"}, "custom_slots"),
        ({"intent": "make_tea"}, "not allowed"),
    ],
)
def test_invalid_custom_answers_are_rejected(
    home: HomeConfig, answer: dict[str, Any], why: str
) -> None:
    rec = _Scripted(answer).recognize("tea please", config=home)
    assert rec.intent is None
    assert rec.reason.startswith("model output invalid") and why in rec.reason


def test_sensitive_custom_action_stays_below_the_bar(home: HomeConfig, tmp_path: Path) -> None:
    text = Path(home.custom_intents[0]).read_text(encoding="utf-8")
    text = text.replace("payload: '{\"cancel\": true}'",
                        "payload: '{\"cancel\": true}'\n    sensitive: true")
    (tmp_path / "coffee.yaml").write_text(text, encoding="utf-8")
    rec = _Scripted({"intent": "cancel_order", "confidence": 1.0}).recognize(
        "scrap the coffee", config=home
    )
    assert rec.intent is not None
    assert rec.intent.confidence < home.security.sensitive_min_confidence
    trusted = _Scripted({"intent": "cancel_order", "confidence": 1.0},
                        trust_sensitive=True, max_confidence=1.0)
    rec = trusted.recognize("scrap the coffee", config=home)
    assert rec.intent is not None and rec.intent.confidence == 1.0


def test_openai_request_carries_the_custom_offer(home: HomeConfig) -> None:
    tier = build_model_tier(
        ModelTierSettings(backend=ModelBackend.OPENAI, url="http://127.0.0.1:9/v1",
                          output="json_schema")
    )
    assert isinstance(tier, OpenAIModelTier)
    body = tier.build_request("a big latte", config=home, images=list[ImageInput]())
    schema = body["response_format"]["json_schema"]["schema"]["anyOf"][0]
    args = schema["properties"]["arguments"]["properties"]
    assert "order_drink" in args["intent"]["enum"]
    assert "latte" in args["custom_slots"]["properties"]["coffee_drink"]["enum"]
