"""Whisper's decoding passes, driven through CTranslate2 directly: log-mel features on a
trimmed window, one encoder call per window size, language detection among the home's
languages, beam search within a token budget, and the :class:`Transcript` of each result.
Used by :class:`assistant.audio.asr.WhisperTranscriber`, which loads the model and decides
which passes to run."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.audio.asr_types import (
    HOP_SAMPLES,
    MAX_LENGTH,
    SAMPLE_RATE,
    Alternative,
    Float32Array,
    Transcript,
    collapse_repetition,
    compression_ratio,
)
from assistant.audio.whisper_prompt import PromptBuilder

if TYPE_CHECKING:
    from assistant.audio.asr import AsrSettings

logger = logging.getLogger("assistant.audio.asr")


def log_mel_features(fe: Any, audio: Float32Array, window_s: float) -> Float32Array:
    """Log-mel features of ``audio`` zero-padded to ``window_s`` seconds, (1, n_mels, T).

    Equal (to float rounding) to running the extractor on the padded audio, but the STFT
    only covers the audio plus a few frames of zeros: every frame further out is pure
    digital silence, whose value after Whisper's clamp and scaling is known. This cuts the
    feature cost ~5x on an 8 s window.
    """
    frames = round(window_s * SAMPLE_RATE) // HOP_SAMPLES
    n = frames * HOP_SAMPLES
    m = min(n, audio.shape[0])
    # 3 frames of zeros past the audio: the STFT window (400) and its centre padding
    # then see only zeros for the frames we fill in by value.
    span = min(n, (m + 3 * HOP_SAMPLES + HOP_SAMPLES - 1) // HOP_SAMPLES * HOP_SAMPLES)
    x = np.zeros(span, dtype=np.float32)
    x[:m] = audio[:m]
    head = fe(x, padding=0)  # (n_mels, span / 160), normalised with its own max
    out = np.empty((1, head.shape[0], frames), dtype=np.float32)
    out[0, :, : head.shape[1]] = head
    if head.shape[1] < frames:
        # log10 of a silent frame is -10 (the clip), raised to (max - 8) by Whisper's
        # dynamic-range clamp, then scaled by (v + 4) / 4. head.max() = (max + 4) / 4.
        log_max = 4.0 * float(head.max()) - 4.0
        silent = (max(-10.0, log_max - 8.0) + 4.0) / 4.0
        out[0, :, head.shape[1] :] = silent
    return out


class WhisperPasses:
    """Encodes and decodes clips on one loaded model; safe to call from several threads."""

    def __init__(
        self,
        *,
        ct2: Any,
        tokenizer: Any,
        feature_extractor: Any,
        prompts: PromptBuilder,
        settings: AsrSettings,
        device: str,
        language: str,
        detect_among: Sequence[str],
    ) -> None:
        self._ct2 = ct2
        self._tokenizer = tokenizer
        self._fe = feature_extractor
        self._prompts = prompts
        self.settings = settings
        self.device = device
        self.language = language
        self.detect_among = tuple(detect_among)

    def decode(
        self,
        clips: Sequence[Float32Array],
        windows: Sequence[float],
        *,
        fixed: str | None,
        hotwords: Sequence[str],
        prompt: str | None,
        beam_size: int,
        n_best: int,
        partial: bool,
    ) -> list[Transcript]:
        """Transcripts of ``clips`` (each on its encoder window, in seconds), in input order
        (``elapsed_s`` left 0). Clips with the same window share one encoder and one decoder
        call (one decoder call per language when detection picks several); ``fixed``: the
        language, None to detect it among :attr:`detect_among`."""
        import ctranslate2

        groups: dict[float, list[int]] = {}
        for i, window_s in enumerate(windows):
            groups.setdefault(window_s, []).append(i)
        out: list[Transcript | None] = [None] * len(clips)
        for window_s, idx in groups.items():
            feats = np.concatenate([log_mel_features(self._fe, clips[i], window_s) for i in idx])
            durations = [clips[i].shape[0] / SAMPLE_RATE for i in idx]
            encoded = self._ct2.encode(ctranslate2.StorageView.from_array(feats), to_cpu=False)
            langs = [fixed] * len(idx) if fixed is not None else self._detect(encoded)
            by_lang: dict[str, list[int]] = {}
            for k, lang in enumerate(langs):
                by_lang.setdefault(lang, []).append(k)
            for lang, ks in by_lang.items():
                sub = encoded
                if len(ks) < len(idx):
                    host = np.asarray(
                        encoded
                        if self.device == "cpu"
                        else self._ct2.encode(
                            ctranslate2.StorageView.from_array(feats), to_cpu=True
                        )
                    )
                    sub = ctranslate2.StorageView.from_array(np.ascontiguousarray(host[ks]))
                words = self._prompts.hotwords_for(lang, hotwords)
                tokens = self._prompts.build(words, prompt, lang)
                budgets = [
                    self.max_new_tokens(min(durations[k], window_s), len(tokens)) for k in ks
                ]
                results = self._ct2.generate(
                    sub,
                    [tokens] * len(ks),
                    beam_size=beam_size,
                    num_hypotheses=n_best,
                    max_length=len(tokens) + max(budgets),
                    return_scores=True,
                    return_no_speech_prob=True,
                    suppress_blank=True,
                    suppress_tokens=[-1],
                )
                for j, res in enumerate(results):
                    k = ks[j]
                    out[idx[k]] = self._transcript(
                        res, budgets[j], durations[k], window_s, n_best, partial, lang
                    )
        return [t for t in out if t is not None]

    def max_new_tokens(self, duration_s: float, prompt_len: int) -> int:
        s = self.settings
        budget = s.max_tokens_base + math.ceil(s.max_tokens_per_s * duration_s)
        return max(1, min(budget, MAX_LENGTH - prompt_len - 1))

    def _detect(self, encoded: Any) -> list[str]:
        """Per clip, the most likely of :attr:`detect_among` (Whisper's language detection,
        limited to the home's languages)."""
        allowed = set(self.detect_among)
        picks: list[str] = []
        for ranking in self._ct2.detect_language(encoded):
            probs = {tok[2:-2]: p for tok, p in ranking}
            picks.append(max(allowed, key=lambda c: probs.get(c, 0.0)))
        return picks

    def _transcript(
        self,
        res: Any,
        max_new: int,
        duration: float,
        window_s: float,
        n_best: int,
        partial: bool,
        language: str | None = None,
    ) -> Transcript:
        alternatives: list[Alternative] = []
        collapsed = False
        for seq, score in zip(res.sequences_ids, res.scores, strict=True):
            seq = seq[:max_new]  # batch members share the longest budget; apply their own
            text = self._tokenizer.decode(seq).strip()
            cut = False
            if self.settings.cut_repetitions:
                text, cut = collapse_repetition(text)
            collapsed = collapsed or cut
            # CTranslate2 reports the length-normalised cumulative log-probability;
            # convert to faster-whisper's avg_logprob (sum / (len + 1)) for comparability.
            n = len(seq)
            alternatives.append(Alternative(text, float(score) * n / (n + 1)))
        raw_best = alternatives[0]
        lang = language or self.language
        if lang == "zh":
            alternatives = self._prompts.zh_readings(alternatives)
        best = alternatives[0]
        # A budget hit that the loop cutter explained is not a broken result.
        truncated = len(res.sequences_ids[0]) >= max_new and not collapsed
        if truncated:
            logger.debug("ASR token budget (%d) exhausted", max_new)
        nsp = float(res.no_speech_prob)
        s = self.settings
        no_speech = nsp > s.no_speech_threshold and best.avg_logprob < s.log_prob_threshold
        if no_speech:
            logger.debug("no speech (nsp=%.2f, logprob=%.2f): %r", nsp, best.avg_logprob, best.text)
        return Transcript(
            text="" if no_speech else best.text,
            language=lang,
            avg_logprob=best.avg_logprob,
            no_speech_prob=nsp,
            compression_ratio=compression_ratio(raw_best.text),
            duration_s=duration,
            elapsed_s=0.0,
            window_s=window_s,
            partial=partial,
            truncated=truncated,
            no_speech=no_speech,
            alternatives=tuple(alternatives) if n_best > 1 else (),
        )


__all__ = ["WhisperPasses", "log_mel_features"]
