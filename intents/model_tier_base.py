"""What the model answers, validated, and the tier's contract (:class:`ModelTier`) that both
backends implement: function calls parsed from text, arguments checked by pydantic and against
the registry, confidence capped, the grammar/model routing policy (see :mod:`intents.model_tier`
for the security model)."""

from __future__ import annotations

import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.registry import Device, DeviceKind, HomeConfig
from intents.model_tier_custom import CustomIntentSpec, custom_specs, validate_custom_slots
from intents.model_tier_prompt import (
    allowed_intents,
)
from intents.model_tier_types import (
    COMMAND_TOOL,
    INTENT_DEVICE_KINDS,
    MAX_PARSED_CHARS,
    MAX_REASON_CHARS,
    NO_ACTION_TOOL,
    SENSITIVE_MARGIN,
    AudioInput,
    AudioMode,
    ImageInput,
    ModelAnswer,
    ModelNoToolCallError,
    ModelQuery,
    ModelTierCancelled,
    ModelTierError,
    ModelTierInputError,
    ModelTierPolicy,
    ModelTierSettings,
    ToolCall,
)
from intents.robust_base import plausible_setpoint
from intents.schema import (
    QUERY_INTENTS,
    SENSITIVE_INTENTS,
    SLOT_CAPABILITY,
    Intent,
    IntentName,
    Recognition,
    Slots,
)

log = logging.getLogger(__name__)

#: Intents that are harmless even on a sensitive device (locking, closing, reading state).
_SAFE_ON_SENSITIVE: frozenset[str] = frozenset(
    {IntentName.LOCK, IntentName.COVER_CLOSE, IntentName.CANCEL} | QUERY_INTENTS
)



