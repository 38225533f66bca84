"""Wake words for always-on streams: microWakeWord models bundled in ``pymicro-wakeword``.

:class:`WakeDetector` scores one 16 kHz stream against one wake word (``okay_nabu``,
``hey_jarvis``, ``alexa``, ``hey_mycroft``): 10 ms feature windows from the TFLite Micro front
end, one model step every 30 ms, the mean of the last few probabilities against a threshold
(:data:`TUNED` where ``hearth bench wake --sweep`` chose a rule, else the model's own cut-off,
unless the caller gives one). Where :data:`INPUT_GAIN` lists the word, the audio is raised
before the features by up to that factor, less when the loudest chunk of the last 3 s would
pass full scale (peaks above it clip; the detector's copy only, never what the ASR hears):
for ``okay_nabu`` it takes the misses at 10 dB kitchen noise from 7 to 4 of 40 and clean from
2 to 0, with no false wake more (docs/benchmarks.md). About 0.45 % of a core per stream.

:class:`WakeGate` puts a detector in front of a session's audio front end (``FrontEndLike``):
audio is dropped until the wake word is heard, then passed on for one command; the gate
closes again when that command's turn ends, or when no speech started within the timeout.
Audio dropped before the wake word never reaches the VAD or the ASR.

The models load lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np

from assistant.audio.endpoint import SpeechStarted, SpeechStopped
from assistant.audio.resample import TARGET_RATE, Resampler

logger = logging.getLogger(__name__)

#: The models ``pymicro-wakeword`` bundles (its ``Model`` enum).
WAKE_WORDS: Final = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
#: After a detection, further detections of the same stream are ignored this long (the
#: model's probability stays high for a few hundred ms while the word ends).
REFRACTORY_S: Final = 1.5
#: Seconds the gate stays open after the wake word for speech to start ("okay nabu" ...
#: pause ... "turn on the light"); then it closes and waits for the wake word again.
DEFAULT_WAKE_TIMEOUT_S: Final = 8.0
#: Per word, the detection rule chosen from ``hearth bench wake --sweep`` (docs/benchmarks.md):
#: (threshold, model steps averaged, consecutive averaged steps above the threshold). Words
#: not listed use the model's own cut-off and sliding window, one step.
TUNED: Final[dict[str, tuple[float, int, int]]] = {"okay_nabu": (0.5, 5, 1)}
#: Per word, the most the detector raises its input (x4 = +12 dB; chosen from the misses at
#: 10 dB with x1-x8, docs/benchmarks.md): the gain is 1 / (the highest chunk RMS of the last
#: :data:`GAIN_HOLD_S`), held between 1 and this. Words not listed are scored as they come.
INPUT_GAIN: Final[dict[str, float]] = {"okay_nabu": 4.0}
GAIN_HOLD_S: Final = 3.0
#: Per word, a second opinion on near misses: openWakeWord's model of the same phrase
#: (``pyopen-wakeword``; another architecture, trained on other data) re-hears the last
#: :data:`VERIFY_S` of audio when the first model's averaged score reached ``maybe`` without
#: passing its rule, and wakes the gate when its own score passes ``threshold``. It runs only
#: on those near misses, so an idle stream pays nothing for it (docs/benchmarks.md).
VERIFY: Final[dict[str, tuple[float, float]]] = {"okay_nabu": (0.15, 0.5)}
VERIFY_S: Final = 2.0
#: Silence (zeros) the second model hears before the audio, for its windows to fill.
VERIFY_LEAD_S: Final = 1.5
#: The near miss is judged this long after the first model's peak (the word's end).
VERIFY_AFTER_MS: Final = 240
#: Audio the gate keeps while asleep, so that a detection placed before the chunk that made
#: it opens the gate at the word's end (the second model's come ~0.3 s after it).
REPLAY_S: Final = 1.0
#: The gate gives the detector audio in pieces of at least this (100 ms at 16 kHz).
_DETECT_BYTES: Final = 3200
_HOLD_BYTES: Final = int(GAIN_HOLD_S * TARGET_RATE * 2)
_BYTES_PER_S: Final = TARGET_RATE * 2


class WakeWordError(ValueError):
    """Unknown wake word, bad threshold, or the wake-word runtime is not installed."""


@dataclass(frozen=True, slots=True)
class WakeModelInfo:
    name: str
    phrase: str
    languages: tuple[str, ...]
    cutoff: float
    #: Model steps the model's own detection averages (``sliding_window_size``).
    window: int
    author: str
    website: str


def _models_dir() -> Path:
    try:
        import pymicro_wakeword
    except ImportError as e:  # pragma: no cover - a default dependency
        raise WakeWordError("wake words need the pymicro-wakeword package") from e
    return Path(pymicro_wakeword.__file__).parent / "models"


@cache
def available() -> dict[str, WakeModelInfo]:
    """The bundled wake words by name, from the models' JSON descriptions."""
    out: dict[str, WakeModelInfo] = {}
    directory = _models_dir()
    for name in WAKE_WORDS:
        path = directory / f"{name}.json"
        if not path.is_file():
            continue
        cfg = json.loads(path.read_text(encoding="utf-8"))
        out[name] = WakeModelInfo(
            name=name,
            phrase=str(cfg.get("wake_word", name.replace("_", " "))),
            languages=tuple(cfg.get("trained_languages", ["en"])),
            cutoff=float(cfg["micro"]["probability_cutoff"]),
            window=int(cfg["micro"].get("sliding_window_size", 5)),
            author=str(cfg.get("author", "")),
            website=str(cfg.get("website", "")),
        )
    return out


