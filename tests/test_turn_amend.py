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


# -- built-in commands: going on with one, taking one back (a simulated home) ---------------


class House:
    """A session's stages on the demo home, its devices simulated on a real Mosquitto."""

    def __init__(self, stages: Stages, dispatcher: Dispatcher) -> None:
        self.st = stages
        self.dispatcher = dispatcher

    async def say(self, text: str, n: int, language: str | None = None) -> p.IntentEvent:
        """A typed turn; its ``intent`` event once the session's ``n``-th turn has finished."""
        self.st.turns.text(p.TextInput(text=text, language=language))
        await self.st.metrics(n)
        return self.st.of(p.IntentEvent)[-1]

    def state(self, device_id: str) -> dict[str, Any]:
        return self.dispatcher.state(device_id) or {}

    async def settled(self, device_id: str, **want: Any) -> None:
        await eventually(lambda: all(self.state(device_id).get(k) == v for k, v in want.items()))

    def acted(self, utterance_id: str) -> list[tuple[str, str | None]]:
        return [(a.intent, a.device_id) for a in self.st.of(p.ActionEvent)
                if a.utterance_id == utterance_id and a.status == "published"]


@pytest.fixture
async def house(mosquitto: Mosquitto) -> AsyncIterator[House]:
    from devices.simulators import SimulatedHome

    cfg = load_demo_config()
    sim = SimulatedHome(cfg, mosquitto.url)
    await sim.start()
    client = MqttClient(mosquitto.url, client_id="hearth-amend-house")
    await client.connect()
    dispatcher = Dispatcher(cfg, client)
    await dispatcher.start()
    st = Stages()
    st.res.recognizer = Recognizer(cfg)
    st.res.dispatcher = dispatcher
    try:
        yield House(st, dispatcher)
    finally:
        await dispatcher.close()
        await client.close()
        await sim.stop()


async def test_no_wait_after_a_command_corrects_it_and_puts_the_first_device_back(
    house: House,
) -> None:
    await house.settled("kitchen_light", state="off")  # the simulated home starts off
    first = await house.say("turn on the kitchen light", 1)
    await house.settled("kitchen_light", state="on")
    second = await house.say("no wait, the living room light", 2)
    assert second.amends == first.utterance_id
    assert second.intent is not None and second.intent.name == "light_on"
    assert second.intent.slots.device_ids == ["living_room_light"]
    assert f"corrects {first.utterance_id}" in second.reason
    await house.settled("living_room_light", state="on")
    await house.settled("kitchen_light", state="off")  # as it was before the first command
    assert sorted(house.acted(second.utterance_id)) == [
        ("light_off", "kitchen_light"), ("light_on", "living_room_light")]


async def test_a_correction_restores_the_level_a_light_had(house: House) -> None:
    await house.say("set the kitchen light to 40 percent", 1)
    await house.settled("kitchen_light", state="on", brightness=40)
    await house.say("turn off the kitchen light", 2)
    await house.settled("kitchen_light", state="off")
    third = await house.say("actually the bedroom lamp", 3)
    assert third.intent is not None and third.intent.name == "light_off"
    assert third.intent.slots.device_ids == ["bedroom_lamp"]
    await house.settled("kitchen_light", state="on", brightness=40)


async def test_a_correction_in_chinese(house: House) -> None:
    first = await house.say("打开厨房灯", 1, language="zh-CN")
    await house.settled("kitchen_light", state="on")
    second = await house.say("不对，客厅灯", 2, language="zh-CN")
    assert second.amends == first.utterance_id
    assert second.intent is not None and second.intent.slots.device_ids == ["living_room_light"]
    await house.settled("kitchen_light", state="off")
    await house.settled("living_room_light", state="on")


async def test_going_on_with_a_command_sets_that_light_not_the_whole_home(house: House) -> None:
    first = await house.say("turn on the kitchen light", 1)
    await house.settled("kitchen_light", state="on")
    second = await house.say("to 30 percent", 2)
    assert second.amends == first.utterance_id
    assert second.intent is not None and second.intent.name == "light_set"
    assert second.intent.slots.device_ids == ["kitchen_light"]
    await house.settled("kitchen_light", state="on", brightness=30)
    assert house.acted(second.utterance_id) == [("light_set", "kitchen_light")]
    third = await house.say("and the living room light", 3)
    assert third.amends == second.utterance_id
    # only the light added: the kitchen light is not set again
    assert house.acted(third.utterance_id) == [("light_set", "living_room_light")]
    await house.settled("living_room_light", state="on", brightness=30)
    assert house.state("bedroom_lamp").get("state") == "off"


async def test_a_command_of_its_own_is_no_amendment(house: House) -> None:
    await house.say("turn on the kitchen light", 1)
    second = await house.say("turn off the office light", 2)
    assert second.amends is None
    await house.settled("kitchen_light", state="on")  # nothing put back


async def test_taking_back_never_reopens_a_sensitive_door(house: House) -> None:
    await house.say("open the garage door", 1)  # typed: heard as said, above the 0.9 bar
    await house.settled("garage_door", state="open")
    await house.say("close the garage door", 2)
    await house.settled("garage_door", state="closed")
    second = await house.say("no wait, the bedroom blinds", 3)
    assert second.intent is not None and second.intent.name == "cover_close"
    assert second.intent.slots.device_ids == ["bedroom_blinds"]
    assert all(d != "garage_door" for _, d in house.acted(second.utterance_id))


async def test_a_spoken_correction_after_the_turn_ended_corrects_it(
    hearth_server: ServerThread,
) -> None:
    # 900 ms of silence ends the first turn whatever the grammar says; the correction then
    # comes as a turn of its own, within the amend window
    pcm = _joined("Turn on the office light.", 900, "No wait, the kitchen light.")
    events = await _stream(hearth_server, pcm)
    heard = [e["text"] for e in events if e["type"] == "transcript.final"]
    intents = [e for e in events if e["type"] == "intent"]
    assert len(intents) == 2, (heard, intents)
    first, second = intents
    assert second["amends"] == first["utterance_id"], (heard, intents)
    finals = {(a["intent"], a["device_id"]) for a in _acted(events)
              if a["utterance_id"] == second["utterance_id"]}
    # the kitchen light on; the office light as it was before the first turn (off)
    assert finals == {("light_on", "kitchen_light"), ("light_off", "office_light")}, heard
