"""Speech side of the accuracy benchmark: the server's own endpointing and transcriber
settings.

The benchmark runs the real pipeline pieces in-process: ``AudioFrontEnd`` (silero-vad +
endpointer, default settings, fed in 20 ms chunks as a client sends them) cuts the clip into
utterances exactly as a session would, and ``WhisperTranscriber`` transcribes each one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from assistant.audio.asr import looks_cut_off as looks_cut_off  # re-exported for the benchmark
from intents.repair import bias_phrases as bias_phrases  # re-exported for the benchmark

if TYPE_CHECKING:
    from assistant.audio.asr import AsrSettings
    from assistant.config import AssistantSettings

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Chunk size when streaming a clip into the front end (20 ms, what browsers send).
_FEED_SAMPLES: Final = 320
#: Silence appended after a clip so the endpointer sees the end of the turn.
_TAIL_SILENCE_S: Final = 1.0

@dataclass(frozen=True, slots=True)
class AsrVariant:
    """How the benchmark runs Whisper: the server's own settings (the ``assistant:``
    section's, with ``--set-option`` overrides), its hotwords (``Hearth.asr_hotwords``), and
    the session's retry on the 30 s window when no hypothesis parses (``asr.retry_unparsed``).
    """

    settings: AsrSettings
    retry_parse: bool = True
    name: str = "server"

    @property
    def n_best(self) -> int:
        return min(self.settings.n_best, self.settings.beam_size)


def server_asr_settings(threads: int, **changes: Any) -> AsrSettings:
    """The ASR settings ``assistant.app.Hearth`` builds from a config without an ``asr:``
    section, with ``threads`` CPU threads and ``changes``."""
    from assistant.audio.asr import AsrSettings
    from assistant.config import AsrConfig

    return AsrSettings(**{**AsrConfig().overrides(), "cpu_threads": threads, **changes})


def server_variant(settings: AssistantSettings, threads: int) -> AsrVariant:
    """What the server transcribes with ``settings`` (``threads`` CPU threads unless
    ``asr.threads`` is set)."""
    from assistant.audio.asr import AsrSettings

    asr = settings.asr
    return AsrVariant(AsrSettings(**{"cpu_threads": threads, **asr.overrides()}),
                      retry_parse=asr.decode == "grammar" and asr.retry_unparsed)


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
