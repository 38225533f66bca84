"""Session stage tests: frames in, events out, with fake recognizer/dispatcher/front end/ASR.
No sockets, no models."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from assistant import protocol as p
from assistant.asr_scheduler import AsrScheduler
from assistant.audio.endpoint import SpeechPaused, SpeechResumed, SpeechStarted, SpeechStopped
from assistant.config import AssistantSettings, TurnDetectionSettings
from assistant.metrics import Metrics
from assistant.session import Session, SessionResources
from devices.actions import ActionResult
from intents.schema import Intent, Recognition, Slots


def light_on(text: str) -> Intent:
    return Intent(
        name="light_on",
        slots=Slots(device_ids=["kitchen_light"]),
        confidence=1.0,
        source="grammar",
        reason="fake",
        text=text,
    )


class FakeRecognizer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Intent | None]] = []
        self.fail = False

    def recognize(
        self, text: str, *, language: str | None = None, context: Intent | None = None
    ) -> Recognition:
        self.calls.append((text, context))
        if self.fail:
            raise RuntimeError("secret internal detail")
        if "light" in text.lower():
            return Recognition(intent=light_on(text), reason="fake match")
        if "unlock" in text.lower():
            intent = light_on(text).model_copy(update={"name": "unlock"})
            return Recognition(intent=intent, reason="fake match")
        if "cappuccino" in text.lower():
            intent = light_on(text).model_copy(update={"name": "order_drink", "source": "custom"})
            return Recognition(intent=intent, reason="fake match")
        return Recognition(intent=None, reason="no match")


class FakeDispatcher:
    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.dispatched: list[Intent] = []

    async def dispatch(
        self,
        intent: Intent,
        *,
        on_result: Callable[[ActionResult], Any] | None = None,
        confirmed: bool = False,
    ) -> list[ActionResult]:
        self.dispatched.append(intent)
        if intent.name == "unlock" and not confirmed:
            refused = ActionResult(
                device_id="front_door_lock",
                intent="unlock",
                status="rejected",
                detail="sensitive action needs an explicit confirmation",
                extra={"needs_confirmation": True},
            )
            if on_result is not None:
                on_result(refused)
            return [refused]
        if intent.name in ("confirm", "cancel"):
            return []
        if self.fail:
            raise RuntimeError("secret internal detail")
        published = ActionResult(
            device_id="kitchen_light",
            intent=intent.name,
            status="published",
            topic="zigbee2mqtt/kitchen_light/set",
            payload='{"state":"ON"}',
            published_at=time.monotonic(),
        )
        if on_result is not None:
            on_result(published)
        if self.gate is not None:
            await self.gate.wait()
        return [published.model_copy(update={"status": "confirmed", "state": {"state": "on"}})]


class FakeFrontEnd:
    """Speech is any frame whose first sample is non-zero; 3 silent frames end the turn; a
    pause event is produced after the first silent frame."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frames: list[bytes] = []
        self.silent = 0
        self.speaking = False
        self.cleared = 0
        self.completed = False
        self.block: threading.Event | None = None
        self.pause_end: int | None = None

    def _stop(self, now: float) -> SpeechStopped:
        pcm = np.frombuffer(b"".join(self.frames), dtype="<i2")
        audio = (pcm / 32768).astype(np.float32)
        end = self.pause_end if self.pause_end is not None else len(self.frames)
        self.frames = []
        self.speaking = False
        self.pause_end = None
        # Like the real endpointer: the stopped audio ends where the paused audio ended.
        return SpeechStopped(now, now, audio, "silence", 0, end)

    def feed(self, pcm: bytes, now: float) -> Sequence[Any]:
        if self.block is not None:
            self.block.wait(5)
        voiced = pcm[:2] != b"\x00\x00"
        events: list[Any] = []
        if voiced:
            if not self.speaking:
                self.speaking = True
                events.append(SpeechStarted(now, 0))
            elif self.silent:
                events.append(SpeechResumed(now))
                self.pause_end = None
            self.silent = 0
            self.frames.append(pcm)
        elif self.speaking:
            self.silent += 1
            self.frames.append(pcm)
            if self.silent == 1:
                audio = np.zeros(len(self.frames), dtype=np.float32)
                self.pause_end = len(self.frames)
                events.append(SpeechPaused(now, now, audio, self.pause_end))
            if self.silent >= 3 or self.completed:
                events.append(self._stop(now))
                self.completed = False
        return events

    def commit(self, now: float) -> Sequence[Any]:
        return [self._stop(now)] if self.speaking else []

    def set_complete(self, complete: bool, now: float | None = None) -> Sequence[Any]:
        self.completed = complete
        return []

    def clear(self) -> None:
        self.cleared += 1
        self.frames = []
        self.speaking = False
        self.silent = 0


