"""The shared ASR executor as a session uses it: final work ahead of speculative, every job
counted in the shared load (``asr_jobs``), and the overload test (``asr_shed_jobs``) under which
the second opinions (full-window retry, acoustic repair, escalated looks) are skipped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from assistant.asr_scheduler import FINAL, AsrScheduler
from assistant.protocol import ErrorCode
from assistant.turn.types import SessionResources, StageError, Transcribe, TranscriptLike

_T = TypeVar("_T")


class AsrJobs:
    """The ASR executor of :class:`SessionResources`, shared by all sessions."""

    def __init__(
        self, resources: SessionResources, language: Callable[[], str | None] = lambda: None
    ) -> None:
        self._res = resources
        #: The session's language, read at each submission (``session.update`` changes it).
        self._language = language

    def in_language(self, transcribe: Transcribe) -> Transcribe:
        """``transcribe`` bound to the session's language (``SessionResources.asr_language``);
        :class:`StageError` ``language_unsupported`` when the model cannot speak it."""
        bind = self._res.asr_language
        if bind is None:
            return transcribe
        try:
            return bind(transcribe, self._language())
        except ValueError as e:
            raise StageError(ErrorCode.LANGUAGE_UNSUPPORTED, str(e)) from None

    def shedding(self) -> bool:
        """The ASR workers are overloaded (``asr_shed_jobs`` jobs queued or running): final
        transcriptions take the cheap pass and skip the second opinions."""
        limit = self._res.settings.asr_shed_jobs
        return limit is not None and self._res.asr_load.jobs >= limit

    def submit_asr(
        self, audio: Any, priority: int = FINAL, transcribe: Transcribe | None = None
    ) -> tuple[asyncio.Future[str | TranscriptLike], concurrent.futures.Future[Any] | None]:
        """Queue ASR (``transcribe``, by default the resources') on the ASR executor, counted
        in the shared load until it ends. Returns the asyncio future (cancelling it drops a
        job that has not started) and the executor's job when the executor takes
        priorities."""
        transcribe = transcribe or self._res.transcribe
        if transcribe is None:
            raise StageError(ErrorCode.INTERNAL_ERROR, "speech recognition is not available")
        try:
            transcribe = self.in_language(transcribe)
        except StageError as e:
            # As a failed job: a speculative look just does not stand, a final one reports it.
            failed: asyncio.Future[str | TranscriptLike] = (
                asyncio.get_running_loop().create_future()
            )
            failed.set_exception(e)
            return failed, None
        return self.submit(functools.partial(transcribe, audio), priority)

    def submit(
        self, call: Callable[[], _T], priority: int
    ) -> tuple[asyncio.Future[_T], concurrent.futures.Future[Any] | None]:
        """``call()`` on the ASR executor (see :meth:`submit_asr`)."""
        executor = self._res.asr_executor
        job: concurrent.futures.Future[Any] | None = None
        if isinstance(executor, AsrScheduler):
            job = executor.submit_at(priority, call)
            future: asyncio.Future[_T] = asyncio.wrap_future(job)
        else:
            future = asyncio.get_running_loop().run_in_executor(executor, call)
        load, metrics = self._res.asr_load, self._res.metrics
        load.jobs += 1
        metrics.asr_jobs.set(load.jobs)

        def done(_: object) -> None:
            load.jobs -= 1
            metrics.asr_jobs.set(load.jobs)

        future.add_done_callback(done)
        return future, job

    async def transcribe(
        self, audio: Any, transcribe: Transcribe | None = None
    ) -> str | TranscriptLike:
        """Run ASR for a final transcription (ahead of speculative work)."""
        future, _ = self.submit_asr(audio, FINAL, transcribe)
        return await future  # cancelling this task drops the job if it has not started
