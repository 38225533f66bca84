"""The language-model tier: what the grammar cannot parse, a model may — within the registry.

Contract
--------
:class:`ModelTier` turns a sentence (plus optional images) into a
:class:`~intents.schema.Recognition` with ``source="llm"``. Two backends implement it,
imported lazily so neither ``transformers`` nor ``torch`` is needed unless configured:

* ``transformers`` — a local causal LM or image-text-to-text model loaded from a folder
  (``local_files_only=True``, never a hub download), see ``intents.model_tier_transformers``;
* ``openai`` — any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, SGLang),
  see ``intents.model_tier_openai``.

Security model
--------------
The model is offered exactly two functions: ``hearth_command`` (intent names and device, area,
floor and scene ids as JSON-schema enums built from the registry and the policy) and
``no_action``. Whatever the model answers is validated twice: by pydantic (strict types, no extra
arguments) and against the registry (the device exists, its kind fits the intent, it has the
capability a slot needs). Any failure gives ``Recognition(intent=None, reason="model output
invalid: ...")`` — never a guess. The user's words only ever travel in the ``user`` message, so
they cannot add intents or devices: the allowed set comes from the registry and the settings only.
The model may never produce ``confirm`` (that would let spoken text approve a pending sensitive
action), and its self-reported confidence is capped at ``max_confidence``, and for sensitive
actions below ``security.sensitive_min_confidence`` unless ``trust_sensitive`` is set, so the
dispatcher's sensitive-action policy rejects them.

Failures of the transport or the model run (HTTP errors, malformed responses, no function call,
timeouts) raise a :class:`ModelTierError` subclass with a stable ``code``; the caller maps it once
to an ``error`` event and acts on nothing.

Callers that already ran the grammar use :meth:`ModelTier.route`, which applies the policy
(``prefer_local`` / ``model_first`` / ``off``); it is synchronous and meant for a worker thread.

Layout
------
This module builds a tier (:func:`build_model_tier`) and puts it behind the grammar
(:class:`TieredRecognizer`); it re-exports its parts, which the backends import directly (never
this module, so nothing imports in a circle): :mod:`intents.model_tier_types` (defaults, errors,
settings, images, raw answers), :mod:`intents.model_tier_prompt` (what the model is offered),
:mod:`intents.model_tier_base` (answer validation and the :class:`ModelTier` contract).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from devices.registry import HomeConfig
from intents.model_tier_base import (
    ModelTier,
    cap_confidence,
    interpret_answer,
    parse_tool_calls_from_text,
    split_reasoning,
)
from intents.model_tier_prompt import (
    allowed_intents,
    build_tools,
    system_prompt,
    user_message,
)
from intents.model_tier_types import (
    AUDIO_SAMPLE_RATE,
    COMMAND_TOOL,
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_AUDIO_S,
    DEFAULT_MAX_CONFIDENCE,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TIMEOUT_S,
    FORBIDDEN_MODEL_INTENTS,
    INTENT_DEVICE_KINDS,
    MAX_PARSED_CHARS,
    MAX_REASON_CHARS,
    NO_ACTION_TOOL,
    SENSITIVE_MARGIN,
    AudioInput,
    AudioMode,
    ImageInput,
    ModelAnswer,
    ModelBackend,
    ModelNoToolCallError,
    ModelQuery,
    ModelTierAudioTooLong,
    ModelTierCancelled,
    ModelTierConfigError,
    ModelTierError,
    ModelTierHTTPError,
    ModelTierInputError,
    ModelTierLoadError,
    ModelTierPolicy,
    ModelTierProtocolError,
    ModelTierSettings,
    ModelTierTimeout,
    ModelTierUnavailable,
    ThinkingParam,
    ToolCall,
)
from intents.schema import (
    Intent,
    Recognition,
)

#: Everything the tier offers, wherever it is defined (its parts: ``model_tier_types``,
#: ``model_tier_prompt``, ``model_tier_base``).
__all__ = [
    "AUDIO_SAMPLE_RATE",
    "COMMAND_TOOL",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MAX_AUDIO_S",
    "DEFAULT_MAX_CONFIDENCE",
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TIMEOUT_S",
    "FORBIDDEN_MODEL_INTENTS",
    "INTENT_DEVICE_KINDS",
    "MAX_PARSED_CHARS",
    "MAX_REASON_CHARS",
    "NO_ACTION_TOOL",
    "SENSITIVE_MARGIN",
    "AudioInput",
    "AudioMode",
    "DisabledModelTier",
    "GrammarRecognizer",
    "ImageInput",
    "ModelAnswer",
    "ModelBackend",
    "ModelNoToolCallError",
    "ModelQuery",
    "ModelTier",
    "ModelTierAudioTooLong",
    "ModelTierCancelled",
    "ModelTierConfigError",
    "ModelTierError",
    "ModelTierHTTPError",
    "ModelTierInputError",
    "ModelTierLoadError",
    "ModelTierPolicy",
    "ModelTierProtocolError",
    "ModelTierSettings",
    "ModelTierTimeout",
    "ModelTierUnavailable",
    "ThinkingParam",
    "TieredRecognizer",
    "ToolCall",
    "allowed_intents",
    "build_model_tier",
    "build_tools",
    "cap_confidence",
    "interpret_answer",
    "parse_tool_calls_from_text",
    "split_reasoning",
    "system_prompt",
    "user_message",
]


class DisabledModelTier(ModelTier):
    """Policy ``off``: :meth:`route` returns the grammar's answer; :meth:`recognize` declines."""

    def _ask(self, query: ModelQuery) -> ModelAnswer:
        return ModelAnswer(tool_calls=(ToolCall(NO_ACTION_TOOL, {"reason": "model tier off"}),))

    def _policy(self, policy: ModelTierPolicy | None) -> ModelTierPolicy:
        return ModelTierPolicy.OFF


