"""Stage tests: each stage of a turn (assistant/turn/) on its own, built by hand from fakes, with
no session object, no socket and no models."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from assistant import protocol as p
from assistant.config import AssistantSettings, TurnDetectionSettings
from assistant.metrics import Metrics
from assistant.turn.acting import Acting
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.hearing import Hearing
from assistant.turn.pipeline import Turns
from assistant.turn.speculation import Speculator
from assistant.turn.transcribing import Transcribing
from assistant.turn.types import Done, SessionResources, SessionState, StageError, Utterance
from assistant.turn.understanding import Understanding
from devices.actions import ActionResult
from intents.schema import Intent, Recognition
from tests.test_server_session import (
    SILENT,
    VOICED,
    FakeDispatcher,
    FakeFrontEnd,
    FakeRecognizer,
    light_on,
)


class Stages:
    """The stages of one session, wired as ``assistant.session.Session`` wires them."""

    def __init__(self, **resources: Any) -> None:
        self.events: list[Any] = []
        self.dispatcher = FakeDispatcher()
        self.res = SessionResources(
            settings=AssistantSettings(audio=True, speculative=False),
            recognizer=FakeRecognizer(),
            dispatcher=self.dispatcher,
            metrics=Metrics(),
            **resources,
        )
        config = p.SessionConfig(sample_rate=16000, language="en")
        self.state = SessionState("s", config)
        clock = time.monotonic
        self.out = Events(self.res, self.events.append, session_id="s", client=None, clock=clock)
        self.understanding = Understanding(self.res, self.state)
        self.acting = Acting(self.res, self.state, self.out, clock)
        self.jobs = AsrJobs(self.res)
        self.current: Utterance | None = None
        self.speculation = Speculator(
            self.res,
            self.state,
            self.out,
            self.jobs,
            self.understanding,
            current=lambda: self.current,
            end_turn=lambda utt, spec: None,
            clock=clock,
        )
        self.transcribing = Transcribing(
            self.res, self.state, self.out, self.jobs, self.understanding, self.speculation, clock
        )
        self.turns = Turns(
            self.res,
            self.state,
            self.out,
            self.transcribing,
            self.understanding,
            self.acting,
            clock,
        )

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def metrics(self, n: int = 1) -> None:
        async with asyncio.timeout(5.0):
            while len(self.of(p.MetricsEvent)) < n:  # noqa: ASYNC110
                await asyncio.sleep(0.005)


def utterance() -> Utterance:
    return Utterance(id="s-1", started=time.monotonic())


# -- understanding -------------------------------------------------------------------------


class FailingTier:
    """A model tier that fails with a stable code (as ``intents.model_tier`` errors do)."""

    def __init__(self, code: str | None) -> None:
        self.code = code

    def recognize(self, text: str, **kw: Any) -> Recognition:
        if self.code is None:
            raise RuntimeError("secret internal detail")
        e = RuntimeError("secret internal detail")
        e.code = self.code  # type: ignore[attr-defined]
        e.public_message = "the language model did not answer in time"  # type: ignore[attr-defined]
        raise e

    def image(self, data: str) -> Any:
        return data


async def test_understanding_passes_model_tier_codes_through_and_hides_other_failures() -> None:
    s = Stages(tiered=FailingTier("model_timeout"))
    with pytest.raises(StageError) as timeout:
        await s.understanding.recognize(utterance(), "what is this", "en", None)
    assert timeout.value.code is p.ErrorCode.MODEL_TIMEOUT
    assert "secret" not in timeout.value.message
    s.res.tiered = FailingTier(None)
    with pytest.raises(StageError) as other:
        await s.understanding.recognize(utterance(), "what is this", "en", None)
    assert other.value.code is p.ErrorCode.RECOGNIZER_FAILED
    assert "secret" not in other.value.message


async def test_understanding_gives_the_grammar_the_last_intent_as_context() -> None:
    s = Stages()
    s.state.last_intent = light_on("turn on the kitchen light")
    result = await s.understanding.recognize(utterance(), "kitchen light", "en", None)
    assert result.intent is not None and result.intent.name == "light_on"
    recognizer = s.res.recognizer
    assert isinstance(recognizer, FakeRecognizer)
    assert recognizer.calls == [("kitchen light", s.state.last_intent)]


# -- acting --------------------------------------------------------------------------------


def unlock() -> Recognition:
    intent = light_on("unlock the front door").model_copy(update={"name": "unlock"})
    return Recognition(intent=intent, reason="fake match")


async def test_acting_holds_a_sensitive_action_until_yes() -> None:
    s = Stages()
    first = utterance()
    with pytest.raises(Done) as refused:
        await s.acting.act(first, unlock(), "unlock the front door", "en")
    assert refused.value.outcome == "actions"
    assert [a.status for a in first.actions] == ["rejected"]
    assert s.dispatcher.dispatched[-1].name == "unlock"
    yes = Utterance(id="s-2", started=time.monotonic())
    with pytest.raises(Done):
        await s.acting.act(yes, Recognition(intent=None, reason="no match"), "yes", "en")
    # "yes" was understood as the answer to the pending confirmation, and carried it out.
    intents = [e.intent.name for e in s.of(p.IntentEvent) if e.intent is not None]
    assert intents == ["unlock", "confirm"]
    assert yes.intent is not None and yes.intent.name == "unlock"
    assert [a.status for a in yes.actions] == ["published", "confirmed"]


async def test_acting_without_an_intent_ends_the_turn_as_no_intent() -> None:
    s = Stages()
    with pytest.raises(Done) as done:
        await s.acting.act(utterance(), Recognition(intent=None, reason="no match"), "hm", "en")
    assert done.value.outcome == "no_intent"
    assert s.dispatcher.dispatched == []
    assert s.of(p.IntentEvent)[0].intent is None


# -- transcribing --------------------------------------------------------------------------


async def test_transcribing_reports_the_transcript_and_ends_an_empty_one() -> None:
    s = Stages(transcribe=lambda audio: "  turn on the kitchen light ")
    heard = await s.transcribing.transcribe(utterance(), [0.0] * 160, None)
    assert heard.text == "turn on the kitchen light"
    assert s.of(p.TranscriptFinal)[0].source == "asr"
    s.res.transcribe = lambda audio: ""
    with pytest.raises(Done) as done:
        await s.transcribing.transcribe(utterance(), [0.0] * 160, None)
    assert done.value.outcome == "no_speech"
    assert s.res.asr_load.jobs == 0  # every job counted in and out


async def test_transcribing_maps_an_asr_failure_to_asr_failed() -> None:
    def broken(audio: Any) -> str:
        raise RuntimeError("secret internal detail")

    s = Stages(transcribe=broken)
    with pytest.raises(StageError) as failed:
        await s.transcribing.transcribe(utterance(), [0.0] * 160, None)
    assert failed.value.code is p.ErrorCode.ASR_FAILED


# -- the pipeline and the answering hook ---------------------------------------------------


class RecordingAnswering:
    """An answering stage that records what it is given and says one line."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.answers: list[dict[str, Any]] = []

    def handles(self, intent: Intent) -> bool:
        return intent.name == "get_time"

    def act_local(self, utterance_id: str, intent: Intent) -> ActionResult:
        return ActionResult(device_id=None, intent=intent.name, status="confirmed")

    async def settled(self) -> None:
        self.events.append(("settled",))

    def prepare(self, intent: Intent) -> None:
        self.events.append(("prepared", intent.name))

    def ambiguous(self, intent: Intent) -> list[str] | None:
        return None

    def choose(self, text: str, choices: Sequence[str]) -> list[str]:
        return []

    def answer(
        self,
        utterance_id: str,
        intent: Intent | None,
        results: Sequence[ActionResult],
        **kw: Any,
    ) -> object:
        self.answers.append({"id": utterance_id, "intent": intent, "results": list(results), **kw})
        self.events.append(("answered", utterance_id))
        return None

    def barge_in(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    async def close(self) -> None:
        return None


async def test_answering_receives_the_turn_result_before_its_metrics() -> None:
    s = Stages()
    answering = RecordingAnswering(s.events)
    s.turns.answering = s.acting.answering = answering
    s.turns.text(p.TextInput(text="turn on the kitchen light"))
    s.turns.text(p.TextInput(text="sing me a song"))
    await s.metrics(2)
    first, second = answering.answers
    assert first["intent"].name == "light_on"
    assert [r.status for r in first["results"]] == ["published", "confirmed"]
    assert first["text"] == "turn on the kitchen light" and first["language"] == "en"
    assert first["failed"] is False
    assert second["intent"] is None and second["reason"] == "no match"
    for uid in (first["id"], second["id"]):
        kinds = [e if isinstance(e, tuple) else e.type for e in s.events if _of(e, uid)]
        assert kinds[-2:] == [("answered", uid), "metrics"]


async def test_acting_hands_local_intents_to_the_answering_stage() -> None:
    s = Stages()
    s.turns.answering = s.acting.answering = RecordingAnswering(s.events)
    s.res.recognizer = _Fixed(
        Intent(name="get_time", confidence=1.0, source="grammar", reason="fixed")
    )
    s.turns.text(p.TextInput(text="what time is it"))
    await s.metrics()
    assert s.dispatcher.dispatched == []  # not the dispatcher's
    assert [a.status for a in s.of(p.ActionEvent)] == ["confirmed"]


async def test_a_cancelled_turn_gets_no_answer() -> None:
    s = Stages()
    answering = RecordingAnswering(s.events)
    s.turns.answering = answering
    gate = threading.Event()  # holds recognition: the turn is cancelled before acting

    class Slow(FakeRecognizer):
        def recognize(self, text: str, **kw: Any) -> Recognition:
            gate.wait(5)
            return super().recognize(text, **kw)

    s.res.recognizer = Slow()
    s.turns.text(p.TextInput(text="turn on the kitchen light"))
    await asyncio.sleep(0.05)
    s.turns.cancel(None)
    gate.set()
    await s.metrics()
    assert s.of(p.MetricsEvent)[0].outcome == "cancelled"
    assert answering.answers == []


# -- hearing -------------------------------------------------------------------------------


class TurnsSpy:
    """What hearing hands over, instead of running turns."""

    def __init__(self) -> None:
        self.started: list[tuple[Utterance, int]] = []
        self.finished: list[tuple[str, str]] = []
        self.n = 0

    def new(self) -> Utterance:
        self.n += 1
        return Utterance(id=f"s-{self.n}", started=time.monotonic())

    def finish(self, utt: Utterance, outcome: str) -> None:
        self.finished.append((utt.id, outcome))

    def speech(self, utt: Utterance, audio: Any, audio_end_ms: int | None) -> None:
        self.started.append((utt, len(audio)))


async def test_hearing_hands_a_finished_turn_to_the_pipeline() -> None:
    fronts: list[FakeFrontEnd] = []

    def frontend(rate: int, td: TurnDetectionSettings, mode: str) -> FakeFrontEnd:
        fronts.append(FakeFrontEnd(rate))
        return fronts[-1]

    s = Stages(frontend_factory=frontend)
    spy = TurnsSpy()
    hearing = Hearing(s.res, s.state, s.out, spy, s.speculation, time.monotonic)  # type: ignore[arg-type]
    task = asyncio.create_task(hearing.run())
    try:
        for frame in [VOICED] * 5 + [SILENT] * 3:
            hearing.audio(frame)
        async with asyncio.timeout(5.0):
            while not spy.started:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e.type for e in s.events] == ["speech.started", "speech.stopped"]
    utt, frames = spy.started[0]
    assert frames == 8 * 320 and utt.audio_ms == 160 and hearing.current is None
    assert "endpoint_wait" in utt.timings
    assert spy.finished == []