def check_word(word: str, threshold: float | None = None) -> WakeModelInfo:
    """The model info of ``word``; raises :class:`WakeWordError` with the choices."""
    models = available()
    if word not in models:
        raise WakeWordError(
            f"unknown wake word {word!r}; available: {', '.join(sorted(models)) or 'none'}"
        )
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise WakeWordError("wake threshold must be between 0 and 1")
    return models[word]


# TFLite's C library is loaded once per process by the first model; creating interpreters
# from several threads at once is not something it promises to support.
_LOAD_LOCK = threading.Lock()


class _Verifier:
    """openWakeWord's model of one word, shared by every stream of the process (a lock:
    one verification at a time). Each takes ~134 ms of CPU (2 s of audio after 1.5 s of
    lead) on the caller's thread, which for the WebSocket gate is the event loop: it runs
    only on near misses (~16 an hour per listening stream), and moving it to a worker
    thread is still to do (docs/benchmarks.md)."""

    _all: ClassVar[dict[str, _Verifier]] = {}
    _made: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, word: str) -> None:
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        with _LOAD_LOCK:
            self._model = OpenWakeWord.from_builtin(Model(word))
            self._features = OpenWakeWordFeatures.from_builtin()
        self._lock = threading.Lock()

    @classmethod
    def get(cls, word: str) -> _Verifier | None:
        with cls._made:
            if word not in cls._all:
                try:
                    cls._all[word] = cls(word)
                except (ImportError, ValueError, OSError):
                    logger.warning("wake word %s: no second model (pyopen-wakeword)", word)
                    return None
            return cls._all[word]

    def score(self, pcm: bytes) -> float:
        """The second model's highest probability over ``pcm`` (16 kHz s16le), heard fresh."""
        lead = bytes(int(VERIFY_LEAD_S * TARGET_RATE) * 2)
        audio = lead + pcm
        best = 0.0
        with self._lock:
            self._model.reset()
            self._features.reset()
            self._features.new_audio_samples = 0  # no 8 s of zeros first: the lead does that
            step = 2560  # 80 ms, the model's chunk
            for i in range(0, len(audio) - len(audio) % 2, step):
                for emb in self._features.process_streaming(audio[i : i + step]):
                    for prob in self._model.process_streaming(emb):
                        best = max(best, float(prob))
        return best


@dataclass(frozen=True, slots=True)
class WakeHit:
    word: str
    probability: float
    #: Position in the detector's stream (ms of 16 kHz audio) where the word was detected.
    at_ms: int


