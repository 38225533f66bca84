"""BatchingTranscriber: concurrent calls are merged, results and errors reach their callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from assistant.audio.asr import Transcript, WhisperTranscriber
from assistant.audio.batching import BatchingTranscriber
from tests.speech import normalize_text, synth, to_float


def _t(text: str) -> Transcript:
    return Transcript(
        text=text,
        language="en",
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        compression_ratio=1.0,
        duration_s=1.0,
        elapsed_s=0.0,
        window_s=8.0,
    )


class FakeModel:
    """Echoes the clip's first sample as text; slow enough for requests to meet."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls: list[tuple[int, tuple[str, ...]]] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def transcribe_batch(
        self,
        audios: Sequence[np.ndarray],
        *,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> list[Transcript]:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.calls.append((len(audios), tuple(hotwords)))
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        if any(a[0] < 0 for a in audios):
            raise RuntimeError("boom")
        return [_t(f"clip {int(a[0])}") for a in audios]

    def transcribe_partial(
        self, audio: np.ndarray, *, hotwords: Sequence[str] = (), prompt: str | None = None
    ) -> Transcript:
        return _t("partial")

    def warmup(self) -> None:
        pass


def clip(i: int) -> np.ndarray:
    return np.full(16000, float(i), dtype=np.float32)


def test_lone_request_runs_alone() -> None:
    model = FakeModel(delay=0.0)
    b = BatchingTranscriber(model)
    assert b.transcribe(clip(3)).text == "clip 3"
    assert list(b.batch_sizes) == [1]


def test_concurrent_requests_are_batched_and_ordered() -> None:
    model = FakeModel()
    b = BatchingTranscriber(model, max_batch=4)
    with ThreadPoolExecutor(10) as pool:
        got = list(pool.map(lambda i: b.transcribe(clip(i)).text, range(10)))
    assert got == [f"clip {i}" for i in range(10)]
    assert sum(b.batch_sizes) == 10
    assert max(b.batch_sizes) > 1 and max(b.batch_sizes) <= 4
    assert model.max_running == 1  # one model call at a time


def test_batches_keep_vocabularies_apart() -> None:
    model = FakeModel()
    b = BatchingTranscriber(model)

    def call(i: int) -> str:
        return b.transcribe(clip(i), hotwords=["a"] if i % 2 else ["b"]).text

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(call, range(8)))
    assert got == [f"clip {i}" for i in range(8)]
    for _size, hotwords in model.calls:
        assert hotwords in (("a",), ("b",))


def test_errors_reach_every_caller_of_the_batch() -> None:
    b = BatchingTranscriber(FakeModel(delay=0.0))
    with pytest.raises(RuntimeError, match="boom"):
        b.transcribe(clip(-1))
    assert b.transcribe(clip(2)).text == "clip 2"  # still usable


def test_partial_bypasses_the_queue() -> None:
    assert BatchingTranscriber(FakeModel()).transcribe_partial(clip(1)).text == "partial"


@pytest.mark.slow
def test_real_model_under_concurrency(whisper_transcriber: WhisperTranscriber) -> None:
    b = BatchingTranscriber(whisper_transcriber)
    texts = ["turn on the kitchen light", "pause the music", "lock the front door"] * 2
    clips = [to_float(synth(t)) for t in texts]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda c: b.transcribe(c).text, clips))
    for text, want in zip(got, texts, strict=True):
        assert normalize_text(want) in normalize_text(text)
