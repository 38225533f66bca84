"""AsrScheduler: finals before speculation, cancelled jobs never run, promotion."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from assistant.asr_scheduler import FINAL, SPECULATIVE, AsrScheduler


@pytest.fixture
def scheduler() -> Iterator[AsrScheduler]:
    s = AsrScheduler(1)
    yield s
    s.shutdown(wait=True, cancel_futures=True)


def _block(s: AsrScheduler) -> threading.Event:
    """Occupy the single worker until the returned event is set."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(10)

    s.submit(hold)
    assert started.wait(10)
    return gate


def test_finals_run_before_speculative_jobs_fifo_within_priority(scheduler: AsrScheduler) -> None:
    gate = _block(scheduler)
    order: list[str] = []
    futures = [
        scheduler.submit_at(SPECULATIVE, order.append, "spec-1"),
        scheduler.submit_at(SPECULATIVE, order.append, "spec-2"),
        scheduler.submit_at(FINAL, order.append, "final-1"),
        scheduler.submit(order.append, "final-2"),
    ]
    assert scheduler.queued == 4
    gate.set()
    for f in futures:
        f.result(10)
    assert order == ["final-1", "final-2", "spec-1", "spec-2"]


def test_job_cancelled_while_queued_never_runs(scheduler: AsrScheduler) -> None:
    gate = _block(scheduler)
    ran: list[int] = []
    dropped = scheduler.submit_at(SPECULATIVE, ran.append, 1)
    kept = scheduler.submit_at(SPECULATIVE, ran.append, 2)
    assert dropped.cancel()
    gate.set()
    kept.result(10)
    assert ran == [2]
    assert dropped.cancelled()


def test_promote_moves_a_queued_speculative_job_ahead(scheduler: AsrScheduler) -> None:
    gate = _block(scheduler)
    order: list[str] = []
    spec = scheduler.submit_at(SPECULATIVE, order.append, "reused speculation")
    final = scheduler.submit_at(FINAL, order.append, "other session's final")
    other = scheduler.submit_at(SPECULATIVE, order.append, "other speculation")
    assert scheduler.promote(spec)
    assert not scheduler.promote(spec)  # already at FINAL
    gate.set()
    for f in (spec, final, other):
        f.result(10)
    # Promoted jobs keep their place in line among the finals (submission order).
    assert order == ["reused speculation", "other session's final", "other speculation"]
    assert not scheduler.promote(spec)  # done


def test_exceptions_reach_the_caller(scheduler: AsrScheduler) -> None:
    def boom() -> None:
        raise ValueError("model failed")

    with pytest.raises(ValueError, match="model failed"):
        scheduler.submit(boom).result(10)
    assert scheduler.submit(lambda: 7).result(10) == 7  # the worker survived


async def test_asyncio_cancel_drops_the_queued_job(scheduler: AsrScheduler) -> None:
    gate = _block(scheduler)
    ran: list[int] = []
    job = scheduler.submit_at(SPECULATIVE, ran.append, 1)
    wrapped = asyncio.wrap_future(job)
    wrapped.cancel()
    await asyncio.sleep(0)  # the cancellation reaches the executor's future
    assert job.cancelled()
    loop = asyncio.get_running_loop()
    later = loop.run_in_executor(scheduler, ran.append, 2)
    gate.set()
    await later
    assert ran == [2]


def test_shutdown_refuses_new_work_and_cancels_queued() -> None:
    s = AsrScheduler(1)
    gate = _block(s)
    queued = s.submit(lambda: 1)
    s.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        s.submit(lambda: 2)
    gate.set()
    s.shutdown(wait=True)
    with pytest.raises(ValueError):
        AsrScheduler(0)