VOICED = b"\x10\x00" * 320
SILENT = b"\x00\x00" * 320


class Harness:
    def __init__(self, **overrides: Any) -> None:
        self.events: list[Any] = []
        self.recognizer = FakeRecognizer()
        self.dispatcher = FakeDispatcher()
        self.frontends: list[FakeFrontEnd] = []
        self.transcript = "turn on the kitchen light"
        self.asr_fail = False
        self.asr_calls = 0
        self.metrics = Metrics()
        # with_overrides skips None ("keep the default"); here None means the setting's off.
        settings = AssistantSettings(audio=True).with_overrides(**overrides).model_copy(
            update={k: v for k, v in overrides.items() if v is None})
        self.resources = SessionResources(
            settings=settings,
            recognizer=self.recognizer,
            dispatcher=self.dispatcher,
            metrics=self.metrics,
            frontend_factory=self._frontend,
            transcribe=self._transcribe,
        )
        self.session = Session(self.resources, self.events.append, session_id="s")
        self.task: asyncio.Task[None] | None = None

    def _frontend(self, rate: int, td: TurnDetectionSettings, mode: str) -> FakeFrontEnd:
        fe = FakeFrontEnd(rate)
        self.frontends.append(fe)
        return fe

    def _transcribe(self, audio: Any) -> str:
        self.asr_calls += 1
        if self.asr_fail:
            raise RuntimeError("secret internal detail")
        return self.transcript

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.session.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, pred: Callable[[], bool]) -> None:
        """Poll: the session's state changes in worker threads as well as on the loop."""
        async with asyncio.timeout(5.0):
            while not pred():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    async def metrics_count(self, n: int) -> None:
        await self.until(lambda: len(self.of(p.MetricsEvent)) >= n)

    def speak(self, voiced: int = 5, silent: int = 3) -> None:
        for _ in range(voiced):
            self.session.handle_audio(VOICED)
        for _ in range(silent):
            self.session.handle_audio(SILENT)


