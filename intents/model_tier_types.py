"""The model tier's shared vocabulary: defaults, errors (stable codes), settings, image input,
the query a backend is asked and the raw answer it returns. Imported by
:mod:`intents.model_tier` and by both backends (:mod:`intents.model_tier_openai`,
:mod:`intents.model_tier_transformers`), so that the backends never import the module that
builds them (see :func:`intents.model_tier.build_model_tier`).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.registry import DeviceKind, HomeConfig
from intents.schema import (
    Intent,
    IntentName,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# -- defaults (named so docs/models.md and tests can refer to them) -------------------------------

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_TOKENS = 256
DEFAULT_CONFIDENCE = 0.7  # when the model reports none
DEFAULT_MAX_CONFIDENCE = 0.85  # a model's self-report is never trusted more than this
#: Sensitive actions from the model are capped this far below ``sensitive_min_confidence``.
SENSITIVE_MARGIN = 0.05
DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_IMAGES = 4
#: Longest utterance whose audio goes to an audio-capable model (seconds).
DEFAULT_MAX_AUDIO_S = 30.0
#: Sample rate of the audio the model hears (the session's: 16 kHz mono).
AUDIO_SAMPLE_RATE = 16000
MAX_REASON_CHARS = 300
MAX_PARSED_CHARS = 32 * 1024  # of model text searched for a function call

COMMAND_TOOL = "hearth_command"
NO_ACTION_TOOL = "no_action"

#: Which device kinds each built-in intent may act on. ``None``: the intent takes no device.
INTENT_DEVICE_KINDS: Mapping[str, frozenset[DeviceKind] | None] = {
    IntentName.LIGHT_ON: frozenset({DeviceKind.LIGHT}),
    IntentName.LIGHT_OFF: frozenset({DeviceKind.LIGHT}),
    IntentName.LIGHT_SET: frozenset({DeviceKind.LIGHT}),
    # Home Assistant's HassTurnOn is generic; plugs often drive lamps and fans.
    IntentName.SWITCH_ON: frozenset({DeviceKind.SWITCH, DeviceKind.LIGHT, DeviceKind.FAN}),
    IntentName.SWITCH_OFF: frozenset({DeviceKind.SWITCH, DeviceKind.LIGHT, DeviceKind.FAN}),
    IntentName.CLIMATE_SET_TEMPERATURE: frozenset({DeviceKind.CLIMATE}),
    IntentName.CLIMATE_GET_TEMPERATURE: frozenset({DeviceKind.CLIMATE, DeviceKind.SENSOR}),
    IntentName.LOCK: frozenset({DeviceKind.LOCK}),
    IntentName.UNLOCK: frozenset({DeviceKind.LOCK}),
    IntentName.COVER_OPEN: frozenset({DeviceKind.COVER}),
    IntentName.COVER_CLOSE: frozenset({DeviceKind.COVER}),
    IntentName.COVER_SET_POSITION: frozenset({DeviceKind.COVER}),
    IntentName.FAN_ON: frozenset({DeviceKind.FAN}),
    IntentName.FAN_OFF: frozenset({DeviceKind.FAN}),
    IntentName.MEDIA_PAUSE: frozenset({DeviceKind.MEDIA_PLAYER}),
    IntentName.MEDIA_RESUME: frozenset({DeviceKind.MEDIA_PLAYER}),
    IntentName.MEDIA_NEXT: frozenset({DeviceKind.MEDIA_PLAYER}),
    IntentName.MEDIA_SET_VOLUME: frozenset({DeviceKind.MEDIA_PLAYER}),
    IntentName.GET_STATE: frozenset(DeviceKind),
    IntentName.SCENE_ACTIVATE: None,
    IntentName.CANCEL: None,
}

#: ``confirm`` answers a pending sensitive action; a model must never be able to produce it.
FORBIDDEN_MODEL_INTENTS: frozenset[str] = frozenset({IntentName.CONFIRM})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- errors ----------------------------------------------------------------------------------------


class ModelTierError(Exception):
    """The model tier could not produce an answer. ``code`` is stable (for ``error`` events);
    ``public_message`` is safe to show a client; ``str()`` carries detail for logs only."""

    code = "model_error"
    public_message = "the language model failed"


class ModelTierConfigError(ModelTierError):
    code = "model_config"
    public_message = "the language model tier is misconfigured"


class ModelTierLoadError(ModelTierError):
    code = "model_load"
    public_message = "the language model could not be loaded"


class ModelTierInputError(ModelTierError):
    """The request cannot go to this model (bad image, images for a text-only model)."""

    code = "model_input"
    public_message = "the request cannot be sent to the language model"


class ModelTierAudioTooLong(ModelTierInputError):
    """The utterance is longer than ``max_audio_s``: its audio is not sent to the model."""

    code = "model_audio_too_long"
    public_message = "the utterance is too long for the language model to hear"


class ModelTierUnavailable(ModelTierError):
    code = "model_unavailable"
    public_message = "the language model server is unreachable"


class ModelTierTimeout(ModelTierError):
    code = "model_timeout"
    public_message = "the language model did not answer in time"


class ModelTierCancelled(ModelTierError):
    code = "model_cancelled"
    public_message = "the language model request was cancelled"


class ModelTierHTTPError(ModelTierError):
    """The server answered with an HTTP error status (or an error object in the stream)."""

    code = "model_http_error"
    public_message = "the language model server returned an error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ModelTierProtocolError(ModelTierError):
    """The server's answer is not valid chat-completions JSON / SSE."""

    code = "model_protocol_error"
    public_message = "the language model server sent a malformed answer"


