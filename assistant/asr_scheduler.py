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

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Priority of a transcription someone is waiting for.
FINAL: Final = 0
#: Priority of a transcription started at a pause, on the chance that the turn ends there.
SPECULATIVE: Final = 1


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    future: Future[Any] = field(compare=False)
    fn: Callable[[], Any] = field(compare=False)
    #: Still in the heap (a promoted job leaves a dead copy behind; see ``promote``).
    live: bool = field(default=True, compare=False)


class AsrScheduler(Executor):
    """Priority thread pool: ``workers`` threads, lowest priority value first."""

    def __init__(self, workers: int = 1, *, thread_name_prefix: str = "hearth-asr") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._heap: list[_Job] = []
        self._by_future: dict[Future[Any], _Job] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._shutdown = False
        self._running = 0
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
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            heapq.heappush(self._heap, job)
            self._by_future[future] = job
            self._cond.notify()
        return future

    def promote(self, future: Future[Any], priority: int = FINAL) -> bool:
        """Move a queued job to ``priority`` (if that is more urgent). False when the job has
        already started, finished, or is unknown."""
        with self._cond:
            job = self._by_future.get(future)
            if job is None or not job.live or job.priority <= priority:
                return False
            job.live = False  # the old heap entry is skipped when popped
            moved = _Job(priority, job.seq, job.future, job.fn)
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

    def _next(self) -> _Job | None:
        with self._cond:
            while True:
                while self._heap:
                    job = heapq.heappop(self._heap)
                    if not job.live:
                        continue
                    self._by_future.pop(job.future, None)
                    if not job.future.set_running_or_notify_cancel():
                        continue  # cancelled while queued: never runs
                    self._running += 1
                    return job
                if self._shutdown:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                result = job.fn()
            except BaseException as exc:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            finally:
                with self._cond:
                    self._running -= 1
            del job
