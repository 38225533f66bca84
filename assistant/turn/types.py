"""What the stages of a turn need from the rest of Hearth (injected, as small protocols), and
the records they share: the session's state, one utterance, one speculative look, what was
heard, and the two exceptions that end an utterance's stages."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from assistant.answers.stage import AnswerServices
from assistant.audit import AuditLog
from assistant.config import AssistantSettings, TurnDetectionSettings
from assistant.metrics import Metrics
from assistant.protocol import ErrorCode, ImageInput, Mode, Outcome, SessionConfig
from assistant.replicas import Share
from devices.actions import ActionResult
from intents.decode import Hypothesis
from intents.schema import Intent, Recognition

# -- what the session needs from the rest of Hearth (injected) ----------------------------


class RecognizerLike(Protocol):
    def recognize(
        self,
        text: str,
        *,
        language: str | None = None,
        context: Intent | None = None,
        area: str | None = None,
    ) -> Recognition: ...


class DispatcherLike(Protocol):
    async def dispatch(
        self,
        intent: Intent,
        *,
        on_result: Callable[[ActionResult], None] | None = None,
        confirmed: bool = False,
        amends: str | None = None,
    ) -> list[ActionResult]: ...


class FrontEndLike(Protocol):
    """``assistant.audio.frontend.AudioFrontEnd``: resampling, VAD and endpointing of one
    stream. Events are ``SpeechStarted`` and ``SpeechStopped(t, speech_end_t, audio)``."""

    def feed(self, pcm: bytes, now: float) -> Sequence[Any]: ...
    def commit(self, now: float) -> Sequence[Any]: ...
    def set_complete(self, complete: bool, now: float | None = None) -> Sequence[Any]: ...
    def clear(self) -> None: ...


#: Builds a front end for (input sample rate, endpoint settings, mode).
FrontEndFactory = Callable[[int, TurnDetectionSettings, Mode], FrontEndLike]


class AlternativeLike(Protocol):
    """One n-best hypothesis (``assistant.audio.asr.Alternative``)."""

    @property
    def text(self) -> str: ...
    @property
    def avg_logprob(self) -> float: ...


class TranscriptLike(Protocol):
    """What the decoder reads of ``assistant.audio.asr.Transcript``."""

    @property
    def text(self) -> str: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def alternatives(self) -> Sequence[AlternativeLike]: ...


#: Audio (16 kHz, as the front end hands it over) -> transcript (or just its text). Runs in
#: a worker thread.
Transcribe = Callable[[Any], str | TranscriptLike]


class RepairedLike(Protocol):
    @property
    def recognition(self) -> Recognition: ...


class RepairLike(Protocol):
    """``assistant.audio.acoustic_repair.AcousticRepair``."""

    def engages(self, recognition: Recognition) -> bool: ...

    def repair(
        self,
        audio: Any,
        hypotheses: Sequence[str | Hypothesis],
        recognition: Recognition,
        *,
        language: str | None = None,
    ) -> RepairedLike: ...


class DecoderLike(Protocol):
    """``intents.decode.HypothesisDecoder``: the ASR's hypotheses -> one recognition."""

    def decode(
        self,
        hypotheses: Sequence[str | Hypothesis],
        *,
        language: str | None = None,
        context: Intent | None = None,
        no_speech_prob: float = 0.0,
    ) -> Recognition: ...


class TieredLike(Protocol):
    """``intents.model_tier.TieredRecognizer`` plus an image decoder (see assistant.app)."""

    def recognize(
        self,
        text: str,
        *,
        language: str | None = None,
        context: Intent | None = None,
        images: Sequence[Any] = (),
        cancel: threading.Event | None = None,
        audio: Any = None,
    ) -> Recognition: ...

    def image(self, data: str) -> Any: ...

    def audio(self, samples: Any) -> Any:
        """The utterance's audio (float32, 16 kHz) as the model tier takes it, or None when
        the model does not hear (``assistant.llm.audio: off``)."""
        ...

    #: ``assistant.llm.audio: always``: the model hears every spoken turn.
    always_hears: bool


#: Where events go (the server's bounded outbox; a list in tests).
Emit = Callable[[Any], None]


