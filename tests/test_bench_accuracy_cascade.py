"""The cascade variant (greedy first look, full pass when it does not parse as heard)."""

from __future__ import annotations

from typing import Any

from assistant.bench.accuracy_cascade import CASCADE, add_cascade


def _result(name: str | None, transform: str, correct: bool) -> dict[str, Any]:
    intent = None if name is None else {"name": name, "slots": {}}
    return {"intent": intent, "transform": transform, "correct": correct}


def _record(fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, Any]:
    return {
        "variants": {
            "look": {"text": "fast", "asr_ms": 60.0, "decode": {"top1": fast}},
            "beam5-phrases-retry2": {"text": "slow", "asr_ms": 150.0,
                                     "decode": {"shipped": slow}},
        }
    }


def test_first_look_stands_only_when_it_parsed_as_heard() -> None:
    stands = _record(_result("light_on", "raw", True), _result("light_on", "raw", True))
    repaired = _record(_result("light_on", "snapped", False), _result("light_off", "raw", True))
    nothing = _record(_result(None, "raw", False), _result("light_on", "aligned", True))
    only_one_pass = {"variants": {"look": stands["variants"]["look"]}}
    records = [stands, repaired, nothing, only_one_pass]
    assert add_cascade(records) == 3
    assert CASCADE not in only_one_pass["variants"]
    got = [r["variants"][CASCADE] for r in records[:3]]
    assert [g["first_look_stands"] for g in got] == [True, False, False]
    assert [g["decode"]["shipped"]["correct"] for g in got] == [True, True, True]
    assert [g["text"] for g in got] == ["fast", "slow", "slow"]
    assert [g["asr_ms"] for g in got] == [60.0, 210.0, 210.0]


def test_cut_off_custom_order_does_not_stand() -> None:
    order = {"intent": {"name": "order_drink", "slots": {}, "source": "custom"},
             "transform": "raw", "correct": False, "used_text": "a triple shot cappuccino,"}
    records = [_record(order, _result("order_drink", "raw", True))]
    add_cascade(records)
    assert records[0]["variants"][CASCADE]["first_look_stands"] is False
