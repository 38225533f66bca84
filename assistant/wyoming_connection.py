"""One Wyoming connection of :class:`assistant.wyoming_server.WyomingServer`: its events
(describe, transcribe + audio, transcript/recognize, detect, synthesize, ping) handled on the
server's shared resources.

Timers set, paused, resumed or cancelled by a ``transcript`` are told to the client with the
``wyoming`` package's timer events (``timer-started``, ``timer-updated``, ``timer-cancelled``)
before the ``handled`` reply; ``timer-finished`` follows on the connection that set the timer
if it is still open, else the audit log gets it (:mod:`assistant.wyoming_timers`). A
connection waiting for its timers is not closed for idleness before they run out."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.intent import Entity, NotRecognized, Recognize
from wyoming.intent import Intent as WyIntent
from wyoming.ping import Pong
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

from assistant.asr_scheduler import FINAL, AsrScheduler
from assistant.audio.endpoint import SpeechStopped
from assistant.metrics import SHED_FINAL_PASS
from assistant.wyoming_events import (
    MAX_ASR_AUDIO_S,
    MAX_TTS_CHARS,
    TTS_CHUNK_BYTES,
    TTS_RATE,
    _AudioIn,
    _check_fields,
    _Fatal,
    _Reply,
    _write,
    _yes_or_no,
    read_event,
)
from intents.decode import Hypothesis

if TYPE_CHECKING:
    from assistant.audio.wake import WakeDetector
    from assistant.wyoming_server import WyomingServer
    from devices.actions import ActionResult
    from intents.schema import Intent, Recognition

logger = logging.getLogger("assistant.wyoming_server")


@dataclass
class _Pending:
    intent: Intent
    deadline: float


class _Connection:
    def __init__(
        self,
        server: WyomingServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> None:
        self._server = server
        self._hearth = server._hearth
        self._reader = reader
        self._writer = writer
        self._client = client
        self._transcribe: Transcribe | None = None
        self._detect: Detect | None = None
        self._audio: _AudioIn | None = None
        self._frontend: Any = None
        self._segments: list[Any] = []
        self._detectors: list[WakeDetector] = []
        self._detected = False
        #: False once the connection has ended (a timer's end then goes to the audit log).
        self.open = True

    async def send(self, event: Event) -> None:
        await _write(self._writer, event)

    async def send_quietly(self, event: Event) -> None:
        """An event from outside the read loop (a timer ran out); a closed peer is ignored."""
        if not self.open or self._writer.is_closing():
            return
        try:
            await self.send(event)
        except (ConnectionError, RuntimeError):
            pass

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.open = False
            self._server.timers.closed(self)

    async def _run(self) -> None:
        idle = self._hearth.settings.limits.idle_timeout_s
        while True:
            # Idle time counts from the end of the timers set here (timer-finished comes).
            timeout = self._server.timers.idle_timeout(self, self._client, idle)
            try:
                event = await asyncio.wait_for(read_event(self._reader), timeout)
            except TimeoutError:
                return
            except _Fatal as e:
                await self.send(Error(e.text, e.code).event())
                return
            if event is None:
                return
            try:
                await self.handle(event)
            except _Reply as e:
                await self.send(Error(e.text, e.code).event())
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                logger.debug("wyoming: bad %s event: %s", event.type, e)
                await self.send(
                    Error(f"{event.type}: missing or invalid fields", "invalid_message").event()
                )

    async def handle(self, event: Event) -> None:
        kind = event.type
        _check_fields(event)
        if kind == "describe":
            await self.send(self._server.info().event())
        elif kind == "ping":
            await self.send(Pong(text=event.data.get("text")).event())
        elif kind == "transcribe":
            self._transcribe, self._detect = Transcribe.from_event(event), None
        elif kind == "detect":
            self._start_detect(Detect.from_event(event))
        elif kind == "audio-start":
            self._start_audio(AudioStart.from_event(event))
        elif kind == "audio-chunk":
            await self._chunk(event)
        elif kind == "audio-stop":
            await self._stop_audio()
        elif kind == "transcript":
            await self._handle(Transcript.from_event(event))
        elif kind == "recognize":
            await self._recognize(Recognize.from_event(event))
        elif kind == "synthesize":
            await self._synthesize(Synthesize.from_event(event))
        else:
            shown = kind if len(kind) <= 40 else kind[:40] + "…"
            raise _Reply("unknown_type", f"Hearth does not serve {shown!r} events")

    # -- audio: transcription and wake words -----------------------------------------------

    def _start_detect(self, detect: Detect) -> None:
        words = self._server.wake_words()
        wanted = list(detect.names or words[:1])
        unknown = [w for w in wanted if w not in words]
        if unknown or not wanted:
            raise _Reply(
                "unknown_wake_word",
                f"unknown wake word {unknown[0]!r}; available: {', '.join(words) or 'none'}"
                if unknown else "no wake word is installed",
            )
        self._detect, self._transcribe = detect, None
        self._detect_words = wanted

    def _start_audio(self, start: AudioStart) -> None:
        # Wake-word models take 16 kHz; the ASR front end resamples itself (better than
        # audioop) from any rate the WebSocket path accepts.
        audio = _AudioIn(start, rate=16000 if self._detect is not None else None)
        self._segments = []
        self._detected = False
        if self._detect is not None:
            from assistant.audio.wake import WakeDetector

            self._detectors = [WakeDetector(w) for w in self._detect_words]
            self._frontend = None
        else:
            res = self._hearth.resources
            if res.frontend_factory is None or res.transcribe is None:
                raise _Reply("asr_failed", "speech recognition is not available on this server")
            td = self._hearth.settings.turn_detection
            self._frontend = res.frontend_factory(audio.rate, td, "push_to_talk")
        self._audio = audio

    async def _chunk(self, event: Event) -> None:
        audio = self._audio
        if audio is None:
            raise _Reply("audio_not_started", "audio-chunk before audio-start")
        if event.payload is None:
            raise _Reply("invalid_message", "audio-chunk without audio")
        pcm = audio.convert(AudioChunk.from_event(event))
        if self._detectors:
            await self._wake(pcm, audio)
            return
        limit = int(MAX_ASR_AUDIO_S * audio.rate * 2)
        if audio.bytes > limit + len(pcm):
            return  # past the limit: the rest is dropped (the front end cut at max length)
        await self._feed(functools.partial(self._frontend.feed, pcm, time.monotonic()),
                         len(pcm) / 2 / audio.rate)

    async def _feed(self, call: Any, seconds: float) -> None:
        if seconds <= 0.064:
            events = call()
        else:
            loop = asyncio.get_running_loop()
            events = await loop.run_in_executor(self._hearth.resources.vad_executor, call)
        self._segments.extend(ev for ev in events if isinstance(ev, SpeechStopped))

    async def _wake(self, pcm: bytes, audio: _AudioIn) -> None:
        for detector in self._detectors:
            for hit in detector.process(pcm):
                self._detected = True
                await self.send(Detection(name=hit.word, timestamp=hit.at_ms).event())

    async def _stop_audio(self) -> None:
        if self._audio is None:
            raise _Reply("audio_not_started", "audio-stop before audio-start")
        self._audio = None
        if self._detectors:
            self._detectors = []
            if not self._detected:
                await self.send(NotDetected().event())
            return
        frontend, self._frontend = self._frontend, None
        await self._feed(functools.partial(frontend.commit, time.monotonic()), 1.0)
        segments, self._segments = self._segments, []
        request, self._transcribe = self._transcribe, None
        import numpy as np

        parts = [s.audio for s in segments if len(s.audio)]
        if not parts:
            await self.send(Transcript(text="").event())
            return
        audio = np.concatenate(parts)[: int(MAX_ASR_AUDIO_S * 16000)]
        wanted = request.language if request is not None else None
        text = await self._asr(audio, wanted)
        await self.send(Transcript(text=text, language=wanted or self._hearth.config.language
                                   ).event())

    async def _asr(self, audio: Any, language: str | None) -> str:
        res = self._hearth.resources
        shed = self._hearth.settings.asr_shed_jobs
        transcribe = res.transcribe
        if shed is not None and res.asr_load.jobs >= shed and res.transcribe_speculative:
            transcribe = res.transcribe_speculative  # overloaded: the cheap pass, as there
            res.metrics.asr_shed(
                SHED_FINAL_PASS,
                session_id=f"wyoming {self._client}",
                utterance_id="transcribe",
                jobs=res.asr_load.jobs,
                limit=shed,
            )
        assert transcribe is not None
        if res.asr_language is not None:
            # The requested language (or the home's), as a WebSocket session's language.
            try:
                transcribe = res.asr_language(transcribe, language)
            except ValueError as e:
                raise _Reply("language_unsupported", str(e)) from None
        call = functools.partial(transcribe, audio)
        executor = res.asr_executor
        if isinstance(executor, AsrScheduler):
            future: asyncio.Future[Any] = asyncio.wrap_future(executor.submit_at(FINAL, call))
        else:
            future = asyncio.get_running_loop().run_in_executor(executor, call)
        res.asr_load.jobs += 1
        res.metrics.asr_jobs.set(res.asr_load.jobs)
        try:
            result = await future
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logger.exception("wyoming: ASR failed")
            raise _Reply("asr_failed", "speech recognition failed") from e
        finally:
            res.asr_load.jobs -= 1
            res.metrics.asr_jobs.set(res.asr_load.jobs)
        if isinstance(result, str):
            return result.strip()
        text = str(result.text).strip()
        hyps = tuple(Hypothesis(a.text, a.avg_logprob) for a in result.alternatives) or (
            Hypothesis(text, result.avg_logprob),
        )
        self._server.remember(text, hyps, float(result.no_speech_prob))
        return text

    # -- speech out ---------------------------------------------------------------------

    async def _synthesize(self, request: Synthesize) -> None:
        from assistant.answers.tts import stream_async

        speaker = getattr(self._hearth, "speaker", None)
        voices = self._server._voices()
        text = request.text.strip()
        if speaker is None or not voices:
            raise _Reply("tts_unavailable", "Hearth has no voice installed")
        if not text or len(text) > MAX_TTS_CHARS:
            raise _Reply("invalid_message",
                         f"synthesize: text must be 1 to {MAX_TTS_CHARS} characters")
        wanted = request.voice.language if request.voice is not None else None
        language = next(
            (lang for lang in voices if wanted and (
                lang.lower() == wanted.lower() or lang.split("-")[0] == wanted.split("-")[0])),
            "en" if "en" in voices else next(iter(voices)))
        await self.send(AudioStart(rate=TTS_RATE, width=2, channels=1).event())
        try:
            async for sentence in stream_async(speaker, text, language, TTS_RATE):
                pcm = sentence.pcm
                for i in range(0, len(pcm), TTS_CHUNK_BYTES):
                    chunk = AudioChunk(rate=TTS_RATE, width=2, channels=1,
                                       audio=pcm[i : i + TTS_CHUNK_BYTES])
                    await self.send(chunk.event())
        except Exception as e:
            logger.exception("wyoming: synthesis failed")
            await self.send(AudioStop().event())
            raise _Reply("internal_error", "speech synthesis failed") from e
        await self.send(AudioStop().event())

    # -- text: handle and recognize ---------------------------------------------------------

    async def _recognition(self, text: str, language: str | None) -> Recognition:
        res = self._hearth.resources
        peer = self._server.peer(self._client)
        context = peer.last_intent
        heard = self._server.recall(text)
        call: Any
        if heard is not None and res.decoder is not None:
            # Hearth transcribed this: decode Whisper's n-best list as the WebSocket path does.
            call = functools.partial(
                res.decoder.decode, heard[0], language=language, context=context,
                no_speech_prob=heard[1])
        elif res.tiered is not None:
            call = functools.partial(res.tiered.recognize, text, language=language,
                                     context=context)
        else:
            call = functools.partial(res.recognizer.recognize, text, language=language,
                                     context=context)
        try:
            return await asyncio.to_thread(call)
        except Exception as e:
            logger.exception("wyoming: recognizer failed")
            raise _Reply("recognizer_failed", "intent recognition failed") from e

    async def _recognize(self, request: Recognize) -> None:
        text = request.text.strip()
        if not text:
            await self.send(NotRecognized(text="nothing to recognize").event())
            return
        result = await self._recognition(text, None)
        intent = result.intent
        if intent is None:
            await self.send(NotRecognized(text=result.reason, context=request.context).event())
            return
        slots = intent.slots.model_dump(mode="json", exclude_defaults=True)
        entities = [Entity(name=k, value=v) for k, v in slots.items()]
        await self.send(WyIntent(
            name=intent.name, entities=entities, text=text,
            context={**(request.context or {}), "confidence": intent.confidence,
                     "source": intent.source, "reason": intent.reason},
        ).event())

    def _reply(self, intent: Intent | None, results: list[ActionResult], text: str,
               language: str | None, *, reason: str = "") -> str:
        """The reply the WebSocket path gives (``assistant.answers``), in English or Chinese."""
        from assistant.answers.reply import compose_reply

        return compose_reply(intent, results, self._hearth.config, reason=reason,
                             language=language, text=text).text

    async def _local(self, intent: Intent, context: dict[str, Any] | None) -> bool:
        """Timers and the clock, answered here as on the WebSocket path; what changed in the
        timers is told with Wyoming's timer events before the reply."""
        from intents.timers import LOCAL_INTENTS

        if intent.name not in LOCAL_INTENTS:
            return False
        timers = self._server.timers.manager()
        if timers is None:
            await self.send(NotHandled(text="Timers are not available on this server.",
                                       context=context).event())
            return True
        reply, events = self._server.timers.answer(self, self._client, intent, timers)
        for event in events:
            await self.send(event)
        await self.send(Handled(text=reply.text, context={**(context or {}),
                                                          "intent": intent.name}).event())
        return True

    async def _handle(self, transcript: Transcript) -> None:
        text = transcript.text.strip()
        context = transcript.context
        if not text:
            await self.send(NotHandled(text="Sorry, I did not hear anything.",
                                       context=context).event())
            return
        peer = self._server.peer(self._client)
        result = await self._recognition(text, transcript.language)
        intent = result.intent
        confirmed = False
        if intent is None and peer.pending is not None:
            intent = _yes_or_no(text, transcript.language)
        if intent is not None and intent.name in ("confirm", "cancel"):
            pending, peer.pending = peer.pending, None
            live = pending is not None and time.monotonic() <= pending.deadline
            if intent.name == "cancel" and live:
                await self.send(NotHandled(text="Cancelled; nothing was done.",
                                           context=context).event())
                return
            if intent.name == "confirm" and live:
                assert pending is not None
                intent, confirmed = pending.intent, True
        if intent is None:
            reply = self._reply(None, [], text, transcript.language, reason=result.reason)
            await self.send(NotHandled(text=reply, context=context).event())
            return
        peer.last_intent = intent
        if await self._local(intent, context):
            return
        try:
            results = await self._hearth.resources.dispatcher.dispatch(intent,
                                                                       confirmed=confirmed)
        except Exception as e:
            logger.exception("wyoming: dispatch failed")
            raise _Reply("dispatch_failed", "the action could not be carried out") from e
        if any(r.extra.get("needs_confirmation") for r in results):
            window = self._hearth.config.security.confirmation_window_s
            peer.pending = _Pending(intent, time.monotonic() + window)
            reply = self._reply(intent, results, text, transcript.language)
            await self.send(NotHandled(text=reply, context=context).event())
            return
        reply = self._reply(intent, results, text, transcript.language)
        ok = any(r.status in ("confirmed", "unconfirmed") for r in results) or (
            intent.is_query and any(r.final and r.status not in ("rejected", "failed")
                                    for r in results))
        reply_context = {**(context or {}), "intent": intent.name,
                         "actions": [{"device_id": r.device_id, "status": r.status}
                                     for r in results if r.final]}
        if ok:
            await self.send(Handled(text=reply, context=reply_context).event())
        else:
            await self.send(NotHandled(text=reply, context=reply_context).event())
