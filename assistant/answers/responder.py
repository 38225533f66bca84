"""One session's replies: text at once, then the spoken reply streamed, paced, interruptible.

:class:`Responder` is what the session's answering stage calls when a turn is over:

* ``response.text`` (always; before the utterance's ``metrics``),
* with ``reply.audio`` on, ``response.audio`` chunks (base64 PCM s16le at ``reply.sample_rate``)
  synthesized sentence by sentence off the event loop, sent at most :data:`LEAD_MS` ahead of
  real time (so that a barge-in stops a reply that has not been sent yet, and the client's
  buffer stays small), then ``response.done``;
* :meth:`Responder.interrupt` (the user spoke over it, or cancelled): sending stops and
  ``response.interrupted`` says how much had played.

One response at a time per session: a new one replaces the one playing
(``response.interrupted`` with reason ``replaced``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from assistant.answers.reply import Reply, compose_reply, error_reply
from assistant.answers.tts import Speaker, stream_async
from assistant.protocol import (
    ReplyConfig,
    ResponseAudio,
    ResponseDone,
    ResponseInterrupted,
    ResponseText,
)
from devices.actions import ActionResult
from devices.registry import HomeConfig
from intents.schema import Intent

logger = logging.getLogger(__name__)

#: How far ahead of real time reply audio is sent (ms of audio the client has buffered).
LEAD_MS = 1000.0
#: Size of one ``response.audio`` chunk (ms of audio).
CHUNK_MS = 200


class TurnLike(Protocol):
    """What the responder reads of a finished turn (``assistant.turn.types.Utterance``)."""

    id: str
    text: str | None
    language: str | None
    intent: Intent | None
    actions: list[ActionResult]
    speech_end_t: float | None


@dataclass
class ReplySent:
    """When a turn's reply left (session clock): ``text_t`` its ``response.text``, and with
    audio ``first_audio`` resolves to the time its first ``response.audio`` chunk was sent (None
    when none was: interrupted first, nothing synthesized, the connection gone). The pipeline
    puts both in the turn's ``metrics`` (``speech_end_to_reply_text`` / ``_audio``)."""

    text_t: float
    first_audio: asyncio.Future[float | None] | None = None


@dataclass
class _Active:
    utterance_id: str
    response_id: str
    task: asyncio.Task[None] | None = None
    sent_ms: float = 0.0
    first_sent: float | None = None
    done: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: Resolved with the first chunk's send time (or None when the reply ends without one).
    first_audio: asyncio.Future[float | None] | None = None

    def audio_started(self, t: float | None) -> None:
        if self.first_audio is not None and not self.first_audio.done():
            self.first_audio.set_result(t)