def json_text(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


async def test_text_utterance_event_order() -> None:
    async with Harness() as h:
        h.session.handle_text(json_text({"type": "text", "text": "turn on the kitchen light"}))
        await h.metrics_count(1)
    assert h.types() == ["transcript.final", "intent", "action", "action", "metrics"]
    assert [e.status for e in h.of(p.ActionEvent)] == ["published", "confirmed"]
    assert h.of(p.MetricsEvent)[0].outcome == "actions"
    assert h.metrics.actions_total.value("confirmed") == 1


async def test_speech_utterance_event_order_and_timings() -> None:
    async with Harness(speculative=False) as h:
        h.speak()
        await h.metrics_count(1)
    assert h.types() == [
        "speech.started",
        "speech.stopped",
        "transcript.final",
        "intent",
        "action",
        "action",
        "metrics",
    ]
    uids = {e.utterance_id for e in h.events}
    assert len(uids) == 1
    timings = h.of(p.MetricsEvent)[0].timings_ms
    for stage in ("endpoint_wait", "asr", "intent", "dispatch", "speech_end_to_action"):
        assert getattr(timings, stage) is not None, stage
    assert h.metrics.stage_seconds.count("asr") == 1
    assert h.metrics.speech_end_to_action.count() == 1


async def test_speculative_transcript_is_reused_and_partial_sent() -> None:
    async with Harness() as h:
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause: speculation starts
        await h.until(lambda: bool(h.of(p.TranscriptPartial)))
        await h.until(lambda: h.frontends[0].completed)  # complete command: early end armed
        h.session.handle_audio(SILENT)  # the fake ends the turn at once when complete
        await h.metrics_count(1)
    assert h.asr_calls == 1  # the final transcript is the speculative one
    assert h.of(p.TranscriptFinal)[0].text == "turn on the kitchen light"
    assert h.of(p.ActionEvent)[-1].status == "confirmed"


async def test_speech_resumed_makes_the_speculation_stale() -> None:
    async with Harness() as h:
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause -> speculation
        await h.until(lambda: bool(h.of(p.TranscriptPartial)))
        h.session.handle_audio(VOICED)  # resumed: stale
        h.frontends[0].completed = False
        h.speak(voiced=2, silent=3)
        await h.metrics_count(1)
    assert h.asr_calls >= 2  # the final transcription did not reuse the stale one
    assert h.of(p.MetricsEvent)[0].outcome == "actions"


async def test_latest_pause_supersedes_a_queued_speculation() -> None:
    """A new pause starts its own speculation at once; the older one, still queued behind
    other work, is dropped without running, and the turn ends on the newest transcript."""
    scheduler = AsrScheduler(1)
    gate, busy = threading.Event(), threading.Event()

    def other_session_work() -> None:
        busy.set()
        gate.wait(5)

    async with Harness() as h:
        h.resources.asr_executor = scheduler
        texts: list[str] = []

        def transcribe(audio: Any) -> str:
            h.asr_calls += 1
            texts.append(f"{len(audio)} frames")
            return "turn on the kitchen light"

        h.resources.transcribe = transcribe
        scheduler.submit(other_session_work)
        assert busy.wait(5)
        for _ in range(3):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause 1: queued behind the other session
        h.session.handle_audio(VOICED)  # resumed: pause 1 is stale
        h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause 2: its own speculation, queued too
        await h.until(lambda: h.metrics.speculations_total.value("started") == 2)
        await h.until(lambda: h.resources.asr_load.jobs == 1)  # the first was dropped
        gate.set()
        await h.until(lambda: h.frontends[0].completed)  # pause 2's transcript parsed
        h.session.handle_audio(SILENT)
        await h.metrics_count(1)
    scheduler.shutdown()
    assert h.asr_calls == 1  # pause 1 never ran; the final reused pause 2
    assert texts == ["7 frames"]  # 3 + 1 + 2 + 1: the audio up to the second pause
    assert h.metrics.speculations_total.value("started") == 2
    assert h.of(p.ActionEvent)[-1].status == "confirmed"


async def test_cheap_speculation_stands_only_when_it_parsed() -> None:
    """With ``speculation_beam_size`` the pause's transcription is a cheaper first look: a
    complete command from it ends the turn and is the final transcript; anything else is
    transcribed again with the final settings."""
    for spec_text, final_calls in (("turn on the kitchen light", 0), ("turn on the kitch", 1)):
        async with Harness(speculation_beam_size=1) as h:
            spec_calls: list[str] = []

            def cheap(audio: Any, text: str = spec_text, calls: list[str] = spec_calls) -> str:
                calls.append(text)
                return text

            h.resources.transcribe_speculative = cheap
            for _ in range(5):
                h.session.handle_audio(VOICED)
            h.session.handle_audio(SILENT)  # pause: cheap speculation
            await h.until(lambda: bool(h.of(p.TranscriptPartial)))
            h.session.handle_audio(SILENT)
            h.session.handle_audio(SILENT)  # silence ends the turn on the same audio
            await h.metrics_count(1)
        assert len(spec_calls) == 1
        assert h.asr_calls == final_calls, spec_text
        assert h.of(p.TranscriptFinal)[0].text == "turn on the kitchen light"
        assert h.of(p.ActionEvent)[-1].status == "confirmed"


async def test_cheap_look_that_does_not_parse_escalates_at_the_pause() -> None:
    """The final-settings transcription of the same audio starts at the pause (not after the
    silence), its complete command ends the turn early, and the final reuses it."""
    async with Harness() as h:
        h.resources.transcribe_speculative = lambda audio: "turn on the kitch"
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause: cheap look, then escalation
        await h.until(lambda: bool(h.frontends) and h.frontends[0].completed)  # escalation parsed
        assert h.asr_calls == 1 and not h.of(p.SpeechStopped)
        h.session.handle_audio(SILENT)
        await h.metrics_count(1)
    assert h.asr_calls == 1  # reused, not transcribed again
    assert h.metrics.speculations_total.value("escalated") == 1
    assert h.metrics.speculations_total.value("reused") == 1
    timings = h.of(p.MetricsEvent)[-1].timings_ms
    assert timings.speculation_asr is not None and timings.speculation_asr >= 0
    assert h.of(p.ActionEvent)[-1].status == "confirmed"


async def test_escalation_starts_at_once_when_the_asr_is_idle() -> None:
    """With no ASR job queued or running, a look that did not parse escalates to the final
    settings at once, not after ``speculation_escalate_ms`` of silence."""
    async with Harness(speculation_escalate_ms=5000) as h:
        h.resources.transcribe_speculative = lambda audio: "turn on the kitch"
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)  # pause: the look, then at once the escalation
        await h.until(lambda: bool(h.frontends) and h.frontends[0].completed)
        assert h.asr_calls == 1 and not h.of(p.SpeechStopped)
        h.session.handle_audio(SILENT)
        await h.metrics_count(1)
    assert h.asr_calls == 1  # the escalation stood as the final transcript
    assert h.metrics.speculations_total.value("escalated") == 1
    assert h.metrics.speculations_total.value("reused") == 1
    assert h.of(p.ActionEvent)[-1].status == "confirmed"


