"""What a transcription is, independent of the engine: the result types, the
:class:`Transcriber` interface and the pure text rules around Whisper's output (repetition
loops, cut-off endings, pooling two passes, the hotword prompt). Re-exported by
:mod:`assistant.audio.asr`, where they are usually imported from."""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Whisper's native window.
FULL_WINDOW_S: Final = 30.0
#: Samples per mel frame.
HOP_SAMPLES: Final = 160
#: Whisper's decoder context (prompt + generated tokens).
MAX_LENGTH: Final = 448
#: Above this zlib compression ratio the text is a repetition loop (Whisper's own threshold).
COMPRESSION_RATIO_THRESHOLD: Final = 2.4

WindowMode = Literal["trimmed", "full"]


@dataclass(frozen=True, slots=True)
class Alternative:
    """One hypothesis of the n-best list."""

    text: str
    avg_logprob: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """Result of one transcription. ``alternatives[0]`` is the chosen text when present."""

    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    duration_s: float
    elapsed_s: float
    window_s: float
    partial: bool = False
    #: The 30 s window was used after the trimmed one gave a broken or cut-off result.
    fell_back: bool = False
    #: The retry was for a cut-off text (:func:`looks_cut_off`); the alternatives pool both
    #: passes (:func:`pool_transcripts`).
    cut_off: bool = False
    #: Decoding stopped at the token budget (likely a repetition loop).
    truncated: bool = False
    #: Judged not to be speech (see ``AsrSettings.no_speech_threshold``); ``text`` is empty.
    no_speech: bool = False
    alternatives: tuple[Alternative, ...] = field(default=())

    @property
    def full_window(self) -> bool:
        """Transcribed on Whisper's whole 30 s window (nothing left to retry on)."""
        return self.window_s >= FULL_WINDOW_S


class Transcriber(ABC):
    """Speech-to-text backend. Implementations must be safe to call from worker threads."""

    @abstractmethod
    def transcribe(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript:
        """Transcribe a complete utterance (float32, 16 kHz, mono)."""

    @abstractmethod
    def transcribe_partial(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript:
        """Cheap transcript of the audio so far (greedy, short), for live partials."""

    def warmup(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Run once at start-up so the first real request pays no allocation cost."""


def compression_ratio(text: str) -> float:
    """zlib compression ratio of ``text``; high values mean repetition loops."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


_WORD = re.compile(r"[\w']+")


def collapse_repetition(text: str, *, min_repeat_words: int = 2) -> tuple[str, bool]:
    """Cut a Whisper repetition loop: ``"Open the door. Open the door. Open"`` → first copy.

    Whisper on a trimmed window often transcribes the command correctly and then starts over,
    as if the padding were more speech. When the whole word sequence is periodic (every word
    equals the word one period earlier) and at least ``min_repeat_words`` words repeat, the
    text is cut after the first period, keeping its original spelling and punctuation.
    Returns (text, whether it was cut).
    """
    spans = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    words = [w for _, _, w in spans]
    n = len(words)
    for k in range(1, n):
        if n - k < min_repeat_words:
            break
        # The last word may be cut mid-way by the token budget ("... Turn off, Mat").
        if all(words[i] == words[i - k] for i in range(k, n - 1)) and words[n - 1 - k].startswith(
            words[n - 1]
        ):
            end = spans[k - 1][1]
            # keep the sentence punctuation that closed the first copy
            while end < len(text) and text[end] in ".!?":
                end += 1
            return text[:end].strip(), True
    return text, False


def looks_cut_off(text: str) -> bool:
    """Whisper ended on a comma or an ellipsis: it stopped before the speaker did.

    Seen on trimmed windows with a biasing prompt ("Give me a large,"): the padding reads as
    the end of speech mid-sentence. The 30 s window, as in training, usually hears it out.
    """
    return text.rstrip().endswith((",", "...", "…"))


def pool_transcripts(retry: Transcript, first: Transcript, *, cut_off: bool = False) -> Transcript:
    """``retry`` (a second pass on the same audio), with ``first``'s alternatives after its
    own, exact duplicates dropped, and the time of both passes.

    The two windows mishear differently: the decoder (``intents.decode``) tries hypotheses in
    order, so the retry's reading wins when it parses, and the first pass's still can when
    it does not (measured: ``beam5-phrases-retry2`` in docs/benchmarks.md).
    """
    seen: set[str] = set()
    pooled: list[Alternative] = []
    for a in (*retry.alternatives, *first.alternatives):
        if a.text not in seen:
            seen.add(a.text)
            pooled.append(a)
    return dataclasses.replace(
        retry,
        elapsed_s=retry.elapsed_s + first.elapsed_s,
        fell_back=True,
        cut_off=cut_off or retry.cut_off,
        alternatives=tuple(pooled),
    )


def hotword_prompt(hotwords: Sequence[str], prompt: str | None = None) -> str | None:
    """The decoder prompt text: an explicit prompt, then the vocabulary as a list.

    Whisper conditions on the prompt as if it were preceding speech, so a comma-separated list
    of device and area names makes those spellings more likely without forcing them.
    """
    parts: list[str] = []
    if prompt and prompt.strip():
        parts.append(prompt.strip())
    names = list(dict.fromkeys(h.strip() for h in hotwords if h and h.strip()))
    if names:
        parts.append(", ".join(names) + ".")
    return " ".join(parts) if parts else None


def prompt_terms(words: Sequence[str]) -> list[str]:
    """The vocabulary less every term that contains a shorter one (客厅灯 and 客厅的灯 go,
    客厅 stays): the prompt keeps each name once, about half the tokens for the demo home's
    Chinese names (Chinese takes ~2 tokens a character)."""
    unique = list(dict.fromkeys(w.strip() for w in words if w.strip()))
    return [w for w in unique if not any(o != w and o in w for o in unique)]


def looks_broken(t: Transcript) -> bool:
    """A trimmed-window result that needs the 30 s window: the token budget ran out (a
    command never needs all of it; hitting it means a loop) or the text is a loop."""
    if t.no_speech:
        return False
    return t.truncated or t.compression_ratio > COMPRESSION_RATIO_THRESHOLD


def retry_reason(
    result: Transcript, *, retry_cut_off: bool, fallback: bool
) -> Literal["broken", "cut off"] | None:
    """Why ``result`` is rerun on the 30 s window, or None: it looks broken (``fallback``)
    or cut off (``retry_cut_off``, :func:`looks_cut_off`); never a full-window result."""
    if result.full_window:
        return None
    if fallback and looks_broken(result):
        return "broken"
    if retry_cut_off and not result.no_speech and looks_cut_off(result.text):
        return "cut off"
    return None


def encoder_window(duration_s: float, mode: WindowMode, min_s: float, pad_s: float) -> float:
    """Encoder window (seconds) for audio of ``duration_s``: the whole 30 s in ``full`` mode,
    else ``max(min_s, duration + pad_s)`` rounded up to 0.5 s."""
    if mode == "full":
        return FULL_WINDOW_S
    w = max(min_s, duration_s + pad_s)
    # Round up to 0.5 s: bounds the number of distinct encoder shapes.
    return min(FULL_WINDOW_S, math.ceil(w * 2.0) / 2.0)

