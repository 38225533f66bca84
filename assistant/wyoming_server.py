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
(timers, set by a ``transcript``) ``timer-started`` / ``timer-updated`` / ``timer-cancelled``
                                before the reply; ``timer-finished`` when it runs out, on the
                                connection that set it if it is still open (else the audit log)
``ping``                        ``pong``
==============================  ===========================================================

Errors are ``error`` events (``text``, ``code``) with stable codes, :data:`ERROR_CODES`. Input
that breaks the framing (not JSON, a header over :data:`MAX_HEADER_BYTES`, a data or payload
length over the limits) is answered with ``error`` and the connection is closed; anything else
(an unknown event, bad fields, audio without ``audio-start``) is answered with ``error`` and the
connection goes on.

Wyoming has no authentication: the server binds to loopback unless configured otherwise.
When asked (or when bound beyond loopback) it announces itself over zeroconf as a
``_wyoming._tcp.local.`` service, :mod:`assistant.wyoming_zeroconf`.

The wire (limits, error codes, framing, field checks) is :mod:`assistant.wyoming_events`; one
connection's event handling is :mod:`assistant.wyoming_connection`; this module is the server
(listening, peers, the transcripts it remembers) and re-exports the wire's public names.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from wyoming.error import Error
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

from intents.decode import Hypothesis

if TYPE_CHECKING:
    from assistant.app import Hearth
    from assistant.wyoming_zeroconf import Announcement
    from intents.schema import Intent
from assistant.wyoming_connection import _Connection, _Pending
from assistant.wyoming_events import (
    DEFAULT_WYOMING_HOST,
    DEFAULT_WYOMING_PORT,
    ERROR_CODES,
    MAX_ASR_AUDIO_S,
    MAX_DATA_BYTES,
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TTS_CHARS,
    TTS_CHUNK_BYTES,
    TTS_RATE,
    WyomingConfigError,
    _write,
    parse_uri,
    read_event,
)
from assistant.wyoming_timers import WyomingTimers

logger = logging.getLogger(__name__)

#: Transcripts remembered with their n-best hypotheses, so that a ``transcript`` handed back
#: for handling (Home Assistant: Hearth's speech-to-text, then Hearth's conversation agent)
#: is decoded from what Whisper heard, as on the WebSocket path.
HEARD_MEMORY: Final = 64


# -- the server --------------------------------------------------------------------------


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
        zeroconf: bool | None = None,
        zeroconf_name: str | None = None,
    ) -> None:
        self.host, self.port = parse_uri(uri)
        self._zeroconf = zeroconf
        self._zeroconf_name = zeroconf_name
        #: The zeroconf announcement, once made; why it was not, when it failed.
        self.announcement: Announcement | None = None
        self.zeroconf_error: str | None = None
        self._hearth = hearth
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._per_client: collections.Counter[str] = collections.Counter()
        self._peers: dict[str, _Peer] = {}
        self._heard: collections.OrderedDict[str, tuple[tuple[Hypothesis, ...], float]] = (
            collections.OrderedDict()
        )
        self._wake_words = wake_words
        #: Timers set over this server (:mod:`assistant.wyoming_timers`).
        self.timers = WyomingTimers(hearth)

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
        await self._announce()

    async def _announce(self) -> None:
        """Zeroconf: on when asked, or by default when bound beyond loopback. A failure is
        logged and kept in :attr:`zeroconf_error`; the server goes on (add it by address)."""
        import ipaddress

        from assistant.wyoming_zeroconf import Announcement, ZeroconfError, default_name, plan

        assert self._server is not None
        bound = [str(s.getsockname()[0]) for s in self._server.sockets]
        beyond_loopback = any(
            not ipaddress.ip_address(a.split("%")[0]).is_loopback for a in bound)
        if not (self._zeroconf if self._zeroconf is not None else beyond_loopback):
            return
        try:
            announcement = Announcement(self._zeroconf_name or default_name(), self.port,
                                        plan(bound), version=_version())
            await announcement.register()
        except Exception as e:  # never a reason to stop serving: add it by address instead
            if not isinstance(e, (ZeroconfError, ValueError)):
                logger.exception("Wyoming: zeroconf failed")
            self.zeroconf_error = str(e)
            logger.warning("Wyoming: not announced over zeroconf: %s", e)
            return
        self.announcement = announcement

    async def shutdown(self) -> None:
        self.timers.close()
        if self.announcement is not None:
            await self.announcement.close()
            self.announcement = None
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


__all__ = [
    "DEFAULT_WYOMING_HOST",
    "DEFAULT_WYOMING_PORT",
    "ERROR_CODES",
    "HEARD_MEMORY",
    "MAX_ASR_AUDIO_S",
    "MAX_DATA_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TTS_CHARS",
    "TTS_CHUNK_BYTES",
    "TTS_RATE",
    "WyomingConfigError",
    "WyomingServer",
    "parse_uri",
    "read_event",
]
