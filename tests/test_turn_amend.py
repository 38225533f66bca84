"""The amend window (issue 21, assistant/turn/amend.py): the rest of an order cut off at a pause
completes it. The stages of one session as tests/test_turn_stages.py wires them, with the real
grammar (the coffee custom intents), the real dispatcher and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from assistant import protocol as p
from assistant.config import TurnDetectionSettings
from devices.custom_dispatch import mark_amendment
from devices.dispatcher import Dispatcher
from devices.mqtt import MqttClient, MqttMessage
from devices.registry import load_demo_config
from intents.recognizer import Recognizer
from intents.schema import Intent
from tests.mqtt_fixtures import Mosquitto, eventually
from tests.server_fixtures import ServerThread
from tests.test_turn_stages import Stages
from tests.test_turn_taking import _acted, _joined, _stream, coffee_server  # noqa: F401

pytestmark = pytest.mark.timeout(120)

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / (
    "picovoice_coffee.yaml")
TOPIC = "kitchen/coffee_maker/order"


class Kitchen:
    """A session's stages on the coffee grammar, and what reached the coffee maker."""

    def __init__(self, stages: Stages, orders: list[dict[str, Any]]) -> None:
        self.st = stages
        self.orders = orders

    async def say(self, text: str, n: int) -> None:
        """A typed turn; returns when the session's ``n``-th turn has finished."""
        self.st.turns.text(p.TextInput(text=text))
        await self.st.metrics(n)

    def intents(self) -> list[p.IntentEvent]:
        return self.st.of(p.IntentEvent)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(load_demo_config(), custom_intent_files=[COFFEE])


@pytest.fixture
async def kitchen(mosquitto: Mosquitto, recognizer: Recognizer) -> AsyncIterator[Kitchen]:
    cfg = load_demo_config()
    client = MqttClient(mosquitto.url, client_id="hearth-amend")
    await client.connect()
    dispatcher = Dispatcher(cfg, client, custom_actions=recognizer.custom_actions)
    await dispatcher.start()
    maker = MqttClient(mosquitto.url, client_id="coffee-maker")
    await maker.connect()
    orders: list[dict[str, Any]] = []

    def got(msg: MqttMessage) -> None:
        orders.append(json.loads(msg.payload))

    maker.subscribe(TOPIC, got)
    await maker.barrier()
    st = Stages()
    st.res.recognizer = recognizer
    st.res.dispatcher = dispatcher
    try:
        yield Kitchen(st, orders)
    finally:
        await dispatcher.close()
        await client.close()
        await maker.close()


async def test_the_rest_of_a_cut_off_order_amends_it(kitchen: Kitchen) -> None:
    await kitchen.say("I want a dark roast house coffee", 1)
    await eventually(lambda: len(kitchen.orders) == 1)
    assert kitchen.orders[0] == {
        "drink": "house coffee", "text": "I want a dark roast house coffee"}
    await kitchen.say("with some almond milk", 2)
    first, second = kitchen.intents()
    assert first.amends is None
    assert second.amends == first.utterance_id
    assert second.intent is not None and second.intent.name == "order_drink"
    assert second.intent.slots.custom == {
        "roast": "dark roast", "coffee_drink": "house coffee", "milk_amount": "some almond milk"}
    assert f"amends {first.utterance_id}" in second.reason
    await eventually(lambda: len(kitchen.orders) == 2)
    assert kitchen.orders[1] == {
        "drink": "house coffee",
        "text": "I want a dark roast house coffee with some almond milk",
        "amends": first.utterance_id,
    }
    actions = [a for a in kitchen.st.of(p.ActionEvent) if a.utterance_id == second.utterance_id]
    assert [a.status for a in actions] == ["published", "unconfirmed"]
    outcomes = [m.outcome for m in kitchen.st.of(p.MetricsEvent)]
    assert outcomes == ["actions", "actions"]  # not a lost fragment (no_intent)


