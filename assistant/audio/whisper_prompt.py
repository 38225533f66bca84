"""The decoder's start: Whisper's task prefix per language, the biasing prompt (hotwords, the
home's vocabulary per language) encoded once and cached, and the Chinese readings of a
result (:mod:`assistant.audio.zh`). Used by :class:`assistant.audio.asr.WhisperTranscriber`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from assistant.audio.asr_types import Alternative, hotword_prompt, prompt_terms


class PromptBuilder:
    """Token prefixes and prompts for one Whisper tokenizer; thread-safe once serving."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        multilingual: bool,
        language: str,
        max_prompt_tokens: int,
        unsupported: type[Exception],
    ) -> None:
        self._tokenizer = tokenizer
        self._multilingual = multilingual
        self._language = language
        self._max_prompt_tokens = max_prompt_tokens
        self._unsupported = unsupported
        self.prefix: list[int] = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._prefixes: dict[str, list[int]] = {language: self.prefix}
        #: Per language: the biasing vocabulary and, for Chinese, the homophone repair.
        self._vocabulary: dict[str, tuple[str, ...]] = {}
        self._zh_repair: Any = None
        self._lock = threading.Lock()
        self._encode = lru_cache(maxsize=64)(self._encode_uncached)

    def set_vocabulary(self, code: str, words: Sequence[str]) -> None:
        """The home's terms in the Whisper language ``code`` (see
        ``WhisperTranscriber.set_vocabulary``)."""
        self._vocabulary[code] = tuple(prompt_terms(words))
        if code == "zh":
            from assistant.audio.zh import PinyinRepair

            self._zh_repair = PinyinRepair(words)

    def _encode_uncached(self, text: str | None) -> tuple[int, ...]:
        if not text:
            return ()
        tokens: list[int] = self._tokenizer.encode(" " + text.strip())
        limit = self._max_prompt_tokens
        return tuple(tokens[-limit:]) if limit else ()

    def build(
        self, hotwords: Sequence[str], prompt: str | None, language: str | None = None
    ) -> list[int]:
        """The decoder's prompt tokens: the previous-text prompt, then the task prefix."""
        text = hotword_prompt(hotwords, prompt)
        if language is not None and language != "en" and text:
            # Whisper reads a list of names in the language's own punctuation.
            text = text.replace(", ", "，").rstrip(".") + "。"
        with self._lock:  # lru_cache is thread-safe, but the tokenizer may not be
            prev = self._encode(text)
        prefix = self.prefix_for(language or self._language)
        if not prev:
            return list(prefix)
        return [self._tokenizer.sot_prev, *prev, *prefix]

    def language_token(self, code: str) -> int | None:
        if not self._multilingual:
            return None
        token = self._tokenizer.tokenizer.token_to_id(f"<|{code}|>")
        return None if token is None else int(token)

    def prefix_for(self, code: str) -> list[int]:
        prefix = self._prefixes.get(code)
        if prefix is None:
            token = self.language_token(code)
            if token is None:
                raise self._unsupported(f"Whisper does not know the language {code!r}")
            t = self._tokenizer
            prefix = [t.sot, token, t.transcribe, t.no_timestamps]
            self._prefixes[code] = prefix
        return prefix

    def hotwords_for(self, language: str, hotwords: Sequence[str]) -> Sequence[str]:
        """The call's hotwords for English; for another language its own vocabulary when the
        call asks for biasing at all. The cheap speculative look passes none, and unbiased
        it rarely parses as heard, so the final (beam 5, prompted) pass decides: on the zh-cn
        set 33/34 right clean against 31/34 with the prompt on the look too, whose greedy
        readings of homophones parsed as other commands (docs/benchmarks.md)."""
        if language == "en" or not hotwords:
            return hotwords
        return self._vocabulary.get(language, ())

    def zh_readings(self, alternatives: list[Alternative]) -> list[Alternative]:
        """Chinese hypotheses normalized for the zh-CN grammar (simplified, no punctuation),
        each followed by its homophone repair when that differs (:mod:`assistant.audio.zh`):
        the decoder takes a repaired reading as a lower hypothesis, i.e. a guess; the top
        hypothesis's exact homophones (same syllables) come first, as heard."""
        from assistant.audio.zh import readings

        out: list[Alternative] = []
        seen: set[str] = set()
        for n, a in enumerate(alternatives):
            for text in readings(a.text, self._zh_repair, heard=n == 0) or [""]:
                if text not in seen:
                    seen.add(text)
                    out.append(Alternative(text, a.avg_logprob))
        return out


__all__ = ["PromptBuilder"]
