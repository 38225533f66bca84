"""Merge concurrent transcriptions from many sessions into batched model calls.

:class:`BatchingTranscriber` is a drop-in :class:`~assistant.audio.asr.Transcriber`: worker
threads call :meth:`~BatchingTranscriber.transcribe` as usual and block until their result is
ready. No request ever waits for company (a lone request runs at once, so single-stream latency
is unchanged); requests that arrive while a batch is running are collected and run as the next
batch. Whisper's encoder and decoder cost less per clip in a batch (docs/asr.md), which is
what lets many live streams share two cores.

Exactly one thread runs the model at a time (the *leader*, one of the callers); when it has its
own result and others are waiting, it hands the lead to the oldest waiter. Give the executor
that calls this more threads than one (e.g. 8), or no two requests can ever meet.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from assistant.audio.asr import Transcriber, Transcript

logger = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]

DEFAULT_MAX_BATCH: Final = 8


class BatchCapable(Protocol):
    def transcribe_batch(
        self,
        audios: Sequence[Float32Array],
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> list[Transcript]: ...

    def transcribe_partial(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript: ...

    def warmup(self) -> None: ...


@dataclass(eq=False)
class _Request:
    audio: Float32Array
    key: tuple[tuple[str, ...], str | None]
    #: Set when the request is finished or has been handed the lead.
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    finished: bool = False
    result: Transcript | None = None
    error: BaseException | None = None


class BatchingTranscriber(Transcriber):
    """Thread-safe wrapper that batches concurrent :meth:`transcribe` calls."""

    def __init__(self, inner: BatchCapable, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._inner = inner
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._leading = False
        #: Sizes of the batches run so far (bounded; for metrics and tests).
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    @property
    def inner(self) -> BatchCapable:
        return self._inner

    def transcribe(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript:
        req = _Request(audio, (tuple(hotwords), prompt))
        with self._lock:
            self._queue.append(req)
            req.lead = not self._leading
            self._leading = True
        if not req.lead:
            req.wake.wait()
        if req.lead:  # first caller, or handed the lead by the previous leader
            self._lead(req)
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def transcribe_partial(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript:
        # Partials are cheap and best-effort; they do not queue behind final transcripts.
        return self._inner.transcribe_partial(audio, hotwords=hotwords, prompt=prompt)

    def warmup(self) -> None:
        self._inner.warmup()

    def _take_batch(self) -> list[_Request]:
        """Oldest request and up to max_batch - 1 more with the same vocabulary (lock held)."""
        first = self._queue.popleft()
        batch = [first]
        rest: deque[_Request] = deque()
        while self._queue and len(batch) < self._max_batch:
            r = self._queue.popleft()
            (batch if r.key == first.key else rest).append(r)
        rest.extend(self._queue)
        self._queue = rest
        return batch

    def _lead(self, me: _Request) -> None:
        while True:
            with self._lock:
                if me.finished:
                    if self._queue:
                        nxt = self._queue[0]
                        nxt.lead = True
                        nxt.wake.set()  # wakes it as the new leader, not as finished
                    else:
                        self._leading = False
                    return
                batch = self._take_batch()
            self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        hotwords, prompt = batch[0].key
        self.batch_sizes.append(len(batch))
        try:
            results = self._inner.transcribe_batch(
                [r.audio for r in batch], hotwords=hotwords, prompt=prompt
            )
            if len(results) != len(batch):
                raise RuntimeError("transcribe_batch returned the wrong number of results")
            for r, res in zip(batch, results, strict=True):
                r.result = res
        except Exception as e:  # delivered to every caller of the batch, re-raised there
            logger.exception("batched transcription of %d clips failed", len(batch))
            for r in batch:
                r.error = e
        for r in batch:
            r.finished = True
            r.wake.set()
