"""Acoustic scores of whole sentences: how well Whisper's decoder says a sentence fits audio.

Grammar-constrained decoding needs ``log P(sentence | audio)`` for a handful of candidate
sentences the grammar allows (``intents.constrained``). Whisper's decoder gives it by *forced*
decoding: CTranslate2 forces the tokens placed after ``<|notimestamps|>`` (a decoding prefix)
and, with ``return_logits_vocab``, returns the full-vocabulary logits of every step, forced
ones included; the score is the sum of the log-probabilities of the sentence's tokens and of
end-of-text right after it (so a prefix of what was said, "a mocha" for "a mocha with milk",
pays for ending early). ``suppress_blank`` must be off, or end-of-text is masked at exactly
that step.

Not CTranslate2's ``Whisper.align``: its token probabilities are a softmax over the text
tokens only (end-of-text excluded), and it also computes the attention alignment, which made
it ~2x slower here for 40 candidates (measured; ``method="align"`` keeps it for comparison).

One encoder pass per utterance (the trimmed window of :mod:`assistant.audio.asr`, or a
shorter one), then one batched decoder pass for all candidates. Cost in docs/benchmarks.md.

Thread-safety: CTranslate2 models may be called from several threads; the scorer keeps no
per-call state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
#: "logits": forced decoding with ``generate`` (end-of-text scored); "align": CTranslate2's
#: ``align`` (text tokens only; slower here, kept for comparison); "torch": the same
#: decoder weights in torch (``assistant.audio.whisper_decoder``), teacher-forced in one
#: batch with the output projection computed only where a token is scored (3.6× faster than
#: "logits" for 40 candidates, float32 layers instead of int8: scores differ by ≤ ~1.5 nats).
Method = Literal["logits", "align", "torch"]

SAMPLE_RATE: Final = 16000
_HOP: Final = 160
#: Same trimmed-window rule as the transcriber's defaults (:mod:`assistant.audio.asr`).
WINDOW_PAD_S: Final = 1.0
WINDOW_MIN_S: Final = 8.0
FULL_WINDOW_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class SentenceScores:
    """Scores of candidate sentences for one utterance, in the order given."""

    sentences: tuple[str, ...]
    #: Sum of the tokens' log-probabilities (nats).
    log_probs: tuple[float, ...]
    tokens: tuple[int, ...]  # token count of each sentence
    ms: float

    def best(self) -> int:
        return int(np.argmax(self.log_probs))


#: Whisper languages written without spaces between words.
UNSPACED: Final = frozenset({"zh", "ja", "yue"})


class SentenceScorer:
    """Forced-decoding scores with a faster-whisper ``WhisperModel`` (shared, not owned).

    ``prompt``: text placed before the start sequence as Whisper's "previous text" (the
    hotword prompt the transcriber uses), or None. Measured both ways in docs/benchmarks.md.
    """

    def __init__(self, model: Any, *, prompt: str | None = None,
                 window_min_s: float = WINDOW_MIN_S, window_pad_s: float = WINDOW_PAD_S,
                 max_prompt_tokens: int = 200, method: Method = "logits",
                 decoder: Any | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self._model = model
        self._ct2: Any = model.model
        self._fe: Any = model.feature_extractor
        self._tok: Any = Tokenizer(model.hf_tokenizer, bool(self._ct2.is_multilingual),
                                   task="transcribe", language="en")
        self._window_min_s = window_min_s
        self._window_pad_s = window_pad_s
        start = [*self._tok.sot_sequence, self._tok.no_timestamps]
        if prompt and prompt.strip():
            prev = list(self._tok.encode(" " + prompt.strip()))[-max_prompt_tokens:]
            start = [self._tok.sot_prev, *prev, *start]
        self._start: Final[list[int]] = start
        self._starts: dict[str, list[int]] = {}
        self.eot: Final[int] = int(self._tok.eot)
        if method == "torch" and decoder is None:
            raise ValueError("method 'torch' needs a WhisperTextDecoder")
        self.method: Final = method
        self._decoder = decoder

    @classmethod
    def from_transcriber(cls, transcriber: Any, *, prompt: str | None = None,
                         window_min_s: float | None = None,
                         decoder: Any | None = None) -> SentenceScorer:
        """A scorer sharing the model of an ``assistant.audio.asr.WhisperTranscriber`` (no
        second copy in memory), with the transcriber's window rule unless told otherwise;
        with ``decoder`` (``WhisperTextDecoder``) it scores in torch."""
        s = transcriber.settings
        return cls(transcriber._model, prompt=prompt, window_pad_s=s.window_pad_s,
                   window_min_s=s.window_min_s if window_min_s is None else window_min_s,
                   method="logits" if decoder is None else "torch", decoder=decoder)

    @classmethod
    def load(cls, model_path: str | None = None, *, threads: int = 2,
             prompt: str | None = None) -> SentenceScorer:
        """A scorer with its own copy of the bundled model (tests, benchmarks)."""
        from faster_whisper import WhisperModel

        from assistant.audio.asr import default_model_path

        path = model_path or str(default_model_path())
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
        return cls(model, prompt=prompt)

    def window_for(self, duration_s: float) -> float:
        w = max(self._window_min_s, duration_s + self._window_pad_s)
        return min(FULL_WINDOW_S, math.ceil(w * 2.0) / 2.0)

    def encode(self, audio: Float32Array) -> Any:
        """Encoder output of ``audio`` on its trimmed window (a CTranslate2 StorageView)."""
        import ctranslate2

        window = self.window_for(len(audio) / SAMPLE_RATE)
        n = round(window * SAMPLE_RATE) // _HOP * _HOP
        x = np.zeros(n, dtype=np.float32)
        m = min(n, len(audio))
        x[:m] = audio[:m]
        feats = self._fe(x, padding=0)[:, : n // _HOP]
        feats = np.ascontiguousarray(feats[np.newaxis], dtype=np.float32)
        return self._ct2.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True)

    def start_for(self, language: str | None = None) -> list[int]:
        """The start sequence for sentences in ``language`` (a Whisper code; None or "en": the
        English one, with the prompt). Another language's has its own language token and no
        prompt; it needs a multilingual model."""
        if language is None or language == "en":
            return self._start
        hit = self._starts.get(language)
        if hit is None:
            from faster_whisper.tokenizer import Tokenizer

            if not self._ct2.is_multilingual:
                raise ValueError(f"an English-only model cannot score {language!r}")
            tok = Tokenizer(self._model.hf_tokenizer, True, task="transcribe", language=language)
            hit = [*tok.sot_sequence, tok.no_timestamps]
            self._starts[language] = hit
        return hit

    def tokens(self, sentence: str, language: str | None = None) -> list[int]:
        """A sentence's tokens as Whisper writes it: English with a space before (mid-text
        form), Chinese without."""
        text = sentence.strip()
        return list(self._tok.encode(text if language in UNSPACED else " " + text))

    def score(self, audio: Float32Array, sentences: Sequence[str],
              encoded: Any | None = None, *, language: str | None = None) -> SentenceScores:
        """``log P(sentence | audio)`` of every sentence (one batched decoder pass), in
        ``language`` (:meth:`start_for`)."""
        import ctranslate2

        t0 = time.perf_counter()
        if not sentences:
            return SentenceScores((), (), (), 0.0)
        enc = self.encode(audio) if encoded is None else encoded
        toks = [self.tokens(s, language) for s in sentences]
        start = self.start_for(language)
        if self.method == "torch":
            assert self._decoder is not None
            scores = self._decoder.score(enc, start, toks, self.eot)
            return SentenceScores(tuple(sentences), tuple(scores),
                                  tuple(len(t) + 1 for t in toks),
                                  (time.perf_counter() - t0) * 1000.0)
        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(np.asarray(enc), len(sentences), axis=0)))
        if self.method == "align":
            frames = int(np.asarray(enc).shape[1]) * 2
            res = self._ct2.align(batch, start, toks, frames)
            scores = [float(np.sum(np.log(np.maximum(np.asarray(r.text_token_probs), 1e-12))))
                      for r in res]
            counts = [len(t) for t in toks]
        else:
            scores, counts = self._forced(batch, toks, start)
        return SentenceScores(tuple(sentences), tuple(scores), tuple(counts),
                              (time.perf_counter() - t0) * 1000.0)


    def _forced(self, batch: Any, toks: Sequence[list[int]],
                start: list[int]) -> tuple[list[float], list[int]]:
        """Sum of log-probabilities of each token sequence and of end-of-text after it."""
        longest = max(len(t) for t in toks)
        res = self._ct2.generate(
            batch, [start + t for t in toks], beam_size=1,
            # The sentence is a forced prefix; one free step after the longest gives each its
            # end-of-text step (shorter ones run on greedily; ignored). suppress_blank would
            # mask end-of-text at exactly that step.
            max_length=_max_length(len(start), longest + 1),
            return_logits_vocab=True, suppress_blank=False, suppress_tokens=[],
        )
        scores: list[float] = []
        for t, r in zip(toks, res, strict=True):
            steps = r.logits[0] if r.logits else []
            if len(steps) <= len(t):
                scores.append(-math.inf)  # CTranslate2 stopped early: cannot score
                continue
            log_probs = log_softmax(np.stack([np.asarray(steps[i], dtype=np.float32).reshape(-1)
                                              for i in range(len(t) + 1)]))
            scores.append(float(np.sum(log_probs[np.arange(len(t) + 1), [*t, self.eot]])))
        return scores, [len(t) + 1 for t in toks]


def log_softmax(logits: Any) -> Any:
    """Log-probabilities over the last axis of CTranslate2 logits (float64, stable)."""
    x = np.asarray(logits, dtype=np.float64)
    top = x.max(axis=-1, keepdims=True)
    return x - (top + np.log(np.exp(x - top).sum(axis=-1, keepdims=True)))


def _max_length(start: int, steps: int) -> int:
    """``max_length`` for CTranslate2 to return ``steps`` decoder steps after a forced prefix.
    Measured (4.8): it returns min(max_length - start + 1, max_length // 2) steps, ``start``
    counting the previous-text prompt and the start sequence."""
    return max(start + steps, 2 * steps) + 2
