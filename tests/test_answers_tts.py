"""Speech out: real piper synthesis (bundled joe voice) heard back by the bundled Whisper;
espeak-ng for a language without a piper voice."""

from __future__ import annotations

import asyncio
import shutil
import threading

import numpy as np
import pytest

from assistant.answers.reply import compose_reply
from assistant.answers.tts import (
    Speaker,
    TtsConfig,
    split_head,
    split_sentences,
    stream_async,
)
from assistant.audio.asr import WhisperTranscriber
from devices.actions import ActionResult
from devices.registry import load_demo_config
from intents.recognizer import Recognizer
from tests.speech import normalize_text, speech_bounds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speaker() -> Speaker:
    return Speaker()


def test_split_sentences() -> None:
    assert split_sentences("Turned off the light. The door didn't respond.") == [
        "Turned off the light.",
        "The door didn't respond.",
    ]
    assert split_sentences("要解锁前门吗？请说“是”。") == ["要解锁前门吗？", "请说“是”。"]
    assert split_sentences("  ") == []


def test_piper_reply_holds_the_sensor_value(
    speaker: Speaker, whisper_transcriber: WhisperTranscriber
) -> None:
    """"what's the temperature in the kitchen" → the sensor's value, spoken and heard back."""
    home = load_demo_config()
    intent = Recognizer(home).recognize("what's the temperature in the kitchen").intent
    assert intent is not None
    state = {"temperature": 23.5, "current_temperature": 23.5}
    results = [ActionResult(device_id="kitchen_temperature", intent=intent.name,
                            status="confirmed", state=state)]
    reply = compose_reply(intent, results, home)
    pcm = speaker.synth(reply.text, reply.language, 16000)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    start, end = speech_bounds(audio)
    assert end - start > 1.0  # a sentence, not a blip
    heard = normalize_text(whisper_transcriber.transcribe(audio.astype(np.float32) / 32768).text)
    assert "kitchen" in heard
    assert "23 5" in heard or "23 point 5" in heard or "twenty three point five" in heard, heard


def test_sentences_stream_one_by_one_at_the_requested_rate(speaker: Speaker) -> None:
    async def collect() -> list[tuple[str, int, float]]:
        out = []
        text = "Turned on the kitchen light. The garage door didn't respond."
        async for s in stream_async(speaker, text, "en", 24000):
            out.append((s.text, s.rate, s.audio_ms))
        return out

    got = asyncio.run(collect())
    assert [t for t, _, _ in got] == ["Turned on the kitchen light.",
                                      "The garage door didn't respond."]
    assert all(rate == 24000 and ms > 500 for _, rate, ms in got)


def test_voice_is_loaded_once_and_shared(speaker: Speaker) -> None:
    assert speaker.voice("en") is speaker.voice("en-US")
    assert speaker.engine_for("en") == "piper:en_US-joe-medium"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_chinese_falls_back_to_espeak(speaker: Speaker) -> None:
    assert speaker.engine_for("zh-CN") == "espeak-ng:cmn"
    pcm = speaker.synth("厨房现在21.5度。", "zh-CN", 16000)
    start, end = speech_bounds(np.frombuffer(pcm, dtype="<i2").astype(np.int16))
    assert end - start > 0.5


def test_no_voice_means_text_only() -> None:
    quiet = Speaker(TtsConfig(voices={}, espeak_voices={}))
    assert quiet.engine_for("en") is None
    assert list(quiet.stream("Hello.", "en", 16000)) == []
    assert Speaker(TtsConfig(enabled=False)).voices() == {"en": None, "zh-CN": None}


def test_sentences_are_cached_and_warmed_ahead() -> None:
    speaker = Speaker()
    first = list(speaker.stream("Turned on the office light.", "en", 16000))
    again = list(speaker.stream("Turned on the office light.", "en", 16000))
    assert [s.cached for s in first] == [False] and [s.cached for s in again] == [True]
    assert again[0].pcm == first[0].pcm and again[0].synth_s == 0.0
    # Warmed while the devices confirm: the reply then finds it made (or under way).
    speaker.warm("Turned off the office light. Extra words.", "en", 16000)
    later = list(speaker.stream("Turned off the office light. Extra words.", "en", 16000))
    assert [s.cached for s in later] == [True, False]
    off = Speaker(TtsConfig(cache_entries=0))
    assert [s.cached for s in off.stream("Hello there.", "en", 16000)] == [False]
    assert [s.cached for s in off.stream("Hello there.", "en", 16000)] == [False]


def test_prefill_makes_the_home_confirmations_ready() -> None:
    from assistant.answers.stage import AnswerServices
    from devices.registry import load_demo_config

    speaker = Speaker(TtsConfig(prefill=True))
    services = AnswerServices(home=load_demo_config(), speaker=speaker)
    texts = services.confirmations("en")
    assert "Turned on the kitchen light." in texts and "Turned off the ceiling fan." in texts
    made = speaker.prefill(texts[:3], "en").result(timeout=120)
    assert made == 3
    # Any client rate: the cache holds the voice's own audio.
    for rate in (16000, 48000):
        got = list(speaker.stream(texts[0], "en", rate))
        assert [s.cached for s in got] == [True] and got[0].rate == rate


