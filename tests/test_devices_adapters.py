"""Pure tests of every adapter: intent -> commands, state message -> normalized state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devices.actions import AdapterError, Command
from devices.adapters import ADAPTERS, adapter_for, homeassistant, shelly, tasmota, zigbee2mqtt
from devices.registry import (
    AdapterName,
    Device,
    DeviceKind,
    HomeConfig,
    MqttSettings,
    load_demo_config,
)
from intents.schema import Intent, Slots

SETTINGS = MqttSettings()


@pytest.fixture(scope="module")
def home() -> HomeConfig:
    return load_demo_config()


def intent(name: str, *device_ids: str, **slots: Any) -> Intent:
    return Intent(
        name=name,
        slots=Slots(device_ids=list(device_ids), **slots),
        confidence=0.95,
        source="grammar",
        reason="test",
    )


def one(cmds: list[Command]) -> tuple[str, Any]:
    assert len(cmds) == 1
    try:
        return cmds[0].topic, json.loads(cmds[0].payload)
    except ValueError:
        return cmds[0].topic, cmds[0].payload


def test_registry_maps_every_adapter() -> None:
    assert set(ADAPTERS) == set(AdapterName)


# -- zigbee2mqtt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_id", "name", "slots", "topic", "body"),
    [
        ("kitchen_light", "light_on", {}, "zigbee2mqtt/kitchen_light/set", {"state": "ON"}),
        ("kitchen_light", "light_off", {}, "zigbee2mqtt/kitchen_light/set", {"state": "OFF"}),
        (
            "kitchen_light",
            "light_set",
            {"brightness": 50},
            "zigbee2mqtt/kitchen_light/set",
            {"state": "ON", "brightness": 127},
        ),
        (
            "kitchen_light",
            "light_set",
            {"brightness": 100},
            "zigbee2mqtt/kitchen_light/set",
            {"state": "ON", "brightness": 254},
        ),
        (
            "kitchen_light",
            "light_set",
            {"color_temp_kelvin": 2700},
            "zigbee2mqtt/kitchen_light/set",
            {"state": "ON", "color_temp": 370},
        ),
        (
            "living_room_light",
            "light_set",
            {"color": "red"},
            "zigbee2mqtt/living_room_light/set",
            {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}},
        ),
        (
            "kitchen_light",
            "light_set",
            {"brightness": 0},
            "zigbee2mqtt/kitchen_light/set",
            {"state": "OFF"},
        ),
        (
            "kitchen_light",
            "light_set",
            {"brightness_step": 10},
            "zigbee2mqtt/kitchen_light/set",
            {"state": "ON", "brightness_step": 25},
        ),
        ("front_door_lock", "unlock", {}, "zigbee2mqtt/front_door_lock/set", {"state": "UNLOCK"}),
        ("front_door_lock", "lock", {}, "zigbee2mqtt/front_door_lock/set", {"state": "LOCK"}),
        ("bedroom_blinds", "cover_open", {}, "zigbee2mqtt/bedroom_blinds/set", {"state": "OPEN"}),
        ("bedroom_blinds", "cover_close", {}, "zigbee2mqtt/bedroom_blinds/set", {"state": "CLOSE"}),
        (
            "bedroom_blinds",
            "cover_set_position",
            {"position": 50},
            "zigbee2mqtt/bedroom_blinds/set",
            {"position": 50},
        ),
        (
            "thermostat",
            "climate_set_temperature",
            {"temperature": 21},
            "zigbee2mqtt/thermostat/set",
            {"occupied_heating_setpoint": 21.0},
        ),
        (
            "thermostat",
            "climate_set_temperature",
            {"temperature": 70, "temperature_unit": "F"},
            "zigbee2mqtt/thermostat/set",
            {"occupied_heating_setpoint": 21.0},
        ),
    ],
)
def test_zigbee2mqtt_commands(
    home: HomeConfig,
    device_id: str,
    name: str,
    slots: dict[str, Any],
    topic: str,
    body: dict[str, Any],
) -> None:
    device = home.device(device_id)
    assert one(zigbee2mqtt.commands_for(device, intent(name, device_id, **slots), SETTINGS)) == (
        topic,
        body,
    )


def test_zigbee2mqtt_base_topic_from_settings(home: HomeConfig) -> None:
    settings = MqttSettings(zigbee2mqtt_base="z2m")
    device = home.device("kitchen_light")
    [cmd] = zigbee2mqtt.commands_for(device, intent("light_on", device.id), settings)
    assert cmd.topic == "z2m/kitchen_light/set" and cmd.qos == 1
    assert zigbee2mqtt.state_topics(device, settings) == ["z2m/kitchen_light"]


@pytest.mark.parametrize(
    ("device_id", "name", "slots"),
    [
        ("kitchen_light", "unlock", {}),
        ("front_door_lock", "light_on", {}),
        ("kitchen_light", "light_set", {"color": "red"}),  # no colour capability
        ("kitchen_light", "light_set", {"color": "octarine"}),
        ("kitchen_temperature", "climate_set_temperature", {"temperature": 20}),
        ("thermostat", "media_pause", {}),
        ("garage_door", "light_on", {}),
        ("tv_plug", "lock", {}),
        ("coffee_maker", "climate_set_temperature", {"temperature": 20}),
        ("bedroom_blinds", "cover_set_position", {}),
    ],
)
def test_adapters_refuse_what_the_device_cannot_do(
    home: HomeConfig, device_id: str, name: str, slots: dict[str, Any]
) -> None:
    device = home.device(device_id)
    with pytest.raises(AdapterError):
        adapter_for(device).commands_for(device, intent(name, device_id, **slots), SETTINGS)


def test_zigbee2mqtt_parse_state(home: HomeConfig) -> None:
    light = home.device("kitchen_light")
    state = zigbee2mqtt.parse_state(
        light,
        "zigbee2mqtt/kitchen_light",
        b'{"state":"ON","brightness":254,"color_temp":370,"linkquality":80}',
    )
    assert state == {"state": "on", "brightness": 100, "color_temp_kelvin": 2703, "linkquality": 80}
    lock = home.device("front_door_lock")
    assert zigbee2mqtt.parse_state(lock, "x", b'{"state":"UNLOCK","lock_state":"unlocked"}') == {
        "state": "unlocked"
    }
    assert zigbee2mqtt.parse_state(lock, "x", b'{"state":"LOCK"}') == {"state": "locked"}
    cover = home.device("bedroom_blinds")
    assert zigbee2mqtt.parse_state(cover, "x", b'{"position":30}') == {
        "position": 30,
        "state": "open",
    }
    thermostat = home.device("thermostat")
    assert zigbee2mqtt.parse_state(
        thermostat, "x", b'{"occupied_heating_setpoint":21.5,"local_temperature":19.8}'
    ) == {"temperature": 21.5, "current_temperature": 19.8}
    sensor = home.device("kitchen_temperature")
    assert zigbee2mqtt.parse_state(sensor, "x", b'{"temperature":22.1,"humidity":41}') == {
        "temperature": 22.1,
        "current_temperature": 22.1,
        "humidity": 41,
    }
    assert zigbee2mqtt.parse_state(light, "x", b"not json") is None
    assert zigbee2mqtt.parse_state(light, "x", b"[1,2]") is None


def test_zigbee2mqtt_confirms(home: HomeConfig) -> None:
    light = home.device("kitchen_light")
    set50 = intent("light_set", light.id, brightness=50)
    assert zigbee2mqtt.confirms(light, set50, {"state": "on", "brightness": 50})
    assert zigbee2mqtt.confirms(light, set50, {"state": "on", "brightness": 51})  # 0-254 rounding
    assert not zigbee2mqtt.confirms(light, set50, {"state": "on", "brightness": 80})
    assert not zigbee2mqtt.confirms(light, set50, {"state": "off", "brightness": 50})
    assert not zigbee2mqtt.confirms(light, intent("light_on", light.id), {"state": "off"})
    lock = home.device("front_door_lock")
    assert zigbee2mqtt.confirms(lock, intent("unlock", lock.id), {"state": "unlocked"})
    assert not zigbee2mqtt.confirms(lock, intent("unlock", lock.id), {"state": "locked"})
    t = home.device("thermostat")
    assert zigbee2mqtt.confirms(
        t,
        intent("climate_set_temperature", t.id, temperature=21),
        {"temperature": 21.0, "current_temperature": 18},
    )


# -- Tasmota -----------------------------------------------------------------------------


def test_tasmota_commands(home: HomeConfig) -> None:
    plug = home.device("coffee_maker")
    assert one(tasmota.commands_for(plug, intent("switch_on", plug.id), SETTINGS)) == (
        "cmnd/coffee_maker/POWER",
        "ON",
    )
    assert one(tasmota.commands_for(plug, intent("switch_off", plug.id), SETTINGS)) == (
        "cmnd/coffee_maker/POWER",
        "OFF",
    )
    lamp = home.device("bedroom_lamp")
    cmds = tasmota.commands_for(
        lamp, intent("light_set", lamp.id, brightness=40, color_temp_kelvin=6500), SETTINGS
    )
    assert [(c.topic, c.payload) for c in cmds] == [
        ("cmnd/bedroom_lamp/Dimmer", "40"),
        ("cmnd/bedroom_lamp/CT", "154"),
    ]
    cmds = tasmota.commands_for(
        lamp, intent("light_set", lamp.id, color_temp_kelvin=1000), SETTINGS
    )
    assert [(c.topic, c.payload) for c in cmds] == [
        ("cmnd/bedroom_lamp/POWER", "ON"),
        ("cmnd/bedroom_lamp/CT", "500"),
    ]  # clamped
    channel2 = plug.model_copy(update={"channel": 2})
    assert one(tasmota.commands_for(channel2, intent("switch_on", plug.id), SETTINGS)) == (
        "cmnd/coffee_maker/POWER2",
        "ON",
    )
    assert tasmota.state_topics(channel2, SETTINGS) == [
        "stat/coffee_maker/RESULT",
        "stat/coffee_maker/POWER2",
        "tele/coffee_maker/STATE",
    ]


def test_tasmota_parse_state(home: HomeConfig) -> None:
    lamp = home.device("bedroom_lamp")
    assert tasmota.parse_state(
        lamp, "stat/bedroom_lamp/RESULT", b'{"POWER":"ON","Dimmer":40,"CT":250}'
    ) == {"state": "on", "brightness": 40, "color_temp_kelvin": 4000}
    assert tasmota.parse_state(lamp, "stat/bedroom_lamp/POWER", b"OFF") == {"state": "off"}
    assert tasmota.parse_state(
        lamp, "tele/bedroom_lamp/STATE", b'{"Time":"2024-01-01T00:00:00","POWER":"OFF","Dimmer":10}'
    ) == {"state": "off", "brightness": 10}
    assert tasmota.parse_state(lamp, "stat/bedroom_lamp/RESULT", b'{"Command":"Unknown"}') is None
    assert tasmota.confirms(
        lamp, intent("light_set", lamp.id, brightness=40), {"state": "on", "brightness": 40}
    )


# -- Shelly Gen2 -------------------------------------------------------------------------


def test_shelly_rpc(home: HomeConfig) -> None:
    plug = home.device("tv_plug")
    cmd, status = shelly.commands_for(plug, intent("switch_on", plug.id), SETTINGS)
    body = json.loads(cmd.payload)
    assert cmd.topic == status.topic == "shellyplus1pm-tvplug/rpc"
    assert body["method"] == "Switch.Set"
    assert body["params"] == {"id": 0, "on": True}
    assert body["src"] == "hearth/shellyplus1pm-tvplug"
    assert isinstance(body["id"], int)
    assert json.loads(status.payload)["method"] == "Switch.GetStatus"
    assert json.loads(status.payload)["params"] == {"id": 0}
    again, _ = shelly.commands_for(plug, intent("switch_off", plug.id), SETTINGS)
    assert json.loads(again.payload)["id"] != body["id"]
    assert json.loads(again.payload)["params"] == {"id": 0, "on": False}
    assert shelly.state_topics(plug, SETTINGS) == [
        "shellyplus1pm-tvplug/status/switch:0",
        "shellyplus1pm-tvplug/events/rpc",
        "hearth/shellyplus1pm-tvplug/rpc",
    ]
    with pytest.raises(AdapterError):
        shelly.commands_for(
            home.device("hallway_light"),
            intent("light_set", "hallway_light", brightness=30),
            SETTINGS,
        )


def test_shelly_rpc_replies(home: HomeConfig) -> None:
    plug = home.device("tv_plug")
    reply_topic = "hearth/shellyplus1pm-tvplug/rpc"
    status = {
        "id": 7,
        "src": "shellyplus1pm-tvplug",
        "dst": "hearth/shellyplus1pm-tvplug",
        "result": {"id": 0, "output": True, "apower": 3.0},
    }
    assert shelly.parse_state(plug, reply_topic, json.dumps(status).encode()) == {
        "state": "on",
        "apower": 3.0,
    }
    was_on = {**status, "result": {"was_on": False}}
    assert shelly.parse_state(plug, reply_topic, json.dumps(was_on).encode()) is None
    error = {"id": 8, "src": "x", "error": {"code": -103, "message": "bad"}}
    assert shelly.parse_state(plug, reply_topic, json.dumps(error).encode()) is None


def test_shelly_parse_state(home: HomeConfig) -> None:
    plug = home.device("tv_plug")
    status = b'{"id":0,"source":"WS_in","output":true,"apower":12.5,"voltage":230.1}'
    assert shelly.parse_state(plug, "shellyplus1pm-tvplug/status/switch:0", status) == {
        "state": "on",
        "apower": 12.5,
        "voltage": 230.1,
    }
    notify = {
        "src": "shellyplus1pm-tvplug",
        "dst": "x",
        "method": "NotifyStatus",
        "params": {"ts": 1.0, "switch:0": {"id": 0, "output": False}},
    }
    assert shelly.parse_state(
        plug, "shellyplus1pm-tvplug/events/rpc", json.dumps(notify).encode()
    ) == {"state": "off"}
    other = {**notify, "params": {"switch:1": {"output": True}}}
    assert (
        shelly.parse_state(plug, "shellyplus1pm-tvplug/events/rpc", json.dumps(other).encode())
        is None
    )


# -- Home Assistant templates ------------------------------------------------------------


def test_homeassistant_commands(home: HomeConfig) -> None:
    light = home.device("office_light")
    assert one(homeassistant.commands_for(light, intent("light_on", light.id), SETTINGS)) == (
        "home/office_light/set",
        "ON",
    )
    assert one(
        homeassistant.commands_for(light, intent("light_set", light.id, brightness=50), SETTINGS)
    ) == ("home/office_light/brightness/set", 128)
    garage = home.device("garage_door")
    assert one(homeassistant.commands_for(garage, intent("cover_open", garage.id), SETTINGS)) == (
        "home/garage_door/set",
        "OPEN",
    )
    assert one(
        homeassistant.commands_for(
            garage, intent("cover_set_position", garage.id, position=25), SETTINGS
        )
    ) == ("home/garage_door/position/set", 25)
    speaker = home.device("speaker")
    assert one(
        homeassistant.commands_for(speaker, intent("media_pause", speaker.id), SETTINGS)
    ) == ("home/speaker/cmd", "PAUSE")
    assert one(homeassistant.commands_for(speaker, intent("media_next", speaker.id), SETTINGS)) == (
        "home/speaker/cmd",
        "NEXT",
    )
    assert one(
        homeassistant.commands_for(
            speaker, intent("media_set_volume", speaker.id, volume=35), SETTINGS
        )
    ) == ("home/speaker/volume/set", 35)
    with pytest.raises(AdapterError, match="color_temp_command_topic"):
        homeassistant.commands_for(
            light, intent("light_set", light.id, color_temp_kelvin=3000), SETTINGS
        )


def test_homeassistant_custom_payloads_and_json_schema() -> None:
    lock = Device(
        id="back_door",
        name="back door",
        kind=DeviceKind.LOCK,
        adapter=AdapterName.HOMEASSISTANT,
        topics={"command_topic": "b/set", "state_topic": "b/state"},
        payloads={"payload_unlock": "open-sesame", "state_unlocked": "UNLATCHED"},
    )
    assert one(homeassistant.commands_for(lock, intent("unlock", lock.id), SETTINGS)) == (
        "b/set",
        "open-sesame",
    )
    assert homeassistant.parse_state(lock, "b/state", b"UNLATCHED") == {"state": "unlocked"}
    assert homeassistant.parse_state(lock, "b/state", b"LOCKED") == {"state": "locked"}
    bulb = Device(
        id="bulb",
        name="bulb",
        kind=DeviceKind.LIGHT,
        adapter=AdapterName.HOMEASSISTANT,
        topics={"command_topic": "bulb/set", "state_topic": "bulb"},
        payloads={"schema": "json"},
    )
    assert one(
        homeassistant.commands_for(bulb, intent("light_set", bulb.id, brightness=100), SETTINGS)
    ) == ("bulb/set", {"state": "ON", "brightness": 255})
    assert homeassistant.parse_state(bulb, "bulb", b'{"state":"ON","brightness":51}') == {
        "state": "on",
        "brightness": 20,
    }


def test_homeassistant_parse_state(home: HomeConfig) -> None:
    light = home.device("office_light")
    assert homeassistant.state_topics(light, SETTINGS) == [
        "home/office_light/state",
        "home/office_light/brightness",
    ]
    assert homeassistant.parse_state(light, "home/office_light/state", b"ON") == {"state": "on"}
    assert homeassistant.parse_state(light, "home/office_light/brightness", b"255") == {
        "brightness": 100
    }
    assert homeassistant.parse_state(light, "home/office_light/state", b"weird") is None
    garage = home.device("garage_door")
    assert homeassistant.parse_state(garage, "home/garage_door/state", b"open") == {"state": "open"}
    assert homeassistant.parse_state(garage, "home/garage_door/position", b"40") == {"position": 40}
    speaker = home.device("speaker")
    assert homeassistant.parse_state(
        speaker, "home/speaker/state", b'{"state":"playing","volume":42}'
    ) == {"state": "playing", "volume": 42}
    assert homeassistant.parse_state(speaker, "home/speaker/state", b"paused") == {
        "state": "paused"
    }
    assert homeassistant.confirms(
        speaker,
        intent("media_set_volume", speaker.id, volume=42),
        {"state": "playing", "volume": 42},
    )


def test_every_demo_device_has_state_topics(home: HomeConfig) -> None:
    for device in home.devices:
        assert adapter_for(device).state_topics(device, SETTINGS), device.id


def test_homeassistant_simple_value_template() -> None:
    plug = Device(
        id="tasmota_plug",
        name="plug",
        kind=DeviceKind.SWITCH,
        adapter=AdapterName.HOMEASSISTANT,
        topics={"command_topic": "cmnd/plug/POWER", "state_topic": "tele/plug/STATE"},
        payloads={"value_template": "{{ value_json.POWER }}", "payload_on": "ON"},
    )
    state = b'{"Time":"2024-01-01T00:00:00","POWER":"ON"}'
    assert homeassistant.parse_state(plug, "tele/plug/STATE", state) == {"state": "on"}
    assert homeassistant.parse_state(plug, "tele/plug/STATE", b'{"Time":"x"}') is None
    bracket = plug.model_copy(update={"payloads": {"value_template": "{{value_json['POWER']}}"}})
    assert homeassistant.parse_state(bracket, "tele/plug/STATE", b'{"POWER":"OFF"}') == {
        "state": "off"
    }


@pytest.mark.parametrize(
    ("name", "aliases", "said", "sensitive"),
    [
        ("garage door", [], None, True),
        ("side gate", [], None, True),
        ("patio door", [], None, True),
        ("卷帘门", [], None, True),
        ("bedroom blinds", ["窗帘"], None, False),
        ("patio awning", [], None, False),
        ("garage door", [], False, False),  # the config's word stands
        ("bedroom blinds", [], True, True),
    ],
)
def test_opening_a_door_is_sensitive_unless_the_config_says_not(
        name: str, aliases: list[str], said: bool | None, sensitive: bool) -> None:
    extra = {} if said is None else {"sensitive": said}
    cover = Device(id="c", name=name, aliases=aliases, kind=DeviceKind.COVER,
                   adapter=AdapterName.ZIGBEE2MQTT, **extra)
    assert cover.sensitive is sensitive
