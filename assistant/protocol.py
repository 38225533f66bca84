"""The Hearth wire protocol (v1): one typed message class per wire message, sans-I/O.

Everything that crosses the WebSocket is defined here and nowhere else; docs/protocol.md is the
prose version of this module.

* Text frames carry one JSON object with a ``type`` tag. Client -> server messages are decoded
  with :func:`parse_client_message`, which raises :class:`ProtocolError` with a stable
  :class:`ErrorCode`; server -> client events are encoded with ``event.to_json()`` and decoded
  (by clients and tests) with :func:`parse_server_event`.
* Binary frames carry raw PCM, signed 16-bit little-endian, mono, at the session's sample rate
  (:data:`DEFAULT_SAMPLE_RATE` until a ``session.update`` says otherwise). They are checked with
  :func:`check_audio_frame`.

No function here touches a socket, the event loop or a model.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from intents.schema import Intent

#: Bumped on any incompatible change of this module's wire format.
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


class ProtocolError(Exception):
    """Bad client input, mapped to an ``error`` event with a stable code.

    ``message`` is safe to show to the client: it never carries internal details.
    """

    def __init__(self, code: ErrorCode, message: str, *, utterance_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.utterance_id = utterance_id

    def to_event(self) -> ErrorEvent:
        return ErrorEvent(code=self.code, message=self.message, utterance_id=self.utterance_id)


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


# -- client -> server --------------------------------------------------------------------


class ReplySettings(_Message):
    """``session.update.reply``: how the client wants replies. Fields left out keep their
    value. ``audio``: send the spoken reply (``response.audio``); ``sample_rate``: its rate."""

    audio: bool | None = None
    sample_rate: int | None = None

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, v: int | None) -> int | None:
        return _check_sample_rate(v)


class WakeSettings(_Message):
    """A wake word for an always-on stream: audio is dropped until ``word`` is heard, then
    one command is heard (``timeout_ms`` for it to start). ``word`` null: no wake word."""

    word: str | None = Field(default=None, min_length=1, max_length=40)
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)  # None: wake.TUNED
    timeout_ms: int | None = Field(default=None, ge=1000, le=60_000)  # None: 8000


class SessionUpdate(_Message):
    """Change session settings. Fields left out (or null) keep their current value.

    Allowed at any time; a new ``sample_rate`` applies to the next binary frame (an utterance in
    progress is committed first). ``token`` authenticates browsers that cannot set headers.
    """

    type: Literal["session.update"] = "session.update"
    sample_rate: int | None = None
    language: str | None = Field(default=None, min_length=2, max_length=16)
    mode: Mode | None = None
    turn_detection: TurnDetection | None = None
    partials: bool | None = None  # send transcript.partial events
    device_events: bool | None = None  # send device.state events
    #: The room the client is in (an area id of the home; "" clears it): "here", "this room"
    #: and commands that name no place ("lights off") act there.
    area: str | None = Field(default=None, max_length=64)
    #: This client's id in the home config's ``assistant.clients`` (its area, when not given).
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    token: str | None = Field(default=None, max_length=4096, repr=False)
    reply: ReplySettings | None = None  # spoken replies: audio on/off, sample rate
    wake: WakeSettings | None = None  # wake word: {"word": "okay_nabu"}; {"word": null}: off

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, v: int | None) -> int | None:
        return _check_sample_rate(v)


class AudioCommit(_Message):
    """End the current utterance now (push-to-talk release). No-op when nothing is buffered."""

    type: Literal["audio.commit"] = "audio.commit"


class AudioClear(_Message):
    """Drop buffered audio of the utterance in progress without processing it."""

    type: Literal["audio.clear"] = "audio.clear"


class TextInput(_Message):
    """A typed command: skips VAD and ASR, goes straight to the recognizer."""

    type: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    language: str | None = Field(default=None, min_length=2, max_length=16)


class ImageInput(_Message):
    """A base64 image kept as context for the next utterance (for the model tier)."""

    type: Literal["image"] = "image"
    data: str = Field(min_length=1)  # base64, no data: URL prefix
    mime: str = "image/jpeg"

    @field_validator("mime")
    @classmethod
    def _mime(cls, v: str) -> str:
        if v not in IMAGE_MIME_TYPES:
            raise ValueError(f"mime must be one of {', '.join(IMAGE_MIME_TYPES)}")
        return v

    @field_validator("data")
    @classmethod
    def _size(cls, v: str) -> str:
        if len(v) * 3 // 4 > MAX_IMAGE_BYTES:
            raise PydanticCustomError(
                ErrorCode.IMAGE_TOO_LARGE.value,
                "image is larger than {limit} bytes",
                {"limit": MAX_IMAGE_BYTES},
            )
        return v


class Cancel(_Message):
    """Stop work in flight: the named utterance, or every utterance of the session.

    Audio being collected is dropped; ASR/recognition results are discarded; actions already
    published to MQTT cannot be taken back (their final ``action`` events are still sent).
    """

    type: Literal["cancel"] = "cancel"
    utterance_id: str | None = None


class Confirm(_Message):
    """Answer a pending confirmation of a sensitive action ("yes"/"no" without speaking)."""

    type: Literal["confirm"] = "confirm"
    accept: bool = True
    utterance_id: str | None = None


ClientMessage: TypeAlias = Annotated[
    SessionUpdate | AudioCommit | AudioClear | TextInput | ImageInput | Cancel | Confirm,
    Field(discriminator="type"),
]
_CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_MESSAGE_TYPES: frozenset[str] = frozenset(
    {"session.update", "audio.commit", "audio.clear", "text", "image", "cancel", "confirm"}
)


# -- server -> client --------------------------------------------------------------------


class ReplyConfig(_Message):
    """The reply settings in force: audio (``response.audio``) on or off, and its rate."""

    audio: bool = False
    sample_rate: int = DEFAULT_SAMPLE_RATE


class SessionConfig(_Message):
    """The effective settings of a session (all fields set)."""

    sample_rate: int = DEFAULT_SAMPLE_RATE
    language: str | None = None  # None: the home's language (and detection for text)
    mode: Mode = "vad"
    turn_detection: TurnDetection = Field(default_factory=TurnDetection)
    partials: bool = True
    device_events: bool = True
    area: str | None = None  # the room the client is in (area id); None: unknown
    client_id: str | None = None
    reply: ReplyConfig = Field(default_factory=lambda: ReplyConfig())
    wake: WakeSettings | None = None  # None: no wake word, all audio is heard


class Limits(_Message):
    max_audio_frame_bytes: int
    max_message_bytes: int
    max_utterance_ms: int
    max_messages_per_s: float
    supported_sample_rates: tuple[int, ...] = SUPPORTED_SAMPLE_RATES


class SessionCreated(_Message):
    """First event of every connection (after authentication when it is on)."""

    type: Literal["session.created"] = "session.created"
    session_id: str
    protocol_version: int = PROTOCOL_VERSION
    server: str = "hearth"
    config: SessionConfig
    limits: Limits
    #: The voice that speaks each reply language (``piper:<voice>``, ``espeak-ng:<voice>``),
    #: null for a language replied to in text only.
    tts: dict[str, str | None] = Field(default_factory=dict)


class SessionUpdated(_Message):
    """Answer to a valid ``session.update``: the settings now in force."""

    type: Literal["session.updated"] = "session.updated"
    config: SessionConfig


class WakeDetected(_Message):
    """The session's wake word was heard; the audio after it is heard as one command.
    ``audio_ms``: position in the session's audio stream."""

    type: Literal["wake.detected"] = "wake.detected"
    word: str
    audio_ms: int
    probability: float


