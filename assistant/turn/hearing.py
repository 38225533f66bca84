"""Hearing: audio frames in, turns out. A bounded queue of frames and control messages feeds
the front end (resampling, VAD, the optional wake-word gate, the endpointer); its events become
``speech.started`` / ``speech.stopped`` (and ``wake.detected``), pauses go to speculation, and
each finished turn goes to the pipeline (:meth:`.Turns.speech`).

* Queue overflow policy: drop the **oldest** audio frame and report ``audio_overflow`` once per
  second. Real-time audio that is seconds late is worthless; memory stays bounded.
* Control messages overtake buffered audio: ``audio.clear`` and ``cancel`` drop queued audio at
  once; ``audio.commit``, rate and settings changes and a speculative early end are queued
  *behind* the audio already received, because they refer to it.
* Front-end work runs on the event loop for real-time-sized batches, else on the VAD executor.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from assistant.audio.endpoint import SpeechPaused, SpeechResumed
from assistant.audio.endpoint import SpeechStarted as FrontEndSpeechStarted
from assistant.audio.endpoint import SpeechStopped as FrontEndSpeechStopped
from assistant.audio.wake import WakeDetected as WakeGateDetected
from assistant.protocol import (
    PIPELINE_SAMPLE_RATE,
    SAMPLE_WIDTH,
    ErrorCode,
    ProtocolError,
    SpeechStarted,
    SpeechStopped,
    WakeDetected,
    check_audio_frame,
)
from assistant.turn.answering import AnsweringLike
from assistant.turn.events import Events
from assistant.turn.pipeline import Turns
from assistant.turn.speculation import Speculator
from assistant.turn.types import (
    FrontEndLike,
    SessionResources,
    SessionState,
    Speculation,
    Utterance,
)

logger = logging.getLogger(__name__)

#: Front-end batches up to this much audio run on the event loop (see ``Hearing._feed``).
INLINE_FRONT_END_MAX_MS = 64.0


@dataclass
class _Audio:
    pcm: bytes
    t: float
    rate: int  # the session's sample rate when the frame arrived


ControlKind = Literal["commit", "clear", "rebuild", "complete"]


@dataclass
class _Control:
    kind: ControlKind
    t: float
    utterance: Utterance | None = None
    spec: Speculation | None = None


class Hearing:
    """The audio side of one session. :meth:`run` is its loop (a task of the session's)."""

    def __init__(
        self,
        resources: SessionResources,
        state: SessionState,
        events: Events,
        turns: Turns,
        speculation: Speculator,
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._state = state
        self._events = events
        self._turns = turns
        self._speculation = speculation
        self._clock = clock
        #: The answering stage: barge-in when speech starts (None: no replies).
        self.answering: AnsweringLike | None = None
        self._queue: collections.deque[_Audio | _Control] = collections.deque()
        self.queued_audio = 0
        self._wake = asyncio.Event()
        self._frontend: FrontEndLike | None = None
        self.current: Utterance | None = None  # the utterance being heard
        self._pos_ms = 0.0  # position in the session's audio stream (all rates)
        self._frontend_origin_ms = 0.0  # stream position where the front end began
        self._rate_in_effect = state.config.sample_rate

    # -- input (from the session) --------------------------------------------------------

    def audio(self, data: bytes, now: float | None = None) -> None:
        """One binary frame of PCM s16le at the session rate; queued for the loop."""
        try:
            check_audio_frame(data, max_bytes=self._res.settings.limits.max_audio_frame_bytes)
        except ProtocolError as e:
            self._events.report(e)
            return
        if self._res.frontend_factory is None:
            self._events.error_throttled(
                ErrorCode.INTERNAL_ERROR, "audio is disabled on this server"
            )
            return
        if not data:
            return
        self._res.metrics.audio_bytes_total.inc(amount=len(data))
        if self.queued_audio >= self._res.settings.limits.audio_queue_frames:
            self._drop_oldest_audio()
        t = self._clock() if now is None else now
        self._queue.append(_Audio(data, t, self._state.config.sample_rate))
        self.queued_audio += 1
        self._wake.set()

    def commit(self) -> None:
        """``audio.commit``: end the turn on the audio received so far."""
        self._enqueue_control("commit")

    def clear(self) -> None:
        """``audio.clear``: forget the audio queued and heard so far."""
        self.drop_queued_audio()
        self._enqueue_control("clear")

    def rebuild(self) -> None:
        """New mode, endpoint or wake settings: a fresh front end, behind the audio already
        queued (which was sent under the old settings)."""
        self._enqueue_control("rebuild")

    def end_turn(self, utt: Utterance, spec: Speculation) -> None:
        """Speculation found a complete command: end the turn after a short silence."""
        self._enqueue_control("complete", utt, spec)

    def cancel(self, utterance_id: str | None) -> None:
        """``cancel`` (all, or this utterance): the utterance being heard ends, cancelled."""
        if utterance_id is None:
            self.drop_queued_audio()
        if self.current is not None and utterance_id in (None, self.current.id):
            utt = self.current
            self.current = None
            self._turns.finish(utt, "cancelled")
            self._enqueue_control("clear")  # the front end still holds its audio

    def close(self) -> None:
        """Stop hearing: drop the queue; the utterance being heard ends, cancelled."""
        self.drop_queued_audio()
        if self.current is not None:
            utt, self.current = self.current, None
            self._turns.finish(utt, "cancelled")

    def _enqueue_control(
        self,
        kind: ControlKind,
        utterance: Utterance | None = None,
        spec: Speculation | None = None,
    ) -> None:
        self._queue.append(_Control(kind, self._clock(), utterance, spec))
        self._wake.set()

    def _drop_oldest_audio(self) -> None:
        for i, item in enumerate(self._queue):
            if isinstance(item, _Audio):
                del self._queue[i]
                self.queued_audio -= 1
                break
        self._res.metrics.audio_dropped_total.inc()
        self._events.error_throttled(
            ErrorCode.AUDIO_OVERFLOW, "audio arrives faster than it is processed; dropped oldest"
        )

    def drop_queued_audio(self) -> None:
        kept = [item for item in self._queue if not isinstance(item, _Audio)]
        self._queue.clear()
        self._queue.extend(kept)
        self.queued_audio = 0

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """The audio loop; runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[_Audio] = []
                while (
                    self._queue
                    and isinstance(head := self._queue[0], _Audio)
                    and (not batch or head.rate == batch[0].rate)
                ):
                    self._queue.popleft()
                    batch.append(head)
                self.queued_audio -= len(batch)
                if batch:
                    await self._feed(batch)
                    continue
                control = self._queue.popleft()
                assert isinstance(control, _Control)
                await self._control(control)

    def _ensure_frontend(self, rate: int) -> FrontEndLike:
        if self._frontend is None:
            assert self._res.frontend_factory is not None
            config = self._state.config
            td = self._res.settings.turn_detection.model_copy(
                update=config.turn_detection.model_dump(exclude_none=True)
            )
            self._frontend = self._res.frontend_factory(rate, td, config.mode)
            wake = config.wake
            if wake is not None and wake.word is not None:
                # Audio reaches the front end only after the wake word (assistant.audio.wake).
                from assistant.audio.wake import WakeGate

                timeout = None if wake.timeout_ms is None else wake.timeout_ms / 1000
                self._frontend = WakeGate(
                    self._frontend,
                    wake.word,
                    rate=rate,
                    threshold=wake.threshold,
                    timeout_s=timeout,
                )
            self._rate_in_effect = rate
            self._frontend_origin_ms = self._pos_ms
        return self._frontend

    async def _feed(self, batch: list[_Audio]) -> None:
        rate = batch[0].rate
        if self._frontend is not None and rate != self._rate_in_effect:
            # A new sample rate: end what was heard at the old one, then start afresh.
            await self._control(_Control("rebuild", batch[0].t))
        frontend = self._ensure_frontend(rate)
        start_ms = self._pos_ms

        def work() -> list[tuple[Any, float, int, float]]:
            out: list[tuple[Any, float, int, float]] = []
            pos = start_ms
            for item in batch:
                t0 = time.perf_counter()
                events = frontend.feed(item.pcm, item.t)
                cost = time.perf_counter() - t0
                pos += len(item.pcm) / SAMPLE_WIDTH * 1000 / rate
                pos_ms = int(pos)
                if not events:
                    out.append((None, cost, pos_ms, time.monotonic()))
                for ev in events:
                    out.append((ev, cost, pos_ms, time.monotonic()))
                    cost = 0.0
            return out

        audio_ms = sum(len(b.pcm) for b in batch) / SAMPLE_WIDTH * 1000 / rate
        try:
            if audio_ms <= INLINE_FRONT_END_MAX_MS:
                # Real-time steady state: one or two VAD frames (~60 µs each). A worker-thread
                # hop costs about as much as the work, and with many streams the hops alone
                # cost a sizeable share of a core (measured: 20 silent streams, 16-22 % of a
                # core with the hop, 11 % inline), so small batches run here. Backlogs (a
                # stalled client catching up) still go to the executor.
                results = work()
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._res.vad_executor, work)
        except Exception:
            logger.exception("session %s: audio front end failed", self._state.id)
            self._frontend = None  # start afresh with the next frame
            if self.current is not None:
                utt, self.current = self.current, None
                self._events.error(
                    ErrorCode.INTERNAL_ERROR, "audio processing failed", utterance_id=utt.id
                )
                self._turns.finish(utt, "error")
            else:
                self._events.error(ErrorCode.INTERNAL_ERROR, "audio processing failed")
            return
        self._pos_ms += sum(len(b.pcm) for b in batch) / SAMPLE_WIDTH * 1000 / rate
        for ev, cost, pos_ms, wall in results:
            if self.current is not None:
                self.current.vad_s += cost
            if ev is not None:
                self._on_frontend_event(ev, pos_ms, wall)

    async def _control(self, control: _Control) -> None:
        if control.kind == "clear":
            if self._frontend is not None:
                self._frontend.clear()
            if self.current is not None:
                utt, self.current = self.current, None
                self._turns.finish(utt, "cancelled")
            return
        if self._frontend is None:
            return
        frontend = self._frontend
        loop = asyncio.get_running_loop()
        pos_ms = int(self._pos_ms)
        if control.kind == "complete":
            target, spec = control.utterance, control.spec
            if target is None or target is not self.current or target.spec is not spec:
                return  # the turn already ended, or a newer pause superseded this one
            if spec is None or spec.stale:
                return
            call = functools.partial(frontend.set_complete, True, self._clock())
        else:
            call = functools.partial(frontend.commit, control.t)
        try:
            events = await loop.run_in_executor(self._res.vad_executor, call)
        except Exception:
            logger.exception("session %s: audio %s failed", self._state.id, control.kind)
            events = []
        wall = self._clock()
        for ev in events:
            self._on_frontend_event(ev, pos_ms, wall)
        if control.kind == "rebuild":
            # New rate/mode/endpoint settings: a fresh front end from the next frame on.
            self._frontend = None

    def _on_frontend_event(self, ev: Any, pos_ms: int, wall: float) -> None:
        if isinstance(ev, WakeGateDetected):
            audio_ms = int(self._frontend_origin_ms) + ev.audio_ms
            self._events.emit(
                WakeDetected(word=ev.word, audio_ms=audio_ms, probability=round(ev.probability, 3))
            )
        elif isinstance(ev, SpeechPaused):
            if self.current is not None:
                self._speculation.paused(self.current, ev.audio, ev.audio_end_ms)
        elif isinstance(ev, SpeechResumed):
            if self.current is not None:
                self._speculation.resumed(self.current)
        elif isinstance(ev, FrontEndSpeechStarted):
            if self.current is not None:  # front end restarted without a stop
                self._turns.finish(self.current, "no_speech")
            self.current = self._turns.new()
            audio_ms = int(self._frontend_origin_ms) + ev.audio_start_ms
            self._events.emit(SpeechStarted(utterance_id=self.current.id, audio_ms=audio_ms))
            if self.answering is not None:
                self.answering.barge_in()  # the user speaks over the reply: stop sending it
        elif isinstance(ev, FrontEndSpeechStopped):
            self._stopped(ev, pos_ms, wall)

    def _stopped(self, ev: FrontEndSpeechStopped, pos_ms: int, wall: float) -> None:
        utt = self.current or self._turns.new()
        self.current = None
        utt.endpoint_t = wall
        utt.speech_end_t = ev.speech_end_t
        utt.timings["endpoint_wait"] = max(0.0, wall - utt.speech_end_t)
        n = len(ev.audio)
        utt.audio_ms = n * 1000 // PIPELINE_SAMPLE_RATE
        lag_ms = int(max(0.0, ev.t - ev.speech_end_t) * 1000)
        self._events.emit(
            SpeechStopped(
                utterance_id=utt.id,
                audio_ms=pos_ms,
                speech_end_ms=max(0, pos_ms - lag_ms),
                duration_ms=utt.audio_ms,
                reason=ev.reason,
            )
        )
        if n == 0:
            self._turns.finish(utt, "no_speech")
            return
        self._turns.speech(utt, ev.audio, ev.audio_end_ms)
