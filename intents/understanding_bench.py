"""``hearth bench understanding``: how many real phrasings Hearth understands, and how many it
gets wrong, per intent.

Sets (``--set``):

* ``slurp-devel``: the 118 real sentences of ``../shared/data/slurp-iot-devel`` on its
  ``home.yaml``; "right" follows the mapping table of that folder's README (see
  :func:`slurp_expectation`);
* ``ha-tests``: the Home Assistant intents test sentences (``hearth bench text``'s data), en
  and zh-cn, scored by ``intents.benchmark``;
* ``en`` / ``zh-CN``: Hearth's own sets of everyday phrasings on the demo home
  (``intents/data/understanding_<lang>.yaml``), with out-of-scope sentences;
* a path to a YAML file of the same form.

Each sentence is **right** (the action asked for, on the devices asked for), a **wrong action**
(something would be done that was not asked: another intent, other devices, a value the
sentence did not say) or **rejected** (nothing done). A result *acts* when the dispatcher would
execute it: an intent that is not a query or ``cancel``, at or above
``security.min_confidence`` (``sensitive_min_confidence`` for sensitive intents). Sentences
whose right answer is to do nothing (out of scope, a place the home lacks) count as right when
nothing acts, and as **out-of-scope acting** otherwise.

Writes ``DIR/understanding.json`` and ``DIR/understanding.md``; prints the summary.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devices.dispatcher import light_up_step
from devices.registry import DeviceKind, HomeConfig, load_config, load_demo_config
from intents.schema import (
    OPENING_INTENTS,
    QUERY_INTENTS,
    SENSITIVE_INTENTS,
    Intent,
    IntentName,
    Recognition,
)

_REPO = Path(__file__).resolve().parents[1]
SHARED = _REPO.parent / "shared" / "data"
SLURP_DIR = SHARED / "slurp-iot-devel"
OWN_SETS = {"en": _REPO / "intents" / "data" / "understanding_en.yaml",
            "zh-CN": _REPO / "intents" / "data" / "understanding_zh-CN.yaml"}
SETS = ("slurp-devel", "ha-tests", "en", "zh-CN")

#: An expectation: None = nothing may act; else a list of acceptable outcomes, each a dict
#: with ``name`` and optional ``device_ids`` (exact set), ``device_ids_any`` (list of
#: acceptable sets), and slot checks (``brightness_step: "<0"``, ``color: red``, ...).
Expect = list[dict[str, Any] | None] | None


@dataclass
class Case:
    text: str
    expect: Expect
    intent_label: str
    language: str | None = None
    area: str | None = None
    also: list[dict[str, Any]] = field(default_factory=list)


# -- acting and comparing ---------------------------------------------------------------------


def acts(intent: Intent | None, config: HomeConfig) -> bool:
    """Whether the dispatcher would execute this intent."""
    if intent is None or intent.name in QUERY_INTENTS or intent.name == IntentName.CANCEL:
        return False
    by_id = {d.id: d for d in config.devices}
    sensitive = intent.name in SENSITIVE_INTENTS or (
        intent.name in OPENING_INTENTS
        and any(by_id[i].sensitive for i in intent.slots.device_ids if i in by_id))
    need = (config.security.sensitive_min_confidence if sensitive
            else config.security.min_confidence)
    return intent.confidence >= need


def _slot_ok(want: Any, got: Any) -> bool:
    if isinstance(want, str) and re.fullmatch(r"[<>]=?-?\d+(\.\d+)?", want):
        if got is None:
            return False
        op, num = re.match(r"([<>]=?)(-?\d+(?:\.\d+)?)", want).groups()  # type: ignore[union-attr]
        n = float(num)
        return bool({"<": got < n, "<=": got <= n, ">": got > n, ">=": got >= n}[op])
    if want == "*":
        return got is not None
    if isinstance(want, float | int) and isinstance(got, float | int):
        return float(want) == float(got)
    return bool(want == got)


def matches(intent: Intent, outcome: Mapping[str, Any]) -> bool:
    up = light_up_step(intent)
    if up is not None and outcome["name"] == IntentName.LIGHT_SET \
            and _slot_ok(outcome.get("brightness_step"), up):
        # "light up": a light-on the dispatcher makes a brighter step when the light is on
        intent = intent.model_copy(update={
            "name": IntentName.LIGHT_SET,
            "slots": intent.slots.model_copy(update={"brightness_step": up})})
    if intent.name != outcome["name"]:
        return False
    ids = set(intent.slots.device_ids)
    if "device_ids" in outcome and ids != set(outcome["device_ids"]):
        return False
    if "device_ids_any" in outcome and not any(ids == set(x) for x in outcome["device_ids_any"]):
        return False
    slots = intent.slots.model_dump()
    for k, v in outcome.items():
        if k in ("name", "device_ids", "device_ids_any"):
            continue
        if k == "any_of":  # at least one of these slot checks
            if not any(_slot_ok(vv, slots.get(kk)) for kk, vv in v.items()):
                return False
            continue
        if not _slot_ok(v, slots.get(k)):
            return False
    return True


def judge(case: Case, rec: Recognition, config: HomeConfig) -> str:
    """``right``, ``wrong`` or ``rejected``."""
    intent = rec.intent
    doing = acts(intent, config)
    if case.expect is None:
        return "wrong" if doing or any(acts(a, config) for a in rec.also) else "right"
    outcomes = [o for o in case.expect if o is not None]
    if len(outcomes) < len(case.expect) and not doing and (
            intent is None or intent.name not in QUERY_INTENTS):
        return "right"  # nothing done, and nothing was one of the acceptable outcomes
    if intent is None:
        return "rejected"
    ok = any(matches(intent, o) for o in outcomes)
    if ok and case.also:
        ok = len(rec.also) >= len(case.also) and all(
            any(matches(a, o) for a in rec.also) for o in case.also)
    if ok and (doing or intent.name in QUERY_INTENTS):
        return "right"
    if ok:
        return "rejected"  # the right reading, below the confidence the dispatcher needs
    if doing or intent.name in QUERY_INTENTS:
        return "wrong"
    return "rejected"


# -- sets -----------------------------------------------------------------------------------


def load_yaml_set(path: Path) -> tuple[HomeConfig, list[Case]]:
    """``{config: optional path, language: .., cases: [{text, expect|null, intent?, area?,
    also?}]}``; ``expect`` is one outcome or a list of acceptable ones (null among them:
    doing nothing is acceptable too)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cfg_path = doc.get("config")
    config = load_demo_config() if not cfg_path else load_config(path.parent / cfg_path)
    lang = doc.get("language")
    cases: list[Case] = []
    for c in doc.get("cases") or []:
        exp = c.get("expect")
        expect: Expect = None if exp is None else (exp if isinstance(exp, list) else [exp])
        named = [o for o in expect or () if o is not None]
        label = c.get("intent") or (named[0]["name"] if named else "out_of_scope")
        also = c.get("also") or []
        cases.append(Case(str(c["text"]), expect, label, c.get("language", lang), c.get("area"),
                          also if isinstance(also, list) else [also]))
    return config, cases


