"""Dispatcher policy and flow against an in-memory publisher (no broker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from devices.actions import ActionResult, PublishFailed
from devices.dispatcher import NEEDS_CONFIRMATION, Dispatcher
from devices.mqtt import MessageCallback, MqttMessage
from devices.registry import HomeConfig, load_demo_config
from intents.custom import CustomAction
from intents.schema import Intent, Slots

pytestmark = pytest.mark.timeout(30)


class FakeMqtt:
    """Records publishes; ``answer`` maps a command topic to the state message a device sends."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.subs: dict[str, list[MessageCallback]] = {}
        self.answer: dict[str, Callable[[str], tuple[str, bytes] | None]] = {}
        self.fail = False

    async def publish(
        self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False
    ) -> float:
        if self.fail:
            raise PublishFailed(f"publish to {topic} failed after 1 s (not sent: broker down)")
        text = payload.decode() if isinstance(payload, bytes) else payload
        self.published.append((topic, text))
        responder = self.answer.get(topic)
        if responder is not None:
            reply = responder(text)
            if reply is not None:
                asyncio.get_running_loop().call_soon(self.deliver, *reply)
        return asyncio.get_running_loop().time()

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Callable[[], None]:
        self.subs.setdefault(topic_filter, []).append(callback)
        return lambda: self.subs[topic_filter].remove(callback)

    async def barrier(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        return None

    def deliver(self, topic: str, payload: bytes) -> None:
        for cb in list(self.subs.get(topic, [])):
            cb(MqttMessage(topic, payload))


def intent(name: str, *device_ids: str, confidence: float = 0.95, **slots: Any) -> Intent:
    return Intent(
        name=name,
        slots=Slots(device_ids=list(device_ids), **slots),
        confidence=confidence,
        source="grammar",
        reason="test",
    )


def z2m_echo(topic: str) -> Callable[[str], tuple[str, bytes]]:
    """A zigbee2mqtt device that reports exactly what it was told."""

    def respond(payload: str) -> tuple[str, bytes]:
        body = json.loads(payload)
        if body.get("state") in ("LOCK", "UNLOCK"):
            body["lock_state"] = "locked" if body["state"] == "LOCK" else "unlocked"
        return topic, json.dumps(body).encode()

    return respond


@pytest.fixture
def cfg() -> HomeConfig:
    c = load_demo_config()
    c.mqtt.confirm_timeout_s = 0.3
    return c


@pytest.fixture
async def setup(cfg: HomeConfig) -> tuple[Dispatcher, FakeMqtt]:
    mqtt = FakeMqtt()
    for dev in ("kitchen_light", "living_room_light", "front_door_lock", "bedroom_blinds"):
        mqtt.answer[f"zigbee2mqtt/{dev}/set"] = z2m_echo(f"zigbee2mqtt/{dev}")
    d = Dispatcher(cfg, mqtt)
    await d.start()
    return d, mqtt


async def test_confirmed_flow_reports_published_then_final(
    setup: tuple[Dispatcher, FakeMqtt],
) -> None:
    d, mqtt = setup
    seen: list[ActionResult] = []
    [r] = await d.dispatch(
        intent("light_set", "kitchen_light", brightness=30), on_result=seen.append
    )
    assert [x.status for x in seen] == ["published", "confirmed"]
    assert r.status == "confirmed" and r.state is not None and r.state["brightness"] == 30
    assert mqtt.published == [("zigbee2mqtt/kitchen_light/set", '{"state":"ON","brightness":76}')]
    assert d.state("kitchen_light") == {"state": "on", "brightness": 30}


async def test_async_on_result_is_awaited(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, _ = setup
    seen: list[str] = []

    async def cb(r: ActionResult) -> None:
        await asyncio.sleep(0)
        seen.append(r.status)

    await d.dispatch(intent("light_on", "kitchen_light"), on_result=cb)
    assert seen == ["published", "confirmed"]


@pytest.mark.parametrize(
    ("i", "detail"),
    [
        (intent("light_on", "no_such_device"), "unknown device"),
        (intent("make_toast", "kitchen_light"), "unknown intent"),
        (intent("light_on"), "names no device"),
        (intent("light_on", "kitchen_light", confidence=0.3), "below the minimum"),
        (intent("unlock", "front_door_lock", confidence=0.85), "sensitive"),
        (intent("cover_open", "garage_door", confidence=0.85), "sensitive"),
        (intent("cover_set_position", "garage_door", confidence=0.85, position=10), "sensitive"),
        (intent("lock", "kitchen_light"), "cannot lock"),
        (intent("scene_activate", scene="no_such_scene"), "unknown scene"),
    ],
)
async def test_policy_rejections_publish_nothing(
    setup: tuple[Dispatcher, FakeMqtt], i: Intent, detail: str
) -> None:
    d, mqtt = setup
    seen: list[ActionResult] = []
    results = await d.dispatch(i, on_result=seen.append)
    assert [r.status for r in results] == ["rejected"]
    assert detail in results[0].detail
    assert seen == results
    assert mqtt.published == []


async def test_closing_a_sensitive_cover_needs_no_high_confidence(
    setup: tuple[Dispatcher, FakeMqtt],
) -> None:
    d, mqtt = setup
    i = intent("cover_close", "garage_door", confidence=0.7)
    assert not d.is_sensitive(i)
    [r] = await d.dispatch(i)
    assert r.status == "unconfirmed"  # nothing answers on the HA topics here
    assert mqtt.published == [("home/garage_door/set", "CLOSE")]
    assert d.is_sensitive(intent("cover_set_position", "garage_door", position=30))
    assert not d.is_sensitive(intent("cover_set_position", "garage_door", position=0))


async def test_require_confirmation(cfg: HomeConfig) -> None:
    cfg.security.require_confirmation = True
    mqtt = FakeMqtt()
    mqtt.answer["zigbee2mqtt/front_door_lock/set"] = z2m_echo("zigbee2mqtt/front_door_lock")
    d = Dispatcher(cfg, mqtt)
    await d.start()
    unlock = intent("unlock", "front_door_lock", confidence=0.99)
    assert d.requires_confirmation(unlock)
    assert not d.requires_confirmation(intent("lock", "front_door_lock"))
    [r] = await d.dispatch(unlock)
    assert r.status == "rejected" and r.detail == NEEDS_CONFIRMATION
    assert r.extra["needs_confirmation"] is True
    assert mqtt.published == []
    [r] = await d.dispatch(unlock, confirmed=True)
    assert r.status == "confirmed"


async def test_publish_failure_is_failed(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    mqtt.fail = True
    seen: list[str] = []
    [r] = await d.dispatch(
        intent("light_on", "kitchen_light"), on_result=lambda x: seen.append(x.status)
    )
    assert r.status == "failed" and "broker down" in r.detail
    assert r.topic == "zigbee2mqtt/kitchen_light/set"
    assert seen == ["failed"]


async def test_stale_state_does_not_confirm(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    mqtt.deliver("zigbee2mqtt/kitchen_light", b'{"state":"ON"}')
    del mqtt.answer["zigbee2mqtt/kitchen_light/set"]
    [r] = await d.dispatch(intent("light_on", "kitchen_light"))
    # The light was already on, but only a state report after the command confirms it.
    assert r.status == "unconfirmed"
    assert r.state == {"state": "on"}


async def test_wrong_state_is_unconfirmed(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    mqtt.answer["zigbee2mqtt/kitchen_light/set"] = lambda _: (
        "zigbee2mqtt/kitchen_light",
        b'{"state":"OFF"}',
    )
    [r] = await d.dispatch(intent("light_on", "kitchen_light"))
    assert r.status == "unconfirmed" and "kitchen_light" in r.detail


async def test_scene_with_sensitive_action_checks_each(cfg: HomeConfig) -> None:
    cfg.scenes[0].actions["front_door_lock"] = {"name": "unlock"}
    mqtt = FakeMqtt()
    for dev in ("living_room_light", "front_door_lock"):
        mqtt.answer[f"zigbee2mqtt/{dev}/set"] = z2m_echo(f"zigbee2mqtt/{dev}")
    d = Dispatcher(cfg, mqtt)
    await d.start()
    results = await d.dispatch(intent("scene_activate", scene="movie_night", confidence=0.8))
    by_device = {r.device_id: r for r in results}
    assert by_device["front_door_lock"].status == "rejected"
    assert by_device["living_room_light"].status == "confirmed"
    assert by_device["tv_plug"].status == "unconfirmed"  # no Shelly responder here
    assert all(r.extra["scene"] == "movie_night" for r in results)


async def test_brightness_step(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    mqtt.deliver("zigbee2mqtt/kitchen_light", b'{"state":"ON","brightness":127}')
    [r] = await d.dispatch(intent("light_set", "kitchen_light", brightness_step=-20))
    assert r.status == "confirmed"
    assert mqtt.published[-1] == ("zigbee2mqtt/kitchen_light/set", '{"state":"ON","brightness":76}')


async def test_queries(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    [unknown] = await d.dispatch(intent("climate_get_temperature", "thermostat"))
    assert unknown.status == "unconfirmed" and "no state" in unknown.detail
    mqtt.deliver(
        "zigbee2mqtt/thermostat", b'{"occupied_heating_setpoint":21,"local_temperature":19}'
    )
    [r] = await d.dispatch(intent("climate_get_temperature", "thermostat"))
    assert r.status == "confirmed"
    assert r.state == {"temperature": 21.0, "current_temperature": 19.0}
    [bad] = await d.dispatch(intent("climate_get_temperature", "kitchen_light"))
    assert bad.status == "rejected"
    assert mqtt.published == []


async def test_cancel_and_confirm_dispatch_nothing(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    assert await d.dispatch(intent("cancel")) == []
    assert await d.dispatch(intent("confirm")) == []
    assert mqtt.published == []


async def test_custom_action_without_state_topic_and_sensitive(cfg: HomeConfig) -> None:
    mqtt = FakeMqtt()
    actions = {
        "brew": CustomAction(topic="coffee/{size}", payload="{text}"),
        "disarm": CustomAction(topic="alarm/set", payload="DISARM", sensitive=True),
    }
    d = Dispatcher(cfg, mqtt, custom_actions=actions)
    await d.start()
    brew = Intent(
        name="brew",
        slots=Slots(custom={"size": "large"}),
        confidence=0.8,
        source="custom",
        reason="t",
        text="a large coffee",
    )
    [r] = await d.dispatch(brew)
    assert r.status == "unconfirmed" and "no state_topic" in r.detail
    assert mqtt.published == [("coffee/large", "a large coffee")]
    disarm = Intent(name="disarm", confidence=0.8, source="custom", reason="t")
    [r] = await d.dispatch(disarm)
    assert r.status == "rejected" and r.extra["sensitive"] is True
    evil = Intent(
        name="brew", slots=Slots(custom={"size": "x"}), confidence=0.8, source="custom", reason="t"
    )
    d.custom_actions["brew"] = CustomAction(topic="coffee/{size.__class__}", payload="x")
    [r] = await d.dispatch(evil)
    assert mqtt.published[-1] == ("coffee/{size.__class__}", "x")  # no attribute access


@pytest.mark.parametrize(
    "template",
    ['{"text": "{text}", "size": "{size}"}', '{{"text": "{text}", "size": "{size}"}}'],
)
async def test_custom_json_payload_stays_json(cfg: HomeConfig, template: str) -> None:
    mqtt = FakeMqtt()
    d = Dispatcher(
        cfg, mqtt, custom_actions={"brew": CustomAction(topic="coffee/{size}", payload=template)}
    )
    await d.start()
    text = 'a "large" one \\ please'
    brew = Intent(
        name="brew",
        slots=Slots(custom={"size": "large"}),
        confidence=0.8,
        source="custom",
        reason="t",
        text=text,
    )
    [r] = await d.dispatch(brew)
    assert r.status == "unconfirmed"
    topic, payload = mqtt.published[-1]
    assert topic == "coffee/large"
    assert json.loads(payload) == {"text": text, "size": "large"}


async def test_custom_slot_cannot_change_the_topic(cfg: HomeConfig) -> None:
    mqtt = FakeMqtt()
    d = Dispatcher(
        cfg, mqtt, custom_actions={"brew": CustomAction(topic="coffee/{size}/order", payload="go")}
    )
    await d.start()
    for bad in ("x/../zigbee2mqtt/front_door_lock", "#", "a+b"):
        i = Intent(
            name="brew",
            slots=Slots(custom={"size": bad}),
            confidence=0.8,
            source="custom",
            reason="t",
        )
        [r] = await d.dispatch(i)
        assert r.status == "rejected" and "topic" in r.detail
    assert mqtt.published == []


async def test_state_listener_and_removal(setup: tuple[Dispatcher, FakeMqtt]) -> None:
    d, mqtt = setup
    seen: list[tuple[str, dict[str, Any]]] = []
    remove = d.add_state_listener(lambda dev, s: seen.append((dev, s)))
    mqtt.deliver("zigbee2mqtt/kitchen_light", b'{"state":"ON"}')
    mqtt.deliver("zigbee2mqtt/kitchen_light", b'{"state":"ON"}')  # no change, no call
    remove()
    mqtt.deliver("zigbee2mqtt/kitchen_light", b'{"state":"OFF"}')
    assert seen == [("kitchen_light", {"state": "on"})]
    assert d.states()["kitchen_light"] == {"state": "off"}
    assert d.last_seen("kitchen_light") is not None
