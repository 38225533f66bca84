"""The Wyoming server, driven by the ``wyoming`` package's own client (nobody here wrote it):
real Whisper and VAD models, synthesized speech, the demo home's simulated devices on a real
Mosquitto observed by an independent subscriber. No timing assertions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

from assistant.wyoming_server import (
    MAX_HEADER_BYTES,
    WyomingConfigError,
    WyomingServer,
    parse_uri,
)
from devices.registry import load_demo_config
from tests.server_fixtures import MqttRecorder, ServerThread
from tests.speech import ESPEAK, synth, with_silence

pytestmark = pytest.mark.slow

TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def wyoming(hearth_server: ServerThread) -> Iterator[WyomingServer]:
    """A Wyoming server on the shared test server's resources (same models, same broker)."""
    hearth = hearth_server.hearth
    assert hearth is not None

    async def start() -> WyomingServer:
        return await hearth.start_wyoming("tcp://127.0.0.1:0")

    server: WyomingServer = hearth_server.call(start)
    yield server
    hearth_server.call(server.shutdown)


@pytest.fixture
async def client(wyoming: WyomingServer) -> AsyncIterator[AsyncTcpClient]:
    async with AsyncTcpClient(wyoming.host, wyoming.port) as c:
        yield c


async def ask(client: AsyncTcpClient, *events: Event) -> Event:
    for e in events:
        await client.write_event(e)
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None, "the server closed the connection"
    return got


async def send_audio(
    client: AsyncTcpClient, pcm: np.ndarray, *, rate: int = 16000, channels: int = 1
) -> None:
    data = pcm.astype("<i2").tobytes()
    step = 1024 * 2 * channels
    await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
    for i in range(0, len(data), step):
        chunk = AudioChunk(rate=rate, width=2, channels=channels, audio=data[i : i + step])
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def test_describe_lists_what_hearth_serves(client: AsyncTcpClient) -> None:
    info = Info.from_event(await ask(client, Describe().event()))
    assert [p.name for p in info.asr] == ["hearth-asr"]
    assert info.asr[0].models[0].name == "tiny.en" and "en" in info.asr[0].models[0].languages
    assert info.handle and info.handle[0].supports_home_control
    assert "en" in info.handle[0].models[0].languages
    assert info.intent and info.intent[0].models
    wake = {m.name: m for m in info.wake[0].models}
    assert {"okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"} <= set(wake)
    assert wake["okay_nabu"].phrase == "Okay Nabu"
    assert info.tts and info.tts[0].voices[0].languages == ["en"]


async def test_spoken_command_is_transcribed(client: AsyncTcpClient) -> None:
    speech = with_silence(synth("turn on the kitchen light"), 300, 600)
    await client.write_event(Transcribe(language="en").event())
    await send_audio(client, speech)
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and Transcript.is_type(got.type), got
    text = Transcript.from_event(got).text.lower()
    assert "kitchen" in text and "light" in text, text


async def test_48k_stereo_is_converted(client: AsyncTcpClient) -> None:
    mono = with_silence(synth("turn off the bedroom lamp", rate=48000), 300, 600, rate=48000)
    stereo = np.repeat(mono, 2)  # interleaved L R
    await client.write_event(Transcribe().event())
    await send_audio(client, stereo, rate=48000, channels=2)
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and Transcript.is_type(got.type), got
    assert "bedroom" in Transcript.from_event(got).text.lower()


async def test_a_language_the_model_cannot_speak(client: AsyncTcpClient) -> None:
    await client.write_event(Transcribe(language="fr").event())
    await send_audio(client, with_silence(synth("turn on the kitchen light"), 300, 300))
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and got.type == "error", got
    assert got.data["code"] == "language_unsupported"


async def test_silence_gives_an_empty_transcript(client: AsyncTcpClient) -> None:
    await client.write_event(Transcribe().event())
    await send_audio(client, np.zeros(16000, dtype=np.int16))
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and Transcript.from_event(got).text == ""


async def test_handle_acts_on_the_home(
    client: AsyncTcpClient, mqtt_recorder: MqttRecorder
) -> None:
    got = await ask(client, Transcript(text="turn on the kitchen light").event())
    assert Handled.is_type(got.type), got
    handled = Handled.from_event(got)
    assert handled.text == "Turned on the kitchen light."
    assert handled.context is not None
    assert handled.context["actions"] == [{"device_id": "kitchen_light", "status": "confirmed"}]
    payload = await asyncio.to_thread(mqtt_recorder.wait_for, "zigbee2mqtt/kitchen_light/set")
    assert json.loads(payload)["state"] == "ON"