class _CommandArgs(BaseModel):
    """The ``hearth_command`` arguments. Strict: a string where a number belongs is rejected,
    not coerced, and unknown arguments are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    intent: str
    device_ids: list[str] = Field(default_factory=list)
    area: str | None = None
    floor: str | None = None
    scene: str | None = None
    brightness: int | None = Field(default=None, ge=0, le=100)
    brightness_step: int | None = Field(default=None, ge=-100, le=100)
    color: str | None = Field(default=None, max_length=40)
    color_temp_kelvin: int | None = Field(default=None, ge=1000, le=10000)
    temperature: float | None = Field(default=None, ge=-50, le=120)
    temperature_unit: Literal["C", "F"] | None = None
    position: int | None = Field(default=None, ge=0, le=100)
    volume: int | None = Field(default=None, ge=0, le=100)
    confidence: float | None = Field(default=None, ge=0, le=1)
    reason: str | None = None
    #: Slots of a custom intent (:mod:`intents.model_tier_custom` checks them).
    custom_slots: dict[str, Any] | None = None


class _InvalidOutput(Exception):
    pass


_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def split_reasoning(text: str) -> tuple[str, str]:
    """``(content, reasoning)``: ``<think>`` blocks (reasoning models served without a
    reasoning parser) are moved out of the content."""
    reasoning = " ".join(m.strip() for m in _THINK.findall(text))
    # A template may open <think> in the prompt, so the output holds only "...</think>".
    if "</think>" in text and "<think>" not in text:
        head, _, text = text.partition("</think>")
        reasoning = (head.strip() + " " + reasoning).strip()
    return _THINK.sub("", text).strip(), reasoning


def parse_tool_calls_from_text(text: str) -> tuple[ToolCall, ...]:
    """Function calls written as text: ``<tool_call>{json}</tool_call>`` (Qwen, Hermes), or bare
    JSON objects with ``name`` and ``arguments``/``parameters``, or a bare ``hearth_command``
    argument object (has ``intent``). Returns ``()`` when there is none."""
    # raw_decode from every "{" is quadratic on hostile text; a function call is short.
    text = text[:MAX_PARSED_CHARS]
    chunks = _TOOL_CALL_TAG.findall(text) or [text]
    calls: list[ToolCall] = []
    decoder = json.JSONDecoder()
    for chunk in chunks:
        i = chunk.find("{")
        while i != -1:
            try:
                obj, end = decoder.raw_decode(chunk, i)
            except json.JSONDecodeError:
                i = chunk.find("{", i + 1)
                continue
            call = _as_tool_call(obj)
            if call is not None:
                calls.append(call)
            i = chunk.find("{", end)
    return tuple(calls)


def _as_tool_call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if "function" in obj and isinstance(obj["function"], dict):  # OpenAI shape written as text
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(name, str) and isinstance(args, str | dict):
        return ToolCall(name=name, arguments=args)
    if isinstance(name, str) and name == NO_ACTION_TOOL:
        return ToolCall(name=name, arguments={})
    if "intent" in obj:
        return ToolCall(name=COMMAND_TOOL, arguments=obj)
    return None


def _short(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resolve_devices(
    config: HomeConfig, args: _CommandArgs, kinds: frozenset[DeviceKind]
) -> list[Device]:
    by_id = {d.id: d for d in config.devices}
    if args.device_ids:
        devices: list[Device] = []
        for dev_id in dict.fromkeys(args.device_ids):
            if dev_id not in by_id:
                raise _InvalidOutput(f"unknown device {dev_id!r}")
            dev = by_id[dev_id]
            if dev.kind not in kinds:
                raise _InvalidOutput(f"device {dev_id!r} is a {dev.kind.value}")
            devices.append(dev)
        return devices
    # An area or floor alone ("the kitchen lights"): every fitting device there.
    if args.area is None and args.floor is None:
        raise _InvalidOutput("no device, area or floor given")
    found = [
        d
        for d in config.devices
        if d.kind in kinds
        and (args.area is None or d.area == args.area)
        and (args.floor is None or config.floor_of(d) == args.floor)
    ]
    if not found:
        raise _InvalidOutput("no fitting device in the given area/floor")
    return found


def _validate_command(
    raw: str | Mapping[str, Any], config: HomeConfig, settings: ModelTierSettings
) -> tuple[_CommandArgs, Slots, list[Device]]:
    if isinstance(raw, str):
        try:
            obj = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise _InvalidOutput(f"arguments are not JSON ({e.msg})") from None
    else:
        obj = dict(raw)
    if not isinstance(obj, dict):
        raise _InvalidOutput("arguments are not an object")
    try:
        args = _CommandArgs.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise _InvalidOutput(f"{where}: {err['msg']}") from None
    custom = {c.name: c for c in custom_specs(config, settings)}
    if args.intent in custom and args.intent not in INTENT_DEVICE_KINDS:
        return args, _custom_slots(args, custom[args.intent]), []
    if args.custom_slots:
        raise _InvalidOutput(f"{args.intent} takes no custom_slots")
    if args.intent not in allowed_intents(settings):
        raise _InvalidOutput(f"intent {args.intent!r} is not allowed")
    if args.area is not None and args.area not in {a.id for a in config.areas}:
        raise _InvalidOutput(f"unknown area {args.area!r}")
    if args.floor is not None and args.floor not in {f.id for f in config.floors}:
        raise _InvalidOutput(f"unknown floor {args.floor!r}")
    if args.scene is not None and args.scene not in {s.id for s in config.scenes}:
        raise _InvalidOutput(f"unknown scene {args.scene!r}")

    kinds = INTENT_DEVICE_KINDS[args.intent]
    devices: list[Device] = []
    if kinds is None:
        if args.device_ids:
            raise _InvalidOutput(f"{args.intent} takes no device")
        if args.intent == IntentName.SCENE_ACTIVATE and args.scene is None:
            raise _InvalidOutput("scene_activate needs a scene")
    else:
        devices = _resolve_devices(config, args, kinds)
    _check_slots(args, devices)

    domain = devices[0].kind.value if devices and len({d.kind for d in devices}) == 1 else None
    try:
        slots = Slots(
            device_ids=[d.id for d in devices],
            area=args.area,
            floor=args.floor,
            domain=domain,
            brightness=args.brightness,
            brightness_step=args.brightness_step,
            color=args.color,
            color_temp_kelvin=args.color_temp_kelvin,
            temperature=args.temperature,
            temperature_unit=args.temperature_unit,
            position=args.position,
            volume=args.volume,
            scene=args.scene,
        )
    except ValidationError as e:  # pragma: no cover - _CommandArgs is at least as strict
        raise _InvalidOutput(str(e.errors()[0]["msg"])) from None
    return args, slots, devices


def _custom_slots(args: _CommandArgs, spec: CustomIntentSpec) -> Slots:
    """A custom intent's answer: its own slots only, values from its lists, no devices."""
    given = args.model_dump(exclude_none=True, exclude={"intent", "confidence", "reason"})
    others = sorted(k for k, v in given.items() if k != "custom_slots" and v != [])
    if others:
        raise _InvalidOutput(f"{spec.name} is a custom intent: {', '.join(others)} not taken")
    try:
        values = validate_custom_slots(spec, args.custom_slots)
    except ValueError as e:
        raise _InvalidOutput(str(e)) from None
    return Slots(custom=values)