async def test_escalation_waits_while_the_asr_is_busy() -> None:
    """Another session's ASR job queued or running: the escalation waits for
    ``speculation_escalate_ms`` of silence, as most pauses inside a sentence are over by then."""
    async with Harness(speculation_escalate_ms=5000) as h:
        h.resources.transcribe_speculative = lambda audio: "turn on the kitch"
        h.resources.asr_load.jobs += 1  # someone else's transcription
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)
        await h.until(lambda: bool(h.of(p.TranscriptPartial)))
        await asyncio.sleep(0.1)
        assert h.asr_calls == 0
        assert h.metrics.speculations_total.value("escalated") == 0
        h.resources.asr_load.jobs -= 1


async def test_custom_order_cut_off_at_a_pause_does_not_end_the_turn() -> None:
    """An order that parses but stops mid-sentence ("a triple shot cappuccino,") may go on
    ("with sugar and milk"): it waits for the silence; the same words with a full stop end it."""
    for text, early in (("a triple shot cappuccino,", False), ("a triple shot cappuccino.", True)):
        async with Harness(speculation_escalate_ms=None) as h:
            h.transcript = text
            h.resources.transcribe_speculative = lambda audio, t=text: t
            for _ in range(5):
                h.session.handle_audio(VOICED)
            h.session.handle_audio(SILENT)
            await h.until(lambda: bool(h.of(p.TranscriptPartial)))
            await asyncio.sleep(0.05)
            assert h.frontends[0].completed is early, text
            h.session.handle_audio(SILENT)
            h.session.handle_audio(SILENT)
            await h.metrics_count(1)
        assert h.of(p.IntentEvent)[0].intent.name == "order_drink"


