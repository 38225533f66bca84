"""Local transformers backend: a causal LM or an image-text-to-text model from a folder.

Never downloads: every ``from_pretrained`` uses ``local_files_only=True``. The model's own chat
template renders the conversation; when the template knows ``tools`` (Qwen2.5, Llama 3.1,
GLM-4, ...) the function schemas go there, otherwise into the system prompt. The function call
is parsed from the generated text (``<tool_call>`` tags or bare JSON) and then validated exactly
like the HTTP backend's.

The system turn (instructions plus the registry's tools, ~1.3 k tokens for the demo home) is the
same for every utterance of a home, so text models keep its key/value cache and prefill only the
user's words — on a CPU that is most of the added latency.

One model is shared by all sessions; generation is serialised by a lock because concurrent
``generate`` calls on a 2-core CPU only slow each other down, and on a GPU the model is not
re-entrant with respect to its caches.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from devices.registry import HomeConfig
from intents.model_tier_base import (
    ModelTier,
    parse_tool_calls_from_text,
    split_reasoning,
)
from intents.model_tier_prompt import (
    build_tools,
    system_prompt,
    user_message,
)
from intents.model_tier_types import (
    AUDIO_SAMPLE_RATE,
    AudioMode,
    ModelAnswer,
    ModelQuery,
    ModelTierCancelled,
    ModelTierConfigError,
    ModelTierError,
    ModelTierInputError,
    ModelTierLoadError,
    ModelTierSettings,
    ModelTierTimeout,
)
from intents.schema import Intent

log = logging.getLogger(__name__)

_SENTINEL = "HEARTHUSERTEXTSENTINEL"
_CONTROL_LIKE = re.compile(r"^(<[^<>\s]+>|\[[^\[\]\s]+\])$")
_PREFIX_CACHE_ENTRIES = 4  # (home, language) combinations kept
_MIN_PREFIX_TOKENS = 16  # below this a cached prefix saves nothing


def _stopping_criteria(
    deadline: float, cancel: threading.Event | None, state: dict[str, str]
) -> Any:
    """A transformers StoppingCriteria that ends generation at the deadline or on cancel and
    records which of the two happened (generate() itself does not tell)."""
    import torch
    from transformers import StoppingCriteria

    class _Stop(StoppingCriteria):
        def __call__(
            self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
        ) -> torch.BoolTensor:
            stop = False
            if cancel is not None and cancel.is_set():
                state["why"] = "cancel"
                stop = True
            elif time.monotonic() >= deadline:
                state["why"] = "timeout"
                stop = True
            return torch.full(
                (input_ids.shape[0],),
                stop,
                dtype=torch.bool,  # type: ignore[return-value]
                device=input_ids.device,
            )

    return _Stop()


class TransformersModelTier(ModelTier):
    """Runs a local model with ``transformers``. ``load()`` may be called at start-up;
    otherwise the first ``recognize`` loads it."""

    def __init__(self, settings: ModelTierSettings) -> None:
        super().__init__(settings)
        if not settings.path:
            raise ModelTierConfigError("backend 'transformers' needs 'path'")
        self.path = Path(settings.path).expanduser()
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None  # a tokenizer, or the processor's tokenizer
        self._processor: Any = None  # image-text and audio-text models only
        self._device = "cpu"
        self._template_has_tools = False
        self._forbidden_strings: tuple[str, ...] = ()
        self.multimodal = False
        #: An audio-text model (Qwen2-Audio class): its config has an ``audio_config``.
        self.hears = False
        self.load_seconds: float | None = None
        #: rendered prompt prefix -> (its token ids, the model's cache for them)
        self._prefix_cache: OrderedDict[str, tuple[list[int], Any]] = OrderedDict()
        self.prefix_cache_hits = 0

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Load tokenizer/processor and model (idempotent). Raises :class:`ModelTierLoadError`."""
        with self._lock:
            if self._model is None:
                self._load_locked()

    def _load_locked(self) -> None:
        if not self.path.is_dir():
            raise ModelTierConfigError(f"model path {self.path} is not a folder")
        t0 = time.perf_counter()
        try:
            import torch
            from transformers import (
                AutoConfig,
                AutoModelForCausalLM,
                AutoModelForImageTextToText,
                AutoModelForSeq2SeqLM,
                AutoProcessor,
                AutoTokenizer,
            )
        except ImportError as e:
            raise ModelTierLoadError(f"the transformers backend needs torch: {e}") from e
        s = self.settings
        # local_files_only: a missing file is an error here, never a download.
        common: dict[str, Any] = {
            "local_files_only": True,
            "trust_remote_code": s.trust_remote_code,
        }
        try:
            cfg = AutoConfig.from_pretrained(self.path, **common)
            hears = hasattr(cfg, "audio_config")
            multimodal = (
                s.multimodal if s.multimodal is not None else hasattr(cfg, "vision_config")
            )
            if s.audio is not AudioMode.OFF and not hears:
                raise ModelTierConfigError(
                    f"audio: {s.audio.value} needs an audio-text model; {self.path} has no "
                    "audio_config"
                )
            device = s.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype: Any = s.dtype
            if dtype == "auto":
                dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            else:
                dtype = getattr(torch, dtype)
            if hears:
                # Qwen2-Audio class: a Whisper-style encoder in front of a causal LM, with a
                # processor that turns 16 kHz audio into features and audio tokens.
                self._processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                    self.path, **common
                )
                self._tokenizer = self._processor.tokenizer
                model: Any = AutoModelForSeq2SeqLM.from_pretrained(
                    self.path, dtype=dtype, **common
                )
                multimodal = False
            elif multimodal:
                self._processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                    self.path, **common
                )
                self._tokenizer = self._processor.tokenizer
                model = AutoModelForImageTextToText.from_pretrained(
                    self.path, dtype=dtype, **common
                )
            else:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path, **common)
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype, **common)
            model.to(device)
            model.eval()
        except ModelTierError:
            raise
        except Exception as e:  # transformers raises many kinds; name the folder once
            raise ModelTierLoadError(f"cannot load model from {self.path}: {e}") from e
        template = getattr(self._processor or self._tokenizer, "chat_template", None)
        if not template:
            raise ModelTierLoadError(f"{self.path} has no chat template")
        self._template_has_tools = "tools" in str(template)
        # Strings that the tokenizer turns into control tokens; user text must not carry them
        # or it could close its own turn and open a fake system/assistant one.
        # Plain added words (some tokenizers add whitespace runs or common words) stay: only
        # special tokens and tag-like ones (<|im_end|>, <tool_call>, [INST]) are control.
        added = {t for t in self._tokenizer.get_added_vocab() if _CONTROL_LIKE.match(t)}
        added.update(t for t in self._tokenizer.all_special_tokens if t)
        self._forbidden_strings = tuple(sorted(added, key=len, reverse=True))
        self._model = model
        self._device = device
        self.multimodal = multimodal
        self.hears = hears
        self.load_seconds = time.perf_counter() - t0
        log.info(
            "loaded %s model from %s on %s in %.2f s",
            "audio-text" if hears else "image-text" if multimodal else "text",
            self.path,
            device,
            self.load_seconds,
        )

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = self._processor = None
            self._prefix_cache.clear()

    # -- prompting ----------------------------------------------------------------------------

    def sanitize(self, text: str) -> str:
        """User text with every control-token string removed (repeated until stable, since a
        removal can join two halves into a new one)."""
        while True:
            before = text
            for tok in self._forbidden_strings:
                text = text.replace(tok, " ")
            if text == before:
                return text

    def build_prompt(
        self,
        text: str,
        *,
        config: HomeConfig,
        n_images: int = 0,
        language: str = "en",
        context: Intent | None = None,
        n_audio: int = 0,
    ) -> str:
        """The rendered chat-template prompt (after :meth:`load`). ``n_audio``: audio parts
        (rendered by the template as the model's audio placeholder, e.g.
        ``<|audio_bos|><|AUDIO|><|audio_eos|>``) before the transcript."""
        if self._model is None:
            raise ModelTierError("model not loaded")
        s = self.settings
        tools = build_tools(config, s)
        system = system_prompt(
            config, s, language=language, tools_in_prompt=not self._template_has_tools
        )
        user_text = user_message(self.sanitize(text), context)
        user: str | list[dict[str, Any]] = user_text
        if self.multimodal:
            user = [{"type": "image"} for _ in range(n_images)] + [
                {"type": "text", "text": user_text}
            ]
        elif self.hears:
            # Qwen2-Audio's template renders a part with "audio_url" as its audio tokens.
            user = [{"type": "audio", "audio_url": "utterance.wav"} for _ in range(n_audio)] + [
                {"type": "text", "text": user_text}
            ]
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if self._template_has_tools:
            kwargs["tools"] = tools
        if s.enable_thinking is not None:
            kwargs["enable_thinking"] = s.enable_thinking  # read by Qwen3/GLM templates
        renderer = self._processor or self._tokenizer
        prompt = renderer.apply_chat_template(messages, **kwargs)
        if not isinstance(prompt, str):  # pragma: no cover - tokenize=False returns str
            raise ModelTierLoadError("chat template did not render text")
        return prompt

    # -- generation ---------------------------------------------------------------------------

    def _ask(self, q: ModelQuery) -> ModelAnswer:
        self.load()
        # The deadline covers generation, not the one-off load (call load() at start-up).
        deadline = time.monotonic() + self.settings.timeout_s
        if q.images and not self.multimodal:
            raise ModelTierInputError("this model takes no images")
        if q.audio is not None and not self.hears:  # pragma: no cover - refused at load
            raise ModelTierInputError("this model takes no audio")
        pil = [img.to_pil() for img in q.images]
        sound = [] if q.audio is None else [q.audio.to_float32()]
        with self._lock:
            if self._model is None:
                raise ModelTierError("model closed")
            prompt = self.build_prompt(
                q.text, config=q.config, n_images=len(pil), language=q.language,
                context=q.context, n_audio=len(sound),
            )
            prefix = None
            if self.settings.prefix_cache and not (self.multimodal or self.hears):
                prefix = self._prompt_prefix(prompt, q.config, q.language)
            generated = self._generate(prompt, pil, deadline, q.cancel, prefix, sound)
        content, reasoning = split_reasoning(generated)
        calls = parse_tool_calls_from_text(content)
        return ModelAnswer(
            tool_calls=calls,
            content=content,
            reasoning=reasoning,
            model=self.settings.model or self.path.name,
        )

    def _prompt_prefix(self, prompt: str, config: HomeConfig, language: str) -> str | None:
        """The part of ``prompt`` that does not depend on the user's words."""
        probe = self.build_prompt(_SENTINEL, config=config, language=language)
        head, found, _ = probe.partition(_SENTINEL)
        return head if found and prompt.startswith(head) else None

    def _cached_prefix(self, prefix: str, input_ids: Any) -> Any:
        """A copy of the key/value cache of ``prefix`` when ``input_ids`` start with its
        tokens, else None. Computes and keeps it (LRU) on first use."""
        import torch

        entry = self._prefix_cache.get(prefix)
        if entry is None:
            # Without the last token: BPE may merge it with the first characters of the
            # user's text, and then the prompt's tokens would not start with the prefix's.
            ids: list[int] = self._tokenizer(prefix, add_special_tokens=False)["input_ids"][:-1]
            if len(ids) < _MIN_PREFIX_TOKENS:
                return None
            with torch.inference_mode():
                out = self._model(
                    input_ids=torch.tensor([ids], device=self._device), use_cache=True
                )
            entry = (ids, out.past_key_values)
            self._prefix_cache[prefix] = entry
            while len(self._prefix_cache) > _PREFIX_CACHE_ENTRIES:
                self._prefix_cache.popitem(last=False)
        else:
            self._prefix_cache.move_to_end(prefix)
            self.prefix_cache_hits += 1
        ids, kv = entry
        if input_ids.shape[1] <= len(ids) or input_ids[0, : len(ids)].tolist() != ids:
            return None
        # generate() appends to the cache it is given; the kept one must stay the prefix's.
        return copy.deepcopy(kv)

    def _generate(
        self,
        prompt: str,
        images: list[Any],
        deadline: float,
        cancel: threading.Event | None,
        prefix: str | None = None,
        sound: list[Any] | None = None,
    ) -> str:
        """Generated text only (the prompt is not echoed, so a JSON object typed by the user
        can never be mistaken for the model's function call)."""
        import torch

        if self.hears:
            inputs = self._processor(
                text=prompt,
                audio=sound or None,
                sampling_rate=AUDIO_SAMPLE_RATE,
                return_tensors="pt",
            )
            inputs = inputs.to(self._device, dtype=self._model.dtype)
        elif self._processor is not None:
            inputs = self._processor(text=prompt, images=images or None, return_tensors="pt")
            # Pixel values come as float32; a bfloat16 model on a GPU wants its own dtype
            # (BatchFeature.to casts floating tensors only, never the token ids).
            inputs = inputs.to(self._device, dtype=self._model.dtype)
        else:
            # The template already wrote BOS and role tokens.
            inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            inputs = inputs.to(self._device)
        state: dict[str, str] = {}
        s = self.settings
        gen: dict[str, Any] = {
            "max_new_tokens": s.max_tokens,
            "do_sample": s.temperature > 0,
            "stopping_criteria": [_stopping_criteria(deadline, cancel, state)],
            "pad_token_id": self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
        }
        if s.temperature > 0:
            gen["temperature"] = s.temperature
        try:
            if prefix is not None:
                cache = self._cached_prefix(prefix, inputs["input_ids"])
                if cache is not None:
                    gen["past_key_values"] = cache
            with torch.inference_mode():
                out = self._model.generate(**inputs, **gen)
        except Exception as e:
            raise ModelTierError(f"generation failed: {e}") from e
        if state.get("why") == "cancel":
            raise ModelTierCancelled("cancelled during generation")
        if state.get("why") == "timeout":
            raise ModelTierTimeout(f"generation not finished within {s.timeout_s:g} s")
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        text: str = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return text
