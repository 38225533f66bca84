"""Client -> server messages of the wire protocol and their decoding (sans-I/O).

Text frames are decoded with :func:`parse_client_message`, which raises :class:`ProtocolError`
with a stable :class:`~assistant.protocol_base.ErrorCode`; binary frames are checked with
:func:`check_audio_frame`. Re-exported by :mod:`assistant.protocol`.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from assistant.protocol_base import (
    DEFAULT_MAX_AUDIO_FRAME_BYTES,
    IMAGE_MIME_TYPES,
    MAX_IMAGE_BYTES,
    MAX_TEXT_CHARS,
    SAMPLE_WIDTH,
    ErrorCode,
    Mode,
    TurnDetection,
    WakeSettings,
    _check_sample_rate,
    _Message,
)
from assistant.protocol_events import ErrorEvent

#: A rate the server takes (``unsupported_sample_rate`` otherwise); None: unchanged.
_SampleRate: TypeAlias = Annotated[int | None, AfterValidator(_check_sample_rate)]


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


class ReplySettings(_Message):
    """``session.update.reply``: how the client wants replies. Fields left out keep their
    value. ``audio``: send the spoken reply (``response.audio``); ``sample_rate``: its rate."""

    audio: bool | None = None
    sample_rate: _SampleRate = None


class SessionUpdate(_Message):
    """Change session settings. Fields left out (or null) keep their current value.

    Allowed at any time; a new ``sample_rate`` applies to the next binary frame (an utterance in
    progress is committed first). ``token`` authenticates browsers that cannot set headers.
    """

    type: Literal["session.update"] = "session.update"
    sample_rate: _SampleRate = None
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
