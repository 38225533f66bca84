"""End-to-end fault tests through the WebSocket (issue 6).

* A real Hearth server (real recognizer, dispatcher and simulated devices) against a real
  Mosquitto that the test stops and starts again in the middle of a run of 500 ``text``
  commands over five connections: every command must end with exactly one final ``action``
  (``confirmed``, or ``unconfirmed``/``failed`` reported to its client) — none silently lost —
  every command the server reported as acknowledged must reach an independent subscriber, and
  commands must be confirmed again after the restart. Run with ``-s`` to see the counts.
* A recognizer or ASR exception gives an ``error`` event on the socket and the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest

from assistant.audio.endpoint import SpeechStarted, SpeechStopped
from assistant.config import AssistantSettings
from assistant.metrics import Metrics
from assistant.server import HearthServer
from assistant.session import SessionResources
from devices.actions import ActionResult
from devices.mqtt import MqttClient, MqttMessage
from devices.registry import load_demo_config
from intents.schema import Intent, Recognition, Slots
from tests.mqtt_fixtures import Mosquitto, eventually
from tests.server_fixtures import (
    ServerThread,
    demo_settings,
    open_session,
    recv_utterances,
)

pytestmark = pytest.mark.timeout(180)

COMMANDS = 500
#: One connection per device, so that a device's on/off commands come from one client.
DEVICES = ("kitchen light", "living room light", "bedroom lamp", "office light", "hallway light")
#: Commands a client keeps in flight (the server allows 32 below): enough that dozens of
#: commands wait in the MQTT outbox while the broker is down.
WINDOW = 16
#: How long the broker stays down once the server has noticed. Shapes the scenario (commands
#: pile up in the outbox); nothing asserts on time.
OUTAGE_S = 1.5
#: A client gives up on a command after this long without any event (a lost command).
IDLE_S = 40.0

Phase = Literal["before", "outage", "after"]
FINAL_STATUSES = ("confirmed", "unconfirmed", "failed")


@dataclass
class Client:
    """One connection's view: commands sent, events received."""

    device: str
    sent: list[tuple[str, Phase]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: int = 0  # metrics events: one per utterance, always its last event

    def utterances(self) -> list[tuple[str, str, Phase]]:
        """(utterance id, text, phase) in sending order: the server numbers a connection's
        utterances in the order their ``text`` messages arrived."""
        finals = [e for e in self.events if e["type"] == "transcript.final"]
        return [
            (e["utterance_id"], e["text"], phase)
            for e, (_text, phase) in zip(finals, self.sent, strict=False)
        ]

    def events_of(self, utterance_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind and e["utterance_id"] == utterance_id]


async def test_mosquitto_restart_mid_run_loses_no_command(mosquitto: Mosquitto) -> None:
    server = ServerThread(
        load_demo_config(),
        demo_settings(audio=False, **{"limits.max_utterances_in_flight": 2 * WINDOW}),
        mqtt_url=mosquitto.url,
    )
    await asyncio.to_thread(server.start)
    hearth = server.hearth
    assert hearth is not None and hearth.mqtt is not None and hearth.simulator is not None
    # An independent witness with a persistent session: the broker keeps what it acknowledged
    # for it across the restart (the fixture's Mosquitto persists sessions).
    witness = MqttClient(
        mosquitto.url, client_id="fault-witness", clean_session=False, reconnect_max_s=0.5
    )
    received: Counter[str] = Counter()

    def witness_message(m: MqttMessage) -> None:
        received[m.topic] += 1

    await witness.connect()
    witness.subscribe("#", witness_message)
    await witness.barrier()

    clients = [Client(device) for device in DEVICES]
    phase: Phase = "before"
    sent_total = 0

    async def drive(client: Client) -> None:
        ws, _ = await open_session(server.url)
        window = asyncio.Semaphore(WINDOW)
        all_sent = False

        async def read() -> None:
            while not (all_sent and client.finished >= len(client.sent)):
                event = json.loads(await asyncio.wait_for(ws.recv(), IDLE_S))
                if event["type"] == "device.state":
                    continue
                client.events.append(event)
                if event["type"] == "metrics":
                    client.finished += 1
                    window.release()

        nonlocal sent_total
        async with ws:
            reader = asyncio.create_task(read())
            n = COMMANDS // len(clients)
            for k in range(n):
                await window.acquire()
                text = f"turn {'on' if k % 2 == 0 else 'off'} the {client.device}"
                client.sent.append((text, phase))
                await ws.send(json.dumps({"type": "text", "text": text}))
                sent_total += 1
                # Yield a little so that sending spreads over time and connections.
                await asyncio.sleep(0.002)
            all_sent = True
            # A TimeoutError here is a lost command: the counts below say which.
            with contextlib.suppress(TimeoutError):
                await reader

    async def break_the_broker() -> dict[str, int]:
        nonlocal phase
        async with asyncio.timeout(60):
            while sent_total < COMMANDS // 3:  # noqa: ASYNC110 - a counter of the drivers
                await asyncio.sleep(0.01)
        at_stop = sent_total
        await asyncio.to_thread(mosquitto.stop)
        phase = "outage"
        assert hearth.mqtt is not None
        await eventually(lambda: not hearth.mqtt.connected, within=10)  # type: ignore[union-attr]
        await asyncio.sleep(OUTAGE_S)
        at_start = sent_total
        in_flight = at_start - sum(c.finished for c in clients)
        await asyncio.to_thread(mosquitto.start)
        phase = "after"
        return {"sent_at_stop": at_stop, "sent_at_start": at_start, "in_flight": in_flight}

    try:
        fault = asyncio.create_task(break_the_broker())
        await asyncio.gather(*(drive(c) for c in clients))
        outage = await fault

        # -- every command ends with exactly one final action, reported to its client -----
        sent = sum(len(c.sent) for c in clients)
        statuses: Counter[str] = Counter()
        by_phase: dict[Phase, Counter[str]] = {p: Counter() for p in ("before", "outage", "after")}
        published: Counter[str] = Counter()
        errors = [e for c in clients for e in c.events if e["type"] == "error"]
        lost: list[str] = []
        for c in clients:
            utterances = c.utterances()
            lost += [text for text, _ in c.sent[len(utterances) :]]
            for uid, text, ph in utterances:
                finals = [a for a in c.events_of(uid, "action") if a["final"]]
                metrics = c.events_of(uid, "metrics")
                if len(finals) != 1 or len(metrics) != 1:
                    lost.append(f"{uid} {text!r}: {len(finals)} final actions, {len(metrics)} ends")
                    continue
                status = finals[0]["status"]
                statuses[status] += 1
                by_phase[ph][status] += 1
                pubs = [a for a in c.events_of(uid, "action") if a["status"] == "published"]
                if status != "failed":
                    # Confirmed or unconfirmed means the broker acknowledged the command.
                    assert len(pubs) == 1, (uid, c.events_of(uid, "action"))
                for a in pubs:
                    published[a["topic"]] += 1

        print(
            f"\nmosquitto restart mid-run: {sent} commands sent over {len(clients)} connections; "
            f"final actions {sum(statuses.values())} ({dict(statuses)}); lost {len(lost)}; "
            f"errors {len(errors)}; broker stopped after {outage['sent_at_stop']} sent, "
            f"restarted after {outage['sent_at_start']} sent with {outage['in_flight']} in flight; "
            f"by phase { ({p: dict(s) for p, s in by_phase.items()}) }; "
            f"server MQTT reconnects {hearth.mqtt.reconnects}"
        )
        assert sent == COMMANDS
        assert lost == []
        assert errors == []
        assert sum(statuses.values()) == COMMANDS
        assert set(statuses) <= set(FINAL_STATUSES)
        # The scenario really happened: commands were waiting while the broker was down.
        assert outage["in_flight"] > 0
        assert hearth.mqtt.reconnects >= 1
        assert by_phase["before"]["confirmed"] > 0
        assert by_phase["after"]["confirmed"] > 0

        # -- what the server says the broker acknowledged, the broker delivered ----------
        await eventually(lambda: witness.connected, within=20)
        await witness.barrier()
        with contextlib.suppress(TimeoutError):
            await eventually(lambda: all(received[t] >= n for t, n in published.items()), within=20)
        short = {t: (received[t], n) for t, n in published.items() if received[t] < n}
        assert short == {}, "acknowledged commands the witness never saw: (seen, acked)"

        # -- after the restart the whole path works again --------------------------------
        sim = hearth.simulator
        await eventually(lambda: hearth.mqtt.connected and sim.mqtt.connected, within=20)  # type: ignore[union-attr]
        ws, _ = await open_session(server.url)
        async with ws:
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
            got = await recv_utterances(ws, 1)
        assert [a["status"] for a in got.of("action") if a["final"]] == ["confirmed"]
    finally:
        await witness.close()
        await asyncio.to_thread(server.stop)


#: Commands sent while the broker stays down for longer than the publish timeout.
DOWN_COMMANDS = 20


async def test_commands_while_the_broker_stays_down_are_reported_failed(
    mosquitto: Mosquitto,
) -> None:
    """Past the publish timeout (15 s by default, 4 s here) a command is reported ``failed`` to
    its client, and a command reported failed is never sent later (an "unlock" reported failed
    stays undone)."""
    server = ServerThread(
        load_demo_config(),
        demo_settings(audio=False, **{"limits.max_utterances_in_flight": DOWN_COMMANDS}),
        mqtt_url=mosquitto.url,
    )
    await asyncio.to_thread(server.start)
    hearth = server.hearth
    assert hearth is not None and hearth.mqtt is not None and hearth.simulator is not None
    hearth.mqtt.publish_timeout_s = 4.0
    topic = "zigbee2mqtt/kitchen_light/set"
    received: list[bytes] = []
    witness = MqttClient(
        mosquitto.url, client_id="down-witness", clean_session=False, reconnect_max_s=0.5
    )
    await witness.connect()
    witness.subscribe(topic, lambda m: received.append(m.payload))
    await witness.barrier()
    try:
        ws, _ = await open_session(server.url)
        async with ws:
            await asyncio.to_thread(mosquitto.stop)
            await eventually(lambda: not hearth.mqtt.connected, within=10)  # type: ignore[union-attr]
            for k in range(DOWN_COMMANDS):
                text = f"turn {'on' if k % 2 == 0 else 'off'} the kitchen light"
                await ws.send(json.dumps({"type": "text", "text": text}))
            got = await recv_utterances(ws, DOWN_COMMANDS)
        finals = [a for a in got.of("action") if a["final"]]
        print(
            f"\nbroker down past the publish timeout: {DOWN_COMMANDS} commands sent, "
            f"{len(finals)} final actions {dict(Counter(a['status'] for a in finals))}"
        )
        assert len(got.of("metrics")) == DOWN_COMMANDS
        assert [a["status"] for a in finals] == ["failed"] * DOWN_COMMANDS
        assert all("not sent: broker unreachable" in a["detail"] for a in finals)
        assert got.of("error") == []

        await asyncio.to_thread(mosquitto.start)
        sim = hearth.simulator
        await eventually(
            lambda: hearth.mqtt.connected and sim.mqtt.connected and witness.connected,  # type: ignore[union-attr]
            within=20,
        )
        await witness.barrier()
        ws, _ = await open_session(server.url)
        async with ws:
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
            after = await recv_utterances(ws, 1)
        assert [a["status"] for a in after.of("action") if a["final"]] == ["confirmed"]
        await witness.barrier()
        # Only the command sent after the restart went out; the failed ones never will.
        assert len(received) == 1
    finally:
        await witness.close()
        await asyncio.to_thread(server.stop)


# -- model/recognizer exceptions through the socket ----------------------------------------


def _light_on(text: str) -> Intent:
    return Intent(
        name="light_on",
        slots=Slots(device_ids=["kitchen_light"]),
        confidence=1.0,
        source="grammar",
        reason="fake",
        text=text,
    )


class _Recognizer:
    """Raises on any text containing "boom"; everything else turns on the kitchen light."""

    def recognize(
        self, text: str, *, language: str | None = None, context: Intent | None = None
    ) -> Recognition:
        if "boom" in text:
            raise RuntimeError("secret recognizer detail")
        return Recognition(intent=_light_on(text), reason="fake match")


class _Dispatcher:
    async def dispatch(
        self, intent: Intent, *, on_result: Any = None, confirmed: bool = False
    ) -> list[ActionResult]:
        return [
            ActionResult(
                device_id="kitchen_light",
                intent=intent.name,
                status="confirmed",
                state={"state": "on"},
            )
        ]


class _FrontEnd:
    """A voiced frame (first sample non-zero) starts speech; the next silent one ends it."""

    def __init__(self) -> None:
        self.speaking = False

    def feed(self, pcm: bytes, now: float) -> list[object]:
        voiced = pcm[:2] != b"\x00\x00"
        if voiced and not self.speaking:
            self.speaking = True
            return [SpeechStarted(now, 0)]
        if not voiced and self.speaking:
            self.speaking = False
            return [SpeechStopped(now, now, np.zeros(1600, np.float32), "silence", 0, 100)]
        return []

    def commit(self, now: float) -> list[object]:
        return []

    def set_complete(self, complete: bool, now: float | None = None) -> list[object]:
        return []

    def clear(self) -> None:
        self.speaking = False


VOICED = b"\x10\x00" * 320
SILENT = b"\x00\x00" * 320


async def test_recognizer_and_asr_exceptions_give_error_events_and_the_session_goes_on() -> None:
    asr_failures = [True]  # the first transcription raises, later ones work

    def transcribe(audio: Any) -> str:
        if asr_failures and asr_failures.pop():
            raise RuntimeError("secret ASR detail")
        return "turn on the kitchen light"

    resources = SessionResources(
        settings=AssistantSettings().with_overrides(**{"server.port": 0, "speculative": False}),
        recognizer=_Recognizer(),
        dispatcher=_Dispatcher(),
        metrics=Metrics(),
        frontend_factory=lambda rate, td, mode: _FrontEnd(),
        transcribe=transcribe,
    )

    async def speak(ws: Any) -> None:
        for frame in (VOICED, VOICED, SILENT):
            await ws.send(frame)

    async with HearthServer(resources) as server:
        ws, _ = await open_session(server.url)
        bystander, _ = await open_session(server.url)
        async with ws, bystander:
            await ws.send(json.dumps({"type": "text", "text": "boom goes the light"}))
            recognizer_failed = await recv_utterances(ws, 1)
            await speak(ws)
            asr_failed = await recv_utterances(ws, 1)
            # The same session goes on: text and speech both work afterwards.
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
            text_ok = await recv_utterances(ws, 1)
            await speak(ws)
            speech_ok = await recv_utterances(ws, 1)
            await bystander.send(json.dumps({"type": "text", "text": "turn on the light"}))
            bystander_ok = await recv_utterances(bystander, 1)

    for got, code in ((recognizer_failed, "recognizer_failed"), (asr_failed, "asr_failed")):
        [error] = got.of("error")
        [metrics] = got.of("metrics")
        assert error["code"] == code
        assert error["utterance_id"] == metrics["utterance_id"]
        assert "secret" not in error["message"]
        assert metrics["outcome"] == "error"
        assert got.of("action") == []
    for got in (text_ok, speech_ok, bystander_ok):
        assert got.of("error") == []
        assert [a["status"] for a in got.of("action")] == ["confirmed"]
        assert got.of("metrics")[0]["outcome"] == "actions"
    assert speech_ok.of("transcript.final")[0]["source"] == "asr"
