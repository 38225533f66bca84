"""``hearth bench accuracy --language zh-CN --set zh-cn``: Mandarin spoken commands, end to end.

Each clip of ../shared/data/zh-cn-speech (34 commands and questions for the demo home) is
streamed in real time (20 ms frames) over a real WebSocket into an in-process Hearth server —
the demo home with its simulated devices and embedded broker, multilingual Whisper
(``asr.model``, default ``base``), a session with ``language: zh-CN`` — clean and with the
Picovoice kitchen noise mixed in at each ``--snr``. What the server *did* is scored, not the
transcript:

* **right**: a command yields exactly one intent, the labelled one, on the labelled device,
  scene or all lights, with the values its written text gives (``Recognizer`` on the label's
  text: 百分之三十 → brightness 30), and acts (a reading below the confidence threshold is
  asked again instead: wrong here); a question or chatter labelled null yields no intent;
* **wrong**: anything else (no intent, another intent or device, a value off, an intent for
  chatter);
* **wrong acted**: a wrong clip that acted (published a command: chatter labelled null that
  moved a device); the other wrong clips yielded nothing, a reading held below the bar, or a
  question answered from the device state;
* **wrong sensitive**: a wrong clip that acted (published) on a sensitive device (the lock,
  the garage door) or with a sensitive intent (unlock, cover open).

Latency: the server's own ``speech_end_to_action`` (last voiced frame received → first publish
acknowledged) of the clips that acted, as P50 / P90.

Writes ``report.json``, ``report.md`` and ``records.jsonl`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from assistant.bench.accuracy_sets import (
    ZhItem,
    default_data_dir,
    default_zh_data_dir,
    kitchen_noise,
    zh_cn_items,
)
from assistant.bench.cli import command_line
from assistant.bench.noise import stable_seed
from assistant.bench.serve_clips import (
    ACTING,
    KEEP_S,
    client_session,
    clip_pcm,
    measured,
    pct,
    run_clip,
    snr_ok,
    write_report,
)

logger = logging.getLogger(__name__)

DEFAULT_CONDITIONS: Final = ("clean", "10")
TARGETS: Final = {"clean": 0.95, "10": 0.85, "wrong_sensitive": 0, "p50_ms": 400.0}
#: Values compared between the spoken result and the label text's recognition.
VALUE_SLOTS: Final = ("brightness", "brightness_step", "temperature", "volume", "position",
                      "color", "color_temp", "scene")
#: Intents that publish nothing (queries are answered from the device state).
NO_ACTION: Final = frozenset({"get_state", "climate_get_temperature", "cancel"})


def _expected_values(recognizer: Any, item: ZhItem) -> dict[str, Any]:
    rec = recognizer.recognize(item.text, language="zh-CN")
    if rec.intent is None or rec.intent.name != item.intent:
        return {}
    slots = rec.intent.slots.model_dump(mode="json")
    return {k: slots.get(k) for k in VALUE_SLOTS if slots.get(k) not in (None, [], {})}


def score_clip(
    item: ZhItem,
    events: Sequence[dict[str, Any]],
    *,
    expected_values: dict[str, Any],
    all_lights: Sequence[str],
    sensitive_devices: frozenset[str],
    sensitive_intents: frozenset[str],
) -> dict[str, Any]:
    """One clip's record: right / wrong / wrong sensitive, what was heard and done."""
    intents = [e["intent"] for e in events if e["type"] == "intent" and e["intent"]]
    actions = [e for e in events if e["type"] == "action" and e["final"]]
    acted = [a for a in actions if a["status"] in ACTING]
    # A question answered from the device state moves nothing (still wrong for chatter).
    moved = [a for a in acted if a.get("intent") not in NO_ACTION]
    metrics = [e for e in events if e["type"] == "metrics"]
    errors = [e["code"] for e in events if e["type"] == "error"]
    right = False
    if item.intent is None:
        right = not intents
    elif len(intents) == 1 and intents[0]["name"] == item.intent:
        slots = intents[0]["slots"]
        if item.target is None:
            target_ok = True
        elif item.target == "all lights":
            target_ok = sorted(slots.get("device_ids") or []) == sorted(all_lights)
        elif item.intent == "scene_activate":
            target_ok = slots.get("scene") == item.target
        else:
            target_ok = (slots.get("device_ids") or []) == [item.target]
        values_ok = all(
            _same(v, slots.get(k)) for k, v in expected_values.items() if k != "scene"
        )
        # A command is right only when the server acted on it (a device may still refuse:
        # dimming a light that is off); one heard with too little confidence is asked again,
        # not done. Questions and "cancel" publish nothing.
        refused = [a for a in actions
                   if a["status"] == "rejected" and "confidence" in a.get("detail", "")]
        acts = item.intent in NO_ACTION or (bool(actions) and len(refused) < len(actions))
        right = target_ok and values_ok and acts
    sensitive = any(
        a.get("device_id") in sensitive_devices or a.get("intent") in sensitive_intents
        for a in acted
    )
    timings = [m["timings_ms"].get("speech_end_to_action") for m in metrics]
    return {
        "id": item.id, "text": item.text, "expected": item.intent, "target": item.target,
        "heard": [e["text"] for e in events if e["type"] == "transcript.final"],
        "intents": [{"name": i["name"], "slots": _compact(i["slots"]),
                     "confidence": i.get("confidence")} for i in intents],
        "actions": [(a.get("device_id"), a["status"], a.get("detail", "")) for a in actions],
        "reasons": [str(e.get("reason", ""))[:300] for e in events if e["type"] == "intent"],
        "errors": errors,
        "right": right,
        "acted": bool(moved),
        "wrong_acted": (not right) and bool(moved),
        "wrong_sensitive": (not right) and sensitive,
        "utterances": len(metrics),
        "speech_end_to_action_ms": next((t for t in timings if t is not None), None),
        "timings_ms": [_compact(m["timings_ms"]) for m in metrics],
        "stop_reasons": [e.get("reason") for e in events if e["type"] == "speech.stopped"],
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), abs_tol=1e-6)
    return bool(a == b)


