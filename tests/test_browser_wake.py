"""The browser page's hands-free switch: a fake microphone (Chromium reads a WAV file) says a
command without the wake word, then "okay nabu, turn on the kitchen light"; only the second is
acted on. Real page, real server, real models, real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.client import HearthClient
from tests.server_fixtures import MqttRecorder, ServerThread
from tests.speech import ESPEAK, synth
from tests.test_browser import (
    KITCHEN_SET,
    chromium,
    describe_failure,
    find_chromium,
    open_page,
    server_device_state,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def write_wake_wav(path: Path) -> Path:
    z = lambda ms: np.zeros(16 * ms, dtype=np.int16)  # noqa: E731
    audio = np.concatenate([
        z(500), synth("turn on the office light"), z(1500),
        synth("okay nabu", voice=ESPEAK), z(300), synth("turn on the kitchen light"), z(4000),
    ])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.astype("<i2").tobytes())
    return path


async def test_hands_free_switch(
    hearth_server: ServerThread, mqtt_recorder: MqttRecorder, tmp_path: Path
) -> None:
    if find_chromium() is None:
        pytest.skip("chromium is not installed")
    async with HearthClient(hearth_server.url) as client:
        assert (await client.say("turn off the kitchen light")).ok
    mic = await asyncio.to_thread(write_wake_wav, tmp_path / "mic.wav")
    async with chromium(fake_audio=mic) as cdp:
        page = await open_page(cdp, hearth_server.http_url + "?autostart=1&handsfree=1")
        try:
            await page.wait_for("document.getElementById('handsfree').checked", timeout_s=30)
            await page.wait_for(
                "hearthPage.events.some(e => e.type === 'action' && e.final"
                " && e.device_id === 'kitchen_light')", timeout_s=90)
        except TimeoutError as e:
            await page.screenshot(tmp_path / "page.png")
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None
        events: list[dict[str, Any]] = await page.evaluate("hearthPage.events")
        # The switch off: the next session.updated has no wake word.
        await page.evaluate("document.getElementById('handsfree').click()")
        await page.wait_for(
            "hearthPage.events.filter(e => e.type === 'session.updated').length >= 2",
            timeout_s=10)
        updates = [e for e in await page.evaluate("hearthPage.events")
                   if e["type"] == "session.updated"]
    assert updates[0]["config"]["wake"]["word"] == "okay_nabu"
    assert updates[-1]["config"]["wake"] is None
    kinds = [e["type"] for e in events]
    assert "wake.detected" in kinds, kinds
    acted = [(e["device_id"], e["status"]) for e in events if e["type"] == "action" and e["final"]]
    assert acted and set(acted) == {("kitchen_light", "confirmed")}, acted
    # The office command came first, without the wake word: never transcribed.
    transcripts = [e["text"].lower() for e in events if e["type"] == "transcript.final"]
    assert transcripts and not any("office" in t for t in transcripts), transcripts
    payload = await asyncio.to_thread(mqtt_recorder.wait_for, KITCHEN_SET, '"ON"')
    assert json.loads(payload)["state"] == "ON"
    state = await asyncio.to_thread(server_device_state, hearth_server.http_url, "kitchen_light")
    assert state is not None and state["state"] == "on"
