"""``hearth bench accuracy --serve``: the Picovoice coffee orders through a real server.

Each recording (``--limit`` of them, a seeded subset) is streamed in real time (20 ms frames)
over a real WebSocket into an in-process Hearth server — the demo home with the coffee custom
intents (``intents/data/examples/picovoice_coffee.yaml``) in its ``custom_intents``, the
shipped ASR and decode settings, the embedded broker — clean and with the kitchen noise mixed
over the clip and a second of trailing audio at each ``--snr``. The server's endpointing
decides where each turn ends, so cut-offs (an order ended at a pause inside it, the rest a
second turn) count, exactly as a client meets them. What the server *did* is scored:

* **right**: exactly one action was taken (published to the coffee maker) and the intent of
  its turn is the labelled order, every slot equal (nothing more, nothing less);
* **wrong action**: an action was taken on another reading, or more than one action (half an
  order plus the rest) — a wrong coffee;
* **miss**: no action (nothing understood, refused for low confidence, asked again). A miss
  whose reading was *asked back* ("Did you mean: …? Say yes", ``assistant.turn.acting``) is
  also counted as ``asked`` right or wrong: whether a "yes" would have given the labelled
  order (the bench says no "yes": the order is not counted as right).

Latency: the server's own ``speech_end_to_action`` (last voiced frame received → action
published) of the turn that acted, P50 / P90 / P99 per condition.

``--streams N`` runs N client sessions at once (clips handed out in order); the default 1 is
what a lone client gets. Writes ``report.json``, ``report.md`` and ``records.jsonl`` to
``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from assistant.bench.accuracy_sets import (
    DEFAULT_SEED,
    Item,
    default_data_dir,
    kitchen_noise,
    picovoice_items,
    subset,
)
from assistant.bench.cli import command_line
from assistant.bench.noise import stable_seed
from assistant.bench.serve_clips import (
    ACTING,
    FRAME_MS,
    KEEP_S,
    client_session,
    clip_pcm,
    measured,
    pct,
    run_clip,
    snr_ok,
    write_report,
)
from assistant.turn.acting import ASKED_BACK

logger = logging.getLogger(__name__)

DEFAULT_CONDITIONS: Final = ("clean", "24", "18", "12", "6")
TARGETS: Final = {"clean": 0.995, "average_24_6": 0.976, "6": 0.935, "wrong_6_max": 0.01,
                  "clean_p50_ms": 250.0, "6_p50_ms": 600.0, "6_p99_ms": 1500.0}


def _slots(intent: dict[str, Any]) -> dict[str, str]:
    custom = (intent.get("slots") or {}).get("custom") or {}
    return {k: str(v) for k, v in custom.items() if v not in (None, "", [], {})}


def score_clip(item: Item, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One clip's record: right / wrong action / miss, what was heard and done per turn."""
    assert item.expected is not None
    want_name = item.expected.name
    want = {k: str(v) for k, v in dict(item.expected.slots.get("custom", {})).items()}
    intents = {e["utterance_id"]: e for e in events if e["type"] == "intent"}
    acted_utts = [e["utterance_id"] for e in events
                  if e["type"] == "action" and e.get("final") and e["status"] in ACTING]
    acted_utts = list(dict.fromkeys(acted_utts))
    # An amendment (the rest of an order cut off at a pause, docs/protocol.md "Amended
    # orders") replaces the order it amends: the device keeps one order, the amended one.
    replaced = {e.get("amends") for e in intents.values() if e.get("amends")}
    acted_utts = [u for u in acted_utts if u not in replaced]
    metrics = {e["utterance_id"]: e for e in events if e["type"] == "metrics"}
    readings = []
    for u in acted_utts:
        ev = intents.get(u)
        it = (ev or {}).get("intent") or {}
        readings.append({"name": it.get("name"), "slots": _slots(it),
                         "confidence": (ev or {}).get("confidence")})
    right = (len(readings) == 1 and readings[0]["name"] == want_name
             and readings[0]["slots"] == want)
    outcome = "right" if right else ("wrong" if readings else "miss")
    asked = None
    if outcome == "miss":
        asked_utts = [e["utterance_id"] for e in events if e["type"] == "action"
                      and str(e.get("detail", "")).startswith(ASKED_BACK)]
        if asked_utts:
            it = (intents.get(asked_utts[-1]) or {}).get("intent") or {}
            asked = "right" if it.get("name") == want_name and _slots(it) == want else "wrong"
    lat = None
    if acted_utts and acted_utts[0] in metrics:
        lat = metrics[acted_utts[0]]["timings_ms"].get("speech_end_to_action")
    return {
        "id": item.id, "expected": {"name": want_name, "slots": want},
        "outcome": outcome,
        "asked": asked,
        "heard": [e["text"] for e in events if e["type"] == "transcript.final"],
        "intents": [{"name": (e.get("intent") or {}).get("name"),
                     "slots": _slots(e.get("intent") or {}),
                     "confidence": e.get("confidence"), "reason": e.get("reason")}
                    for e in intents.values()],
        "acted": readings,
        "utterances": len(metrics),
        "stop_reasons": [e.get("reason") for e in events if e["type"] == "speech.stopped"],
        "errors": [e["code"] for e in events if e["type"] == "error"],
        "speech_end_to_action_ms": lat,
        "timings_ms": [{k: v for k, v in m["timings_ms"].items() if v is not None}
                       for m in metrics.values()],
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.app import Hearth
    from assistant.bench.accuracy import _snake
    from assistant.config import AssistantSettings
    from devices.registry import load_config, load_demo_config

    config = load_demo_config() if args.config is None else load_config(args.config)
    config.custom_intents = [*config.custom_intents, *args.intent_files]
    data = Path(args.data) if args.data else default_data_dir()
    items = subset(picovoice_items(data, _snake()), args.limit, args.seed)
    conditions = list(args.snr or DEFAULT_CONDITIONS)
    noise = kitchen_noise(data) if any(c != "clean" for c in conditions) else None
    overrides: dict[str, Any] = {}
    for kv in args.set_option or []:
        key, _, value = kv.partition("=")
        overrides[key] = json.loads(value)
    settings = AssistantSettings().with_overrides(**overrides)
    hearth = Hearth(config, settings)
    t0 = time.perf_counter()
    await hearth.start()
    await hearth.acoustic_repair_ready()
    start_s = time.perf_counter() - t0
    server = hearth.server(host="127.0.0.1", port=0)
    await server.start()
    records: list[dict[str, Any]] = []
    work: asyncio.Queue[tuple[str, int, Item]] = asyncio.Queue()
    for cond in conditions:
        for k, it in enumerate(items):
            work.put_nowait((cond, k, it))
    total = work.qsize()

    async def client() -> None:
        async with client_session(server.url) as (ws, inbox):
            while not work.empty():
                cond, _k, it = work.get_nowait()
                seed = stable_seed("picovoice", it.id, cond, args.seed)
                pcm = await asyncio.to_thread(clip_pcm, it.load(), noise, cond, seed)
                clip = await run_clip(ws, inbox, pcm, keep_s=KEEP_S)
                rec = score_clip(it, clip.events)
                rec["condition"] = cond
                records.append(rec)
                if not args.quiet:
                    print(f"[{len(records):3d}/{total} {cond:>5}] {rec['outcome']:5} "
                          f"{it.id} | {' / '.join(rec['heard'])} | {rec['acted']} | "
                          f"{rec['speech_end_to_action_ms']}", file=sys.stderr, flush=True)

    wall0 = time.perf_counter()
    load_before = os.getloadavg()
    try:
        await asyncio.gather(*(client() for _ in range(max(1, args.streams))))
    finally:
        await hearth.stop()
    m = hearth.metrics
    # What the server did, by its own counters: looks reused or stale, retries and
    # acoustic checks done during the silence, passes shed.
    counters = {"speculations": m.speculations_total.counts(),
                "full_window_retries": m.asr_retries_total.value(),
                "shed": m.asr_shed_total.counts()}
    return {"records": records, "conditions": conditions, "start_s": round(start_s, 2),
            "server": counters,
            "wall_s": round(time.perf_counter() - wall0, 1), "clips": len(items),
            "overrides": overrides, "load_average": [list(load_before), list(os.getloadavg())]}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"conditions": {}, "targets": TARGETS}
    for cond in result["conditions"]:
        recs = [r for r in result["records"] if r["condition"] == cond]
        lat = [r["speech_end_to_action_ms"] for r in recs
               if r["outcome"] == "right" and r["speech_end_to_action_ms"] is not None]
        n = len(recs)
        right = sum(r["outcome"] == "right" for r in recs)
        out["conditions"][cond] = {
            "clips": n, "right": right,
            "wrong": sum(r["outcome"] == "wrong" for r in recs),
            "miss": sum(r["outcome"] == "miss" for r in recs),
            "asked_right": sum(r.get("asked") == "right" for r in recs),
            "asked_wrong": sum(r.get("asked") == "wrong" for r in recs),
            "accuracy": round(right / n, 4) if n else None,
            "cut_into_turns": sum(r["utterances"] > 1 for r in recs),
            "speech_end_to_action_ms": {"n": len(lat), "p50": pct(lat, 50),
                                        "p90": pct(lat, 90), "p99": pct(lat, 99),
                                        "max": round(max(lat), 1) if lat else None},
        }
    noisy = [c for c in ("24", "18", "12", "6") if c in out["conditions"]]
    if noisy:
        accs = [out["conditions"][c]["accuracy"] or 0.0 for c in noisy]
        out["average_noisy"] = {"snrs": noisy, "accuracy": round(sum(accs) / len(accs), 4)}
    return out