class WakeDetector:
    """One stream, one wake word. Feed 16 kHz PCM s16le with :meth:`process`."""

    def __init__(
        self,
        word: str,
        threshold: float | None = None,
        *,
        window: int | None = None,
        min_steps: int | None = None,
        gain: float | None = None,
    ) -> None:
        info = check_word(word, threshold)
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        with _LOAD_LOCK:
            self._model = MicroWakeWord.from_builtin(Model(word))
            self._features = MicroWakeWordFeatures()
        self.word = word
        self.phrase = info.phrase
        tuned = TUNED.get(word)
        cutoff, self.window, self.min_steps = tuned or (info.cutoff, info.window, 1)
        self.threshold = cutoff if threshold is None else threshold
        if window is not None:
            self.window = window
        if min_steps is not None:
            self.min_steps = min_steps
        if self.window < 1 or self.min_steps < 1:
            raise WakeWordError("wake window and steps must be at least 1")
        #: The most the input is raised (1: scored as it comes); see :data:`INPUT_GAIN`.
        self.gain = INPUT_GAIN.get(word, 1.0) if gain is None else gain
        if self.gain < 1.0:
            raise WakeWordError("wake input gain must be at least 1")
        self._levels: deque[tuple[int, float]] = deque()  # (stream end in bytes, RMS)
        verify = VERIFY.get(word) if threshold is None else None
        #: (first model's score that asks for a second opinion, the second model's threshold)
        self.verify = verify
        self._verifier: _Verifier | None = None
        self._raw = bytearray()  # the last VERIFY_S of audio as it came, for the verifier
        self._maybe: tuple[int, float] | None = None  # (ms, score) of a near miss's peak
        #: Near misses re-heard by the second model, and how many it woke (benchmarks).
        self.verified = 0
        self.verified_woke = 0
        # The model averages its last few probabilities itself; take them one by one so the
        # window (and the benchmark's sweep over it) is the detector's own.
        self._model.sliding_window_size = 1
        self._model._probabilities = deque(maxlen=1)
        self._recent: deque[float] = deque(maxlen=self.window)
        self._above = 0
        self._bytes = 0
        self._quiet_until_ms = -1
        #: Highest probability seen since the last detection (benchmarks, meters).
        self.peak = 0.0

    @property
    def position_ms(self) -> int:
        return self._bytes * 1000 // _BYTES_PER_S

    def process(self, pcm: bytes) -> list[WakeHit]:
        """Score ``pcm`` (whole 16-bit samples). Returns the detections it held (at most one
        per :data:`REFRACTORY_S`)."""
        hits: list[WakeHit] = []
        if self.verify is not None:
            self._raw += pcm
            del self._raw[: max(0, len(self._raw) - int(VERIFY_S * _BYTES_PER_S))]
        for at_ms, raw in self.scores(pcm):
            self._recent.append(raw)
            if len(self._recent) < self.window:
                continue
            prob = sum(self._recent) / self.window
            self.peak = max(self.peak, prob)
            self._above = self._above + 1 if prob > self.threshold else 0
            if self._above >= self.min_steps and at_ms >= self._quiet_until_ms:
                hits.append(WakeHit(self.word, float(prob), at_ms))
                self._quiet_until_ms = at_ms + int(REFRACTORY_S * 1000)
                self.peak = 0.0
                self._maybe = None
            elif self.verify is not None and at_ms >= self._quiet_until_ms:
                hit = self._near_miss(at_ms, prob)
                if hit is not None:
                    hits.append(hit)
        return hits

    def _near_miss(self, at_ms: int, prob: float) -> WakeHit | None:
        """Follow a score that came within reach (``verify[0]``) without passing the rule;
        :data:`VERIFY_AFTER_MS` after its peak, ask the second model about the audio."""
        assert self.verify is not None
        maybe, second = self.verify
        if prob >= maybe and (self._maybe is None or prob > self._maybe[1]):
            self._maybe = (at_ms, prob)
        if self._maybe is None or at_ms - self._maybe[0] < VERIFY_AFTER_MS:
            return None
        peak_ms = self._maybe[0]
        self._maybe = None
        if self._verifier is None:
            self._verifier = _Verifier.get(self.word)
            if self._verifier is None:
                self.verify = None
                return None
        self.verified += 1
        # the audio up to now, at most VERIFY_S: the word ended near the peak
        p = self._verifier.score(bytes(self._raw))
        if p <= second:
            return None
        self.verified_woke += 1
        self._quiet_until_ms = at_ms + int(REFRACTORY_S * 1000)
        self.peak = 0.0
        return WakeHit(self.word, p, peak_ms)

    def scores(self, pcm: bytes) -> list[tuple[int, float]]:
        """The model's raw probability for each step ``pcm`` completes, with the step's
        position (ms); no averaging, no threshold (:meth:`process` applies those)."""
        out: list[tuple[int, float]] = []
        consumed = self._bytes
        self._bytes += len(pcm)
        if self.gain > 1.0:
            pcm = self._raise(pcm)
        for window in self._features.process_streaming(pcm):
            # Each feature window is 10 ms of audio; position the step at its window's end.
            consumed += _BYTES_PER_S // 100
            before = len(self._model._features)
            prob = self._model.process_streaming_prob(window)
            if prob is None or before + 1 < self._model.stride:
                continue  # no model step yet (it runs every ``stride`` windows)
            out.append((consumed * 1000 // _BYTES_PER_S, float(prob)))
        return out

    def _raise(self, pcm: bytes) -> bytes:
        """``pcm`` raised by the gain its level allows: 1 / the loudest chunk (RMS) of the last
        :data:`GAIN_HOLD_S`, between 1 and :attr:`gain`. One gain per chunk (the gate's are 20
        ms or so): a few numpy calls, whatever its length."""
        if not pcm:
            return pcm
        x = np.frombuffer(pcm, "<i2").astype(np.float32)
        level = float(np.sqrt(np.dot(x, x) / x.size)) / 32768.0
        end = self._bytes
        # A running maximum: levels kept in decreasing order, each with its chunk's end.
        while self._levels and self._levels[-1][1] <= level:
            self._levels.pop()
        self._levels.append((end, level))
        while self._levels[0][0] <= end - _HOLD_BYTES:
            self._levels.popleft()
        gain = min(self.gain, max(1.0, 1.0 / max(self._levels[0][1], 1e-9)))
        if gain == 1.0:
            return pcm
        return bytes(np.clip(x * gain, -32768, 32767).astype("<i2").tobytes())

    def reset(self) -> None:
        """Forget the audio so far (the model's streaming state included)."""
        self._model.reset()
        self._features.reset()
        self._model.sliding_window_size = 1
        self._model._probabilities = deque(maxlen=1)
        self._recent.clear()
        self._above = 0
        self._levels.clear()
        self._raw.clear()
        self._maybe = None
        self.peak = 0.0


# -- the gate in front of a session's audio front end ---------------------------------------


@dataclass(frozen=True, slots=True)
class WakeDetected:
    """A front-end event: the wake word was heard. ``audio_ms``: its position in the stream
    at the client's rate (ms since the gate was created)."""

    word: str
    probability: float
    audio_ms: int
    t: float


@dataclass(frozen=True, slots=True)
class WakeTimeout:
    """A front-end event: the wake word was heard but no speech followed in time."""

    word: str
    t: float


class WakeGate:
    """A ``FrontEndLike`` that passes audio to ``inner`` only after the wake word.

    Asleep, audio goes to the detector only (resampled to 16 kHz when needed) and is
    dropped. On a detection the gate opens: the rest of that chunk and the audio after it
    go to ``inner``, so a command in the same breath is heard. It closes again when
    ``inner`` ends a turn, or when speech has not started ``timeout_s`` after the wake word.
    """

    def __init__(
        self,
        inner: Any,
        word: str,
        *,
        rate: int = TARGET_RATE,
        threshold: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self._inner = inner
        self._detector = WakeDetector(word, threshold)
        self._resampler = None if rate == TARGET_RATE else Resampler(rate)
        self._rate = rate
        self._timeout_s = DEFAULT_WAKE_TIMEOUT_S if timeout_s is None else timeout_s
        #: Input samples left for speech to start after the wake word; None: asleep. Counted
        #: in audio, not wall time, so a stream sent faster than real time behaves the same.
        self._awake_left: int | None = None
        self._in_turn = False
        self._in_samples = 0
        self._fed = 0  # input samples passed to the inner front end
        #: The last :data:`REPLAY_S` of input while asleep: a detection placed before the
        #: chunk that made it (the second model's, after the word) opens the gate there.
        self._replay = bytearray()
        self._unheard = bytearray()  # 16 kHz audio not yet given to the detector

    @property
    def awake(self) -> bool:
        return self._awake_left is not None or self._in_turn

    @property
    def inner(self) -> Any:
        return self._inner

    def feed(self, pcm: bytes, now: float) -> Sequence[Any]:
        self._in_samples += len(pcm) // 2
        if not self.awake:
            self._replay += pcm
            del self._replay[: max(0, len(self._replay) - int(REPLAY_S * self._rate) * 2)]
            self._unheard += self._to_16k(pcm)
            if len(self._unheard) < _DETECT_BYTES:
                return []
            # The detector hears 100 ms at a time: a quarter less CPU per stream than 20 ms
            # frames one by one (the model's state stays in cache), for ≤ 80 ms of delay.
            audio, self._unheard = bytes(self._unheard), bytearray()
            hits = self._detector.process(audio)
            if not hits:
                return []
            hit = hits[0]
            # Cut the audio at the detection: what follows is the command's start. The
            # detector's clock counts only the audio it heard (not while the gate was open):
            # place the hit by how far it lies behind the end of the audio so far.
            back = (self._detector.position_ms - hit.at_ms) * self._rate // 1000
            kept = len(self._replay) // 2
            offset = max(0, min(kept, kept - back)) * 2
            self._awake_left = int(self._timeout_s * self._rate)
            event = WakeDetected(
                hit.word, hit.probability, self._in_samples * 1000 // self._rate, now
            )
            rest = bytes(self._replay[offset:])
            self._replay.clear()
            return [event, *self._pass(rest, now)] if rest else [event]
        return self._pass(pcm, now)

    def _to_16k(self, pcm: bytes) -> bytes:
        if self._resampler is None:
            return pcm
        x = self._resampler.process(pcm)
        import numpy as np

        return bytes((np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())

    def _pass(self, pcm: bytes, now: float) -> list[Any]:
        # The inner front end counts only the audio it was given: its positions are shifted
        # by the audio dropped before, so events stay on the session's stream timeline.
        shift = (self._in_samples - len(pcm) // 2 - self._fed) * 1000 // self._rate
        self._fed += len(pcm) // 2
        events = [_shifted(ev, shift) for ev in self._inner.feed(pcm, now)]
        if self._awake_left is not None:
            self._awake_left -= len(pcm) // 2
        return self._watch(events, now)

    def _watch(self, events: list[Any], now: float) -> list[Any]:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._in_turn, self._awake_left = True, None
            elif isinstance(ev, SpeechStopped):
                self._sleep()
        if self._awake_left is not None and not self._in_turn and self._awake_left <= 0:
            self._sleep()
            self._inner.clear()
            events.append(WakeTimeout(self._detector.word, now))
        return events

    def _sleep(self) -> None:
        self._in_turn = False
        self._awake_left = None

    def _shift(self) -> int:
        return (self._in_samples - self._fed) * 1000 // self._rate

    def commit(self, now: float) -> Sequence[Any]:
        shift = self._shift()
        return self._watch([_shifted(e, shift) for e in self._inner.commit(now)], now)

    def set_complete(self, complete: bool, now: float | None = None) -> Sequence[Any]:
        t = 0.0 if now is None else now
        shift = self._shift()
        events = [_shifted(e, shift) for e in self._inner.set_complete(complete, now)]
        return self._watch(events, t)

    def clear(self) -> None:
        self._inner.clear()
        self._sleep()


def _shifted(event: Any, shift_ms: int) -> Any:
    """``event`` with its ``audio_start_ms`` / ``audio_end_ms`` moved by ``shift_ms``."""
    if not shift_ms:
        return event
    changes = {
        name: getattr(event, name) + shift_ms
        for name in ("audio_start_ms", "audio_end_ms")
        if hasattr(event, name)
    }
    return dataclasses.replace(event, **changes) if changes else event
