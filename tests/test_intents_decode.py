"""Hypothesis decoder: n-best choice, repairs, grammar alignment, confidence and safety.
Pure unit tests on the demo home plus the coffee-maker custom intents (no audio, no models)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

import intents.decode as decode_module
from devices.registry import load_demo_config
from intents.align import GrammarAligner, build_automaton
from intents.decode import (
    FULL_DECODE,
    DecodeOptions,
    Hypothesis,
    HypothesisDecoder,
    combined_confidence,
    decode,
)
from intents.recognizer import Recognizer
from intents.repair import (
    VocabularySnapper,
    collapse_repeats,
    normalize_transcript,
    spell_numbers,
)
from intents.schema import Intent, Recognition

ROOT = Path(__file__).resolve().parents[1]
COFFEE = ROOT / "intents" / "data" / "examples" / "picovoice_coffee.yaml"
#: The demo home's security.sensitive_min_confidence.
SENSITIVE_MIN = 0.9

SAFE_FILE = """
language: en
intents:
  open_safe:
    data:
      - sentences: ["open the {container}"]
  order_tea:
    data:
      - sentences: ["[make me] [a] {cup} [of] {tea}"]
lists:
  container: {values: [safe, strongbox]}
  cup: {values: [{in: "(eight | twelve) ounce", out: small}, {in: "(twenty) ounce", out: big}]}
  tea: {values: [green tea, black tea]}
actions:
  open_safe:
    topic: home/safe/open
    payload: "{container}"
    sensitive: true
  order_tea:
    topic: kitchen/tea
    payload: "{cup} {tea}"
