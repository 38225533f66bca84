"""Server -> client events of the wire protocol (sans-I/O).

Encoded with ``event.to_json()``; decoded (by clients and tests) with
:func:`parse_server_event`. Re-exported by :mod:`assistant.protocol`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter

from assistant.protocol_base import (
    DEFAULT_SAMPLE_RATE,
    PROTOCOL_VERSION,
    SUPPORTED_SAMPLE_RATES,
    ErrorCode,
    Mode,
    TurnDetection,
    WakeSettings,
    _Message,
)
from intents.schema import Intent


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
    #: The utterance whose command this one completes or corrects (the amend window,
    #: ``turn_detection.amend_ms``, :mod:`assistant.turn.amend`); null for a turn of its own.
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


def parse_server_event(data: str | bytes) -> ServerEvent:
    """Decode one server event (for clients and tests). Raises ``ValueError`` on bad input."""
    return _SERVER_ADAPTER.validate_json(data)


#: Event classes by ``type`` tag (for docs and tests).
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
