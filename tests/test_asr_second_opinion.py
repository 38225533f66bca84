"""Second opinions (the full-window retry of a cut-off text, the acoustic repair of a guessed
reading) on a turn that has a reading already: they queue behind every first look and are
dropped unrun when no worker took them by ``second_opinion_deadline_ms``. A real
``AsrScheduler`` whose one worker is held by a job that waits on an event: what runs, and in
what order, does not depend on timing (the deadline only decides whether a job that *cannot*
start is dropped)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

from assistant.asr_scheduler import FINAL, SECOND_OPINION, SPECULATIVE, AsrScheduler
from assistant.config import AssistantSettings
from assistant.turn.transcribing import Transcribing


def _stage(deadline_ms: int | None) -> Any:
    """Just what :meth:`Transcribing.within_deadline` reads (one layer, with a fake)."""
    return SimpleNamespace(
        _res=SimpleNamespace(settings=AssistantSettings(second_opinion_deadline_ms=deadline_ms))
    )


def test_priorities_final_then_first_looks_then_second_opinions() -> None:
    sched = AsrScheduler(1)
    release = threading.Event()
    ran: list[str] = []
    sched.submit_at(FINAL, release.wait)
    sched.submit_at(SECOND_OPINION, ran.append, "second opinion")
    sched.submit_at(SPECULATIVE, ran.append, "first look")
    sched.submit_at(FINAL, ran.append, "final")
    release.set()
    sched.shutdown(wait=True)
    assert ran == ["final", "first look", "second opinion"]


async def test_a_second_opinion_that_cannot_start_is_dropped_unrun() -> None:
    sched = AsrScheduler(1)
    release = threading.Event()
    ran: list[str] = []
    sched.submit_at(FINAL, release.wait)  # every worker busy
    job = sched.submit_at(SECOND_OPINION, ran.append, "second opinion")
    try:
        got = await Transcribing.within_deadline(_stage(20), asyncio.wrap_future(job), job)
    finally:
        release.set()
        sched.shutdown(wait=True)
    assert got is None
    assert job.cancelled() and ran == []


async def test_a_second_opinion_with_a_free_worker_is_waited_for() -> None:
    sched = AsrScheduler(1)
    job = sched.submit_at(SECOND_OPINION, lambda: "full window reading")
    try:
        got = await Transcribing.within_deadline(_stage(5_000), asyncio.wrap_future(job), job)
    finally:
        sched.shutdown(wait=True)
    assert got == "full window reading"


async def test_no_deadline_waits_however_long() -> None:
    sched = AsrScheduler(1)
    release = threading.Event()
    sched.submit_at(FINAL, release.wait)
    job = sched.submit_at(SECOND_OPINION, lambda: "late but wanted")
    task = asyncio.ensure_future(
        Transcribing.within_deadline(_stage(None), asyncio.wrap_future(job), job)
    )
    await asyncio.sleep(0.05)
    assert not task.done()  # still queued, not dropped
    release.set()
    try:
        assert await task == "late but wanted"
    finally:
        sched.shutdown(wait=True)


def test_the_default_deadline_is_set() -> None:
    assert AssistantSettings().second_opinion_deadline_ms == 250
