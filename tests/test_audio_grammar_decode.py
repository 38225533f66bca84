"""Grammar-constrained decoding with the bundled Whisper model: the torch decoder read from the
CTranslate2 weights, the constrained beam search over a custom grammar, and the acoustic
repair's rescue built on it (real models, synthesized speech)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.acoustic_repair import AcousticRepair
from assistant.audio.asr import WhisperTranscriber, default_model_path
from assistant.audio.grammar_decode import GrammarDecoder
from assistant.audio.sentence_score import SentenceScorer
from assistant.audio.whisper_decoder import (
    UnsupportedModel,
    WhisperTextDecoder,
    read_ct2_variables,
)
from devices.registry import load_demo_config
from intents.decode import HypothesisDecoder
from intents.recognizer import Recognizer
from tests.speech import mix_noise, synth, to_float, white_noise, with_silence

COFFEE = Path(__file__).resolve().parents[1] / "intents" / "data" / "examples" / (
    "picovoice_coffee.yaml")
SAID = "give me a large latte with almond milk"
ORDER = {"size": "large", "coffee_drink": "latte", "milk_amount": "almond milk"}


@pytest.fixture(scope="module")
def text_decoder() -> WhisperTextDecoder:
    return WhisperTextDecoder.load(default_model_path())


@pytest.fixture(scope="module")
def scorer(whisper_transcriber: WhisperTranscriber) -> SentenceScorer:
    return SentenceScorer.from_transcriber(whisper_transcriber)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(load_demo_config(), custom_intent_files=[COFFEE])


@pytest.fixture(scope="module")
def repair(recognizer: Recognizer, scorer: SentenceScorer,
           text_decoder: WhisperTextDecoder) -> AcousticRepair:
    r = AcousticRepair(recognizer, scorer, max_snr_db=None, rescue=4.0)
    r.decoders = r.grammar_decoders(scorer, text_decoder)
    return r


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return to_float(with_silence(synth(SAID), 300, 300))


def test_torch_decoder_agrees_with_ctranslate2(
        scorer: SentenceScorer, text_decoder: WhisperTextDecoder, audio: np.ndarray) -> None:
    sentences = ["Give me a large latte with almond milk.", "Give me a small mocha."]
    enc = scorer.encode(audio)
    toks = [scorer.tokens(s) for s in sentences]
    batched = text_decoder.score(enc, scorer._start, toks, scorer.eot)
    # Step by step with the cache gives the same sums as the teacher-forced batch.
    for seq, total in zip(toks, batched, strict=True):
        state = text_decoder.start(enc)
        lp = text_decoder.step(state, [scorer._start])
        s = 0.0
        for t in seq:
            s += float(lp[0, t])
            lp = text_decoder.step(state, [[t]])
        s += float(lp[0, scorer.eot])
        # The steps' int8 projection against the exact float32 one of ``score``.
        assert s == pytest.approx(total, abs=0.3)
    # CTranslate2 runs the same weights in int8: the scores agree to a couple of nats, and
    # both rank the said sentence first by far.
    ct2 = scorer.score(audio, sentences, encoded=enc).log_probs
    assert batched[0] == pytest.approx(ct2[0], abs=2.0)
    assert batched[0] > batched[1] + 5.0 and ct2[0] > ct2[1] + 5.0
    # Re-ordering beams moves their caches: row 1 continues row 0 and the other way round.
    state = text_decoder.start(enc)
    two = text_decoder.step(state, [scorer._start, scorer._start])
    a, b = toks[0][0], toks[1][0]
    swapped = text_decoder.step(state, [[b], [a]], parents=[1, 0])
    one = text_decoder.start(enc)
    text_decoder.step(one, [scorer._start])
    alone = text_decoder.step(one, [[a]])
    assert float(two[0, a]) == pytest.approx(float(two[1, a]), abs=1e-5)
    assert np.allclose(swapped[1].numpy(), alone[0].numpy(), atol=1e-4)


def test_shared_prefixes_score_as_if_alone(
        scorer: SentenceScorer, text_decoder: WhisperTextDecoder, audio: np.ndarray) -> None:
    # Candidates that share prefixes, one a prefix of another, one twice, one empty: scored
    # together over their prefix tree, each gets what it gets scored alone.
    sentences = ["Give me a large latte with almond milk.", "Give me a large latte.",
                 "Give me a large mocha with almond milk.", "Give me a small latte.",
                 "Give me a large latte.", "Brew an americano."]
    enc = scorer.encode(audio)
    toks = [scorer.tokens(s) for s in sentences]
    toks.append(toks[1][:3])  # a bare prefix of the others
    toks.append([])
    together = text_decoder.score(enc, scorer._start, toks, scorer.eot)
    alone = [text_decoder.score(enc, scorer._start, [t], scorer.eot)[0] for t in toks]
    assert together == pytest.approx(alone, abs=1e-3)
    assert together[1] == together[4]
    assert max(together) == together[0]  # what was said


def test_reader_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"\x01\x00\x00\x00" + b"\x00" * 16)
    with pytest.raises(UnsupportedModel, match="version 1"):
        read_ct2_variables(bogus)
    variables = read_ct2_variables(default_model_path() / "model.bin")
    assert variables["decoder/embeddings/weight"].shape[1] == 384
    assert "decoder/projection/weight" in variables  # the alias is resolved


def test_constrained_search_finds_the_order_and_only_grammar_sentences(
        repair: AcousticRepair, recognizer: Recognizer, scorer: SentenceScorer,
        audio: np.ndarray) -> None:
    decoder = repair.decoders[0]
    res = decoder.decode(audio)
    assert res.sentences and res.sentences[0].text == SAID
    assert res.ms > 0 and 8 <= res.steps <= 48
    for d in res.sentences:  # every result is a sentence of the grammar
        intent = recognizer.recognize(d.text).intent
        assert intent is not None and intent.source == "custom"
        assert d.score == pytest.approx(d.log_prob + d.tokens)
    assert [d.score for d in res.sentences] == sorted(
        (d.score for d in res.sentences), reverse=True)
    # Loud white noise (0 dB): still a valid order of the grammar, with the said drink.
    noisy = to_float(mix_noise(with_silence(synth(SAID), 300, 300),
                               white_noise(len(audio), level=0.1), 0.0))
    top = decoder.decode(noisy).sentences[0]
    intent = recognizer.recognize(top.text).intent
    assert intent is not None and intent.slots.custom["coffee_drink"] == "latte"
    # Without the torch decoder, CTranslate2 alone finds the same sentence (slower).
    forced = GrammarDecoder(repair.automata[0], scorer, None, beam=4, results=2)
    assert forced.decode(audio).sentences[0].text == SAID


def test_rescue_acts_on_an_order_whisper_garbled_but_not_on_chatter(
        repair: AcousticRepair, recognizer: Recognizer, audio: np.ndarray) -> None:
    decoder = HypothesisDecoder(recognizer)
    garbled = ["Give me the large lot of with all my mill."]
    nothing = decoder.decode(garbled)
    assert nothing.intent is None and repair.engages(nothing)
    out = repair.repair(audio, garbled, nothing)
    assert out.recognition.intent is not None
    assert out.recognition.intent.slots.custom == ORDER
    assert "rescored by the audio" in out.recognition.reason
    # Chatter: the best grammar sentence is far less likely than what Whisper wrote.
    said = "what a lovely day it is today"
    chatter = to_float(with_silence(synth(said), 300, 300))
    hyps = ["What a lovely day it is today."]
    none = decoder.decode(hyps)
    kept = repair.repair(chatter, hyps, none)
    assert kept.recognition.intent is None and kept.choice is not None
    # Whisper heard none of the order's values (what it writes on noise alone): the grammar
    # sentence outscores "Oh, yeah." by far, but nothing of it was heard, so no rescue.
    noise_like = ["Oh, yeah."]
    assert repair.heard_some(out.recognition.intent, garbled)
    assert not repair.heard_some(out.recognition.intent, noise_like)
    refused = repair.repair(audio, noise_like, decoder.decode(noise_like))
    assert refused.recognition.intent is None and refused.choice is not None
    # Without a rescue distance, nothing decoded stays nothing.
    plain = AcousticRepair(recognizer, repair._scorer, max_snr_db=None)
    assert not plain.engages(nothing)
    assert plain.repair(audio, garbled, nothing).recognition is nothing


def test_a_rescued_sensitive_action_stays_below_the_sensitive_threshold(
        tmp_path: Path, scorer: SentenceScorer, text_decoder: WhisperTextDecoder) -> None:
    vault = tmp_path / "vault.yaml"
    vault.write_text(
        "language: en\n"
        "intents:\n"
        "  openVault:\n"
        "    data:\n"
        "      - sentences: ['open the {door}']\n"
        "lists:\n"
        "  door:\n"
        "    values: [vault, garden gate]\n"
        "actions:\n"
        "  openVault:\n"
        "    topic: home/vault/set\n"
        "    payload: open\n"
        "    sensitive: true\n", encoding="utf-8")
    recognizer = Recognizer(load_demo_config(), custom_intent_files=[vault])
    repair = AcousticRepair(recognizer, scorer, max_snr_db=None, rescue=8.0)
    repair.decoders = repair.grammar_decoders(scorer, text_decoder)
    audio = to_float(with_silence(synth("open the garden gate"), 300, 300))
    garbled = ["Oh, pen the garten kate."]
    nothing = HypothesisDecoder(recognizer).decode(garbled)
    assert nothing.intent is None
    out = repair.repair(audio, garbled, nothing).recognition
    assert out.intent is not None and out.intent.slots.custom == {"door": "garden gate"}
    cap = recognizer.config.security.sensitive_min_confidence
    assert out.guessed and out.intent.confidence < cap


def test_server_wiring_builds_the_decoders_on_the_transcriber(
        recognizer: Recognizer, whisper_transcriber: WhisperTranscriber) -> None:
    wired = AcousticRepair.for_transcriber(recognizer, whisper_transcriber, rescue=8.0)
    assert wired is not None and len(wired.decoders) == 1 and wired.rescue == 8.0
    assert wired._scorer is not None and wired._scorer.method == "torch"
    plain = AcousticRepair.for_transcriber(recognizer, whisper_transcriber,
                                           grammar_decode=False)
    assert plain is not None and plain.decoders == ()
    assert plain._scorer is not None and plain._scorer.method == "logits"


def test_the_server_loads_the_repair_after_start_up(hearth_server: Any) -> None:
    """The repair is built in the background after the server is ready; the demo home has no
    custom intents, so ``home_grammar_decode: auto`` searches the home's own grammar."""
    import asyncio

    hearth = hearth_server.hearth
    asyncio.run_coroutine_threadsafe(hearth.acoustic_repair_ready(), hearth_server.loop).result(
        timeout=120)
    repair = hearth._resources.acoustic_repair
    assert hearth.settings.asr.home_grammar_decode == "auto"
    assert repair is not None and repair.home and len(repair.decoders) == 1
    assert repair.rescue is not None