class SpeechStarted(_Message):
    """VAD detected speech. ``audio_ms``: position in the session's audio stream."""

    type: Literal["speech.started"] = "speech.started"
    utterance_id: str
    audio_ms: int


class SpeechStopped(_Message):
    """The endpoint fired (or ``audio.commit``). ``speech_end_ms`` is where voiced audio
    ended in the session's audio stream; ``audio_ms`` is where the endpoint decision was made."""

    type: Literal["speech.stopped"] = "speech.stopped"
    utterance_id: str
    audio_ms: int
    speech_end_ms: int
    duration_ms: int
    #: Why the turn ended: ``silence``, ``complete`` (a complete command, shorter silence),
    #: ``commit`` (audio.commit or a new sample rate) or ``max_length``.
    reason: Literal["silence", "complete", "commit", "max_length"] | None = None


class TranscriptPartial(_Message):
    type: Literal["transcript.partial"] = "transcript.partial"
    utterance_id: str
    text: str


class TranscriptFinal(_Message):
    """The utterance's text. ``source`` is ``asr`` for speech and ``text`` for typed input."""

    type: Literal["transcript.final"] = "transcript.final"
    utterance_id: str
    text: str
    language: str | None = None  # None: not known before recognition
    source: Literal["asr", "text"] = "asr"


class IntentEvent(_Message):
    """The recognizer's answer: an intent, or null with the reason why not."""

    type: Literal["intent"] = "intent"
    utterance_id: str
    intent: Intent | None
    reason: str
    confidence: float | None = None
    #: The utterance whose custom order this one completes and replaces (the amend window,
    #: ``turn_detection.amend_ms``); null for a turn of its own.
    amends: str | None = None


ActionStatus = Literal["published", "confirmed", "unconfirmed", "failed", "rejected"]


