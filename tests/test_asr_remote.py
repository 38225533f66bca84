"""``asr.backend: remote`` against a real third-party server: ``faster-whisper-server`` (PyPI)
started on a free loopback port with the bundled tiny.en model, offline. The transcriber on its
own (text, prompt, language, scores), a Hearth server whose speech goes there (a spoken command
reaches the broker), and the failures: an unreachable server or one that does not answer in
time gives ``asr_failed``, never a hang."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.asr_remote import RemoteAsrError, RemoteAsrSettings, RemoteTranscriber
from devices.registry import load_demo_config
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import (
    MqttRecorder,
    ServerThread,
    demo_settings,
    open_session,
    recv_utterances,
    stream_realtime,
)
from tests.speech import synth, to_float

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("faster_whisper_server") is None,
        reason="faster-whisper-server is not installed (the dev extra installs it)",
    ),
]

START_TIMEOUT_S = 90.0
#: Request timeout for the functional tests: the server loads its model on the first request,
#: and the machine may be busy (the timeout itself is tested apart).
SLOW_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def whisper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """faster-whisper-server on the bundled tiny.en directory; its ``/v1`` URL."""
    from assistant.audio.asr import default_model_path

    port = _free_port()
    log = tmp_path_factory.mktemp("fws") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("faster-whisper-server")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), str(default_model_path()), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=out,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"faster-whisper-server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > START_TIMEOUT_S:
                pytest.fail(f"faster-whisper-server not up: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_transcribes_with_the_homes_prompt_and_scores(whisper_server: str) -> None:
    t = RemoteTranscriber(
        RemoteAsrSettings(url=whisper_server, max_concurrency=2, timeout_s=SLOW_S)
    )
    audio = to_float(synth("turn on the kitchen light"))
    got = t.transcribe(audio, hotwords=("kitchen light", "hallway light"), language="en")
    assert "kitchen light" in got.text.lower()
    assert got.language == "en" and got.full_window  # no trimmed window to retry on
    assert got.alternatives and got.alternatives[0].text == got.text
    assert got.avg_logprob < 0 and 0 <= got.no_speech_prob < 0.5  # verbose_json's scores
    # Several at once, within the concurrency limit: each gets its own answer.
    outs = t.transcribe_batch([audio, to_float(synth("pause the music"))])
    assert "kitchen" in outs[0].text.lower() and "music" in outs[1].text.lower()


def test_english_only_remote_model_refuses_other_languages() -> None:
    from assistant.audio.asr import LanguageUnsupportedError

    t = RemoteTranscriber(RemoteAsrSettings(languages=("en",)))
    assert t.resolve_language("en-GB") == "en"
    with pytest.raises(LanguageUnsupportedError, match="zh-CN"):
        t.resolve_language("zh-CN")


def test_unreachable_server_is_a_clear_error() -> None:
    t = RemoteTranscriber(RemoteAsrSettings(url=f"http://127.0.0.1:{_free_port()}/v1"))
    with pytest.raises(RemoteAsrError, match="request failed"):
        t.transcribe(np.zeros(8000, dtype=np.float32))


def test_a_server_that_does_not_answer_times_out() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        t = RemoteTranscriber(RemoteAsrSettings(url=f"http://127.0.0.1:{port}/v1", timeout_s=0.5))
        with pytest.raises(RemoteAsrError, match=r"timed out|request failed"):
            t.transcribe(np.zeros(8000, dtype=np.float32))


def _remote_server(url: str, mosquitto: Mosquitto, **remote: Any) -> ServerThread:
    settings = demo_settings(
        audio=True,
        asr_shed_jobs=None,
        second_opinion_deadline_ms=None,
        **{"asr.backend": "remote", "asr.remote": {"url": url, "timeout_s": SLOW_S, **remote}},
    )
    return ServerThread(load_demo_config(), settings, mqtt_url=mosquitto.url).start()


async def test_spoken_command_through_the_remote_server(
    whisper_server: str,
    hearth_mosquitto: Mosquitto,
    speech_pcm: Callable[[str], bytes],
    mqtt_recorder: MqttRecorder,
) -> None:
    server = _remote_server(whisper_server, hearth_mosquitto, max_concurrency=2)
    try:
        assert server.hearth is not None
        assert server.hearth.transcriber is not None
        assert server.hearth.transcriber.model_name.startswith("remote:")
        ws, _ = await open_session(server.url)
        async with ws:
            sender = asyncio.create_task(
                stream_realtime(ws, speech_pcm("turn on the kitchen light"))
            )
            got = await recv_utterances(ws, 1)
            await sender
    finally:
        server.stop()
    intent = got.of("intent")[0]["intent"]
    assert intent is not None, got.events
    assert (intent["name"], intent["slots"]["device_ids"]) == ("light_on", ["kitchen_light"])
    finals = [e for e in got.of("action") if e["final"]]
    assert [(a["device_id"], a["status"]) for a in finals] == [("kitchen_light", "confirmed")]
    assert json.loads(mqtt_recorder.wait_for("zigbee2mqtt/kitchen_light/set"))["state"] == "ON"


async def test_remote_server_down_gives_asr_failed(
    hearth_mosquitto: Mosquitto, speech_pcm: Callable[[str], bytes]
) -> None:
    server = _remote_server(f"http://127.0.0.1:{_free_port()}/v1", hearth_mosquitto)
    try:
        ws, _ = await open_session(server.url)
        async with ws:
            sender = asyncio.create_task(
                stream_realtime(ws, speech_pcm("turn on the kitchen light"))
            )
            got = await recv_utterances(ws, 1)
            await sender
    finally:
        server.stop()
    assert [e["code"] for e in got.of("error")] == ["asr_failed"], got.events
    assert got.of("metrics")[0]["outcome"] != "actions"
