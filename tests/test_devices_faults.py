"""Fault tests: Mosquitto restarted in the middle of a burst of commands (issue 6).

Every command must be acknowledged by the broker after the reconnect (and then reach its
subscriber) or be reported failed to its caller; none may vanish.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from devices.actions import ActionResult, PublishFailed
from devices.dispatcher import Dispatcher
from devices.mqtt import MqttClient, MqttMessage
from devices.registry import load_demo_config
from devices.simulators import SimulatedHome
from intents.schema import Intent, Slots
from tests.mqtt_fixtures import Mosquitto, eventually

pytestmark = pytest.mark.timeout(120)

BURST = 500


async def test_restart_mid_burst_loses_no_publish(mosquitto: Mosquitto) -> None:
    received: set[int] = set()
    receiver = MqttClient(
        mosquitto.url, client_id="burst-receiver", clean_session=False, reconnect_max_s=0.5
    )
    await receiver.connect()
    receiver.subscribe("burst/#", lambda m: received.add(int(m.payload)))
    await receiver.barrier()

    sender = MqttClient(
        mosquitto.url, client_id="burst-sender", publish_timeout_s=40, reconnect_max_s=0.5
    )
    await sender.connect()
    tasks: list[asyncio.Task[float]] = []
    try:
        for i in range(BURST):
            tasks.append(asyncio.create_task(sender.publish(f"burst/{i}", str(i))))
            if i == BURST // 3:
                await asyncio.to_thread(mosquitto.stop)
            if i == 2 * BURST // 3:
                await asyncio.to_thread(mosquitto.start)
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        acked = {i for i, o in enumerate(outcomes) if isinstance(o, float)}
        failed = {i for i, o in enumerate(outcomes) if isinstance(o, PublishFailed)}
        other = [o for o in outcomes if not isinstance(o, float | PublishFailed)]
        assert other == []
        assert acked | failed == set(range(BURST))
        # The outage is far shorter than the publish timeout: everything goes out.
        assert failed == set()
        assert sender.reconnects >= 1
        with contextlib.suppress(TimeoutError):
            await eventually(lambda: acked <= received, within=20)
        assert sorted(acked - received) == []
        assert sender.outbox_size == 0
    finally:
        for t in tasks:
            t.cancel()
        await sender.close()
        await receiver.close()


async def test_restart_mid_dispatch_burst_reports_every_command(mosquitto: Mosquitto) -> None:
    cfg = load_demo_config()
    cfg.mqtt.confirm_timeout_s = 5.0
    sim = SimulatedHome(cfg, mosquitto.url)
    await sim.start()
    client = MqttClient(
        mosquitto.url, client_id="hearth-fault", publish_timeout_s=30, reconnect_max_s=0.5
    )
    await client.connect()
    dispatcher = Dispatcher(cfg, client)
    await dispatcher.start()
    published: list[ActionResult] = []
    devices = ["kitchen_light", "living_room_light", "bedroom_lamp", "tv_plug", "office_light"]
    jobs: list[asyncio.Task[list[ActionResult]]] = []
    try:
        for n in range(BURST):
            name = "light_on" if n % 2 else "light_off"
            device = devices[n % len(devices)]
            if device == "tv_plug":
                name = name.replace("light", "switch")
            i = Intent(
                name=name,
                slots=Slots(device_ids=[device]),
                confidence=0.9,
                source="grammar",
                reason="burst",
            )
            jobs.append(asyncio.create_task(dispatcher.dispatch(i, on_result=published.append)))
            if n == BURST // 3:
                await asyncio.to_thread(mosquitto.stop)
            if n == 2 * BURST // 3:
                await asyncio.to_thread(mosquitto.start)
            if n % 10 == 0:
                await asyncio.sleep(0.01)
        results = [r for rs in await asyncio.gather(*jobs) for r in rs]
        assert len(results) == BURST
        statuses = {r.status for r in results}
        assert statuses <= {"confirmed", "unconfirmed", "failed"}
        # Every command that was not reported failed was acknowledged by the broker.
        assert sum(r.status != "failed" for r in results) == sum(
            r.status == "published" for r in published
        )
        assert sum(r.status == "confirmed" for r in results) > 0
        assert client.outbox_size == 0
        # After the restart the whole path works again.
        ok = Intent(
            name="light_on",
            slots=Slots(device_ids=["kitchen_light"]),
            confidence=0.9,
            source="grammar",
            reason="after",
        )
        await eventually(lambda: sim.mqtt.connected, within=20)
        await sim.mqtt.barrier()
        [r] = await dispatcher.dispatch(ok)
        assert r.status == "confirmed"
    finally:
        await dispatcher.close()
        await client.close()
        await sim.stop()


async def test_publish_while_down_waits_then_goes_out(mosquitto: Mosquitto) -> None:
    got: list[MqttMessage] = []
    sender = MqttClient(
        mosquitto.url, client_id="late-sender", publish_timeout_s=20, reconnect_max_s=0.3
    )
    await sender.connect()
    try:
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not sender.connected, within=10)
        pending = asyncio.create_task(sender.publish("late/topic", "hello", retain=True))
        await asyncio.sleep(0.3)
        assert not pending.done()
        assert sender.outbox_size == 1
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(pending, 20)
        reader = MqttClient(mosquitto.url, client_id="late-reader")
        await reader.connect()
        reader.subscribe("late/topic", got.append)
        await reader.barrier()
        await reader.close()
        assert [m.payload for m in got] == [b"hello"]
    finally:
        await sender.close()


async def test_failed_or_cancelled_publish_is_never_sent_later(mosquitto: Mosquitto) -> None:
    """A command reported failed (or withdrawn) while the broker is down stays unsent."""
    received: list[bytes] = []
    watcher = MqttClient(
        mosquitto.url, client_id="late-watcher", clean_session=False, reconnect_max_s=0.3
    )
    await watcher.connect()
    watcher.subscribe("door/#", lambda m: received.append(m.payload))
    await watcher.barrier()
    sender = MqttClient(mosquitto.url, client_id="late-door", reconnect_max_s=0.3, max_outbox=3)
    await sender.connect()
    try:
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not sender.connected, within=10)
        with pytest.raises(PublishFailed, match="not sent"):
            await sender.publish("door/set", "UNLOCK", timeout=0.3)
        withdrawn = asyncio.create_task(sender.publish("door/set", "UNLOCK-2"))
        await asyncio.sleep(0.1)
        withdrawn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await withdrawn
        waiting = [asyncio.create_task(sender.publish("door/ok", str(i))) for i in range(3)]
        await asyncio.sleep(0.1)
        with pytest.raises(PublishFailed, match="outbox full"):
            await sender.publish("door/set", "overflow")
        assert sender.outbox_size == 3
        await asyncio.to_thread(mosquitto.start)
        await asyncio.gather(*waiting)
        await eventually(lambda: watcher.connected, within=10)
        await watcher.barrier()
        await eventually(lambda: len(received) >= 3, within=10)
        await asyncio.sleep(0.3)
        assert sorted(received) == [b"0", b"1", b"2"]
    finally:
        await sender.close()
        await watcher.close()
