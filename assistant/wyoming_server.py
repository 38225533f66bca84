"""A Wyoming protocol server: Hearth as Home Assistant's speech-to-text, conversation agent,
intent recognizer and wake-word engine.

Wyoming (the protocol of Home Assistant's voice services) is one JSON header per line,
optionally followed by ``data_length`` bytes of JSON and ``payload_length`` bytes of binary
payload. The event types come from the ``wyoming`` package; the reading side is written here
so that bad input gets an ``error`` event instead of a silently dropped connection:

==============================  ===========================================================
client sends                    Hearth answers
==============================  ===========================================================
``describe``                    ``info`` (asr, handle, intent, wake programs; tts when a voice
                                is installed)
``transcribe`` + ``audio-start``  ``transcript`` — same front end (resampling, VAD trimming),
``audio-chunk``* ``audio-stop``   Whisper model, biasing prompt and ASR queue as the WebSocket
                                path
``transcript`` (handle)         ``handled`` / ``not-handled`` with a reply text, after acting
                                on the home through the dispatcher (security rules included)
``recognize``                   ``intent`` / ``not-recognized``
``detect`` + audio              ``detection`` when the wake word is heard, ``not-detected`` at
                                ``audio-stop`` otherwise
``ping``                        ``pong``
==============================  ===========================================================

Errors are ``error`` events (``text``, ``code``) with stable codes, :data:`ERROR_CODES`. Input
that breaks the framing (not JSON, a header over :data:`MAX_HEADER_BYTES`, a data or payload
length over the limits) is answered with ``error`` and the connection is closed; anything else
(an unknown event, bad fields, audio without ``audio-start``) is answered with ``error`` and the
connection goes on.

Wyoming has no authentication: the server binds to loopback unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)
from wyoming.intent import Entity, NotRecognized, Recognize
from wyoming.intent import Intent as WyIntent
from wyoming.ping import Pong
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

from assistant.asr_scheduler import FINAL, AsrScheduler
from assistant.audio.endpoint import SpeechStopped
from assistant.metrics import SHED_FINAL_PASS
from assistant.protocol import SUPPORTED_SAMPLE_RATES
from intents.decode import Hypothesis

if TYPE_CHECKING:
    from assistant.app import Hearth
    from assistant.audio.wake import WakeDetector
    from devices.actions import ActionResult
    from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)

DEFAULT_WYOMING_HOST: Final = "127.0.0.1"
DEFAULT_WYOMING_PORT: Final = 10700
#: Longest header line (the JSON before ``data`` and ``payload``).
MAX_HEADER_BYTES: Final = 64 * 1024
#: Largest ``data_length`` (the event's JSON data block).
MAX_DATA_BYTES: Final = 1024 * 1024
#: Largest ``payload_length`` (an audio chunk): 4 s of 48 kHz 16-bit stereo.
MAX_PAYLOAD_BYTES: Final = 48000 * 2 * 2 * 4
#: Longest audio one ``transcribe`` collects (16 kHz samples after the front end).
MAX_ASR_AUDIO_S: Final = 30.0
#: ``synthesize``: the longest text, the audio's rate and the chunk size (Wyoming's usual).
MAX_TTS_CHARS: Final = 1000
TTS_RATE: Final = 22050
TTS_CHUNK_BYTES: Final = 1024 * 2
#: Transcripts remembered with their n-best hypotheses, so that a ``transcript`` handed back
#: for handling (Home Assistant: Hearth's speech-to-text, then Hearth's conversation agent)
#: is decoded from what Whisper heard, as on the WebSocket path.
HEARD_MEMORY: Final = 64

#: Stable ``error`` codes. Those marked (closes) end the connection after the event.
ERROR_CODES: Final = {
    "bad_event": "a header that is not one JSON object with a 'type' (closes)",
    "header_too_large": f"a header line over {MAX_HEADER_BYTES} bytes (closes)",
    "payload_too_large": "data or payload over the limits (closes)",
    "unknown_type": "an event type Hearth does not serve",
    "invalid_message": "a known event with missing or wrong fields",
    "audio_not_started": "audio-chunk or audio-stop without audio-start",
    "unsupported_audio_format": "sample width or channels Hearth cannot convert",
    "unknown_wake_word": "detect names no installed wake word",
    "busy": "too many connections",
    "asr_failed": "speech recognition failed",
    "language_unsupported": "transcribe asks for a language the speech model cannot speak",
    "recognizer_failed": "intent recognition failed",
    "dispatch_failed": "the action could not be carried out",
    "tts_unavailable": "no voice installed (assistant.tts off)",
    "internal_error": "anything else",
}


class WyomingConfigError(ValueError):
    """A bad ``--wyoming`` URI."""


def parse_uri(uri: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port); raises :class:`WyomingConfigError`."""
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise WyomingConfigError(f"wyoming: expected tcp://HOST:PORT, got {uri!r}")
    return parsed.hostname, port


