"""Timers over Wyoming: a ``transcript`` that sets, pauses, resumes or cancels a timer is
answered with the ``wyoming`` package's timer events before ``handled``, and ``timer-finished``
comes on the connection that set the timer — driven by the ``wyoming`` package's own client
against a real ``hearth serve --wyoming`` process on loopback (and, for the idle limit, a
server with a short ``idle_timeout_s``). Timeouts only bound the waits; nothing is timed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted, TimerUpdated

from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import ServerThread
from tests.wyoming_serve import Served, hearth_serve

WAIT_S = 60.0


@pytest.fixture(scope="module")
def audit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wyoming-timers") / "audit.jsonl"


@pytest.fixture(scope="module")
def served(hearth_mosquitto: Mosquitto, audit_path: Path) -> Iterator[Served]:
    with hearth_serve("--mqtt-url", hearth_mosquitto.url, "--audit-log", str(audit_path)) as s:
        yield s


async def read(client: AsyncTcpClient) -> Event:
    event = await asyncio.wait_for(client.read_event(), WAIT_S)
    assert event is not None, "the server closed the connection"
    return event


async def say(client: AsyncTcpClient, text: str) -> tuple[list[Event], Handled]:
    """Send a transcript to handle; the events before ``handled``, and ``handled``."""
    await client.write_event(Transcript(text=text).event())
    before: list[Event] = []
    while True:
        event = await read(client)
        if Handled.is_type(event.type):
            return before, Handled.from_event(event)
        assert event.type.startswith("timer-"), event
        before.append(event)


async def test_a_timer_starts_and_finishes_on_the_connection(served: Served) -> None:
    async with AsyncTcpClient(served.wyoming_host, served.wyoming_port) as client:
        events, handled = await say(client, "set a timer for 2 seconds")
        assert [e.type for e in events] == ["timer-started"]
        started = TimerStarted.from_event(events[0])
        assert (started.total_seconds, started.start_hours, started.start_minutes,
                started.start_seconds) == (2, 0, 0, 2)
        assert handled.text is not None and "2 seconds" in handled.text
        assert handled.context is not None and handled.context["intent"] == "timer_start"
        finished = await read(client)
        assert TimerFinished.is_type(finished.type), finished
        assert TimerFinished.from_event(finished).id == started.id


async def test_pause_resume_and_cancel_from_another_connection(served: Served) -> None:
    """Home Assistant opens a connection per sentence: the timer belongs to the client's
    address, and each change is told on the connection that asked for it."""
    host, port = served.wyoming_host, served.wyoming_port
    async with AsyncTcpClient(host, port) as client:
        events, _ = await say(client, "set a timer for 5 minutes")
        started = TimerStarted.from_event(events[0])
        assert (started.total_seconds, started.start_minutes, started.start_seconds) == (
            300, 5, 0)
    async with AsyncTcpClient(host, port) as client:
        events, handled = await say(client, "pause the timer")
        assert [e.type for e in events] == ["timer-updated"], events
        paused = TimerUpdated.from_event(events[0])
        assert paused.id == started.id and paused.is_active is False
        assert 0 < paused.total_seconds <= 300
        events, _ = await say(client, "resume the timer")
        resumed = TimerUpdated.from_event(events[0])
        assert (resumed.id, resumed.is_active) == (started.id, True)
        assert resumed.total_seconds <= paused.total_seconds
        _, left = await say(client, "how much time is left on the timer")
        assert left.text is not None
        assert "minute" in left.text or "second" in left.text, left.text
    async with AsyncTcpClient(host, port) as client:
        events, handled = await say(client, "cancel the timer")
        assert [TimerCancelled.from_event(e).id for e in events] == [started.id]
        events, handled = await say(client, "cancel the timer")
        assert events == []  # nothing left to cancel: said so, no event
        assert handled.text


async def test_a_timer_whose_connection_closed_goes_to_the_audit_log(
    served: Served, audit_path: Path
) -> None:
    async with AsyncTcpClient(served.wyoming_host, served.wyoming_port) as client:
        events, _ = await say(client, "set a timer for 1 second")
        timer_id = TimerStarted.from_event(events[0]).id

    def finished_rows() -> list[dict[str, object]]:
        if not audit_path.exists():
            return []
        rows = [json.loads(line) for line in audit_path.read_text("utf-8").splitlines()]
        return [r for r in rows if r.get("event") == "timer.finished"
                and r.get("timer_id") == timer_id]

    for _ in range(int(WAIT_S * 10)):
        if finished_rows():
            break
        await asyncio.sleep(0.1)
    rows = finished_rows()
    assert len(rows) == 1, rows
    assert rows[0]["duration_s"] == 1.0
    assert str(rows[0]["session"]).startswith("wyoming ")


async def test_a_connection_waiting_for_its_timer_outlives_the_idle_limit(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(**{"limits.idle_timeout_s": 0.5})
    hearth = server.hearth
    assert hearth is not None

    async def start() -> int:
        return (await hearth.start_wyoming("tcp://127.0.0.1:0")).port

    port = server.call(start)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        # Without a timer an idle connection is closed after 0.5 s…
        assert await asyncio.wait_for(client.read_event(), WAIT_S) is None
    async with AsyncTcpClient("127.0.0.1", port) as client:
        # …with one, it stays until the timer has finished (3 s), then closes when idle.
        events, _ = await say(client, "set a timer for 3 seconds")
        timer_id = TimerStarted.from_event(events[0]).id
        finished = await read(client)
        assert TimerFinished.is_type(finished.type), finished
        assert TimerFinished.from_event(finished).id == timer_id
        assert await asyncio.wait_for(client.read_event(), WAIT_S) is None
