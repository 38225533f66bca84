"""An overloaded server (``asr_shed_jobs``) understands with less, and says so: every pass it
skips is counted in ``hearth_asr_shed_total{skipped}`` and logged once. Session stage tests
with fakes (tests/test_server_decode.py's runner), no models; the load is the ASR backlog
that other sessions would leave, set directly, so nothing here depends on timing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from assistant import protocol as p
from assistant.audio.asr import Transcript
from assistant.config import AssistantSettings, TurnDetectionSettings
from assistant.metrics import SHED_KINDS, Metrics
from assistant.session import Session, SessionResources
from tests.test_server_decode import _Repair, _run, _transcript, _until_metrics
from tests.test_server_session import (
    SILENT,
    VOICED,
    FakeDispatcher,
    FakeFrontEnd,
    FakeRecognizer,
)


def overloaded() -> AssistantSettings:
    """Shedding at one ASR job: the one job "elsewhere" each test sets up."""
    return AssistantSettings(audio=True, speculative=False, asr_shed_jobs=1)


def shed(metrics: Metrics) -> dict[str, float]:
    return {k: metrics.asr_shed_total.value(k) for k in SHED_KINDS}


def overload_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "ASR overloaded" in r.getMessage() and r.levelno >= logging.INFO
    ]


def test_series_exist_at_zero() -> None:
    text = Metrics().render()
    for kind in SHED_KINDS:
        assert f'hearth_asr_shed_total{{skipped="{kind}"}} 0' in text
    with pytest.raises(ValueError, match="unknown shed kind"):
        Metrics().asr_shed("everything", session_id="s", utterance_id="u", jobs=1, limit=1)


async def test_overload_counts_and_logs_each_skipped_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.metrics")
    metrics = Metrics()
    cheap_calls: list[int] = []

    def cheap(audio: Any) -> Transcript:
        cheap_calls.append(len(audio))
        return _transcript("what a lovely day")  # decodes to nothing

    repair = _Repair(rescue=True)
    events = await _run(
        True, _transcript("turn on the kitchen light"), _transcript("turn on the kitchen light"),
        metrics, repair, cheap=cheap, settings=overloaded(),
        asr_jobs_elsewhere=1,
    )
    assert len(cheap_calls) == 1 and repair.calls == []
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is None  # it understood less ...
    # ... and said so: the final pass, the full-window retry and the repair, once each.
    assert shed(metrics) == {
        "final_pass": 1, "full_window_retry": 1, "acoustic_repair": 1, "escalation": 0,
    }
    lines = overload_lines(caplog)
    assert len(lines) == 3
    assert all("session s utterance " in line and "asr_shed_jobs 1" in line for line in lines)
    assert {line.rsplit(": ", 1)[1] for line in lines} == {
        "final pass skipped", "full window retry skipped", "acoustic repair skipped",
    }
    assert 'hearth_asr_shed_total{skipped="final_pass"} 1' in metrics.render()


async def test_overload_counts_only_passes_that_would_have_run() -> None:
    """A cheap transcript that decodes needs no retry: only the final pass is counted."""
    metrics = Metrics()
    events = await _run(
        True, _transcript("turn off the kitchen light"), _transcript("turn off the kitchen light"),
        metrics, cheap=lambda audio: _transcript("turn on the kitchen light"),
        settings=overloaded(), asr_jobs_elsewhere=1,
    )
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "light_on"
    assert shed(metrics) == {
        "final_pass": 1, "full_window_retry": 0, "acoustic_repair": 0, "escalation": 0,
    }


async def test_idle_server_sheds_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="assistant.metrics")
    metrics = Metrics()
    cheap_calls: list[int] = []

    def cheap(audio: Any) -> Transcript:
        cheap_calls.append(len(audio))
        return _transcript("what a lovely day")

    events = await _run(
        True, _transcript("what a lovely day"), _transcript("turn on the kitchen light"),
        metrics, cheap=cheap, settings=overloaded(),
        asr_jobs_elsewhere=0,
    )
    assert cheap_calls == []  # the final pass ran with the final settings
    assert metrics.asr_retries_total.value() == 1  # and the retry ran
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "light_on"
    assert set(shed(metrics).values()) == {0}
    assert overload_lines(caplog) == []


async def test_overload_skips_the_escalation_and_says_so() -> None:
    """A cheap look that does not parse would escalate to the final settings; overloaded, it
    does not, and the skip is counted."""
    metrics = Metrics()
    recognizer = FakeRecognizer()
    events: list[Any] = []
    looks: list[int] = []

    def cheap(audio: Any) -> str:
        looks.append(len(audio))
        return "turn on the"  # does not parse: escalation wanted

    settings = AssistantSettings(audio=True).with_overrides(
        speculative=True, asr_shed_jobs=2, speculation_max_asr_jobs=None,
        speculation_escalate_ms=0,
    )

    def frontend(rate: int, td: TurnDetectionSettings, mode: str) -> FakeFrontEnd:
        return FakeFrontEnd(rate)

    resources = SessionResources(
        settings=settings, recognizer=recognizer, dispatcher=FakeDispatcher(), metrics=metrics,
        frontend_factory=frontend, transcribe=lambda audio: "turn on the kitchen light",
        transcribe_speculative=cheap,
    )
    resources.asr_load.jobs = 2  # other sessions' backlog, at the limit
    session = Session(resources, events.append, session_id="s")
    task = asyncio.create_task(session.run())
    try:
        for _ in range(5):
            session.handle_audio(VOICED)
        session.handle_audio(SILENT)  # the pause: the cheap look
        async with asyncio.timeout(10.0):
            while metrics.asr_shed_total.value("escalation") < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        resources.asr_load.jobs -= 2  # the backlog clears
        for _ in range(2):
            session.handle_audio(SILENT)
        await _until_metrics(events)
    finally:
        await session.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert metrics.asr_shed_total.value("escalation") == 1
    assert looks  # the cheap look ran
    assert metrics.asr_shed_total.value("final_pass") == 0  # the final ran unshed
    intent = next(e for e in events if isinstance(e, p.IntentEvent))
    assert intent.intent is not None and intent.intent.name == "light_on"
