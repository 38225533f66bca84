"""``hearth recognize`` and the text → intent benchmark on a tiny inline data set."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import main
from intents import benchmark


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    rc = main(["recognize", *argv])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else {}), err


def test_recognize_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, _ = _run(capsys, "turn on the kitchen light")
    assert rc == 0
    assert set(doc) == {"intent", "reason"}
    intent = doc["intent"]
    assert isinstance(intent, dict)
    assert intent["name"] == "light_on"
    assert intent["slots"]["device_ids"] == ["kitchen_light"]
    assert intent["source"] == "grammar"


def test_recognize_chinese_is_not_escaped() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "recognize", "把客厅灯打开", "--language", "zh-cn"],
        capture_output=True, text=True, encoding="utf-8", check=False, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["intent"]["slots"]["device_ids"] == ["living_room_light"]
    assert "把客厅灯打开" in lines[0]


def test_recognize_rejection(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, _ = _run(capsys, "what is the meaning of life?")
    assert rc == 1  # no intent
    assert doc["intent"] is None
    assert doc["reason"]


def test_recognize_jsonl_one_result_a_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "turn on the kitchen light\n"
        "\n"
        '{"text": "it is too dark in here", "area": "office"}\n'
        '{"text": "it is too dark in here"}\n'
        '{"text": "客厅开灯", "language": "zh-cn"}\n'
        "what's the weather like\n",
        encoding="utf-8",
    )
    rc = main(["recognize", "--jsonl", str(src)])
    out, _ = capsys.readouterr()
    assert rc == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 5  # the blank line is skipped
    for d in docs:
        assert set(d) >= {"intent", "reason"}
    assert docs[0]["intent"]["slots"]["device_ids"] == ["kitchen_light"]
    assert docs[1]["intent"]["slots"]["device_ids"] == ["office_light"]
    assert docs[2]["intent"] is None and "which room" in docs[2]["reason"]
    assert docs[3]["intent"]["slots"]["device_ids"] == ["living_room_light"]
    assert docs[4]["intent"] is None and "weather" in docs[4]["reason"]


def test_recognize_jsonl_stdin_and_bad_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("lights off\n"))
    assert main(["recognize", "--jsonl", "-", "--area", "kitchen"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["intent"]["slots"]["device_ids"] == ["kitchen_light"]

    monkeypatch.setattr(sys, "stdin", io.StringIO('lights off\n{"text": 3}\n'))
    assert main(["recognize", "--jsonl", "-"]) == 2
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1
    assert err.startswith("error: stdin:2:") and len(err.splitlines()) == 1

    monkeypatch.setattr(sys, "stdin", io.StringIO("{not json\n"))
    assert main(["recognize", "--jsonl", "-"]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    assert main(["recognize", "hi", "--jsonl", "-"]) == 2
    assert main(["recognize"]) == 2
    assert main(["recognize", "--jsonl", "/nonexistent/x.jsonl"]) == 2


def test_recognize_bad_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "home.yaml"
    bad.write_text("devices:\n  - {id: Bad Id, name: x, kind: light, adapter: tasmota}\n",
                   encoding="utf-8")
    rc, doc, err = _run(capsys, "turn on x", "--config", str(bad))
    assert rc == 2
    assert doc == {}
    assert str(bad) in err and ":2" in err


def test_recognize_missing_config(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "hi", "--config", "/nonexistent/home.yaml")
    assert rc == 2
    assert "cannot read" in err


def test_recognize_bad_language(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "hi", "--language", "klingon")
    assert rc == 2
    assert "klingon" in err


FIXTURES = """
language: en
floors: [{name: Upstairs, id: up}]
areas:
  - {name: Kitchen, id: kitchen_id, floor: up}
  - {name: Living Room, id: living_room_id, floor: up}
entities:
  - {name: Kitchen Lamp, id: light.kitchen_lamp, area: kitchen_id}
  - {name: Sofa Lamp, id: light.sofa, area: living_room_id}
  - {name: Front Door, id: lock.front_door}
  - {name: TV, id: media_player.tv, area: living_room_id}
"""

LIGHTS = """
language: en
tests:
  - sentences: ["turn on the kitchen lamp", "kitchen lamp on"]
    intent: {name: HassTurnOn, slots: {name: Kitchen Lamp}}
  - sentences: ["turn off the lights in the living room"]
    intent: {name: HassTurnOff, slots: {area: Living Room, domain: light}}
  - sentences: ["set the kitchen lamp brightness to 30%"]
    intent: {name: HassLightSet, slots: {name: Kitchen Lamp, brightness: 30}}
  - sentences: ["turn on the lights"]
    intent: {name: HassTurnOn, context: {area: Living Room},
             slots: {area: Living Room, domain: light}}
  - sentences: ["turn on the sofa lamp"]
    intent: {name: HassTurnOn, slots: {name: Kitchen Lamp}}  # deliberately wrong expectation
"""

TIMERS = """
language: en
tests:
  - sentences: ["set a timer for 5 minutes", "unlock the front door"]
    intent: {name: HassStartTimer, slots: {minutes: 5}}
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tests" / "en"
    d.mkdir(parents=True)
    (d / "_fixtures.yaml").write_text(FIXTURES, encoding="utf-8")
    (d / "light_HassTurnOn.yaml").write_text(LIGHTS, encoding="utf-8")
    (d / "homeassistant_HassStartTimer.yaml").write_text(TIMERS, encoding="utf-8")
    return tmp_path / "tests"


def test_benchmark_scores_and_counts_wrong_devices(data_dir: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--out", str(out), "--languages", "en", "--data", str(data_dir)])
    assert benchmark.run(args) == 0
    report = json.loads((out / "text_intents.json").read_text(encoding="utf-8"))
    en = report["languages"][0]
    assert en["scored"] == 6  # the timer file is out of scope
    assert en["correct"] == 5  # all but the deliberately wrong expectation
    assert en["failures"][0]["sentence"] == "turn on the sofa lamp"
    # the wrong expectation (sofa lamp vs kitchen lamp) and the out-of-scope "unlock" both act
    # on a device the expectation did not name
    wrong = {w["sentence"] for w in en["wrong_device"]}
    assert wrong == {"turn on the sofa lamp", "unlock the front door"}
    md = (out / "text_intents.md").read_text(encoding="utf-8")
    assert "| en | 6 | 5 | 83.3 % | 2 |" in md


def test_benchmark_missing_data(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--data", str(tmp_path / "none")])
    assert benchmark.run(args) == 2


def test_fixture_home_is_valid() -> None:
    import yaml

    fx = benchmark.build_fixture(yaml.safe_load(FIXTURES))
    assert {d.id for d in fx.config.devices} == {
        "light-kitchen_lamp", "light-sofa", "lock-front_door", "media_player-tv"}
    assert fx.area_id("Living Room") == "living_room_id"