def test_early_synthesis_does_not_queue_behind_the_prefill() -> None:
    """A reply's early synthesis (``warm``) runs while the prefill is still going: a fake
    voice (this checks the scheduling, not the sound) holds every prefill sentence until the
    warmed one has been made."""
    gate = threading.Event()
    made: list[str] = []

    class Held:
        engine, name, rate = "fake", "held", 16000

        def synth(self, sentence: str) -> np.ndarray:
            if sentence.startswith("Prefill"):
                gate.wait(10)
            made.append(sentence)
            if sentence == "Turned on the kitchen light.":
                gate.set()
            return np.zeros(160, dtype=np.int16)

    speaker = Speaker(TtsConfig(prefill=True))
    speaker._voices["en"] = Held()
    prefill = speaker.prefill(["Prefill one.", "Prefill two."], "en")
    speaker.warm("Turned on the kitchen light.", "en")
    got = list(speaker.stream("Turned on the kitchen light.", "en", 16000))
    assert [s.cached for s in got] == [True]
    assert prefill.result(timeout=30) == 2
    assert made == ["Turned on the kitchen light.", "Prefill one.", "Prefill two."]


def test_split_head() -> None:
    assert split_head("Set the bedroom lamp to 30%.") == ("Set the bedroom lamp to", "30%.")
    assert split_head("Set the thermostat to 19 degrees.") == (
        "Set the thermostat to", "19 degrees.")
    assert split_head("I'm not sure I heard that right, so I didn't unlock the front door.") == (
        "I'm not sure I heard that right,", "so I didn't unlock the front door.")
    # too short a head, nothing to cut, no spaces between words
    assert split_head("It's 21.5 degrees in the kitchen.") is None
    assert split_head("Turned on the kitchen light.") is None
    assert split_head("已将卧室台灯调到30%。") is None


def test_a_value_reply_starts_with_its_prefilled_head(
    whisper_transcriber: WhisperTranscriber,
) -> None:
    """A reply with a value not said before: its first audio is the prefilled part before the
    value ("Set the bedroom lamp to"), then the value, made meanwhile; heard back whole. The
    whole sentence is then made in the background and said whole the next time."""
    from assistant.answers.stage import AnswerServices

    speaker = Speaker(TtsConfig(prefill=True))
    services = AnswerServices(home=load_demo_config(), speaker=speaker)
    heads = services.value_heads("en")
    assert "Set the bedroom lamp to" in heads and "Set the thermostat to" in heads
    assert "Set the kitchen light to" in services.confirmations("en")
    assert speaker.prefill(heads, "en").result(timeout=120) == len(heads)
    text = "Set the bedroom lamp to 30%."
    got = list(speaker.stream(text, "en", 16000))
    assert [(s.text, s.cached) for s in got] == [
        ("Set the bedroom lamp to", True), ("30%.", False)]
    audio = np.frombuffer(b"".join(s.pcm for s in got), dtype="<i2").astype(np.float32)
    heard = normalize_text(whisper_transcriber.transcribe(audio / 32768).text)
    assert "bedroom lamp" in heard and ("30" in heard or "thirty" in heard), heard
    speaker._pool(prefill=True).submit(lambda: None).result(timeout=120)  # made whole
    again = list(speaker.stream(text, "en", 16000))
    assert [(s.text, s.cached) for s in again] == [(text, True)]


def test_a_reply_does_not_wait_for_a_starved_background_synthesis() -> None:
    """The prefill runs at nice 10, which a busy machine starves: a reply that needs the
    sentence the prefill is making makes it itself instead of waiting (a fake voice whose
    background synthesis is held)."""
    gate = threading.Event()

    class Starved:
        engine, name, rate = "fake", "starved", 16000

        def synth(self, sentence: str) -> np.ndarray:
            return np.full(1600, 1000, dtype=np.int16)

        def synth_background(self, sentence: str) -> np.ndarray:
            gate.wait(30)
            return np.full(1600, 1000, dtype=np.int16)

    speaker = Speaker(TtsConfig(prefill=True))
    speaker._voices["en"] = Starved()
    prefill = speaker.prefill(["Turned on the kitchen light."], "en")
    while not speaker._background:  # the prefill has started on it
        threading.Event().wait(0.01)
    got = list(speaker.stream("Turned on the kitchen light.", "en", 16000))
    assert [(s.text, s.cached) for s in got] == [("Turned on the kitchen light.", False)]
    assert not gate.is_set() and not prefill.done()
    gate.set()
    assert prefill.result(timeout=30) == 1
    assert [s.cached for s in speaker.stream("Turned on the kitchen light.", "en", 16000)] == [
        True]
