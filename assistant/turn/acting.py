"""Acting: a recognition -> the ``intent`` event -> the dispatcher -> ``action`` events.

Confirmations live here: a sensitive intent the dispatcher refused for want of confirmation
waits (``confirmation_window_s``) for a "yes" (spoken, or a ``confirm`` message), which carries
it out, or a "no", which withdraws it. Outside that window "yes" and "no" mean nothing.
With a client id, the pending confirmation is also a record on the broker
(:mod:`assistant.replicas`): a "yes" acts only while that record is still this session's, so a
session of the same client that took over (a reconnect, perhaps to another replica) has
cancelled it for good, and told the user.

A guessed reading of noisy speech just below ``security.min_confidence`` (within
``devices.dispatcher.ASK_BACK_BAND``; not sensitive) is asked back instead of refused: "Did
you mean: a large dark roast house coffee with brown sugar? Say yes." A "yes" within the
window carries it out; any other turn drops the question.

Once commands are being published they cannot be taken back, so a dispatch always runs to its
end and reports its actions (the session does not cancel an utterance in this stage)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, Final

from assistant.protocol import ActionEvent, ErrorCode, IntentEvent
from assistant.turn.amend import Amends
from assistant.turn.answering import AnsweringLike
from assistant.turn.events import Events
from assistant.turn.types import Done, SessionResources, SessionState, StageError, Utterance
from devices.actions import ActionResult
from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)


class Acting:
    """Dispatch and confirmation for one session. Every path ends by raising
    :class:`Done` (``actions`` or ``no_intent``) or :class:`StageError`."""

    def __init__(
        self,
        resources: SessionResources,
        state: SessionState,
        events: Events,
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._state = state
        self._events = events
        self._clock = clock
        #: A sensitive intent refused for want of confirmation, and its deadline.
        self._pending: tuple[Intent, float] | None = None
        #: The client id the pending confirmation was asked under (its broker record's key).
        self._pending_client: str | None = None
        #: Whether the pending intent is a guess asked back (not a sensitive action).
        self._asked_back = False
        #: A command that asked "which one?": the intent, its candidates and the deadline.
        self._clarify: tuple[Intent, list[str], float] | None = None
        #: A command about "here" with no room known: its text, language and the deadline
        #: for a turn naming the room ("Which room are you in?" — "the kitchen").
        self._room_question: tuple[str, str | None, float] | None = None
        #: The session's answering stage: timer and clock intents are carried out there, not
        #: by the dispatcher (None: no replies, no timers).
        self.answering: AnsweringLike | None = None
        #: The last custom order published, which a fragment right after it may complete.
        self.amends = Amends(resources, state, clock)

    async def act(self, utt: Utterance, result: Recognition, text: str, lang: str | None) -> None:
        """The ``intent`` event for ``result`` (a bare yes/no answers a pending
        confirmation), then its dispatch. The intent becomes the next utterance's context."""
        if result.intent is None and self._pending is not None:
            result = answer_to_confirmation(text, lang) or result
        if self._asked_back and (result.intent is None
                                 or result.intent.name not in ("confirm", "cancel")):
            self._pending, self._asked_back = None, False  # another turn: the guess is dropped
        result = self._answer_to_question(result, text)
        result = await self._answer_to_room_question(result, text)
        amends: str | None = None
        if self.amends.last is not None:
            # "… house coffee" + "with some almond milk", "… kitchen light" + "no wait, the
            # living room light": the rest of the command before it, or its correction
            amended = await self.amends.propose(utt, text, lang, result, self._where())
            if amended is not None:
                result, amends = amended.recognition, amended.amends
        utt.recognition = result
        intent = result.intent
        self._events.emit(
            IntentEvent(
                utterance_id=utt.id,
                intent=intent,
                reason=result.reason,
                confidence=None if intent is None else intent.confidence,
                amends=amends,
            )
        )
        if intent is None:
            if result.needs_area and self.answering is not None:
                window = self._res.confirmation_window_s
                self._room_question = (text, lang, self._clock() + window)
            raise Done("no_intent")
        if self._ask_back(result):
            self._asking_back(utt, intent)
        self._state.last_intent = intent
        self.amends.other_turn(utt)  # a new command: the order before it is done
        if not result.also:
            # a custom order's payload says it replaces the order (a built-in needs no mark)
            await self.dispatch(utt, intent, amends=amends if intent.source == "custom" else None)
        # "turn off the lights and lock the door": each intent in turn, the first one's
        # timings; the turn ends after the last
        done: Done | None = None
        for i, each in enumerate((intent, *result.also)):
            timings = dict(utt.timings)
            try:
                await self.dispatch(utt, each)
            except Done as d:
                done = done or d
            if i:
                utt.timings = timings
        utt.intent = intent
        assert done is not None
        raise done

    async def act_on(self, utt: Utterance, intent: Intent) -> None:
        """An intent that needs no recognition (a ``confirm`` message): its event, then its
        dispatch."""
        self._events.emit(
            IntentEvent(
                utterance_id=utt.id,
                intent=intent,
                reason=intent.reason,
                confidence=intent.confidence,
            )
        )
        await self.dispatch(utt, intent)

    def _ask_back(self, result: Recognition) -> bool:
        """Whether ``result`` is a guess to ask back: guessed, a grammar sentence
        (``ASKED_SOURCES``), one command that moves a device, and the dispatcher's
        :meth:`~devices.dispatcher.Dispatcher.may_ask_back`."""
        from intents.schema import QUERY_INTENTS

        intent = result.intent
        check = getattr(self._res.dispatcher, "may_ask_back", None)
        if (intent is None or not result.guessed or result.also or not intent.text
                or intent.source not in ASKED_SOURCES
                or intent.name in QUERY_INTENTS or not callable(check)
                or (self.answering is not None and self.answering.handles(intent))):
            return False
        return bool(check(intent))

    def _asking_back(self, utt: Utterance, intent: Intent) -> None:
        """Ask ``intent`` back: it waits, at the bar, for a "yes"."""
        bar = float(self._res.dispatcher.config.security.min_confidence)  # type: ignore[attr-defined]
        said = intent.text.strip().rstrip(".?!,;:。？！，")
        reason = f"{intent.reason} [asked back: {said!r}; a yes carries it out]"
        waiting = intent.model_copy(update={"confidence": bar, "reason": reason})
        self._pending = (waiting, self._clock() + self._res.confirmation_window_s)
        self._pending_client, self._asked_back = None, True
        result = ActionResult(device_id=None, intent=intent.name, status="rejected",
                              detail=f"{ASKED_BACK}: {said}", extra={"asks_back": said})
        utt.actions.append(result)
        utt.released()
        self._events.emit(ActionEvent(utterance_id=utt.id, intent=intent.name, status="rejected",
                                      final=True, detail=result.detail))
        utt.intent = intent
        raise Done("actions")

    def _where(self) -> dict[str, str]:
        area = self._state.config.area
        return {} if area is None else {"area": area}

    def _answer_to_question(self, result: Recognition, text: str) -> Recognition:
        """After "Which light: kitchen or living room?", a turn that names one of them (and is
        no new command) carries out the waiting intent on it."""
        asked, self._clarify = self._clarify, None
        if asked is None or self.answering is None or self._clock() > asked[2]:
            return result
        intent, choices, _ = asked
        chosen = self.answering.choose(text, choices)
        if not chosen:
            return result
        slots = intent.slots.model_copy(update={"device_ids": chosen})
        reason = f"answer to 'which one?': {text!r} -> {', '.join(chosen)}"
        picked = intent.model_copy(
            update={"slots": slots, "source": "context", "reason": reason, "text": text}
        )
        return Recognition(intent=picked, reason=reason)

    async def _answer_to_room_question(self, result: Recognition, text: str) -> Recognition:
        """After "Which room are you in?", a turn naming one room (and no new command)
        carries out the command that asked, in that room: that command only; the session's
        area stays unknown (a phone moves between rooms)."""
        asked, self._room_question = self._room_question, None
        if asked is None or self.answering is None or self._clock() > asked[2]:
            return result
        if result.intent is not None and result.intent.source != "context":
            return result  # a command of its own
        area = self.answering.room(text)
        if area is None:
            return result
        said, lang, _ = asked
        again = await asyncio.to_thread(
            self._res.recognizer.recognize, said, language=lang, area=area
        )
        if again.intent is None:
            return result
        reason = f"answer to 'which room?': {text!r} -> {area}; {again.reason}"
        return again.model_copy(
            update={"intent": again.intent.model_copy(update={"reason": reason}),
                    "reason": reason}
        )

    def _take_pending(self) -> Intent | None:
        pending, self._pending = self._pending, None
        self._asked_back = False
        client, self._pending_client = self._pending_client, None
        share = self._res.share
        if pending is not None and share is not None and client is not None:
            if not share.confirmation_holds(client, self._state.id):
                # Another session of this client took over and cancelled it (and said so).
                logger.info(
                    "session %s: pending %s was cancelled by another session",
                    self._state.id,
                    pending[0].name,
                )
                return None
            share.confirmation_settled(client, self._state.id)
        if pending is None or self._clock() > pending[1]:
            return None
        return pending[0]

    def drop_pending(self) -> None:
        """The session is closing: a confirmation still waiting is not carried out. The audit
        log says so; with a client id, its broker record stays for the client's next session,
        which tells the user (:meth:`assistant.replicas.Share.take_over_confirmation`)."""
        pending, self._pending = self._pending, None
        if pending is None or self._clock() > pending[1] or self._res.audit is None:
            return
        intent = pending[0]
        self._res.audit.record(
            {
                "event": "confirmation.dropped",
                "session": self._state.id,
                "client_id": self._pending_client,
                "intent": intent.name,
                "device_ids": list(intent.slots.device_ids),
                "reason": "the session closed before confirming; nothing was done",
            }
        )

    async def dispatch(self, utt: Utterance, intent: Intent, amends: str | None = None) -> None:
        """Carry out ``intent`` (or the pending one it confirms); one ``action`` event per
        device and status; the ``dispatch`` and ``*_to_action`` timings."""
        utt.stage = "dispatch"
        utt.intent = intent
        t0 = self._clock()
        confirmed = False
        withdrawn: Intent | None = None
        if intent.name == "confirm":
            # "yes" (spoken or a confirm message) carries out the sensitive action that was
            # waiting for it, if it is still within the confirmation window.
            pending = self._take_pending()
            if pending is not None:
                intent, confirmed = pending, True
                utt.intent = intent
        elif intent.name == "cancel":
            withdrawn = self._take_pending()
        sent: set[tuple[str | None, str]] = set()
        first_ack: list[float] = []
        before: dict[str, Any] = {}

        def on_result(r: ActionResult) -> None:
            key = (r.device_id, r.status)
            if key in sent:
                return
            sent.add(key)
            if r.status == "published":
                self.amends.published(utt, intent, before)
            utt.actions.append(r)
            utt.released()
            if r.published_at is not None and not first_ack:
                first_ack.append(r.published_at)
            self._events.emit(
                ActionEvent(
                    utterance_id=utt.id,
                    intent=r.intent,
                    status=r.status,
                    final=r.final,
                    device_id=r.device_id,
                    topic=r.topic,
                    payload=r.payload,
                    detail=r.detail,
                    state=r.state,
                )
            )

        if withdrawn is not None:
            on_result(
                ActionResult(
                    device_id=None,
                    intent=withdrawn.name,
                    status="rejected",
                    detail="cancelled before confirmation; nothing was done",
                )
            )
            raise Done("actions")
        if self.answering is not None and self.answering.handles(intent):
            done = self.answering.act_local(utt.id, intent)  # timers, the clock
            await self.answering.settled()  # on the broker before it is reported (replicas)
            on_result(done)
            utt.timings["dispatch"] = self._clock() - t0
            raise Done("actions")
        choices = None if self.answering is None else self.answering.ambiguous(intent)
        if choices:
            # "turn on the light" with five lights: ask, act on the answer (next turn).
            window = self._res.confirmation_window_s
            self._clarify = (intent, choices, self._clock() + window)
            on_result(
                ActionResult(
                    device_id=None,
                    intent=intent.name,
                    status="rejected",
                    detail=f"which one? {', '.join(choices)}",
                    extra={"choices": choices},
                )
            )
            utt.timings["dispatch"] = self._clock() - t0
            raise Done("actions")
        if self.answering is not None:
            self.answering.prepare(intent)  # its likely reply, synthesized meanwhile
        before = self.amends.snapshot(intent)  # what a correction of it would put back
        try:
            more = {} if amends is None else {"amends": amends}
            results = await self._res.dispatcher.dispatch(
                intent, on_result=on_result, confirmed=confirmed, **more
            )
        except Exception as e:
            logger.exception("session %s: dispatch failed on %s", self._state.id, utt.id)
            raise StageError(
                ErrorCode.DISPATCH_FAILED, "the action could not be carried out"
            ) from e
        for r in results:
            on_result(r)  # finals the callback did not see (dedup by device and status)
        if any(r.extra.get("needs_confirmation") for r in results):
            window = self._res.confirmation_window_s
            self._pending = (intent, self._clock() + window)
            self._pending_client = client = self._state.config.client_id
            if self._res.share is not None and client is not None:
                self._res.share.confirmation_asked(client, self._state.id, utt.id, intent, window)
        if not any(r.final for r in results):
            on_result(
                ActionResult(
                    device_id=None, intent=intent.name, status="rejected", detail="nothing to do"
                )
            )
        if first_ack:
            ack = first_ack[0]
            utt.timings["dispatch"] = max(0.0, ack - t0)
            if utt.speech_end_t is not None:
                utt.timings["speech_end_to_action"] = max(0.0, ack - utt.speech_end_t)
            if utt.endpoint_t is not None:
                utt.timings["endpoint_to_action"] = max(0.0, ack - utt.endpoint_t)
        else:
            utt.timings["dispatch"] = self._clock() - t0
        raise Done("actions")


