"""Speech side of the accuracy benchmark: the server's own endpointing, the ASR variants that
are compared, and the vocabulary used to bias Whisper.

The benchmark runs the real pipeline pieces in-process: ``AudioFrontEnd`` (silero-vad +
endpointer, default settings, fed in 20 ms chunks as a client sends them) cuts the clip into
utterances exactly as a session would, and ``WhisperTranscriber`` transcribes each one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from intents.repair import bias_phrases as bias_phrases  # re-exported for the benchmark

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Chunk size when streaming a clip into the front end (20 ms, what browsers send).
_FEED_SAMPLES: Final = 320
#: Silence appended after a clip so the endpointer sees the end of the turn.
_TAIL_SILENCE_S: Final = 1.0

Hint = Literal["none", "vocabulary", "compact", "phrases"]


@dataclass(frozen=True, slots=True)
class AsrVariant:
    """One way of running Whisper; each variant is a full transcription pass."""

    name: str
    beam_size: int
    n_best: int
    hint: Hint
    description: str
    #: AsrSettings.max_prompt_tokens (the transcriber keeps the *last* tokens of the prompt).
    max_prompt_tokens: int = 96
    #: Transcribe again on the full 30 s window: "comma" when the trimmed window's text ends
    #: in a comma (Whisper stopped mid-sentence; seen with biasing prompts on trimmed
    #: windows), "parse" also when no hypothesis parses (the full window's hypotheses are
    #: then added to the n-best list).
    retry_full: Literal["no", "comma", "parse"] = "no"
    #: Hotwords of the retry pass (None: the same as the first pass). Another bias on the
    #: second pass gives the n-best list hypotheses the first could not produce.
    retry_hint: Hint | None = None


#: The variants the benchmark knows. ``server`` is what ``assistant.app`` does today.
ASR_VARIANTS: Final = {
    v.name: v
    for v in (
        AsrVariant("server", 1, 1, "vocabulary",
                   "greedy, hotwords = recognizer.vocabulary() (what the server does)"),
        AsrVariant("nohint", 1, 1, "none", "greedy, no biasing"),
        AsrVariant("compact", 1, 1, "compact",
                   "greedy, hotwords = the distinct words of the grammar's vocabulary"),
        AsrVariant("beam5", 5, 5, "vocabulary", "beam 5 with 5-best, vocabulary hotwords"),
        AsrVariant("beam5-compact", 5, 5, "compact", "beam 5 with 5-best, compact hotwords"),
        AsrVariant("phrases", 1, 1, "phrases",
                   "greedy, hotwords = vocabulary phrases deduplicated, 200-token prompt", 200),
        AsrVariant("beam5-phrases", 5, 5, "phrases",
                   "beam 5 with 5-best, deduplicated vocabulary phrases, 200-token prompt", 200),
        AsrVariant("beam5-phrases-retry", 5, 5, "phrases",
                   "beam5-phrases, again on the 30 s window when the text ends in a comma",
                   200, "comma"),
        AsrVariant("beam5-phrases-retry2", 5, 5, "phrases",
                   "beam5-phrases-retry, and also when no hypothesis parses (n-best pooled)",
                   200, "parse"),
        AsrVariant("beam5-phrases-retry3", 5, 5, "phrases",
                   "beam5-phrases-retry2 with no hotwords on the retry pass", 200, "parse",
                   "none"),
        AsrVariant("beam10-phrases-retry2", 10, 10, "phrases",
                   "beam5-phrases-retry2 with beam 10 and its 10-best list", 200, "parse"),
    )
}


@dataclass(slots=True)
class Segments:
    """The utterances the endpointer cut from one clip, and what that cost."""

    audio: list[Float32Array] = field(default_factory=list)
    vad_ms: float = 0.0


class ServerEndpointing:
    """Cuts a clip into utterances with the server's own front end."""

    def __init__(self) -> None:
        from assistant.audio.vad import SileroVad

        self._vad = SileroVad()

    def segments(self, audio: Float32Array) -> Segments:
        from assistant.audio.endpoint import SpeechStopped
        from assistant.audio.frontend import AudioFrontEnd

        front = AudioFrontEnd(self._vad)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        pcm = np.concatenate((pcm, np.zeros(int(_TAIL_SILENCE_S * SAMPLE_RATE), np.int16)))
        out = Segments()
        t0 = time.perf_counter()
        events: list[Any] = []
        for i in range(0, len(pcm), _FEED_SAMPLES):
            # The clock is stream time: the endpointer's decisions depend only on the audio.
            events.extend(front.feed(pcm[i : i + _FEED_SAMPLES], now=i / SAMPLE_RATE))
        events.extend(front.commit(now=len(pcm) / SAMPLE_RATE))
        out.vad_ms = (time.perf_counter() - t0) * 1000.0
        out.audio = [e.audio for e in events if isinstance(e, SpeechStopped)]
        return out


def looks_cut_off(text: str) -> bool:
    """Whisper ended on a comma or an ellipsis: it stopped before the speaker did."""
    t = text.rstrip()
    return t.endswith((",", "...", "…"))


def compact_hotwords(phrases: Sequence[str], limit: int = 80) -> list[str]:
    """The distinct words of ``phrases`` in first-seen order, digits and one-letter words
    dropped, at most ``limit``. The full vocabulary (every spelling of every list value)
    repeats the same words dozens of times ("a little bit of soy milk", "some soy milk", ...)
    and is cut to the transcriber's prompt budget, so most names never reach Whisper."""
    seen: dict[str, None] = {}
    for p in phrases:
        for w in re.findall(r"[a-z']+", p.lower()):
            if len(w) > 1 and w not in seen:
                seen[w] = None
    return list(seen)[:limit]


