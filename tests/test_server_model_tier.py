"""The language-model tier behind the WebSocket: a sentence the grammar does not know goes to an
OpenAI-compatible server (a scripted stand-in on a free loopback port), and its tool call
becomes a confirmed action on the real Mosquitto. Images ride along with the next utterance."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import wave
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from devices.registry import load_demo_config
from intents.model_tier import COMMAND_TOOL
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import (
    MqttRecorder,
    ServerThread,
    demo_settings,
    open_session,
    recv_utterances,
    stream_realtime,
)

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    requests: list[dict[str, Any]]
    status: int


class Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        call = {
            "id": "call_1",
            "type": "function",
            "function": {
                "name": COMMAND_TOOL,
                "arguments": json.dumps(
                    {"intent": "light_on", "device_ids": ["kitchen_light"], "confidence": 0.9}
                ),
            },
        }
        reply = {
            "id": "c1",
            "object": "chat.completion",
            "model": "stand-in",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
        }
        data = json.dumps(reply).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    srv = ChatServer(("127.0.0.1", 0), Handler)
    srv.requests, srv.status = [], 200
    thread = threading.Thread(target=srv.serve_forever, name="chat-stand-in", daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def llm_server(
    chat_server: ChatServer, text_server_factory: Callable[..., ServerThread]
) -> ServerThread:
    config = load_demo_config()
    port = chat_server.server_address[1]
    config.assistant = {
        "llm": {
            "backend": "openai",
            "url": f"http://127.0.0.1:{port}/v1",
            "model": "stand-in",
            "policy": "prefer_local",
            "stream": False,
            "timeout_s": 5,
        }
    }
    return text_server_factory(config=config)


async def test_sentence_outside_the_grammar_goes_to_the_model(
    llm_server: ServerThread, chat_server: ChatServer, mqtt_recorder: MqttRecorder
) -> None:
    ws, _ = await open_session(llm_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "brighten up where I cook"}))
        got = await recv_utterances(ws, 1)
    intent = got.of("intent")[0]["intent"]
    assert (intent["name"], intent["slots"]["device_ids"], intent["source"]) == (
        "light_on",
        ["kitchen_light"],
        "llm",
    )
    assert got.of("action")[-1]["status"] == "confirmed"
    assert json.loads(mqtt_recorder.wait_for("zigbee2mqtt/kitchen_light/set"))["state"] == "ON"
    assert len(chat_server.requests) == 1


async def test_grammar_sentences_never_reach_the_model(
    llm_server: ServerThread, chat_server: ChatServer
) -> None:
    ws, _ = await open_session(llm_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        got = await recv_utterances(ws, 1)
    assert got.of("intent")[0]["intent"]["source"] != "llm"
    assert chat_server.requests == []


async def test_image_goes_with_the_next_utterance_only(
    llm_server: ServerThread, chat_server: ChatServer
) -> None:
    ws, _ = await open_session(llm_server.url)
    async with ws:
        data = base64.b64encode(PNG).decode()
        await ws.send(json.dumps({"type": "image", "data": data, "mime": "image/png"}))
        await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
        await recv_utterances(ws, 1)
        await ws.send(json.dumps({"type": "text", "text": "brighten up where I cook"}))
        await recv_utterances(ws, 1)
    # With an image, even a grammar sentence is asked (prefer_local); the image is then spent.
    assert len(chat_server.requests) == 2
    first, second = (json.dumps(r) for r in chat_server.requests)
    assert "data:image/png;base64," in first
    assert "data:image/png;base64," not in second


async def test_model_failure_is_an_error_event_and_nothing_is_done(
    llm_server: ServerThread, chat_server: ChatServer
) -> None:
    chat_server.status = 500
    ws, _ = await open_session(llm_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "brighten up where I cook"}))
        got = await recv_utterances(ws, 1)
        chat_server.status = 200
        await ws.send(json.dumps({"type": "text", "text": "brighten up where I cook"}))
        after = await recv_utterances(ws, 1)
    error = got.of("error")[0]
    assert error["code"] == "model_http_error"
    assert "127.0.0.1" not in error["message"]
    assert got.of("action") == []
    assert got.of("metrics")[0]["outcome"] == "error"
    assert after.of("action")[-1]["status"] == "confirmed"


# -- the model hears: spoken commands with their audio ----------------------------------------


def _speech_llm_server(
    chat_server: ChatServer, mosquitto_url: str, **llm: Any
) -> ServerThread:
    config = load_demo_config()
    port = chat_server.server_address[1]
    config.assistant = {
        "llm": {
            "backend": "openai",
            "url": f"http://127.0.0.1:{port}/v1",
            "model": "audio-stand-in",
            "policy": "prefer_local",
            "stream": False,
            "timeout_s": 10,
            "audio": "fallback",
            **llm,
        }
    }
    return ServerThread(
        config, demo_settings(audio=True, asr_shed_jobs=None), mqtt_url=mosquitto_url
    ).start()


def _wav_of(request: dict[str, Any]) -> bytes:
    parts = request["messages"][-1]["content"]
    assert isinstance(parts, list), parts
    audio = [p for p in parts if p["type"] == "input_audio"]
    assert len(audio) == 1 and audio[0]["input_audio"]["format"] == "wav"
    assert parts[0]["type"] == "text" and parts[0]["text"].strip()  # the transcript
    return base64.b64decode(audio[0]["input_audio"]["data"], validate=True)


@pytest.mark.slow
async def test_spoken_command_outside_the_grammar_goes_to_the_model_with_its_audio(
    chat_server: ChatServer,
    hearth_mosquitto: Mosquitto,
    speech_pcm: Callable[[str], bytes],
    mqtt_recorder: MqttRecorder,
) -> None:
    server = _speech_llm_server(chat_server, hearth_mosquitto.url)
    try:
        ws, _ = await open_session(server.url)
        async with ws:
            pcm = speech_pcm("brighten up where I cook")
            sender = asyncio.create_task(stream_realtime(ws, pcm))
            got = await recv_utterances(ws, 1)
            await sender
            # a command the grammar knows is never sent to the model, heard or not
            pcm = speech_pcm("turn off the kitchen light")
            sender = asyncio.create_task(stream_realtime(ws, pcm))
            known = await recv_utterances(ws, 1)
            await sender
    finally:
        server.stop()
    assert got.of("transcript.final")[0]["source"] == "asr"  # Whisper still writes the text
    intent = got.of("intent")[0]["intent"]
    assert (intent["name"], intent["source"]) == ("light_on", "llm")
    assert got.of("action")[-1]["status"] == "confirmed"
    assert json.loads(mqtt_recorder.wait_for("zigbee2mqtt/kitchen_light/set"))["state"] == "ON"
    assert known.of("intent")[0]["intent"]["source"] != "llm"
    assert len(chat_server.requests) == 1
    wav = _wav_of(chat_server.requests[0])
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        seconds = w.getnframes() / 16000
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    # the utterance as heard: about the spoken words, within max_audio_s, and not silence
    assert 0.5 < seconds < 10
    assert int(np.abs(samples).max()) > 1000


@pytest.mark.slow
async def test_spoken_command_longer_than_max_audio_s_is_refused(
    chat_server: ChatServer,
    hearth_mosquitto: Mosquitto,
    speech_pcm: Callable[[str], bytes],
    mqtt_recorder: MqttRecorder,
) -> None:
    server = _speech_llm_server(chat_server, hearth_mosquitto.url, max_audio_s=0.3)
    try:
        ws, _ = await open_session(server.url)
        async with ws:
            pcm = speech_pcm("brighten up where I cook")
            sender = asyncio.create_task(stream_realtime(ws, pcm))
            got = await recv_utterances(ws, 1)
            await sender
    finally:
        server.stop()
    error = got.of("error")[0]
    assert error["code"] == "model_audio_too_long"
    assert got.of("action") == []
    assert chat_server.requests == []
