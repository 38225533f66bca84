"""The turns of one session: one task per utterance, running its stages in order::

    speech:  transcribing ─► understanding ─► (acoustic repair) ─► acting ─► answering
    text:                    understanding ──────────────────────► acting ─► answering
    confirm message:                                                acting ─► answering

Each stage ends the turn by raising :class:`Done` (an outcome) or :class:`StageError` (an
``error`` event with a stable code); :meth:`Turns.finish` maps every outcome to events exactly
once and sends the turn's ``metrics`` event, always its last.

Full duplex: up to ``max_utterances_in_flight`` turns run at once while hearing goes on.
``cancel`` stops turns before their dispatch starts; once commands are being published they
cannot be taken back, so a dispatch always runs to its end and reports its actions."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from assistant.answers.responder import ReplySent
from assistant.protocol import (
    ErrorCode,
    MetricsEvent,
    Outcome,
    StageTimings,
    TextInput,
    TranscriptFinal,
)
from assistant.turn.acting import Acting
from assistant.turn.answering import AnsweringLike, answer_turn
from assistant.turn.events import Events
from assistant.turn.transcribing import Transcribing
from assistant.turn.types import (
    Done,
    Heard,
    SessionResources,
    SessionState,
    StageError,
    Utterance,
)
from assistant.turn.understanding import Understanding
from intents.decode import guess_is_sensitive
from intents.evidence import weigh_reading
from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)

#: The longest a turn waits for the turn said before it to act (see ``Turns._in_turn``).
ORDER_WAIT_S = 10.0
#: The longest a turn's ``metrics`` waits for its reply's first audio (``Turns._reply_left``).
REPLY_AUDIO_WAIT_S = 10.0


class Turns:
    """Starts, runs, cancels and finishes one session's utterances."""

    def __init__(
        self,
        resources: SessionResources,
        state: SessionState,
        events: Events,
        transcribing: Transcribing,
        understanding: Understanding,
        acting: Acting,
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._state = state
        self._events = events
        self._transcribing = transcribing
        self._understanding = understanding
        self._acting = acting
        self._clock = clock
        #: The answering stage (None: no replies).
        self.answering: AnsweringLike | None = None
        self._counter = itertools.count(1)
        self.inflight: dict[str, Utterance] = {}
        #: The last turn started: the next one acts after it has (see ``_in_turn``).
        self._last: asyncio.Event | None = None

    def new(self) -> Utterance:
        """A new utterance (not started)."""
        return Utterance(id=f"{self._state.id}-{next(self._counter)}", started=self._clock())

    # -- starting turns ------------------------------------------------------------------

    def text(self, msg: TextInput) -> None:
        """A ``text`` message: its turn starts at understanding."""
        utt = self.new()
        self._spawn(utt, self._run_text(utt, msg))

    def speech(self, utt: Utterance, audio: Any, audio_end_ms: int | None) -> None:
        """The end of a turn heard (``speech.stopped`` sent): its turn starts at transcribing."""
        self._spawn(utt, self._run_speech(utt, audio, audio_end_ms))

    def intent(self, intent: Intent) -> None:
        """An intent that needs no recognition (a ``confirm`` message): straight to acting."""
        utt = self.new()
        self._spawn(utt, self._run_intent(utt, intent))

    def _spawn(self, utt: Utterance, body: Coroutine[Any, Any, None]) -> bool:
        """Start an utterance's stages as a task; ``body`` ends by raising :class:`Done`."""
        if len(self.inflight) >= self._res.settings.limits.max_utterances_in_flight:
            body.close()
            self._events.error(
                ErrorCode.BUSY,
                "too many utterances in flight on this session",
                utterance_id=utt.id,
            )
            self.finish(utt, "error")
            return False
        utt.image, self._state.image = self._state.image, None
        utt.after, self._last = self._last, utt.acted
        self.inflight[utt.id] = utt
        utt.task = asyncio.get_running_loop().create_task(
            self._guard(utt, body), name=f"utterance-{utt.id}"
        )
        utt.task.add_done_callback(functools.partial(self._forget, utt, body))
        return True

    def _forget(
        self, utt: Utterance, body: Coroutine[Any, Any, None], _task: asyncio.Task[None]
    ) -> None:
        self.inflight.pop(utt.id, None)
        if utt.stage != "done":
            # Cancelled before its first step: the body never ran, so account for it here.
            body.close()
            self.finish(utt, "cancelled")

    # -- the stages, in order ------------------------------------------------------------

    async def _run_text(self, utt: Utterance, msg: TextInput) -> None:
        language = msg.language or self._state.config.language
        utt.text, utt.language = msg.text, language
        self._events.emit(
            TranscriptFinal(utterance_id=utt.id, text=msg.text, language=language, source="text")
        )
        await self._understand_and_act(utt, msg.text, language)

    async def _run_speech(self, utt: Utterance, audio: Any, audio_end_ms: int | None) -> None:
        heard = await self._transcribing.transcribe(utt, audio, audio_end_ms)
        utt.text, utt.language = heard.text, heard.language
        await self._understand_and_act(
            utt, heard.text, heard.language, heard.known, heard.heard, audio
        )

    async def _run_intent(self, utt: Utterance, intent: Intent) -> None:
        utt.text, utt.language = intent.text, intent.language
        await self._in_turn(utt)
        await self._acting.act_on(utt, intent)

    async def _in_turn(self, utt: Utterance) -> None:
        """Wait until the turn said before this one has published its commands or ended, so
        "turn off the light … turn it on again" is carried out in that order even when the
        second turn was understood first. Bounded: a stuck turn does not hold the next one
        for longer than ``ORDER_WAIT_S``."""
        if utt.after is None or utt.after.is_set():
            return
        t0 = self._clock()
        try:
            await asyncio.wait_for(utt.after.wait(), ORDER_WAIT_S)
        except TimeoutError:
            logger.warning(
                "session %s: %s acts without waiting for the turn before it", self._state.id, utt.id
            )
        utt.timings["order_wait"] = self._clock() - t0

    async def _understand_and_act(
        self,
        utt: Utterance,
        text: str,
        lang: str | None,
        known: Recognition | None = None,
        heard: Heard | None = None,
        audio: Any = None,
    ) -> None:
        utt.stage = "intent"
        t0 = self._clock()
        if known is None:
            known = await self._understanding.recognize(utt, text, lang, heard, audio)
        result = await self._transcribing.repair(utt, known, heard, audio, lang)
        if heard is not None:
            result = self._weigh(result, heard, rescued=known.intent is None)
        utt.timings["intent"] = self._clock() - t0
        await self._in_turn(utt)
        await self._acting.act(utt, result, text, lang)

    def _weigh(self, result: Recognition, heard: Heard, *, rescued: bool = False) -> Recognition:
        """A guessed custom reading weighed against Whisper's words (``intents.evidence``):
        values all written by Whisper are not refused for a low ASR score; a value no
        hypothesis has anything like ("a big fan" repaired as "a bit of cream") is the
        scorer's or the grammar's choice, kept just below the bar, where it is asked back —
        or, ``rescued`` (the text parsed to nothing), refused."""
        result = weigh_reading(self._res.recognizer, result, [h.text for h in heard.hypotheses],
                               rescued=rescued)
        texts = [h.text for h in heard.hypotheses]
        result = zh_heard_alike(self._res.recognizer, result, texts[0] if texts else "")
        return zh_disputed(self._res.recognizer, result, texts)

    # -- the end of a turn ---------------------------------------------------------------

    async def _guard(self, utt: Utterance, body: Coroutine[Any, Any, None]) -> None:
        """Run an utterance's stages; map every outcome to events, exactly once."""
        outcome: Outcome = "error"
        try:
            await body
        except Done as d:
            outcome = d.outcome
        except StageError as e:
            utt.error = e.code
            self._events.error(e.code, e.message, utterance_id=utt.id)
        except asyncio.CancelledError:
            outcome = "cancelled"
            self.finish(utt, outcome)
            raise
        except Exception:
            logger.exception("session %s: internal error on %s", self._state.id, utt.id)
            utt.error = ErrorCode.INTERNAL_ERROR
            self._events.error(ErrorCode.INTERNAL_ERROR, "internal error", utterance_id=utt.id)
        sent = self._answer(utt, outcome)
        if sent is not None:
            try:
                await self._reply_left(utt, sent)
            except asyncio.CancelledError:
                self.finish(utt, outcome)
                raise
        self.finish(utt, outcome)

    def _answer(self, utt: Utterance, outcome: Outcome) -> ReplySent | None:
        if self.answering is None or utt.cancelled:
            return None
        utt.stage = "answer"
        try:
            return answer_turn(self.answering, utt, outcome)
        except Exception:
            # A reply must not break a turn: its actions are done and reported.
            logger.exception("session %s: answering failed on %s", self._state.id, utt.id)
            return None

    async def _reply_left(self, utt: Utterance, sent: ReplySent) -> None:
        """The ``speech_end_to_reply_text`` / ``_audio`` timings: speech end (or the text's
        arrival) → the reply's ``response.text`` and its first ``response.audio`` chunk. The
        turn's ``metrics`` waits for that chunk (at most ``REPLY_AUDIO_WAIT_S``; a reply
        interrupted first has none); the session's next turn does not."""
        start = utt.speech_end_t if utt.speech_end_t is not None else utt.started
        utt.timings["speech_end_to_reply_text"] = max(0.0, sent.text_t - start)
        if sent.first_audio is None:
            return
        utt.released()
        try:
            t = await asyncio.wait_for(asyncio.shield(sent.first_audio), REPLY_AUDIO_WAIT_S)
        except TimeoutError:
            logger.warning(
                "session %s: no reply audio for %s after %.0f s; metrics without it",
                self._state.id, utt.id, REPLY_AUDIO_WAIT_S,
            )  # fmt: skip
            return
        if t is not None:
            utt.timings["speech_end_to_reply_audio"] = max(0.0, t - start)

    def finish(self, utt: Utterance, outcome: Outcome) -> None:
        """The turn's ``metrics`` event (once; a cancelled turn reports ``cancelled``)."""
        utt.released()
        if utt.stage == "done":
            return
        utt.stage = "done"
        if outcome != "cancelled" and utt.cancelled:
            outcome = "cancelled"
        t = utt.timings
        t["total"] = self._clock() - utt.started
        if utt.vad_s:
            t["vad"] = utt.vad_s
        m = self._res.metrics
        m.utterances_total.inc(outcome)
        for stage in ("vad", "endpoint_wait", "asr", "intent", "dispatch"):
            if stage in t:
                m.stage_seconds.observe(t[stage], stage)
        if "speech_end_to_action" in t:
            m.speech_end_to_action.observe(t["speech_end_to_action"])
        if "endpoint_to_action" in t:
            m.endpoint_to_action.observe(t["endpoint_to_action"])
        start = "text" if utt.speech_end_t is None else "speech"
        for part in ("text", "audio"):
            if f"speech_end_to_reply_{part}" in t:
                m.speech_end_to_reply.observe(t[f"speech_end_to_reply_{part}"], part, start)
        self._events.emit(
            MetricsEvent(
                utterance_id=utt.id,
                outcome=outcome,
                timings_ms=StageTimings(**{k: round(v * 1000, 2) for k, v in t.items()}),
                audio_ms=utt.audio_ms,
            )
        )

    # -- cancel and close ----------------------------------------------------------------

    def cancel(self, utterance_id: str | None) -> None:
        """Cancel turns in flight (all, or the one with this id) that are not dispatching."""
        for utt in list(self.inflight.values()):
            if utterance_id not in (None, utt.id):
                continue
            # A dispatch in progress has published or is publishing; let it report. A turn
            # answering has acted: ``cancel`` stops its reply (``Answering.cancel``).
            if (
                utt.stage not in ("dispatch", "answer")
                and utt.task is not None
                and not utt.task.done()
            ):
                utt.cancelled = True
                utt.cancel_event.set()  # ends a model-tier request in its worker thread
                utt.task.cancel()

    async def close(self, grace_s: float, *, finish: bool) -> None:
        """End the turns in flight: with ``finish``, let them run up to ``grace_s``; without,
        cancel those not yet dispatching and give dispatches the grace period."""
        if not finish:
            for utt in self.inflight.values():
                if utt.stage not in ("dispatch", "answer") and utt.task is not None:
                    utt.cancelled = True
                    utt.cancel_event.set()
                    utt.task.cancel()
        tasks = [u.task for u in self.inflight.values() if u.task is not None]
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def zh_heard_alike(recognizer: Any, result: Recognition, heard: str) -> Recognition:
    """A guessed Mandarin home command below the bar whose words are Whisper's up to near
    syllables (``assistant.audio.zh.heard_alike``: 战亭音乐 read as 暂停音乐) reaches the bar
    (``security.min_confidence``) and no more; never a sensitive one. Measured on the zh-CN
    clips at 10 dB (docs/benchmarks.md)."""
    intent = result.intent
    if (intent is None or not result.guessed or intent.source == "custom"
            or not intent.language.lower().startswith("zh") or not heard
            or result.in_place_of is not None):
        return result
    security = getattr(getattr(recognizer, "config", None), "security", None)
    bar = float(getattr(security, "min_confidence", 0.5))
    if intent.confidence >= bar:
        return result
    from assistant.audio.zh import heard_alike

    try:
        if guess_is_sensitive(recognizer, intent) or not heard_alike(heard, intent.text):
            return result
    except AttributeError:  # a recognizer without a home (tests' fakes)
        return result
    reason = f"{result.reason} [Whisper's syllables, some near: heard alike]"
    new = intent.model_copy(update={"confidence": bar, "reason": reason})
    return result.model_copy(update={"intent": new, "reason": reason})


#: At most this many other readings are parsed to look for a dispute (a few ms each).
ZH_DISPUTE_READINGS = 6


def zh_disputed(recognizer: Any, result: Recognition, readings: list[str]) -> Recognition:
    """A Mandarin order whose device the recognizer guessed by its characters (source
    ``fuzzy``: 收房的灯 read as 厨房的灯, 房的灯 in common) is held below the bar when another
    reading of the same audio (a lower hypothesis, the pinyin repair: 书房的灯, shou ~ shu)
    gives the same order for another device: two guesses disagree, so the server asks rather
    than act on either. Measured: "关掉书房的灯" at 10 dB turned the kitchen light off."""
    intent = result.intent
    if (intent is None or intent.source != "fuzzy"
            or not intent.language.lower().startswith("zh")):
        return result
    security = getattr(getattr(recognizer, "config", None), "security", None)
    bar = float(getattr(security, "min_confidence", 0.5))
    targets = (sorted(intent.slots.device_ids or []), intent.slots.scene)
    if intent.confidence < bar or targets == ([], None):
        return result
    # The pinyin repair of the reading itself first: the speculative look's hypotheses, which
    # may end the turn, come without it.
    others = [r for r in dict.fromkeys([*_zh_repaired(recognizer, intent.text), *readings])
              if r and r != intent.text]
    for text in others[:ZH_DISPUTE_READINGS]:
        other = recognizer.recognize(text, language=intent.language).intent
        if other is None or other.name != intent.name:
            continue
        theirs = (sorted(other.slots.device_ids or []), other.slots.scene)
        if theirs != targets and theirs != ([], None):
            from intents.evidence import BELOW_BAR

            reason = f"{result.reason} [another reading, {text!r}, names another device]"
            new = intent.model_copy(update={"confidence": max(0.0, bar - BELOW_BAR),
                                            "reason": reason})
            return result.model_copy(update={"intent": new, "reason": reason})
    return result


@functools.lru_cache(maxsize=4)
def _zh_repair_for(vocabulary: tuple[str, ...]) -> Any:
    from assistant.audio.zh import PinyinRepair

    return PinyinRepair(vocabulary)


def _zh_repaired(recognizer: Any, text: str) -> list[str]:
    """``text``'s pinyin repair for the recognizer's home (none without a vocabulary)."""
    from assistant.audio.zh import readings

    try:
        vocabulary = tuple(recognizer.vocabulary("zh-CN"))
    except (AttributeError, TypeError):  # a recognizer without a home (tests' fakes)
        return []
    return readings(text, _zh_repair_for(vocabulary))[1:]
