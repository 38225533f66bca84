"""The shipped Mosquitto example (deploy/mosquitto/): its mosquitto.conf, its ACL and its
password script, on a real Mosquitto on a free port.

Hearth believes the state topics, so the ACL must keep anyone else from publishing them:
clients without rights cannot publish a state (a subscriber sees nothing), a device only its
own topics, Hearth's user only commands — and Hearth still works end to end with it.

"Sees nothing" is checked without waiting on a clock: after the forbidden message the same
client publishes an allowed one (QoS 1). The broker keeps one client's messages in order, so
once the allowed one has arrived, the forbidden one would have arrived before it.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.registry import load_demo_config
from tests.mqtt_fixtures import Mosquitto, mosquitto_binary
from tests.server_fixtures import ServerThread, demo_settings, open_session, recv_utterances

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
USERS = ("hearth", "demo-devices", "zigbee2mqtt", "coffee_maker", "intruder")
WAIT_S = 20.0


@dataclass
class AclBroker:
    broker: Mosquitto
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        cred = f"{quote(user, safe='')}:{quote(self.passwords[user], safe='')}"
        return f"mqtt://{cred}@127.0.0.1:{self.broker.port}"


def shipped_config(port: int, passwd: Path, workdir: Path) -> str:
    """deploy/mosquitto/mosquitto.conf with this machine's port and paths."""
    out = []
    seen = set()
    for line in (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        key = line.split(" ", 1)[0]
        seen.add(key)
        if key == "listener":
            line = f"listener {port} 127.0.0.1"
        elif key == "password_file":
            line = f"password_file {passwd}"
        elif key == "acl_file":
            line = f"acl_file {DEPLOY / 'acl'}"
        elif key == "persistence_location":
            line = f"persistence_location {workdir}/"
        out.append(line)
    assert {"allow_anonymous", "password_file", "acl_file"} <= seen
    assert "allow_anonymous false" in out
    # Run as root, Mosquitto would drop to user "mosquitto", who cannot read the tmp dir.
    out.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return "\n".join(out) + "\n"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[AclBroker]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    passwd = tmp_path / "passwd" / "passwd"
    env = {
        **os.environ,
        "PASSWD_FILE": str(passwd),
        "MQTT_USERS": " ".join(USERS),
        **{f"MQTT_PASSWORD_{u.replace('-', '_')}": p for u, p in passwords.items()},
    }
    # The shipped entrypoint writes the password file; "true" instead of Mosquitto.
    subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "true"], env=env, check=True)
    assert passwd.stat().st_mode & 0o077 == 0  # nobody else may read it
    for p in passwords.values():
        assert p not in passwd.read_text()  # hashed
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Mosquitto(binary, workdir)
    broker.config.write_text(shipped_config(broker.port, passwd, workdir), encoding="utf-8")
    broker.start()
    try:
        yield AclBroker(broker, passwords)
    finally:
        broker.stop()


def test_entrypoint_refuses_a_user_without_a_password(tmp_path: Path) -> None:
    env = {**os.environ, "PASSWD_FILE": str(tmp_path / "passwd"), "MQTT_USERS": "hearth"}
    env.pop("MQTT_PASSWORD_hearth", None)
    proc = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: MQTT_PASSWORD_hearth is not set (the MQTT password of user hearth)"
    )


