"""Speech recognition on an inference server: ``asr.backend: remote``.

:class:`RemoteTranscriber` sends each utterance to an OpenAI-compatible
``POST {url}/audio/transcriptions`` endpoint (vLLM serves Whisper this way on GPUs;
``faster-whisper-server`` does on CPUs) as a 16 kHz mono WAV in a multipart form, with:

* ``prompt``: the home's phrases (device and room names), as the local model is biased;
* ``language``: the session's (or the home's) language;
* ``response_format: verbose_json`` when the server has it, for the segments'
  ``avg_logprob`` and ``no_speech_prob`` (plain ``json`` otherwise: text only);
* a timeout per request and a limit on requests in flight (``max_concurrency``: the ASR
  scheduler's workers, so that final transcriptions still go first and batching waits for no
  one).

It has the :class:`~assistant.audio.asr.WhisperTranscriber` methods the server uses. What needs
the model's internals cannot run remotely and is *not* done (docs/asr.md, *Remote ASR*): the
n-best list (one hypothesis comes back; the grammar decoder reads that one), the trimmed
encoder window and with it the full-window second opinion (the server decides its window), the
acoustic repair and grammar-constrained decoding of guessed readings (they score the local
model's decoder over grammar sentences), and the cheap speculative look's own settings (every
look is one request). A failed or timed-out request raises :class:`RemoteAsrError`; the session
reports it as ``asr_failed``.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
import wave
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from assistant.audio.asr import (
    FULL_WINDOW_S,
    Alternative,
    Transcript,
    compression_ratio,
    hotword_prompt,
    prompt_terms,
    whisper_language,
)
from assistant.audio.errors import AudioError

logger = logging.getLogger(__name__)

SAMPLE_RATE: Final = 16_000
#: The start-up check waits no longer than this (a slow or absent server only gets a warning).
WARMUP_TIMEOUT_S: Final = 5.0


class RemoteAsrError(AudioError):
    """The inference server failed, refused, or did not answer in time."""


class RemoteAsrSettings(BaseModel):
    """Where and how to reach the inference server (``asr.remote`` in the home config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Base URL of the OpenAI-compatible API, up to and including ``/v1``.
    url: str = "http://127.0.0.1:8000/v1"
    #: The ``model`` form field (the server's name for its Whisper model).
    model: str = "whisper-1"
    #: Environment variable holding the bearer token (never the token itself in the file).
    api_key_env: str | None = None
    #: Seconds one request may take before the utterance fails with ``asr_failed``.
    timeout_s: float = Field(default=10.0, gt=0.0, le=300.0)
    #: Requests in flight at once from this server (more wait their turn, finals first).
    max_concurrency: int = Field(default=4, ge=1, le=256)
    #: Languages the remote model transcribes (tags); empty: any (a multilingual model).
    languages: tuple[str, ...] = ()
    #: Ask for ``verbose_json`` (segment scores); off for servers that only know ``json``.
    verbose: bool = True


class RemoteTranscriber:
    """OpenAI-compatible transcription endpoint as the server's transcriber."""

    def __init__(
        self, settings: RemoteAsrSettings, language: str = "en", api_key: str | None = None
    ) -> None:
        self.settings = settings
        self.model_name: Final = f"remote:{settings.model}"
        self.workers: Final = settings.max_concurrency
        self.language: Final = whisper_language(language)
        codes = tuple(whisper_language(x) for x in settings.languages)
        self._languages: Final = codes
        self.multilingual: Final = not codes or len(set(codes)) > 1 or codes[0] != "en"
        #: The remote server detects languages itself; the server always names one here.
        self.detect_among: tuple[str, ...] = ()
        self._api_key = api_key
        self._vocabulary: dict[str, tuple[str, ...]] = {}
        self._sem = threading.BoundedSemaphore(settings.max_concurrency)
        self._verbose = settings.verbose
        self._endpoint = settings.url.rstrip("/") + "/audio/transcriptions"

    # -- what the server asks of a transcriber --------------------------------------------

    def supports_language(self, language: str) -> bool:
        return not self._languages or whisper_language(language) in self._languages

    def set_vocabulary(self, language: str, words: Sequence[str]) -> None:
        self._vocabulary[whisper_language(language)] = tuple(prompt_terms(words))

    def resolve_language(self, language: str | None) -> str | None:
        from assistant.audio.asr import LanguageUnsupportedError

        if language is None:
            return self.language
        code = whisper_language(language)
        if not self.supports_language(code):
            raise LanguageUnsupportedError(
                f"the remote model {self.settings.model} is configured for "
                f"{', '.join(self.settings.languages)}, not {language!r}"
            )
        return code

    def transcribe(
        self,
        audio: Any,
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
        language: str | None = None,
        **_local_only: Any,
    ) -> Transcript:
        """One request. Keyword arguments that steer the local model (``beam_size``,
        ``window_min_s``, ``retry_cut_off``, ``fallback_full_window``) have no remote
        counterpart and are ignored."""
        code = language or self.language
        words = self._vocabulary.get(code) or tuple(hotwords)
        return self._request(audio, hotword_prompt(words, prompt), code)

    def transcribe_full(self, audio: Any, **kw: Any) -> Transcript:
        return self.transcribe(audio, **kw)

    def transcribe_partial(self, audio: Any, **kw: Any) -> Transcript:
        return self.transcribe(audio, **kw)

    def transcribe_batch(self, audios: Sequence[Any], **kw: Any) -> list[Transcript]:
        return [self.transcribe(a, **kw) for a in audios]

    def warmup(self, *_looks: Any) -> None:
        """One request on half a second of silence: says at start-up whether the server
        answers (a warning, not a failure: it may come up after Hearth)."""
        try:
            self._request(
                np.zeros(SAMPLE_RATE // 2, dtype=np.float32),
                None,
                self.language,
                timeout_s=min(self.settings.timeout_s, WARMUP_TIMEOUT_S),
            )
        except RemoteAsrError as e:
            logger.warning("remote ASR at %s does not answer yet: %s", self._endpoint, e)

    # -- the request ----------------------------------------------------------------------

    def _request(
        self, audio: Any, prompt: str | None, language: str, *, timeout_s: float | None = None
    ) -> Transcript:
        pcm = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        fields = {"model": self.settings.model, "language": language, "temperature": "0"}
        if prompt:
            fields["prompt"] = prompt
        fields["response_format"] = "verbose_json" if self._verbose else "json"
        body, ctype = _multipart(fields, "audio.wav", _wav(pcm))
        headers = {"Content-Type": ctype, "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self._endpoint, data=body, headers=headers, method="POST")
        t0 = time.perf_counter()
        with self._sem:
            try:
                with urllib.request.urlopen(
                    req, timeout=timeout_s or self.settings.timeout_s
                ) as resp:
                    data = json.loads(resp.read())
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code in (400, 422) and self._verbose and "format" in detail.lower():
                    logger.warning("remote ASR has no verbose_json; asking for json from now on")
                    self._verbose = False
                    return self._request(audio, prompt, language)
                raise RemoteAsrError(f"remote ASR HTTP {e.code}: {detail}") from None
            except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
                raise RemoteAsrError(f"remote ASR request failed: {e}") from None
        elapsed = time.perf_counter() - t0
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise RemoteAsrError(f"remote ASR answered without a text: {str(data)[:200]}")
        text = data["text"].strip()
        segments = [s for s in data.get("segments") or () if isinstance(s, dict)]
        logprob = _mean(segments, "avg_logprob", 0.0)
        nsp = _mean(segments, "no_speech_prob", 0.0)
        return Transcript(
            text=text,
            language=str(data.get("language") or language),
            avg_logprob=logprob,
            no_speech_prob=nsp,
            compression_ratio=compression_ratio(text),
            duration_s=len(pcm) / SAMPLE_RATE,
            elapsed_s=elapsed,
            # The server picks its own window; there is no trimmed window to retry on.
            window_s=FULL_WINDOW_S,
            alternatives=(Alternative(text, logprob),) if text else (),
        )


def _mean(segments: list[dict[str, Any]], key: str, default: float) -> float:
    vals = [float(s[key]) for s in segments if isinstance(s.get(key), int | float)]
    return sum(vals) / len(vals) if vals else default


def _wav(pcm: Any) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((pcm * 32767.0).astype("<i2").tobytes())
    return buf.getvalue()


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for k, v in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
