"""Speech side of the accuracy benchmark: the server's own endpointing, the ASR variants that
are compared, and the vocabulary used to bias Whisper.

The benchmark runs the real pipeline pieces in-process: ``AudioFrontEnd`` (silero-vad +
endpointer, default settings, fed in 20 ms chunks as a client sends them) cuts the clip into
utterances exactly as a session would, and ``WhisperTranscriber`` transcribes each one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from assistant.audio.asr import looks_cut_off as looks_cut_off  # re-exported for the benchmark
from intents.repair import bias_phrases as bias_phrases  # re-exported for the benchmark

if TYPE_CHECKING:
    from assistant.audio.asr import AsrSettings

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Chunk size when streaming a clip into the front end (20 ms, what browsers send).
_FEED_SAMPLES: Final = 320
#: Silence appended after a clip so the endpointer sees the end of the turn.
_TAIL_SILENCE_S: Final = 1.0

Hint = Literal["none", "vocabulary", "compact", "phrases", "server"]


@dataclass(frozen=True, slots=True)
class AsrVariant:
    """One way of running Whisper; each variant is a full transcription pass.

    ``asr`` holds the ``AsrSettings`` fields that differ from the server's own (the
    ``assistant:`` section's defaults, :func:`server_asr_settings`); empty means exactly the
    transcriber the server builds.
    """

    name: str
    hint: Hint
    description: str
    asr: Mapping[str, Any] = field(default_factory=dict)
    #: Transcribe again on the 30 s window when no hypothesis parses
    #: (``WhisperTranscriber.transcribe_full``, hypotheses pooled: the full window's first).
    #: The server's session does this too; here it is measured as its own variant.
    retry_parse: bool = False
    #: Hotwords of that retry pass (None: the same as the first pass). Another bias on the
    #: second pass gives the n-best list hypotheses the first could not produce.
    retry_hint: Hint | None = None

    def settings(self, threads: int) -> AsrSettings:
        return server_asr_settings(threads, **self.asr)

    @property
    def n_best(self) -> int:
        s = self.settings(1)
        return min(s.n_best, s.beam_size)


def server_asr_settings(threads: int, **changes: Any) -> AsrSettings:
    """The ASR settings ``assistant.app.Hearth`` builds from a config without an ``asr:``
    section, with ``threads`` CPU threads and ``changes``."""
    from assistant.audio.asr import AsrSettings
    from assistant.config import AsrConfig

    return AsrSettings(**{**AsrConfig().overrides(), "cpu_threads": threads, **changes})


def _fixed(beam: int, n_best: int, prompt_tokens: int = 96, *, retry_cut_off: bool = False
           ) -> dict[str, Any]:
    """Settings pinned for a variant measured before the server's defaults changed."""
    return {"beam_size": beam, "n_best": n_best, "max_prompt_tokens": prompt_tokens,
            "retry_cut_off": retry_cut_off}


def _first_look() -> dict[str, Any]:
    """The server's speculative first look (``assistant.app.Hearth._first_look``, from the
    ``assistant:`` section's defaults), for the ``look`` variant."""
    from assistant.config import AssistantSettings

    s = AssistantSettings()
    beam = s.speculation_beam_size or 1
    return {"beam_size": beam, "n_best": beam, "retry_cut_off": False,
            "fallback_full_window": False,
            **({} if s.speculation_window_min_s is None
               else {"window_min_s": s.speculation_window_min_s})}


#: The variants the benchmark knows. ``server`` is what ``assistant.app`` does: its
#: transcriber settings and hotwords, built by the same code (the no-parse retry of the
#: session is ``beam5-phrases-retry2``).
ASR_VARIANTS: Final = {
    v.name: v
    for v in (
        AsrVariant("server", "server",
                   "what the server transcribes: AsrSettings defaults (beam 5, 5-best, 200-token "
                   "prompt, 30 s retry when cut off), Hearth.asr_hotwords"),
        AsrVariant("look", "none",
                   "the server's speculative first look: greedy, 6 s window floor, no prompt, "
                   "no 30 s rerun (assistant.speculation_* defaults)", _first_look()),
        AsrVariant("greedy-vocab", "vocabulary",
                   "greedy, hotwords = recognizer.vocabulary() (the server before beam 5)",
                   _fixed(1, 1)),
        AsrVariant("nohint", "none", "greedy, no biasing", _fixed(1, 1)),
        AsrVariant("compact", "compact",
                   "greedy, hotwords = the distinct words of the grammar's vocabulary",
                   _fixed(1, 1)),
        AsrVariant("beam5", "vocabulary", "beam 5 with 5-best, vocabulary hotwords", _fixed(5, 5)),
        AsrVariant("beam5-compact", "compact", "beam 5 with 5-best, compact hotwords",
                   _fixed(5, 5)),
        AsrVariant("phrases", "phrases",
                   "greedy, hotwords = vocabulary phrases deduplicated, 200-token prompt",
                   _fixed(1, 1, 200)),
        AsrVariant("beam5-phrases", "phrases",
                   "beam 5 with 5-best, deduplicated vocabulary phrases, 200-token prompt",
                   _fixed(5, 5, 200)),
        AsrVariant("beam5-phrases-retry", "phrases",
                   "beam5-phrases, again on the 30 s window when the text ends in a comma "
                   "(n-best pooled)", _fixed(5, 5, 200, retry_cut_off=True)),
        AsrVariant("beam5-phrases-retry2", "phrases",
                   "beam5-phrases-retry, and also when no hypothesis parses (n-best pooled)",
                   _fixed(5, 5, 200, retry_cut_off=True), retry_parse=True),
        AsrVariant("beam5-phrases-retry3", "phrases",
                   "beam5-phrases-retry2 with no hotwords on the no-parse retry pass",
                   _fixed(5, 5, 200, retry_cut_off=True), retry_parse=True, retry_hint="none"),
        AsrVariant("beam10-phrases-retry2", "phrases",
                   "beam5-phrases-retry2 with beam 10 and its 10-best list",
                   _fixed(10, 10, 200, retry_cut_off=True), retry_parse=True),
        # The same passes with the multilingual models (asr.model, docs/asr.md).
        AsrVariant("base-retry2", "phrases",
                   "beam5-phrases-retry2 with Whisper base (multilingual, English forced)",
                   {**_fixed(5, 5, 200, retry_cut_off=True), "model": "base"},
                   retry_parse=True),
        AsrVariant("small-retry2", "phrases",
                   "beam5-phrases-retry2 with Whisper small (multilingual, English forced)",
                   {**_fixed(5, 5, 200, retry_cut_off=True), "model": "small"},
                   retry_parse=True),
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


