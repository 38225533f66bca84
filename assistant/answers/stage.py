"""The answering stage: what a session calls to reply, to run timer/clock intents, and to stop
a reply the user speaks over. The session holds one :class:`Answering`; the server holds one
:class:`AnswerServices` (the home, the shared voice, the timers) for every session.

Hooks the session calls (all on the event loop, none blocks):

* :meth:`Answering.update` — ``session.update.reply`` (audio on/off, rate);
* :meth:`Answering.handles` / :meth:`Answering.act_local` — a timer/clock intent, instead of
  the dispatcher;
* :meth:`Answering.answer` — the turn is over (before its ``metrics``): ``response.text``,
  then the audio;
* :meth:`Answering.barge_in` — ``speech.started`` while a reply plays;
* :meth:`Answering.close` — the connection is gone (its timers go on, reporting to the audit
  log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.answers.clarify import ambiguous_targets, choose, named_area
from assistant.answers.reply import Reply, cancelled_confirmation_reply, compose_reply
from assistant.answers.responder import ReplySent, Responder
from assistant.answers.timers import Timer, TimerManager, answer_local, finished_reply
from assistant.answers.tts import Speaker, split_head, split_sentences
from assistant.protocol import ReplyConfig, ReplySettings, TimerFinished
from devices.actions import ActionResult
from devices.registry import DeviceKind, HomeConfig
from intents.schema import Intent, IntentName, Slots
from intents.timers import LOCAL_INTENTS

logger = logging.getLogger(__name__)


@dataclass
class AnswerServices:
    """Shared by every session of a server: built once by :mod:`assistant.app`."""

    home: HomeConfig
    speaker: Speaker | None = None
    timers: TimerManager = field(default_factory=TimerManager)

    def confirmations(self, language: str) -> list[str]:
        """Every device's on/off (open/close, pause/resume/next) confirmation in
        ``language`` ("Turned on the kitchen light."), the replies a home hears most (for
        :meth:`Speaker.prefill`)."""
        pairs = {
            DeviceKind.LIGHT: (IntentName.LIGHT_ON, IntentName.LIGHT_OFF),
            DeviceKind.SWITCH: (IntentName.SWITCH_ON, IntentName.SWITCH_OFF),
            DeviceKind.FAN: (IntentName.FAN_ON, IntentName.FAN_OFF),
            DeviceKind.COVER: (IntentName.COVER_CLOSE, IntentName.COVER_OPEN),
            DeviceKind.MEDIA_PLAYER: (
                IntentName.MEDIA_PAUSE,
                IntentName.MEDIA_RESUME,
                IntentName.MEDIA_NEXT,
            ),
        }
        out: list[str] = []
        for d in self.home.devices:
            for name in pairs.get(d.kind, ()):
                out.append(self._confirmation(d.id, name, {}, language))
        return out + self.value_heads(language)

    def _confirmation(
        self, device_id: str, name: IntentName, slots: dict[str, Any], language: str
    ) -> str:
        """The reply to ``name`` on ``device_id`` having acted (for the prefill)."""
        intent = Intent(
            name=name,
            slots=Slots(device_ids=[device_id], **slots),
            confidence=1.0,
            source="grammar",
            reason="prefill",
            language=language,
        )
        done = [ActionResult(device_id=device_id, intent=name, status="confirmed")]
        return compose_reply(intent, done, self.home).text

    def value_heads(self, language: str) -> list[str]:
        """The part before the value of every device's set-to-a-value reply ("Set the kitchen
        light to" of "Set the kitchen light to 30%."): a reply with a value not said before
        starts with it while its value is synthesized (:func:`split_head`)."""
        values: dict[tuple[DeviceKind, str], tuple[IntentName, dict[str, Any]]] = {
            (DeviceKind.LIGHT, "brightness"): (IntentName.LIGHT_SET, {"brightness": 50}),
            (DeviceKind.CLIMATE, "temperature"): (
                IntentName.CLIMATE_SET_TEMPERATURE, {"temperature": 21.0}),
            (DeviceKind.COVER, "position"): (IntentName.COVER_SET_POSITION, {"position": 50}),
        }  # fmt: skip
        out: list[str] = []
        for d in self.home.devices:
            wanted = [values[(d.kind, c)] for c in d.capabilities if (d.kind, c) in values]
            if d.kind == DeviceKind.MEDIA_PLAYER:
                wanted.append((IntentName.MEDIA_SET_VOLUME, {"volume": 50}))
            for name, slots in wanted:
                sentences = split_sentences(self._confirmation(d.id, name, slots, language))
                cut = split_head(sentences[0]) if sentences else None
                if cut is not None:
                    out.append(cut[0])
        return out

    def prefill(self) -> None:
        """Start :meth:`Speaker.prefill` with the confirmations of every language a piper
        voice speaks (``tts.prefill``)."""
        if self.speaker is None or not self.speaker.config.prefill:
            return
        for language, engine in self.voices().items():
            if engine is not None and engine.startswith("piper:"):
                self.speaker.prefill(self.confirmations(language), language)

    def voices(self) -> dict[str, str | None]:
        """Which engine speaks each reply language (``session.created.tts``)."""
        if self.speaker is None:
            return {"en": None, "zh-CN": None}
        return self.speaker.voices()


class Answering:
    """One session's answering stage."""

    def __init__(
        self,
        services: AnswerServices,
        emit: Callable[[Any], None],
        *,
        session_id: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._services = services
        self._emit = emit
        self._session_id = session_id
        kw: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.responder = Responder(emit, services.home, services.speaker, **kw)
        #: Replies composed by :meth:`act_local` for the turn that asked, sent by
        #: :meth:`answer`.
        self._local: dict[str, Reply] = {}
        self._client_id: str | None = None
        services.timers.attach(session_id, self._timer_finished)

    @property
    def config(self) -> ReplyConfig:
        return self.responder.config

    def update(self, settings: ReplySettings | None) -> ReplyConfig:
        """Apply ``session.update.reply``; returns the settings now in force."""
        if settings is not None:
            changes = settings.model_dump(exclude_none=True)
            self.responder.config = self.responder.config.model_copy(update=changes)
        return self.responder.config

    def set_client(self, client_id: str) -> None:
        """``session.update.client_id``: timers follow this id across connections."""
        self._client_id = client_id
        self._services.timers.adopt(self._session_id, client_id)

    # -- local intents (timers, the clock) ---------------------------------------------

    @staticmethod
    def handles(intent: Intent) -> bool:
        """A timer/clock intent: the session runs :meth:`act_local` instead of dispatching."""
        return intent.name in LOCAL_INTENTS

    def act_local(self, utterance_id: str, intent: Intent) -> ActionResult:
        """Carry out a timer/clock intent. Returns its one final action (``confirmed``, device
        null) for the ``action`` event; the reply is sent by :meth:`answer`."""
        reply = answer_local(
            intent,
            self._services.timers,
            owner=self._session_id,
            utterance_id=utterance_id,
            client=self._client_id,
        )
        self._local[utterance_id] = reply
        return ActionResult(
            device_id=None, intent=intent.name, status="confirmed", detail=reply.text
        )

    async def settled(self) -> None:
        """What :meth:`act_local` changed is shared with the other replicas (on the broker)
        before the turn reports it done."""
        await self._services.timers.settled()

    # -- clarifying questions ---------------------------------------------------------

    def ambiguous(self, intent: Intent) -> list[str] | None:
        """The devices to ask about ("Which light: kitchen or living room?") when ``intent``
        names one device by its kind and the home has several; else None."""
        return ambiguous_targets(intent, self._services.home)

    def choose(self, text: str, choices: Sequence[str]) -> list[str]:
        """The devices an answer to "which one?" picks ([]: not an answer)."""
        return choose(text, choices, self._services.home)

    def room(self, text: str) -> str | None:
        """The room an answer to "Which room are you in?" names (None: not an answer)."""
        return named_area(text, self._services.home)

    # -- replies ----------------------------------------------------------------------

    def prepare(self, intent: Intent) -> None:
        """Called as ``intent`` is dispatched: the reply it gets if every device confirms is
        known already, so its audio is synthesized while the devices answer (only with reply
        audio on; a query's answer depends on state, a sensitive action may ask first)."""
        if (
            not self.responder.config.audio
            or intent.is_query
            or intent.is_sensitive
            or not intent.slots.device_ids
        ):
            return
        try:
            expected = [
                ActionResult(device_id=d, intent=intent.name, status="confirmed")
                for d in dict.fromkeys(intent.slots.device_ids)
            ]
            self.responder.prepare(self.responder.compose(intent, expected))
        except Exception:
            logger.debug("no early synthesis for %s", intent.name, exc_info=True)

    def answer(
        self,
        utterance_id: str,
        intent: Intent | None,
        results: Sequence[ActionResult],
        *,
        reason: str = "",
        language: str | None = None,
        text: str = "",
        failed: bool = False,
        speech_end_t: float | None = None,
    ) -> ReplySent | None:
        """The turn is over: say so; when it left (for the turn's ``metrics``). Never raises
        (a reply must not break a turn)."""
        try:
            reply = self._local.pop(utterance_id, None) or self.responder.compose(
                intent, results, reason=reason, language=language, text=text, failed=failed
            )
            return self.responder.say(utterance_id, reply, speech_end_t=speech_end_t)
        except Exception:
            logger.exception("session %s: no reply for %s", self._session_id, utterance_id)
            return None

    def cancelled_confirmation(
        self, utterance_id: str, intent: str, device_ids: list[str], language: str | None
    ) -> None:
        """Say that a sensitive action waiting for a "yes" on another connection of this
        client was cancelled (``confirmation.cancelled``)."""
        try:
            reply = cancelled_confirmation_reply(self._services.home, language, intent, device_ids)
            self.responder.say(utterance_id, reply)
        except Exception:
            logger.exception("session %s: no reply for a cancelled confirmation", self._session_id)

    def barge_in(self) -> bool:
        """The user started speaking: stop the reply being sent (``response.interrupted``)."""
        return self.responder.interrupt("barge_in")

    def cancel(self) -> bool:
        return self.responder.interrupt("cancel")

    def _timer_finished(self, timer: Timer) -> None:
        self._emit(
            TimerFinished(
                utterance_id=timer.utterance_id,
                timer_id=timer.id,
                duration_s=timer.duration_s,
                name=timer.name,
            )
        )
        self.responder.say(timer.utterance_id, finished_reply(timer))

    async def close(self) -> None:
        self._services.timers.detach(self._session_id)
        await self.responder.close()