class ModelNoToolCallError(ModelTierError):
    """The model answered without calling any function."""

    code = "model_no_tool_call"
    public_message = "the language model gave no usable answer"


# -- settings --------------------------------------------------------------------------------------


class ModelBackend(StrEnum):
    TRANSFORMERS = "transformers"
    OPENAI = "openai"


class ModelTierPolicy(StrEnum):
    """When the model is asked.

    * ``prefer_local`` — grammar first; the model only when the grammar has no confident
      match, or when an image comes with the request;
    * ``model_first`` — the model first; the grammar's confident answer when the model finds
      no intent or fails;
    * ``off`` — never.
    """

    PREFER_LOCAL = "prefer_local"
    MODEL_FIRST = "model_first"
    OFF = "off"


ThinkingParam = Literal["chat_template_kwargs", "top_level"]


class AudioMode(StrEnum):
    """When the model hears the utterance's audio (audio-capable models only).

    * ``off`` — never: the model reads the transcript (and sees any image);
    * ``fallback`` — when the grammar tiers have no confident answer, the model gets the audio
      with the transcript;
    * ``always`` — the model hears every spoken turn (Whisper still writes the transcript
      events; a confident grammar answer stands when the model finds none or fails).
    """

    OFF = "off"
    FALLBACK = "fallback"
    ALWAYS = "always"


def _default_thinking_params() -> list[ThinkingParam]:
    return ["chat_template_kwargs"]


