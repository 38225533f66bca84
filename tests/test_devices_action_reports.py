"""What an action reports against real devices (simulators on a real Mosquitto): the command
that was sent, the state the device reported after it, and a clear outcome when a relative
dimming cannot do anything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from devices.actions import ActionResult
from devices.dispatcher import MIN_DIM_BRIGHTNESS, Dispatcher
from devices.mqtt import MqttClient
from devices.registry import load_demo_config
from devices.simulators import SimulatedHome
from intents.schema import Intent, Slots
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import ServerThread, open_session, recv_utterances

pytestmark = pytest.mark.timeout(60)

Home = tuple[Dispatcher, SimulatedHome]


def intent(name: str, *device_ids: str, **slots: Any) -> Intent:
    return Intent(
        name=name,
        slots=Slots(device_ids=list(device_ids), **slots),
        confidence=0.95,
        source="grammar",
        reason="test",
    )


@pytest.fixture
async def home(mosquitto: Mosquitto) -> AsyncIterator[Home]:
    cfg = load_demo_config()
    cfg.mqtt.confirm_timeout_s = 3.0
    sim = SimulatedHome(cfg, mosquitto.url)
    await sim.start()
    client = MqttClient(mosquitto.url, client_id="hearth-action-reports")
    await client.connect()
    dispatcher = Dispatcher(cfg, client)
    await dispatcher.start()
    yield dispatcher, sim
    await dispatcher.close()
    await client.close()
    await sim.stop()


async def run(d: Dispatcher, i: Intent) -> list[ActionResult]:
    seen: list[ActionResult] = []
    await d.dispatch(i, on_result=seen.append)
    return seen


# -- Shelly: the action is the command sent, not the status read after it -------------------


@pytest.mark.parametrize(("name", "on"), [("switch_on", True), ("switch_off", False)])
async def test_shelly_action_shows_the_command_sent(home: Home, name: str, on: bool) -> None:
    d, sim = home
    seen = await run(d, intent(name, "tv_plug"))
    assert [r.status for r in seen] == ["published", "confirmed"]
    topic = f"{d.config.device('tv_plug').base_topic}/rpc"
    for r in seen:
        body = json.loads(r.payload or "")
        assert (r.topic, body["method"], body["params"]["on"]) == (topic, "Switch.Set", on)
    methods = [json.loads(c["payload"])["method"] for c in seen[0].extra["commands"]]
    assert methods == ["Switch.Set", "Switch.GetStatus"]  # the follow-up is still sent
    assert sim.state("tv_plug")["state"] == ("on" if on else "off")


async def test_shelly_action_event_over_the_websocket(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory()
    ws, _ = await open_session(server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the tv plug"}))
        got = await recv_utterances(ws, 1)
    actions = got.of("action")
    assert actions and {a["device_id"] for a in actions} == {"tv_plug"}
    for a in actions:
        assert json.loads(a["payload"])["method"] == "Switch.Set"
    assert actions[-1]["status"] == "confirmed"


# -- covers: the state after the command, not a stale mix -----------------------------------


@pytest.mark.parametrize("cover", ["garage_door", "bedroom_blinds"])
async def test_cover_confirmation_reports_the_state_after_the_command(
    home: Home, cover: str
) -> None:
    d, sim = home
    [opened] = await d.dispatch(intent("cover_open", cover))
    assert opened.status == "confirmed"
    assert opened.state is not None and opened.state["state"] == "open"
    assert opened.state.get("position", 100) == 100
    [closed] = await d.dispatch(intent("cover_close", cover))
    assert closed.status == "confirmed", closed.detail
    # The garage door reports its named state and its position in separate messages: the
    # confirmation may come before the new position, but never with the old one.
    assert closed.state is not None and closed.state["state"] == "closed"
    assert closed.state.get("position", 0) == 0
    [half] = await d.dispatch(intent("cover_set_position", cover, position=40))
    assert half.status == "confirmed"
    assert half.state is not None and half.state["position"] == 40
    assert half.state.get("state", "open") == "open"
    assert sim.state(cover)["position"] == 40


# -- relative brightness on a light that is off -----------------------------------------------


@pytest.mark.parametrize("light", ["kitchen_light", "bedroom_lamp", "office_light"])
async def test_dimming_a_light_that_is_off_says_so_and_sends_nothing(
    home: Home, light: str
) -> None:
    d, sim = home
    [off] = await d.dispatch(intent("light_off", light))
    assert off.status == "confirmed"
    seen = await run(d, intent("light_set", light, brightness_step=-20))
    assert [r.status for r in seen] == ["rejected"]  # nothing published
    name = d.config.device(light).name
    assert seen[0].detail == f"the {name} is off"
    assert seen[0].extra["noop"] is True
    assert sim.state(light)["state"] == "off"


async def test_brightening_a_light_that_is_off_turns_it_on_at_the_step(home: Home) -> None:
    d, sim = home
    await d.dispatch(intent("light_set", "bedroom_lamp", brightness=70))
    await d.dispatch(intent("light_off", "bedroom_lamp"))
    [r] = await d.dispatch(intent("light_set", "bedroom_lamp", brightness_step=20))
    assert r.status == "confirmed"
    assert (sim.state("bedroom_lamp")["state"], sim.state("bedroom_lamp")["brightness"]) == (
        "on",
        20,
    )


async def test_dimming_stops_at_the_lowest_level_and_then_says_so(home: Home) -> None:
    d, sim = home
    await d.dispatch(intent("light_set", "bedroom_lamp", brightness=10))
    [r] = await d.dispatch(intent("light_set", "bedroom_lamp", brightness_step=-30))
    assert r.status == "confirmed"
    assert sim.state("bedroom_lamp")["state"] == "on"  # dimmed, not turned off
    assert sim.state("bedroom_lamp")["brightness"] == MIN_DIM_BRIGHTNESS
    [again] = await d.dispatch(intent("light_set", "bedroom_lamp", brightness_step=-30))
    assert again.status == "rejected" and "lowest brightness" in again.detail