def test_auto_searches_the_home_grammar_only_without_custom_intents(
        recognizer: Recognizer, whisper_transcriber: WhisperTranscriber) -> None:
    from assistant.config import AsrConfig

    # Beside custom intents (coffee orders became home commands, docs/benchmarks.md): off.
    beside = AcousticRepair.for_settings(recognizer, whisper_transcriber, AsrConfig())
    assert beside is not None and not beside.home and len(beside.decoders) == 1
    forced = AcousticRepair.for_settings(recognizer, whisper_transcriber,
                                         AsrConfig(home_grammar_decode=True))
    assert forced is not None and forced.home and len(forced.decoders) == 2
    bare = Recognizer(load_demo_config())
    off = AcousticRepair.for_settings(bare, whisper_transcriber,
                                      AsrConfig(home_grammar_decode=False))
    assert off is None
    plain = AcousticRepair.for_settings(bare, whisper_transcriber,
                                        AsrConfig(grammar_decode=False))
    assert plain is None  # the home's grammar is searched only by the grammar decoder


@pytest.fixture(scope="module")
def home_repair(scorer: SentenceScorer, text_decoder: WhisperTextDecoder) -> AcousticRepair:
    r = AcousticRepair(Recognizer(load_demo_config()), scorer, max_snr_db=None, rescue=16.0,
                       home=True)
    r.decoders = r.grammar_decoders(scorer, text_decoder)
    return r


