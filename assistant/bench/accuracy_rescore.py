"""Acoustic rescoring of grammar sentences: let Whisper's decoder pick the slot values.

Text alignment (``intents.align``) finds a grammar sentence close to what Whisper *wrote*;
when noise garbles a slot word ("an honest mocha") the closest sentence can carry the wrong
value. Here the candidates are that sentence and its variants with one slot value swapped for
another value of the same list ("an iced mocha", "a mocha", "an iced coffee", ...), and each is
scored by forced decoding: the sum of the log-probabilities Whisper's decoder gives its tokens
for this audio (CTranslate2 ``Whisper.align``, one batched decoder pass). The best-scoring
sentence wins. This is grammar-constrained decoding restricted to the neighbourhood of the
text result, which keeps it to tens of milliseconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Same trimmed window rule as the transcriber's defaults (pad 1 s, at least 5 s).
WINDOW_PAD_S: Final = 1.0
WINDOW_MIN_S: Final = 5.0
#: At most this many candidates per utterance (one batched decoder pass).
MAX_CANDIDATES: Final = 48


@dataclass(frozen=True, slots=True)
class Rescored:
    text: str
    score: float
    candidates: int
    ms: float


def custom_list_values(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Output values of each list of a custom intent file (``{in, out}`` or plain)."""
    out: dict[str, list[str]] = {}
    for name, body in (data.get("lists") or {}).items():
        vals: list[str] = []
        for v in (body or {}).get("values") or []:
            vals.append(str(v.get("out")) if isinstance(v, dict) else str(v))
        out[str(name)] = vals
    return out


def slot_variants(text: str, slots: Mapping[str, Any], lists: Mapping[str, Sequence[str]],
                  limit: int = MAX_CANDIDATES) -> list[str]:
    """``text`` and its one-slot substitutions. A slot whose value is not written verbatim in
    the text (e.g. "12 oz" for "twelve ounce") is left alone. Longer values are substituted
    first so that "milk" never replaces inside "soy milk"."""
    padded = f" {text.lower()} "
    out: dict[str, None] = {padded.strip(): None}
    for name, value in sorted(slots.items(), key=lambda kv: -len(str(kv[1]))):
        v = f" {str(value).lower()} "
        if v not in padded:
            continue
        for alt in lists.get(name, ()):
            if alt.lower() != str(value).lower():
                out[padded.replace(v, f" {alt.lower()} ", 1).strip()] = None
    return list(out)[:limit]


class AcousticRescorer:
    """Scores sentences against audio with the decoder of the bundled Whisper model."""

    def __init__(self, model_path: str | None = None, *, threads: int = 2) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        from assistant.audio.asr import default_model_path

        path = model_path or str(default_model_path())
        self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
        self._tok = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                              task="transcribe", language="en")
        self._start = [*self._tok.sot_sequence, self._tok.no_timestamps]

    def scores(self, audio: Float32Array, sentences: Sequence[str]) -> list[float]:
        """Sum of token log-probabilities of each sentence given ``audio``."""
        import ctranslate2

        dur = len(audio) / SAMPLE_RATE
        window = min(30.0, math.ceil(max(WINDOW_MIN_S, dur + WINDOW_PAD_S) * 2.0) / 2.0)
        n = round(window * SAMPLE_RATE)
        x = np.zeros(n, dtype=np.float32)
        m = min(n, len(audio))
        x[:m] = audio[:m]
        feats = self._model.feature_extractor(x, padding=0)[:, : n // 160]
        feats = np.ascontiguousarray(feats[np.newaxis], dtype=np.float32)
        ct2: Any = self._model.model
        enc = np.array(ct2.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True))
        # align() wants one encoder output per sentence.
        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(enc, len(sentences), axis=0)))
        tokens = [list(self._tok.encode(" " + s.strip())) for s in sentences]
        res = ct2.align(batch, self._start, tokens, feats.shape[-1])
        return [float(np.sum(np.log(np.maximum(np.asarray(r.text_token_probs), 1e-9))))
                for r in res]

    def best(self, audio: Float32Array, sentences: Sequence[str]) -> Rescored:
        t0 = time.perf_counter()
        sc = self.scores(audio, sentences)
        i = int(np.argmax(sc))
        return Rescored(sentences[i], sc[i], len(sentences), (time.perf_counter() - t0) * 1000.0)