class ActionEvent(_Message):
    """The fate of one intent on one device. Per device: optionally ``published`` (broker
    acknowledged), then exactly one final status (``final`` true)."""

    type: Literal["action"] = "action"
    utterance_id: str
    intent: str
    status: ActionStatus
    final: bool
    device_id: str | None = None
    topic: str | None = None
    payload: str | None = None
    detail: str = ""
    state: dict[str, Any] | None = None


class ErrorEvent(_Message):
    """Something went wrong; ``code`` is stable, ``message`` is for humans and never carries
    internal details. ``utterance_id`` is set when the error ends that utterance."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    utterance_id: str | None = None


Outcome = Literal["actions", "no_intent", "no_speech", "error", "cancelled"]


class StageTimings(_Message):
    """Per-stage milliseconds of one utterance. A stage that did not run is null.

    * ``vad``: VAD compute spent on the utterance's frames.
    * ``endpoint_wait``: speech end -> endpoint decision (the silence we waited for).
    * ``asr``: endpoint -> final transcript.
    * ``speculation_asr``: when the turn ended on a speculative transcript, its pause ->
      transcript (queue and ASR; it overlaps ``endpoint_wait``).
    * ``intent``: recognizer time.
    * ``order_wait``: waiting for the turn said before this one to act first (commands are
      carried out in the order they were said).
    * ``dispatch``: dispatch start -> broker acknowledgement of the first publish.
    * ``speech_end_to_action``: speech end -> first publish acknowledged (the headline figure).
    * ``endpoint_to_action``: endpoint -> first publish acknowledged.
    * ``speech_end_to_reply_text``: speech end (or text received) -> ``response.text`` sent.
    * ``speech_end_to_reply_audio``: speech end (or text received) -> first ``response.audio``
      chunk sent (with reply audio; the ``metrics`` event then follows that chunk).
    * ``total``: speech start (or text received) -> last final action.
    """

    vad: float | None = None
    endpoint_wait: float | None = None
    asr: float | None = None
    speculation_asr: float | None = None
    intent: float | None = None
    order_wait: float | None = None
    dispatch: float | None = None
    speech_end_to_action: float | None = None
    endpoint_to_action: float | None = None
    speech_end_to_reply_text: float | None = None
    speech_end_to_reply_audio: float | None = None
    total: float | None = None


class MetricsEvent(_Message):
    """The last event of every utterance, whatever its outcome."""

    type: Literal["metrics"] = "metrics"
    utterance_id: str
    outcome: Outcome
    timings_ms: StageTimings
    audio_ms: int | None = None  # length of the utterance's audio


class DeviceState(_Message):
    """A device's last known state changed (for live device panels)."""

    type: Literal["device.state"] = "device.state"
    device_id: str
    state: dict[str, Any]


ReplyKind = Literal[
    "done", "answer", "partial", "failed", "confirm", "refused", "not_understood", "error", "timer",
    "clarify",
]


class ResponseText(_Message):
    """The reply to an utterance, as text: before the utterance's ``metrics``."""

    type: Literal["response.text"] = "response.text"
    utterance_id: str
    response_id: str
    text: str
    language: str
    kind: ReplyKind
    audio: bool = False  # response.audio follows


class ResponseAudio(_Message):
    """A piece of the spoken reply: base64 PCM s16le mono at ``sample_rate`` (the one asked
    for in ``session.update.reply``), ``offset_ms`` into the reply."""

    type: Literal["response.audio"] = "response.audio"
    utterance_id: str
    response_id: str
    audio: str
    sample_rate: int
    offset_ms: float


class ResponseDone(_Message):
    """The reply was sent in full. ``audio_ms``: its length (0 without audio);
    ``timings_ms``: ``synthesis`` (time spent synthesizing), ``first_audio`` (reply text →
    first audio sent), ``speech_end_to_first_audio`` (speech end → first audio sent),
    ``synthesized_audio`` (ms of the reply's audio synthesized for it, not from the cache: the
    real-time factor is ``synthesis / synthesized_audio``)."""

    type: Literal["response.done"] = "response.done"
    utterance_id: str
    response_id: str
    audio_ms: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)
    #: Sentences taken from the server's cache of synthesized replies (no synthesis).
    cached_sentences: int = 0


class ResponseInterrupted(_Message):
    """The user spoke over the reply (barge-in) or cancelled it: the server stopped sending.
    ``played_ms``: how much of it had played (at real time since the first chunk, at most
    what was sent); ``sent_ms``: how much was sent."""

    type: Literal["response.interrupted"] = "response.interrupted"
    utterance_id: str
    response_id: str
    played_ms: float
    sent_ms: float
    reason: Literal["barge_in", "cancel", "replaced"] = "barge_in"