def test_home_rescue_finds_the_command_whisper_garbled(home_repair: AcousticRepair) -> None:
    """ "turn off the office light" in noise, written "Park light in the office." (as tiny.en
    heard a real speaker): nothing parses; the home grammar searched against the audio finds
    the command, and the reading is marked as a guess."""
    recognizer = home_repair._recognizer
    pcm = with_silence(synth("turn off the office light"), 300, 300)
    audio = to_float(mix_noise(pcm, white_noise(len(pcm), seed=1), 10.0))
    garbled = ["Park light in the office."]
    nothing = HypothesisDecoder(recognizer).decode(garbled)
    assert nothing.intent is None and home_repair.engages(nothing)
    out = home_repair.repair(audio, garbled, nothing).recognition
    assert out.intent is not None and out.guessed
    assert (out.intent.name, out.intent.slots.device_ids) == ("light_off", ["office_light"])
    assert "rescored by the audio" in out.reason
    # Chatter stays nothing.
    said = "what a lovely day it is today"
    chatter = to_float(with_silence(synth(said), 300, 300))
    hyps = ["What a lovely day it is today."]
    kept = home_repair.repair(chatter, hyps, HypothesisDecoder(recognizer).decode(hyps))
    assert kept.recognition.intent is None


def test_home_rescue_on_a_sensitive_device_stays_below_the_bar(
        home_repair: AcousticRepair) -> None:
    """"unlock" and "lock" differ by a syllable the noise hides: a home command on the front
    door lock that the audio chose is never acted on, in either direction."""
    recognizer = home_repair._recognizer
    for said, heard in (("lock the front door", ["Why the front door?"]),
                        ("unlock the front door", ["And the front door."])):
        pcm = with_silence(synth(said), 300, 300)
        audio = to_float(mix_noise(pcm, white_noise(len(pcm), seed=2), 10.0))
        nothing = HypothesisDecoder(recognizer).decode(heard)
        assert nothing.intent is None
        out = home_repair.repair(audio, heard, nothing).recognition
        # The audio found the command; it is held below the bar all the same.
        assert out.intent is not None and out.intent.slots.device_ids == ["front_door_lock"]
        assert out.intent.confidence < recognizer.config.security.min_confidence


