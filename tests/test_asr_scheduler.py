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


def test_queued_jobs_of_a_batched_function_run_together_most_urgent_first() -> None:
    s = AsrScheduler(1, max_batch=3)
    batches: list[list[str]] = []

    def one(x: str) -> str:
        batches.append([x])
        return x.upper()

    def many(xs: list[str]) -> list[str]:
        batches.append(list(xs))
        return [x.upper() for x in xs]

    s.batch(one, many)
    gate = _block(s)
    spec = s.submit_at(SPECULATIVE, one, "spec")
    other = s.submit(lambda: "not batchable")
    finals = [s.submit(one, f"final-{i}") for i in range(3)]
    dropped = s.submit(one, "cancelled")
    assert dropped.cancel()
    gate.set()
    assert [f.result(10) for f in finals] == ["FINAL-0", "FINAL-1", "FINAL-2"]
    assert spec.result(10) == "SPEC"
    assert other.result(10) == "not batchable"
    # The three finals in one call; the speculative job after the unbatchable final.
    assert batches == [["final-0", "final-1", "final-2"], ["spec"]]
    s.shutdown()


def test_a_final_is_not_batched_with_speculative_jobs_of_the_same_function() -> None:
    """An escalated look (speculative, the final settings' function) queued beside another
    session's final: the final runs alone rather than wait for the look's decoding."""
    s = AsrScheduler(1, max_batch=4)
    batches: list[list[str]] = []

    def one(x: str) -> str:
        batches.append([x])
        return x

    def many(xs: list[str]) -> list[str]:
        batches.append(list(xs))
        return list(xs)

    s.batch(one, many)
    gate = _block(s)
    looks = [s.submit_at(SPECULATIVE, one, f"look-{i}") for i in range(2)]
    final = s.submit(one, "final")
    gate.set()
    assert final.result(10) == "final" and [f.result(10) for f in looks] == ["look-0", "look-1"]
    assert batches == [["final"], ["look-0", "look-1"]]
    s.shutdown()


def test_a_failed_batch_fails_each_of_its_jobs() -> None:
    s = AsrScheduler(1, max_batch=4)

    def one(x: int) -> int:
        return x

    def many(xs: list[int]) -> list[int]:
        return xs[:1]  # wrong length

    s.batch(one, many)
    gate = _block(s)
    jobs = [s.submit(one, i) for i in range(2)]
    gate.set()
    for j in jobs:
        with pytest.raises(RuntimeError, match="batch of 2 gave 1"):
            j.result(10)
    s.shutdown()


def test_workers_yield_the_cores_to_real_time_work() -> None:
    """With ``nice``, the worker threads (and only they) run at a lower priority, so that the
    event loop and the VAD keep up with real time under overload."""
    import os

    base = os.getpriority(os.PRIO_PROCESS, 0)
    scheduler = AsrScheduler(1, nice=5)
    try:
        own = scheduler.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert own.result(5) == min(19, base + 5)
    finally:
        scheduler.shutdown()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # caller unchanged