async def test_escalation_can_be_turned_off() -> None:
    async with Harness(speculation_escalate_ms=None) as h:
        h.resources.transcribe_speculative = lambda audio: "turn on the kitch"
        for _ in range(5):
            h.session.handle_audio(VOICED)
        h.session.handle_audio(SILENT)
        await h.until(lambda: bool(h.of(p.TranscriptPartial)))
        await asyncio.sleep(0.05)
        assert h.asr_calls == 0
        h.session.handle_audio(SILENT)
        h.session.handle_audio(SILENT)  # silence ends the turn
        await h.metrics_count(1)
    assert h.asr_calls == 1  # the final transcription, after the silence
    assert h.metrics.speculations_total.value("escalated") == 0


async def test_several_utterances_and_context() -> None:
    async with Harness(speculative=False) as h:
        h.speak()
        await h.metrics_count(1)
        h.speak()
        await h.metrics_count(2)
    assert len({m.utterance_id for m in h.of(p.MetricsEvent)}) == 2
    # The second recognition got the first intent as context.
    assert h.recognizer.calls[0][1] is None
    assert h.recognizer.calls[1][1] is not None


async def test_full_duplex_new_utterance_while_dispatching() -> None:
    async with Harness(speculative=False) as h:
        h.dispatcher.gate = asyncio.Event()
        h.speak()
        await h.until(lambda: len(h.of(p.ActionEvent)) == 1)  # first one is dispatching
        h.speak()
        await h.until(lambda: len(h.of(p.ActionEvent)) == 2)  # second one reached dispatch too
        h.dispatcher.gate.set()
        await h.metrics_count(2)
    assert [m.outcome for m in h.of(p.MetricsEvent)] == ["actions", "actions"]


async def test_asr_failure_is_reported_and_the_session_goes_on() -> None:
    async with Harness(speculative=False) as h:
        h.asr_fail = True
        h.speak()
        await h.metrics_count(1)
        h.asr_fail = False
        h.speak()
        await h.metrics_count(2)
    errors = h.of(p.ErrorEvent)
    assert [e.code for e in errors] == [p.ErrorCode.ASR_FAILED]
    assert errors[0].utterance_id == h.of(p.MetricsEvent)[0].utterance_id
    assert "secret" not in errors[0].message
    assert [m.outcome for m in h.of(p.MetricsEvent)] == ["error", "actions"]


async def test_recognizer_failure_is_reported_and_the_session_goes_on() -> None:
    async with Harness() as h:
        h.recognizer.fail = True
        h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.metrics_count(1)
        h.recognizer.fail = False
        h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.metrics_count(2)
    assert [e.code for e in h.of(p.ErrorEvent)] == [p.ErrorCode.RECOGNIZER_FAILED]
    assert "secret" not in h.of(p.ErrorEvent)[0].message


async def test_dispatcher_failure_is_reported() -> None:
    async with Harness() as h:
        h.dispatcher.fail = True
        h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.metrics_count(1)
    assert [e.code for e in h.of(p.ErrorEvent)] == [p.ErrorCode.DISPATCH_FAILED]


async def test_no_intent_and_empty_transcript() -> None:
    async with Harness(speculative=False) as h:
        h.session.handle_text(json_text({"type": "text", "text": "hello there"}))
        await h.metrics_count(1)
        h.transcript = "  "
        h.speak()
        await h.metrics_count(2)
    assert [m.outcome for m in h.of(p.MetricsEvent)] == ["no_intent", "no_speech"]
    assert h.of(p.IntentEvent)[0].intent is None


async def test_audio_queue_drops_oldest_when_full() -> None:
    async with Harness(**{"limits.audio_queue_frames": 4}) as h:
        fe_block = threading.Event()
        h.session.handle_audio(SILENT)  # creates the front end in the loop
        await h.until(lambda: bool(h.frontends))
        h.frontends[0].block = fe_block
        # 100 ms in one frame: processed in the executor, where it now blocks.
        h.session.handle_audio(SILENT * 5)
        await asyncio.sleep(0.05)
        for _ in range(10):
            h.session.handle_audio(SILENT)
        assert h.metrics.audio_dropped_total.value() == 6
        errors = h.of(p.ErrorEvent)
        assert [e.code for e in errors] == [p.ErrorCode.AUDIO_OVERFLOW]  # throttled: once
        fe_block.set()
        await h.until(lambda: h.session._queued_audio == 0)


