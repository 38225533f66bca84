"""Home Assistant MQTT discovery import: parsing (pure) and collection from a real broker."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import pytest
import yaml

from devices import cli as devices_cli
from devices.discovery import devices_to_yaml, discover, parse_discovery
from devices.dispatcher import Dispatcher
from devices.mqtt import MqttClient
from devices.registry import HomeConfig, parse_config
from devices.simulators import SimulatedHome
from intents.schema import Intent, Slots
from tests.mqtt_fixtures import Mosquitto, eventually

pytestmark = pytest.mark.timeout(60)


def hearth_main(argv: list[str]) -> int:
    """``hearth`` restricted to the devices subcommands (no dependency on the rest)."""
    parser = argparse.ArgumentParser(prog="hearth")
    devices_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


LIGHT = {
    "~": "home/porch",
    "name": "Porch light",
    "uniq_id": "porch_light_01",
    "cmd_t": "~/set",
    "stat_t": "~/state",
    "bri_cmd_t": "~/brightness/set",
    "bri_stat_t": "~/brightness",
    "bri_scl": 100,
    "dev": {"name": "Porch", "ids": ["porch"]},
}
Z2M_LIGHT = {
    "schema": "json",
    "name": None,
    "object_id": "desk_bulb",
    "command_topic": "zigbee2mqtt/desk_bulb/set",
    "state_topic": "zigbee2mqtt/desk_bulb",
    "brightness": True,
    "device": {"name": "Desk bulb"},
}
GARAGE = {
    "name": "Garage door",
    "object_id": "garage",
    "device_class": "garage",
    "command_topic": "garage/set",
    "state_topic": "garage/state",
    "payload_open": "UP",
    "payload_close": "DOWN",
}


def test_parse_discovery_expands_abbreviations_and_base_topic() -> None:
    d = parse_discovery("homeassistant/light/porch/light/config", json.dumps(LIGHT).encode())
    assert d is not None
    assert d.id == "porch_light_01"
    assert d.name == "Porch light"
    assert d.kind == "light" and d.adapter == "homeassistant"
    assert d.topics == {
        "command_topic": "home/porch/set",
        "state_topic": "home/porch/state",
        "brightness_command_topic": "home/porch/brightness/set",
        "brightness_state_topic": "home/porch/brightness",
    }
    assert d.payloads == {"brightness_scale": "100"}
    assert d.capabilities == ["brightness"]


def test_parse_discovery_json_schema_and_sensitive_garage() -> None:
    d = parse_discovery("homeassistant/light/desk_bulb/config", json.dumps(Z2M_LIGHT).encode())
    assert d is not None and d.id == "desk_bulb" and d.name == "Desk bulb"
    assert d.payloads == {"schema": "json"}
    g = parse_discovery("homeassistant/cover/garage/config", json.dumps(GARAGE).encode())
    assert g is not None and g.sensitive and g.payloads["payload_open"] == "UP"


#: What Valetudo announces for its robot (its VacuumHassComponent), identifier "rockrobo".
VALETUDO_VACUUM = {
    "name": "Robot",
    "object_id": "rockrobo_vacuum",
    "unique_id": "rockrobo_vacuum",
    "supported_features": ["status", "start", "stop", "pause", "return_home", "locate"],
    "state_topic": "valetudo/rockrobo/hass/rockrobo_vacuum/state",
    "command_topic": "valetudo/rockrobo/hass/rockrobo_vacuum/command",
    "payload_start": "START",
    "payload_pause": "PAUSE",
    "payload_return_to_base": "HOME",
    "payload_stop": "STOP",
    "payload_locate": "LOCATE",
    "device": {"name": "Valetudo Rockrobo", "manufacturer": "Roborock", "ids": ["rockrobo"]},
}


def test_parse_discovery_vacuum() -> None:
    v = parse_discovery(
        "homeassistant/vacuum/rockrobo/rockrobo_vacuum/config", json.dumps(VALETUDO_VACUUM).encode()
    )
    assert v is not None and v.kind == "vacuum" and v.adapter == "homeassistant"
    assert v.id == "rockrobo_vacuum" and v.name == "Valetudo Rockrobo Robot"
    assert v.capabilities == ["start", "pause", "stop", "return_home"]
    assert v.payloads["payload_return_to_base"] == "HOME"
    assert v.topics["state_topic"] == "valetudo/rockrobo/hass/rockrobo_vacuum/state"
    # Abbreviations, "~", and Home Assistant's default features (no pause among them).
    abbreviated = {"~": "home/hoover", "name": "Hoover", "uniq_id": "hoover_1", "cmd_t": "~/cmd",
                   "stat_t": "~/state", "send_cmd_t": "~/send", "pl_ret": "dock"}
    h = parse_discovery("homeassistant/vacuum/hoover/config", json.dumps(abbreviated).encode())
    assert h is not None and h.kind == "vacuum"
    assert h.topics == {"command_topic": "home/hoover/cmd", "state_topic": "home/hoover/state",
                        "send_command_topic": "home/hoover/send"}
    assert h.payloads == {"payload_return_to_base": "dock"}
    assert h.capabilities == ["start", "stop", "return_home"]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("homeassistant/light/x/config", b""),  # removal
        ("homeassistant/alarm_control_panel/x/config", b'{"name":"v"}'),  # unsupported
        ("homeassistant/vacuum/x/config", b'{"name":"v","schema":"legacy"}'),  # old schema
        ("homeassistant/light/x/config", b"{not json"),
        ("homeassistant/light/x/state", b'{"name":"v"}'),
    ],
)
def test_parse_discovery_ignores(topic: str, payload: bytes) -> None:
    assert parse_discovery(topic, payload) is None


async def _publish_configs(url: str, configs: dict[str, dict[str, Any]]) -> None:
    pub = MqttClient(url, client_id="discovery-publisher")
    await pub.connect()
    for topic, cfg in configs.items():
        await pub.publish(topic, json.dumps(cfg), retain=True)
    await pub.close()


CONFIGS: dict[str, dict[str, Any]] = {
    "homeassistant/light/porch/light/config": LIGHT,
    "homeassistant/cover/garage/config": GARAGE,
    "homeassistant/light/desk_bulb/config": Z2M_LIGHT,
    "homeassistant/vacuum/rockrobo/rockrobo_vacuum/config": VALETUDO_VACUUM,
}


async def test_discover_from_broker_and_drive_the_devices(mosquitto: Mosquitto) -> None:
    await _publish_configs(mosquitto.url, CONFIGS)
    client = MqttClient(mosquitto.url, client_id="hearth-discovery")
    await client.connect()
    try:
        devices = await discover(client, within=5)
    finally:
        await client.close()
    assert sorted(d.id for d in devices) == [
        "desk_bulb", "garage", "porch_light_01", "rockrobo_vacuum"
    ]

    # The YAML is a valid config section, and the imported devices work end to end.
    text = devices_to_yaml(devices)
    cfg: HomeConfig = parse_config(text)
    assert [d.id for d in cfg.devices] == [d.id for d in devices]
    sim = SimulatedHome(cfg, mosquitto.url)
    await sim.start()
    hearth = MqttClient(mosquitto.url, client_id="hearth-imported")
    await hearth.connect()
    dispatcher = Dispatcher(cfg, hearth)
    await dispatcher.start()
    try:
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("light_set", "porch_light_01", {"brightness": 30}),
            ("light_set", "desk_bulb", {"brightness": 60}),
            ("cover_close", "garage", {}),
            ("vacuum_start", "rockrobo_vacuum", {}),
            ("vacuum_pause", "rockrobo_vacuum", {}),
            ("vacuum_return", "rockrobo_vacuum", {}),
        ]
        for name, device, slots in cases:
            i = Intent(
                name=name,
                slots=Slots(device_ids=[device], **slots),
                confidence=0.95,
                source="grammar",
                reason="test",
            )
            [r] = await dispatcher.dispatch(i)
            assert r.status == "confirmed", r
        assert sim.state("porch_light_01")["brightness"] == 30
        await eventually(lambda: sim.state("rockrobo_vacuum")["state"] == "docked")
    finally:
        await dispatcher.close()
        await hearth.close()
        await sim.stop()


async def test_import_discovery_cli(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    await _publish_configs(mosquitto.url, CONFIGS)
    rc = await asyncio.to_thread(
        hearth_main, ["import-discovery", "--url", mosquitto.url, "--timeout", "5"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    ids = [d["id"] for d in yaml.safe_load(out)["devices"]]
    assert sorted(ids) == ["desk_bulb", "garage", "porch_light_01", "rockrobo_vacuum"]


def test_import_discovery_cli_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.mqtt_fixtures import free_port

    rc = hearth_main(
        ["import-discovery", "--url", f"mqtt://127.0.0.1:{free_port()}", "--timeout", "2"]
    )
    assert rc == 1
    assert "cannot reach MQTT broker" in capsys.readouterr().err


async def test_simulate_cli(mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
    run = asyncio.create_task(
        asyncio.to_thread(
            hearth_main,
            ["simulate", "--url", mosquitto.url, "--duration", "3", "--silent", "kitchen_light"],
        )
    )
    seen: dict[str, bytes] = {}
    client = MqttClient(mosquitto.url, client_id="simulate-watcher")
    await client.connect()
    try:
        client.subscribe("zigbee2mqtt/#", lambda m: seen.update({m.topic: m.payload}))
        await eventually(lambda: "zigbee2mqtt/living_room_light" in seen, within=10)
        assert "zigbee2mqtt/kitchen_light" not in seen  # silent
    finally:
        await client.close()
    assert await run == 0
    assert "simulating 15 devices" in capsys.readouterr().err
