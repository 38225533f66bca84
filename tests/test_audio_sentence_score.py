"""Forced-decoding sentence scores with the bundled Whisper model, and the acoustic repair of
guessed custom-intent readings built on them (real models, synthesized speech)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.acoustic_repair import (
    MAX_SNR_DB,
    AcousticRepair,
    decode_then_repair,
    estimated_snr_db,
)
from assistant.audio.asr import WhisperTranscriber
from assistant.audio.sentence_score import SentenceScorer
from devices.registry import load_demo_config
from intents.decode import HypothesisDecoder
from intents.recognizer import Recognizer
from tests.speech import mix_noise, synth, to_float, white_noise, with_silence

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / (
    "picovoice_coffee.yaml")
SAID = "give me a large latte with almond milk"


@pytest.fixture(scope="module")
def scorer(whisper_transcriber: WhisperTranscriber) -> SentenceScorer:
    return SentenceScorer.from_transcriber(whisper_transcriber)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return to_float(with_silence(synth(SAID), 300, 300))


def test_the_said_sentence_scores_best(scorer: SentenceScorer, audio: np.ndarray) -> None:
    sentences = [
        "Give me a large latte with almond milk.",
        "Give me a large latte with soy milk.",
        "Give me a small latte with almond milk.",
        "Give me a large mocha with almond milk.",
        # A prefix of what was said: the final full stop scores where the sentence ends.
        "Give me a large latte.",
    ]
    res = scorer.score(audio, sentences)
    assert res.sentences == tuple(sentences) and len(res.log_probs) == 5
    assert res.best() == 0
    assert all(lp < 0.0 for lp in res.log_probs)
    assert all(res.log_probs[0] > lp + 1.0 for lp in res.log_probs[1:])
    # The encoder output may be reused: same scores.
    again = scorer.score(audio, sentences[:2], encoded=scorer.encode(audio))
    assert again.log_probs == pytest.approx(res.log_probs[:2], abs=1e-3)
    assert scorer.score(audio, []).log_probs == ()


def test_repair_replaces_a_guessed_slot_value_by_the_one_heard(
        scorer: SentenceScorer, audio: np.ndarray) -> None:
    recognizer = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    decoder = HypothesisDecoder(recognizer)
    repair = AcousticRepair(recognizer, scorer, max_snr_db=None)
    assert AcousticRepair.for_transcriber(Recognizer(load_demo_config()), object()) is None
    # Whisper misheard the milk; the text decode repairs it to a valid but wrong order.
    hyps = ["Give me a large latte with a lot of mill."]
    guessed = decoder.decode(hyps)
    assert guessed.intent is not None and guessed.guessed
    assert guessed.intent.slots.custom["milk_amount"] != "almond milk"
    out = repair.repair(audio, hyps, guessed)
    assert out.choice is not None and out.choice.switched
    assert out.recognition.intent is not None and out.recognition.guessed
    assert out.recognition.intent.slots.custom == {
        "size": "large", "coffee_drink": "latte", "milk_amount": "almond milk"}
    assert "rescored by the audio" in out.recognition.reason
    assert out.recognition.intent.confidence <= guessed.intent.confidence
    # ... and measured: the audio prefers each of its values to every other of the list
    margin = out.recognition.audio_margin
    assert margin is not None and margin > 0, out.recognition
    # the text decode's own reading, kept by a margin it cannot meet, is measured too: the
    # audio prefers almond milk to the value it holds
    stubborn = AcousticRepair(recognizer, scorer, max_snr_db=None, margin=1e6)
    kept_wrong = stubborn.repair(audio, hyps, guessed).recognition
    assert kept_wrong.intent == guessed.intent
    assert kept_wrong.audio_margin is not None and kept_wrong.audio_margin < 0
    # The session's wiring: decode, then repair a guessed reading.
    wired = decode_then_repair(partial(decoder.decode, hyps), repair, audio, hyps)
    assert wired.intent is not None
    assert wired.intent.slots.custom["milk_amount"] == "almond milk"
    assert decode_then_repair(partial(decoder.decode, hyps), None, audio, hyps) == guessed
    # A reading parsed as heard is never second-guessed (clean speech costs nothing).
    heard = decoder.decode(["Give me a large latte with soy milk."])
    assert heard.intent is not None and not heard.guessed
    kept = repair.repair(audio, ["Give me a large latte with soy milk."], heard)
    assert kept.choice is None and kept.recognition is heard
    # Nothing decoded and no rescue: nothing to do.
    none = decoder.decode(["what a lovely day"])
    assert repair.repair(audio, ["what a lovely day"], none).recognition is none


def test_repair_runs_only_on_noisy_utterances(scorer: SentenceScorer, audio: np.ndarray) -> None:
    recognizer = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    decoder = HypothesisDecoder(recognizer)
    hyps = ["Give me a large latte with a lot of mill."]
    guessed = decoder.decode(hyps)
    noisy = to_float(mix_noise(with_silence(synth(SAID), 300, 300),
                               white_noise(len(audio), level=0.1), 6.0))
    assert estimated_snr_db(audio) > MAX_SNR_DB > estimated_snr_db(noisy)
    repair = AcousticRepair(recognizer, scorer)  # the default gate
    assert repair.repair(audio, hyps, guessed).choice is None  # clean: not rescored
    assert repair.repair(noisy, hyps, guessed).choice is not None


def test_a_value_whisper_wrote_word_for_word_is_not_repaired_away() -> None:
    repair = AcousticRepair(Recognizer(load_demo_config(), custom_intent_files=[COFFEE]), None)
    top = "single shot, light, roast, drip coffee, bed, skim milk, and a lot of sugar."
    # measured at 6 dB through the server: the audio scorer chose "some milk"
    assert repair.contradicts({"milk_amount": "some milk", "sugar_amount": "a lot of sugar"},
                              top) == "milk_amount"
    assert repair.contradicts({"milk_amount": "skim milk"}, top) is None  # as written
    # a value only partly written, or nothing of the list written, is no contradiction
    assert repair.contradicts({"coffee_drink": "drip coffee"}, "a coffee please") is None
    assert repair.contradicts({"milk_amount": "a bit of cream"}, "brown sugar, and a big fan") \
        is None