async def test_thank_you_after_an_order_does_nothing(kitchen: Kitchen) -> None:
    await kitchen.say("I want a dark roast house coffee", 1)
    await kitchen.say("thank you", 2)
    _, thanks = kitchen.intents()
    assert thanks.intent is None and thanks.amends is None
    assert [m.outcome for m in kitchen.st.of(p.MetricsEvent)] == ["actions", "no_intent"]
    await eventually(lambda: len(kitchen.orders) == 1)
    await asyncio.sleep(0.2)  # a second order would have arrived by now
    assert len(kitchen.orders) == 1


async def test_a_second_command_is_not_an_amendment(kitchen: Kitchen) -> None:
    await kitchen.say("I want a dark roast house coffee", 1)
    await kitchen.say("give me a large cappuccino", 2)
    first, second = kitchen.intents()
    assert second.amends is None
    assert second.intent is not None and second.intent.slots.custom == {
        "size": "large", "coffee_drink": "cappuccino"}
    await eventually(lambda: len(kitchen.orders) == 2)
    assert "amends" not in kitchen.orders[1]
    # a fragment now completes the newest order, never the one before it
    await kitchen.say("with some milk", 3)
    third = kitchen.intents()[2]
    assert third.amends == second.utterance_id != first.utterance_id
    assert third.intent is not None and third.intent.slots.custom["coffee_drink"] == "cappuccino"


async def test_a_fragment_after_the_window_is_not_an_amendment(kitchen: Kitchen) -> None:
    res = kitchen.st.res
    res.settings = res.settings.model_copy(
        update={"turn_detection": TurnDetectionSettings(amend_ms=200)})
    await kitchen.say("I want a dark roast house coffee", 1)
    await asyncio.sleep(0.4)  # the next turn starts after the window (no timing asserted)
    await kitchen.say("with some almond milk", 2)
    assert kitchen.intents()[1].intent is None
    assert [m.outcome for m in kitchen.st.of(p.MetricsEvent)] == ["actions", "no_intent"]


async def test_a_reading_that_changes_a_slot_is_no_amendment(recognizer: Recognizer) -> None:
    from assistant.turn.amend import amendment

    def read(text: str) -> Intent:
        got = recognizer.recognize(text, language="en").intent
        assert got is not None
        return got

    order = read("I want a dark roast house coffee")
    assert amendment(order, read("I want a dark roast house coffee with some almond milk"))
    assert not amendment(order, read("I want a light roast house coffee with some milk"))
    assert not amendment(order, order)  # nothing added


def test_an_amendment_is_marked_in_a_json_object_payload_only() -> None:
    assert json.loads(mark_amendment('{"drink": "latte"}', "s-1") or "") == {
        "drink": "latte", "amends": "s-1"}
    assert mark_amendment("a large latte", "s-1") is None
    assert mark_amendment("[1, 2]", "s-1") is None


# -- through a real server, on synthesized speech ------------------------------------------


async def test_an_order_cut_at_a_long_pause_is_amended_by_its_rest(
    coffee_server: ServerThread,  # noqa: F811 (the fixture of tests/test_turn_taking.py)
) -> None:
    # 900 ms of silence ends the first turn whatever the grammar says (silence_ms: 500)
    pcm = _joined("I want a dark roast house coffee.", 900, "With some almond milk.")
    events = await _stream(coffee_server, pcm)
    heard = [e["text"] for e in events if e["type"] == "transcript.final"]
    intents = [e for e in events if e["type"] == "intent" and e["intent"]]
    custom = intents[-1]["intent"]["slots"]["custom"]
    assert custom.get("milk_amount") == "some almond milk", (heard, intents)
    acted = _acted(events)
    # cut at the pause (audio time, not load): the second turn amends the first
    assert len(intents) == 2, (heard, intents)
    first, second = intents
    assert first["amends"] is None and second["amends"] == first["utterance_id"], heard
    assert len(acted) == 2, acted  # the order and its amendment; no lost fragment
    assert json.loads(acted[1]["payload"])["amends"] == first["utterance_id"]
