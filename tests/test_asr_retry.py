"""The transcriber's full-window retries (cut-off text, broken text), ``transcribe_full``, and
the server's ASR defaults, which ``hearth bench accuracy``'s ``server`` variant shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from assistant.audio.asr import (
    FULL_WINDOW_S,
    Alternative,
    AsrSettings,
    Float32Array,
    Transcript,
    WhisperTranscriber,
    looks_cut_off,
    pool_transcripts,
)


def _transcript(
    texts: Sequence[str],
    *,
    window_s: float,
    elapsed_s: float = 0.1,
    truncated: bool = False,
    no_speech: bool = False,
) -> Transcript:
    alts = tuple(Alternative(t, -0.1 * (i + 1)) for i, t in enumerate(texts))
    return Transcript(
        text="" if no_speech else texts[0],
        language="en",
        avg_logprob=alts[0].avg_logprob,
        no_speech_prob=0.9 if no_speech else 0.01,
        compression_ratio=1.0,
        duration_s=1.5,
        elapsed_s=elapsed_s,
        window_s=window_s,
        truncated=truncated,
        no_speech=no_speech,
        alternatives=alts,
    )


class _Scripted(WhisperTranscriber):
    """The retry decisions of :class:`WhisperTranscriber` on scripted model outputs: one
    transcript per window mode, and a log of the model calls."""

    def __init__(self, settings: AsrSettings, trimmed: Transcript, full: Transcript) -> None:
        self.settings = settings
        self._out = {"trimmed": trimmed, "full": full}
        self.calls: list[tuple[str, tuple[str, ...], int]] = []

    def _run_batch(
        self,
        audios: Sequence[Float32Array],
        *,
        hotwords: Sequence[str],
        prompt: str | None,
        window: Any,
        beam_size: int,
        n_best: int,
        partial: bool,
        window_min_s: float | None = None,
        language: str | None = None,
    ) -> list[Transcript]:
        self.calls.append((window, tuple(hotwords), beam_size))
        return [self._out[window] for _ in audios]


AUDIO = np.zeros(24000, np.float32)
CUT = _transcript(["Give me a large,", "Give me a large.", "Give me large,"], window_s=8.0)
FULL = _transcript(["Give me a large latte.", "Give me a large."], window_s=30.0, elapsed_s=0.3)


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("Give me a large,", True),
        ("Turn on the ...", True),
        ("Turn on the… ", True),
        ("Turn on the light.", False),
        ("Turn on the light", False),
        ("", False),
    ],
)
def test_looks_cut_off(text: str, cut: bool) -> None:
    assert looks_cut_off(text) is cut


def test_cut_off_text_is_transcribed_again_on_the_full_window_and_pooled() -> None:
    t = _Scripted(AsrSettings(), CUT, FULL)
    r = t.transcribe(AUDIO, hotwords=["latte"])
    assert [c[0] for c in t.calls] == ["trimmed", "full"]
    assert t.calls[1][1:] == (("latte",), 5)  # same hotwords and beam as the first pass
    assert r.text == "Give me a large latte." and r.window_s == FULL_WINDOW_S
    assert r.cut_off and r.fell_back and r.full_window
    # The retry's hypotheses first, then the first pass's, each text once.
    assert [a.text for a in r.alternatives] == [
        "Give me a large latte.",
        "Give me a large.",
        "Give me a large,",
        "Give me large,",
    ]
    assert r.elapsed_s == pytest.approx(0.4)


def test_complete_text_is_not_retried() -> None:
    done = _transcript(["Give me a large latte."], window_s=8.0)
    t = _Scripted(AsrSettings(), done, FULL)
    assert t.transcribe(AUDIO) is done
    assert [c[0] for c in t.calls] == ["trimmed"]


def test_cut_off_retry_can_be_turned_off() -> None:
    t = _Scripted(AsrSettings(retry_cut_off=False), CUT, FULL)
    assert t.transcribe(AUDIO) is CUT
    assert len(t.calls) == 1


def test_silence_is_not_retried() -> None:
    silent = _transcript(["I'm a fire,"], window_s=8.0, no_speech=True)
    t = _Scripted(AsrSettings(), silent, FULL)
    assert t.transcribe(AUDIO) is silent


def test_broken_text_is_replaced_not_pooled() -> None:
    loop = _transcript(["Turn on, turn on, turn on,"], window_s=8.0, truncated=True)
    t = _Scripted(AsrSettings(), loop, FULL)
    r = t.transcribe(AUDIO)
    assert r.fell_back and not r.cut_off
    assert [a.text for a in r.alternatives] == [a.text for a in FULL.alternatives]
    assert len(t.calls) == 2


def test_first_look_without_fallback_keeps_a_broken_text() -> None:
    """The speculative first look (``fallback_full_window=False``) never pays a 30 s pass:
    a loop there simply does not parse, and the final settings take over."""
    loop = _transcript(["Turn on, turn on, turn on,"], window_s=8.0, truncated=True)
    t = _Scripted(AsrSettings(), loop, FULL)
    r = t.transcribe(AUDIO, beam_size=1, window_min_s=6.0, fallback_full_window=False,
                     retry_cut_off=False)
    assert not r.fell_back and r.text == loop.text
    assert [c[0] for c in t.calls] == ["trimmed"]


def test_batch_retries_like_single() -> None:
    t = _Scripted(AsrSettings(), CUT, FULL)
    batch = t.transcribe_batch([AUDIO, AUDIO])
    assert [c[0] for c in t.calls] == ["trimmed", "full", "full"]
    assert all(r.cut_off and r.text == FULL.text for r in batch)


def test_full_window_result_is_never_retried() -> None:
    cut_full = _transcript(["Give me a large,"], window_s=30.0)
    t = _Scripted(AsrSettings(window="full"), cut_full, cut_full)
    assert t.transcribe(AUDIO) is cut_full
    assert len(t.calls) == 1


def test_transcribe_full_uses_the_full_window_with_the_final_beam() -> None:
    t = _Scripted(AsrSettings(), CUT, FULL)
    assert t.transcribe_full(AUDIO, hotwords=["latte"]) is FULL
    assert t.calls == [("full", ("latte",), 5)]


def test_pool_transcripts_keeps_the_retry_reading() -> None:
    r = pool_transcripts(FULL, CUT)
    assert r.text == FULL.text and r.avg_logprob == FULL.avg_logprob
    assert r.fell_back and not r.cut_off
    assert len(r.alternatives) == 4 and r.alternatives[:2] == FULL.alternatives


def test_server_defaults_are_the_measured_ones() -> None:
    from assistant.config import AsrConfig

    s = AsrSettings(**AsrConfig().overrides())  # what Hearth builds without an asr: section
    assert (s.beam_size, s.n_best, s.max_prompt_tokens) == (5, 5, 200)
    assert s.retry_cut_off and s.fallback_full_window
    assert AsrSettings(**AsrConfig(beam_size=1).overrides()).n_best == 1
    assert not AsrSettings(**AsrConfig(retry_cut_off=False).overrides()).retry_cut_off


def test_bench_transcribes_as_the_server() -> None:
    from assistant.app import Hearth
    from assistant.bench.accuracy_asr import server_asr_settings, server_variant
    from assistant.config import AssistantSettings
    from devices.registry import load_demo_config
    from intents.recognizer import Recognizer
    from intents.repair import bias_phrases

    server = server_variant(AssistantSettings(), 2)
    assert server.settings == server_asr_settings(2) == AsrSettings(cpu_threads=2)
    assert server.retry_parse and server.n_best == 5  # the session's no-parse retry
    greedy = server_variant(AssistantSettings().with_overrides(**{"asr.beam_size": 1}), 2)
    assert (greedy.settings.beam_size, greedy.n_best) == (1, 1)
    plain = server_variant(AssistantSettings().with_overrides(**{"asr.decode": "plain"}), 2)
    assert not plain.retry_parse
    recognizer = Recognizer(load_demo_config())
    hot = Hearth.asr_hotwords(recognizer)
    assert hot and hot == tuple(bias_phrases(recognizer.vocabulary("en")))


@pytest.mark.slow
def test_transcribe_full_on_the_real_model(whisper_transcriber: WhisperTranscriber) -> None:
    from assistant.app import Hearth
    from assistant.config import AssistantSettings
    from devices.registry import load_demo_config
    from tests.speech import normalize_text, synth, to_float

    audio = to_float(synth("turn on the kitchen light"))
    hearth = Hearth(load_demo_config(), AssistantSettings(audio=False))
    hearth.transcriber = whisper_transcriber
    hearth.hotwords = ("kitchen light",)
    full = hearth.transcribe_full(audio)
    trimmed = whisper_transcriber.transcribe(audio, hotwords=hearth.hotwords)
    assert full.window_s == FULL_WINDOW_S and full.full_window
    assert trimmed.window_s < FULL_WINDOW_S
    assert "kitchen light" in normalize_text(full.text)
    assert 1 <= len(full.alternatives) <= 5 and full.alternatives[0].text == full.text
