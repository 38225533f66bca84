"""Turn-taking through a real server (issue 21): piper speech, cut and joined with silence,
streamed in real time into the demo home with the coffee custom intents; actions observed on
the real Mosquitto. No timing assertions.

* An order whose words so far are complete but could go on ("I'd like a large latte" … "with
  some almond milk") is not cut off at the pause: one turn, one order, with the milk.
* Chatter after a command ("… thank you") never produces a second action.
* The grammar's own answer to "could it go on" (``intents.extend``), without audio, and the
  speculation stage's use of it: a look whose reading could go on does not end the turn before
  the speaker resumes; one that cannot, does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from assistant import protocol as p
from assistant.bench.accuracy import COFFEE_FILE
from assistant.bench.serve_clips import run_clip as _run_clip
from assistant.config import AssistantSettings
from assistant.metrics import Metrics
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.speculation import Speculator
from assistant.turn.types import SessionResources, SessionState, Utterance
from assistant.turn.understanding import Understanding
from devices.registry import load_demo_config
from intents.extend import Continuations
from intents.recognizer import Recognizer
from tests.mqtt_fixtures import Mosquitto
from tests.server_fixtures import ServerThread, demo_settings, open_session
from tests.speech import speech_bounds, synth
from tests.test_server_session import FakeDispatcher

ACTING = ("published", "confirmed", "unconfirmed")


def _coffee_config() -> Any:
    config = load_demo_config()
    config.custom_intents = [*config.custom_intents, str(COFFEE_FILE)]
    return config


@pytest.fixture(scope="module")
def coffee_server(hearth_mosquitto: Mosquitto) -> Iterator[ServerThread]:
    server = ServerThread(
        _coffee_config(),
        demo_settings(audio=True, asr_shed_jobs=None),
        mqtt_url=hearth_mosquitto.url,
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _trimmed(text: str) -> np.ndarray[Any, Any]:
    audio = synth(text)
    start, end = speech_bounds(audio)
    return audio[int(start * 16000) : int(end * 16000)]


def _joined(*parts: str | int) -> bytes:
    """Speech segments (text) and silences (ms), 250 ms before and 1.2 s after."""
    out = [np.zeros(4000, np.int16)]
    for part in parts:
        out.append(np.zeros(part * 16, np.int16) if isinstance(part, int) else _trimmed(part))
    out.append(np.zeros(19200, np.int16))
    return bytes(np.concatenate(out).astype("<i2").tobytes())


async def _stream(server: ServerThread, pcm: bytes) -> list[dict[str, Any]]:
    ws, _ = await open_session(server.url)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with ws:

        async def reader() -> None:
            import json

            async for msg in ws:
                if isinstance(msg, str):
                    inbox.put_nowait(json.loads(msg))

        reading = asyncio.create_task(reader())
        clip = await _run_clip(ws, inbox, pcm)
        reading.cancel()
    return clip.events


def _acted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "action" and e["final"] and e["status"] in ACTING]


def test_the_grammar_knows_when_a_complete_reading_could_go_on() -> None:
    c = Continuations(Recognizer(_coffee_config()), home=False)
    go_on = lambda t: c.can_go_on(t, custom=True, language="en")  # noqa: E731
    assert go_on("I'd like a large latte.") is True  # + "with some milk"
    assert go_on("I'd like a large latte with some almond milk") is True  # + "and sugar"
    assert go_on("I'd like a large latte with some almond milk and some sugar") is False
    assert go_on("I'd like a large lattes please") is None  # not the grammar's words


async def test_a_pause_after_a_complete_order_that_could_go_on_is_not_the_end(
    coffee_server: ServerThread,
) -> None:
    pcm = _joined("I'd like a large latte.", 300, "With some almond milk.")
    events = await _stream(coffee_server, pcm)
    acted = _acted(events)
    heard = [e["text"] for e in events if e["type"] == "transcript.final"]
    assert len(acted) == 1, (heard, acted)
    intents = [e["intent"] for e in events if e["type"] == "intent" and e["intent"]]
    assert len(intents) == 1, (heard, intents)
    custom = intents[0]["slots"]["custom"]
    assert (custom.get("size"), custom.get("coffee_drink"), custom.get("milk_amount")) == (
        "large", "latte", "some almond milk"), (heard, custom)


async def test_thank_you_after_a_command_is_no_second_action(
    coffee_server: ServerThread,
) -> None:
    pcm = _joined("Turn on the kitchen light.", 700, "Thank you.")
    await _acts_once(coffee_server, pcm, ("light_on", "kitchen_light"))


async def _acts_once(server: ServerThread, pcm: bytes, action: tuple[str, str]) -> None:
    """Streaming ``pcm`` makes exactly one action: ``(intent, device_id)``."""
    events = await _stream(server, pcm)
    heard = [e["text"] for e in events if e["type"] == "transcript.final"]
    acted = _acted(events)
    assert [(a["intent"], a["device_id"]) for a in acted] == [action], (heard, acted)


async def _look_then_resume(recognizer: Recognizer, text: str, *, armed: bool = True,
                            dispatcher: Any = None) -> list[Any]:
    """A look at a pause heard ``text`` (at once, no model); the speaker resumes as soon as
    its reading is known. Returns the looks that ended the turn."""
    res = SessionResources(
        settings=AssistantSettings(audio=True, speculative=True, speculation_beam_size=None),
        recognizer=recognizer, dispatcher=dispatcher or FakeDispatcher(), metrics=Metrics(),
        transcribe=lambda audio: text,
    )
    state = SessionState("s", p.SessionConfig(sample_rate=16000, language="en"))
    events: list[Any] = []
    out = Events(res, events.append, session_id="s", client=None, clock=time.monotonic)
    ended: list[Any] = []
    utt = Utterance(id="s-1", started=time.monotonic())
    # The look's clock stands still: however long recognizing takes on a loaded machine,
    # the speaker "resumes" within the hold (the server measures the hold from the pause).
    spec = Speculator(res, state, out, AsrJobs(res), Understanding(res, state),
                      current=lambda: utt, end_turn=lambda u, s: ended.append(s),
                      clock=lambda: 0.0)
    spec.paused(utt, np.zeros(16000, np.float32), 1000)
    look = utt.spec
    assert look is not None
    async with asyncio.timeout(30):
        while look.recognition is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    spec.resumed(utt)  # "... with some almond milk"
    assert look.follow is not None
    await look.follow
    assert look.armed is armed, look.recognition
    return ended


async def test_a_look_that_could_go_on_waits_for_the_speaker() -> None:
    recognizer = Recognizer(_coffee_config())
    assert await _look_then_resume(recognizer, "I'd like a large latte.") == []
    done = await _look_then_resume(
        recognizer, "I'd like a large latte with some almond milk and some sugar.")
    assert len(done) == 1


def test_a_reading_of_part_of_a_name_could_go_on() -> None:
    c = Continuations(Recognizer(load_demo_config()), home=False)
    assert c.name_cut_short("Turn off the TV", ["tv_plug"]) is True  # + "plug"
    assert c.name_cut_short("Turn off the TV plug.", ["tv_plug"]) is False
    assert c.name_cut_short("turn on the kitchen light", ["kitchen_light"]) is False
    assert c.name_cut_short("turn on the kitchen", ["kitchen_light"]) is True


async def test_a_look_that_heard_part_of_a_name_waits_for_the_rest() -> None:
    recognizer = Recognizer(load_demo_config())
    recognizer.recognize("Turn off the TV")  # loaded before the look is timed
    assert await _look_then_resume(recognizer, "Turn off the TV") == []
    assert len(await _look_then_resume(recognizer, "Turn off the TV plug.")) == 1


async def test_a_look_that_named_no_device_waits_for_the_name() -> None:
    # "next" is the home's one speaker, but the speaker may still say which ("next ... song on
    # the living room speaker"; espeak's pause after "next" once ended the turn there).
    recognizer = Recognizer(load_demo_config())
    c = Continuations(recognizer, home=False)
    assert c.target_unsaid("next", ["speaker"]) is True
    assert c.target_unsaid("next song on the living room speaker", ["speaker"]) is False
    assert c.target_unsaid("turn it off", ["speaker"]) is False  # named before
    assert c.target_unsaid("下一首", ["speaker"]) is False  # not split into words: no wait
    assert c.target_unsaid("把音量调到40", ["speaker"]) is False
    recognizer.recognize("next")  # loaded before the look is timed
    assert await _look_then_resume(recognizer, "next") == []
    assert len(await _look_then_resume(recognizer, "Next song on the living room speaker.")) == 1


async def test_a_look_the_dispatcher_would_refuse_does_not_end_the_turn() -> None:
    # A greedy look heard "Open the garbage door." (0.6: below the 0.9 a sensitive opening
    # needs): the final pass, with the home's names as its prompt, may hear it right.
    from devices.dispatcher import Dispatcher
    from tests.test_devices_dispatcher import FakeMqtt

    recognizer = Recognizer(load_demo_config())
    policy = Dispatcher(recognizer.config, FakeMqtt())  # the home's own rules; nothing is sent
    assert await _look_then_resume(
        recognizer, "Open the garbage door.", armed=False, dispatcher=policy) == []
    done = await _look_then_resume(
        recognizer, "Open the garage door.", armed=True, dispatcher=policy)
    assert len(done) == 1  # heard as said: it acts at once


async def test_the_rest_of_a_name_after_a_pause_is_not_a_command_of_its_own(
    coffee_server: ServerThread,
) -> None:
    # Once: "Turn off the TV" ended the turn early (read as the TV plug), and "plug" came
    # back alone as "lock," and locked the front door.
    pcm = _joined("Turn off the TV", 250, "plug.")
    await _acts_once(coffee_server, pcm, ("switch_off", "tv_plug"))


def test_a_guess_is_weighed_by_what_whisper_wrote() -> None:
    from intents.evidence import weigh

    recognizer = Recognizer(_coffee_config())

    def guess(sentence: str, confidence: float) -> Any:
        rec = recognizer.recognize(sentence)
        assert rec.intent is not None and rec.intent.source == "custom", rec
        intent = rec.intent.model_copy(update={"confidence": confidence})
        return rec.model_copy(update={"intent": intent, "guessed": True})

    # Only the carrier words were repaired: every value as Whisper wrote it is not refused.
    heard = ["The triple shot, light roast, iced mocha."]
    got = weigh(guess("brew triple shot light roast iced mocha", 0.43), heard, bar=0.5)
    assert got.intent is not None and got.intent.confidence >= 0.5
    # Every value heard, some garbled by the noise ("dock" roast, "capucino"): up to the bar.
    heard = ["A double shot, dock roast, capucino please."]
    got = weigh(guess("brew double shot dark roast cappuccino", 0.42), heard, bar=0.5)
    assert got.intent is not None and got.intent.confidence == 0.5, got.reason
    # ... but a value nothing heard sounds like ("coffee" for "ca") stays below it.
    heard = ["A double shot ca, with some sugar."]
    reading = guess("brew double shot coffee with some sugar", 0.42)
    assert weigh(reading, heard, bar=0.5) is reading
    # "cool milk" -> "whole milk": a value Whisper did not hear is left as it is, or (opt-in)
    # kept below the bar.
    heard = ["It's dark roast, iced coffee with cool milk."]
    reading = guess("brew dark roast iced coffee with whole milk", 0.55)
    assert weigh(reading, heard, bar=0.5) is reading
    got = weigh(reading, heard, bar=0.5, cap_unheard=True)
    assert got.intent is not None and got.intent.confidence < 0.5
    # A reading parsed as heard is not a guess: left alone.
    plain = recognizer.recognize("brew dark roast iced coffee with whole milk")
    assert weigh(plain, heard, bar=0.5) is plain


def test_the_audio_margin_of_a_guess_decides_between_acting_and_asking() -> None:
    """A guess the acoustic check measured (``Recognition.audio_margin``): every value chosen
    by the audio by a clear margin reaches the bar even where Whisper wrote nothing like it; a
    reading the audio prefers another value to is kept below it; a rescue is never raised."""
    from intents.evidence import CHOSEN_NATS, CONTRADICTED_NATS, weigh

    recognizer = Recognizer(_coffee_config())
    rec = recognizer.recognize("brew a double shot house coffee with a little bit of almond milk")
    assert rec.intent is not None and rec.intent.source == "custom", rec

    def guess(confidence: float, margin: float | None) -> Any:
        intent = rec.intent.model_copy(update={"confidence": confidence})  # type: ignore[union-attr]
        return rec.model_copy(update={"intent": intent, "guessed": True,
                                      "audio_margin": margin})

    heard = ["Give me a double shot, hell's coffee, with a little bit of bowing milk."]
    unheard = weigh(guess(0.8, None), heard, bar=0.5, cap_unheard=True)
    assert unheard.intent is not None and unheard.intent.confidence < 0.5  # asked back
    sure = weigh(guess(0.8, CHOSEN_NATS), heard, bar=0.5, cap_unheard=True)
    assert sure.intent is not None and sure.intent.confidence == 0.5, sure.reason
    assert "the audio chose every value" in sure.reason
    close = weigh(guess(0.8, CHOSEN_NATS - 0.5), heard, bar=0.5, cap_unheard=True)
    assert close.intent is not None and close.intent.confidence < 0.5
    rescued = weigh(guess(0.8, CHOSEN_NATS + 5), heard, bar=0.5, cap_unheard=True,
                    rescued=True)
    assert rescued.intent is not None and rescued.intent.confidence < 0.35
    # every value as Whisper wrote it, but the audio prefers another one: asked back
    written = ["A double shot house coffee with a little bit of almond milk."]
    assert weigh(guess(0.8, None), written, bar=0.5).intent.confidence == 0.8  # type: ignore[union-attr]
    against = weigh(guess(0.8, -CONTRADICTED_NATS - 0.1), written, bar=0.5)
    assert against.intent is not None and 0.35 <= against.intent.confidence < 0.5
    assert "the audio prefers another value" in against.reason
    # a reading parsed as heard is no guess: its margin (if any) changes nothing
    plain = rec.model_copy(update={"audio_margin": -9.0})
    assert weigh(plain, written, bar=0.5) is plain


def test_a_guess_with_a_value_no_hypothesis_has_is_kept_below_the_bar() -> None:
    """The pipeline's weighing: a value Whisper heard nothing like, chosen by the audio
    scorer or the grammar ("A lot of sugar." → "coffee with a lot of sugar"), is a guess: the
    reading is kept just below the bar, where the turn asks it back."""
    from types import SimpleNamespace

    from assistant.turn.pipeline import Turns

    recognizer = Recognizer(_coffee_config())
    turns = Turns.__new__(Turns)
    turns._res = SimpleNamespace(recognizer=recognizer)  # type: ignore[assignment]
    rec = recognizer.recognize("I want coffee with a lot of sugar")
    assert rec.intent is not None and rec.intent.source == "custom", rec
    guess = rec.model_copy(update={"guessed": True})
    heard: Any = SimpleNamespace(hypotheses=[SimpleNamespace(text="A lot of sugar.")])
    held = turns._weigh(guess, heard)
    assert held.intent is not None and 0.35 <= held.intent.confidence < 0.5, held
    assert "did not hear" in held.reason
    # ... and a rescue (the text parsed to nothing) past the band where a guess is asked back
    refused = turns._weigh(guess, heard, rescued=True)
    assert refused.intent is not None and refused.intent.confidence < 0.35, refused
    # every value heard: the guess stands
    heard = SimpleNamespace(hypotheses=[SimpleNamespace(text="coffee, a lot of sugar")])
    assert turns._weigh(guess, heard).intent.confidence >= 0.5  # type: ignore[union-attr]