"""


@pytest.fixture(scope="module")
def decoder() -> HypothesisDecoder:
    rec = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    d = HypothesisDecoder(rec)
    d.warmup()
    return d


@pytest.fixture(scope="module")
def safe_decoder(tmp_path_factory: pytest.TempPathFactory) -> HypothesisDecoder:
    path = tmp_path_factory.mktemp("custom") / "safe.yaml"
    path.write_text(SAFE_FILE)
    return HypothesisDecoder(Recognizer(load_demo_config(), custom_intent_files=[path]))


# -- text repairs -----------------------------------------------------------------------------


def test_normalization_helpers() -> None:
    assert normalize_transcript("Make me a 12oz, 20-ounce latte at 50%") == (
        "Make me a 12 oz, 20 ounce latte at 50 percent"
    )
    assert spell_numbers("12 ounce at 21.5") == "twelve ounce at twenty one point five"
    assert collapse_repeats("with sugar, with sugar, with sugar") == "with sugar"
    # Whisper's "living room" heard as words (the espeak voices, 10–20 dB)
    assert normalize_transcript("Please live in room light off.") == (
        "Please living room light off.")
    assert normalize_transcript("I live in Rome") == "I live in Rome"


def test_snapping_repairs_names_but_never_numbers() -> None:
    snap = VocabularySnapper(["iced mocha", "our", "light roast"])
    assert snap.snap("an ice mocha light roasted") == "an iced mocha light roast"
    assert snap.snap("twenty four") == "twenty four"  # "four" is a value, never "our"
    assert collapse_repeats("turn on the light") == "turn on the light"


def test_grammar_alignment_repairs_misheard_words_but_not_chatter() -> None:
    from hassil import Intents

    from intents.custom import load_custom_intents

    aligner = GrammarAligner(build_automaton(Intents.from_dict(load_custom_intents(COFFEE).data)))
    fixed = aligner.align("Make me a light rose eight ounce ice mocha.")
    assert fixed is not None and fixed.accepted
    assert fixed.text == "make me a light roast eight ounce iced mocha"
    for chatter in ("I had a large latte this morning", "what's the weather like tomorrow",
                    "turn on the kitchen light"):
        al = aligner.align(chatter)
        assert al is None or not al.accepted, chatter


def test_decode_prefers_the_hypothesis_that_parses() -> None:
    def recognize(text: str) -> Recognition:
        if "roast" in text:
            i = Intent(name="order_drink", confidence=1.0, source="custom", reason="", text=text)
            return Recognition(intent=i, reason="")
        return Recognition(intent=None, reason="no")

    hyps = [Hypothesis("a light rose latte", -0.1), Hypothesis("a light roast latte", -0.3)]
    top1 = decode(hyps, recognize, DecodeOptions("top1"))
    nbest = decode(hyps, recognize, DecodeOptions("nbest", n_best=True))
    assert top1.recognition.intent is None and top1.calls == 1
    assert nbest.recognition.intent is not None and nbest.hypothesis == 1
    assert nbest.transform == "raw" and nbest.avg_logprob == -0.3


# -- intents from misheard transcripts ------------------------------------------------------


def test_exact_transcript_keeps_the_recognizer_answer(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["Turn on the kitchen light."])
    assert r.intent is not None and r.intent.name == "light_on"
    assert r.intent.slots.device_ids == ["kitchen_light"]
    assert r.intent.confidence == 1.0
    assert "decoded" not in r.reason and not r.guessed


def test_misheard_word_is_repaired_to_the_vocabulary(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["Can I get an ice mocha?"])
    assert r.intent is not None and r.intent.name == "order_drink"
    assert r.intent.slots.custom == {"coffee_drink": "iced mocha"}
    assert "misheard words repaired" in r.reason
    assert r.intent.confidence == pytest.approx(0.98 * 0.8, abs=1e-3)  # the snap penalty


def test_misheard_slot_word_is_aligned_to_the_grammar(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["Give me a double shot, light rose cappuccino."])
    assert r.intent is not None and r.intent.name == "order_drink"
    assert r.intent.slots.custom == {
        "number_of_shots": "double shot", "roast": "light roast", "coffee_drink": "cappuccino"}
    assert "aligned to the closest grammar sentence" in r.reason and r.guessed
    assert 0.5 < r.intent.confidence < 0.98  # the alignment's similarity


def test_written_numbers_are_normalized(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["Make me a 12oz latte."])
    assert r.intent is not None
    assert r.intent.slots.custom == {"size": "twelve ounce", "coffee_drink": "latte"}
    assert "numbers normalized" in r.reason
    assert r.intent.confidence == 0.98  # a lossless rewrite costs no confidence
    assert not r.guessed


def test_digits_are_spelled_for_grammars_that_only_list_words(
    safe_decoder: HypothesisDecoder,
) -> None:
    r = safe_decoder.decode(["Make me a 12 ounce green tea"])
    assert r.intent is not None and r.intent.name == "order_tea"
    assert r.intent.slots.custom == {"cup": "small", "tea": "green tea"}
    assert "numbers spelled out" in r.reason


def test_lower_hypothesis_that_parses_beats_repairing_the_top_one(
    decoder: HypothesisDecoder,
) -> None:
    r = decoder.decode(["turn on the kitten lied", "turn on the kitchen light"])
    assert r.intent is not None and r.intent.slots.device_ids == ["kitchen_light"]
    assert "hypothesis 2 of 2" in r.reason
    # a lower hypothesis is a guess (confidence), but one heard as said: it may end a turn
    assert r.guessed and r.heard_in_n_best


def test_lower_hypothesis_with_more_words_is_not_heard_as_said(
    decoder: HypothesisDecoder,
) -> None:
    r = decoder.decode(["turn on the", "turn on the kitchen light"])
    assert r.intent is not None and r.guessed and not r.heard_in_n_best
    repaired = decoder.decode(["Can I get an ice mocha?"])
    assert repaired.guessed and not repaired.heard_in_n_best


@pytest.mark.parametrize(
    "text",
    [
        "I had a large latte this morning.",
        "What a lovely day it is.",
        "My brother drinks his coffee black.",
        "Can you tell me a joke?",
    ],
)
def test_chatter_is_not_forced_into_a_command(decoder: HypothesisDecoder, text: str) -> None:
    assert decoder.decode([text]).intent is None


def test_nothing_parses_gives_the_recognizer_reason_for_the_top_hypothesis(
    decoder: HypothesisDecoder,
) -> None:
    r = decoder.decode(["turn on the spaceship", "the spaceship"])
    assert r.intent is None
    assert "spaceship" in r.reason
    assert decoder.decode([]).reason == "empty text"


# -- confidence and safety ------------------------------------------------------------------


def test_confidence_combines_recognizer_asr_and_repair(decoder: HypothesisDecoder) -> None:
    r = decoder.decode([Hypothesis("Turn on the kitchen light.", -0.2)], no_speech_prob=0.1)
    assert r.intent is not None and r.intent.confidence == 1.0  # heard as said: the recognizer's
    assert combined_confidence(r.intent, -0.2, 0.1, "raw") == pytest.approx(
        math.exp(-0.2) * 0.9, abs=1e-3)
    assert combined_confidence(None, 0.0, 0.0, "raw") == 0.0
    assert combined_confidence(r.intent, None, 0.0, "aligned", 0.5) == pytest.approx(
        r.intent.confidence * 0.5)


def test_only_guessed_readings_are_scored_by_the_asr() -> None:
    rec = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    d = HypothesisDecoder(rec, FULL_DECODE)
    exact = d.decode([Hypothesis("Unlock the front door.", -0.3)], no_speech_prob=0.1)
    assert exact.intent is not None and exact.intent.confidence == 1.0  # as the recognizer
    guessed = d.decode([Hypothesis("walk the front door", -0.2),
                        Hypothesis("unlock the front door", -0.3)])
    assert guessed.intent is not None and guessed.intent.name == "unlock"
    assert guessed.intent.confidence < SENSITIVE_MIN
    repaired = d.decode([Hypothesis("Can I get an ice mocha?", -0.2)])
    assert repaired.intent is not None
    assert repaired.intent.confidence == pytest.approx(0.98 * math.exp(-0.2) * 0.8, abs=1e-3)


@pytest.mark.parametrize(
    "hypotheses",
    [
        ["Walk the front door."],
        ["walk the front door", "lock the front door"],
        ["walk the front door", "unlock the front door"],
        ["unlock the front dor"],
        ["on lock the front door"],
        ["open the garage dor"],
        ["activate good nite"],
    ],
)
def test_near_misses_never_carry_a_sensitive_action(
    decoder: HypothesisDecoder, hypotheses: list[str]
) -> None:
    r = decoder.decode(hypotheses)
    assert r.intent is None or r.intent.confidence < SENSITIVE_MIN, r.reason


def test_second_hypothesis_unlock_is_capped(decoder: HypothesisDecoder) -> None:
    r = decoder.decode(["walk the front door", "unlock the front door"])
    assert r.intent is not None and r.intent.name == "unlock"
    assert r.intent.confidence <= SENSITIVE_MIN - 0.3 + 1e-9


def test_aligned_sensitive_custom_action_is_capped(safe_decoder: HypothesisDecoder) -> None:
    r = safe_decoder.decode(["open the save"])
    assert r.intent is not None and r.intent.name == "open_safe"
    assert "decoded" in r.reason
    assert r.intent.confidence < SENSITIVE_MIN
    exact = safe_decoder.decode(["open the safe"])
    assert exact.intent is not None and exact.intent.confidence == 0.98


# -- options, caching, threads --------------------------------------------------------------


def test_plain_options_only_parse_the_top_hypothesis() -> None:
    rec = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    plain = HypothesisDecoder(rec, DecodeOptions("top1"))
    assert plain.decode(["Can I get an ice mocha?"]).intent is None
    assert plain.decode(["kitten", "turn on the kitchen light"]).intent is None
    assert FULL_DECODE.align and FULL_DECODE.snap and FULL_DECODE.n_best


def test_automaton_is_built_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    from intents.align import build_automaton as real

    def counting(*args: object, **kwargs: object) -> object:
        built.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(decode_module, "build_automaton", counting)
    d = HypothesisDecoder(Recognizer(load_demo_config(), custom_intent_files=[COFFEE]))
    results: list[object] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                r = d.decode(["Give me a double shot, light rose cappuccino."])
                results.append(None if r.intent is None else r.intent.slots.custom["roast"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == ["light roast"] * 12
    assert len(built) == 1


def test_an_alignment_never_drops_a_negation() -> None:
    from intents.decode import drops_negation

    recognizer = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    decoder = HypothesisDecoder(recognizer, FULL_DECODE)
    # heard at 6 dB through the server: the closest sentence without "don't" was ordered
    for heard in ("I don't want a double shot cappuccino.",
                  "I don't want a double shot cappucco with a lot of sugar."):
        assert decoder.decode([heard]).intent is None, heard
    got = decoder.decode(["Give me a double shot cappucco with a lot of sugar."]).intent
    assert got is not None and got.slots.custom["coffee_drink"] == "cappuccino"
    assert drops_negation("never mind the latte", "give me a latte")
    assert not drops_negation("give me a latte", "give me a latte")


@pytest.mark.parametrize(("hypotheses", "language"), [
    # heard right at 10 dB, with the "not" lost from hypothesis 2 of 3
    (["不要打开车库门", "要打开车库门", "不要打开车库门了"], "zh-CN"),
    (["Don't turn on the kitchen light.", "Turn on the kitchen light."], "en"),
    (["别关客厅的灯", "关客厅的灯"], "zh-CN"),
])
def test_a_lower_hypothesis_never_drops_what_the_speaker_said_not_to_do(
        hypotheses: list[str], language: str) -> None:
    decoder = HypothesisDecoder(Recognizer(load_demo_config()), FULL_DECODE)
    got = decoder.decode([Hypothesis(h, -0.3 - 0.2 * i) for i, h in enumerate(hypotheses)],
                         language=language)
    assert got.intent is None and got.negated, got.reason
    # the lower hypothesis alone is a command: it is the top one's "not" that stops it
    alone = decoder.decode([Hypothesis(hypotheses[1], -0.3)], language=language)
    assert alone.intent is not None


def test_a_reading_the_devices_cannot_do_gives_way_to_one_heard_they_can() -> None:
    """"Turn on the kitchen white." (tiny.en, unprompted, on one machine) reads as a colour
    for the kitchen light, which has none; the n-best's "Turn on the kitchen light." parses
    as heard and is what the speaker said. With no such hypothesis, the reading stands (the
    dispatcher then says why it cannot)."""
    from intents.decode import Hypothesis
    from intents.schema import lacks_capability

    config = load_demo_config()
    recognizer = Recognizer(config)
    d = HypothesisDecoder(recognizer)
    white = recognizer.recognize("Turn on the kitchen white.").intent
    assert white is not None and white.slots.color == "white"
    assert lacks_capability(white, config.devices)
    out = d.decode([Hypothesis("Turn on the kitchen white.", -0.3),
                    Hypothesis("Turn on the kitchen light.", -0.5)])
    assert out.intent is not None and out.intent.name == "light_on"
    assert out.intent.slots.device_ids == ["kitchen_light"] and out.heard_in_n_best
    alone = d.decode([Hypothesis("Turn on the kitchen white.", -0.3)])
    assert alone.intent is not None and alone.intent.slots.color == "white"
    # A light that has colour takes it: the top reading stands.
    living = d.decode([Hypothesis("Turn the living room light red.", -0.3),
                       Hypothesis("Turn on the living room light.", -0.5)])
    assert living.intent is not None and living.intent.slots.color == "red"


def test_a_lower_hypothesis_in_place_of_a_name_the_home_lacks_is_asked_back() -> None:
    """The top hypothesis names a thing homes have and this one lacks (打开客房的灯: the guest
    room; "the washing machine") and a lower one names the home's own in its place (口房 →
    厨房, hypothesis 3 of 3, turned the kitchen light on, clean; "the coffee machine"): a
    guess at what was meant, held just below the bar, where it is asked back. A garbled name
    ("the kitten lied") is no such thing."""
    from devices.dispatcher import ASK_BACK_BAND
    from intents.decode import Hypothesis

    recognizer = Recognizer(load_demo_config())
    bar = recognizer.config.security.min_confidence
    d = HypothesisDecoder(recognizer)
    assert recognizer.recognize("打开客房的灯", language="zh-CN").unknown_name == "客房"
    for heard, lang, device in (
            (["打开客房的灯", "打开客房的灯了", "打开口房的灯"], "zh-CN", "kitchen_light"),
            (["turn on the washing machine", "turn on the coffee machine"], "en", "coffee_maker")):
        out = d.decode([Hypothesis(h, -0.3 - 0.1 * i) for i, h in enumerate(heard)],
                       language=lang)
        assert out.intent is not None and device in out.intent.slots.device_ids
        assert out.guessed and out.in_place_of and not out.heard_in_n_best
        assert bar - ASK_BACK_BAND <= out.intent.confidence < bar
    # A lower hypothesis after a top one that names nothing a home has acts as before.
    plain = d.decode([Hypothesis("turn on the kitten lied", -0.3),
                      Hypothesis("turn on the kitchen light", -0.5)])
    assert plain.in_place_of is None and plain.heard_in_n_best
