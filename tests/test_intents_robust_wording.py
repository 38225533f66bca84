"""Kinds of wording the robust tier reads (fresh phrasings found wrong or refused, fixed as a
kind, never as a sentence): each case says what acts, or that nothing may."""

from __future__ import annotations

import pytest

from intents.recognizer import Recognizer

MIN_CONF = 0.5


@pytest.fixture(scope="module")
def demo() -> Recognizer:
    return Recognizer.from_config_path(None)


@pytest.mark.parametrize(("text", "area", "name", "ids"), [
    # a verb with its own particle: "shut … down", "power … down" is off, "fire … up" on
    ("shut the coffee maker down", None, "switch_off", ["coffee_maker"]),
    ("shut down the fan", None, "fan_off", ["ceiling_fan"]),
    ("power the tv down", None, "switch_off", ["tv_plug"]),
    ("fire up the coffee machine", None, "switch_on", ["coffee_maker"]),
    ("fire the fan up", None, "fan_on", ["ceiling_fan"]),
    ("shut the blinds down", None, "cover_close", ["bedroom_blinds"]),
    # how hot or cold a room is, in everyday words
    ("it's roasting in here", "living_room", "climate_set_temperature", ["thermostat"]),
    ("it's a bit nippy in here", "living_room", "climate_set_temperature", ["thermostat"]),
    # "it" after a remark that named one device is that device
    ("we're done with the kitchen light, you can turn it off", None, "light_off",
     ["kitchen_light"]),
])
def test_wording_acts(demo: Recognizer, text: str, area: str | None, name: str,
                      ids: list[str]) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and got.confidence >= MIN_CONF, (text, got)
    assert (got.name, sorted(got.slots.device_ids)) == (name, ids), got


@pytest.mark.parametrize(("text", "area"), [
    # a remark naming two devices (one by a loose word): "them" is not the one the lexicon knows
    ("I am done with the coffee machine and the tv, turn them off", None),
    ("fire up the heating", None),  # the thermostat is not switched on or off
])
def test_wording_does_not_act(demo: Recognizer, text: str, area: str | None) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is None or got.confidence < MIN_CONF, (text, got)