async def test_cancel_while_listening_and_while_transcribing() -> None:
    async with Harness(speculative=False) as h:
        for _ in range(3):
            h.session.handle_audio(VOICED)
        await h.until(lambda: bool(h.of(p.SpeechStarted)))
        h.session.handle_text(json_text({"type": "cancel"}))
        await h.metrics_count(1)
        assert h.of(p.MetricsEvent)[0].outcome == "cancelled"
        await h.until(lambda: h.frontends[0].cleared == 1)
        h.speak()
        await h.metrics_count(2)
    assert h.of(p.MetricsEvent)[1].outcome == "actions"


async def test_cancel_does_not_stop_a_dispatch_in_progress() -> None:
    async with Harness() as h:
        h.dispatcher.gate = asyncio.Event()
        h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.until(lambda: len(h.of(p.ActionEvent)) == 1)
        h.session.handle_text(json_text({"type": "cancel"}))
        await asyncio.sleep(0.05)
        h.dispatcher.gate.set()
        await h.metrics_count(1)
    assert h.of(p.ActionEvent)[-1].status == "confirmed"
    assert h.of(p.MetricsEvent)[0].outcome == "actions"


async def test_busy_when_too_many_utterances_in_flight() -> None:
    async with Harness(**{"limits.max_utterances_in_flight": 2}) as h:
        h.dispatcher.gate = asyncio.Event()
        for _ in range(3):
            h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.until(lambda: bool(h.of(p.ErrorEvent)))
        h.dispatcher.gate.set()
        await h.metrics_count(3)
    assert [e.code for e in h.of(p.ErrorEvent)] == [p.ErrorCode.BUSY]
    assert sorted(m.outcome for m in h.of(p.MetricsEvent)) == ["actions", "actions", "error"]


async def test_session_update_rebuilds_the_front_end_at_the_new_rate() -> None:
    async with Harness() as h:
        h.session.handle_audio(SILENT)
        await h.until(lambda: len(h.frontends) == 1)
        h.session.handle_text(json_text({"type": "session.update", "sample_rate": 8000}))
        h.session.handle_audio(SILENT)
        await h.until(lambda: len(h.frontends) == 2)
    assert [f.rate for f in h.frontends] == [16000, 8000]
    assert isinstance(h.events[0], p.SessionUpdated)


@pytest.mark.parametrize(
    ("frame", "code"),
    [(b"\x00", p.ErrorCode.ODD_LENGTH_AUDIO), (b"\x00" * 200_000, p.ErrorCode.FRAME_TOO_LARGE)],
)
async def test_bad_audio_frames(frame: bytes, code: p.ErrorCode) -> None:
    async with Harness() as h:
        h.session.handle_audio(frame)
    assert [e.code for e in h.of(p.ErrorEvent)] == [code]
    assert h.metrics.errors_total.value(code.value) == 1


async def test_image_is_kept_for_the_next_utterance_only() -> None:
    async with Harness() as h:
        h.session.handle_text(json_text({"type": "image", "data": "aGVsbG8=", "mime": "image/png"}))
        h.session.handle_text(json_text({"type": "text", "text": "turn on the light"}))
        await h.metrics_count(1)
    assert h.of(p.ErrorEvent) == []


async def test_sensitive_action_waits_for_confirm() -> None:
    async with Harness() as h:
        h.session.handle_text(json_text({"type": "text", "text": "unlock the front door"}))
        await h.metrics_count(1)
        assert h.of(p.ActionEvent)[-1].status == "rejected"
        h.session.handle_text(json_text({"type": "confirm"}))
        await h.metrics_count(2)
        h.session.handle_text(json_text({"type": "confirm"}))  # nothing pending any more
        await h.metrics_count(3)
    actions = h.of(p.ActionEvent)
    assert [(a.intent, a.status) for a in actions if a.final] == [
        ("unlock", "rejected"),
        ("unlock", "confirmed"),
        ("confirm", "rejected"),
    ]
    assert [i.name for i in h.dispatcher.dispatched] == ["unlock", "unlock", "confirm"]


