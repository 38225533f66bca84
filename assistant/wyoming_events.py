"""The Wyoming wire for :mod:`assistant.wyoming_server`: the limits, the stable error codes,
reading one event with its framing checked (:func:`read_event`), the field checks, the audio
stream's conversion, and the bare yes/no of a pending confirmation."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart
from wyoming.event import Event, async_write_event

from assistant.protocol import SUPPORTED_SAMPLE_RATES

if TYPE_CHECKING:
    from intents.schema import Intent

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