def _compact(slots: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in slots.items() if v not in (None, [], {}, "")}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.app import Hearth
    from assistant.config import AssistantSettings
    from devices.registry import load_config, load_demo_config
    from intents.recognizer import Recognizer
    from intents.schema import SENSITIVE_INTENTS

    config = load_demo_config() if args.config is None else load_config(args.config)
    items = zh_cn_items(Path(args.zh_data) if getattr(args, "zh_data", None) else None)
    if args.limit:
        items = items[: args.limit]
    conditions = list(args.snr or DEFAULT_CONDITIONS)
    noise = None
    if any(c != "clean" for c in conditions):
        data = Path(args.data) if args.data else default_data_dir()
        noise = kitchen_noise(data)
    model = getattr(args, "model", None) or "base"
    overrides: dict[str, Any] = {"asr.model": model}
    if args.threads:
        overrides["asr.workers"] = args.threads
    from assistant.bench.accuracy import _options

    overrides.update(_options(getattr(args, "set_option", None)))  # --set-option KEY=JSON
    settings = AssistantSettings().with_overrides(**overrides)
    recognizer = Recognizer(config)
    all_lights = [d.id for d in config.devices if d.kind == "light"]
    sensitive_devices = frozenset(d.id for d in config.devices if d.sensitive)
    expected = {it.id: _expected_values(recognizer, it) for it in items}
    hearth = Hearth(config, settings)
    t_start = time.perf_counter()
    await hearth.start()
    start_s = time.perf_counter() - t_start
    server = hearth.server(host="127.0.0.1", port=0)
    await server.start()
    records: list[dict[str, Any]] = []
    try:
        async with client_session(server.url) as (ws, inbox):
            await ws.send(json.dumps({"type": "session.update", "language": args.language}))
            while (e := await asyncio.wait_for(inbox.get(), 30))["type"] != "session.updated":
                if e["type"] == "error":
                    raise RuntimeError(f"session.update refused: {e['message']}")
            for cond in conditions:
                for k, it in enumerate(items):
                    pcm = clip_pcm(it.load(), noise, cond, stable_seed("zh-cn", it.id, cond))
                    clip = await run_clip(ws, inbox, pcm, keep_s=KEEP_S)
                    rec = score_clip(
                        it, clip.events, expected_values=expected[it.id],
                        all_lights=all_lights, sensitive_devices=sensitive_devices,
                        sensitive_intents=frozenset(str(x) for x in SENSITIVE_INTENTS),
                    )
                    rec["condition"] = cond
                    records.append(rec)
                    if not args.quiet:
                        mark = "ok" if rec["right"] else ("WRONG-SENSITIVE" if
                                                          rec["wrong_sensitive"] else "wrong")
                        print(f"[{cond:>5} {k + 1:2d}/{len(items)}] {mark:5} {it.text} | "
                              f"{' / '.join(rec['heard'])} | {rec['intents'][:1]} | "
                              f"{rec['speech_end_to_action_ms']}", file=sys.stderr)
    finally:
        await hearth.stop()
    return {"records": records, "conditions": conditions, "model": model,
            "start_s": round(start_s, 2), "language": args.language}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": result["model"], "language": result["language"],
                           "conditions": {}, "targets": TARGETS}
    for cond in result["conditions"]:
        recs = [r for r in result["records"] if r["condition"] == cond]
        lat = [r["speech_end_to_action_ms"] for r in recs
               if r["speech_end_to_action_ms"] is not None]
        n = len(recs)
        right = sum(r["right"] for r in recs)
        out["conditions"][cond] = {
            "clips": n, "right": right, "wrong": n - right,
            "wrong_acted": sum(r.get("wrong_acted", False) for r in recs),
            "wrong_sensitive": sum(r["wrong_sensitive"] for r in recs),
            "accuracy": round(right / n, 4) if n else None,
            "speech_end_to_action_ms": {"n": len(lat), "p50": pct(lat, 50),
                                        "p90": pct(lat, 90),
                                        "max": round(max(lat), 1) if lat else None},
            "wrong_ids": [r["id"] for r in recs if not r["right"]],
        }
    return out


