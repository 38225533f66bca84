"""Transcribing: a finished turn's audio -> what was heard (``transcript.final``).

:class:`Transcribing` runs the final pass: the speculative look at the pause the turn ended on
when it stands (:meth:`.Speculator.take`), else a transcription (the cheap one under overload);
the full-window retry of a transcript that does not parse; and, after understanding, the
acoustic repair of a guessed custom-intent reading. All of it on the ASR executor
(:class:`~assistant.turn.asr_jobs.AsrJobs`), ahead of speculative work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.asr_scheduler import SECOND_OPINION
from assistant.audio.asr import looks_cut_off
from assistant.metrics import SHED_ACOUSTIC_REPAIR, SHED_FINAL_PASS, SHED_FULL_WINDOW_RETRY
from assistant.protocol import ErrorCode, TranscriptFinal
from assistant.turn.asr_jobs import AsrJobs
from assistant.turn.events import Events
from assistant.turn.speculation import Speculator
from assistant.turn.types import (
    Done,
    Heard,
    SessionResources,
    SessionState,
    StageError,
    Utterance,
    as_heard,
    pooled,
)
from assistant.turn.understanding import Understanding, needs_retry
from intents.schema import Recognition

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transcription:
    """What the transcribing stage hands to understanding."""

    #: The text reported in ``transcript.final`` (the first pass's).
    text: str
    language: str | None
    #: The hypotheses to decode (after a full-window retry, both passes' pooled).
    heard: Heard
    #: The grammar's answer to ``heard`` when it is known already (and would not change).
    known: Recognition | None = None


class Transcribing:
    """The final pass of one session's turns."""

    def __init__(
        self,
        resources: SessionResources,
        state: SessionState,
        events: Events,
        jobs: AsrJobs,
        understanding: Understanding,
        speculation: Speculator,
        clock: Callable[[], float],
    ) -> None:
        self._res = resources
        self._state = state
        self._events = events
        self._jobs = jobs
        self._understanding = understanding
        self._speculation = speculation
        self._clock = clock

    async def transcribe(
        self, utt: Utterance, audio: Any, audio_end_ms: int | None
    ) -> Transcription:
        """The turn's transcription, its ``asr`` timing and its ``transcript.final`` event.
        Raises :class:`Done` (``no_speech``) on an empty transcript, :class:`StageError`
        (``asr_failed``) when the ASR fails."""
        utt.stage = "asr"
        t0 = self._clock()
        taken = await self._speculation.take(utt, audio_end_ms)
        heard = None if taken is None else taken[0]
        if heard is None:
            try:
                # Under overload, the cheap pass: a slower, better answer that arrives
                # seconds late helps nobody (``asr_shed_jobs``).
                cheap = self._jobs.shedding() and self._res.transcribe_speculative is not None
                if cheap:
                    self._shed(utt, SHED_FINAL_PASS)
                fn = self._res.transcribe_speculative if cheap else None
                heard = as_heard(await self._jobs.transcribe(audio, fn))
            except StageError:
                raise
            except Exception as e:
                logger.exception("session %s: ASR failed on %s", self._state.id, utt.id)
                raise StageError(ErrorCode.ASR_FAILED, "speech recognition failed") from e
        text = heard.text
        language = self._state.config.language
        reused = None if taken is None else taken[1]
        # A reading made at the pause stands when its context is this turn's: the grammar
        # would agree on the same words.
        same_context = (reused is not None and reused.context is self._state.last_intent
                        and self._res.tiered is None)
        known = reused.recognition if same_context and reused is not None else None
        retried = None if reused is None else await self._speculation.retried_ahead(utt)
        if retried is not None:
            # The look's retry ran during the silence: its pooled transcription and reading.
            heard, again = retried
            known = again if same_context else None
            self._res.metrics.asr_retries_total.inc()
        elif (
            text
            and not heard.full_window
            and self._res.transcribe_full is not None
            and self._res.decoder is not None
        ):
            heard, known = await self._retry_unparsed(utt, audio, heard, known)
        utt.timings["asr"] = self._clock() - t0
        self._events.emit(
            TranscriptFinal(utterance_id=utt.id, text=text, language=language, source="asr")
        )
        if not text:
            raise Done("no_speech")
        return Transcription(text, language, heard, known)

    def _shed(self, utt: Utterance, skipped: str) -> None:
        """Count and log a pass the overload took from this turn: understanding less under
        load is never silent (``hearth_asr_shed_total``)."""
        limit = self._res.settings.asr_shed_jobs
        self._res.metrics.asr_shed(
            skipped,
            session_id=self._state.id,
            utterance_id=utt.id,
            jobs=self._res.asr_load.jobs,
            limit=limit if limit is not None else 0,
        )

    async def _retry_unparsed(
        self, utt: Utterance, audio: Any, heard: Heard, known: Recognition | None
    ) -> tuple[Heard, Recognition | None]:
        """When no hypothesis of the (trimmed-window) transcription decodes to a command, or
        the text looks cut off and only a guessed reading or a custom intent came of it
        ("Can I get a triple shot," aligned to an americano), transcribe once more on the
        full window and pool both passes' hypotheses (the full window's first when the text
        was cut off). The server's transcriptions skip the transcriber's own cut-off retry
        (``Hearth._transcribe``): this is where it happens. Returns what to recognize, and
        the grammar's answer when it is already known."""
        first = known
        if first is None:
            decode = self._understanding.grammar(
                heard.text, self._state.config.language, self._state.last_intent, heard
            )
            first = await asyncio.to_thread(decode)
        cut_off = looks_cut_off(heard.text)
        if not needs_retry(first, heard.text):
            return heard, first if self._res.tiered is None else None
        if self._jobs.shedding():
            # Overloaded: no second pass (``asr_shed_jobs``), but say so.
            self._shed(utt, SHED_FULL_WINDOW_RETRY)
            return heard, first if self._res.tiered is None else None
        # A reading to fall back on (a guessed or custom one of a cut-off text): the second
        # opinion queues behind every first look and is dropped if it has not started by the
        # deadline. No reading at all: it is the turn's only chance, as urgent as a final.
        fallback = first.intent is not None
        try:
            if fallback:
                future, job = self._jobs.submit_asr(
                    audio, SECOND_OPINION, self._res.transcribe_full
                )
                got = await self.within_deadline(future, job)
                if got is None:
                    self._shed(utt, SHED_FULL_WINDOW_RETRY)
                    return heard, first if self._res.tiered is None else None
                again = as_heard(got)
            else:
                again = as_heard(await self._jobs.transcribe(audio, self._res.transcribe_full))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("session %s: full-window retry failed on %s", self._state.id, utt.id)
            return heard, first if self._res.tiered is None else None
        self._res.metrics.asr_retries_total.inc()
        # the full window's hypotheses first when the text was cut off
        return (pooled(again, heard) if cut_off else pooled(heard, again)), None

    async def within_deadline(
        self, future: asyncio.Future[Any], job: concurrent.futures.Future[Any] | None
    ) -> Any:
        """The second opinion's result, or None when it had not started after
        ``second_opinion_deadline_ms`` (it is then dropped unrun). Once running it is waited
        for: its cost is spent by then."""
        deadline_ms = self._res.settings.second_opinion_deadline_ms
        if deadline_ms is not None and job is not None:
            done, _ = await asyncio.wait({future}, timeout=deadline_ms / 1000)
            if not done and job.cancel():
                return None
        return await future

    async def repair(
        self,
        utt: Utterance,
        result: Recognition,
        heard: Heard | None,
        audio: Any,
        lang: str | None,
    ) -> Recognition:
        """A guessed custom-intent reading of noisy speech, checked against the audio by
        Whisper's decoder (``assistant.audio.acoustic_repair``): on the ASR workers, as a
        final job. Any failure keeps the text reading."""
        repair = self._res.acoustic_repair
        if repair is None or audio is None or heard is None or not repair.engages(result):
            return result
        if self._jobs.shedding():
            # Overloaded: the repair costs ~1–2 s of ASR worker time; the text reading (or
            # nothing) now beats a better one seconds late, as for the other second opinions.
            self._shed(utt, SHED_ACOUSTIC_REPAIR)
            return result
        ahead = self._speculation.repaired_ahead(utt, result, heard, lang)
        if ahead is not None:
            try:
                done: Recognition = (await asyncio.shield(ahead)).recognition
                return done
            except asyncio.CancelledError:
                if not ahead.cancelled():
                    raise  # this turn was cancelled, not the check started ahead
            except Exception:
                logger.warning("session %s: acoustic repair failed on %s", self._state.id,
                               utt.id, exc_info=True)
        call = functools.partial(repair.repair, audio, heard.hypotheses, result, language=lang)
        future, job = self._jobs.submit(call, SECOND_OPINION)
        try:
            repaired = await self.within_deadline(future, job)
            if repaired is None:
                self._shed(utt, SHED_ACOUSTIC_REPAIR)
                return result
            recognition: Recognition = repaired.recognition
            return recognition
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning(
                "session %s: acoustic repair failed on %s", self._state.id, utt.id, exc_info=True
            )
            return result