def test_a_home_rescue_reaches_one_device_at_most(home_repair: AcousticRepair) -> None:
    """"turn the lights red" at 10 dB, written "Turn the light spread.": nothing parses, and
    the best home sentence sets every light red. (The question "who wrote Hamlet", heard "The
    robot arm lit.", was rescued the same way on another machine's noise.) A rescue is a
    guess; it may not reach the whole house."""
    recognizer = home_repair._recognizer
    pcm = with_silence(synth("turn the lights red"), 300, 300)
    audio = to_float(mix_noise(pcm, white_noise(len(pcm), seed=2), 10.0))
    heard = ["Turn the light spread."]
    nothing = HypothesisDecoder(recognizer).decode(heard)
    assert nothing.intent is None
    out = home_repair.repair(audio, heard, nothing)
    intent = out.recognition.intent
    assert intent is not None and len(intent.slots.device_ids) > 1  # what the audio chose
    from devices.dispatcher import ASK_BACK_BAND

    # below the bar, and below the band where a guess is asked back ("Did you mean …?")
    assert intent.confidence < recognizer.config.security.min_confidence - ASK_BACK_BAND


def test_a_home_rescue_may_not_leave_out_a_thing_the_home_lacks(
        home_repair: AcousticRepair, scorer: SentenceScorer) -> None:
    heard = ["Turn off the lights in the basement."]
    assert home_repair.names_a_decoy("turn off the lights", heard)  # no basement here
    assert not home_repair.names_a_decoy("turn off the kitchen light",
                                         ["Turn off the kitchen light."])
    assert not home_repair.names_a_decoy("turn on the lounge lamp", ["Turn on the round jump."])
    words = {w for arcs in home_repair.home_automaton.arcs for w, _ in arcs if w}
    assert {"porch", "lounge", "lamp"} <= words
    plain = AcousticRepair(home_repair._recognizer, scorer)
    assert not plain.names_a_decoy("turn off the lights", heard)