class GrammarRecognizer(Protocol):
    """What :class:`TieredRecognizer` needs from ``intents.recognizer.Recognizer``."""

    def recognize(
        self, text: str, *, language: str | None = None, context: Intent | None = None
    ) -> Recognition: ...


class TieredRecognizer:
    """Grammar first, then the model tier according to its policy: a drop-in for a
    ``Recognizer`` where final utterances are recognized (``recognize`` blocks: call it in a
    worker thread). Keep speculative recognition of partial transcripts on ``.grammar`` —
    partial text must never reach the model."""

    def __init__(self, grammar: GrammarRecognizer, tier: ModelTier, config: HomeConfig) -> None:
        self.grammar = grammar
        self.tier = tier
        self.config = config

    def recognize(
        self,
        text: str,
        *,
        language: str | None = None,
        context: Intent | None = None,
        images: Sequence[ImageInput] = (),
        policy: ModelTierPolicy | None = None,
        cancel: threading.Event | None = None,
        area: str | None = None,
        audio: AudioInput | None = None,
    ) -> Recognition:
        """The grammar's answer, or the model's (see :meth:`ModelTier.route`). Raises
        :class:`ModelTierError` when the model was needed and failed. ``area``: the
        speaker's room, for the grammar. ``audio``: the utterance as heard (the model hears
        it when ``audio`` is ``fallback`` or ``always`` in its settings)."""
        if area is not None:
            grammar = self.grammar.recognize(
                text, language=language, context=context, area=area  # type: ignore[call-arg]
            )
        else:
            grammar = self.grammar.recognize(text, language=language, context=context)
        if not self.tier.wants_model(
            grammar, config=self.config, images=images, policy=policy, audio=audio
        ):
            return grammar
        lang = (
            grammar.intent.language
            if grammar.intent
            else (language or _guess_language(text, self.config.language))
        )
        return self.tier.route(
            text,
            grammar,
            config=self.config,
            images=images,
            language=lang,
            context=context,
            policy=policy,
            cancel=cancel,
            audio=audio,
        )


def _guess_language(text: str, default: str) -> str:
    # Same rule as the grammar recognizer: CJK characters mean Chinese.
    return "zh-CN" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else default


def build_model_tier(settings: ModelTierSettings) -> ModelTier:
    """The tier for these settings. Cheap: backends import their dependencies here and load
    models on first use (call ``load()`` on the transformers tier to load at start-up)."""
    if settings.policy is ModelTierPolicy.OFF:
        return DisabledModelTier(settings)
    if settings.backend is ModelBackend.OPENAI:
        from intents.model_tier_openai import OpenAIModelTier

        return OpenAIModelTier(settings)
    from intents.model_tier_transformers import TransformersModelTier

    return TransformersModelTier(settings)
