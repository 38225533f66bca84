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
from assistant.app_speech import Speech, asr_hotwords
from assistant.audit import AuditLog
from assistant.config import AssistantSettings, TurnDetectionSettings, parse_assistant_settings
from assistant.metrics import Metrics
from assistant.protocol import Mode
from assistant.replicas import Share
from assistant.session import FrontEndLike, SessionResources
from devices.registry import HomeConfig

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
        #: The speech model and the transcription functions sessions get.
        self.speech = Speech(config, self.settings)
        self.tiered: _Tiered | None = None
        self.audit: AuditLog | None = None
        #: What this process shares with other replicas through the broker.
        self.share: Share | None = None
        self.speaker: Speaker | None = None
        self.answers: AnswerServices | None = None
        self._vad_executor: ThreadPoolExecutor | None = None
        self._resources: SessionResources | None = None
        self._remove_listener: Any = None
        self._repair_task: asyncio.Future[None] | None = None
        self._servers: list[HearthServer] = []
        self._wyoming: list[WyomingServer] = []

    @property
    def transcriber(self) -> WhisperTranscriber | RemoteTranscriber | None:
        """The shared speech model (None: no audio, or not loaded yet)."""
        return self.speech.transcriber

    @transcriber.setter
    def transcriber(self, value: WhisperTranscriber | RemoteTranscriber | None) -> None:
        self.speech.transcriber = value

    @property
    def hotwords(self) -> tuple[str, ...]:
        """The phrases Whisper is biased with (:func:`asr_hotwords`)."""
        return self.speech.hotwords

    @hotwords.setter
    def hotwords(self, value: tuple[str, ...]) -> None:
        self.speech.hotwords = value

    #: The phrases Whisper is biased with (``assistant.app_speech.asr_hotwords``).
    asr_hotwords = staticmethod(asr_hotwords)

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
                    asyncio.to_thread(self.speech.load),
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
        self.speech.set_vocabulary(recognizer)
        audit = self._open_audit()
        self.answers = AnswerServices(
            home=self.config, speaker=self.speaker, timers=TimerManager(audit=audit)
        )
        self.answers.prefill()  # tts.prefill: confirmations synthesized in the background
        if self.share is not None:  # timers, confirmations and audit, shared by replicas
            await self.share.start(timers=self.answers.timers, audit=audit,
                                   publish_audit=self.settings.audit.publish)
        self._resources = SessionResources(
            settings=self.settings,
            recognizer=recognizer,
            dispatcher=dispatcher,
            metrics=self.metrics,
            frontend_factory=self._new_frontend if self.vad is not None else None,
            transcribe=self.speech.transcribe if self.transcriber is not None else None,
            transcribe_partial=(
                self.speech.transcribe_partial if self.transcriber is not None else None
            ),
            acoustic_repair=None,  # loaded after start-up, below
            transcribe_speculative=(
                self.speech.transcribe_speculative if self.transcriber is not None else None
            ),
            transcribe_full=(
                self.speech.transcribe_full
                if self.transcriber is not None
                and self.settings.asr.retry_unparsed
                and self.settings.asr.backend == "local"  # a remote server picks its window
                else None
            ),
            vad_executor=self._vad_executor,
            asr_executor=self.speech.executor,
            confirmation_window_s=self.config.security.confirmation_window_s,
            tiered=self.tiered,
            audit=audit,
            share=self.share,
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
            repair = await asyncio.to_thread(
                self.speech.acoustic_repair, self.recognizer, self.decoder
            )
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
        self.share = Share(self.mqtt, prefix=self.config.mqtt.topic_prefix)  # sets the will
        await self.mqtt.connect()
        # The dispatcher needs the recognizer's custom actions; wait for it only here so
        # the broker connection overlaps model loading.
        await recognizer_loaded
        assert self.recognizer is not None
        self.dispatcher = Dispatcher(
            self.config, self.mqtt, custom_actions=self.recognizer.custom_actions
        )
        await self.dispatcher.start(wait_for_retained=RETAINED_STATE_WAIT_S)

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
        if self.share is not None:
            await self.share.stop()  # before the broker connection goes: presence down
            self.share = None
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
        for ex in (self._vad_executor, self.speech.executor):
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)
        self._vad_executor = self.speech.executor = None
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

    async def start_wyoming(
        self, uri: str, *, zeroconf: bool | None = None, zeroconf_name: str | None = None
    ) -> WyomingServer:
        """Serve the Wyoming protocol (Home Assistant) on these resources at ``uri``
        (``tcp://HOST:PORT``; no authentication), announced over zeroconf when ``zeroconf``
        (None: when bound beyond loopback). Started here, stopped by :meth:`stop`."""
        from assistant.wyoming_server import WyomingServer

        server = WyomingServer(self, uri, zeroconf=zeroconf, zeroconf_name=zeroconf_name)
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
        return device_list(self.config, states)

    def _on_state(self, device_id: str, state: dict[str, Any]) -> None:
        for server in self._servers:
            server.broadcast_device_state(device_id, state)

    def _new_frontend(self, rate: int, td: TurnDetectionSettings, mode: Mode) -> FrontEndLike:
        from assistant.audio.frontend import AudioFrontEnd

        assert self.vad is not None
        return AudioFrontEnd(self.vad, endpoint_settings(td, mode), in_rate=rate)

    def asr_language(self, transcribe: Any, language: str | None) -> Any:
        """``transcribe`` bound to a session's language (:meth:`Speech.asr_language`)."""
        return self.speech.asr_language(transcribe, language)

    def transcribe_full(self, audio: Any, language: str | None = None) -> Transcript:
        """Transcribe again on Whisper's 30 s window (:meth:`Speech.transcribe_full`)."""
        return self.speech.transcribe_full(audio, language)


class _Tiered:
    """``TieredRecognizer`` with the image decoding the session needs (``TieredLike``)."""

    def __init__(self, tiered: Any, image_type: Any, audio_type: Any = None) -> None:
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


def device_list(config: HomeConfig, states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The registry's devices with their known ``states`` (``/api/devices``)."""
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
        for d in config.devices
    ]