def _check_slots(args: _CommandArgs, devices: list[Device]) -> None:
    """Required slots per intent, and device capabilities for the slots given."""
    need: dict[str, tuple[str, ...]] = {
        IntentName.CLIMATE_SET_TEMPERATURE: ("temperature",),
        IntentName.COVER_SET_POSITION: ("position",),
        IntentName.MEDIA_SET_VOLUME: ("volume",),
    }
    for slot in need.get(args.intent, ()):
        if getattr(args, slot) is None:
            raise _InvalidOutput(f"{args.intent} needs {slot}")
    t = args.temperature
    if args.intent == IntentName.CLIMATE_SET_TEMPERATURE and t is not None \
            and not plausible_setpoint(t, args.temperature_unit):
        # The grammar refuses "set the heat to 2 degrees" (a misheard number) and so asks
        # the model: its reading of the same number is refused too.
        raise _InvalidOutput(f"{t:g} degrees is not a temperature I would set; say one "
                             "between 5 and 35 degrees")
    if args.intent == IntentName.LIGHT_SET and all(
        getattr(args, s) is None
        for s in ("brightness", "brightness_step", "color", "color_temp_kelvin")
    ):
        raise _InvalidOutput("light_set needs brightness, colour or colour temperature")
    for slot, capability in SLOT_CAPABILITY.items():
        if getattr(args, slot, None) is None:
            continue
        lacking = [d.id for d in devices if capability not in d.capabilities]
        if lacking:
            raise _InvalidOutput(f"{', '.join(lacking)} cannot take {slot}")


def cap_confidence(
    confidence: float,
    *,
    intent_name: str,
    devices: Sequence[Device],
    config: HomeConfig,
    settings: ModelTierSettings,
) -> float:
    """The model's self-reported confidence, capped (see the module docstring)."""
    conf = min(confidence, settings.max_confidence)
    sensitive = intent_name in SENSITIVE_INTENTS or (
        intent_name not in _SAFE_ON_SENSITIVE and any(d.sensitive for d in devices)
    )
    if sensitive and not settings.trust_sensitive:
        conf = min(conf, max(0.0, config.security.sensitive_min_confidence - SENSITIVE_MARGIN))
    return round(conf, 4)


