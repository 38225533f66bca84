"""A guess asked back (assistant/turn/acting.py): a guessed reading of noisy speech held just
below ``security.min_confidence`` is not refused but asked back ("Did you mean: …? Say yes"),
and a "yes" carries it out. The stages of one session with the real grammar, the real
dispatcher and a real Mosquitto (tests/test_turn_amend.py's kitchen)."""

from __future__ import annotations

import asyncio
import time

import pytest

from assistant import protocol as p
from assistant.turn.acting import ASKED_BACK
from assistant.turn.types import Done, Utterance
from devices.dispatcher import ASK_BACK_BAND
from intents.schema import Recognition
from tests.mqtt_fixtures import eventually
from tests.test_turn_amend import Kitchen, recognizer  # noqa: F401
from tests.test_turn_amend import kitchen as kitchen  # the fixture

pytestmark = pytest.mark.timeout(120)

ORDER = "I want a dark roast house coffee"


async def guessed(kitchen: Kitchen, text: str, confidence: float, n: int) -> None:
    """Act on ``text`` as a guessed reading of noisy speech at ``confidence`` (the session's
    ``n``-th turn)."""
    st = kitchen.st
    found = st.res.recognizer.recognize(text).intent
    assert found is not None
    guess = Recognition(intent=found.model_copy(update={"confidence": confidence}),
                        reason="decoded as a guess", guessed=True)
    utt = Utterance(id=f"s-{n}", started=time.monotonic())
    with pytest.raises(Done):
        await st.acting.act(utt, guess, text, "en")


def rejections(kitchen: Kitchen) -> list[str]:
    return [a.detail for a in kitchen.st.of(p.ActionEvent) if a.status == "rejected"]


async def test_a_guess_just_below_the_bar_is_asked_back_and_a_yes_acts(kitchen: Kitchen) -> None:
    await guessed(kitchen, ORDER, 0.45, 1)
    assert rejections(kitchen) == [f"{ASKED_BACK}: {ORDER}"]
    await asyncio.sleep(0.2)
    assert kitchen.orders == []  # nothing yet
    await kitchen.say("yes", 1)
    await eventually(lambda: len(kitchen.orders) == 1)
    assert kitchen.orders[0]["drink"] == "house coffee"
    said = kitchen.intents()[-1]
    assert said.intent is not None and said.intent.name == "confirm"
    # Once: a second "yes" confirms nothing more.
    await kitchen.say("yes", 2)
    await asyncio.sleep(0.2)
    assert len(kitchen.orders) == 1


async def test_no_or_another_turn_drops_the_guess(kitchen: Kitchen) -> None:
    await guessed(kitchen, ORDER, 0.45, 1)
    await kitchen.say("no", 1)
    assert rejections(kitchen)[-1] == "cancelled before confirmation; nothing was done"
    await guessed(kitchen, ORDER, 0.45, 2)
    await kitchen.say("what time is it", 2)  # another turn: the question is over
    await kitchen.say("yes", 3)
    await asyncio.sleep(0.2)
    assert kitchen.orders == []


async def test_far_below_the_bar_or_sensitive_is_refused_not_asked(kitchen: Kitchen) -> None:
    bar = kitchen.st.res.recognizer.config.security.min_confidence
    await guessed(kitchen, ORDER, bar - ASK_BACK_BAND - 0.05, 1)
    await guessed(kitchen, "unlock the front door", 0.45, 2)
    await guessed(kitchen, "lock the front door", 0.45, 3)
    details = rejections(kitchen)
    assert details and not any(d.startswith(ASKED_BACK) for d in details)
    await kitchen.say("yes", 1)
    await asyncio.sleep(0.2)
    assert kitchen.orders == []
    assert not [a for a in kitchen.st.of(p.ActionEvent) if a.status == "published"]


async def test_a_reading_as_heard_is_not_asked_back(kitchen: Kitchen) -> None:
    """Only a guess is asked back; a reading of the words as heard below the bar is refused
    as before (typed text, chatter the robust tier half-matched)."""
    st = kitchen.st
    found = st.res.recognizer.recognize(ORDER).intent
    assert found is not None
    heard = Recognition(intent=found.model_copy(update={"confidence": 0.45}), reason="as heard")
    with pytest.raises(Done):
        await st.acting.act(Utterance(id="s-1", started=time.monotonic()), heard, ORDER, "en")
    assert not any(d.startswith(ASKED_BACK) for d in rejections(kitchen))
    # ... nor a guess of the robust tier (below the bar it is mostly chatter half-matched)
    loose = Recognition(intent=found.model_copy(update={"confidence": 0.45, "source": "robust"}),
                        reason="robust", guessed=True)
    with pytest.raises(Done):
        await st.acting.act(Utterance(id="s-2", started=time.monotonic()), loose, ORDER, "en")
    assert not any(d.startswith(ASKED_BACK) for d in rejections(kitchen))
