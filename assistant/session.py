"""One :class:`Session` per WebSocket connection: the per-connection state machine.

The session is I/O-free at its edges: the server hands it raw frames (:meth:`Session.
handle_text`, :meth:`Session.handle_audio`) and it produces :mod:`assistant.protocol` events
through an injected, synchronous ``emit`` callable (the server puts them in a bounded outbox;
tests append them to a list). Synchronous so that callbacks from the dispatcher and from worker
threads' results can emit without scheduling tasks, which keeps event order deterministic.

Pipeline, per session::

    handle_audio ─► [bounded audio queue] ─► audio loop: front end (resample, VAD, endpoint)
                                   inline for real-time-sized batches, else in the VAD executor
        speech.started / speech.stopped ─► utterance task: ASR (ASR executor)
                                           ─► recognizer (thread) ─► dispatcher ─► actions

* Audio queue overflow policy: drop the **oldest** audio frame and report ``audio_overflow``
  once per second. Real-time audio that is seconds late is worthless; memory stays bounded.
* Control messages overtake buffered audio: ``audio.clear`` and ``cancel`` drop queued audio
  at once; ``audio.commit`` and rate changes are queued *behind* the audio already received,
  because they refer to it.
* Full duplex: up to ``max_utterances_in_flight`` utterances are transcribed, recognized and
  dispatched concurrently while the audio loop keeps listening.
* ``cancel`` stops utterances before their dispatch starts. Once commands are being published
  they cannot be taken back, so a dispatch always runs to its end and reports its actions.
* Every utterance ends with a ``metrics`` event (its last event), whatever its outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from assistant.answers.stage import Answering
from assistant.audio.endpoint import SpeechPaused, SpeechResumed
from assistant.audio.endpoint import SpeechStarted as FrontEndSpeechStarted
from assistant.audio.endpoint import SpeechStopped as FrontEndSpeechStopped
from assistant.audio.wake import WakeDetected as WakeGateDetected
from assistant.config import TurnDetectionSettings
from assistant.protocol import (
    PIPELINE_SAMPLE_RATE,
    SAMPLE_WIDTH,
    AudioClear,
    AudioCommit,
    Cancel,
    ClientMessage,
    Confirm,
    DeviceState,
    ErrorCode,
    ImageInput,
    Limits,
    ProtocolError,
    SessionConfig,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextInput,
    TurnDetection,
    WakeDetected,
    check_audio_frame,
    parse_client_message,
)
from assistant.turn.acting import Acting
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.pipeline import Turns
from assistant.turn.speculation import Speculator
from assistant.turn.transcribing import Transcribing
from assistant.turn.types import (
    Emit,
    FrontEndLike,
    SessionResources,
    SessionState,
    Speculation,
    StageError,
    Utterance,
)
from assistant.turn.understanding import Understanding
from intents.schema import Intent

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Front-end batches up to this much audio run on the event loop (see ``Session._feed``).
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


class Session:
    """The state of one connection. Create, call :meth:`run` as a task, feed frames, then
    :meth:`close`. Not thread-safe: every method is called from the event loop."""

    def __init__(
        self,
        resources: SessionResources,
        emit: Emit,
        *,
        session_id: str | None = None,
        client: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id or secrets.token_hex(6)
        self.client = client
        self._res = resources
        self._settings = resources.settings
        self._clock = clock
        self._events = Events(resources, emit, session_id=self.id, client=client, clock=clock)
        self._emit = self._events.emit
        self._error_throttled = self._events.error_throttled
        defaults = self._settings.session
        config = SessionConfig(
            sample_rate=defaults.sample_rate,
            language=defaults.language,
            mode=defaults.mode,
            turn_detection=_to_wire(self._settings.turn_detection),
            partials=defaults.partials,
            device_events=defaults.device_events,
        )
        host = (client or "").rsplit(":", 1)[0]
        for known in self._settings.clients:  # a satellite known by its address
            if known.address is not None and known.address == host:
                config = config.model_copy(update={"client_id": known.id, "area": known.area})
        self._state = SessionState(self.id, config)
        self._understanding = Understanding(resources, self._state)
        self._acting = Acting(resources, self._state, self._events, clock)
        self._jobs = AsrJobs(resources, lambda: self.config.language)
        self._speculation = Speculator(
            resources,
            self._state,
            self._events,
            self._jobs,
            self._understanding,
            current=lambda: self._current,
            end_turn=self._end_turn_early,
            clock=clock,
        )
        self._transcribing = Transcribing(
            resources,
            self._state,
            self._events,
            self._jobs,
            self._understanding,
            self._speculation,
            clock,
        )
        self._turns = Turns(
            resources,
            self._state,
            self._events,
            self._transcribing,
            self._understanding,
            self._acting,
            clock,
        )
        #: Replies, timers and barge-in (``assistant.answers``; None: no replies).
        self._answering = (
            None
            if resources.answers is None
            else Answering(resources.answers, self._emit, session_id=self.id, clock=clock)
        )
        self._acting.answering = self._answering
        self._turns.answering = self._answering
        self._queue: collections.deque[_Audio | _Control] = collections.deque()
        self._queued_audio = 0
        self._wake = asyncio.Event()
        self._frontend: FrontEndLike | None = None
        self._current: Utterance | None = None  # utterance being heard
        self._pos_ms = 0.0  # position in the session's audio stream (all rates)
        self._frontend_origin_ms = 0.0  # stream position where the front end began
        self._rate_in_effect = self.config.sample_rate
        self._closing = False

    @property
    def config(self) -> SessionConfig:
        """The session's settings (replaced, never mutated, by ``session.update``)."""
        return self._state.config

    @config.setter
    def config(self, config: SessionConfig) -> None:
        self._state.config = config

    # -- events out ----------------------------------------------------------------------

    def error(self, code: ErrorCode, message: str, *, utterance_id: str | None = None) -> None:
        """Send an ``error`` event (the one place errors are counted)."""
        self._events.error(code, message, utterance_id=utterance_id)

    def report(self, exc: ProtocolError) -> None:
        """Map a protocol error raised outside the session (by the server) to an event."""
        self._events.report(exc)

    def created_event(self) -> SessionCreated:
        lim = self._settings.limits
        return SessionCreated(
            session_id=self.id,
            config=self.config,
            limits=Limits(
                max_audio_frame_bytes=lim.max_audio_frame_bytes,
                max_message_bytes=lim.max_message_bytes,
                max_utterance_ms=self._settings.turn_detection.max_utterance_ms,
                max_messages_per_s=lim.max_messages_per_s,
            ),
            tts={} if self._res.answers is None else self._res.answers.voices(),
        )

    def device_state(self, device_id: str, state: dict[str, Any]) -> None:
        """Forward a device state change (the server fans these out to sessions)."""
        if self.config.device_events:
            self._emit(DeviceState(device_id=device_id, state=state))

    # -- frames in -----------------------------------------------------------------------

    def handle_text(self, data: str | bytes) -> None:
        """One text frame. Bad input becomes an ``error`` event; the session goes on."""
        try:
            msg = parse_client_message(data)
        except ProtocolError as e:
            self.report(e)
            return
        self.handle_message(msg)

    def handle_message(self, msg: ClientMessage) -> None:
        if self._closing:
            return
        if isinstance(msg, TextInput):
            self._turns.text(msg)
        elif isinstance(msg, AudioCommit):
            self._enqueue_control("commit")
        elif isinstance(msg, AudioClear):
            self._drop_queued_audio()
            self._enqueue_control("clear")
        elif isinstance(msg, Cancel):
            self._cancel(msg.utterance_id)
        elif isinstance(msg, SessionUpdate):
            self._update(msg)
        elif isinstance(msg, ImageInput):
            self._set_image(msg)
        elif isinstance(msg, Confirm):
            self._confirm(msg)

    def handle_audio(self, data: bytes, now: float | None = None) -> None:
        """One binary frame of PCM s16le at the session rate; queued for the audio loop."""
        if self._closing:
            return
        try:
            check_audio_frame(data, max_bytes=self._settings.limits.max_audio_frame_bytes)
        except ProtocolError as e:
            self.report(e)
            return
        if self._res.frontend_factory is None:
            self._error_throttled(ErrorCode.INTERNAL_ERROR, "audio is disabled on this server")
            return
        if not data:
            return
        self._res.metrics.audio_bytes_total.inc(amount=len(data))
        if self._queued_audio >= self._settings.limits.audio_queue_frames:
            self._drop_oldest_audio()
        t = self._clock() if now is None else now
        self._queue.append(_Audio(data, t, self.config.sample_rate))
        self._queued_audio += 1
        self._wake.set()

    # -- control -------------------------------------------------------------------------

    def _enqueue_control(
        self,
        kind: ControlKind,
        utterance: Utterance | None = None,
        spec: Speculation | None = None,
    ) -> None:
        self._queue.append(_Control(kind, self._clock(), utterance, spec))
        self._wake.set()

    def _end_turn_early(self, utt: Utterance, spec: Speculation) -> None:
        self._enqueue_control("complete", utt, spec)

    def _drop_oldest_audio(self) -> None:
        for i, item in enumerate(self._queue):
            if isinstance(item, _Audio):
                del self._queue[i]
                self._queued_audio -= 1
                break
        self._res.metrics.audio_dropped_total.inc()
        self._error_throttled(
            ErrorCode.AUDIO_OVERFLOW, "audio arrives faster than it is processed; dropped oldest"
        )

    def _drop_queued_audio(self) -> None:
        kept = [item for item in self._queue if not isinstance(item, _Audio)]
        self._queue.clear()
        self._queue.extend(kept)
        self._queued_audio = 0

    def _where(self, msg: SessionUpdate) -> dict[str, Any] | str:
        """``area``/``client_id`` of a session.update, checked against the home (an error
        message when they name nothing there)."""
        out: dict[str, Any] = {}
        home = getattr(self._res.recognizer, "config", None)
        areas = None if home is None else {a.id for a in home.areas}
        if msg.client_id is not None:
            known = {c.id: c for c in self._settings.clients}
            if msg.client_id not in known:
                return f"client_id: no client {msg.client_id!r} in assistant.clients"
            out["client_id"] = msg.client_id
            out["area"] = known[msg.client_id].area
        if msg.area is not None:
            if msg.area and areas is not None and msg.area not in areas:
                return f"area: the home has no area {msg.area!r}"
            out["area"] = msg.area or None
        return out

    def _update(self, msg: SessionUpdate) -> None:
        changes: dict[str, Any] = {}
        rebuild = False
        if msg.wake is not None and msg.wake != self.config.wake:
            if msg.wake.word is not None:
                from assistant.audio.wake import WakeWordError, check_word

                try:
                    check_word(msg.wake.word, msg.wake.threshold)
                except WakeWordError as e:
                    self.error(ErrorCode.INVALID_MESSAGE, f"session.update: wake: {e}")
                    return
            changes["wake"] = None if msg.wake.word is None else msg.wake
            rebuild = True
        if msg.language is not None:
            changes["language"] = msg.language
        if msg.client_id is not None or msg.area is not None:
            where = self._where(msg)
            if isinstance(where, str):
                self.error(ErrorCode.INVALID_MESSAGE, f"session.update: {where}")
                return
            changes.update(where)
        if msg.partials is not None:
            changes["partials"] = msg.partials
        if msg.device_events is not None:
            changes["device_events"] = msg.device_events
        if msg.sample_rate is not None:
            # Each queued frame carries its rate; the audio loop switches when it gets there.
            changes["sample_rate"] = msg.sample_rate
        if msg.mode is not None and msg.mode != self.config.mode:
            changes["mode"] = msg.mode
            rebuild = True
        if msg.turn_detection is not None:
            td = self.config.turn_detection.model_copy(
                update=msg.turn_detection.model_dump(exclude_none=True)
            )
            if td != self.config.turn_detection:
                changes["turn_detection"] = td
                rebuild = True
        if msg.reply is not None:
            changes["reply"] = (
                self.config.reply.model_copy(update=msg.reply.model_dump(exclude_none=True))
                if self._answering is None
                else self._answering.update(msg.reply)
            )
        self.config = self.config.model_copy(update=changes)
        if rebuild:
            # Behind the audio already queued, which was sent under the old settings.
            self._enqueue_control("rebuild")
        self._emit(SessionUpdated(config=self.config))
        if msg.language is not None and self._res.transcribe is not None:
            try:  # text in that language still works; speech would be gibberish
                self._jobs.in_language(self._res.transcribe)
            except StageError as e:
                self.error(e.code, e.message)

    def _set_image(self, msg: ImageInput) -> None:
        try:
            base64.b64decode(msg.data, validate=True)
        except (binascii.Error, ValueError):
            self.error(ErrorCode.INVALID_MESSAGE, "image: data is not valid base64")
            return
        # Kept for the next utterance only (the model tier reads it; see docs/protocol.md).
        self._state.image = msg

    def _cancel(self, utterance_id: str | None) -> None:
        if utterance_id is None:
            self._drop_queued_audio()
        if self._current is not None and utterance_id in (None, self._current.id):
            utt = self._current
            self._current = None
            self._turns.finish(utt, "cancelled")
            self._enqueue_control("clear")  # the front end still holds its audio
        self._turns.cancel(utterance_id)
        if utterance_id is None and self._answering is not None:
            self._answering.cancel()  # and the reply being spoken

    def _confirm(self, msg: Confirm) -> None:
        name = "confirm" if msg.accept else "cancel"
        intent = Intent(
            name=name,
            confidence=1.0,
            source="context",
            reason=f"confirm message (accept={str(msg.accept).lower()})",
            text="yes" if msg.accept else "no",
        )
        self._turns.intent(intent)

    # -- the audio loop ------------------------------------------------------------------

    async def run(self) -> None:
        """The audio loop; runs until :meth:`close` cancels it."""
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
                self._queued_audio -= len(batch)
                if batch:
                    await self._feed(batch)
                    continue
                control = self._queue.popleft()
                assert isinstance(control, _Control)
                await self._control(control)

    def _ensure_frontend(self, rate: int) -> FrontEndLike:
        if self._frontend is None:
            assert self._res.frontend_factory is not None
            td = self._settings.turn_detection.model_copy(
                update=self.config.turn_detection.model_dump(exclude_none=True)
            )
            self._frontend = self._res.frontend_factory(rate, td, self.config.mode)
            wake = self.config.wake
            if wake is not None and wake.word is not None:
                # Audio reaches the front end only after the wake word (assistant.audio.wake).
                from assistant.audio.wake import WakeGate

                timeout = None if wake.timeout_ms is None else wake.timeout_ms / 1000
                self._frontend = WakeGate(self._frontend, wake.word, rate=rate,
                                          threshold=wake.threshold, timeout_s=timeout)
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
            logger.exception("session %s: audio front end failed", self.id)
            self._frontend = None  # start afresh with the next frame
            if self._current is not None:
                utt, self._current = self._current, None
                self.error(ErrorCode.INTERNAL_ERROR, "audio processing failed", utterance_id=utt.id)
                self._turns.finish(utt, "error")
            else:
                self.error(ErrorCode.INTERNAL_ERROR, "audio processing failed")
            return
        self._pos_ms += sum(len(b.pcm) for b in batch) / SAMPLE_WIDTH * 1000 / rate
        for ev, cost, pos_ms, wall in results:
            if self._current is not None:
                self._current.vad_s += cost
            if ev is not None:
                self._on_frontend_event(ev, pos_ms, wall)

    async def _control(self, control: _Control) -> None:
        if control.kind == "clear":
            if self._frontend is not None:
                self._frontend.clear()
            if self._current is not None:
                utt, self._current = self._current, None
                self._turns.finish(utt, "cancelled")
            return
        if self._frontend is None:
            return
        frontend = self._frontend
        loop = asyncio.get_running_loop()
        pos_ms = int(self._pos_ms)
        if control.kind == "complete":
            target, spec = control.utterance, control.spec
            if target is None or target is not self._current or target.spec is not spec:
                return  # the turn already ended, or a newer pause superseded this one
            if spec is None:
                return
            if spec.stale:
                return
            call = functools.partial(frontend.set_complete, True, self._clock())
        else:
            call = functools.partial(frontend.commit, control.t)
        try:
            events = await loop.run_in_executor(self._res.vad_executor, call)
        except Exception:
            logger.exception("session %s: audio %s failed", self.id, control.kind)
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
            self._emit(WakeDetected(word=ev.word, audio_ms=audio_ms,
                                    probability=round(ev.probability, 3)))
        elif isinstance(ev, SpeechPaused):
            if self._current is not None:
                self._speculation.paused(self._current, ev.audio, ev.audio_end_ms)
        elif isinstance(ev, SpeechResumed):
            if self._current is not None:
                self._speculation.resumed(self._current)
        elif isinstance(ev, FrontEndSpeechStarted):
            if self._current is not None:  # front end restarted without a stop
                self._turns.finish(self._current, "no_speech")
            self._current = self._turns.new()
            audio_ms = int(self._frontend_origin_ms) + ev.audio_start_ms
            self._emit(SpeechStarted(utterance_id=self._current.id, audio_ms=audio_ms))
            if self._answering is not None:
                self._answering.barge_in()  # the user speaks over the reply: stop sending it
        elif isinstance(ev, FrontEndSpeechStopped):
            utt = self._current or self._turns.new()
            self._current = None
            utt.endpoint_t = wall
            utt.speech_end_t = ev.speech_end_t
            utt.timings["endpoint_wait"] = max(0.0, wall - utt.speech_end_t)
            n = len(ev.audio)
            utt.audio_ms = n * 1000 // PIPELINE_SAMPLE_RATE
            lag_ms = int(max(0.0, ev.t - ev.speech_end_t) * 1000)
            self._emit(
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

    # -- shutdown ------------------------------------------------------------------------

    async def close(self, grace_s: float = 0.0, *, finish: bool = True) -> None:
        """Stop taking input, then end the utterances in flight: with ``finish``, let them run
        up to ``grace_s`` (shutdown); without, cancel those not yet dispatching (the client has
        gone) and give dispatches the grace period, since their commands are already out.
        Every utterance still ends with its ``metrics`` event."""
        self._closing = True
        self._drop_queued_audio()
        if self._current is not None:
            utt, self._current = self._current, None
            self._turns.finish(utt, "cancelled")
        self._speculation.close()
        await self._turns.close(grace_s, finish=finish)
        if self._answering is not None:
            await self._answering.close()

    @property
    def busy(self) -> bool:
        return bool(self._turns.inflight)


def _to_wire(td: TurnDetectionSettings) -> TurnDetection:
    return TurnDetection(**td.model_dump(include=set(TurnDetection.model_fields)))
