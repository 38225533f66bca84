"""Replicas: two ``hearth serve`` processes behind a real HAProxy (Debian's), sharing one real
Mosquitto, with the demo home's devices simulated by a separate ``hearth simulate`` process
(as in docker-compose's ``replicas`` profile, deploy/haproxy.cfg). Everything on free loopback
ports.

* Text commands through the balancer reach both replicas and each is acted on once (one
  publish on the device's command topic).
* Every replica sees the same home: a state changed through one replica is seen by a session
  on the other (device states come from the broker's retained state topics).
* A replica stopped mid-run (SIGTERM, as an orchestrator does) loses no command: the command it
  was handling finishes and is reported on the open connection, the client is told the server
  is going (``error`` ``shutting_down``, close 1001), and reconnecting through the balancer
  lands on the other replica, which acts on the next command.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from assistant.bench.latency_runner import HearthServer, free_port
from devices.registry import demo_config_path
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import MqttRecorder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed"),
]

EVENT_TIMEOUT_S = 30.0


def haproxy_config(port: int, backends: list[int]) -> str:
    """The balancer of deploy/haproxy.cfg, on loopback ports: HTTP mode (WebSocket upgrades
    pass through and stay pinned to their replica for the connection's life), health checks on
    ``/healthz`` (503 while a replica drains), a refused connection retried on another."""
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check" for i, p in enumerate(backends, 1))
    return f"""global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch
frontend hearth
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
{servers}
"""


class Cluster:
    def __init__(self, workdir: Path, broker_url: str) -> None:
        raw = yaml.safe_load(demo_config_path().read_text(encoding="utf-8"))
        raw["simulate"] = False  # the devices are their own process, as in production
        # Hearth's own topics under a prefix of this cluster's: retained timers and
        # confirmations of other tests on the session's broker stay out of its way.
        self.prefix = f"hearth-{secrets.token_hex(3)}"
        raw.setdefault("mqtt", {}).update(url=broker_url, topic_prefix=self.prefix)
        # Sensitive actions ask for a "yes", with a window no busy test machine outlasts.
        raw["security"].update(require_confirmation=True, confirmation_window_s=120)
        assistant = raw.setdefault("assistant", {})
        assistant["audio"] = False
        assistant["clients"] = [{"id": "kitchen-hub", "area": "kitchen"}, {"id": "hall-hub"}]
        self.config = workdir / "home.yaml"
        self.config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        self.workdir = workdir
        self.broker_url = broker_url
        # The same home on every replica; each writes its own audit file.
        self.audit_paths = [workdir / f"audit{i}.jsonl" for i in (1, 2)]
        self.replicas = []
        for i, audit_path in enumerate(self.audit_paths, 1):
            assistant["audit"] = {"path": str(audit_path), "publish": True}
            config = workdir / f"replica{i}.yaml"
            config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
            self.replicas.append(HearthServer(config, workdir / f"replica{i}.log"))
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        sim_log = open(self.workdir / "simulate.log", "wb")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "assistant.cli", "simulate", "--url", self.broker_url,
                 "--config", str(self.config)],
                stdout=sim_log, stderr=sim_log,
            )
        )  # fmt: skip
        for r in self.replicas:
            r.start()
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.port, [r.port for r in self.replicas]))
        ha_log = open(self.workdir / "haproxy.log", "wb")
        self.procs.append(
            subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=ha_log, stderr=ha_log)
        )
        deadline = time.monotonic() + 30
        while True:  # up when both replicas answer through it
            try:
                if all(_healthy(self.port) for _ in range(2)):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError((self.workdir / "haproxy.log").read_text())
            time.sleep(0.2)

    def sessions_active(self) -> list[float]:
        return [_metric(r.port, "hearth_sessions_active") for r in self.replicas]

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return bool(r.status == 200)


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def cluster(hearth_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, hearth_mosquitto.url)
    c.start()
    try:
        yield c
    finally:
        c.stop()


async def _open(url: str) -> ClientConnection:
    ws = await connect(url)
    created = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
    assert created["type"] == "session.created", created
    return ws


async def _say(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    """Send a text command; its events up to its ``metrics``."""
    await ws.send(json.dumps({"type": "text", "text": text}))
    return await _until_metrics(ws)


async def _until_metrics(ws: ClientConnection) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        e = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
        if e["type"] == "device.state":
            continue
        events.append(e)
        if e["type"] == "metrics":
            return events


def _final_actions(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["device_id"], e["status"]) for e in events if e["type"] == "action" and e["final"]]


def _commands(rec: MqttRecorder, topic: str) -> list[str]:
    return [payload for _t, tp, payload in rec.messages if tp == topic]


async def test_commands_through_either_replica_act_once(
    cluster: Cluster, mqtt_recorder: MqttRecorder
) -> None:
    a = await _open(cluster.url)
    b = await _open(cluster.url)
    # Round robin: one connection on each replica.
    assert sorted(cluster.sessions_active()) == [1.0, 1.0]
    async with a, b:
        got_a = await _say(a, "turn on the kitchen light")
        got_b = await _say(b, "turn on the hallway light")
        assert _final_actions(got_a) == [("kitchen_light", "confirmed")]
        assert _final_actions(got_b) == [("hallway_light", "confirmed")]
        # The state that replica A's command changed is known to replica B, from the broker:
        # a session on B asks for device events and is told the light is on.
        await b.send(json.dumps({"type": "session.update", "device_events": True}))
        got = await _say(b, "is the kitchen light on")
    kitchen = [c for c in _commands(mqtt_recorder, "zigbee2mqtt/kitchen_light/set")]
    assert len(kitchen) == 1 and json.loads(kitchen[0])["state"] == "ON"
    hallway = [
        c
        for _t, tp, c in mqtt_recorder.messages
        if tp == "shellyplus1-hallway/rpc" and json.loads(c)["method"] == "Switch.Set"
    ]
    assert len(hallway) == 1, hallway
    replies = " ".join(e.get("text", "") for e in got if e["type"] == "response.text").lower()
    assert "kitchen light is on" in replies, got


async def test_a_replica_stopped_mid_run_loses_no_command(
    cluster: Cluster, mqtt_recorder: MqttRecorder
) -> None:
    ws = await _open(cluster.url)
    active = cluster.sessions_active()
    victim = cluster.replicas[active.index(1.0)]
    await ws.send(json.dumps({"type": "text", "text": "turn on the office light"}))
    events: list[dict[str, Any]] = []
    # The replica has the command (its turn started) before it is told to stop: a message
    # still on its way through the balancer is the client's to send again after `shutting_down`.
    while not any(e["type"] == "transcript.final" for e in events):
        e = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
        if e["type"] != "device.state":
            events.append(e)
    os.kill(victim.pid, signal.SIGTERM)  # as an orchestrator stops it: drain, then go
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            e = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
            if e["type"] != "device.state":
                events.append(e)
    # The command in flight was finished and reported before the replica went ...
    assert _final_actions(events) == [("office_light", "confirmed")], events
    # ... and the client was told why the connection ends.
    assert [e["code"] for e in events if e["type"] == "error"] == ["shutting_down"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    # Reconnecting through the balancer lands on the replica that is still up.
    again = await _open(cluster.url)
    async with again:
        got = await _say(again, "turn off the office light")
    assert _final_actions(got) == [("office_light", "confirmed")]
    office = _commands(mqtt_recorder, "home/office_light/set")
    assert office == ["ON", "OFF"]  # each command published once


# -- what the replicas share through the broker (timers, confirmations, the audit stream) ----


async def _as_client(ws: ClientConnection, client_id: str) -> None:
    """``session.update {client_id}``, up to its ``session.updated``."""
    await ws.send(json.dumps({"type": "session.update", "client_id": client_id}))
    while True:
        e = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
        if e["type"] == "session.updated":
            return


async def _until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Events up to and including the first of ``kind``."""
    events: list[dict[str, Any]] = []
    while True:
        e = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
        if e["type"] == "device.state":
            continue
        events.append(e)
        if e["type"] == kind:
            return events


def _reply(events: list[dict[str, Any]]) -> str:
    return " ".join(e["text"] for e in events if e["type"] == "response.text")


async def _messages(
    rec: MqttRecorder, done: Callable[[list[tuple[str, str]]], bool]
) -> list[tuple[str, str]]:
    """(topic, payload) of every message so far, once ``done`` holds for them."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        got = [(tp, payload) for _t, tp, payload in list(rec.messages)]
        if done(got):
            return got
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)


async def _audit_file(path: Path, done: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
    """The entries of a replica's own audit file, once ``done`` holds for them."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        text = await asyncio.to_thread(_read, path)
        lines = [json.loads(line) for line in text.splitlines() if line]
        if done(lines):
            return lines
        assert time.monotonic() < deadline, lines
        await asyncio.sleep(0.05)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _finished_notices(got: list[tuple[str, str]], topic: str) -> list[dict[str, Any]]:
    out = []
    for tp, payload in got:
        if tp == topic and payload and json.loads(payload).get("state") == "finished":
            out.append(json.loads(payload))
    return out


async def test_a_timer_set_through_one_replica_is_found_and_fired_once_on_the_other(
    cluster: Cluster, mqtt_recorder: MqttRecorder
) -> None:
    first, other = cluster.replicas
    a = await _open(first.url)
    async with a:
        await _as_client(a, "kitchen-hub")
        got = await _say(a, "set a timer for 10 seconds")
    assert [(e["intent"], e["status"]) for e in got if e["type"] == "action"] == [
        ("timer_start", "confirmed")
    ], got
    uid = got[0]["utterance_id"]
    # The client comes back on the other replica (as after a balancer's choice or a
    # replica's restart): the timer set on the first is known there.
    b = await _open(other.url)
    async with b:
        await _as_client(b, "kitchen-hub")
        assert _reply(await _say(b, "how much time is left on the timer")).endswith(
            "left on the timer."
        )
        # Pausing and resuming there write the shared record; the first replica, which
        # counts it down, follows.
        assert _reply(await _say(b, "pause the timer")) == "Timer paused."
        left = _reply(await _say(b, "how much time is left on the timer"))
        assert left.startswith("The timer is paused with"), left
        assert _reply(await _say(b, "resume the timer")) == "Timer resumed."
        events = await _until(b, "timer.finished")
        finished = events[-1]
        assert finished["utterance_id"] == uid
        announced = await _until(b, "response.text")
        assert announced[-1]["text"] == "Your 10 second timer is done."
        # Once: the next turn on this connection brings no second one.
        later = await _say(b, "what time is it")
    assert not [e for e in later if e["type"] == "timer.finished"], later
    topic = f"{cluster.prefix}/timers/kitchen-hub/{finished['timer_id']}"
    # It fired once in the whole building (one "finished" notice, from the replica that set
    # it), and its retained record is gone.
    got_all = await _messages(mqtt_recorder, lambda m: (topic, "") in m)
    notices = _finished_notices(got_all, topic)
    assert len(notices) == 1, notices

    # The replica that set it (and fired it) had no session of the client any more: its own
    # audit file has the timer; the other's has none.
    def fired(lines: list[dict[str, Any]]) -> bool:
        return any(line.get("event") == "timer.finished" for line in lines)

    entries = await _audit_file(cluster.audit_paths[0], fired)
    assert [e["timer_id"] for e in entries if e.get("event") == "timer.finished"] == [
        finished["timer_id"]
    ]
    assert not fired(await _audit_file(cluster.audit_paths[1], lambda _lines: True))


@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_a_timer_outlives_the_replica_that_set_it(
    cluster: Cluster, mqtt_recorder: MqttRecorder, how: str
) -> None:
    first, other = cluster.replicas
    a = await _open(first.url)
    async with a:
        await _as_client(a, "hall-hub")
        got = await _say(a, "set a timer for 8 seconds")
    uid = got[0]["utterance_id"]
    if how == "killed":
        # No goodbye: the broker publishes the replica's last will (its presence emptied).
        os.kill(first.pid, signal.SIGKILL)
    first.stop()  # SIGTERM: it empties its presence itself; the replica left claims its timers
    b = await _open(other.url)
    async with b:
        await _as_client(b, "hall-hub")
        assert _reply(await _say(b, "how much time is left on the timer")).endswith(
            "left on the timer."
        )
        events = await _until(b, "timer.finished")
        assert events[-1]["utterance_id"] == uid
        timer_id = events[-1]["timer_id"]
    topic = f"{cluster.prefix}/timers/hall-hub/{timer_id}"
    got_all = await _messages(mqtt_recorder, lambda m: (topic, "") in m)
    assert len(_finished_notices(got_all, topic)) == 1


async def test_an_audit_subscriber_sees_every_replica(
    cluster: Cluster, hearth_mosquitto: Mosquitto
) -> None:
    topic = f"{cluster.prefix}/audit"
    audit = MqttRecorder(hearth_mosquitto.url, topic)
    try:
        uids = []
        for replica, text in zip(
            cluster.replicas,
            ("turn on the kitchen light", "turn off the kitchen light"),
            strict=True,
        ):
            ws = await _open(replica.url)
            async with ws:
                uids.append((await _say(ws, text))[0]["utterance_id"])

        def both(m: list[tuple[str, str]]) -> bool:
            seen = {json.loads(p).get("utterance_id") for tp, p in m if tp == topic}
            return set(uids) <= seen

        got = await _messages(audit, both)
    finally:
        audit.close()
    entries = {json.loads(p)["utterance_id"]: json.loads(p) for _tp, p in got}
    one, two = (entries[u] for u in uids)
    # One subscriber, the whole building: each entry names its replica, and they differ.
    assert one["replica"] != two["replica"]
    assert (one["transcript"], two["transcript"]) == (
        "turn on the kitchen light",
        "turn off the kitchen light",
    )
    # Each replica still writes its own file.
    for path, uid in zip(cluster.audit_paths, uids, strict=True):
        await _audit_file(path, lambda lines, u=uid: any(x.get("utterance_id") == u for x in lines))


async def _confirm(ws: ClientConnection) -> list[dict[str, Any]]:
    """A ``confirm`` message (accept), its events up to its ``metrics``."""
    await ws.send(json.dumps({"type": "confirm", "accept": True}))
    return await _until_metrics(ws)


async def test_a_pending_confirmation_is_cancelled_and_said_when_the_client_moves(
    cluster: Cluster, mqtt_recorder: MqttRecorder
) -> None:
    first, other = cluster.replicas
    a = await _open(first.url)
    async with a:
        await _as_client(a, "kitchen-hub")
        asked = await _say(a, "unlock the front door")
        assert _reply(asked) == "Unlock the front door? Say yes."
        uid = asked[0]["utterance_id"]
        # The client comes back on the other replica (its old connection not even closed).
        b = await _open(other.url)
        async with b:
            await _as_client(b, "kitchen-hub")
            told = await _until(b, "response.text")
            notices = [e for e in told if e["type"] == "confirmation.cancelled"]
            assert [(n["utterance_id"], n["intent"], n["device_ids"]) for n in notices] == [
                (uid, "unlock", ["front_door_lock"])
            ], told
            assert told[-1]["text"] == (
                "I didn't unlock the front door: the connection changed before you said yes. "
                "Ask again if you still want it."
            )
            # A "yes" there has nothing to confirm ...
            assert _reply(await _confirm(b)) == "There's nothing to confirm."
        # ... and neither has one on the old connection: the record it needed is cancelled.
        topic = f"{cluster.prefix}/confirmations/kitchen-hub/pending"
        assert json.loads(mqtt_recorder.wait_for(topic, '"cancelled"'))["session"]
        assert _reply(await _say(a, "yes")) == "There's nothing to confirm."
    # The door was never told to unlock, and the replica that told the user logged why.
    assert not _commands(mqtt_recorder, "zigbee2mqtt/front_door_lock/set")
    entries = await _audit_file(
        cluster.audit_paths[1],
        lambda lines: any(x.get("event") == "confirmation.cancelled" for x in lines),
    )
    cancelled = [x for x in entries if x.get("event") == "confirmation.cancelled"]
    assert [(x["utterance_id"], x["intent"]) for x in cancelled] == [(uid, "unlock")]