class AsrLoad:
    """ASR jobs queued or running, across sessions (event-loop thread only). With
    ``speculation_max_asr_jobs`` set, speculative transcriptions are skipped while the ASR
    workers are this backed up."""

    def __init__(self) -> None:
        self.jobs = 0


@dataclass
class SessionResources:
    """Shared, long-lived resources every session uses. Built once by :mod:`assistant.app`.
    The stages read these fields when they use them, never copy them."""

    settings: AssistantSettings
    recognizer: RecognizerLike
    dispatcher: DispatcherLike
    metrics: Metrics
    frontend_factory: FrontEndFactory | None = None
    transcribe: Transcribe | None = None
    transcribe_partial: Transcribe | None = None
    #: Transcribes on Whisper's full 30 s window: run once more on a final utterance none of
    #: whose hypotheses decodes to a command, the two passes' hypotheses pooled (measured
    #: on the Picovoice recordings at 6 dB: +4 points; docs/benchmarks.md). Needs ``decoder``.
    transcribe_full: Transcribe | None = None
    #: ``assistant.audio.acoustic_repair.AcousticRepair``: a guessed custom-intent reading of
    #: noisy speech is checked against the audio (final utterances only). None: off.
    acoustic_repair: RepairLike | None = None
    #: ASR for speculative transcriptions (at pauses): no second pass on a text that looks
    #: cut off (speech cut at a pause usually does). None: ``transcribe``.
    transcribe_speculative: Transcribe | None = None
    #: Runs front-end (VAD) work; shared by all sessions. None: the loop's default executor.
    vad_executor: Executor | None = None
    #: Runs ASR; sized to the model's useful parallelism. An
    #: :class:`~assistant.asr_scheduler.AsrScheduler` runs final transcriptions before
    #: speculative ones and drops superseded speculation; any other executor runs them in
    #: order. None: the default executor.
    asr_executor: Executor | None = None
    asr_load: AsrLoad = field(default_factory=AsrLoad)
    #: Grammar + model tier for final utterances; None: the grammar recognizer alone.
    tiered: TieredLike | None = None
    #: One JSON line per utterance; None: no audit trail.
    audit: AuditLog | None = None
    #: What the replicas share through the broker (pending confirmations); None: nothing.
    share: Share | None = None
    #: Decodes the ASR's hypotheses (``asr.decode: grammar``); None: the top transcript goes
    #: to the recognizer as is. Typed text is never decoded.
    decoder: DecoderLike | None = None
    #: How long a sensitive action waits for "yes" / ``confirm`` (security config).
    confirmation_window_s: float = 10.0
    #: Replies (text, the shared voice) and timers; None: no replies (``assistant.answers``).
    answers: AnswerServices | None = None
    #: Binds one of the ``transcribe*`` functions to a session's language (None: the home's):
    #: returns the function to call, or raises ``ValueError`` (``LanguageUnsupportedError``)
    #: when the speech model cannot speak it (``assistant.app.Hearth.asr_language``). None:
    #: the functions as they are.
    asr_language: Callable[[Transcribe, str | None], Transcribe] | None = None


# -- what the stages share -----------------------------------------------------------------


@dataclass
class SessionState:
    """The connection's state the stages read (event-loop thread only). ``config`` is
    replaced, never mutated, by ``session.update``."""

    id: str
    config: SessionConfig
    #: The last intent understood: the context of the next utterance ("and the kitchen").
    last_intent: Intent | None = None
    #: An ``image`` message, kept for the next utterance only (the model tier reads it).
    image: ImageInput | None = None


@dataclass(frozen=True, slots=True)
class Heard:
    """A transcription as the session uses it: the text, and the hypotheses to decode."""

    text: str
    hypotheses: tuple[Hypothesis, ...]
    no_speech_prob: float = 0.0
    #: Transcribed on Whisper's whole 30 s window already (no second opinion to ask for).
    full_window: bool = False


def as_heard(result: str | TranscriptLike) -> Heard:
    """What an ASR call returned, as :class:`Heard`."""
    if isinstance(result, str):
        text = result.strip()
        return Heard(text, (Hypothesis(text),))
    hyps = tuple(Hypothesis(a.text, a.avg_logprob) for a in result.alternatives) or (
        Hypothesis(result.text, result.avg_logprob),
    )
    full = bool(getattr(result, "full_window", False))
    return Heard(result.text.strip(), hyps, result.no_speech_prob, full)