_PLACE_WHOLE = {"house", "home", "apartment", "flat", "my house", "the house", "my apartment",
                "all", "everywhere", "whole house", "my home", "interior", "indoor", "inside"}
#: Places no SLURP home has that the annotation sometimes leaves unmarked.
_PLACES_ELSEWHERE = ("closet", "outdoor", "outside", "garden", "porch", "yard", "patio",
                     "basement", "attic", "balcony", "drawing", "garden", "terrace")
_PLACE_HERE = {"here", "in here", "room", "my room", "this room", "a room", "the room",
               "down here"}


def _slots(annotation: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2).strip())
            for m in re.finditer(r"\[([a-z_]+) : ([^\]]+)\]", annotation)]


def slurp_expectation(row: Mapping[str, Any], config: HomeConfig,
                      speaker_area: str | None) -> Case:
    """The README's mapping table as code. A place or device the home lacks → nothing acts."""
    intent = str(row["intent"])
    text = str(row["sentence"])
    slots = _slots(str(row.get("annotation", "")))
    lights = sorted(d.id for d in config.devices if d.kind == DeviceKind.LIGHT)
    area_names: dict[str, str] = {}
    for a in config.areas:
        for n in (a.name, *a.aliases):
            area_names[n.lower()] = a.id
    device_names: dict[str, str] = {}
    for d in config.devices:
        for n in (d.name, *d.aliases):
            device_names[n.lower()] = d.id

    def missing(msg: str) -> Case:
        return Case(text, None, f"{intent} ({msg})")

    targets_any: list[list[str]] = []
    place_named = False
    words = set(re.findall(r"[a-z]+", text.lower()))
    elsewhere = [w for w in _PLACES_ELSEWHERE if w in words]
    if elsewhere and intent.startswith("iot_hue"):
        return missing(f"no place {elsewhere[0]!r}")
    for typ, val in slots:
        v = val.lower()
        if typ == "house_place":
            place_named = True
            if v in _PLACE_WHOLE or any(w in v.split() for w in ("house", "apartment", "flat",
                                                                 "home")):
                targets_any.append(lights)
            elif v in _PLACE_HERE or (v.split()[-1] == "room" and v.split()[0] in ("my", "this")):
                if speaker_area is None:
                    return Case(text, [], f"{intent} (speaker's room)")
                targets_any.append([d.id for d in config.devices
                                    if d.kind == DeviceKind.LIGHT and d.area == speaker_area])
            elif v.replace(" ", "") in {k.replace(" ", "") for k in area_names}:
                aid = next(i for k, i in area_names.items()
                           if k.replace(" ", "") == v.replace(" ", ""))
                targets_any.append([d.id for d in config.devices
                                    if d.kind == DeviceKind.LIGHT and d.area == aid])
            else:
                return missing(f"no place {val!r}")
        if typ == "device_type" and intent.startswith("iot_hue"):
            generic = {"light", "lights", "lamp", "lamps", "lighting", "bulb", "bulbs"}
            v = v.replace("'s", "")
            if v in device_names:
                targets_any.append([device_names[v]])
            elif not set(v.split()) <= generic | {"all", "the", "my", "lamp", "every", "each"}:
                known = [i for n, i in device_names.items() if n in v]
                if not known:
                    return missing(f"no device {val!r}")
                targets_any.append(sorted(set(known)))
    if not targets_any and not place_named:
        targets_any = [lights]
        if speaker_area is not None:
            targets_any.append([d.id for d in config.devices
                                if d.kind == DeviceKind.LIGHT and d.area == speaker_area])
    light_target: dict[str, Any] = {"device_ids_any": targets_any}
    if intent in ("iot_hue_lighton", "iot_hue_lightoff"):
        name = "light_on" if intent.endswith("on") else "light_off"
        return Case(text, [{"name": name, **light_target}], intent)
    if intent == "iot_hue_lightdim":
        return Case(text, [{"name": "light_set", **light_target, "brightness_step": "<0"},
                           {"name": "light_set", **light_target, "brightness": "<=50"}], intent)
    if intent == "iot_hue_lightup":
        return Case(text, [{"name": "light_set", **light_target, "brightness_step": ">0"},
                           {"name": "light_set", **light_target, "brightness": ">=50"}], intent)
    if intent == "iot_hue_lightchange":
        colours = [v.lower() for t, v in slots if t == "color_type"]
        from intents.robust_lexicon import COLOR_TEMP_EN, COLORS_EN

        named = [c for c in colours if c in COLORS_EN]
        if named:
            return Case(text, [{"name": "light_set", **light_target, "color": named[-1]}], intent)
        temp = [c for c in colours if c in COLOR_TEMP_EN]
        if temp:
            return Case(text, [{"name": "light_set", **light_target,
                                "color_temp_kelvin": "*"}], intent)
        return Case(text, [{"name": "light_set", **light_target,
                            "any_of": {"color": "*", "color_temp_kelvin": "*",
                                       "brightness": "*", "brightness_step": "*"}}], intent)
    if intent in ("iot_wemo_on", "iot_wemo_off"):
        for typ, val in slots:
            if typ == "device_type":
                v = val.lower()
                if not any(w in v for w in ("plug", "socket", "wemo", "outlet")):
                    return missing(f"no device {val!r}")
        plugs = sorted(d.id for d in config.devices if d.kind == DeviceKind.SWITCH and any(
            w in n.lower() for n in (d.name, *d.aliases) for w in ("plug", "socket", "wemo")))
        name = "switch_on" if intent.endswith("on") else "switch_off"
        return Case(text, [{"name": name, "device_ids": plugs}], intent)
    if intent == "iot_cleaning":
        vac_kind = getattr(DeviceKind, "VACUUM", None)
        vacs = sorted(d.id for d in config.devices if vac_kind and d.kind == vac_kind)
        if not vacs:
            return missing("no vacuum")
        return Case(text, [{"name": n, "device_ids": vacs}
                           for n in ("vacuum_start", "vacuum_clean_area")], intent)
    if intent == "iot_coffee":
        machines = sorted(d.id for d in config.devices if d.kind == DeviceKind.SWITCH
                          and "coffee" in " ".join((d.name, *d.aliases)).lower())
        if not machines:
            return missing("no coffee machine")
        return Case(text, [{"name": "switch_on", "device_ids": machines}], intent)
    return missing("not a home intent")


