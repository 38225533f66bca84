"""Dispatcher + MQTT client + simulators against a real Mosquitto (tests/mqtt_fixtures.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from devices.actions import ActionResult, BrokerUnavailable, PublishFailed
from devices.dispatcher import Dispatcher
from devices.mqtt import MqttClient, MqttMessage
from devices.registry import HomeConfig, load_demo_config
from devices.simulators import SimulatedHome
from intents.custom import CustomAction
from intents.schema import Intent, Slots
from tests.mqtt_fixtures import Mosquitto, eventually, free_port

pytestmark = pytest.mark.timeout(60)


def intent(name: str, *device_ids: str, confidence: float = 0.95, **slots: Any) -> Intent:
    return Intent(
        name=name,
        slots=Slots(device_ids=list(device_ids), **slots),
        confidence=confidence,
        source="grammar",
        reason="test",
    )


def demo(confirm_timeout_s: float = 2.0) -> HomeConfig:
    cfg = load_demo_config()
    cfg.mqtt.confirm_timeout_s = confirm_timeout_s
    return cfg


class Home:
    def __init__(
        self, cfg: HomeConfig, client: MqttClient, dispatcher: Dispatcher, sim: SimulatedHome
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.dispatcher = dispatcher
        self.sim = sim


HomeFactory = Callable[..., Awaitable[Home]]


@pytest.fixture
async def home_factory(mosquitto: Mosquitto) -> AsyncIterator[HomeFactory]:
    started: list[Home] = []

    async def make(
        *,
        silent: frozenset[str] = frozenset(),
        custom: dict[str, CustomAction] | None = None,
        confirm_timeout_s: float = 2.0,
        **client_kw: Any,
    ) -> Home:
        cfg = demo(confirm_timeout_s)
        sim = SimulatedHome(cfg, mosquitto.url, silent=silent)
        await sim.start()
        client = MqttClient(mosquitto.url, client_id=f"hearth-test-{len(started)}", **client_kw)
        await client.connect()
        dispatcher = Dispatcher(cfg, client, custom_actions=custom)
        await dispatcher.start()
        h = Home(cfg, client, dispatcher, sim)
        started.append(h)
        return h

    yield make
    for h in started:
        await h.dispatcher.close()
        await h.client.close()
        await h.sim.stop()


async def test_publish_then_confirmed_for_every_adapter(home_factory: HomeFactory) -> None:
    h = await home_factory()
    seen: list[ActionResult] = []
    cases = [
        intent("light_on", "living_room_light"),  # zigbee2mqtt
        intent("light_set", "bedroom_lamp", brightness=40),  # tasmota
        intent("switch_on", "tv_plug"),  # shelly
        intent("light_set", "office_light", brightness=70),  # homeassistant
        intent("cover_set_position", "bedroom_blinds", position=50),
        intent("climate_set_temperature", "thermostat", temperature=22.5),
        intent("media_resume", "speaker"),
        intent("media_set_volume", "speaker", volume=55),
        intent("fan_on", "ceiling_fan"),
        intent("lock", "front_door_lock"),
        intent("cover_close", "garage_door"),
    ]
    for i in cases:
        results = await h.dispatcher.dispatch(i, on_result=seen.append)
        assert [r.status for r in results] == ["confirmed"], (i.name, results)
    published = [r for r in seen if r.status == "published"]
    assert len(published) == len(cases)
    assert all(r.published_at is not None for r in published)
    assert h.sim.state("bedroom_lamp")["brightness"] == 40
    lamp = h.dispatcher.state("bedroom_lamp")
    assert lamp is not None and lamp["state"] == "on" and lamp["brightness"] == 40
    assert h.dispatcher.state("thermostat")["temperature"] == 22.5  # type: ignore[index]
    assert h.sim.state("speaker") == {"state": "playing", "volume": 55}


async def test_several_devices_in_parallel(home_factory: HomeFactory) -> None:
    h = await home_factory()
    results = await h.dispatcher.dispatch(
        intent(
            "light_off",
            "living_room_light",
            "kitchen_light",
            "bedroom_lamp",
            "office_light",
            "hallway_light",
        )
    )
    assert {r.device_id: r.status for r in results} == {
        d: "confirmed"
        for d in (
            "living_room_light",
            "kitchen_light",
            "bedroom_lamp",
            "office_light",
            "hallway_light",
        )
    }


async def test_silent_device_is_unconfirmed(home_factory: HomeFactory) -> None:
    h = await home_factory(silent=frozenset({"kitchen_light"}), confirm_timeout_s=0.5)
    seen: list[str] = []
    [result] = await h.dispatcher.dispatch(
        intent("light_on", "kitchen_light"), on_result=lambda r: seen.append(r.status)
    )
    assert result.status == "unconfirmed"
    assert "kitchen_light" in result.detail
    assert seen == ["published", "unconfirmed"]


async def test_sensitive_low_confidence_is_rejected_and_nothing_published(
    home_factory: HomeFactory,
) -> None:
    h = await home_factory()
    before = dict(h.sim.commands)
    [unlock] = await h.dispatcher.dispatch(intent("unlock", "front_door_lock", confidence=0.8))
    [garage] = await h.dispatcher.dispatch(intent("cover_open", "garage_door", confidence=0.7))
    [low] = await h.dispatcher.dispatch(intent("light_on", "kitchen_light", confidence=0.2))
    assert unlock.status == garage.status == low.status == "rejected"
    assert "sensitive" in unlock.detail and "0.90" in unlock.detail
    assert "below the minimum" in low.detail
    await asyncio.sleep(0.2)
    assert h.sim.commands == before
    assert h.sim.state("front_door_lock")["state"] == "locked"
    [ok] = await h.dispatcher.dispatch(intent("unlock", "front_door_lock", confidence=0.97))
    assert ok.status == "confirmed"
    assert h.sim.state("front_door_lock")["state"] == "unlocked"


async def test_scene_expands_to_device_actions(home_factory: HomeFactory) -> None:
    h = await home_factory()
    results = await h.dispatcher.dispatch(intent("scene_activate", scene="movie_night"))
    assert sorted((r.device_id, r.intent, r.status) for r in results) == [
        ("living_room_light", "light_set", "confirmed"),
        ("tv_plug", "switch_on", "confirmed"),
    ]
    assert h.sim.state("living_room_light")["brightness"] == 20
    assert all(r.extra.get("scene") == "movie_night" for r in results)


async def test_queries_answer_from_known_state_without_publishing(
    home_factory: HomeFactory,
) -> None:
    h = await home_factory()
    before = dict(h.sim.commands)
    [temp] = await h.dispatcher.dispatch(intent("climate_get_temperature", "kitchen_temperature"))
    assert temp.status == "confirmed"
    assert temp.state is not None and temp.state["current_temperature"] == 21.5
    [lock] = await h.dispatcher.dispatch(intent("get_state", "front_door_lock"))
    assert lock.state is not None and lock.state["state"] == "locked"
    assert lock.topic is None
    assert h.sim.commands == before
    assert await h.dispatcher.dispatch(intent("cancel")) == []


async def test_state_listener_sees_changes(home_factory: HomeFactory) -> None:
    h = await home_factory()
    changes: list[tuple[str, dict[str, Any]]] = []
    h.dispatcher.add_state_listener(lambda d, s: changes.append((d, s)))
    await h.dispatcher.dispatch(intent("switch_on", "coffee_maker"))
    assert ("coffee_maker", "on") in [(d, s.get("state")) for d, s in changes]
    assert h.dispatcher.states()["coffee_maker"]["state"] == "on"


async def test_relative_brightness_uses_known_state(home_factory: HomeFactory) -> None:
    h = await home_factory()
    await h.dispatcher.dispatch(intent("light_set", "bedroom_lamp", brightness=40))
    [r] = await h.dispatcher.dispatch(intent("light_set", "bedroom_lamp", brightness_step=20))
    assert r.status == "confirmed"
    assert h.sim.state("bedroom_lamp")["brightness"] == 60


async def test_custom_action_confirms_on_state_topic(
    home_factory: HomeFactory, mosquitto: Mosquitto
) -> None:
    action = CustomAction(
        topic="kitchen/coffee/{size}/brew",
        payload='{{"size":"{size}"}}',
        state_topic="kitchen/coffee/status",
        state_value="brewing {size}",
        confirm_timeout_s=3,
    )
    h = await home_factory(custom={"order_coffee": action})
    maker = MqttClient(mosquitto.url, client_id="coffee")
    await maker.connect()

    def brew(msg: MqttMessage) -> None:
        size = msg.topic.split("/")[2]
        asyncio.get_running_loop().create_task(
            maker.publish("kitchen/coffee/status", f"brewing {size}")
        )

    maker.subscribe("kitchen/coffee/+/brew", brew)
    await maker.barrier()
    try:
        i = Intent(
            name="order_coffee",
            slots=Slots(custom={"size": "large"}),
            confidence=0.9,
            source="custom",
            reason="test",
        )
        [r] = await h.dispatcher.dispatch(i)
        assert r.status == "confirmed", r
        assert r.payload == '{"size":"large"}'
        [missing] = await h.dispatcher.dispatch(i.model_copy(update={"slots": Slots()}))
        assert missing.status == "rejected" and "size" in missing.detail
    finally:
        await maker.close()


async def test_unreachable_broker_is_a_clear_error() -> None:
    port = free_port()
    client = MqttClient(f"mqtt://127.0.0.1:{port}", connect_timeout_s=2)
    with pytest.raises(BrokerUnavailable) as e:
        await client.connect()
    assert f"127.0.0.1:{port}" in str(e.value)
    with pytest.raises(PublishFailed):
        await client.publish("x/y", "z")


async def test_silent_server_is_a_clear_error_not_a_hang() -> None:
    # Something listens but never speaks MQTT: no CONNACK within the connect timeout.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = MqttClient(f"mqtt://127.0.0.1:{port}", connect_timeout_s=1)
        with pytest.raises(BrokerUnavailable, match="no CONNACK"):
            await client.connect()


async def test_broker_down_gives_failed_results_not_hangs(
    home_factory: HomeFactory, mosquitto: Mosquitto
) -> None:
    h = await home_factory(publish_timeout_s=0.5)
    mosquitto.stop()
    await eventually(lambda: not h.client.connected)
    [r] = await h.dispatcher.dispatch(intent("light_on", "kitchen_light"))
    assert r.status == "failed"
    assert "not sent" in r.detail
    assert h.client.outbox_size == 0


async def test_embedded_broker_smoke() -> None:
    from devices.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    await broker.start()
    try:
        cfg = demo()
        sim = SimulatedHome(cfg, broker.url)
        await sim.start()
        client = MqttClient(broker.url, client_id="hearth-embedded")
        await client.connect()
        dispatcher = Dispatcher(cfg, client)
        await dispatcher.start()
        try:
            # One action per adapter convention, through amqtt instead of Mosquitto.
            for i in (
                intent("light_on", "kitchen_light"),
                intent("light_set", "bedroom_lamp", brightness=30),
                intent("switch_on", "tv_plug"),
                intent("cover_close", "garage_door"),
            ):
                [r] = await dispatcher.dispatch(i)
                assert r.status == "confirmed", r
            await eventually(lambda: dispatcher.state("kitchen_temperature") is not None)
        finally:
            await dispatcher.close()
            await client.close()
            await sim.stop()
    finally:
        await broker.stop()


async def test_shelly_command_that_changes_nothing_is_confirmed(home_factory: HomeFactory) -> None:
    # A Shelly only notifies changes; the GetStatus reply confirms a no-op command.
    h = await home_factory()
    for _ in range(2):
        [r] = await h.dispatcher.dispatch(intent("switch_on", "tv_plug"))
        assert r.status == "confirmed", r
    [r] = await h.dispatcher.dispatch(intent("light_off", "hallway_light"))  # already off
    assert r.status == "confirmed", r