async def test_confirm_refused_withdraws_the_pending_action() -> None:
    async with Harness() as h:
        h.session.handle_text(json_text({"type": "text", "text": "unlock the front door"}))
        await h.metrics_count(1)
        h.session.handle_text(json_text({"type": "confirm", "accept": False}))
        await h.metrics_count(2)
        h.session.handle_text(json_text({"type": "confirm"}))
        await h.metrics_count(3)
    assert [i.name for i in h.dispatcher.dispatched] == ["unlock", "confirm"]
    assert h.of(p.ActionEvent)[1].detail.startswith("cancelled")


class FakeTimeout(Exception):
    code = "model_timeout"
    public_message = "the language model did not answer in time"


class FakeTiered:
    def __init__(self) -> None:
        self.images: list[list[Any]] = []
        self.fail = False

    def recognize(
        self,
        text: str,
        *,
        language: str | None = None,
        context: Intent | None = None,
        images: Sequence[Any] = (),
        cancel: threading.Event | None = None,
    ) -> Recognition:
        self.images.append(list(images))
        if self.fail:
            raise FakeTimeout("http://model-server:8000 timed out")
        return Recognition(intent=light_on(text), reason="model")

    def image(self, data: str) -> Any:
        return ("decoded", data)


async def test_model_tier_gets_the_image_and_its_errors_keep_their_codes() -> None:
    h = Harness()
    tiered = FakeTiered()
    h.resources.tiered = tiered
    async with h:
        h.session.handle_text(json_text({"type": "image", "data": "aGVsbG8=", "mime": "image/png"}))
        h.session.handle_text(json_text({"type": "text", "text": "what is this"}))
        await h.metrics_count(1)
        tiered.fail = True
        h.session.handle_text(json_text({"type": "text", "text": "and this"}))
        await h.metrics_count(2)
    assert tiered.images == [[("decoded", "aGVsbG8=")], []]
    errors = h.of(p.ErrorEvent)
    assert [(e.code, e.message) for e in errors] == [
        (p.ErrorCode.MODEL_TIMEOUT, "the language model did not answer in time")
    ]


async def test_audio_queued_before_a_rate_change_keeps_its_rate() -> None:
    async with Harness() as h:
        # All three arrive before the audio loop runs: the first frame is still 16 kHz audio.
        h.session.handle_audio(SILENT)
        h.session.handle_text(json_text({"type": "session.update", "sample_rate": 48000}))
        h.session.handle_audio(SILENT * 3)
        await h.until(lambda: len(h.frontends) == 2)
        h.session.handle_text(json_text({"type": "session.update", "language": "en"}))
        h.session.handle_audio(SILENT * 3)
        await asyncio.sleep(0.05)
    assert [f.rate for f in h.frontends] == [16000, 48000]  # no rebuild without a new rate


async def test_spoken_yes_answers_a_pending_confirmation_only() -> None:
    async with Harness() as h:
        h.session.handle_text(json_text({"type": "text", "text": "yes"}))  # nothing pending
        await h.metrics_count(1)
        h.session.handle_text(json_text({"type": "text", "text": "unlock the front door"}))
        await h.metrics_count(2)
        h.session.handle_text(json_text({"type": "text", "text": "Yes."}))
        await h.metrics_count(3)
    assert [m.outcome for m in h.of(p.MetricsEvent)] == ["no_intent", "actions", "actions"]
    assert [i.name for i in h.dispatcher.dispatched] == ["unlock", "unlock"]
    assert h.of(p.ActionEvent)[-1].status == "confirmed"
    assert h.of(p.IntentEvent)[-1].intent.name == "confirm"
