"""Speculation (part of hearing): transcribe at each pause in speech, so that the final
transcript is ready when the turn ends, and end the turn early on a complete command.

At a pause (``SpeechPaused``) a *look* transcribes the audio so far: a cheap one
(``speculation_beam_size``). Its text goes out as ``transcript.partial`` and to the grammar:
words that form a complete command as heard (:func:`.understanding.ends_turn`) arm an early end
of the turn (the front end's ``set_complete``). A cheap look that does not parse escalates to
the final settings: at once when no ASR job is queued or running, else once the silence has
lasted ``speculation_escalate_ms``. Speech resuming
makes the look stale; the latest pause supersedes earlier ones (a queued job is dropped).

When the turn ends on exactly the audio of a look, :meth:`Speculator.take` hands it to the
transcribing stage as the final transcript (a cheap look only if it parsed). A final-settings
look that does not end the turn starts, while the ASR is idle, what the final pass would do
next: the full-window retry of a text it would retry, or the acoustic check of a guessed
reading (noisy speech), so that they run during the silence that ends the turn rather than
after it (:meth:`Speculator.retried_ahead`, :meth:`Speculator.repaired_ahead`)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, Final

from assistant.asr_scheduler import SPECULATIVE, AsrScheduler
from assistant.audio.asr import looks_cut_off
from assistant.metrics import SHED_ESCALATION
from assistant.protocol import TranscriptPartial
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.types import (
    Heard,
    RepairAhead,
    SessionResources,
    SessionState,
    Speculation,
    Utterance,
    as_heard,
    pooled,
)
from assistant.turn.understanding import Understanding, ends_turn, needs_retry
from intents.extend import continuations
from intents.schema import lacks_capability

logger = logging.getLogger(__name__)

#: Silence after a complete reading that the grammar could extend before the turn ends
#: (unless the speaker's own pauses in this turn were longer: ``PAUSE_FACTOR`` times the
#: longest). Pauses inside the Picovoice coffee orders: P95 312 ms, longest 392 ms (150 clips).
EXTENDABLE_HOLD_MS: Final = 400
PAUSE_FACTOR: Final = 1.5


class Speculator:
    """The looks of one session's turns. ``current()`` is the utterance being heard;
    ``end_turn(utt, spec)`` asks the front end to end the turn early (queued behind the audio
    already received)."""

    def __init__(
        self,
        resources: SessionResources,
        state: SessionState,
        events: Events,
        jobs: AsrJobs,
        understanding: Understanding,
        *,
        current: Callable[[], Utterance | None],
        end_turn: Callable[[Utterance, Speculation], None],
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._state = state
        self._events = events
        self._jobs = jobs
        self._understanding = understanding
        self._current = current
        self._end_turn = end_turn
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._pause: tuple[str, float] | None = None  # (utterance, when the pause began)
        self._longest: tuple[str, float] = ("", 0.0)  # (utterance, its longest pause, s)

    def paused(self, utt: Utterance, audio: Any, audio_end_ms: int) -> None:
        """Speech paused: a look at the audio up to here."""
        self._pause = (utt.id, self._clock())
        self._speculate(utt, audio, audio_end_ms)

    def resumed(self, utt: Utterance) -> None:
        """Speech resumed: the look at the last pause is stale."""
        if self._pause is not None and self._pause[0] == utt.id:
            # The speaker's own pause inside this turn (its silence before the pause event
            # included): the wait after a reading that could go on adapts to it.
            pause_s = self._clock() - self._pause[1] + self._pause_ms() / 1000
            longest = self._longest[1] if self._longest[0] == utt.id else 0.0
            self._longest = (utt.id, max(longest, pause_s))
            self._pause = None
        if utt.spec is not None:
            if not utt.spec.stale:
                self._res.metrics.speculations_total.inc("stale")
            utt.spec.stale = True
            _drop_ahead(utt.spec)

    async def take(
        self, utt: Utterance, audio_end_ms: int | None
    ) -> tuple[Heard, Speculation] | None:
        """The look that stands as the final transcript of a turn that ended on
        ``audio_end_ms``, with what it heard; None: transcribe afresh."""
        spec = utt.spec
        if spec is None or spec.stale or spec.audio_end_ms != audio_end_ms:
            return None
        # The turn ended on exactly the audio transcribed at the pause: reuse it, and if it
        # is still queued behind other sessions' work, it is now a final transcription.
        self._promote(spec.job)
        try:
            heard = as_heard(await asyncio.shield(spec.future))
            if spec.provisional:
                if spec.follow is not None:
                    await asyncio.shield(spec.follow)
                if not spec.armed:
                    return None  # a cheap look that did not parse: transcribe properly
        except asyncio.CancelledError:
            raise
        except Exception:
            return None  # already logged by the speculation; transcribe afresh
        self._res.metrics.speculations_total.inc("reused")
        if spec.finished is not None:
            utt.timings["speculation_asr"] = spec.finished - spec.started
        return heard, spec

    def repaired_ahead(
        self, utt: Utterance, result: Any, heard: Heard, language: str | None
    ) -> asyncio.Future[Any] | None:
        """The acoustic repair started at the pause the turn ended on, when the final pass
        reached the very reading it checks (same recognition, hypotheses and language):
        promoted to a final job; None: repair afresh."""
        spec = utt.spec
        ahead = None if spec is None or spec.stale else spec.ahead
        if (ahead is None or ahead.future.cancelled() or ahead.recognition is not result
                or ahead.hypotheses != tuple(heard.hypotheses) or ahead.language != language):
            return None
        self._promote(ahead.job)
        self._res.metrics.speculations_total.inc("repair_reused")
        return ahead.future

    async def retried_ahead(self, utt: Utterance) -> tuple[Heard, Any] | None:
        """The full-window retry started at the pause the turn ended on (its pooled
        transcription and reading), promoted to a final job; None: none was started."""
        spec = utt.spec
        retry = None if spec is None or spec.stale else spec.retry
        if retry is None or retry.cancelled():
            return None
        assert spec is not None
        self._promote(spec.retry_job)
        try:
            got = await asyncio.shield(retry)
        except asyncio.CancelledError:
            if retry.cancelled():
                return None
            raise
        except Exception:
            return None
        self._res.metrics.speculations_total.inc("retry_reused")
        return got

    def _ahead(self, spec: Speculation, heard: Heard, result: Any) -> None:
        """While the ASR is idle, start what the final pass would do next with a
        final-settings look that did not end the turn: the full-window retry of a text it
        would retry (then the acoustic check of what that reads), else the acoustic check of
        a guessed reading. Both run during the silence that ends the turn."""
        res = self._res
        if (spec.audio is None or res.tiered is not None or res.asr_load.jobs > 0
                or self._jobs.shedding()):
            return
        if (heard.text and not heard.full_window and res.transcribe_full is not None
                and res.decoder is not None and needs_retry(result, heard.text)):
            future, job = self._jobs.submit_asr(spec.audio, SPECULATIVE, res.transcribe_full)
            future.add_done_callback(_consume_exception)
            spec.retry_job = job
            spec.retry = asyncio.get_running_loop().create_future()
            spec.retry.add_done_callback(_consume_exception)
            task = asyncio.get_running_loop().create_task(
                self._retry(spec, heard, future), name="speculation-retry")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._repair_ahead(spec, heard.hypotheses, result)

    async def _retry(self, spec: Speculation, heard: Heard,
                     future: asyncio.Future[Any]) -> None:
        out = spec.retry
        assert out is not None
        try:
            again = as_heard(await asyncio.shield(future))
            # the full window's hypotheses first when the look's text was cut off
            both = pooled(again, heard) if looks_cut_off(heard.text) else pooled(heard, again)
            language = self._state.config.language
            read = await asyncio.to_thread(
                self._understanding.grammar(heard.text, language, spec.context, both))
        except asyncio.CancelledError:
            out.cancel()
            raise
        except Exception:
            logger.warning("session %s: full-window retry ahead failed", self._state.id,
                           exc_info=True)
            out.cancel()
            return
        if out.done() or spec.stale:
            return
        if self._res.asr_load.jobs == 0:
            self._repair_ahead(spec, both.hypotheses, read)
        out.set_result((both, read))

    def _repair_ahead(self, spec: Speculation, hypotheses: Any, result: Any) -> None:
        """Start the acoustic check of ``result`` (what the final pass checks next)."""
        repair = self._res.acoustic_repair
        if repair is None or spec.audio is None or not repair.engages(result):
            return
        language = self._state.config.language
        call = functools.partial(repair.repair, spec.audio, hypotheses, result,
                                 language=language)
        future, job = self._jobs.submit(call, SPECULATIVE)
        future.add_done_callback(_consume_exception)
        spec.ahead = RepairAhead(future, job, result, tuple(hypotheses), language)

    def _promote(self, job: Any) -> None:
        """A speculative job the turn now waits for becomes a final one (if still queued)."""
        executor = self._res.asr_executor
        if job is not None and isinstance(executor, AsrScheduler):
            executor.promote(job)

    def close(self) -> None:
        """Stop following looks (the session is closing)."""
        for task in list(self._tasks):
            task.cancel()

    def _speculate(
        self, utt: Utterance, audio: Any, audio_end_ms: int, *, full: bool = False
    ) -> None:
        """Transcribe the audio up to this pause: a cheap first look, or with ``full`` the
        final settings (the escalation when the first look did not parse)."""
        settings = self._res.settings
        if not settings.speculative or self._res.transcribe is None:
            return
        old = utt.spec
        if old is not None and not old.future.done():
            # Speech resumed since that pause (a new pause only follows a resumption):
            # the latest pause is the one the turn may end on. A queued job is dropped.
            old.stale = True
            old.future.cancel()
        if old is not None:
            _drop_ahead(old)
        limit = settings.speculation_max_asr_jobs
        if limit is not None and self._res.asr_load.jobs >= limit:
            self._res.metrics.speculations_total.inc("skipped")
            return
        self._res.metrics.speculations_total.inc("escalated" if full else "started")
        provisional = not full and settings.speculation_beam_size is not None
        transcribe = self._res.transcribe_speculative if provisional else self._res.transcribe
        future, job = self._jobs.submit_asr(audio, SPECULATIVE, transcribe)
        # Its result may end up unused (speech resumed, session closed): retrieve any
        # exception here so that it is not reported as "never retrieved".
        future.add_done_callback(_consume_exception)
        spec = Speculation(
            audio_end_ms=audio_end_ms,
            future=future,
            job=job,
            provisional=provisional,
            audio=audio,
            started=self._clock(),
        )
        utt.spec = spec
        self._follow(utt, spec)

    def _follow(self, utt: Utterance, spec: Speculation) -> None:
        task = asyncio.get_running_loop().create_task(
            self._follow_look(utt, spec), name=f"speculation-{utt.id}"
        )
        spec.follow = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow_look(self, utt: Utterance, spec: Speculation) -> None:
        try:
            heard = as_heard(await asyncio.shield(spec.future))
            spec.finished = self._clock()
        except asyncio.CancelledError:
            if spec.future.cancelled():
                return  # superseded by a later pause
            raise
        except Exception:
            logger.warning("session %s: speculative ASR failed on %s", self._state.id, utt.id)
            return
        text = heard.text
        if spec.stale or not text:
            return
        if utt is not self._current() and not spec.provisional:
            return  # the turn ended; the final transcription recognizes it
        config = self._state.config
        if config.partials and utt is self._current():
            self._events.emit(TranscriptPartial(utterance_id=utt.id, text=text))
        context = self._state.last_intent
        recognize = self._understanding.grammar(text, config.language, context, heard)
        language = config.language

        def recognize_and_extend() -> tuple[Any, bool | None]:
            r = recognize()
            return r, (self._goes_on(r, text, language) if ends_turn(r, text) else None)

        try:
            result, goes_on = await asyncio.to_thread(recognize_and_extend)
        except Exception:
            logger.warning(
                "session %s: speculative recognition failed", self._state.id, exc_info=True
            )
            return
        spec.recognition, spec.context = result, context
        # A guessed reading of words cut at a pause may finish the speaker's sentence for
        # them ("give me a double shot" aligned to "... americano"): wait for the silence.
        # A reading the dispatcher would refuse for its confidence ("Open the Bitter and
        # Blinds." from the greedy look) does not end the turn either: the final pass may
        # hear it right.
        spec.armed = ends_turn(result, text) and not self._refused(result)
        if spec.stale or utt is not self._current():
            return
        if not spec.armed and not spec.provisional:
            self._ahead(spec, heard, result)
        escalate_ms = self._res.settings.speculation_escalate_ms
        if spec.armed:
            hold = self._hold_s(utt, goes_on)
            if hold > 0:
                # A complete reading the grammar could still extend ("a large latte" + "with
                # some milk"): the speaker may go on after this pause; wait longer for it.
                wait = spec.started + hold - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                if spec.stale or utt is not self._current() or utt.spec is not spec:
                    return
            self._end_turn(utt, spec)
        elif (
            spec.provisional
            and escalate_ms is not None
        ):
            # The cheap look did not parse: once the silence has lasted a while (most pauses
            # inside a sentence are over by then), transcribe the same audio with the final
            # settings, so that if this pause is the end of the turn, the final transcript is
            # ready (or ends the turn early) instead of starting after the silence. An idle
            # ASR worker costs nothing: then at once (one stream's slowest turns waited here).
            wait = 0.0 if self._res.asr_load.jobs == 0 else (
                spec.started + escalate_ms / 1000 - self._clock())
            if wait > 0:
                await asyncio.sleep(wait)
            if not spec.stale and utt is self._current() and utt.spec is spec:
                if not self._jobs.shedding():
                    self._speculate(utt, spec.audio, spec.audio_end_ms, full=True)
                    return
                limit = self._res.settings.asr_shed_jobs
                self._res.metrics.asr_shed(
                    SHED_ESCALATION,
                    session_id=self._state.id,
                    utterance_id=utt.id,
                    jobs=self._res.asr_load.jobs,
                    limit=limit if limit is not None else 0,
                )

    def _refused(self, result: Any) -> bool:
        """Whether the dispatcher would refuse ``result`` for its confidence
        (:meth:`devices.dispatcher.Dispatcher.too_unsure`), or its devices cannot do it (a
        colour for a light without one: the greedy look's "Turn on the kitchen white."; the
        final pass's n-best may hold "… light")."""
        intent = getattr(result, "intent", None)
        if intent is None:
            return False
        check = getattr(self._res.dispatcher, "too_unsure", None)
        if callable(check) and bool(check(intent)):
            return True
        config = getattr(self._res.recognizer, "config", None)
        return lacks_capability(intent, getattr(config, "devices", ()))

    def _pause_ms(self) -> int:
        td = self._res.settings.turn_detection.model_copy(
            update=self._state.config.turn_detection.model_dump(exclude_none=True)
        )
        return int(td.pause_ms)

    def _hold_s(self, utt: Utterance, goes_on: bool | None) -> float:
        """How long after the pause a complete reading waits before it ends the turn: 0 for
        one the grammar cannot extend (or unknown: the endpointer's short
        ``silence_ms_when_complete`` applies), else ``EXTENDABLE_HOLD_MS`` or 1.5 times the
        speaker's longest pause so far in this turn, at most the plain ``silence_ms``."""
        if not goes_on:
            return 0.0
        td = self._res.settings.turn_detection.model_copy(
            update=self._state.config.turn_detection.model_dump(exclude_none=True)
        )
        longest = self._longest[1] if self._longest[0] == utt.id else 0.0
        hold = max(EXTENDABLE_HOLD_MS / 1000, PAUSE_FACTOR * longest)
        return min(hold, td.silence_ms / 1000) - td.pause_ms / 1000

    def _goes_on(self, result: Any, text: str, language: str | None) -> bool | None:
        """Whether the complete reading ``text`` could go on in its grammar (None: unknown)."""
        intent = getattr(result, "intent", None)
        if intent is None:
            return None
        if intent.source != "custom":
            # A built-in reading matters only while its target is open: "turn on the light"
            # may go on "in the kitchen"; "turn on the kitchen light" (one device) or a
            # question may go on only in words that change nothing ("... in the kitchen",
            # "... right now"), so it keeps the short wait.
            slots = intent.slots
            if slots.area is not None or len(slots.device_ids or []) <= 1:
                # ... unless the words have not named the device yet: only part of its name
                # ("turn off the TV" for the TV plug), or nothing of it ("next" for the one
                # speaker, when "... song on the living room speaker" follows).
                try:
                    c = continuations(self._res.recognizer)
                    ids = slots.device_ids or ()
                    return c.name_cut_short(text, ids) or (
                        slots.area is None and c.target_unsaid(text, ids))
                except Exception:
                    logger.debug("name_cut_short failed on %r", text, exc_info=True)
                    return False
        try:
            return continuations(self._res.recognizer).can_go_on(
                text, custom=intent.source == "custom", language=language)
        except Exception:
            logger.debug("continuations failed on %r", text, exc_info=True)
            return None


def _drop_ahead(spec: Speculation) -> None:
    """Cancel the retry and the check started ahead for ``spec`` where they have not
    started (its look is stale)."""
    if spec.ahead is not None:
        spec.ahead.future.cancel()
    if spec.retry_job is not None:
        spec.retry_job.cancel()
    if spec.retry is not None:
        spec.retry.cancel()


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