class Responder:
    """The replies of one session (event-loop thread only)."""

    def __init__(
        self,
        emit: Callable[[Any], None],
        home: HomeConfig,
        speaker: Speaker | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        lead_ms: float = LEAD_MS,
        chunk_ms: int = CHUNK_MS,
    ) -> None:
        self._emit = emit
        self._home = home
        self._speaker = speaker
        self._clock = clock
        self._lead_ms = lead_ms
        self._chunk_ms = chunk_ms
        self.config = ReplyConfig()
        self._active: _Active | None = None
        self._ids = itertools.count(1)
        #: Replies sent (for tests and the audit trail): (utterance_id, reply).
        self.history: list[tuple[str, Reply]] = []

    # -- composing ---------------------------------------------------------------------

    def compose(
        self,
        intent: Intent | None,
        results: Sequence[ActionResult],
        *,
        reason: str = "",
        language: str | None = None,
        text: str = "",
        failed: bool = False,
    ) -> Reply:
        if failed and intent is None:
            return error_reply(language, text)
        return compose_reply(
            intent, results, self._home, reason=reason, language=language, text=text
        )

    def answer_turn(self, turn: TurnLike, *, reason: str = "", failed: bool = False) -> Reply:
        """Compose and send the reply to a finished turn."""
        reply = self.compose(
            turn.intent,
            turn.actions,
            reason=reason,
            language=turn.language,
            text=turn.text or "",
            failed=failed,
        )
        self.say(turn.id, reply, speech_end_t=turn.speech_end_t)
        return reply

    # -- sending -----------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """A reply's audio is being sent (a barge-in would interrupt it)."""
        return self._active is not None and not self._active.done

    def wants_audio(self, language: str) -> bool:
        return (
            self.config.audio
            and self._speaker is not None
            and self._speaker.engine_for(language) is not None
        )

    def prepare(self, reply: Reply) -> None:
        """The turn will probably end with ``reply``: start synthesizing it now (while the
        devices are still confirming), so that its audio is ready when it is said."""
        if self._speaker is not None and self.wants_audio(reply.language):
            self._speaker.warm(reply.text, reply.language, self.config.sample_rate)

    def say(
        self, utterance_id: str, reply: Reply, *, speech_end_t: float | None = None
    ) -> ReplySent | None:
        """``response.text`` now; the audio (when asked for) from a task. Returns when they
        left (None: nothing to say)."""
        if not reply.text:
            return None
        self.interrupt("replaced")
        response_id = f"{utterance_id}-r{next(self._ids)}"
        audio = self.wants_audio(reply.language)
        self.history.append((utterance_id, reply))
        self._emit(
            ResponseText(
                utterance_id=utterance_id,
                response_id=response_id,
                text=reply.text,
                language=reply.language,
                kind=reply.kind,
                audio=audio,
            )
        )
        sent = ReplySent(self._clock())
        if not audio:
            self._emit(ResponseDone(utterance_id=utterance_id, response_id=response_id))
            return sent
        loop = asyncio.get_running_loop()
        active = _Active(utterance_id, response_id, first_audio=loop.create_future())
        sent.first_audio = active.first_audio
        self._active = active
        active.task = loop.create_task(
            self._speak(active, reply, sent.text_t, speech_end_t),
            name=f"response-{response_id}",
        )
        return sent

    async def _speak(
        self, active: _Active, reply: Reply, t0: float, speech_end_t: float | None
    ) -> None:
        assert self._speaker is not None
        rate = self.config.sample_rate
        step = rate * self._chunk_ms // 1000 * 2  # bytes per chunk
        synth_s = 0.0
        synth_ms = 0.0  # audio synthesized for this reply (not from the cache)
        cached = 0
        try:
            async for sentence in stream_async(self._speaker, reply.text, reply.language, rate):
                synth_s += sentence.synth_s
                cached += sentence.cached
                synth_ms += 0.0 if sentence.cached else sentence.audio_ms
                for i in range(0, len(sentence.pcm), step):
                    piece = sentence.pcm[i : i + step]
                    await self._pace(active)
                    now = self._clock()
                    if active.first_sent is None:
                        active.first_sent = now
                        active.audio_started(now)
                        active.timings["first_audio"] = (now - t0) * 1000
                        if speech_end_t is not None:
                            active.timings["speech_end_to_first_audio"] = (
                                now - speech_end_t
                            ) * 1000
                    self._emit(
                        ResponseAudio(
                            utterance_id=active.utterance_id,
                            response_id=active.response_id,
                            audio=base64.b64encode(piece).decode("ascii"),
                            sample_rate=rate,
                            offset_ms=round(active.sent_ms, 1),
                        )
                    )
                    active.sent_ms += len(piece) / 2 * 1000 / rate
        except asyncio.CancelledError:
            active.audio_started(None)
            raise
        except Exception:
            logger.exception("reply synthesis failed for %s", active.utterance_id)
        active.audio_started(None)
        active.done = True
        active.timings["synthesis"] = synth_s * 1000
        active.timings["synthesized_audio"] = synth_ms
        if self._active is active:
            self._active = None
        self._emit(
            ResponseDone(
                utterance_id=active.utterance_id,
                response_id=active.response_id,
                audio_ms=round(active.sent_ms, 1),
                timings_ms={k: round(v, 1) for k, v in active.timings.items()},
                cached_sentences=cached,
            )
        )

    async def _pace(self, active: _Active) -> None:
        """Wait until the chunk at ``sent_ms`` is at most ``lead_ms`` ahead of playback."""
        if active.first_sent is None:
            return
        played_ms = (self._clock() - active.first_sent) * 1000
        wait_ms = active.sent_ms - self._lead_ms - played_ms
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)

    def played_ms(self) -> float:
        a = self._active
        if a is None or a.first_sent is None:
            return 0.0
        return min(a.sent_ms, (self._clock() - a.first_sent) * 1000)

    def interrupt(
        self, reason: Literal["barge_in", "cancel", "replaced"] = "barge_in"
    ) -> bool:
        """Stop the reply being sent, if any; ``response.interrupted``. True if one was."""
        a = self._active
        if a is None or a.done:
            return False
        played = self.played_ms()
        self._active = None
        a.done = True
        a.audio_started(None)
        if a.task is not None:
            a.task.cancel()
        self._emit(
            ResponseInterrupted(
                utterance_id=a.utterance_id,
                response_id=a.response_id,
                played_ms=round(played, 1),
                sent_ms=round(a.sent_ms, 1),
                reason=reason,
            )
        )
        return True

    async def close(self) -> None:
        """Stop sending (the connection is going away); no events."""
        a, self._active = self._active, None
        if a is not None:
            a.audio_started(None)
        if a is not None and a.task is not None:
            a.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await a.task