def interpret_answer(
    answer: ModelAnswer,
    *,
    text: str,
    config: HomeConfig,
    settings: ModelTierSettings,
    language: str = "en",
) -> Recognition:
    """Turn a model's answer into a validated Recognition.

    Raises :class:`ModelNoToolCallError` when the answer holds no function call at all; every
    other defect is ``Recognition(intent=None, reason="model output invalid: ...")``."""
    calls = answer.tool_calls or parse_tool_calls_from_text(answer.content)
    if not calls:
        snippet = _short(answer.content, 120)
        raise ModelNoToolCallError(f"no function call in the model output: {snippet!r}")
    call = calls[0]
    who = f"model {answer.model}" if answer.model else "model"
    thought = (
        f"; reasoning: {_short(answer.reasoning)}"
        if settings.return_reasoning and answer.reasoning
        else ""
    )
    extra = f" ({len(calls) - 1} more call(s) ignored)" if len(calls) > 1 else ""

    if call.name == NO_ACTION_TOOL:
        why = ""
        if isinstance(call.arguments, Mapping):
            why = str(call.arguments.get("reason") or "")
        else:
            try:
                parsed = json.loads(call.arguments or "{}")
                why = str(parsed.get("reason") or "") if isinstance(parsed, dict) else ""
            except json.JSONDecodeError:
                why = ""
        return Recognition(
            intent=None, reason=_short(f"{who}: no action: {why}".rstrip(": ") + extra + thought)
        )
    if call.name != COMMAND_TOOL:
        return Recognition(
            intent=None, reason=_short(f"model output invalid: unknown function {call.name!r}")
        )
    try:
        args, slots, devices = _validate_command(call.arguments, config, settings)
    except _InvalidOutput as e:
        log.info("model output rejected: %s", e)
        return Recognition(intent=None, reason=_short(f"model output invalid: {e}"))

    raw_conf = args.confidence if args.confidence is not None else settings.default_confidence
    conf = cap_confidence(
        raw_conf, intent_name=args.intent, devices=devices, config=config, settings=settings
    )
    if slots.custom or args.intent not in INTENT_DEVICE_KINDS:
        # A custom action marked sensitive is capped like a built-in sensitive one.
        spec = next((c for c in custom_specs(config, settings) if c.name == args.intent), None)
        if spec is not None and spec.sensitive and not settings.trust_sensitive:
            bar = config.security.sensitive_min_confidence - SENSITIVE_MARGIN
            conf = round(min(conf, max(0.0, bar)), 4)
    why = f": {args.reason}" if args.reason else ""
    reason = _short(f"{who}: {args.intent}{why}{extra}{thought}")
    intent = Intent(
        name=args.intent,
        slots=slots,
        confidence=conf,
        source="llm",
        reason=reason,
        text=text,
        language=language,
    )
    return Recognition(intent=intent, reason=reason)


def _confident(grammar: Recognition | None, config: HomeConfig) -> bool:
    return (
        grammar is not None
        and grammar.intent is not None
        and grammar.intent.confidence >= config.security.min_confidence
    )


# -- the tier --------------------------------------------------------------------------------------