def pooled(first: Heard, again: Heard) -> Heard:
    """A full-window retry's transcription pooled with the first pass's: the first one
    given's text, both passes' hypotheses (first's first, duplicates dropped)."""
    seen: set[str] = set()
    hyps: list[Hypothesis] = []
    for h in (*first.hypotheses, *again.hypotheses):
        if (key := h.text.strip().lower()) not in seen:
            seen.add(key)
            hyps.append(h)
    nsp = min(first.no_speech_prob, again.no_speech_prob)
    return Heard(first.text, tuple(hyps), nsp, full_window=True)


Stage = Literal["listening", "asr", "intent", "dispatch", "answer", "done"]


@dataclass
class Utterance:
    """One turn: its timings, its task, and what came of it (for the answering stage)."""

    id: str
    started: float  # monotonic time speech started / text arrived
    stage: Stage = "listening"
    vad_s: float = 0.0
    speech_end_t: float | None = None
    endpoint_t: float | None = None  # when the server decided the utterance was over
    audio_ms: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    image: ImageInput | None = None
    cancelled: bool = False
    spec: Speculation | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    # What came of it, filled in as the stages run:
    text: str | None = None
    language: str | None = None
    recognition: Recognition | None = None
    intent: Intent | None = None
    actions: list[ActionResult] = field(default_factory=list)
    error: ErrorCode | None = None
    #: Commands are carried out in the order they were said: ``acted`` is set once this
    #: turn has published (or ended without publishing); the next turn of the session waits
    #: on it (``after``) before it acts.
    acted: asyncio.Event = field(default_factory=asyncio.Event)
    after: asyncio.Event | None = None

    def released(self) -> None:
        """Let the session's next turn act (its commands go out after this one's)."""
        self.acted.set()


@dataclass
class Speculation:
    """A transcription started at a pause in speech (``SpeechPaused``). If the turn ends with
    exactly that audio (same ``audio_end_ms``), its result is the final transcript."""

    audio_end_ms: int
    future: asyncio.Future[str | TranscriptLike]
    stale: bool = False
    #: The executor's job (``AsrScheduler.promote`` when the turn ends on this audio).
    job: concurrent.futures.Future[str | TranscriptLike] | None = None
    #: Transcribed with cheaper settings than a final one (``speculation_beam_size``): it
    #: stands as the final transcript only if it parsed as a complete command.
    provisional: bool = False
    #: The task that recognizes its text (sets ``recognition``).
    follow: asyncio.Task[None] | None = None
    #: The audio transcribed (kept to escalate a provisional look that did not parse).
    audio: Any = None
    #: When it was started (the pause) and when its transcript came, on the session clock.
    started: float = 0.0
    finished: float | None = None
    #: The grammar's answer to the speculative text, with the context it was given.
    recognition: Recognition | None = None
    context: Intent | None = None
    #: Its words end the turn (``understanding.ends_turn``).
    armed: bool = False
    #: The acoustic repair of ``recognition`` (or of the retry's), run while the silence
    #: lasts (:meth:`.Speculator.repaired_ahead`); None when it was not started.
    ahead: RepairAhead | None = None
    #: The full-window retry of a look the final pass would retry, run while the silence
    #: lasts: the pooled transcription and its reading (:meth:`.Speculator.retried_ahead`).
    retry: asyncio.Future[tuple[Heard, Recognition]] | None = None
    retry_job: concurrent.futures.Future[Any] | None = None


@dataclass(slots=True)
class RepairAhead:
    """An acoustic repair started at a pause, for the final pass to take when the turn ends
    on that audio with the same reading (:meth:`.Transcribing.repair`)."""

    future: asyncio.Future[Any]
    job: concurrent.futures.Future[Any] | None
    recognition: Recognition
    hypotheses: tuple[Any, ...]
    language: str | None


class Done(Exception):
    """An utterance's stages ended with this outcome."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class StageError(Exception):
    """A stage failed: reported as an ``error`` event with this stable code and client-safe
    message (the detail goes to the log)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