def _markdown(summary: dict[str, Any], result: dict[str, Any], command: str) -> str:
    lines = [f"# zh-CN spoken commands ({summary['model']})", "", f"`{command}`", "",
             "| condition | clips | right | wrong | wrong acted | wrong sensitive | accuracy | "
             "speech end → action P50 / P90 ms |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for cond, c in summary["conditions"].items():
        lat = c["speech_end_to_action_ms"]
        name = "clean" if cond == "clean" else f"kitchen noise {cond} dB"
        acc = "—" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f} %"
        lines.append(f"| {name} | {c['clips']} | {c['right']} | {c['wrong']} | "
                     f"{c['wrong_acted']} | {c['wrong_sensitive']} | {acc} | "
                     f"{lat['p50']} / {lat['p90']} |")
    lines += ["", "Wrong clips:", ""]
    for r in result["records"]:
        if not r["right"]:
            acted = " **ACTED**" if r.get("wrong_acted") else ""
            lines.append(f"- {r['condition']} {r['id']} {r['text']}{acted}: heard "
                         f"{' / '.join(r['heard']) or '—'}, intents {r['intents']}, "
                         f"errors {r['errors']}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Measure, write the report, print the summary. 0, or 2 on bad arguments/data."""
    logging.basicConfig(level=logging.WARNING)
    lang = (args.language or "zh-CN")
    if not lang.lower().startswith("zh"):
        print(f"error: the zh-cn set is Mandarin; --language {lang} does not fit",
              file=sys.stderr)
        return 2
    args.language = "zh-CN"
    if not snr_ok(args.snr):
        return 2
    zh_dir = Path(args.zh_data) if getattr(args, "zh_data", None) else default_zh_data_dir()
    if not (zh_dir / "labels.json").is_file():
        print(f"error: zh-CN speech data not found in {zh_dir}", file=sys.stderr)
        return 2
    result = measured(measure, args)
    if result is None:
        return 2
    summary = summarize(result)
    out = Path(args.out)
    command = command_line("accuracy")
    summary["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary["start_s"] = result["start_s"]
    write_report(out, summary, result["records"], _markdown(summary, result, command))
    for cond, c in summary["conditions"].items():
        lat = c["speech_end_to_action_ms"]
        acc = "—" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f} %"
        print(f"zh-cn {cond:>5}: right {c['right']}/{c['clips']} ({acc}), wrong {c['wrong']} "
              f"(acted {c['wrong_acted']}), wrong sensitive {c['wrong_sensitive']}, "
              f"speech end → action P50 {lat['p50']} ms, P90 {lat['p90']} ms (n={lat['n']})")
    print(f"report: {out / 'report.md'}")
    return 0