class TimerFinished(_Message):
    """A timer set on this session ran out (its announcement follows as a response)."""

    type: Literal["timer.finished"] = "timer.finished"
    utterance_id: str  # the utterance that set it
    timer_id: str
    duration_s: float
    name: str | None = None


class ConfirmationCancelled(_Message):
    """A sensitive action another session of this client id was asking "yes?" about was
    cancelled when this session took the client id (a reconnect, perhaps to another replica):
    nothing was done. Its spoken reply follows as a ``response.text`` (kind ``confirm``)."""

    type: Literal["confirmation.cancelled"] = "confirmation.cancelled"
    utterance_id: str  # the utterance that asked
    intent: str
    device_ids: list[str] = Field(default_factory=list)
    reason: str


ServerEvent: TypeAlias = Annotated[
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | TranscriptPartial
    | TranscriptFinal
    | IntentEvent
    | ActionEvent
    | ErrorEvent
    | MetricsEvent
    | DeviceState
    | ResponseText
    | ResponseAudio
    | ResponseDone
    | ResponseInterrupted
    | TimerFinished
    | ConfirmationCancelled
    | WakeDetected,
    Field(discriminator="type"),
]
_SERVER_ADAPTER: TypeAdapter[ServerEvent] = TypeAdapter(ServerEvent)


# -- decoding ----------------------------------------------------------------------------

#: pydantic error types raised by our validators that carry their own :class:`ErrorCode`.
_CODED_ERRORS: frozenset[str] = frozenset(
    {ErrorCode.UNSUPPORTED_SAMPLE_RATE.value, ErrorCode.IMAGE_TOO_LARGE.value}
)


def _describe(err: ValidationError) -> tuple[ErrorCode, str]:
    """First validation error as (code, client-safe message). Input values are not echoed
    except through our own messages, which only quote the offending sample rate."""
    first = err.errors(include_url=False, include_input=False)[0]
    if first["type"] in _CODED_ERRORS:
        return ErrorCode(first["type"]), first["msg"]
    # loc starts with the union tag ("text", ...); drop it for a readable field path.
    loc = [str(p) for p in first["loc"][1:]]
    where = ".".join(loc) if loc else "message"
    return ErrorCode.INVALID_MESSAGE, f"{where}: {first['msg']}"


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Decode one text frame. Raises :class:`ProtocolError` (``bad_json``, ``unknown_type``,
    ``invalid_message``, ``unsupported_sample_rate``, ``image_too_large``)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, "text frames must be one JSON object") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "text frames must be one JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_MESSAGE_TYPES:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else None
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {shown!r}" if shown else "missing or invalid 'type'",
        )
    try:
        return _CLIENT_ADAPTER.validate_python(obj)
    except ValidationError as e:
        code, message = _describe(e)
        raise ProtocolError(code, f"{kind}: {message}") from None


def check_audio_frame(data: bytes, *, max_bytes: int = DEFAULT_MAX_AUDIO_FRAME_BYTES) -> None:
    """Validate one binary frame. Raises ``frame_too_large`` or ``odd_length_audio``."""
    if len(data) > max_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"audio frames are limited to {max_bytes} bytes, got {len(data)}",
        )
    if len(data) % SAMPLE_WIDTH:
        raise ProtocolError(
            ErrorCode.ODD_LENGTH_AUDIO,
            f"audio frames must hold whole 16-bit samples, got {len(data)} bytes",
        )


def parse_server_event(data: str | bytes) -> ServerEvent:
    """Decode one server event (for clients and tests). Raises ``ValueError`` on bad input."""
    return _SERVER_ADAPTER.validate_json(data)


#: Message classes by ``type`` tag (for docs and tests).
CLIENT_MESSAGES: dict[str, type[_Message]] = {
    "session.update": SessionUpdate,
    "audio.commit": AudioCommit,
    "audio.clear": AudioClear,
    "text": TextInput,
    "image": ImageInput,
    "cancel": Cancel,
    "confirm": Confirm,
}
SERVER_EVENTS: dict[str, type[_Message]] = {
    "session.created": SessionCreated,
    "session.updated": SessionUpdated,
    "speech.started": SpeechStarted,
    "speech.stopped": SpeechStopped,
    "transcript.partial": TranscriptPartial,
    "transcript.final": TranscriptFinal,
    "intent": IntentEvent,
    "action": ActionEvent,
    "error": ErrorEvent,
    "metrics": MetricsEvent,
    "device.state": DeviceState,
    "response.text": ResponseText,
    "response.audio": ResponseAudio,
    "response.done": ResponseDone,
    "response.interrupted": ResponseInterrupted,
    "timer.finished": TimerFinished,
    "confirmation.cancelled": ConfirmationCancelled,
    "wake.detected": WakeDetected,
}
