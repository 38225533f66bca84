"""Fixtures that run a real Hearth server (pytest plugin, registered in tests/conftest.py).

The server runs in a background thread with its own event loop, so that one instance (and one
load of the Whisper and VAD models, which costs seconds) serves every test of the session while
each test keeps its own function-scoped event loop for its clients — exactly like a separate
process would, but without paying the start-up per test.

* ``hearth_mosquitto`` — a session-scoped real Mosquitto (skips when it is not installed).
* ``hearth_server`` — the demo home with simulated devices against that Mosquitto, real models,
  on a free loopback port. Its state is shared: tests must not depend on device states left by
  other tests.
* ``text_server_factory`` — function-scoped servers without speech models (start in ~0.3 s),
  for tests that change settings or shut the server down.
* ``mqtt_recorder`` — an independent paho-mqtt subscriber on the test broker.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import ClientConnection, connect

from assistant.app import Hearth
from assistant.config import AssistantSettings
from assistant.server import HearthServer
from devices.registry import HomeConfig, load_demo_config
from tests.mqtt_fixtures import Mosquitto, mosquitto_binary

START_TIMEOUT_S = 120.0
EVENT_TIMEOUT_S = 30.0


class ServerThread:
    """A Hearth app + server running on an event loop in a daemon thread."""

    def __init__(
        self, config: HomeConfig, settings: AssistantSettings, *, mqtt_url: str | None
    ) -> None:
        self.config = config
        self.settings = settings
        self.mqtt_url = mqtt_url
        self.loop = asyncio.new_event_loop()
        self.hearth: Hearth | None = None
        self.server: HearthServer | None = None
        self._ready: Future[None] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="hearth-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        hearth = Hearth(self.config, self.settings, mqtt_url=self.mqtt_url)
        try:
            await hearth.start()
            self.hearth = hearth
            self.server = hearth.server(host="127.0.0.1", port=0)
            await self.server.start()
        except BaseException as e:
            await hearth.stop()
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await hearth.stop()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.result(timeout=START_TIMEOUT_S)
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a coroutine function on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=60)

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def http_url(self) -> str:
        assert self.server is not None
        return self.server.http_url


def demo_settings(*, audio: bool, **overrides: Any) -> AssistantSettings:
    """The demo settings with ``overrides`` (dotted keys too). A top-level None means null
    (``asr_shed_jobs=None``: never shed), where ``with_overrides`` would skip it."""
    nulls = {k: None for k, v in overrides.items() if v is None and "." not in k}
    settings = AssistantSettings(audio=audio).with_overrides(**overrides)
    return settings.model_copy(update=nulls) if nulls else settings


@pytest.fixture(scope="session")
def hearth_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(binary, tmp_path_factory.mktemp("hearth-mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def hearth_server(hearth_mosquitto: Mosquitto) -> Iterator[ServerThread]:
    """The demo home with real models against the session's Mosquitto. It never sheds ASR
    passes under load (``asr_shed_jobs: null``) nor drops a late second opinion
    (``second_opinion_deadline_ms: null``): what these tests check must not depend on how
    busy the machine is (tests/test_asr_shedding.py and tests/test_asr_second_opinion.py
    cover those)."""
    server = ServerThread(
        load_demo_config(),
        demo_settings(audio=True, asr_shed_jobs=None, second_opinion_deadline_ms=None),
        mqtt_url=hearth_mosquitto.url,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def text_server_factory(
    hearth_mosquitto: Mosquitto,
) -> Iterator[Callable[..., ServerThread]]:
    """Start text-only servers (no speech models): ``make(config=None, **overrides)`` with a
    home config (default: the demo home) and settings overrides; stopped at the end."""
    started: list[ServerThread] = []

    def make(config: HomeConfig | None = None, **overrides: Any) -> ServerThread:
        server = ServerThread(
            config or load_demo_config(),
            demo_settings(audio=False, **overrides),
            mqtt_url=hearth_mosquitto.url,
        ).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


# -- clients -------------------------------------------------------------------------------


@dataclass
class Received:
    events: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def open_session(url: str, **kwargs: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect and read ``session.created``."""
    ws = await connect(url, **kwargs)
    created = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
    assert created["type"] == "session.created", created
    return ws, created


async def recv_event(ws: ClientConnection, *, skip_device_state: bool = True) -> dict[str, Any]:
    while True:
        data = await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S)
        assert isinstance(data, str), "the server sends only text frames"
        event: dict[str, Any] = json.loads(data)
        if skip_device_state and event["type"] == "device.state":
            continue
        return event


async def recv_until(ws: ClientConnection, done: Callable[[dict[str, Any]], bool]) -> Received:
    """Events up to and including the first for which ``done`` is true."""
    events: list[dict[str, Any]] = []
    while True:
        event = await recv_event(ws)
        events.append(event)
        if done(event):
            return Received(events)


async def recv_utterances(ws: ClientConnection, n: int) -> Received:
    """Events until ``n`` utterances have ended (``metrics`` is each one's last event)."""
    count = 0

    def done(e: dict[str, Any]) -> bool:
        nonlocal count
        if e["type"] == "metrics":
            count += 1
        return count >= n

    return await recv_until(ws, done)


async def stream_realtime(
    ws: ClientConnection, pcm: bytes, *, rate: int = 16000, frame_ms: int = 20
) -> None:
    """Send PCM s16le in ``frame_ms`` frames paced like a microphone."""
    step = rate * frame_ms // 1000 * 2
    t0 = time.monotonic()
    for i, off in enumerate(range(0, len(pcm), step)):
        await ws.send(pcm[off : off + step])
        delay = t0 + (i + 1) * frame_ms / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


# -- an independent MQTT observer ------------------------------------------------------------


class MqttRecorder:
    """Records every message on the broker (paho in its own thread), for end-to-end checks
    that do not trust the server's own reports."""

    def __init__(self, url: str, topic: str = "#") -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.messages: list[tuple[float, str, str]] = []
        self._cond = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.connect(host, int(port))
        self._client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("MQTT recorder could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(
                (time.monotonic(), msg.topic, msg.payload.decode(errors="replace"))
            )
            self._cond.notify_all()

    def wait_for(self, topic: str, contains: str = "", timeout: float = EVENT_TIMEOUT_S) -> str:
        """The payload of the first message on ``topic`` containing ``contains``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _t, tp, payload in self.messages:
                    if tp == topic and contains in payload:
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no message on {topic!r} containing {contains!r}")
                self._cond.wait(left)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def mqtt_recorder(hearth_mosquitto: Mosquitto) -> Iterator[MqttRecorder]:
    rec = MqttRecorder(hearth_mosquitto.url)
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture(scope="session")
def speech_pcm(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """``speech_pcm(text)``: piper speech at 16 kHz as s16le bytes, with silence around it
    (a short lead-in, then enough trailing silence for the endpoint to fire)."""
    import numpy as np

    from assistant.audio.synth import Synthesizer

    synth = Synthesizer(tmp_path_factory.mktemp("speech"))
    lead = np.zeros(16000 // 4, dtype=np.int16)
    tail = np.zeros(16000, dtype=np.int16)

    def make(text: str) -> bytes:
        audio = synth.synth(text, rate=16000)
        return bytes(np.concatenate([lead, audio, tail]).astype("<i2").tobytes())

    return make
