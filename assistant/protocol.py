"""The Hearth wire protocol (v1): one typed message class per wire message, sans-I/O.

Everything that crosses the WebSocket is defined in this module's parts and nowhere else;
docs/protocol.md is the prose version of them. Import from here: every name is re-exported.

* Text frames carry one JSON object with a ``type`` tag. Client -> server messages are decoded
  with :func:`parse_client_message`, which raises :class:`ProtocolError` with a stable
  :class:`ErrorCode`; server -> client events are encoded with ``event.to_json()`` and decoded
  (by clients and tests) with :func:`parse_server_event`.
* Binary frames carry raw PCM, signed 16-bit little-endian, mono, at the session's sample rate
  (:data:`DEFAULT_SAMPLE_RATE` until a ``session.update`` says otherwise). They are checked with
  :func:`check_audio_frame`.

No function here touches a socket, the event loop or a model.

Layout
------
:mod:`assistant.protocol_base` (limits, error and close codes, the message base, the settings
both directions carry), :mod:`assistant.protocol_client` (client messages, ``ProtocolError``,
parsing, audio frame checks), :mod:`assistant.protocol_events` (server events). The parts import
each other in that order (client -> events -> base), never this module.
"""

from __future__ import annotations

from assistant.protocol_base import (
    DEFAULT_MAX_AUDIO_FRAME_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_SAMPLE_RATE,
    IMAGE_MIME_TYPES,
    MAX_IMAGE_BYTES,
    MAX_TEXT_CHARS,
    PIPELINE_SAMPLE_RATE,
    PROTOCOL_VERSION,
    SAMPLE_WIDTH,
    SUPPORTED_SAMPLE_RATES,
    CloseCode,
    ErrorCode,
    Mode,
    TurnDetection,
    WakeSettings,
    _Message,
)
from assistant.protocol_client import (
    CLIENT_MESSAGE_TYPES,
    CLIENT_MESSAGES,
    AudioClear,
    AudioCommit,
    Cancel,
    ClientMessage,
    Confirm,
    ImageInput,
    ProtocolError,
    ReplySettings,
    SessionUpdate,
    TextInput,
    check_audio_frame,
    parse_client_message,
)
from assistant.protocol_events import (
    SERVER_EVENTS,
    ActionEvent,
    ActionStatus,
    ConfirmationCancelled,
    DeviceState,
    ErrorEvent,
    IntentEvent,
    Limits,
    MetricsEvent,
    Outcome,
    ReplyConfig,
    ReplyKind,
    ResponseAudio,
    ResponseDone,
    ResponseInterrupted,
    ResponseText,
    ServerEvent,
    SessionConfig,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    StageTimings,
    TimerFinished,
    TranscriptFinal,
    TranscriptPartial,
    WakeDetected,
    parse_server_event,
)

__all__ = [
    "CLIENT_MESSAGES",
    "CLIENT_MESSAGE_TYPES",
    "DEFAULT_MAX_AUDIO_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_SAMPLE_RATE",
    "IMAGE_MIME_TYPES",
    "MAX_IMAGE_BYTES",
    "MAX_TEXT_CHARS",
    "PIPELINE_SAMPLE_RATE",
    "PROTOCOL_VERSION",
    "SAMPLE_WIDTH",
    "SERVER_EVENTS",
    "SUPPORTED_SAMPLE_RATES",
    "ActionEvent",
    "ActionStatus",
    "AudioClear",
    "AudioCommit",
    "Cancel",
    "ClientMessage",
    "CloseCode",
    "Confirm",
    "ConfirmationCancelled",
    "DeviceState",
    "ErrorCode",
    "ErrorEvent",
    "ImageInput",
    "IntentEvent",
    "Limits",
    "MetricsEvent",
    "Mode",
    "Outcome",
    "ProtocolError",
    "ReplyConfig",
    "ReplyKind",
    "ReplySettings",
    "ResponseAudio",
    "ResponseDone",
    "ResponseInterrupted",
    "ResponseText",
    "ServerEvent",
    "SessionConfig",
    "SessionCreated",
    "SessionUpdate",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "StageTimings",
    "TextInput",
    "TimerFinished",
    "TranscriptFinal",
    "TranscriptPartial",
    "TurnDetection",
    "WakeDetected",
    "WakeSettings",
    "_Message",
    "check_audio_frame",
    "parse_client_message",
    "parse_server_event",
]
