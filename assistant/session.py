"""One :class:`Session` per WebSocket connection: the connection's state, wired to the stages
of a turn (:mod:`assistant.turn`; docs/architecture.md draws them).

The session is I/O-free at its edges: the server hands it raw frames (:meth:`Session.
handle_text`, :meth:`Session.handle_audio`) and it produces :mod:`assistant.protocol` events
through an injected, synchronous ``emit`` callable (the server puts them in a bounded outbox;
tests append them to a list). Synchronous so that callbacks from the dispatcher and from worker
threads' results can emit without scheduling tasks, which keeps event order deterministic.

Stages, per session::

    handle_audio ─► hearing: [bounded audio queue] ─► front end (resample, VAD, [wake word],
                    endpoint) ─► speech.started / speech.stopped; speculation at pauses
    speech.stopped ─► one task per utterance (pipeline): transcribing ─► understanding
                    ─► acting (dispatch, confirmations) ─► answering ─► metrics
    text / confirm ─► the same task, from understanding / acting on

* Control messages overtake buffered audio: ``audio.clear`` and ``cancel`` drop queued audio
  at once; ``audio.commit`` and rate changes are queued *behind* the audio already received,
  because they refer to it.
* Full duplex: up to ``max_utterances_in_flight`` utterances are transcribed, recognized and
  dispatched concurrently while hearing goes on.
* ``cancel`` stops utterances before their dispatch starts. Once commands are being published
  they cannot be taken back, so a dispatch always runs to its end and reports its actions.
* Every utterance ends with a ``metrics`` event (its last event), whatever its outcome.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable
from typing import Any

from assistant.answers.stage import Answering
from assistant.config import TurnDetectionSettings
from assistant.protocol import (
    AudioClear,
    AudioCommit,
    Cancel,
    ClientMessage,
    Confirm,
    ConfirmationCancelled,
    DeviceState,
    ErrorCode,
    ImageInput,
    Limits,
    ProtocolError,
    SessionConfig,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    TextInput,
    TurnDetection,
    parse_client_message,
)
from assistant.turn.acting import Acting
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.hearing import Hearing
from assistant.turn.pipeline import Turns
from assistant.turn.speculation import Speculator
from assistant.turn.transcribing import Transcribing
from assistant.turn.types import (
    Emit,
    FrontEndLike,
    SessionResources,
    SessionState,
    StageError,
)
from assistant.turn.understanding import Understanding
from intents.schema import Intent

#: Re-exported: what :mod:`assistant.app` and the tests build a session from.
__all__ = ["FrontEndLike", "Session", "SessionResources"]


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
        self._events = Events(resources, emit, session_id=self.id, client=client, clock=clock)
        self._emit = self._events.emit
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
        self._state = state = SessionState(self.id, config)
        self._closing = False
        # The stages, wired: each gets the shared resources, the session's state and its way
        # out (events), plus the stages it hands work to.
        events = self._events
        understanding = Understanding(resources, state)
        self._acting = acting = Acting(resources, state, events, clock)
        self._jobs = jobs = AsrJobs(resources, lambda: self.config.language)
        # Speculation belongs to hearing, which is built last (it hands turns to the
        # pipeline): it reaches hearing through these two calls.
        self._speculation = speculation = Speculator(
            resources,
            state,
            events,
            jobs,
            understanding,
            current=lambda: self._hearing.current,
            end_turn=lambda utt, spec: self._hearing.end_turn(utt, spec),
            clock=clock,
        )
        transcribing = Transcribing(
            resources, state, events, jobs, understanding, speculation, clock
        )
        self._turns = turns = Turns(
            resources, state, events, transcribing, understanding, acting, clock
        )
        self._hearing = Hearing(resources, state, events, turns, speculation, clock)
        #: Replies, timers and barge-in (``assistant.answers``; None: no replies).
        self._answering = (
            None
            if resources.answers is None
            else Answering(resources.answers, self._emit, session_id=self.id, clock=clock)
        )
        acting.answering = turns.answering = self._hearing.answering = self._answering
        if self._answering is not None and config.client_id is not None:
            self._answering.set_client(config.client_id)  # a satellite known by its address

    @property
    def config(self) -> SessionConfig:
        """The session's settings (replaced, never mutated, by ``session.update``)."""
        return self._state.config

    @config.setter
    def config(self, config: SessionConfig) -> None:
        self._state.config = config

    @property
    def busy(self) -> bool:
        return bool(self._turns.inflight)

    @property
    def _queued_audio(self) -> int:
        """Audio frames waiting for the front end (read by tests)."""
        return self._hearing.queued_audio

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
            self._hearing.commit()
        elif isinstance(msg, AudioClear):
            self._hearing.clear()
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
        if not self._closing:
            self._hearing.audio(data, now)

    # -- control -------------------------------------------------------------------------

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
        if msg.client_id is not None and self._answering is not None:
            self._answering.set_client(msg.client_id)  # running timers follow the client id
        if msg.reply is not None:
            changes["reply"] = (
                self.config.reply.model_copy(update=msg.reply.model_dump(exclude_none=True))
                if self._answering is None
                else self._answering.update(msg.reply)
            )
        self.config = self.config.model_copy(update=changes)
        if rebuild:
            # Behind the audio already queued, which was sent under the old settings.
            self._hearing.rebuild()
        self._emit(SessionUpdated(config=self.config))
        if msg.client_id is not None:
            self._take_over(msg.client_id)
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
        self._hearing.cancel(utterance_id)
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

    # -- run and close -------------------------------------------------------------------

    def _take_over(self, client_id: str) -> None:
        """This session now speaks for ``client_id``: a confirmation another session of it
        was waiting for is cancelled, and the user is told (``confirmation.cancelled``)."""
        share = self._res.share
        if share is None:
            return
        record = share.take_over_confirmation(client_id, self.id)
        if record is None:
            return
        uid = str(record.get("utterance_id", ""))
        intent = str(record.get("intent", ""))
        devices = [str(d) for d in record.get("device_ids") or []]
        self._emit(
            ConfirmationCancelled(
                utterance_id=uid,
                intent=intent,
                device_ids=devices,
                reason="the connection changed before it was confirmed; nothing was done",
            )
        )
        if self._answering is not None:
            language = record.get("language") or self.config.language
            self._answering.cancelled_confirmation(uid, intent, devices, language)

    async def run(self) -> None:
        """The audio loop; runs until :meth:`close` cancels it."""
        if self.config.client_id is not None:  # a satellite known by its address
            self._take_over(self.config.client_id)
        await self._hearing.run()

    async def close(self, grace_s: float = 0.0, *, finish: bool = True) -> None:
        """Stop taking input, then end the utterances in flight: with ``finish``, let them run
        up to ``grace_s`` (shutdown); without, cancel those not yet dispatching (the client has
        gone) and give dispatches the grace period, since their commands are already out.
        Every utterance still ends with its ``metrics`` event."""
        self._closing = True
        self._hearing.close()
        self._speculation.close()
        await self._turns.close(grace_s, finish=finish)
        self._acting.drop_pending()
        if self._answering is not None:
            await self._answering.close()


def _to_wire(td: TurnDetectionSettings) -> TurnDetection:
    return TurnDetection(**td.model_dump(include=set(TurnDetection.model_fields)))