def load_slurp(data: Path, speaker_area: str | None) -> tuple[HomeConfig, list[Case]]:
    config = load_config(data / "home.yaml")
    cases = []
    for line in (data / "devel-iot.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            cases.append(slurp_expectation(json.loads(line), config, speaker_area))
    return config, cases


# -- running ----------------------------------------------------------------------------------


def run_cases(config: HomeConfig, cases: Sequence[Case],
              recognize: Callable[[Case], Recognition]) -> dict[str, Any]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    times: list[float] = []
    by_source: dict[str, list[float]] = defaultdict(list)
    rows: list[dict[str, Any]] = []
    oos_total = oos_acting = asked_room = 0
    for case in cases:
        t0 = time.perf_counter()
        rec = recognize(case)
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        by_source[rec.intent.source if rec.intent else "rejected"].append(ms)
        verdict = judge(case, rec, config)
        asked_room += verdict == "rejected" and rec.needs_area
        per[case.intent_label if case.expect is not None else "out_of_scope"][verdict] += 1
        if case.expect is None:
            oos_total += 1
            oos_acting += verdict == "wrong"
        i = rec.intent
        rows.append({
            "text": case.text, "intent": case.intent_label, "verdict": verdict,
            "expected": case.expect,
            "got": None if i is None else {
                "name": i.name, "device_ids": i.slots.device_ids,
                **{k: v for k, v in i.slots.model_dump(exclude_none=True).items()
                   if k not in ("device_ids", "custom", "domain", "area", "floor")},
                "source": i.source, "confidence": i.confidence},
            "also": [a.name for a in rec.also], "reason": rec.reason, "ms": round(ms, 2)})
    total = Counter[str]()
    for c in per.values():
        total.update(c)
    n = len(cases)
    scored = n - oos_total
    right_scored = sum(c["right"] for k, c in per.items() if k != "out_of_scope")
    return {
        "sentences": n,
        "right": total["right"], "wrong": total["wrong"], "rejected": total["rejected"],
        # rejected because "here" was said with no room known: the server asks which room
        "rejected_asking_room": asked_room,
        "right_pct": round(100 * total["right"] / n, 1) if n else None,
        "wrong_pct": round(100 * total["wrong"] / n, 2) if n else None,
        "in_scope": scored, "in_scope_right": right_scored,
        "out_of_scope": oos_total, "out_of_scope_acting": oos_acting,
        "out_of_scope_acting_pct": round(100 * oos_acting / oos_total, 2) if oos_total else 0.0,
        "ms_p50": round(statistics.median(times), 2) if times else None,
        "ms_p95": round(_pct(times, 95), 2) if times else None,
        "ms_p95_by_source": {k: round(_pct(v, 95), 2) for k, v in sorted(by_source.items())},
        "per_intent": {k: dict(v) for k, v in sorted(per.items())},
        "rows": rows,
    }


def _pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def _recognizer(config: HomeConfig) -> Any:
    from intents.recognizer import Recognizer

    return Recognizer(config)


def run_set(name: str, *, area: str | None = None, data: Path | None = None) -> dict[str, Any]:
    if name == "ha-tests":
        from intents import benchmark

        reports = [benchmark.run_language(data or benchmark.DEFAULT_DATA, lang)
                   for lang in ("en", "zh-cn")]
        out: dict[str, Any] = {"set": name, "languages": []}
        for r in reports:
            out["languages"].append({k: r[k] for k in (
                "language", "scored", "correct", "accuracy", "wrong_device_actions",
                "sentences_run", "seconds", "sources")} | {"failures": r["failures"],
                                                            "wrong_device": r["wrong_device"]})
        return out
    if name == "slurp-devel":
        config, cases = load_slurp(data or SLURP_DIR, area)
    elif name in OWN_SETS:
        config, cases = load_yaml_set(OWN_SETS[name])
    else:
        config, cases = load_yaml_set(Path(name))
    rec = _recognizer(config)
    rec.recognize("warm up", language=cases[0].language if cases else None)

    def recognize(c: Case) -> Recognition:
        return rec.recognize(c.text, language=c.language, area=c.area or area)  # type: ignore[no-any-return]

    report = run_cases(config, cases, recognize)
    report["set"] = name
    report["area"] = area
    robust = getattr(rec, "_robust", None)
    if robust is not None:  # the robust tier alone, on every sentence
        from intents.languages import has_cjk

        times = []
        for c in cases:
            lang = c.language or ("zh-CN" if has_cjk(c.text) else config.language or "en")
            t0 = time.perf_counter()
            robust.analyze(c.text, lang, area=c.area or area)
            times.append((time.perf_counter() - t0) * 1000)
        report["robust_ms_p50"] = round(statistics.median(times), 2)
        report["robust_ms_p95"] = round(_pct(times, 95), 2)
    return report


def markdown(report: Mapping[str, Any]) -> str:
    if report["set"] == "ha-tests":
        lines = ["| language | scored | right | accuracy | wrong-device actions | run |",
                 "|---|---:|---:|---:|---:|---:|"]
        for r in report["languages"]:
            lines.append(f"| {r['language']} | {r['scored']} | {r['correct']} | "
                         f"{100 * (r['accuracy'] or 0):.1f} % | {r['wrong_device_actions']} | "
                         f"{r['sentences_run']} |")
        return "\n".join(lines) + "\n"
    r = report
    lines = [
        f"Set `{r['set']}`" + (f", speaker's area `{r['area']}`" if r.get("area") else "")
        + f": {r['sentences']} sentences — **{r['right_pct']} % right**, "
        f"{r['wrong']} wrong actions ({r['wrong_pct']} %), {r['rejected']} rejected"
        + (f" ({r['rejected_asking_room']} of them ask which room you're in)"
           if r.get("rejected_asking_room") else "") + "; "
        f"out-of-scope acting {r['out_of_scope_acting']}/{r['out_of_scope']} "
        f"({r['out_of_scope_acting_pct']} %); p50 {r['ms_p50']} ms, p95 {r['ms_p95']} ms "
        "per sentence"
        + (f" (robust tier alone: p50 {r['robust_ms_p50']} ms, p95 {r['robust_ms_p95']} ms)"
           if "robust_ms_p95" in r else "") + ".",
        "",
        "| intent | right | wrong action | rejected |",
        "|---|---:|---:|---:|",
    ]
    for k, c in r["per_intent"].items():
        lines.append(f"| {k} | {c.get('right', 0)} | {c.get('wrong', 0)} | "
                     f"{c.get('rejected', 0)} |")
    bad = [x for x in r["rows"] if x["verdict"] != "right"]
    if bad:
        lines += ["", "Not right:", "", "| sentence | verdict | got | reason |",
                  "|---|---|---|---|"]
        for x in bad:
            got = x["got"]
            g = "—" if got is None else f"{got['name']} {','.join(got['device_ids'])}"
            lines.append(f"| {x['text']} | {x['verdict']} | {g} | "
                         f"{x['reason'].replace('|', '/')[:120]} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", required=True,
                        help=f"{', '.join(SETS)}, or a YAML file of cases")
    parser.add_argument("--out", required=True, help="directory for understanding.json/.md")
    parser.add_argument("--area", default=None,
                        help="the speaker's area id for sentences without their own")
    parser.add_argument("--data", default=None, help="data directory (slurp-devel, ha-tests)")


def run(args: argparse.Namespace) -> int:
    name = str(args.set)
    if name not in SETS and not Path(name).is_file():
        print(f"error: unknown set {name!r} (choose from {', '.join(SETS)} or a YAML file)",
              file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else None
    need = data or (SLURP_DIR if name == "slurp-devel" else None)
    if name == "slurp-devel" and need is not None and not (need / "devel-iot.jsonl").is_file():
        print(f"error: no devel-iot.jsonl under {need}", file=sys.stderr)
        return 2
    report = run_set(name, area=args.area, data=data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "understanding.json").write_text(json.dumps(report, ensure_ascii=False, indent=2),
                                            encoding="utf-8")
    md = markdown(report)
    (out / "understanding.md").write_text(md, encoding="utf-8")
    print(md.split("\n\n", 1)[0] if report["set"] != "ha-tests" else md)
    return 0
