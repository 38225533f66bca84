"""Session stage test: a misheard transcript (n-best list with scores, as Whisper gives it)
goes through the real recognizer and hypothesis decoder and becomes the right confirmed
action. Fake front end, transcriber and dispatcher; no sockets, no models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from assistant import protocol as p
from assistant.audio.asr import Alternative, Transcript
from assistant.config import AssistantSettings, TurnDetectionSettings
from assistant.metrics import Metrics
from assistant.session import Session, SessionResources
from devices.registry import load_demo_config
from intents.decode import FULL_DECODE, HypothesisDecoder
from intents.recognizer import Recognizer
from tests.test_server_session import SILENT, VOICED, FakeDispatcher, FakeFrontEnd

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / (
    "picovoice_coffee.yaml")


def _transcript(*texts: str) -> Transcript:
    alts = tuple(Alternative(t, -0.1 - 0.1 * i) for i, t in enumerate(texts))
    return Transcript(text=texts[0], language="en", avg_logprob=alts[0].avg_logprob,
                      no_speech_prob=0.02, compression_ratio=1.0, duration_s=2.0,
                      elapsed_s=0.1, window_s=5.0, alternatives=alts)


async def _until_metrics(events: list[Any]) -> None:
    async with asyncio.timeout(10.0):
        while not any(isinstance(e, p.MetricsEvent) for e in events):  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def _close(session: Session, task: asyncio.Task[None]) -> None:
    await session.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _run(
    decode: bool,
    heard: Transcript,
    full: Transcript | None = None,
    metrics: Metrics | None = None,
    repair: Any = None,
    *,
    cheap: Any = None,
    settings: AssistantSettings | None = None,
    asr_jobs_elsewhere: int = 0,
    speak: Callable[[Session], Awaitable[None]] | None = None,
) -> list[Any]:
    """One turn through a session: ``speak`` feeds it (default: 5 voiced frames and the
    silence that ends the turn); ``full`` is a transcript or a transcribing callable."""
    events: list[Any] = []
    recognizer = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    dispatcher = FakeDispatcher()

    def frontend(rate: int, td: TurnDetectionSettings, mode: str) -> FakeFrontEnd:
        return FakeFrontEnd(rate)

    resources = SessionResources(
        settings=settings or AssistantSettings(audio=True, speculative=False),
        recognizer=recognizer,
        dispatcher=dispatcher,
        metrics=metrics or Metrics(),
        frontend_factory=frontend,
        transcribe=lambda audio: heard,
        transcribe_full=None if full is None else (
            full if callable(full) else (lambda audio: full)),
        transcribe_speculative=cheap,
        acoustic_repair=repair,
        decoder=HypothesisDecoder(recognizer) if decode else None,
    )
    resources.asr_load.jobs = asr_jobs_elsewhere  # other sessions' ASR work in flight
    session = Session(resources, events.append, session_id="s")
    task = asyncio.create_task(session.run())
    try:
        if speak is not None:
            await speak(session)
        else:
            for _ in range(5):
                session.handle_audio(VOICED)
            for _ in range(3):
                session.handle_audio(SILENT)
        await _until_metrics(events)
    finally:
        await _close(session, task)
    return events


async def test_misheard_order_becomes_the_right_confirmed_action() -> None:
    heard = _transcript("Give me a double shot, light rose cappuccino.",
                        "Give me a double shot light rose cappuccino")
    events = await _run(True, heard)
    final = [e for e in events if isinstance(e, p.TranscriptFinal)]
    assert final[0].text == "Give me a double shot, light rose cappuccino."  # as heard
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "order_drink"
    assert intent.intent.slots.custom == {
        "number_of_shots": "double shot", "roast": "light roast", "coffee_drink": "cappuccino"}
    assert "aligned" in intent.reason
    assert intent.confidence is not None and 0.5 < intent.confidence < 0.98
    actions = [e for e in events if isinstance(e, p.ActionEvent)]
    assert [a.status for a in actions] == ["published", "confirmed"]


async def test_plain_decode_leaves_the_misheard_order_unrecognized() -> None:
    heard = _transcript("Give me a double shot, light rose cappuccino.")
    events = await _run(False, heard)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is None
    assert not [e for e in events if isinstance(e, p.ActionEvent)]


async def test_unparsed_transcript_is_retried_on_the_full_window_and_pooled() -> None:
    # The trimmed window stopped early; the 30 s window heard the whole order.
    trimmed = _transcript("I would like a", "I would like")
    full = _transcript("I would like a triple shot cappuccino with sugar and milk.")
    metrics = Metrics()
    events = await _run(True, trimmed, full, metrics)
    final = next(e for e in events if isinstance(e, p.TranscriptFinal))
    assert final.text == trimmed.text  # the transcript as first heard
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "order_drink"
    assert intent.intent.slots.custom["coffee_drink"] == "cappuccino"
    assert metrics.asr_retries_total.value() == 1
    assert [a.status for a in events if isinstance(a, p.ActionEvent)] == [
        "published", "confirmed"]


async def test_a_guess_from_a_cut_off_text_asks_the_full_window() -> None:
    # "Can I get a triple shot," alone would be aligned to "... triple shot americano".
    trimmed = _transcript("Can I get a triple shot,")
    full = _transcript("Can I get a triple shot cappuccino with sugar and milk?")
    metrics = Metrics()
    events = await _run(True, trimmed, full, metrics)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None
    assert intent.intent.slots.custom["coffee_drink"] == "cappuccino"
    assert metrics.asr_retries_total.value() == 1


class _Repair:
    """Stands in for AcousticRepair: the audio says "iced mocha", whatever the text guessed."""

    def __init__(self, rescue: bool = False) -> None:
        self.calls: list[tuple[int, list[str], str]] = []
        self.rescue = rescue

    def engages(self, recognition: Any) -> bool:
        intent = recognition.intent
        if intent is None:
            return self.rescue
        return recognition.guessed and intent.source == "custom"

    def repair(self, audio: Any, hypotheses: Any, recognition: Any, *,
               language: str | None = None) -> Any:
        from types import SimpleNamespace

        self.calls.append((len(audio), [h.text for h in hypotheses], recognition.reason))
        intent = recognition.intent
        if intent is None:  # a rescue: what the grammar decoder found in the audio
            found = Recognizer(load_demo_config(), custom_intent_files=[COFFEE]).recognize(
                "can I get an iced mocha")
            return SimpleNamespace(recognition=found.model_copy(update={"guessed": True}))
        slots = intent.slots.model_copy(update={"custom": {"coffee_drink": "iced mocha"}})
        fixed = recognition.model_copy(update={"intent": intent.model_copy(
            update={"slots": slots})})
        return SimpleNamespace(recognition=fixed)


async def test_guessed_custom_reading_goes_through_acoustic_repair() -> None:
    repair = _Repair()
    events = await _run(True, _transcript("Can I get an honest mocha"), repair=repair)
    assert len(repair.calls) == 1
    n_audio, hyps, _reason = repair.calls[0]
    assert n_audio > 0 and hyps == ["Can I get an honest mocha"]
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.slots.custom == {
        "coffee_drink": "iced mocha"}


async def _paused_then_stopped(repair: Any, heard: Transcript, *, resume: bool,
                               full: Any = None, metrics: Metrics | None = None) -> list[Any]:
    """A turn that pauses (the look at the pause reads ``heard`` as a guess, or ``full``
    retries it), waits there until the repair or the retry has run, and ends, after speaking
    again when ``resume``."""

    async def speak(session: Session) -> None:
        for _ in range(5):
            session.handle_audio(VOICED)
        session.handle_audio(SILENT)  # the pause: a look, its reading, the repair ahead
        async with asyncio.timeout(10.0):
            while not (repair.calls or getattr(full, "calls", 0)):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        if resume:
            session.handle_audio(VOICED)
            session.handle_audio(SILENT)
        for _ in range(3):
            session.handle_audio(SILENT)

    settings = AssistantSettings(audio=True, speculative=True, speculation_beam_size=None)
    return await _run(True, heard, full, metrics, repair, settings=settings, speak=speak)


async def test_the_repair_runs_during_the_silence_and_the_turn_takes_it() -> None:
    heard = _transcript("Can I get an honest mocha")
    repair = _Repair()
    events = await _paused_then_stopped(repair, heard, resume=False)
    # One check, started at the pause; the final pass took it instead of checking again.
    assert len(repair.calls) == 1
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.slots.custom == {
        "coffee_drink": "iced mocha"}
    # Speech that resumes after the pause makes that check stale: the turn checks anew.
    again = _Repair()
    events = await _paused_then_stopped(again, heard, resume=True)
    assert len(again.calls) == 2
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.slots.custom == {
        "coffee_drink": "iced mocha"}


class _Full:
    """A full-window transcription that hears the rest of a cut-off order."""

    def __init__(self, heard: Transcript) -> None:
        self.heard = heard
        self.calls = 0

    def __call__(self, audio: Any) -> Transcript:
        self.calls += 1
        return self.heard


async def test_the_retry_of_a_cut_off_order_runs_during_the_silence() -> None:
    order = _transcript("Can I get a triple shot, cappuccino,")
    full = _Full(_transcript("Can I get a triple shot, cappuccino, with sugar and milk."))
    metrics = Metrics()
    events = await _paused_then_stopped(_Repair(), order, resume=False, full=full,
                                        metrics=metrics)
    assert full.calls == 1 and metrics.asr_retries_total.value() == 1
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and len(intent.intent.slots.custom) > 2  # sugar and milk
    # Resumed speech: that retry is stale, the turn's own final pass retries.
    again = _Full(full.heard)
    await _paused_then_stopped(_Repair(), order, resume=True, full=again)
    assert again.calls == 2


async def test_nothing_decoded_goes_to_a_rescuing_repair_only() -> None:
    garbled = _transcript("Can I get a nice to buy shop")
    plain = _Repair()
    events = await _run(True, garbled, garbled, repair=plain)
    assert plain.calls == []
    assert next(e for e in events if isinstance(e, p.IntentEvent)).intent is None
    rescuing = _Repair(rescue=True)
    events = await _run(True, garbled, garbled, repair=rescuing)
    assert len(rescuing.calls) == 1
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.slots.custom == {
        "coffee_drink": "iced mocha"}
    actions = [e for e in events if isinstance(e, p.ActionEvent)]
    assert [a.status for a in actions] == ["published", "confirmed"]


async def test_exact_readings_skip_acoustic_repair() -> None:
    repair = _Repair()
    await _run(True, _transcript("Can I get an iced mocha"), repair=repair)
    await _run(True, _transcript("turn on the kitchen light"), repair=repair)
    assert repair.calls == []


async def test_cut_off_text_retries_for_an_order_but_not_a_home_command() -> None:
    metrics = Metrics()
    order = _transcript("Can I get a triple shot, cappuccino,")
    whole = _transcript("Can I get a triple shot, cappuccino, with sugar and milk.")
    events = await _run(True, order, whole, metrics)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert metrics.asr_retries_total.value() == 1
    assert intent.intent is not None and len(intent.intent.slots.custom) > 2  # sugar and milk
    home = Metrics()
    events = await _run(True, _transcript("turn off the living room light,"),
                        _transcript("turn on the living room light"), home)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert home.asr_retries_total.value() == 0
    assert intent.intent is not None and intent.intent.name == "light_off"


async def test_overloaded_asr_sheds_the_second_opinions() -> None:
    """With the ASR backlog at ``asr_shed_jobs``, a final utterance takes the cheap pass and no
    full-window retry: under overload, a late answer is worse than a plainer one."""
    metrics = Metrics()
    cheap_calls: list[int] = []

    def cheap(audio: Any) -> Transcript:
        cheap_calls.append(len(audio))
        return _transcript("what a lovely day")

    settings = AssistantSettings(audio=True, speculative=False, asr_shed_jobs=1)
    repair = _Repair(rescue=True)
    events = await _run(True, _transcript("turn on the kitchen light"),
                        _transcript("turn on the kitchen light"), metrics, repair,
                        cheap=cheap, settings=settings, asr_jobs_elsewhere=1)
    assert len(cheap_calls) == 1  # the cheap pass, not the full one
    assert metrics.asr_retries_total.value() == 0  # no second opinion
    assert repair.calls == []  # no acoustic repair or rescue either
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is None


async def test_no_retry_when_the_first_pass_decodes() -> None:
    heard = _transcript("turn on the kitchen light")
    metrics = Metrics()
    events = await _run(True, heard, _transcript("turn off the kitchen light"), metrics)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "light_on"
    assert metrics.asr_retries_total.value() == 0


async def test_retry_that_parses_nothing_still_ends_without_action() -> None:
    metrics = Metrics()
    events = await _run(True, _transcript("what a lovely day"), _transcript("what a lovely day"),
                        metrics)
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is None
    assert metrics.asr_retries_total.value() == 1
    assert not [e for e in events if isinstance(e, p.ActionEvent)]


def test_asr_settings_for_the_decode() -> None:
    from assistant.config import AsrConfig

    assert AsrConfig().decode == "grammar"
    assert AsrConfig().overrides() == {}  # decode settings never reach AsrSettings
    assert AsrConfig(grammar_decode=False, rescue_nats=None).overrides() == {}
    assert AsrConfig(beam_size=5).overrides() == {"beam_size": 5, "n_best": 5}
    assert AsrConfig(beam_size=5, n_best=3).overrides() == {"beam_size": 5, "n_best": 3}


def test_hearth_builds_the_decoder_only_for_grammar_decode() -> None:
    from assistant.app import Hearth

    config = load_demo_config()
    on = Hearth(config, AssistantSettings(audio=False))
    on._load_recognizer()
    assert on.decoder is not None and on.decoder.options == FULL_DECODE
    off = Hearth(config, AssistantSettings(audio=False).with_overrides(**{"asr.decode": "plain"}))
    off._load_recognizer()
    assert off.decoder is None


async def _speculate(text: str, *, expect_armed: bool) -> tuple[bool, list[Any]]:
    """Speak, pause once (speculation on ``text``), then finish the turn with silence.
    Returns whether the speculation armed the early end of turn, and the events."""
    events: list[Any] = []
    recognizer = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    recognizer.recognize("turn on the light")  # grammar compiled before the clock matters
    frontends: list[FakeFrontEnd] = []

    def frontend(rate: int, td: TurnDetectionSettings, mode: str) -> FakeFrontEnd:
        frontends.append(FakeFrontEnd(rate))
        return frontends[-1]

    resources = SessionResources(
        settings=AssistantSettings(audio=True, speculative=True),
        recognizer=recognizer,
        dispatcher=FakeDispatcher(),
        metrics=Metrics(),
        frontend_factory=frontend,
        transcribe=lambda audio: _transcript(text),
        decoder=HypothesisDecoder(recognizer),
    )
    session = Session(resources, events.append, session_id="s")
    task = asyncio.create_task(session.run())
    try:
        for _ in range(5):
            session.handle_audio(VOICED)
        session.handle_audio(SILENT)  # pause: speculation starts
        async with asyncio.timeout(10.0):
            while not any(isinstance(e, p.TranscriptPartial) for e in events):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            # The speculative decode runs in a worker thread: wait for the early end when
            # it is expected, else give the decode ample time to (wrongly) arm it.
            for _ in range(100 if expect_armed else 10):
                if frontends[0].completed:
                    break
                await asyncio.sleep(0.05)
        armed = frontends[0].completed
        for _ in range(2):
            session.handle_audio(SILENT)
        await _until_metrics(events)
    finally:
        await _close(session, task)
    return armed, events


async def test_guessed_reading_at_a_pause_never_ends_the_turn_early() -> None:
    # "give me a double shot" aligns to "... americano": the speaker may not be done.
    armed, _ = await _speculate("Give me a double shot", expect_armed=False)
    assert not armed
    armed, events = await _speculate("Give me a double shot cappuccino", expect_armed=True)
    assert armed  # parsed as heard: a complete command
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.slots.custom["coffee_drink"] == "cappuccino"
