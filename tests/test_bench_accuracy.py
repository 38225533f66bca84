"""Tests of the speech → intent accuracy benchmark: noise mixing, label mapping, scoring,
hotword selection, and a tiny end-to-end run on real recordings. (The decode techniques it
measures live in intents.decode/repair/align and are tested with them.)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from assistant.bench.accuracy_text import (
    Expected,
    expected_from_label,
    matches,
    word_errors,
)
from assistant.bench.noise import (
    active_power,
    measured_snr_db,
    mix_at_snr,
    mix_parts,
    stable_seed,
)

REPO = Path(__file__).resolve().parents[1]
COFFEE = REPO / "intents" / "data" / "examples" / "picovoice_coffee.yaml"
PICOVOICE = REPO.parent / "shared" / "data" / "picovoice-speech-to-intent"
RATE = 16000


def _bursts(silence_s: float) -> np.ndarray:
    """Three 0.3 s tone bursts separated by 0.2 s gaps, with ``silence_s`` around them."""
    t = np.arange(int(0.3 * RATE)) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    gap = np.zeros(int(0.2 * RATE), np.float32)
    pad = np.zeros(int(silence_s * RATE), np.float32)
    return np.concatenate([pad, tone, gap, tone, gap, tone, pad])


@pytest.mark.parametrize("snr", [24.0, 12.0, 6.0, 0.0])
def test_mix_hits_the_requested_snr(snr: float) -> None:
    speech = _bursts(0.5)
    noise = np.random.default_rng(1).standard_normal(RATE * 5).astype(np.float32)
    mixed, added, scale = mix_parts(speech, noise, snr, np.random.default_rng(2))
    np.testing.assert_allclose(mixed, scale * speech + added, atol=1e-6)
    assert measured_snr_db(scale * speech, added) == pytest.approx(snr, abs=0.01)
    # Independent check: the noise power is the active tone power (0.3² / 2) lowered by snr.
    expected_noise_power = (0.3**2 / 2) * 10 ** (-snr / 10) * scale**2
    assert float(np.mean(added.astype(np.float64) ** 2)) == pytest.approx(
        expected_noise_power, rel=0.03)


def test_snr_is_measured_over_active_speech_only() -> None:
    short, padded = _bursts(0.1), _bursts(2.0)
    # The bursts' active power is that of the tone, whatever the silence around them.
    assert active_power(short, RATE) == pytest.approx(0.3**2 / 2, rel=0.02)
    assert active_power(padded, RATE) == pytest.approx(active_power(short, RATE), rel=0.01)


def test_mixing_is_deterministic_and_clipping_keeps_the_snr() -> None:
    speech = _bursts(0.2) * 3.0  # loud: the mix must be scaled down
    noise = np.random.default_rng(3).standard_normal(RATE).astype(np.float32)
    seed = stable_seed("picovoice", "abc", "6", 1)
    a, added, scale = mix_parts(speech, noise, 6.0, np.random.default_rng(seed))
    b = mix_at_snr(speech, noise, 6.0, np.random.default_rng(seed))
    assert np.array_equal(a, b)
    assert scale < 1.0 and float(np.max(np.abs(a))) <= 0.99 + 1e-6
    assert measured_snr_db(scale * speech, added) == pytest.approx(6.0, abs=0.01)


def test_label_maps_to_the_custom_intent() -> None:
    from intents.custom import snake_case

    exp = expected_from_label(
        {"intent": "orderDrink", "slots": {"coffeeDrink": "latte", "numberOfShots": "double shot"}},
        snake_case,
    )
    assert exp == Expected("order_drink", {"custom": {"coffee_drink": "latte",
                                                      "number_of_shots": "double shot"}})


def test_recognized_coffee_order_matches_its_label() -> None:
    from devices.registry import load_demo_config
    from intents.custom import snake_case
    from intents.recognizer import Recognizer

    rec = Recognizer(load_demo_config(), custom_intent_files=[COFFEE])
    label = {"intent": "orderDrink",
             "slots": {"size": "twelve ounce", "coffeeDrink": "latte", "milkAmount": "soy milk"}}
    exp = expected_from_label(label, snake_case)
    assert matches(exp, rec.recognize("Can I get a 12 ounce latte with soy milk?").intent)
    assert not matches(exp, rec.recognize("Can I get a 12 ounce latte?").intent)
    assert not matches(exp, rec.recognize("can I get a large latte with soy milk").intent)


def test_action_slots_must_all_match() -> None:
    from intents.schema import Intent, Slots

    def intent(**slots: object) -> Intent:
        return Intent(name="light_set", slots=Slots(**slots), confidence=1.0,  # type: ignore[arg-type]
                      source="grammar", reason="")

    exp = Expected("light_set", {"device_ids": ["kitchen_light"], "brightness": 50})
    assert matches(exp, intent(device_ids=["kitchen_light"], brightness=50, area="kitchen"))
    assert not matches(exp, intent(device_ids=["kitchen_light"], brightness=40))
    assert not matches(exp, intent(device_ids=["kitchen_light"], brightness=50, color="red"))


def test_word_error_rate_ignores_number_spelling_and_punctuation() -> None:
    assert word_errors("Set the light to fifty percent.", "set the light to 50%") == (0, 6)
    assert word_errors("turn on the light", "turn off the light") == (1, 4)


def test_bias_phrases_cover_every_content_word_once() -> None:
    from intents.repair import bias_phrases

    vocab = ["soy milk", "a little bit of soy milk", "some soy milk", "12 oz", "twelve ounce",
             "twelve ounces", "kitchen", "kitchen light", "latte"]
    assert bias_phrases(vocab) == ["kitchen light", "latte", "soy milk", "twelve ounce"]


@pytest.mark.skipif(not (PICOVOICE / "labels.json").is_file(), reason="picovoice data absent")
def test_limit_3_picovoice_run_writes_a_complete_report(tmp_path: Path) -> None:
    from assistant.bench import accuracy

    parser = argparse.ArgumentParser()
    accuracy.add_arguments(parser)
    args = parser.parse_args(["--set", "picovoice", "--snr", "clean", "--limit", "3",
                              "--set-option", "asr.beam_size=1", "--out", str(tmp_path),
                              "--quiet",
                              "--cache", str(tmp_path / "cache")])
    assert accuracy.run(args) == 0
    report = json.loads((tmp_path / "accuracy.json").read_text())
    for key in ("command_acceptance", "word_error_rate", "false_action_rate", "sets",
                "variants", "threshold_table", "machine", "model", "settings", "published",
                "records", "keep"):
        assert key in report, key
    clean = report["sets"]["picovoice"]["clean"]
    assert clean["n"] == 3
    assert 0.0 <= report["command_acceptance"]["picovoice"]["clean"] <= 1.0
    assert report["keep"] == "server/shipped"  # the server's path, the one variant
    assert report["model"]["server"]["beam_size"] == 1  # the override reached the transcriber
    assert report["settings"]["overrides"] == ["asr.beam_size=1"]
    head = clean["variants"][report["keep"]]
    assert {"asr_ms", "intent_ms", "repair_ms", "command_acceptance"} <= set(head)
    lines = (tmp_path / report["records"]).read_text().splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[0])
    assert rec["expected"]["name"] == "order_drink" and rec["condition"] == "clean"
    assert (tmp_path / "accuracy.md").read_text().startswith("# Speech → intent accuracy")
    # The report rebuilt from the records alone (--from-records) says the same
    again = parser.parse_args(["--from-records", str(tmp_path / report["records"]),
                               "--out", str(tmp_path / "again"), "--quiet"])
    assert accuracy.run(again) == 0
    rebuilt = json.loads((tmp_path / "again" / "accuracy.json").read_text())
    assert rebuilt["command_acceptance"] == report["command_acceptance"]
    assert rebuilt["sets"]["picovoice"]["clean"]["n"] == 3
    assert rebuilt["settings"]["merged_from"] == [str(tmp_path / report["records"])]


def test_a_bad_override_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    from assistant.bench import accuracy

    parser = argparse.ArgumentParser()
    accuracy.add_arguments(parser)
    for bad in ("asr.beam_size=99", "asr.no_such_key=1", "no_section.x=1", "beam_size"):
        args = parser.parse_args(["--set-option", bad, "--out", str(tmp_path), "--quiet",
                                  "--data", str(PICOVOICE)])
        assert accuracy.run(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --set-option") and err.count("\n") == 1, err


def test_a_negative_counts_as_a_false_action_only_where_the_server_would_act() -> None:
    from assistant.bench.accuracy_summary import summarize_condition

    def neg(conf: float, moves: bool) -> dict[str, object]:
        decode = {"confidence": conf, "moves": moves, "intent_ms": 1.0}
        return {"expected": None, "vad_ms": 1.0, "segments": 1, "variants": {"server": {
            "asr_ms": 10.0, "decode": {"text": decode}}}}

    records = [neg(0.4, True), neg(0.9, False), neg(0.8, True), neg(0.0, False)]
    out = summarize_condition(records, ["server/text"], "server/text", threshold=0.0)
    fig = out["variants"]["server/text"]
    # below the dispatcher's 0.5 the server asks again; a query moves nothing
    assert fig["false_actions"] == 1
    assert fig["false_action_rate"] == 0.25


def test_an_amended_order_counts_once_as_the_amended_order() -> None:
    """--serve scoring: the rest of an order cut off at a pause amends it; the device keeps
    one order (the amended one), so the clip is right, not two actions."""
    import numpy as np

    from assistant.bench.accuracy_serve import score_clip
    from assistant.bench.accuracy_sets import Item
    from assistant.bench.accuracy_text import Expected

    want = {"number_of_shots": "double shot", "coffee_drink": "house coffee",
            "milk_amount": "almond milk"}
    item = Item(id="x", set="picovoice", kind="command", text=None,
                expected=Expected("order_drink", {"custom": want}), voice=None,
                load=lambda: np.zeros(1, dtype=np.float32))

    def turn(u: str, slots: dict[str, str], amends: str | None) -> list[dict[str, object]]:
        intent = {"name": "order_drink", "slots": {"custom": slots}}
        return [{"type": "intent", "utterance_id": u, "intent": intent, "confidence": 0.98,
                 "amends": amends, "reason": ""},
                {"type": "action", "utterance_id": u, "final": True, "status": "published"}]

    first = {k: v for k, v in want.items() if k != "milk_amount"}
    events = turn("u1", first, None) + turn("u2", want, "u1")
    assert score_clip(item, events)["outcome"] == "right"
    # without the amendment mark, two orders reached the device: wrong
    events = turn("u1", first, None) + turn("u2", want, None)
    assert score_clip(item, events)["outcome"] == "wrong"


def test_serve_scoring_counts_a_guess_asked_back_as_a_miss() -> None:
    """--serve scoring: a guess asked back ("Did you mean …? Say yes") took no action: a
    miss, marked asked right or wrong by the reading it asked about."""
    import numpy as np

    from assistant.bench.accuracy_serve import score_clip
    from assistant.bench.accuracy_sets import Item
    from assistant.bench.accuracy_text import Expected
    from assistant.turn.acting import ASKED_BACK

    want = {"coffee_drink": "house coffee", "roast": "dark roast"}
    item = Item(id="x", set="picovoice", kind="command", text=None,
                expected=Expected("order_drink", {"custom": want}), voice=None,
                load=lambda: np.zeros(1, dtype=np.float32))

    def asked(slots: dict[str, str]) -> list[dict[str, object]]:
        intent = {"name": "order_drink", "slots": {"custom": slots}}
        return [{"type": "intent", "utterance_id": "u1", "intent": intent, "confidence": 0.45,
                 "reason": ""},
                {"type": "action", "utterance_id": "u1", "final": True, "status": "rejected",
                 "detail": f"{ASKED_BACK}: a dark roast house coffee"}]

    rec = score_clip(item, asked(want))
    assert (rec["outcome"], rec["asked"]) == ("miss", "right")
    rec = score_clip(item, asked({"coffee_drink": "latte"}))
    assert (rec["outcome"], rec["asked"]) == ("miss", "wrong")


async def test_a_clip_goes_on_streaming_only_while_an_utterance_is_unsettled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The microphone goes on after the clip's tail (``keep_s``) while the server has yet to
    report the utterance, and stops once it has: a stream that stopped at the tail left an
    endpoint in noise waiting 60 s for frames."""
    import asyncio

    from assistant.bench.serve_clips import FRAME_MS, RATE, run_clip

    frame = RATE * FRAME_MS // 1000 * 2
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    class Socket:
        def __init__(self, report_after: int) -> None:
            self.frames = 0
            self.report_after = report_after

        async def send(self, data: bytes) -> None:
            self.frames += 1
            if self.frames == 2:
                inbox.put_nowait({"type": "speech.started", "utterance_id": "u1"})
            if self.frames == self.report_after:
                inbox.put_nowait({"type": "metrics", "utterance_id": "u1"})

    pcm = bytes(frame * 30)  # 10 frames of clip, 20 kept
    ws = Socket(report_after=15)
    clip = await run_clip(ws, inbox, pcm, keep_s=20 * FRAME_MS / 1000)
    assert 15 <= ws.frames <= 16  # the kept frames went on until the report, no further
    assert [e["type"] for e in clip.events] == ["speech.started", "metrics"]
    ws = Socket(report_after=10**6)  # never reports: every kept frame, then the timeout
    inbox = asyncio.Queue()
    monkeypatch.setattr("assistant.bench.serve_clips.SETTLE_TIMEOUT_S", 1.0)
    await run_clip(ws, inbox, pcm, keep_s=20 * FRAME_MS / 1000)
    assert ws.frames == 30