class _Fatal(Exception):
    """The framing is broken: answer with ``error`` and close."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class _Reply(Exception):
    """An ``error`` answer; the connection goes on."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """One event, None at end of stream. Raises :class:`_Fatal` on broken framing."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio.LimitOverrunError, re-raised by readline as ValueError
        raise _Fatal(
            "header_too_large", f"event headers are limited to {MAX_HEADER_BYTES} bytes"
        ) from None
    if not line or not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        raise _Fatal("bad_event", "an event header must be one JSON object on one line") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise _Fatal("bad_event", "an event header must be a JSON object with a string 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise _Fatal("bad_event", "'data' must be a JSON object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise _Fatal("bad_event", "the data block must be a JSON object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    except (ValueError, RecursionError):
        raise _Fatal("bad_event", "the data block is not valid JSON") from None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Fatal("bad_event", f"'{key}' must be a non-negative integer")
    if value > limit:
        raise _Fatal("payload_too_large", f"'{key}' is limited to {limit} bytes")
    return value


_YES: Final = frozenset({"yes", "yeah", "yep", "yes please", "confirm", "do it", "sure", "ok",
                         "okay", "是", "是的", "对", "确认", "好", "好的"})
_NO: Final = frozenset({"no", "nope", "no thanks", "don't", "do not", "不", "不要", "取消"})


def _yes_or_no(text: str, language: str | None) -> Intent | None:
    """``confirm`` / ``cancel`` for a bare yes or no (only asked while a sensitive action
    waits for one)."""
    from intents.schema import Intent

    phrase = " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
    name = "confirm" if phrase in _YES else "cancel" if phrase in _NO else None
    if name is None:
        return None
    return Intent(name=name, confidence=1.0, source="context", text=text,
                  reason=f"answer to a pending confirmation: {phrase!r}",
                  language=language or "en")


# -- the server --------------------------------------------------------------------------


@dataclass
class _Pending:
    intent: Intent
    deadline: float


@dataclass
class _Peer:
    """What a client address carries between connections (Home Assistant opens one per
    request): the last intent (context for "turn it off") and a pending confirmation."""

    last_intent: Intent | None = None
    pending: _Pending | None = None
    last_seen: float = field(default_factory=time.monotonic)


class WyomingServer:
    """Wyoming over TCP on the resources of a started :class:`~assistant.app.Hearth`."""

    def __init__(
        self,
        hearth: Hearth,
        uri: str,
        *,
        wake_words: tuple[str, ...] | None = None,
    ) -> None:
        self.host, self.port = parse_uri(uri)
        self._hearth = hearth
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._per_client: collections.Counter[str] = collections.Counter()
        self._peers: dict[str, _Peer] = {}
        self._heard: collections.OrderedDict[str, tuple[tuple[Hypothesis, ...], float]] = (
            collections.OrderedDict()
        )
        self._wake_words = wake_words

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=MAX_HEADER_BYTES
        )
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        logger.info("Wyoming server on %s (no authentication)", self.uri)

    async def shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- what Hearth offers ---------------------------------------------------------------

    def wake_words(self) -> tuple[str, ...]:
        if self._wake_words is not None:
            return self._wake_words
        try:
            from assistant.audio.wake import available

            return tuple(available())
        except Exception:  # the runtime is missing: no wake words
            return ()

    def info(self) -> Info:
        hearth = self._hearth
        version = _version()
        recognizer = hearth.recognizer
        languages = sorted(recognizer.languages) if recognizer else [hearth.config.language]
        hearth_attr = Attribution(name="Hearth", url="")
        out = Info()
        if hearth.transcriber is not None:
            model = hearth.settings.asr.model or "tiny.en"
            out.asr = [AsrProgram(
                name="hearth-asr", attribution=hearth_attr, installed=True, version=version,
                description="Hearth speech-to-text (faster-whisper, biased to the home's names)",
                models=[AsrModel(
                    name=model, languages=self._asr_languages(), installed=True, version=None,
                    description=f"Whisper {model} (CTranslate2)",
                    attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
                )],
            )]
        out.handle = [HandleProgram(
            name="hearth", attribution=hearth_attr, installed=True, version=version,
            description="Hearth conversation agent: acts on the home over MQTT",
            models=[HandleModel(
                name="hearth-home", languages=languages, installed=True, version=version,
                description=f"{hearth.config.name}: grammar from home-assistant-intents",
                attribution=Attribution(
                    name="Home Assistant intents",
                    url="https://github.com/home-assistant/intents"),
            )],
            supports_home_control=True,
        )]
        out.intent = [IntentProgram(
            name="hearth-intent", attribution=hearth_attr, installed=True, version=version,
            description="Hearth intent recognition (text -> intent, nothing is acted on)",
            models=[IntentModel(
                name="hearth-home", languages=languages, installed=True, version=version,
                description="grammar from home-assistant-intents and the device registry",
                attribution=Attribution(
                    name="Home Assistant intents",
                    url="https://github.com/home-assistant/intents"),
            )],
        )]
        voices = self._voices()
        if voices:
            out.tts = [TtsProgram(
                name="hearth-tts", attribution=hearth_attr, installed=True, version=version,
                description="Hearth's reply voices (piper; espeak-ng where no piper voice)",
                voices=[TtsVoice(
                    name=engine, languages=[lang], installed=True, version=None,
                    description=f"{lang}: {engine}",
                    attribution=Attribution(
                        name=engine.split(":")[0],
                        url="https://github.com/rhasspy/piper" if engine.startswith("piper")
                        else "https://github.com/espeak-ng/espeak-ng"),
                ) for lang, engine in voices.items()],
            )]
        words = self.wake_words()
        if words:
            from assistant.audio.wake import available

            models = available()
            out.wake = [WakeProgram(
                name="hearth-wake", attribution=hearth_attr, installed=True, version=version,
                description="microWakeWord models (pymicro-wakeword)",
                models=[WakeModel(
                    name=w, phrase=models[w].phrase, languages=list(models[w].languages),
                    installed=True, version=None, description=models[w].phrase,
                    attribution=Attribution(name=models[w].author, url=models[w].website),
                ) for w in words if w in models],
            )]
        return out

    def _asr_languages(self) -> list[str]:
        t = self._hearth.transcriber
        if t is None or not getattr(t, "multilingual", False):
            return ["en"]
        langs = [self._hearth.config.language, *getattr(t.settings, "languages", ())]
        return list(dict.fromkeys(langs))

    def _voices(self) -> dict[str, str]:
        """Reply language -> engine, for the languages Hearth can speak."""
        speaker = getattr(self._hearth, "speaker", None)
        if speaker is None:
            return {}
        return {lang: engine for lang, engine in speaker.voices().items() if engine}

    # -- connections ----------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        task = asyncio.current_task()
        assert task is not None
        limits = self._hearth.settings.limits
        try:
            if (
                len(self._handlers) >= limits.max_connections
                or self._per_client[client] >= limits.max_connections_per_client
            ):
                await _write(writer, Error("too many connections", "busy").event())
                return
            self._handlers.add(task)
            self._per_client[client] += 1
            try:
                await _Connection(self, reader, writer, client).run()
            finally:
                self._per_client[client] -= 1
                if self._per_client[client] <= 0:
                    del self._per_client[client]
                self._handlers.discard(task)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            logger.exception("wyoming: connection from %s failed", client)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def peer(self, client: str) -> _Peer:
        p = self._peers.get(client)
        if p is None:
            if len(self._peers) >= 1024:  # forget the longest idle
                oldest = min(self._peers, key=lambda k: self._peers[k].last_seen)
                del self._peers[oldest]
            p = self._peers[client] = _Peer()
        p.last_seen = time.monotonic()
        return p

    def remember(self, text: str, hyps: tuple[Hypothesis, ...], no_speech: float) -> None:
        key = text.strip().lower()
        self._heard[key] = (hyps, no_speech)
        self._heard.move_to_end(key)
        while len(self._heard) > HEARD_MEMORY:
            self._heard.popitem(last=False)

    def recall(self, text: str) -> tuple[tuple[Hypothesis, ...], float] | None:
        return self._heard.get(text.strip().lower())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hearth")
    except PackageNotFoundError:
        return "0"


async def _write(writer: asyncio.StreamWriter, event: Event) -> None:
    await async_write_event(event, writer)


_INT: Final = (int,)
_STR: Final = (str,)
_OPT_STR: Final = (str, type(None))
#: Field types checked before an event is used (the ``wyoming`` dataclasses do not check).
_FIELDS: Final[dict[str, dict[str, tuple[type, ...]]]] = {
    "audio-start": {"rate": _INT, "width": _INT, "channels": _INT},
    "audio-chunk": {"rate": _INT, "width": _INT, "channels": _INT},
    "transcribe": {"language": _OPT_STR, "name": _OPT_STR},
    "transcript": {"text": _STR, "language": _OPT_STR, "context": (dict, type(None))},
    "recognize": {"text": _STR, "context": (dict, type(None))},
    "detect": {"names": (list, type(None))},
    "synthesize": {"text": _STR, "voice": (dict, type(None))},
}


def _check_fields(event: Event) -> None:
    for name, types in _FIELDS.get(event.type, {}).items():
        value = event.data.get(name)
        if name not in event.data and type(None) in types:
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            raise _Reply("invalid_message", f"{event.type}: '{name}' is missing or invalid")
        if types is _INT and isinstance(value, int) and not 0 < value <= 384_000:
            raise _Reply("invalid_message", f"{event.type}: '{name}' is out of range")
    names = event.data.get("names") if event.type == "detect" else None
    if names is not None and not all(isinstance(n, str) for n in names):
        raise _Reply("invalid_message", "detect: 'names' must be a list of strings")


class _AudioIn:
    """One ``audio-start`` … ``audio-stop`` stream: converted to 16-bit mono."""

    def __init__(self, start: AudioStart, *, rate: int | None = None) -> None:
        if start.width not in (1, 2, 3, 4) or start.channels not in (1, 2):
            raise _Reply("unsupported_audio_format",
                         "audio must be 8-32 bit PCM, mono or stereo")
        if rate is None:
            rate = start.rate if start.rate in SUPPORTED_SAMPLE_RATES else 16000
        self.rate = rate
        self._converter = AudioChunkConverter(rate=rate, width=2, channels=1)
        self.bytes = 0

    def convert(self, chunk: AudioChunk) -> bytes:
        if chunk.width not in (1, 2, 3, 4) or chunk.channels not in (1, 2):
            raise _Reply("unsupported_audio_format", "audio must be 8-32 bit PCM, mono or stereo")
        frame = chunk.width * chunk.channels
        if len(chunk.audio) % frame:
            raise _Reply("invalid_message", "audio-chunk does not hold whole samples")
        out = self._converter.convert(chunk).audio
        self.bytes += len(out)
        return out


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

    async def send(self, event: Event) -> None:
        await _write(self._writer, event)

    async def run(self) -> None:
        idle = self._hearth.settings.limits.idle_timeout_s
        while True:
            try:
                event = await asyncio.wait_for(read_event(self._reader), idle)
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
        """The clock ("what time is it") is answered here, as on the WebSocket path. Timers
        are not kept for Wyoming clients (Home Assistant has its own): not-handled."""
        from intents.timers import DATE_GET, LOCAL_INTENTS, TIME_GET

        if intent.name not in LOCAL_INTENTS:
            return False
        services = getattr(self._hearth, "answers", None)
        if intent.name in (TIME_GET, DATE_GET) and services is not None:
            from assistant.answers.timers import answer_local

            reply = answer_local(intent, services.timers, owner=f"wyoming {self._client}",
                                 utterance_id="wyoming")
            await self.send(Handled(text=reply.text, context={**(context or {}),
                                                              "intent": intent.name}).event())
        else:
            await self.send(NotHandled(text="Timers are not available over Wyoming.",
                                       context=context).event())
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