class ModelTierSettings(BaseModel):
    """Typed settings of the tier; the config file's ``assistant.llm`` section."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    backend: ModelBackend = ModelBackend.OPENAI
    policy: ModelTierPolicy = ModelTierPolicy.PREFER_LOCAL
    #: openai: the served model name (``model`` field of the request); optional for servers
    #: that serve one model. transformers: informational.
    model: str | None = None
    #: transformers: a local folder with config, weights, tokenizer/processor and chat template.
    path: str | None = None
    #: openai: base URL such as ``http://127.0.0.1:8000/v1`` (or the full
    #: ``.../chat/completions`` URL).
    url: str | None = None
    #: Name of the environment variable that holds the API key — never the key itself.
    api_key_env: str | None = None
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=600)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, gt=0, le=32768)
    temperature: float = Field(default=0.0, ge=0, le=2)
    #: ``None``: leave the server's / template's default alone.
    enable_thinking: bool | None = None
    #: Where ``enable_thinking`` goes in an OpenAI-compatible request: vLLM and SGLang read
    #: ``chat_template_kwargs``; some hosted APIs read a top-level field.
    thinking_params: list[ThinkingParam] = Field(default_factory=_default_thinking_params)
    #: Ask for the reasoning text and put it into the intent's ``reason``.
    return_reasoning: bool = False
    stream: bool = True
    tool_choice: Literal["auto", "required"] = "auto"
    #: openai: ``tools`` sends the functions as ``tools``; ``json_schema`` sends no tools but a
    #: ``response_format`` JSON schema of the two calls (``{"name": ..., "arguments": ...}``),
    #: which llama.cpp's server (and vLLM, SGLang) turn into a grammar: every token the model
    #: writes is then bound to the registry's intents and ids, even for a tiny model whose
    #: chat template knows no tools.
    output: Literal["tools", "json_schema"] = "tools"
    #: transformers: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
    device: str = "auto"
    #: transformers: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``bfloat16``, ...
    dtype: str = "auto"
    #: transformers: ``None`` detects an image-text model from its config (``vision_config``).
    multimodal: bool | None = None
    #: transformers: keep the key/value cache of the system turn (text models).
    prefix_cache: bool = True
    #: transformers: run model code shipped inside the (local) model folder. Off by default.
    trust_remote_code: bool = False
    default_confidence: float = Field(default=DEFAULT_CONFIDENCE, ge=0, le=1)
    max_confidence: float = Field(default=DEFAULT_MAX_CONFIDENCE, ge=0, le=1)
    #: Let model answers for sensitive actions reach ``sensitive_min_confidence``.
    trust_sensitive: bool = False
    #: Optional allowlist: the model is offered only these intents (built-in names).
    intents: list[str] | None = None
    max_images: int = Field(default=DEFAULT_MAX_IMAGES, ge=0, le=16)
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, gt=0)
    #: Whether the model hears the utterance's audio (see :class:`AudioMode`).
    audio: AudioMode = AudioMode.OFF
    #: Longer utterances are refused (``model_audio_too_long``) rather than sent.
    max_audio_s: float = Field(default=DEFAULT_MAX_AUDIO_S, gt=0, le=600)
    #: Custom intents (``intents.custom``) offered to the model, by name; ``None``: all of
    #: them, ``[]``: none.
    custom_intents: list[str] | None = None

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        # A value that is not an identifier is most likely a key pasted inline: refuse it
        # rather than echo it into logs later.
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("api_key_env is the NAME of an environment variable, not a key")
        return v

    @field_validator("audio", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare ``off`` as false (and ``on`` as true).
        if v is False:
            return AudioMode.OFF
        if v is True:
            return AudioMode.FALLBACK
        return v

    @field_validator("intents")
    @classmethod
    def _known_intents(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for name in v:
            if name in FORBIDDEN_MODEL_INTENTS:
                raise ValueError(f"intent {name!r} can never come from the model tier")
            if name not in INTENT_DEVICE_KINDS:
                raise ValueError(f"unknown intent {name!r}")
        return v

    @model_validator(mode="after")
    def _backend_target(self) -> ModelTierSettings:
        if self.policy is ModelTierPolicy.OFF:
            return self
        if self.backend is ModelBackend.OPENAI and not self.url:
            raise ValueError("backend 'openai' needs 'url'")
        if self.backend is ModelBackend.TRANSFORMERS and not self.path:
            raise ValueError("backend 'transformers' needs 'path'")
        return self

    @classmethod
    def from_config(cls, config: HomeConfig, **overrides: Any) -> ModelTierSettings:
        """Settings from ``config.assistant["llm"]`` (absent: policy ``off``), with overrides
        (e.g. from the command line) applied on top. Raises :class:`ModelTierConfigError`."""
        raw = config.assistant.get("llm") or {}
        if not isinstance(raw, Mapping):
            raise ModelTierConfigError("assistant.llm must be a mapping")
        data: dict[str, Any] = dict(raw)
        if not data and not overrides:
            data["policy"] = ModelTierPolicy.OFF
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "llm"
            raise ModelTierConfigError(f"assistant.llm.{where}: {err['msg']}") from None


# -- images ----------------------------------------------------------------------------------------

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _sniff_mime(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageInput:
    """An image that gives context to the next utterance (a camera snapshot, a photo).

    The MIME type is taken from the bytes, not from the sender; only PNG, JPEG, GIF and WebP
    are accepted."""

    data: bytes = field(repr=False)
    mime_type: str

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> ImageInput:
        if not data:
            raise ModelTierInputError("empty image")
        if len(data) > max_bytes:
            raise ModelTierInputError(f"image too large: {len(data)} > {max_bytes} bytes")
        mime = _sniff_mime(data)
        if mime is None:
            raise ModelTierInputError("not a PNG, JPEG, GIF or WebP image")
        return cls(data=data, mime_type=mime)

    @classmethod
    def from_base64(cls, value: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> ImageInput:
        """From plain base64 or a ``data:image/...;base64,`` URL (what the ``image`` wire
        message carries)."""
        payload = value.strip()
        if payload.startswith("data:"):
            _, sep, payload = payload.partition(",")
            if not sep:
                raise ModelTierInputError("malformed data URL")
        # Bound the work before decoding: base64 is 4/3 of the bytes.
        if len(payload) > max_bytes * 4 // 3 + 4:
            raise ModelTierInputError(f"image too large: more than {max_bytes} bytes")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ModelTierInputError(f"invalid base64 image: {e}") from None
        return cls.from_bytes(data, max_bytes=max_bytes)

    def to_data_url(self) -> str:
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_pil(self) -> PILImage:
        """Decoded RGB image (PIL imported lazily; decompression-bomb checks stay on)."""
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self.data)) as img:
                img.load()
                return img.convert("RGB")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise ModelTierInputError(f"cannot decode image: {e}") from None


# -- audio ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInput:
    """The utterance as heard: mono 16-bit PCM at :data:`AUDIO_SAMPLE_RATE`, for models that
    take audio (an ``input_audio`` WAV part over HTTP; the processor's features locally)."""

    pcm: bytes = field(repr=False)
    sample_rate: int = AUDIO_SAMPLE_RATE

    @classmethod
    def from_samples(cls, samples: Any, sample_rate: int = AUDIO_SAMPLE_RATE) -> AudioInput:
        """From float samples in [-1, 1] (the session's float32 audio); clipped."""
        import numpy as np

        arr = np.asarray(samples, dtype=np.float32).reshape(-1)
        if arr.size == 0:
            raise ModelTierInputError("empty audio")
        pcm = (np.clip(arr, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        return cls(pcm=pcm, sample_rate=sample_rate)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    def check(self, max_s: float) -> None:
        """Raise :class:`ModelTierAudioTooLong` when longer than ``max_s`` seconds."""
        if self.duration_s > max_s:
            raise ModelTierAudioTooLong(
                f"audio of {self.duration_s:.1f} s is longer than max_audio_s {max_s:g} s"
            )

    def to_wav(self) -> bytes:
        import io
        import wave

        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.pcm)
        return buf.getvalue()

    def to_base64_wav(self) -> str:
        return base64.b64encode(self.to_wav()).decode("ascii")

    def to_float32(self) -> Any:
        """Float32 samples in [-1, 1] (what feature extractors take)."""
        import numpy as np

        return np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0


# -- what the model is asked, and answers ---------------------------------------------------------


@dataclass(frozen=True)
class ModelQuery:
    """One request to the model: the sentence and what comes with it. What a backend's
    ``_ask`` gets (see :class:`intents.model_tier_base.ModelTier`); ``audio`` is already
    checked against ``max_audio_s`` and is None unless the tier hears."""

    text: str
    config: HomeConfig
    images: Sequence[ImageInput] = ()
    language: str = "en"
    context: Intent | None = None
    cancel: threading.Event | None = None
    audio: AudioInput | None = None


@dataclass(frozen=True)
class ToolCall:
    """One function call as the model emitted it; ``arguments`` is raw (JSON text or object)."""

    name: str
    arguments: str | Mapping[str, Any]


@dataclass(frozen=True)
class ModelAnswer:
    """What a backend got from the model, before validation."""

    tool_calls: tuple[ToolCall, ...]
    content: str = ""
    reasoning: str = ""
    model: str = ""