async def test_speech_then_handle_like_home_assistant(
    wyoming: WyomingServer, mqtt_recorder: MqttRecorder
) -> None:
    """Home Assistant's pipeline: one connection for speech-to-text, another for the agent."""
    speech = with_silence(synth("turn off the kitchen light"), 300, 600)
    async with AsyncTcpClient(wyoming.host, wyoming.port) as stt:
        await stt.write_event(Transcribe(language="en").event())
        await send_audio(stt, speech)
        got = await asyncio.wait_for(stt.read_event(), TIMEOUT_S)
        assert got is not None
        text = Transcript.from_event(got).text
    async with AsyncTcpClient(wyoming.host, wyoming.port) as agent:
        got = await ask(agent, Transcript(text=text, language="en").event())
    assert Handled.is_type(got.type), (text, got)
    assert Handled.from_event(got).text == "Turned off the kitchen light."
    payload = await asyncio.to_thread(
        mqtt_recorder.wait_for, "zigbee2mqtt/kitchen_light/set", '"OFF"'
    )
    assert json.loads(payload)["state"] == "OFF"


async def test_handle_the_clock(client: AsyncTcpClient) -> None:
    got = await ask(client, Transcript(text="what time is it").event())
    assert Handled.is_type(got.type), got
    assert any(ch.isdigit() for ch in Handled.from_event(got).text), got
    # Timers are kept (tests/test_wyoming_timers.py): told with timer events, then handled.
    got = await ask(client, Transcript(text="set a timer for 5 minutes").event())
    assert got.type == "timer-started", got
    assert Handled.is_type((await ask(client)).type)
    got = await ask(client, Transcript(text="cancel the timer").event())
    assert got.type == "timer-cancelled", got
    assert Handled.is_type((await ask(client)).type)


async def test_handle_nonsense_is_not_handled(
    client: AsyncTcpClient, mqtt_recorder: MqttRecorder
) -> None:
    got = await ask(client, Transcript(text="what is the meaning of life").event())
    assert NotHandled.is_type(got.type), got
    assert NotHandled.from_event(got).text
    await asyncio.sleep(0.5)
    assert not [m for m in mqtt_recorder.messages if m[1].endswith("/set")]


async def test_recognize_gives_the_intent_and_acts_on_nothing(
    client: AsyncTcpClient, mqtt_recorder: MqttRecorder
) -> None:
    got = await ask(client, Recognize(text="set the bedroom lamp to 40 percent").event())
    assert Intent.is_type(got.type), got
    intent = Intent.from_event(got)
    assert intent.name == "light_set"
    entities = {e.name: e.value for e in intent.entities}
    assert entities["device_ids"] == ["bedroom_lamp"] and entities["brightness"] == 40
    got = await ask(client, Recognize(text="sing me a song").event())
    assert NotRecognized.is_type(got.type), got
    await asyncio.sleep(0.5)
    assert not [m for m in mqtt_recorder.messages if m[1].endswith("/set")]


async def test_wake_word_detection(client: AsyncTcpClient) -> None:
    await client.write_event(Detect(names=["okay_nabu"]).event())
    await send_audio(client, with_silence(synth("okay nabu", voice=ESPEAK), 500, 800))
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and Detection.is_type(got.type), got
    assert Detection.from_event(got).name == "okay_nabu"
    await client.write_event(Detect(names=["okay_nabu"]).event())
    await send_audio(client, with_silence(synth("turn on the kitchen light"), 500, 800))
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and NotDetected.is_type(got.type), got


async def test_wake_word_at_48k_stereo(client: AsyncTcpClient) -> None:
    mono = with_silence(synth("okay nabu", voice=ESPEAK, rate=48000), 500, 800, rate=48000)
    await client.write_event(Detect(names=["okay_nabu"]).event())
    await send_audio(client, np.repeat(mono, 2), rate=48000, channels=2)
    got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert got is not None and Detection.is_type(got.type), got


async def test_unknown_wake_word(client: AsyncTcpClient) -> None:
    got = await ask(client, Detect(names=["hey_toaster"]).event())
    assert got.type == "error" and got.data["code"] == "unknown_wake_word"


async def test_synthesize_speaks_the_text(client: AsyncTcpClient) -> None:
    await client.write_event(Synthesize(text="Turned on the kitchen light.").event())
    start = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
    assert start is not None and AudioStart.is_type(start.type), start
    fmt = AudioStart.from_event(start)
    assert (fmt.rate, fmt.width, fmt.channels) == (22050, 2, 1)
    audio = b""
    while True:
        got = await asyncio.wait_for(client.read_event(), TIMEOUT_S)
        assert got is not None
        if AudioStop.is_type(got.type):
            break
        assert AudioChunk.is_type(got.type), got
        audio += AudioChunk.from_event(got).audio
    pcm = np.frombuffer(audio, dtype="<i2")
    assert 0.8 < pcm.size / 22050 < 5.0  # about a second and a half of speech
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # not silence
    got = await ask(client, Synthesize(text="").event())
    assert got.type == "error" and got.data["code"] == "invalid_message"