#: The ``detail`` of the ``action`` that asks a guess back (then ": " and what was heard).
ASKED_BACK: Final = "not sure I heard it right; say yes to confirm"

#: The tiers whose guesses are asked back: a full sentence of the grammar (built-in or custom).
#: The robust tier's readings below the bar are mostly chatter half-matched ("He opened a new
#: coffee shop downtown" → the coffee maker off, 0.42): refused, not asked about.
ASKED_SOURCES: Final = frozenset({"grammar", "custom"})

#: Answers to "please confirm", recognized only while a confirmation is pending (the grammar
#: has no sentences for them, and outside that moment they mean nothing).
_YES = frozenset({"yes", "yeah", "yep", "yes please", "confirm", "do it", "sure", "ok", "okay",
                  "是", "是的", "对", "确认", "好", "好的"})  # fmt: skip
_NO = frozenset({"no", "nope", "no thanks", "don't", "do not", "不", "不要", "取消"})


def answer_to_confirmation(text: str, language: str | None) -> Recognition | None:
    """``confirm``/``cancel`` for a bare yes/no, else None."""
    words = re.sub(r"[^\w\s']", " ", text.lower()).split()
    phrase = " ".join(words)
    if phrase in _YES:
        name = "confirm"
    elif phrase in _NO:
        name = "cancel"
    else:
        return None
    intent = Intent(
        name=name,
        confidence=1.0,
        source="context",
        reason=f"answer to a pending confirmation: {phrase!r}",
        text=text,
        language=language or "en",
    )
    return Recognition(intent=intent, reason=intent.reason)
