"""An executor for speech recognition that serves final transcriptions first.

Every session sends two kinds of work to the shared Whisper workers:

- **final** transcriptions, when a turn has ended: someone is waiting for the light;
- **speculative** transcriptions, started at each pause inside speech so that the transcript
  is ready the moment the turn ends (:mod:`assistant.session`). Most are useful, but some are
  overtaken: the speaker goes on after the pause, or pauses again.

A plain thread pool runs them first-come first-served, so with fifty live streams a final
transcription waits behind other sessions' speculation. :class:`AsrScheduler` is a
:class:`concurrent.futures.Executor` with a priority per job (lower runs first, FIFO within a
priority). A job whose future is cancelled before a worker takes it never runs, so a session
that supersedes its speculation (``future.cancel()``) frees the worker at once, and
:meth:`AsrScheduler.promote` moves a queued speculative job up when a turn ends on exactly its
audio and it becomes the final transcription.

``asyncio``'s ``loop.run_in_executor(scheduler, fn, *args)`` works as with any executor and
uses priority :data:`FINAL`; :meth:`AsrScheduler.submit_at` takes an explicit priority.

Batching across sessions (``max_batch`` > 1 and a ``batch_fn`` registered for a function with
:meth:`AsrScheduler.batch`): when a worker takes a job of that function, it also takes the next
queued jobs of the same function and priority (up to ``max_batch``) and runs them as one
``batch_fn(list of first arguments)`` call. Whisper encodes and decodes a batch for less than
the separate calls (docs/asr.md). A lone job still runs at once: nothing waits for company.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar

from assistant.priority import lower_thread_priority

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Priority of a transcription someone is waiting for.
FINAL: Final = 0
#: Priority of a transcription started at a pause, on the chance that the turn ends there.
SPECULATIVE: Final = 1
#: Priority of a second opinion on a turn that already has a reading to act on (the
#: full-window retry of a cut-off text, the acoustic repair of a guessed reading): it runs
#: after every first look, and the session drops it unrun past a deadline
#: (``second_opinion_deadline_ms``).
SECOND_OPINION: Final = 2


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    future: Future[Any] = field(compare=False)
    fn: Callable[[], Any] = field(compare=False)
    #: Still in the heap (a promoted job leaves a dead copy behind; see ``promote``).
    live: bool = field(default=True, compare=False)
    #: For batching: the function and its single argument (None: not batchable).
    key: Callable[..., Any] | None = field(default=None, compare=False)
    arg: Any = field(default=None, compare=False)


class AsrScheduler(Executor):
    """Priority thread pool: ``workers`` threads, lowest priority value first."""

    def __init__(
        self,
        workers: int = 1,
        *,
        max_batch: int = 1,
        thread_name_prefix: str = "hearth-asr",
        nice: int = 0,
    ) -> None:
        """``nice``: niceness added to the worker threads (``assistant.priority``)."""
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be at least 1")
        self.max_batch = max_batch
        self._batch_fns: dict[Callable[..., Any], Callable[[list[Any]], list[Any]]] = {}
        self._heap: list[_Job] = []
        self._by_future: dict[Future[Any], _Job] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._shutdown = False
        self._running = 0
        self._nice = nice
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # -- Executor API --------------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self.submit_at(FINAL, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for job in self._heap:
                    if job.live:
                        job.future.cancel()
                self._heap.clear()
                self._by_future.clear()
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()

    # -- priorities ----------------------------------------------------------------------

    def submit_at(
        self, priority: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Queue ``fn(*args, **kwargs)`` at ``priority`` (lower runs first)."""
        future: Future[T] = Future()
        job = _Job(priority, next(self._seq), future, lambda: fn(*args, **kwargs))
        if fn in self._batch_fns and len(args) == 1 and not kwargs:
            job.key, job.arg = fn, args[0]
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            heapq.heappush(self._heap, job)
            self._by_future[future] = job
            self._cond.notify()
        return future

    def batch(self, fn: Callable[[Any], Any], batch_fn: Callable[[list[Any]], list[Any]]) -> None:
        """Let jobs ``fn(x)`` queued together run as ``batch_fn([x1, x2, ...])`` (results in
        the same order). Register before submitting."""
        self._batch_fns[fn] = batch_fn

    def promote(self, future: Future[Any], priority: int = FINAL) -> bool:
        """Move a queued job to ``priority`` (if that is more urgent). False when the job has
        already started, finished, or is unknown."""
        with self._cond:
            job = self._by_future.get(future)
            if job is None or not job.live or job.priority <= priority:
                return False
            job.live = False  # the old heap entry is skipped when popped
            moved = _Job(priority, job.seq, job.future, job.fn, key=job.key, arg=job.arg)
            self._by_future[future] = moved
            heapq.heappush(self._heap, moved)
            self._cond.notify()
            return True

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker (cancelled ones included until a worker skips them)."""
        with self._cond:
            return len(self._by_future)

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    # -- workers -------------------------------------------------------------------------

    def _take(
        self, key: Callable[..., Any] | None = None, priority: int | None = None
    ) -> _Job | None:
        """The most urgent live job (of ``key`` and ``priority`` when given), marked running;
        lock held."""
        skipped: list[_Job] = []
        found: _Job | None = None
        while self._heap:
            job = heapq.heappop(self._heap)
            if not job.live:
                continue
            if key is not None and (job.key != key or job.priority != priority):
                skipped.append(job)
                continue
            self._by_future.pop(job.future, None)
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while queued: never runs
            found = job
            break
        for job in skipped:
            heapq.heappush(self._heap, job)
        return found

    def _next(self) -> list[_Job] | None:
        with self._cond:
            while True:
                first = self._take()
                if first is not None:
                    jobs = [first]
                    while first.key is not None and len(jobs) < self.max_batch:
                        # Company of the same urgency only: a final transcription never
                        # waits for a batch of speculative looks to be decoded with it.
                        more = self._take(first.key, first.priority)
                        if more is None:
                            break
                        jobs.append(more)
                    self._running += len(jobs)
                    return jobs
                if self._shutdown:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        if self._nice:
            lower_thread_priority([threading.get_native_id()], self._nice)
        while (jobs := self._next()) is not None:
            try:
                if len(jobs) == 1:
                    results = [jobs[0].fn()]
                else:
                    assert jobs[0].key is not None
                    results = self._batch_fns[jobs[0].key]([j.arg for j in jobs])
                    if len(results) != len(jobs):
                        raise RuntimeError(f"batch of {len(jobs)} gave {len(results)} results")
            except BaseException as exc:
                for job in jobs:
                    job.future.set_exception(exc)
            else:
                for job, result in zip(jobs, results, strict=True):
                    job.future.set_result(result)
            finally:
                with self._cond:
                    self._running -= len(jobs)
            del jobs