# -- bad input ------------------------------------------------------------------------------


async def raw_exchange(server: WyomingServer, data: bytes) -> tuple[list[dict[str, object]], bool]:
    """Send raw bytes; the JSON headers read back, and whether the server closed."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(data)
        await writer.drain()
        headers: list[dict[str, object]] = []
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            except TimeoutError:
                return headers, False
            if not line:
                return headers, True
            header = json.loads(line)
            n = int(header.get("data_length") or 0)
            if n:
                header["data"] = json.loads(await reader.readexactly(n))
            headers.append(header)
    finally:
        writer.close()


async def assert_still_serving(server: WyomingServer) -> None:
    async with AsyncTcpClient(server.host, server.port) as other:
        assert Info.is_type((await ask(other, Describe().event())).type)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\xff garbage \xfe\n", "bad_event"),
        (b"[1, 2, 3]\n", "bad_event"),
        (b'{"type": "audio-chunk", "payload_length": 9999999999}\n', "payload_too_large"),
        (b'{"type": "describe", "data_length": -4}\n', "bad_event"),
        (b"{" + b" " * (MAX_HEADER_BYTES + 10) + b"\n", "header_too_large"),
    ],
    ids=["garbage", "not-an-object", "huge-payload", "negative-length", "huge-header"],
)
async def test_broken_framing_gets_an_error_and_a_close(
    wyoming: WyomingServer, data: bytes, code: str
) -> None:
    headers, closed = await raw_exchange(wyoming, data)
    assert [h["type"] for h in headers] == ["error"], headers
    assert headers[0]["data"]["code"] == code  # type: ignore[index]
    assert closed
    await assert_still_serving(wyoming)


async def test_audio_without_start_is_an_error_and_the_connection_goes_on(
    client: AsyncTcpClient, wyoming: WyomingServer
) -> None:
    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=b"\x00\x00" * 160)
    got = await ask(client, chunk.event())
    assert got.type == "error" and got.data["code"] == "audio_not_started"
    got = await ask(client, AudioStop().event())
    assert got.type == "error" and got.data["code"] == "audio_not_started"
    got = await ask(client, Event(type="frobnicate"))
    assert got.type == "error" and got.data["code"] == "unknown_type"
    got = await ask(client, Event(type="recognize", data={"text": 42}))
    assert got.type == "error" and got.data["code"] == "invalid_message"
    got = await ask(client, Event(type="audio-start", data={"rate": 16000}))
    assert got.type == "error" and got.data["code"] == "invalid_message"
    assert Info.is_type((await ask(client, Describe().event())).type)  # same connection
    await assert_still_serving(wyoming)


# -- unit ------------------------------------------------------------------------------------


def test_parse_uri() -> None:
    assert parse_uri("tcp://127.0.0.1:10700") == ("127.0.0.1", 10700)
    for bad in ("udp://x:1", "tcp://:1", "tcp://host", "10700", "tcp://h:99999"):
        with pytest.raises(WyomingConfigError):
            parse_uri(bad)


async def test_sensitive_action_waits_for_a_spoken_yes(
    text_server_factory: Any, mqtt_recorder: MqttRecorder
) -> None:
    """With ``require_confirmation``, unlocking answers not-handled with the question; "yes"
    from the same client (a new connection, as Home Assistant makes) carries it out."""
    config = load_demo_config()
    config = config.model_copy(
        update={"security": config.security.model_copy(update={"require_confirmation": True})}
    )
    server = text_server_factory(config)
    hearth = server.hearth
    assert hearth is not None

    async def start() -> WyomingServer:
        return await hearth.start_wyoming("tcp://127.0.0.1:0")

    wy: WyomingServer = server.call(start)
    async with AsyncTcpClient(wy.host, wy.port) as c:
        got = await ask(c, Transcript(text="unlock the front door").event())
    assert NotHandled.is_type(got.type), got
    assert "?" in NotHandled.from_event(got).text  # the question
    assert not [m for m in mqtt_recorder.messages if m[1].endswith("front_door_lock/set")]
    async with AsyncTcpClient(wy.host, wy.port) as c:
        got = await ask(c, Transcript(text="yes").event())
    assert Handled.is_type(got.type), got
    payload = await asyncio.to_thread(mqtt_recorder.wait_for, "zigbee2mqtt/front_door_lock/set")
    assert "UNLOCK" in payload