class ModelTier(ABC):
    """A language-model recognizer. Thread-safe; calls block (run them in a worker thread)."""

    def __init__(self, settings: ModelTierSettings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.policy is not ModelTierPolicy.OFF

    def recognize(
        self,
        text: str,
        *,
        config: HomeConfig,
        images: Sequence[ImageInput] = (),
        language: str = "en",
        context: Intent | None = None,
        cancel: threading.Event | None = None,
        audio: AudioInput | None = None,
    ) -> Recognition:
        """Ask the model. Returns a validated Recognition (``intent=None`` with the reason when
        the model declines or its output is invalid); raises :class:`ModelTierError` when no
        answer could be had (transport, timeout after ``settings.timeout_s``, no function call).
        Setting ``cancel`` aborts a request in flight with :class:`ModelTierCancelled`.

        ``audio``: the utterance as heard; sent only when ``settings.audio`` is not ``off``,
        refused (:class:`~intents.model_tier_types.ModelTierAudioTooLong`) above
        ``max_audio_s``."""
        audio = self.heard(audio)
        if len(images) > self.settings.max_images:
            raise ModelTierInputError(
                f"too many images: {len(images)} > {self.settings.max_images}"
            )
        for img in images:
            if len(img.data) > self.settings.max_image_bytes:
                raise ModelTierInputError("image too large")
        query = ModelQuery(text, config, images, language, context, cancel, audio)
        return interpret_answer(
            self._ask(query), text=text, config=config, settings=self.settings, language=language
        )

    def route(
        self,
        text: str,
        grammar: Recognition | None,
        *,
        config: HomeConfig,
        images: Sequence[ImageInput] = (),
        language: str = "en",
        context: Intent | None = None,
        policy: ModelTierPolicy | None = None,
        cancel: threading.Event | None = None,
        audio: AudioInput | None = None,
    ) -> Recognition:
        """Combine the grammar's answer with the model's according to the policy (the
        settings' one, or ``policy`` for this session). The grammar's answer is "confident"
        when it has an intent at or above ``security.min_confidence``.

        Raises :class:`ModelTierError` when the model was needed and failed and the grammar
        has no confident answer to fall back on (a cancellation always raises)."""
        policy = self._policy(policy)
        confident = _confident(grammar, config)
        if policy is ModelTierPolicy.OFF:
            return (
                grammar
                if grammar is not None
                else Recognition(intent=None, reason="no grammar match; model tier off")
            )
        hears = self.heard(audio, check=False) is not None
        always = hears and self.settings.audio is AudioMode.ALWAYS
        if policy is ModelTierPolicy.PREFER_LOCAL and confident and not images and not always:
            assert grammar is not None
            return grammar
        # model_first, or prefer_local with no confident grammar answer or with an image:
        # the model's intent wins; a confident grammar answer stands when the model finds
        # none or fails (e.g. a text-only model given a photo).
        try:
            rec = self.recognize(
                text,
                config=config,
                images=images,
                language=language,
                context=context,
                cancel=cancel,
                audio=audio,
            )
        except ModelTierError as e:
            if confident and not isinstance(e, ModelTierCancelled):
                assert grammar is not None
                log.warning("model tier failed (%s); using the grammar's answer", e.code)
                return grammar
            raise
        if rec.intent is None and confident:
            assert grammar is not None
            return grammar
        return self._with_grammar_alternative(rec, grammar)

    def wants_model(
        self,
        grammar: Recognition | None,
        *,
        config: HomeConfig,
        images: Sequence[ImageInput] = (),
        policy: ModelTierPolicy | None = None,
        audio: AudioInput | None = None,
    ) -> bool:
        """Whether :meth:`route` would call the model — lets an event loop skip the hop to a
        worker thread when the grammar's answer stands."""
        policy = self._policy(policy)
        if policy is ModelTierPolicy.OFF or not self.enabled:
            return False
        if policy is ModelTierPolicy.PREFER_LOCAL:
            always = (
                self.heard(audio, check=False) is not None
                and self.settings.audio is AudioMode.ALWAYS
            )
            return bool(images) or always or not _confident(grammar, config)
        return True

    def _policy(self, policy: ModelTierPolicy | None) -> ModelTierPolicy:
        """The policy in force: this session's, else the settings' one."""
        return policy or self.settings.policy

    def heard(self, audio: AudioInput | None, *, check: bool = True) -> AudioInput | None:
        """The audio the model is to hear: None when there is none or ``audio: off``.
        With ``check``, audio longer than ``max_audio_s`` raises ``model_audio_too_long``."""
        if audio is None or self.settings.audio is AudioMode.OFF:
            return None
        if check:
            audio.check(self.settings.max_audio_s)
        return audio

    @staticmethod
    def _with_grammar_alternative(rec: Recognition, grammar: Recognition | None) -> Recognition:
        if grammar is None or grammar.intent is None:
            return rec
        return rec.model_copy(update={"alternatives": [*rec.alternatives, grammar.intent]})

    @abstractmethod
    def _ask(self, query: ModelQuery) -> ModelAnswer:
        """Run the model once on ``query`` (its images and audio already checked against the
        settings); raise :class:`ModelTierError` on failure."""

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load weights now rather than on the first call (no-op for remote backends)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connections). Idempotent."""
