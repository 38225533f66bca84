"""Sans-I/O endpointing: VAD probabilities in, utterance boundaries out.

The :class:`Endpointer` is fed consecutive 16 kHz frames together with their speech
probability and the time the server received them. It emits:

- :class:`SpeechStarted` once ``min_speech_ms`` of voiced audio confirm an utterance;
- :class:`SpeechPaused` after a short silence (``pause_ms``): the audio it carries is exactly
  what :class:`SpeechStopped` will carry if the user says nothing more, so the session can
  transcribe it speculatively while the endpointer waits for the end-of-turn silence;
- :class:`SpeechResumed` when speech comes back after a pause (drop the speculative work);
- :class:`SpeechStopped` at the end of the turn (silence, grammar-complete early end, commit,
  or maximum length), with the utterance audio including the pre-roll.

Grammar-aware endpointing: when the partial/speculative transcript already parses as a complete
command, the session calls :meth:`Endpointer.set_complete` and the turn ends after the shorter
``silence_ms_when_complete``. The flag is cleared whenever speech resumes, because "turn on the
light" may be followed by "in the kitchen".

Frame classification (hysteresis as in silero's own post-processing): voiced if
``p >= threshold``, silent if ``p < neg_threshold``, otherwise ambiguous. Ambiguous frames keep
an utterance alive but do not move ``speech_end_t``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000

DEFAULT_THRESHOLD: Final = 0.5
#: silero's recommended hysteresis: threshold - 0.15.
DEFAULT_NEG_THRESHOLD: Final = 0.35
#: Voiced audio needed before an utterance is announced; filters clicks and door slams.
DEFAULT_MIN_SPEECH_MS: Final = 128
#: End-of-turn silence when the words so far are not known to form a complete command.
#: Home Assistant waits 700 ms; we start speculative ASR at the pause, so this is only the
#: fallback for sessions that never call ``set_complete``.
DEFAULT_SILENCE_MS: Final = 500
#: End-of-turn silence once the transcript parses as a complete command.
DEFAULT_SILENCE_MS_WHEN_COMPLETE: Final = 96
#: Silence after which a speculative transcription may start (SpeechPaused). One frame:
#: silero already holds p≈1 for 60-90 ms past the end of a word, so a silent frame is a real
#: pause, and every frame waited here is latency.
DEFAULT_PAUSE_MS: Final = 32
#: Audio kept before the first voiced frame: VAD onset lags the first phoneme.
DEFAULT_PRE_ROLL_MS: Final = 320
#: Audio kept after the last non-silent frame. Equal to the pause so that the paused and the
#: stopped audio are the same and a speculative transcript can be reused as is.
DEFAULT_POST_ROLL_MS: Final = 32
#: Hard cut: commands are short, and Whisper's window is 30 s.
DEFAULT_MAX_UTTERANCE_MS: Final = 15000
#: A candidate utterance that has not reached min_speech_ms is dropped after this much silence.
_PENDING_GAP_MS: Final = 96

TurnDetection = Literal["vad", "manual"]
StopReason = Literal["silence", "complete", "commit", "max_length"]


class EndpointSettings(BaseModel):
    """Per-session endpointing settings (validated; the server accepts them from clients)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    neg_threshold: float = Field(default=DEFAULT_NEG_THRESHOLD, ge=0.0, lt=1.0)
    min_speech_ms: int = Field(default=DEFAULT_MIN_SPEECH_MS, ge=0, le=5000)
    silence_ms: int = Field(default=DEFAULT_SILENCE_MS, ge=0, le=10000)
    silence_ms_when_complete: int = Field(default=DEFAULT_SILENCE_MS_WHEN_COMPLETE, ge=0, le=10000)
    pause_ms: int = Field(default=DEFAULT_PAUSE_MS, ge=0, le=10000)
    pre_roll_ms: int = Field(default=DEFAULT_PRE_ROLL_MS, ge=0, le=5000)
    post_roll_ms: int = Field(default=DEFAULT_POST_ROLL_MS, ge=0, le=5000)
    max_utterance_ms: int = Field(default=DEFAULT_MAX_UTTERANCE_MS, ge=500, le=30000)
    #: "vad": silence ends the turn; "manual": only commit (push-to-talk) or max length do.
    turn_detection: TurnDetection = "vad"

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSettings:
        if self.neg_threshold > self.threshold:
            raise ValueError("neg_threshold must not exceed threshold")
        if self.silence_ms_when_complete > self.silence_ms:
            raise ValueError("silence_ms_when_complete must not exceed silence_ms")
        return self


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """An utterance was confirmed. ``t``: receive time of the confirming frame."""

    t: float
    #: Stream position (ms of 16 kHz audio since the stream began) of the first voiced frame.
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """Short silence inside an utterance; ``audio`` is what SpeechStopped would carry now."""

    t: float
    speech_end_t: float
    audio: Float32Array = field(repr=False)
    #: Stream position (ms) where ``audio`` ends; identifies the speculative snapshot.
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back after a :class:`SpeechPaused`; speculative work is stale."""

    t: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """End of the turn.

    ``t``: when the endpointer decided (receive time of the deciding frame, or the time passed
    to :meth:`Endpointer.commit` / :meth:`Endpointer.set_complete`). ``speech_end_t``: receive
    time of the last voiced frame; latency is measured from it. ``audio``: float32 16 kHz,
    pre-roll included.
    """

    t: float
    speech_end_t: float
    audio: Float32Array = field(repr=False)
    reason: StopReason
    audio_start_ms: int
    audio_end_ms: int


EndpointEvent = SpeechStarted | SpeechPaused | SpeechResumed | SpeechStopped


class EndpointState(StrEnum):
    IDLE = "idle"
    PENDING = "pending"  # voiced audio seen, not yet min_speech_ms of it
    SPEECH = "speech"


def _ms_to_samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


def _samples_to_ms(n: int) -> int:
    return n * 1000 // SAMPLE_RATE


class Endpointer:
    """Turn detector for one audio stream. Not thread-safe; owned by one session."""

    def __init__(self, settings: EndpointSettings | None = None) -> None:
        self._settings = settings or EndpointSettings()
        self._pos = 0  # samples fed since the stream began
        self._preroll: deque[Float32Array] = deque()
        self._preroll_len = 0
        self._frames: list[Float32Array] = []
        self._utt_start = 0
        self._first_voiced = 0
        self._voiced_samples = 0
        self._last_voiced_t = 0.0
        self._last_active_end = 0
        self._paused = False
        self._complete = False
        self._state = EndpointState.IDLE

    # -- public API -------------------------------------------------------------------------

    @property
    def settings(self) -> EndpointSettings:
        return self._settings

    @property
    def state(self) -> EndpointState:
        return self._state

    @property
    def in_speech(self) -> bool:
        """True between SpeechStarted and SpeechStopped."""
        return self._state is EndpointState.SPEECH

    @property
    def complete(self) -> bool:
        return self._complete

    def update_settings(self, settings: EndpointSettings) -> None:
        """Apply new settings; an utterance in progress continues under them."""
        self._settings = settings

    def process(
        self, frame: Float32Array, prob: float, t: float, now: float | None = None
    ) -> list[EndpointEvent]:
        """Feed one frame (float32, 16 kHz) and its speech probability.

        ``t``: when the server received the frame's audio (``speech_end_t`` is taken from it).
        ``now``: when the frame is processed, stamped on the events as the decision time;
        defaults to ``t``. They differ when a resampler or a queue delays the frame.
        """
        decided = t if now is None else now
        if not 0.0 <= prob <= 1.0 or math.isnan(prob):
            raise ValueError(f"speech probability out of range: {prob!r}")
        s = self._settings
        n = int(frame.shape[0])
        start = self._pos
        self._pos += n
        voiced = prob >= s.threshold
        silent = prob < s.neg_threshold
        events: list[EndpointEvent] = []

        if self._state is EndpointState.IDLE:
            if not voiced:
                self._push_preroll(frame)
                return events
            self._begin(frame, start, t)
            if self._voiced_samples >= _ms_to_samples(s.min_speech_ms):
                events.append(self._confirm(decided))
            return events

        self._frames.append(frame)
        if voiced:
            self._voiced_samples += n
            self._last_voiced_t = t
        if not silent:
            self._last_active_end = self._pos
            if self._paused:
                self._paused = False
                self._complete = False
                events.append(SpeechResumed(decided))
        trailing = self._pos - self._last_active_end

        if self._state is EndpointState.PENDING:
            if self._voiced_samples >= _ms_to_samples(s.min_speech_ms):
                events.append(self._confirm(decided))
            elif trailing >= _ms_to_samples(_PENDING_GAP_MS):
                self._abandon()
                return events
            else:
                return events

        # SPEECH
        if self._pos - self._utt_start >= _ms_to_samples(s.max_utterance_ms):
            events.append(self._stop(decided, "max_length", trim=False))
            return events
        pause = max(_ms_to_samples(s.pause_ms), _ms_to_samples(s.post_roll_ms))
        if trailing >= pause and not self._paused and s.pause_ms > 0:
            self._paused = True
            audio, end = self._audio(trim=True)
            events.append(SpeechPaused(decided, self._last_voiced_t, audio, _samples_to_ms(end)))
        if s.turn_detection == "vad":
            if self._complete and trailing >= _ms_to_samples(s.silence_ms_when_complete):
                events.append(self._stop(decided, "complete", trim=True))
            elif trailing >= _ms_to_samples(s.silence_ms):
                events.append(self._stop(decided, "silence", trim=True))
        return events

    def set_complete(self, complete: bool, now: float | None = None) -> list[EndpointEvent]:
        """Mark the words so far as a complete (or incomplete) command.

        With ``complete=True`` the turn ends after ``silence_ms_when_complete`` instead of
        ``silence_ms``. If that much silence has already been received and ``now`` is given,
        the turn ends immediately and the SpeechStopped event is returned. Ignored outside an
        utterance; cleared automatically when speech resumes or a new utterance starts.
        """
        events: list[EndpointEvent] = []
        if self._state is not EndpointState.SPEECH:
            return events
        self._complete = complete
        s = self._settings
        if (
            complete
            and now is not None
            and s.turn_detection == "vad"
            and self._pos - self._last_active_end >= _ms_to_samples(s.silence_ms_when_complete)
        ):
            events.append(self._stop(now, "complete", trim=True))
        return events

    def commit(self, now: float) -> list[EndpointEvent]:
        """Close the utterance now (push-to-talk release, ``audio.commit``).

        Returns [SpeechStarted?, SpeechStopped] if any voiced audio was buffered (a pending
        utterance is confirmed first so events always pair), or [] if there was none.
        """
        events: list[EndpointEvent] = []
        if self._state is EndpointState.IDLE:
            return events
        if self._state is EndpointState.PENDING:
            events.append(self._confirm(now))
        events.append(self._stop(now, "commit", trim=False))
        return events

    def clear(self) -> None:
        """Drop all buffered audio and any utterance in progress (``audio.clear``, cancel)."""
        self._preroll.clear()
        self._preroll_len = 0
        self._reset_utterance()
        self._state = EndpointState.IDLE

    # -- internals --------------------------------------------------------------------------

    def _reset_utterance(self) -> None:
        self._frames = []
        self._utt_start = self._pos
        self._first_voiced = self._pos
        self._voiced_samples = 0
        self._last_voiced_t = 0.0
        self._last_active_end = self._pos
        self._paused = False
        self._complete = False

    def _push_preroll(self, frame: Float32Array) -> None:
        self._preroll.append(frame)
        self._preroll_len += int(frame.shape[0])
        limit = _ms_to_samples(self._settings.pre_roll_ms)
        while self._preroll and self._preroll_len - int(self._preroll[0].shape[0]) >= limit:
            self._preroll_len -= int(self._preroll.popleft().shape[0])
        if limit == 0:
            self._preroll.clear()
            self._preroll_len = 0

    def _begin(self, frame: Float32Array, start: int, t: float) -> None:
        self._reset_utterance()
        limit = _ms_to_samples(self._settings.pre_roll_ms)
        pre = list(self._preroll)
        pre_len = self._preroll_len
        self._preroll.clear()
        self._preroll_len = 0
        # Keep whole frames, at most pre_roll_ms of them (frames are small, 32 ms).
        while pre and pre_len > limit:
            pre_len -= int(pre.pop(0).shape[0])
        self._frames = [*pre, frame]
        self._utt_start = start - pre_len
        self._first_voiced = start
        self._voiced_samples = int(frame.shape[0])
        self._last_voiced_t = t
        self._last_active_end = self._pos
        self._state = EndpointState.PENDING

    def _confirm(self, t: float) -> SpeechStarted:
        self._state = EndpointState.SPEECH
        logger.debug("speech started at %d ms", _samples_to_ms(self._first_voiced))
        return SpeechStarted(t, _samples_to_ms(self._first_voiced))

    def _abandon(self) -> None:
        frames = self._frames
        self._reset_utterance()
        self._state = EndpointState.IDLE
        for f in frames:
            self._push_preroll(f)

    def _audio(self, *, trim: bool) -> tuple[Float32Array, int]:
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)
        end = self._pos
        if trim:
            post_roll = _ms_to_samples(self._settings.post_roll_ms)
            end = min(self._pos, self._last_active_end + post_roll)
            audio = audio[: end - self._utt_start]
        return audio.astype(np.float32, copy=False), end

    def _stop(self, t: float, reason: StopReason, *, trim: bool) -> SpeechStopped:
        audio, end = self._audio(trim=trim)
        # commit with no voiced frame received yet cannot happen (IDLE returns early), so
        # _last_voiced_t is always a real receive time here.
        event = SpeechStopped(
            t=t,
            speech_end_t=self._last_voiced_t,
            audio=audio,
            reason=reason,
            audio_start_ms=_samples_to_ms(self._utt_start),
            audio_end_ms=_samples_to_ms(end),
        )
        logger.debug("speech stopped (%s): %d ms of audio", reason, _samples_to_ms(audio.shape[0]))
        self._reset_utterance()
        self._state = EndpointState.IDLE
        return event
