"""Text → intent benchmark over the home-assistant/intents test sentences.

Each language directory holds ``_fixtures.yaml`` (areas, floors, entities) and YAML files of
sentences with the expected Home Assistant intent and slots. We turn the fixtures into a Hearth
home, translate every expectation into our intent, resolved device ids and value slots (with
code independent of the recognizer's own mapping), recognize every sentence and score:

* **accuracy**: intent name, the set of ``device_ids`` and every value slot exactly right, over
  the in-scope files (light, switch/homeassistant on-off, climate, cover, lock, fan, media,
  scene, never-mind);
* **wrong-device actions**: over *all* files, sentences whose result would act on a device the
  sentence did not ask for (queries and ``cancel`` never act).

Wired by the lead as ``hearth bench text --out DIR [--languages en,zh-cn] [--data DIR]``;
writes ``DIR/text_intents.json`` and ``DIR/text_intents.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devices.registry import Area, Device, DeviceKind, Floor, HomeConfig, Scene
from intents.recognizer import Recognizer, says_here
from intents.schema import Intent, IntentName

#: Where the shared data lives relative to the repository (``../shared/data``).
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / (
    "home-assistant-intents-tests"
)

#: Files scored for accuracy (prefix before ``_Hass``) and the per-intent test folders.
SCOPE_DOMAINS = ("light", "switch", "homeassistant", "climate", "cover", "lock", "fan",
                 "media_player", "scene")
#: Home Assistant intents Hearth has an equivalent for; others are out of scope.
SCOPE_INTENTS = frozenset({
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateSetTemperature",
    "HassClimateGetTemperature", "HassGetState", "HassSetPosition", "HassMediaPause",
    "HassMediaUnpause", "HassMediaNext", "HassSetVolume", "HassNevermind",
})

_KINDS = {k.value: k for k in DeviceKind}
_VALUE_SLOTS = ("brightness", "brightness_step", "color", "color_temp_kelvin", "temperature",
                "position", "volume", "scene")
_NO_ACTION = frozenset({IntentName.GET_STATE, IntentName.CLIMATE_GET_TEMPERATURE,
                        IntentName.CANCEL})


# -- fixtures → home ------------------------------------------------------------------------


@dataclass
class Entity:
    ha_id: str
    name: str
    domain: str
    area: str | None
    device_class: str | None
    hearth_id: str


@dataclass
class Fixture:
    """The test home: a Hearth config plus what the expectations need to look things up."""

    config: HomeConfig
    entities: list[Entity]
    area_by_name: dict[str, str]
    floor_by_name: dict[str, str]
    area_floor: dict[str, str | None]

    def area_id(self, name: Any) -> str | None:
        """Area id for a name as the tests write it (zh-cn tests sometimes use the id)."""
        if not name:
            return None
        key = str(name).casefold()
        if key in self.area_by_name:
            return self.area_by_name[key]
        return _hearth_id(str(name)) if _hearth_id(str(name)) in self.area_floor else None


def _hearth_id(ha_id: str) -> str:
    return re.sub(r"[^a-z0-9_\-]", "_", ha_id.lower().replace(".", "-", 1))


def build_fixture(fixture: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Fixture:
    """A Hearth home from ``_fixtures.yaml`` (plus a test file's own areas/entities)."""
    extra = extra or {}
    floors: list[Floor] = []
    floor_by_name: dict[str, str] = {}
    for f in fixture.get("floors") or []:
        fid = _hearth_id(str(f["id"]))
        floors.append(Floor(id=fid, name=str(f["name"])))
        floor_by_name[str(f["name"]).casefold()] = fid
    areas: list[Area] = []
    area_by_name: dict[str, str] = {}
    area_floor: dict[str, str | None] = {}
    for a in [*(fixture.get("areas") or []), *(extra.get("areas") or [])]:
        aid = _hearth_id(str(a.get("id") or a["name"]))
        if aid in area_floor or str(a["name"]).casefold() in area_by_name:
            continue
        floor = _hearth_id(str(a["floor"])) if a.get("floor") else None
        areas.append(Area(id=aid, name=str(a["name"]), floor=floor))
        area_by_name[str(a["name"]).casefold()] = aid
        area_floor[aid] = floor
    entities: list[Entity] = []
    devices: dict[str, Device] = {}
    scenes: dict[str, Scene] = {}
    extra_entities = []
    for i, e in enumerate(extra.get("entities") or []):
        domain = str(e.get("domain") or str(e.get("id", "x.x")).split(".")[0])
        extra_entities.append({**e, "id": e.get("id") or f"{domain}.extra_{i}"})
    for e in [*(fixture.get("entities") or []), *extra_entities]:
        ha_id = str(e["id"])
        domain = ha_id.split(".", 1)[0]
        name = str(e["name"])
        area = area_by_name.get(str(e["area"]).casefold()) if e.get("area") else None
        if e.get("area") and area is None:
            area = _hearth_id(str(e["area"])) if _hearth_id(str(e["area"])) in area_floor else None
        attrs = e.get("attributes") or {}
        hid = _hearth_id(ha_id)
        entities.append(Entity(ha_id, name, domain, area, attrs.get("device_class"), hid))
        if domain == "scene":
            scenes[hid] = Scene(id=hid, name=name)
        elif domain in _KINDS:
            if hid in devices:  # the zh-cn fixture names one thermostat twice
                devices[hid].aliases.append(name)
                continue
            devices[hid] = Device(id=hid, name=name, area=area, kind=_KINDS[domain],
                                  adapter="homeassistant")  # type: ignore[arg-type]
    config = HomeConfig(name="intents test home", language=str(fixture.get("language", "en")),
                        floors=floors, areas=areas, devices=list(devices.values()),
                        scenes=list(scenes.values()))
    return Fixture(config, entities, area_by_name, floor_by_name, area_floor)


# -- expectations -----------------------------------------------------------------------------


@dataclass
class Expected:
    name: str
    device_ids: frozenset[str]
    values: dict[str, Any] = field(default_factory=dict)


class Unsupported(Exception):
    """The expectation has no Hearth equivalent (out of scope)."""


def _targets(fx: Fixture, slots: Mapping[str, Any], domains: Iterable[str]) -> list[Entity]:
    allowed = set(domains)
    if slots.get("domain"):
        allowed &= {str(slots["domain"])}
    found = [e for e in fx.entities if e.domain in allowed]
    if slots.get("name") and slots["name"] != "all":  # "all": every matching entity
        wanted = str(slots["name"]).casefold()
        found = [e for e in found if e.name.casefold() == wanted]
        if not found:
            raise Unsupported(f"no supported entity named {slots['name']!r}")
        return found
    if slots.get("area"):
        aid = fx.area_id(slots["area"])
        found = [e for e in found if e.area is not None and e.area == aid]
    if slots.get("floor"):
        fid = fx.floor_by_name.get(str(slots["floor"]).casefold())
        found = [e for e in found if e.area is not None and fx.area_floor.get(e.area) == fid]
    if slots.get("device_class"):
        found = [e for e in found if e.device_class == slots["device_class"]]
    return found


def expected_for(fx: Fixture, intent: str, slots: Mapping[str, Any]) -> Expected:
    """Our intent for a Home Assistant expectation. Raises :class:`Unsupported`."""
    vacuum = {"HassVacuumStart": "vacuum_start", "HassVacuumReturnToBase": "vacuum_return"}
    if intent in vacuum and any(e.domain == "vacuum" for e in fx.entities):
        # not scored (vacuum files are out of scope), but acting on the robot is not wrong
        ents = [e for e in fx.entities if e.domain == "vacuum"]
        return Expected(vacuum[intent], frozenset(e.hearth_id for e in ents))
    if intent not in SCOPE_INTENTS:
        raise Unsupported(intent)
    if intent == "HassNevermind":
        return Expected(IntentName.CANCEL, frozenset())
    on_names = {"light": "light_on", "switch": "switch_on", "fan": "fan_on",
                "cover": "cover_open", "lock": "lock"}
    off_names = {"light": "light_off", "switch": "switch_off", "fan": "fan_off",
                 "cover": "cover_close", "lock": "unlock", "media_player": "media_pause"}
    if intent in ("HassTurnOn", "HassTurnOff"):
        table = on_names if intent == "HassTurnOn" else off_names
        scenes = [e for e in fx.entities if e.domain == "scene"
                  and e.name.casefold() == str(slots.get("name", "")).casefold()]
        if scenes and intent == "HassTurnOn":
            return Expected(IntentName.SCENE_ACTIVATE, frozenset(),
                            {"scene": scenes[0].hearth_id})
        ents = _targets(fx, slots, table)
        if not ents and slots.get("domain") in table:
            return Expected(table[str(slots["domain"])], frozenset())
        domains = {e.domain for e in ents}
        if len(domains) != 1:
            raise Unsupported(f"targets span {sorted(domains)}")
        return Expected(table[domains.pop()], frozenset(e.hearth_id for e in ents))
    if intent == "HassLightSet":
        ents = _targets(fx, slots, ["light"])
        values: dict[str, Any] = {}
        if "brightness" in slots:
            values["brightness"] = int(slots["brightness"])
        if "color" in slots:
            values["color"] = str(slots["color"])
        if "temperature" in slots:
            values["color_temp_kelvin"] = int(slots["temperature"])
        return Expected(IntentName.LIGHT_SET, frozenset(e.hearth_id for e in ents), values)
    if intent == "HassClimateSetTemperature":
        ents = _targets(fx, slots, ["climate"])
        return Expected(IntentName.CLIMATE_SET_TEMPERATURE,
                        frozenset(e.hearth_id for e in ents),
                        {"temperature": float(slots["temperature"])})
    if intent == "HassClimateGetTemperature":
        ents = _targets(fx, slots, ["climate"])
        return Expected(IntentName.CLIMATE_GET_TEMPERATURE, frozenset(e.hearth_id for e in ents))
    if intent == "HassGetState":
        ents = _targets(fx, slots, _KINDS)
        return Expected(IntentName.GET_STATE, frozenset(e.hearth_id for e in ents))
    if intent == "HassSetPosition":
        ents = _targets(fx, slots, ["cover"])
        if not ents:
            raise Unsupported("no cover")
        return Expected(IntentName.COVER_SET_POSITION, frozenset(e.hearth_id for e in ents),
                        {"position": int(slots["position"])})
    media = {"HassMediaPause": "media_pause", "HassMediaUnpause": "media_resume",
             "HassMediaNext": "media_next", "HassSetVolume": "media_set_volume"}
    ents = _targets(fx, slots, ["media_player"])
    values = {"volume": int(slots["volume_level"])} if intent == "HassSetVolume" else {}
    return Expected(media[intent], frozenset(e.hearth_id for e in ents), values)


# -- running ------------------------------------------------------------------------------------


@dataclass
class FileStats:
    scored: int = 0
    correct: int = 0
    unsupported: int = 0
    wrong_device: int = 0


def _in_scope(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) == 2:  # per-intent folders: HassTurnOn/area_domain.yaml
        return parts[0] in SCOPE_INTENTS
    prefix, _, intent = parts[0].removesuffix(".yaml").partition("_")
    return prefix in SCOPE_DOMAINS and intent in SCOPE_INTENTS


def understood_but_impossible(reason: str) -> bool:
    """A rejection saying the request was understood but nothing in the home matches it
    ("no windows in Kitchen"), as opposed to "nothing matched" or an unknown name."""
    return (reason.startswith(("no intent: no ", "no intent: there is no "))
            and " called " not in reason)


def _compare(exp: Expected, got: Intent | None, reason: str = "") -> tuple[bool, bool]:
    """(correct, wrong_device)."""
    if got is None:
        # A request for devices the home does not have ("any shades open outside?") is right
        # to reject, provided the rejection shows the sentence was understood.
        empty = not exp.device_ids and exp.name not in ("cancel", "scene_activate")
        return empty and understood_but_impossible(reason), False
    ids = frozenset(got.slots.device_ids)
    wrong = got.name not in _NO_ACTION and bool(ids - exp.device_ids)
    if got.name == IntentName.SCENE_ACTIVATE and got.slots.scene != exp.values.get("scene"):
        wrong = True
    if got.name != exp.name or ids != exp.device_ids:
        return False, wrong
    for slot in _VALUE_SLOTS:
        want = exp.values.get(slot)
        have = getattr(got.slots, slot)
        if isinstance(want, float) or isinstance(have, float):
            if want is None or have is None or abs(float(want) - float(have)) > 1e-6:
                return False, wrong
        elif want != have:
            return False, wrong
    return True, wrong


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_language(data_dir: Path, language: str, *, hearth_templates: bool = True
                 ) -> dict[str, Any]:
    """Benchmark one language folder (``en``, ``zh-cn``); returns the JSON-able report."""
    lang_dir = data_dir / language
    fixture = _load(lang_dir / "_fixtures.yaml")
    base = build_fixture(fixture)
    base_rec = Recognizer(base.config, hearth_templates=hearth_templates)
    files: dict[str, FileStats] = {}
    failures: list[dict[str, Any]] = []
    wrong: list[dict[str, Any]] = []
    sources: Counter[str] = Counter()
    unsupported_why: Counter[str] = Counter()
    started = time.perf_counter()
    n_sentences = 0
    for path in sorted(lang_dir.rglob("*.yaml")):
        rel = path.relative_to(lang_dir).as_posix()
        if path.name.startswith("_"):
            continue
        doc = _load(path) or {}
        folder_intent = rel.split("/")[0] if "/" in rel else None
        fx, rec = base, base_rec
        if folder_intent and (doc.get("entities") or doc.get("areas")):
            fx = build_fixture(fixture, doc)
            rec = Recognizer(fx.config, hearth_templates=hearth_templates)
        stats = files.setdefault(rel, FileStats())
        scope = _in_scope(rel)
        for test in doc.get("tests") or []:
            spec = test.get("intent") or {}
            intent_name = spec.get("name") or folder_intent or ""
            slots = spec.get("slots") if "slots" in spec else test.get("slots") or {}
            ctx = spec.get("context") or test.get("context") or {}
            ctx_area = fx.area_id(ctx.get("area"))
            try:
                exp: Expected | None = expected_for(fx, intent_name, slots or {})
            except Unsupported as e:
                exp = None
                unsupported_why[str(e)] += 1
            for sentence in test.get("sentences") or []:
                n_sentences += 1
                result = rec.recognize(str(sentence), language=language, area=ctx_area)
                got = result.intent
                if got is not None:
                    sources[got.source] += 1
                if exp is not None and ctx_area is None and says_here(str(sentence)):
                    # "the lights in here" with no room known: Hearth must ask for the room
                    # rather than act on the whole home (the data expects the whole home)
                    here_ok = got is None and "which room" in result.reason
                    if scope:
                        stats.scored += 1
                        stats.correct += here_ok
                        if not here_ok:
                            failures.append(_row(rel, sentence, intent_name, slots, exp, got,
                                                 result.reason))
                    if got is not None and got.name not in _NO_ACTION:
                        stats.wrong_device += 1
                        wrong.append(_row(rel, sentence, intent_name, slots, exp, got))
                    continue
                if exp is None:
                    acts = got is not None and got.name not in _NO_ACTION and bool(
                        got.slots.device_ids or got.slots.scene)
                    if scope:
                        stats.unsupported += 1
                    if acts:
                        stats.wrong_device += 1
                        wrong.append(_row(rel, sentence, intent_name, slots, None, got))
                    continue
                ok, bad = _compare(exp, got, result.reason)
                if bad:
                    stats.wrong_device += 1
                    wrong.append(_row(rel, sentence, intent_name, slots, exp, got))
                if not scope:
                    continue
                stats.scored += 1
                if ok:
                    stats.correct += 1
                else:
                    failures.append(_row(rel, sentence, intent_name, slots, exp, got,
                                         result.reason))
    scored = sum(s.scored for s in files.values())
    correct = sum(s.correct for s in files.values())
    return {
        "language": language,
        "hearth_templates": hearth_templates,
        "sentences_run": n_sentences,
        "scored": scored,
        "correct": correct,
        "accuracy": round(correct / scored, 4) if scored else None,
        "unsupported_in_scope": sum(s.unsupported for s in files.values()),
        "wrong_device_actions": sum(s.wrong_device for s in files.values()),
        "seconds": round(time.perf_counter() - started, 2),
        "sources": dict(sources),
        "unsupported_reasons": dict(unsupported_why.most_common()),
        "files": {k: vars(v) for k, v in sorted(files.items()) if v.scored or v.wrong_device},
        "failures": failures,
        "wrong_device": wrong,
    }


def _row(rel: str, sentence: Any, intent: str, slots: Any, exp: Expected | None,
         got: Intent | None, reason: str = "") -> dict[str, Any]:
    return {
        "file": rel,
        "sentence": str(sentence),
        "ha": {"intent": intent, "slots": slots},
        "expected": None if exp is None else {
            "name": exp.name, "device_ids": sorted(exp.device_ids), **exp.values},
        "got": None if got is None else {
            "name": got.name, "device_ids": got.slots.device_ids,
            **{k: getattr(got.slots, k) for k in _VALUE_SLOTS if getattr(got.slots, k) is not None},
            "source": got.source, "confidence": got.confidence},
        "reason": reason,
    }


def markdown(reports: list[dict[str, Any]]) -> str:
    """The summary table (and per-file breakdown) for docs/benchmarks.md."""
    lines = ["| language | scored sentences | exact intent + slots | accuracy | "
             "wrong-device actions (all files) | sentences run |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in reports:
        acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        label = r["language"] + ("" if r.get("hearth_templates", True) else " (HA data only)")
        lines.append(f"| {label} | {r['scored']} | {r['correct']} | {acc} | "
                     f"{r['wrong_device_actions']} | {r['sentences_run']} |")
    for r in reports:
        lines += ["", f"### {r['language']} per file", "",
                  "| file | scored | correct | wrong device |", "|---|---:|---:|---:|"]
        for name, s in r["files"].items():
            lines.append(f"| {name} | {s['scored']} | {s['correct']} | {s['wrong_device']} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hearth bench text``."""
    parser.add_argument("--out", required=True, help="directory for text_intents.json/.md")
    parser.add_argument("--languages", default="en,zh-cn",
                        help="comma-separated test folders (default: en,zh-cn)")
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="home-assistant-intents tests directory")
    parser.add_argument("--no-hearth-templates", action="store_true",
                        help="ablation: only the home-assistant-intents sentence data")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; prints the table; returns 0 (or 2 when the data is missing)."""
    data = Path(args.data)
    out = Path(args.out)
    langs = [x.strip() for x in str(args.languages).split(",") if x.strip()]
    missing = [lang for lang in langs if not (data / lang / "_fixtures.yaml").is_file()]
    if missing:
        import sys

        print(f"error: no test data for {', '.join(missing)} under {data}", file=sys.stderr)
        return 2
    ours = not getattr(args, "no_hearth_templates", False)
    reports = [run_language(data, lang, hearth_templates=ours) for lang in langs]
    out.mkdir(parents=True, exist_ok=True)
    (out / "text_intents.json").write_text(
        json.dumps({"data": str(data), "languages": reports}, ensure_ascii=False, indent=2),
        encoding="utf-8")
    table = markdown(reports)
    (out / "text_intents.md").write_text(table, encoding="utf-8")
    print(table.split("\n\n", 1)[0])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