class Client:
    """A paho client as one user; records what it receives."""

    def __init__(self, broker: AclBroker, user: str | None, subscribe: tuple[str, ...] = ()):
        self.messages: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self._c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}")
        if user is not None:
            self._c.username_pw_set(user, broker.passwords[user])
        connected = threading.Event()
        self.reason: Any = None

        def on_connect(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self.reason = reason
            connected.set()

        subscribed = threading.Event()
        self._c.on_connect = on_connect
        self._c.on_subscribe = lambda *_: subscribed.set()
        self._c.on_message = self._on_message
        self._c.connect("127.0.0.1", broker.broker.port)
        self._c.loop_start()
        assert connected.wait(WAIT_S), "no CONNACK"
        if subscribe and not self.reason.is_failure:
            self._c.subscribe([(t, 1) for t in subscribe])
            assert subscribed.wait(WAIT_S), "no SUBACK"

    @property
    def refused(self) -> bool:
        return bool(self.reason.is_failure)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload.decode()))
            self._cond.notify_all()

    def publish(self, topic: str, payload: str) -> None:
        info = self._c.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)  # PUBACK: a denied message is dropped, still acked
        assert info.is_published(), topic

    def wait_for(self, topic: str) -> list[tuple[str, str]]:
        """Everything received up to and including the first message on ``topic``."""
        deadline = time.monotonic() + WAIT_S
        with self._cond:
            while True:
                for i, (t, _) in enumerate(self.messages):
                    if t == topic:
                        return self.messages[: i + 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing on {topic}; got {self.messages}")
                self._cond.wait(left)

    def close(self) -> None:
        self._c.loop_stop()
        self._c.disconnect()


@pytest.fixture
def clients(acl_broker: AclBroker) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(user: str | None, *subscribe: str) -> Client:
        client = Client(acl_broker, user, subscribe)
        made.append(client)
        return client

    yield make
    for c in made:
        c.close()


def test_no_anonymous_client_and_no_wrong_password(
    acl_broker: AclBroker, clients: Callable[..., Client]
) -> None:
    assert clients(None).refused
    acl_broker.passwords["hearth"] = "not-the-password"
    assert clients("hearth").refused


def test_a_client_without_rights_cannot_publish_a_state(clients: Callable[..., Client]) -> None:
    hearth = clients("hearth", "zigbee2mqtt/#", "stat/#", "home/#", "+/status/#")
    intruder = clients("intruder")
    assert not intruder.refused  # a valid login, but no rights to anyone's topics
    for topic, payload in (
        ("zigbee2mqtt/front_door_lock", '{"state": "LOCK"}'),
        ("home/garage_door/state", "closed"),
        ("stat/coffee_maker/POWER", "OFF"),
        ("shellyplus1-hallway/status/switch:0", '{"output": false}'),
        ("zigbee2mqtt/kitchen_light/set", '{"state": "ON"}'),  # nor a command
    ):
        intruder.publish(topic, payload)
    intruder.publish("stat/intruder/RESULT", "{}")  # its own: allowed (the marker)
    got = hearth.wait_for("stat/intruder/RESULT")
    assert got == [("stat/intruder/RESULT", "{}")]


def test_a_device_publishes_only_its_own_state_and_reads_only_its_commands(
    clients: Callable[..., Client],
) -> None:
    hearth = clients("hearth", "stat/#")
    coffee = clients("coffee_maker", "cmnd/#", "cmnd/bedroom_lamp/#", "cmnd/coffee_maker/#")
    coffee.publish("stat/bedroom_lamp/POWER", "ON")  # another device's state: dropped
    coffee.publish("stat/coffee_maker/POWER", "ON")
    assert hearth.wait_for("stat/coffee_maker/POWER") == [("stat/coffee_maker/POWER", "ON")]
    hearth.publish("cmnd/bedroom_lamp/POWER", "OFF")  # not for the coffee maker's eyes
    hearth.publish("cmnd/coffee_maker/POWER", "OFF")
    got = coffee.wait_for("cmnd/coffee_maker/POWER")
    assert all(topic.startswith("cmnd/coffee_maker/") for topic, _ in got), got


def test_hearth_publishes_commands_but_cannot_forge_a_state(
    clients: Callable[..., Client],
) -> None:
    bridge = clients("zigbee2mqtt", "zigbee2mqtt/#")
    hearth = clients("hearth", "zigbee2mqtt/#")
    hearth.publish("zigbee2mqtt/front_door_lock", '{"state": "LOCK"}')  # a state: dropped
    hearth.publish("zigbee2mqtt/kitchen_light/set", '{"state": "ON"}')  # a command
    got = bridge.wait_for("zigbee2mqtt/kitchen_light/set")
    assert got == [("zigbee2mqtt/kitchen_light/set", '{"state": "ON"}')]
    # The bridge, in turn, may report states, which Hearth reads.
    bridge.publish("zigbee2mqtt/kitchen_light", '{"state": "ON"}')
    assert hearth.wait_for("zigbee2mqtt/kitchen_light")[-1][1] == '{"state": "ON"}'


def test_only_hearth_writes_what_its_replicas_share(clients: Callable[..., Client]) -> None:
    """Timers, pending confirmations, replica presence and the audit stream (docs/scale.md)
    are Hearth's to write: a device, the demo devices or another login cannot forge them."""
    hearth = clients("hearth", "hearth/#")
    shared = (
        ("hearth/timers/kitchen-hub/t1-x", '{"holder": "hearth-x"}'),
        ("hearth/confirmations/kitchen-hub/pending", '{"state": "pending"}'),
        ("hearth/replicas/hearth-x/presence", '{"since": 0}'),
        ("hearth/audit", '{"event": "x"}'),
    )
    for user in ("demo-devices", "coffee_maker", "intruder"):
        other = clients(user)
        for topic, payload in shared:
            other.publish(topic, payload)  # dropped
    for topic, payload in shared:
        hearth.publish(topic, payload)
    assert hearth.wait_for("hearth/audit") == list(shared)


async def test_hearth_works_behind_the_acl_and_ignores_forged_states(
    acl_broker: AclBroker, clients: Callable[..., Client]
) -> None:
    """The demo home as docker-compose runs it: Hearth as ``hearth``, the simulated devices
    as ``demo-devices``; commands confirm. A forged lock state from another login does not
    reach Hearth's view of the home."""
    from devices.simulators import SimulatedHome

    config = load_demo_config().model_copy(update={"simulate": False})
    home = SimulatedHome(config, acl_broker.url("demo-devices"))
    await home.start()
    server = await asyncio.to_thread(
        ServerThread(config, demo_settings(audio=False), mqtt_url=acl_broker.url("hearth")).start
    )
    try:
        ws, _ = await open_session(server.url)
        async with ws:
            for text in ("lock the front door", "turn on the kitchen light"):
                await ws.send(json.dumps({"type": "text", "text": text}))
                got = await recv_utterances(ws, 1)
                assert got.of("action")[-1]["status"] == "confirmed", (text, got.events)
            intruder = clients("intruder")
            intruder.publish("zigbee2mqtt/front_door_lock", '{"state": "UNLOCK"}')
            # Later messages reach Hearth after anything the broker accepted before them.
            await ws.send(json.dumps({"type": "text", "text": "turn off the kitchen light"}))
            got = await recv_utterances(ws, 1)
            assert got.of("action")[-1]["status"] == "confirmed"
        assert server.hearth is not None
        states = {d["id"]: d["state"] for d in server.hearth.devices()}
        assert states["front_door_lock"]["state"] == "locked", states["front_door_lock"]
        assert states["kitchen_light"]["state"] == "off"
    finally:
        await asyncio.to_thread(server.stop)
        await home.stop()


def test_hearth_simulate_logs_in_as_the_demo_devices(
    acl_broker: AclBroker, clients: Callable[..., Client]
) -> None:
    """docker-compose's ``devices`` service: ``hearth simulate --username demo-devices
    --password-env VAR`` publishes the demo home's states, which Hearth's login reads."""
    hearth = clients("hearth", "zigbee2mqtt/#")
    env = {**os.environ, "DEMO_PW": acl_broker.passwords["demo-devices"]}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "assistant.cli", "simulate",
            "--url", f"mqtt://127.0.0.1:{acl_broker.broker.port}",
            "--username", "demo-devices", "--password-env", "DEMO_PW", "--duration", "120",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        got = hearth.wait_for("zigbee2mqtt/front_door_lock")
        assert json.loads(got[-1][1])  # the simulated lock's retained state
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert acl_broker.passwords["demo-devices"] not in err
