"""Robot vacuums: the Valetudo and Home Assistant adapters (pure), recognition of the vacuum
sentences (en, zh-CN), and spoken-style text commands carried out on a simulated Valetudo robot
through a real Mosquitto, confirmed from its state topics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from devices.actions import ActionResult, AdapterError
from devices.adapters import _common, adapter_for, homeassistant, valetudo
from devices.dispatcher import Dispatcher
from devices.mqtt import MqttClient
from devices.registry import (
    AdapterName,
    ConfigError,
    Device,
    DeviceKind,
    HomeConfig,
    MqttSettings,
    load_demo_config,
    parse_config,
)
from devices.simulators import SimulatedHome
from intents.recognizer import Recognizer
from intents.resolve import ResolveError, Resolver
from intents.schema import Intent, IntentName, Slots
from tests.mqtt_fixtures import Mosquitto, eventually

pytestmark = pytest.mark.timeout(90)

SETTINGS = MqttSettings()
VACUUM_INTENTS = {i.value for i in IntentName if i.value.startswith("vacuum_")}


def intent(name: str, *device_ids: str, **slots: Any) -> Intent:
    return Intent(name=name, slots=Slots(device_ids=list(device_ids), **slots), confidence=0.95,
                  source="grammar", reason="test")


def robot(**kw: Any) -> Device:
    base: dict[str, Any] = {
        "id": "robot_vacuum", "name": "robot vacuum", "kind": "vacuum", "adapter": "valetudo",
        "topic": "rockrobo", "segments": {"kitchen": ["17"], "living_room": ["16", "20"]},
    }
    return Device.model_validate({**base, **kw})


def ha_vacuum(**kw: Any) -> Device:
    base: dict[str, Any] = {
        "id": "hoover", "name": "hoover", "kind": "vacuum", "adapter": "homeassistant",
        "topics": {"command_topic": "home/hoover/cmd", "state_topic": "home/hoover/state",
                   "send_command_topic": "home/hoover/send"},
    }
    return Device.model_validate({**base, **kw})


# -- registry --------------------------------------------------------------------------------


def test_demo_home_has_a_valetudo_robot_with_segments() -> None:
    cfg = load_demo_config()
    vacuums = [d for d in cfg.devices if d.kind == DeviceKind.VACUUM]
    assert [d.id for d in vacuums] == ["robot_vacuum"]
    assert vacuums[0].adapter == AdapterName.VALETUDO
    assert vacuums[0].segments["kitchen"] == ["17"]
    assert len(cfg.devices) == 15 and len(cfg.areas) == 6


def test_segment_ids_from_yaml_numbers_are_strings() -> None:
    cfg = parse_config(
        "areas: [{id: kitchen, name: kitchen}]\n"
        "devices:\n"
        "  - {id: v, name: v, kind: vacuum, adapter: valetudo, segments: {kitchen: [17, 18]}}\n"
    )
    assert cfg.devices[0].segments == {"kitchen": ["17", "18"]}
    with pytest.raises(ConfigError, match="kind"):
        parse_config("devices: [{id: v, name: v, kind: hoover, adapter: valetudo}]\n")


# -- Valetudo adapter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "payload"),
    [("vacuum_start", "START"), ("vacuum_pause", "PAUSE"), ("vacuum_stop", "STOP"),
     ("vacuum_return", "HOME")],
)
def test_valetudo_basic_control(name: str, payload: str) -> None:
    [cmd] = valetudo.commands_for(robot(), intent(name, "robot_vacuum"), SETTINGS)
    assert cmd.topic == "valetudo/rockrobo/BasicControlCapability/operation/set"
    assert cmd.payload == payload and cmd.qos == 1 and not cmd.retain


def test_valetudo_segment_cleaning_and_topic_prefix() -> None:
    settings = MqttSettings(valetudo_base="robots")
    [cmd] = valetudo.commands_for(
        robot(), intent("vacuum_clean_area", "robot_vacuum", area="living_room"), settings
    )
    assert cmd.topic == "robots/rockrobo/MapSegmentationCapability/clean/set"
    assert json.loads(cmd.payload) == {"segment_ids": ["16", "20"], "iterations": 1,
                                       "customOrder": True}


def test_valetudo_refuses_what_it_cannot_do() -> None:
    with pytest.raises(AdapterError, match="no map segment for area 'bedroom'"):
        valetudo.commands_for(robot(), intent("vacuum_clean_area", "robot_vacuum",
                                              area="bedroom"), SETTINGS)
    with pytest.raises(AdapterError):
        valetudo.commands_for(robot(), intent("light_on", "robot_vacuum"), SETTINGS)
    lamp = robot(kind="light")
    with pytest.raises(AdapterError, match="is a light"):
        valetudo.commands_for(lamp, intent("vacuum_start", "robot_vacuum"), SETTINGS)


def test_valetudo_state() -> None:
    d = robot()
    topics = valetudo.state_topics(d, SETTINGS)
    assert topics == [
        "valetudo/rockrobo/StatusStateAttribute/status",
        "valetudo/rockrobo/StatusStateAttribute/detail",
        "valetudo/rockrobo/BatteryStateAttribute/level",
    ]
    assert valetudo.parse_state(d, topics[0], b"cleaning") == {"state": "cleaning"}
    assert valetudo.parse_state(d, topics[0], b"manual_control") == {"state": "cleaning"}
    assert valetudo.parse_state(d, topics[0], b"exploding") is None
    assert valetudo.parse_state(d, topics[1], b"segment") == {"status_detail": "segment"}
    assert valetudo.parse_state(d, topics[2], b"87") == {"battery": 87}
    assert valetudo.parse_state(d, topics[2], b"") is None


@pytest.mark.parametrize(
    ("name", "confirming", "not_confirming"),
    [
        ("vacuum_start", ["cleaning"], ["docked", "paused", "idle"]),
        ("vacuum_clean_area", ["cleaning"], ["docked", "returning"]),
        ("vacuum_pause", ["paused"], ["cleaning", "docked"]),
        ("vacuum_stop", ["idle", "docked"], ["cleaning", "paused", "returning"]),
        ("vacuum_return", ["returning", "docked"], ["cleaning", "idle"]),
    ],
)
def test_vacuum_confirmation_states(
    name: str, confirming: list[str], not_confirming: list[str]
) -> None:
    i = intent(name, "robot_vacuum", area="kitchen")
    for adapter in (valetudo, homeassistant):
        for st in confirming:
            assert adapter.confirms(robot(), i, {"state": st}), (name, st)
        for st in not_confirming:
            assert not adapter.confirms(robot(), i, {"state": st}), (name, st)
    assert not _common.confirms(robot(), i, {"battery": 90})


# -- Home Assistant MQTT vacuum ------------------------------------------------------------


def test_homeassistant_vacuum_defaults_and_payloads() -> None:
    d = ha_vacuum()
    sent = {n: homeassistant.commands_for(d, intent(n, "hoover"), SETTINGS)[0].payload
            for n in ("vacuum_start", "vacuum_pause", "vacuum_stop", "vacuum_return")}
    assert sent == {"vacuum_start": "start", "vacuum_pause": "pause", "vacuum_stop": "stop",
                    "vacuum_return": "return_to_base"}
    valetudo_style = ha_vacuum(payloads={"payload_start": "START", "payload_return_to_base":
                                         "HOME"})
    [cmd] = homeassistant.commands_for(valetudo_style, intent("vacuum_return", "hoover"),
                                       SETTINGS)
    assert (cmd.topic, cmd.payload) == ("home/hoover/cmd", "HOME")


def test_homeassistant_vacuum_features_and_room_cleaning() -> None:
    # Discovery's default features have no pause: a declared list is enforced.
    d = ha_vacuum(capabilities=["start", "stop", "return_home"])
    with pytest.raises(AdapterError, match="no pause capability"):
        homeassistant.commands_for(d, intent("vacuum_pause", "hoover"), SETTINGS)
    with pytest.raises(AdapterError, match="segment_clean_command"):
        homeassistant.commands_for(ha_vacuum(segments={"kitchen": ["3"]}),
                                   intent("vacuum_clean_area", "hoover", area="kitchen"),
                                   SETTINGS)
    rooms = ha_vacuum(segments={"kitchen": ["3"]},
                      payloads={"segment_clean_command": "app_segment_clean"})
    [cmd] = homeassistant.commands_for(rooms, intent("vacuum_clean_area", "hoover",
                                                     area="kitchen"), SETTINGS)
    assert cmd.topic == "home/hoover/send"
    assert json.loads(cmd.payload) == {"command": "app_segment_clean", "segment_ids": ["3"]}


def test_homeassistant_vacuum_state() -> None:
    d = ha_vacuum()
    assert homeassistant.state_topics(d, SETTINGS) == ["home/hoover/state"]
    got = homeassistant.parse_state(
        d, "home/hoover/state", b'{"state":"returning","battery_level":61,"fan_speed":"max"}'
    )
    assert got == {"state": "returning", "battery": 61, "fan_speed": "max"}
    assert homeassistant.parse_state(d, "home/hoover/state", b'{"state":"on"}') is None
    assert homeassistant.parse_state(d, "home/hoover/state", b"docked") == {"state": "docked"}


# -- recognition -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(load_demo_config())


@pytest.fixture(scope="module")
def no_vacuum() -> Recognizer:
    cfg = load_demo_config()
    cfg.devices = [d for d in cfg.devices if d.kind != DeviceKind.VACUUM]
    return Recognizer(cfg)


@pytest.mark.parametrize(
    ("text", "name", "area"),
    [
        ("start the vacuum", "vacuum_start", None),
        ("turn on the vacuum", "vacuum_start", None),
        ("start the robot vacuum cleaner", "vacuum_start", None),
        ("clean the house", "vacuum_start", None),
        ("clean the flat", "vacuum_start", None),
        ("start house cleaning", "vacuum_start", None),
        ("vacuum the kitchen", "vacuum_clean_area", "kitchen"),
        ("clean the kitchen", "vacuum_clean_area", "kitchen"),
        ("get the roomba to clean the living room", "vacuum_clean_area", "living_room"),
        ("hoover the hallway", "vacuum_clean_area", "hallway"),
        ("pause the vacuum", "vacuum_pause", None),
        ("stop the robot", "vacuum_stop", None),
        ("turn off the vacuum", "vacuum_stop", None),
        ("send the robot home", "vacuum_return", None),
        ("send the vacuum back to its dock", "vacuum_return", None),
        ("vacuum go home", "vacuum_return", None),
        ("dock the vacuum", "vacuum_return", None),
        ("return the robot vacuum to base", "vacuum_return", None),  # Home Assistant's own
        ("开始扫地", "vacuum_start", None),
        ("启动扫地机器人", "vacuum_start", None),
        ("打扫全屋", "vacuum_start", None),
        ("让扫地机器人打扫客厅", "vacuum_clean_area", "living_room"),
        ("把厨房扫一下", "vacuum_clean_area", "kitchen"),
        ("扫地机器人回去充电", "vacuum_return", None),
        ("让扫地机回基站", "vacuum_return", None),
        ("暂停扫地", "vacuum_pause", None),
        ("停止扫地", "vacuum_stop", None),
    ],
)
def test_vacuum_sentences(recognizer: Recognizer, text: str, name: str, area: str | None) -> None:
    rec = recognizer.recognize(text)
    assert rec.intent is not None, rec.reason
    assert rec.intent.name == name, rec.reason
    assert rec.intent.slots.device_ids == ["robot_vacuum"]
    assert rec.intent.slots.area == area
    assert rec.intent.confidence >= 0.9


def test_a_room_without_a_segment_is_not_cleaned(recognizer: Recognizer) -> None:
    # The robot maps no bedroom (upstairs): no whole-home clean instead, and a reason.
    rec = recognizer.recognize("clean the bedroom")
    assert rec.intent is None, rec.intent
    assert "bedroom" in rec.reason


def test_vacuum_words_do_not_move_other_devices(recognizer: Recognizer) -> None:
    for text in ("turn on the kitchen light", "stop the music", "turn off the tv plug"):
        rec = recognizer.recognize(text)
        assert rec.intent is not None and rec.intent.name not in VACUUM_INTENTS, text
        assert "robot_vacuum" not in rec.intent.slots.device_ids


@pytest.mark.parametrize(
    "text",
    ["clean the flat", "start the vacuum", "turn on the vacuum", "clean the kitchen",
     "send the robot home", "stop the robot", "get the roomba to clean the kitchen",
     "开始扫地", "打扫厨房", "扫地机器人回去充电"],
)
def test_no_vacuum_in_the_home_nothing_acts(no_vacuum: Recognizer, text: str) -> None:
    rec = no_vacuum.recognize(text)
    assert rec.intent is None, (text, rec.intent)
    if text.isascii():
        assert "vacuum" in rec.reason, rec.reason
    # The grammar's own reading says why (the recognizer may report another tier's reason).
    failures = no_vacuum._grammar_candidates(text, "zh-CN" if not text.isascii() else "en",
                                             None, None)[1]
    assert failures and all("no robot vacuum" in f for f in failures), failures


def test_several_vacuums_need_a_name_except_for_the_whole_home() -> None:
    cfg = load_demo_config()
    cfg.devices = [d.model_copy(update={"aliases": []}) if d.kind == DeviceKind.VACUUM else d
                   for d in cfg.devices]  # "vacuum" is no longer one robot's alias
    upstairs = robot(id="upstairs_vacuum", name="upstairs vacuum", area="bedroom", aliases=[],
                     topic="upstairs", segments={"bedroom": ["2"]})
    cfg.devices.append(upstairs)
    # The grammar's reading of "start the vacuum" (a generic word) with two robots:
    resolver = Resolver(cfg)
    with pytest.raises(ResolveError, match="which vacuum"):
        resolver.resolve("HassVacuumStart", {"domain": "vacuum"})
    with pytest.raises(ResolveError, match="which vacuum"):
        resolver.resolve("HassVacuumReturnToBase", {"domain": "vacuum"})
    home = resolver.resolve("HassVacuumStart", {"domain": "vacuum", "scope": "home"})
    assert home.slots.device_ids == ["robot_vacuum", "upstairs_vacuum"]
    upstairs_floor = resolver.resolve("HassVacuumStart", {"floor": "upstairs"})
    assert upstairs_floor.slots.device_ids == ["upstairs_vacuum"]
    two = Recognizer(cfg)
    rec = two.recognize("start the upstairs vacuum")
    assert rec.intent is not None and rec.intent.slots.device_ids == ["upstairs_vacuum"]
    rec = two.recognize("clean the house")
    assert rec.intent is not None
    assert rec.intent.slots.device_ids == ["robot_vacuum", "upstairs_vacuum"]
    # Each room goes to the robot that maps it.
    rec = two.recognize("clean the bedroom")
    assert rec.intent is not None and rec.intent.slots.device_ids == ["upstairs_vacuum"]


# -- end to end on a real broker --------------------------------------------------------------


@dataclass
class Rig:
    cfg: HomeConfig
    recognizer: Recognizer
    dispatcher: Dispatcher
    sim: SimulatedHome

    async def say(self, text: str) -> list[ActionResult]:
        rec = self.recognizer.recognize(text)
        assert rec.intent is not None, (text, rec.reason)
        return await self.dispatcher.dispatch(rec.intent)


@pytest.fixture
async def rig(mosquitto: Mosquitto) -> AsyncIterator[Rig]:
    cfg = load_demo_config()
    cfg.mqtt.confirm_timeout_s = 3.0
    sim = SimulatedHome(cfg.model_copy(deep=True), mosquitto.url)  # its own map
    await sim.start()
    client = MqttClient(mosquitto.url, client_id="hearth-vacuum-test")
    await client.connect()
    dispatcher = Dispatcher(cfg, client)
    await dispatcher.start()
    try:
        yield Rig(cfg, Recognizer(cfg), dispatcher, sim)
    finally:
        await dispatcher.close()
        await client.close()
        await sim.stop()


async def test_spoken_commands_reach_the_valetudo_robot(rig: Rig) -> None:
    docked = {"state": "docked", "status_detail": "none", "battery": 100}
    await eventually(lambda: rig.dispatcher.state("robot_vacuum") == docked)  # retained
    [r] = await rig.say("start the vacuum")
    assert (r.device_id, r.status) == ("robot_vacuum", "confirmed"), r
    assert r.topic == "valetudo/rockrobo/BasicControlCapability/operation/set"
    assert r.payload == "START" and r.state is not None and r.state["state"] == "cleaning"

    [r] = await rig.say("pause the vacuum")
    assert r.status == "confirmed" and rig.sim.state("robot_vacuum")["state"] == "paused"

    [r] = await rig.say("clean the kitchen")
    assert r.status == "confirmed", r
    assert r.topic == "valetudo/rockrobo/MapSegmentationCapability/clean/set"
    assert json.loads(r.payload or "") == {"segment_ids": ["17"], "iterations": 1,
                                           "customOrder": True}
    assert rig.sim.state("robot_vacuum")["segments"] == ["17"]
    await eventually(lambda: (rig.dispatcher.state("robot_vacuum") or {}).get(
        "status_detail") == "segment")

    [r] = await rig.say("send the robot home")
    assert r.status == "confirmed" and r.payload == "HOME"
    assert r.state is not None and r.state["state"] in ("returning", "docked")
    # The simulated robot reaches its dock a moment later and says so.
    await eventually(lambda: (rig.dispatcher.state("robot_vacuum") or {}).get("state")
                     == "docked")
    assert rig.sim.state("robot_vacuum")["state"] == "docked"


async def test_several_rooms_are_cleaned_in_one_run(rig: Rig) -> None:
    [r] = await rig.say("vacuum the living room and the kitchen")
    assert (r.device_id, r.status) == ("robot_vacuum", "confirmed"), r
    assert json.loads(r.payload or "")["segment_ids"] == ["16", "17"]
    assert rig.sim.state("robot_vacuum")["segments"] == ["16", "17"]


def test_a_room_the_robot_has_not_mapped_says_what_it_can_clean(
        recognizer: Recognizer) -> None:
    for text in ("clean the bedroom", "clean the kitchen and the bedroom"):
        rec = recognizer.recognize(text)
        assert rec.intent is None, rec.intent
        assert "no map of the bedroom" in rec.reason and "kitchen" in rec.reason, rec.reason


async def test_chinese_commands_reach_the_robot(rig: Rig) -> None:
    [r] = await rig.say("让扫地机器人打扫客厅")
    assert r.status == "confirmed" and json.loads(r.payload or "")["segment_ids"] == ["16"]
    [r] = await rig.say("暂停扫地")
    assert r.status == "confirmed" and r.payload == "PAUSE"
    [r] = await rig.say("停止扫地")
    assert r.status == "confirmed" and r.payload == "STOP"
    assert rig.sim.state("robot_vacuum")["state"] == "idle"
    [r] = await rig.say("扫地机器人回去充电")
    assert r.status == "confirmed" and r.payload == "HOME"
    [r] = await rig.say("开始扫地")
    assert r.status == "confirmed" and r.payload == "START"


async def test_a_command_that_changes_nothing_is_not_sent(rig: Rig) -> None:
    # Valetudo publishes a status only when it changes: a docked robot asked to pause, stop or
    # go home would never answer. Hearth says so at once and publishes nothing.
    await eventually(lambda: (rig.dispatcher.state("robot_vacuum") or {}).get("state")
                     == "docked")
    before = rig.sim.commands["robot_vacuum"]
    for name, detail in (("vacuum_pause", "not cleaning"), ("vacuum_stop", "already docked"),
                         ("vacuum_return", "already docked")):
        [r] = await rig.dispatcher.dispatch(intent(name, "robot_vacuum"))
        assert r.status == "rejected" and r.extra.get("noop") is True, r
        assert detail in r.detail
    [r] = await rig.say("send the robot home")
    assert r.status == "rejected" and r.detail == "the robot vacuum is already docked"
    assert rig.sim.commands["robot_vacuum"] == before
    [r] = await rig.say("start the vacuum")
    assert r.status == "confirmed"
    [r] = await rig.say("start the vacuum")
    assert r.status == "rejected" and "already cleaning" in r.detail
    # Cleaning one room while cleaning the whole map is a change, and is sent.
    [r] = await rig.say("clean the kitchen")
    assert r.status == "confirmed"
    # confirmed from the state it already reports (cleaning); the command is on its way
    await eventually(lambda: rig.sim.commands["robot_vacuum"] == before + 2)


async def test_unknown_segment_and_unmapped_room(rig: Rig) -> None:
    rig.cfg.mqtt.confirm_timeout_s = 0.5
    # A room the config maps to a segment the robot's map lacks: Valetudo refuses it.
    bad = rig.cfg.device("robot_vacuum")
    bad.segments["garage"] = ["99"]
    [r] = await rig.dispatcher.dispatch(intent("vacuum_clean_area", "robot_vacuum",
                                               area="garage"))
    assert r.status == "unconfirmed"
    assert rig.sim.state("robot_vacuum")["state"] == "docked"
    # A room with no segment at all is refused before anything is published.
    before = rig.sim.commands["robot_vacuum"]
    [r] = await rig.dispatcher.dispatch(intent("vacuum_clean_area", "robot_vacuum",
                                               area="office"))
    assert r.status == "rejected" and "no map segment" in r.detail
    assert rig.sim.commands["robot_vacuum"] == before


async def test_home_assistant_vacuum_end_to_end(mosquitto: Mosquitto) -> None:
    cfg = parse_config(
        "areas: [{id: kitchen, name: kitchen}]\n"
        "devices:\n"
        "  - id: hoover\n"
        "    name: hoover\n"
        "    kind: vacuum\n"
        "    adapter: homeassistant\n"
        "    topics: {command_topic: home/hoover/cmd, state_topic: home/hoover/state,\n"
        "             send_command_topic: home/hoover/send}\n"
        "    payloads: {segment_clean_command: app_segment_clean}\n"
        "    segments: {kitchen: [3]}\n"
    )
    assert adapter_for(cfg.devices[0]) is homeassistant
    sim = SimulatedHome(cfg, mosquitto.url)
    await sim.start()
    client = MqttClient(mosquitto.url, client_id="hearth-ha-vacuum")
    await client.connect()
    dispatcher = Dispatcher(cfg, client)
    await dispatcher.start()
    rec = Recognizer(cfg)
    try:
        for text, status in (("start the hoover", "cleaning"), ("vacuum the kitchen", "cleaning"),
                             ("send the hoover home", "returning")):
            r = rec.recognize(text)
            assert r.intent is not None, (text, r.reason)
            [res] = await dispatcher.dispatch(r.intent)
            assert res.status == "confirmed", (text, res)
            assert res.state is not None and res.state["state"] in (status, "docked")
        assert sim.state("hoover")["segments"] == ["3"]
        await eventually(lambda: sim.state("hoover")["state"] == "docked")
    finally:
        await dispatcher.close()
        await client.close()
        await sim.stop()


def test_segments_name_known_areas() -> None:
    with pytest.raises(ConfigError, match=r"segments.*unknown area 'kitchn'; did you mean"):
        parse_config(
            "areas: [{id: kitchen, name: kitchen}]\n"
            "devices:\n"
            "  - {id: v, name: v, kind: vacuum, adapter: valetudo, segments: {kitchn: [17]}}\n"
        )


def test_no_other_device_takes_a_vacuum_command() -> None:
    # Whatever a recognizer gets wrong, a vacuum intent never moves a light, a lock or a door,
    # and a room clean with no room is refused rather than sent as a whole-home clean.
    cfg = load_demo_config()
    for d in cfg.devices:
        for name in sorted(VACUUM_INTENTS):
            i = intent(name, d.id, area="kitchen")
            if d.kind == DeviceKind.VACUUM:
                assert adapter_for(d).commands_for(d, i, cfg.mqtt)
            else:
                with pytest.raises(AdapterError):
                    adapter_for(d).commands_for(d, i, cfg.mqtt)
    vac = cfg.device("robot_vacuum")
    with pytest.raises(AdapterError, match="needs an area"):
        adapter_for(vac).commands_for(vac, intent("vacuum_clean_area", vac.id), cfg.mqtt)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("start the vacuum", "Started the robot vacuum."),
        ("send the robot home", "Sent the robot vacuum back to its dock."),
        ("clean the kitchen", "Started the robot vacuum in that room."),
        ("开始扫地", "扫地机器人开始打扫了。"),
        ("扫地机器人回去充电", "扫地机器人正在回去充电。"),
    ],
)
def test_spoken_reply(recognizer: Recognizer, text: str, reply: str) -> None:
    from assistant.answers.reply import compose_reply

    cfg = load_demo_config()
    i = recognizer.recognize(text).intent
    assert i is not None
    done = [ActionResult(device_id="robot_vacuum", intent=i.name, status="confirmed",
                         state={"state": "cleaning"})]
    assert compose_reply(i, done, cfg, text=text).text == reply


@pytest.mark.parametrize("text", ["clean here", "vacuum in here", "clean this room", "打扫这里"])
def test_here_is_the_speakers_room(recognizer: Recognizer, text: str) -> None:
    rec = recognizer.recognize(text, area="kitchen")
    assert rec.intent is not None and rec.intent.name == "vacuum_clean_area", rec.reason
    assert rec.intent.slots.area == "kitchen" and rec.intent.slots.device_ids == ["robot_vacuum"]
    # With no room known, "here" cleans nowhere (never the whole home).
    assert recognizer.recognize(text).intent is None