async def test_hearing_cancel_ends_the_utterance_being_heard() -> None:
    s = Stages(frontend_factory=lambda rate, td, mode: FakeFrontEnd(rate))
    spy = TurnsSpy()
    hearing = Hearing(s.res, s.state, s.out, spy, s.speculation, time.monotonic)  # type: ignore[arg-type]
    task = asyncio.create_task(hearing.run())
    try:
        for _ in range(3):
            hearing.audio(VOICED)
        async with asyncio.timeout(5.0):
            while hearing.current is None:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        hearing.cancel(None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert spy.finished == [("s-1", "cancelled")] and spy.started == []


def _of(event: Any, uid: str) -> bool:
    if isinstance(event, tuple):
        return bool(event[1] == uid)
    return bool(getattr(event, "utterance_id", None) == uid)


class _Fixed:
    def __init__(self, intent: Intent) -> None:
        self.intent = intent

    def recognize(self, text: str, **kw: Any) -> Recognition:
        return Recognition(intent=self.intent.model_copy(update={"text": text}), reason="fixed")



async def test_turns_act_in_the_order_they_were_said() -> None:
    """The second turn is understood first (the first one's recognition is slow), yet its
    command goes out after the first one's: "turn off …, turn on …" ends with the light on."""
    s = Stages()
    gate = threading.Event()

    class SlowFirst(FakeRecognizer):
        def recognize(self, text: str, **kw: Any) -> Recognition:
            if "first" in text:
                gate.wait(5)
            return super().recognize(text, **kw)

    s.res.recognizer = SlowFirst()
    s.turns.text(p.TextInput(text="first light"))
    s.turns.text(p.TextInput(text="second light"))
    await asyncio.sleep(0.1)
    assert s.dispatcher.dispatched == []  # the second waits for the first
    gate.set()
    await s.metrics(2)
    assert [i.text for i in s.dispatcher.dispatched] == ["first light", "second light"]
    intents = [e.intent.text for e in s.of(p.IntentEvent)]
    assert intents == ["first light", "second light"]
