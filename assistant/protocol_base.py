"""The wire protocol's shared parts: limits, error and close codes, the base of every message
and the settings both directions carry (``TurnDetection``, ``WakeSettings``).

:mod:`assistant.protocol` re-exports everything here; :mod:`assistant.protocol_client` (client
messages, parsing) and :mod:`assistant.protocol_events` (server events) build on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: Bumped on any incompatible change of the wire format.
PROTOCOL_VERSION = 1

#: Sample rates a client may declare; audio is resampled to :data:`PIPELINE_SAMPLE_RATE`.
SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 44100, 48000)
#: The rate assumed for audio that arrives before any ``session.update`` names one.
DEFAULT_SAMPLE_RATE = 16000
#: The rate VAD and ASR run at.
PIPELINE_SAMPLE_RATE = 16000
#: Bytes per PCM sample (s16le mono).
SAMPLE_WIDTH = 2

#: Largest text message accepted before JSON decoding (images are base64 inside JSON).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: Largest binary audio frame: one second of 48 kHz audio.
DEFAULT_MAX_AUDIO_FRAME_BYTES = 48000 * SAMPLE_WIDTH
#: Longest ``text`` message, in characters.
MAX_TEXT_CHARS = 1000
#: Largest decoded ``image`` payload.
MAX_IMAGE_BYTES = 2 * 1024 * 1024
IMAGE_MIME_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/gif")


class ErrorCode(StrEnum):
    """Stable codes of ``error`` events. Clients branch on these, never on messages."""

    # The client sent something wrong; the session goes on.
    BAD_JSON = "bad_json"  # a text frame that is not a JSON object
    UNKNOWN_TYPE = "unknown_type"  # a JSON object whose ``type`` is missing or unknown
    INVALID_MESSAGE = "invalid_message"  # known type, wrong/missing/extra fields
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    ODD_LENGTH_AUDIO = "odd_length_audio"  # a binary frame that is not whole s16 samples
    FRAME_TOO_LARGE = "frame_too_large"  # a binary frame over the audio frame limit
    IMAGE_TOO_LARGE = "image_too_large"
    RATE_LIMITED = "rate_limited"  # too many messages per second; the message was dropped
    AUDIO_OVERFLOW = "audio_overflow"  # the audio queue was full; oldest audio was dropped
    BUSY = "busy"  # too many utterances in flight on this session; this one was dropped
    # The session's language cannot be spoken to this server's speech model (zh-CN with the
    # English-only tiny.en): sent on ``session.update`` and for each utterance heard in it;
    # text in that language still works.
    LANGUAGE_UNSUPPORTED = "language_unsupported"
    # Authentication (followed by close code 1008).
    UNAUTHORIZED = "unauthorized"
    # Faults in one utterance; the session goes on.
    ASR_FAILED = "asr_failed"
    RECOGNIZER_FAILED = "recognizer_failed"
    DISPATCH_FAILED = "dispatch_failed"
    INTERNAL_ERROR = "internal_error"
    # The language-model tier failed on this utterance (codes of intents.model_tier); nothing
    # was acted on.
    MODEL_CONFIG = "model_config"
    MODEL_LOAD = "model_load"
    MODEL_INPUT = "model_input"  # e.g. an image that is not PNG/JPEG/GIF/WebP
    MODEL_AUDIO_TOO_LONG = "model_audio_too_long"  # longer than assistant.llm.max_audio_s
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_TIMEOUT = "model_timeout"
    MODEL_CANCELLED = "model_cancelled"
    MODEL_HTTP_ERROR = "model_http_error"
    MODEL_PROTOCOL_ERROR = "model_protocol_error"
    MODEL_NO_TOOL_CALL = "model_no_tool_call"
    # The server is going away: sent after the work in flight has reported, then close 1001.
    SHUTTING_DOWN = "shutting_down"


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown (SIGTERM)
    POLICY_VIOLATION = 1008  # unauthorized, or persistent abuse of rate limits
    MESSAGE_TOO_BIG = 1009  # a frame over the WebSocket max_size
    INTERNAL_ERROR = 1011  # a fault the session cannot recover from
    TRY_AGAIN_LATER = 1013  # connection limit reached

# -- shared parts ------------------------------------------------------------------------


class _Message(BaseModel):
    """Base of every wire message: strict about unknown fields, JSON out via :meth:`to_json`."""

    # strict: a wire protocol should not turn "16000" or 1 into an int or a bool silently.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


Mode = Literal["vad", "push_to_talk"]
"""``vad``: the server detects start and end of speech. ``push_to_talk``: every binary frame
is speech until ``audio.commit`` ends the utterance (VAD still trims silence for ASR)."""


class TurnDetection(_Message):
    """Endpointing settings. In ``session.update`` every field is optional (None = keep)."""

    threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # VAD speech probability
    min_speech_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_ms: int | None = Field(default=None, ge=0, le=10_000)  # silence that ends a turn
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=5_000)  # pre-roll kept
    max_utterance_ms: int | None = Field(default=None, ge=500, le=30_000)


def _check_sample_rate(v: int | None) -> int | None:
    if v is not None and v not in SUPPORTED_SAMPLE_RATES:
        raise PydanticCustomError(
            ErrorCode.UNSUPPORTED_SAMPLE_RATE.value,
            "sample_rate {rate} is not supported; use one of {rates}",
            {"rate": v, "rates": ", ".join(map(str, SUPPORTED_SAMPLE_RATES))},
        )
    return v


class WakeSettings(_Message):
    """A wake word for an always-on stream: audio is dropped until ``word`` is heard, then
    one command is heard (``timeout_ms`` for it to start). ``word`` null: no wake word."""

    word: str | None = Field(default=None, min_length=1, max_length=40)
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)  # None: wake.TUNED
    timeout_ms: int | None = Field(default=None, ge=1000, le=60_000)  # None: 8000
