"""A number beyond what a device takes ("dim the light by 150 percent", "空调调高三十度") is
refused by the robust tier with its reason, never a recognizer failure (a Slots validation
error escaping ``recognize``); a Chinese setpoint step is at most 10 degrees, as in English."""

from __future__ import annotations

import pytest

from intents.recognizer import Recognizer


@pytest.fixture(scope="module")
def demo() -> Recognizer:
    return Recognizer.from_config_path(None)


@pytest.mark.parametrize(
    ("text", "language", "said"),
    [
        ("dim the kitchen light by 150 percent", "en", "-150"),
        ("brighten the kitchen light by 1000", "en", "1000"),
        ("turn the volume up by 150", "en", "150"),
        ("open the blinds 150 percent", "en", "150"),
        ("窗帘打开百分之两百", "zh-CN", "200"),
    ],
)
def test_a_value_no_device_takes_is_refused_with_a_reason(
    demo: Recognizer, text: str, language: str, said: str
) -> None:
    r = demo.recognize(text, language=language)
    assert r.intent is None
    assert "out of range" in r.reason and said in r.reason


@pytest.mark.parametrize(
    ("text", "step"),
    [("空调调高三十度", 10.0), ("空调降低一百度", -10.0), ("温度升高五十度", 10.0),
     ("空调调高两度", 2.0), ("空调降低两度", -2.0)],
)
def test_a_chinese_setpoint_step_is_at_most_ten_degrees(
    demo: Recognizer, text: str, step: float
) -> None:
    r = demo.recognize(text, language="zh-CN")
    assert r.intent is not None and r.intent.name == "climate_set_temperature"
    assert r.intent.slots.temperature_step == step
    assert r.intent.slots.temperature is None