def _markdown(summary: dict[str, Any], result: dict[str, Any], command: str) -> str:
    lines = ["# Picovoice coffee orders through the server", "", f"`{command}`", "",
             f"{result['clips']} clips per condition, {result['streams']} stream(s), "
             f"wall {result['wall_s']} s, load average before / after "
             f"{result['load_average'][0][0]:.1f} / {result['load_average'][1][0]:.1f} "
             f"on {os.cpu_count()} CPUs", "",
             "| condition | clips | right | wrong action | miss | of which asked back (right / "
             "wrong reading) | cut into turns | accuracy | speech end → action P50 / P90 / P99 "
             "ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for cond, c in summary["conditions"].items():
        lat = c["speech_end_to_action_ms"]
        name = "clean" if cond == "clean" else f"kitchen {cond} dB"
        acc = "—" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f} %"
        lines.append(f"| {name} | {c['clips']} | {c['right']} | {c['wrong']} | {c['miss']} | "
                     f"{c['asked_right']} / {c['asked_wrong']} | {c['cut_into_turns']} | {acc} | "
                     f"{lat['p50']} / {lat['p90']} / {lat['p99']} |")
    if "average_noisy" in summary:
        a = summary["average_noisy"]
        lines += ["", f"Average over {', '.join(a['snrs'])} dB: {100 * a['accuracy']:.1f} %"]
    if "server" in result:
        srv = result["server"]
        looks = ", ".join(f"{k} {v:g}" for k, v in srv["speculations"].items()) or "none"
        shed = ", ".join(f"{k} {v:g}" for k, v in srv["shed"].items()) or "none"
        lines += ["", f"The server's counters: looks {looks}; full-window retries "
                      f"{srv['full_window_retries']:g}; passes shed {shed}."]
    for kind in ("wrong", "miss"):
        lines += ["", f"{'Wrong actions' if kind == 'wrong' else 'Misses'}:", ""]
        for r in result["records"]:
            if r["outcome"] == kind:
                lines.append(f"- {r['condition']} {r['id']}: want {r['expected']['slots']}; "
                             f"heard {' / '.join(r['heard']) or '—'}; acted {r['acted']}; "
                             f"intents {r['intents']}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Measure, write the report, print the summary. 0, or 2 on bad arguments/data."""
    logging.basicConfig(level=logging.WARNING)
    if not snr_ok(args.snr):
        return 2
    data = Path(args.data) if args.data else default_data_dir()
    if not (data / "labels.json").is_file():
        print(f"error: picovoice data not found in {data}", file=sys.stderr)
        return 2
    for kv in args.set_option or []:
        key, eq, value = kv.partition("=")
        try:
            json.loads(value)
        except ValueError:
            eq = ""
        if not eq or not key:
            print(f"error: --set-option takes KEY=JSON, not {kv!r}", file=sys.stderr)
            return 2
    if args.seed is None:
        args.seed = DEFAULT_SEED
    from assistant.bench.accuracy import COFFEE_FILE

    args.intent_files = [str(Path(f).resolve())
                         for f in (args.custom_intents or [str(COFFEE_FILE)])]
    result = measured(measure, args)
    if result is None:
        return 2
    result["streams"] = max(1, args.streams)
    summary = summarize(result)
    command = command_line("accuracy")
    summary.update({"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "start_s": result["start_s"], "wall_s": result["wall_s"],
                    "clips_per_condition": result["clips"], "streams": result["streams"],
                    "seed": args.seed, "overrides": result["overrides"],
                    "frame_ms": FRAME_MS, "load_average": result["load_average"],
                    "server": result.get("server"),
                    "cpus": os.cpu_count(), "command": command})
    out = Path(args.out)
    write_report(out, summary, result["records"], _markdown(summary, result, command))
    for cond, c in summary["conditions"].items():
        lat = c["speech_end_to_action_ms"]
        acc = "—" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f} %"
        print(f"picovoice {cond:>5}: right {c['right']}/{c['clips']} ({acc}), wrong action "
              f"{c['wrong']}, miss {c['miss']} (asked back: {c['asked_right']} right, "
              f"{c['asked_wrong']} wrong), cut {c['cut_into_turns']}; speech end → action "
              f"P50 {lat['p50']} P90 {lat['p90']} P99 {lat['p99']} ms (n={lat['n']})")
    if "average_noisy" in summary:
        print(f"average {'/'.join(summary['average_noisy']['snrs'])} dB: "
              f"{100 * summary['average_noisy']['accuracy']:.1f} %")
    print(f"report: {out / 'report.md'}")
    return 0
