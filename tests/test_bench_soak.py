"""``hearth bench soak``: the pure parts, and short runs against live servers."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.bench import soak
from assistant.cli import build_parser
from tests.server_fixtures import ServerThread


def test_schedule_mixes_every_kind() -> None:
    kinds = Counter(soak.cycle_kind(i) for i in range(1000))
    assert kinds == {"clean": 300, "text": 250, "garbage": 200, "abrupt": 150, "tcp": 100}


def test_stream_frames_are_bounded_and_mark_each_command() -> None:
    command = b"\x01\x00" * (soak.RATE // 2)  # 0.5 s: 25 frames
    frames = list(soak.stream_frames([command], offset_s=0.2, interval_s=1.0, duration_s=3.0))
    assert len(frames) == 150  # 3 s of 20 ms frames, no more
    assert all(len(f) == soak.FRAME_BYTES for f, _ in frames)
    starts = [i for i, (_f, first) in enumerate(frames) if first]
    assert starts == [10, 60, 110]
    assert frames[10][0] == command[: soak.FRAME_BYTES]
    assert frames[9][0] == bytes(soak.FRAME_BYTES)


def _sample(name: str, fds: int, rss: float) -> soak.Sample:
    return soak.Sample(0.0, name, fds, rss, 10)


def test_verdict_flags_an_fd_leak_and_tolerates_small_noise() -> None:
    stats = soak.CycleStats()
    flat = soak.verdict(
        {
            "before": _sample("before", 20, 400.0),
            "after_cycles": _sample("x", 20 + soak.FD_SLACK, 410.0),
        },
        stats,
    )
    assert flat["fds_flat"] is True and flat["rss_flat"] is True
    leak = soak.verdict(
        {"before": _sample("before", 20, 400.0), "after_cycles": _sample("x", 120, 600.0)},
        stats,
    )
    assert leak["fds_flat"] is False and leak["rss_flat"] is False
    assert leak["fds_delta_max"] == 100


def test_phase_summary_separates_one_off_costs_from_growth() -> None:
    rss = {"cycles": [400, 410, 411, 411, 411, 411], "streaming": [411, 420, 430, 440]}
    samples = [
        {"t": 0.0, "phase": ph, "fds": 20 + i, "rss_mb": float(v), "threads": 10}
        for ph, values in rss.items()
        for i, v in enumerate(values)
    ]
    phases = soak.phase_summary(samples)
    assert list(phases) == ["cycles", "streaming"]
    assert phases["cycles"]["rss_second_half_mb"] == 0.0  # a step early, then flat
    assert phases["streaming"]["rss_second_half_mb"] == 10.0  # still growing
    assert (phases["cycles"]["fds"], phases["cycles"]["rss_mb"]) == (25, 411.0)


def test_only_loopback_servers_are_soaked() -> None:
    with pytest.raises(SystemExit, match="loopback"):
        soak._target("ws://192.0.2.1:8765", None)
    assert soak._target("ws://127.0.0.1:8765", "t").headers == {"Authorization": "Bearer t"}


def test_wired_as_hearth_bench_soak(tmp_path: Path) -> None:
    args = build_parser().parse_args(["bench", "soak", "--cycles", "5", "--out", str(tmp_path)])
    assert args.func is soak.run
    assert args.cycles == 5


def test_cycles_against_a_live_server(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    server = text_server_factory()
    # The server runs in this process (a thread): its fds and RSS are this process's.
    opts = "--cycles 300 --warmup 40 --streams 0 --settle 0.2 --sample-interval 0.2".split()
    target = ["--url", server.url, "--server-pid", str(os.getpid()), "--out", str(tmp_path)]
    args = build_parser().parse_args(["bench", "soak", *opts, *target])
    rc = soak.run(args)
    report = json.loads((tmp_path / "soak.json").read_text(encoding="utf-8"))
    cycles = report["cycles"]
    assert cycles["failure_examples"] == []
    assert (cycles["total"], cycles["failed"]) == (300, 0)
    assert set(cycles["by_kind"]) == {"clean", "text", "garbage", "abrupt", "tcp"}
    assert cycles["sessions_after"] == 0
    # Each garbage frame was answered by its error code.
    assert {"bad_json", "unknown_type", "invalid_message"} <= set(cycles["error_codes"])
    assert cycles["text_action_statuses"].get("confirmed", 0) > 0
    points = report["resources"]["points"]
    assert {"start", "before", "after_cycles"} <= set(points)
    assert points["before"]["fds"] is not None
    assert rc == 0
    md = (tmp_path / "soak.md").read_text(encoding="utf-8")
    assert "Connect/disconnect cycles: 300 (300 ok, 0 failed)" in md


@pytest.mark.slow
def test_streaming_against_a_server_with_speech(
    hearth_server: ServerThread, tmp_path: Path
) -> None:
    opts = "--cycles 0 --warmup 0 --streams 1 --duration 6 --interval 3 --settle 0".split()
    args = build_parser().parse_args(
        ["bench", "soak", *opts, "--url", hearth_server.url, "--out", str(tmp_path)]
    )
    soak.run(args)
    streaming = json.loads((tmp_path / "soak.json").read_text(encoding="utf-8"))["streaming"]
    assert streaming["commands_spoken"] == 2
    assert streaming["frames_sent"] == 300
    assert streaming["utterances_ended"] >= streaming["commands_spoken"]
    assert streaming["final_actions"].get("confirmed", 0) >= 1
    assert streaming["failures"] == [] and streaming["close_codes"] == [1000]
