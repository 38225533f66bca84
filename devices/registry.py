"""The device registry: a validated YAML home description.

``load_config(path)`` parses YAML keeping line numbers, validates it with pydantic and raises
:class:`ConfigError` listing every problem found (:attr:`ConfigError.problems`), each naming the
file, the line and the field that is wrong (list items by their ``id``:
``devices[kitchen_light].kind``), with "did you mean" for unknown keys.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

DEFAULT_CONFIRM_TIMEOUT_S = 3.0
DEFAULT_SENSITIVE_MIN_CONFIDENCE = 0.9
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file; ``str()`` is ``file:line: field: message``."""

    message: str
    path: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.path or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class ConfigError(Exception):
    """An invalid configuration file. ``str()`` is a user-facing message with file and line,
    one line per problem; :attr:`problems` lists them (``path``/``line``/``field`` are the
    first one's)."""

    def __init__(self, message: str = "", *, path: str | None = None, line: int | None = None,
                 field: str | None = None,
                 problems: Sequence[ConfigProblem] | None = None) -> None:
        self.problems = list(problems) if problems else [ConfigProblem(message, path, line, field)]
        first = self.problems[0]
        self.path = first.path
        self.line = first.line
        self.field = first.field
        super().__init__("\n".join(str(p) for p in self.problems))


class DeviceKind(StrEnum):
    LIGHT = "light"
    SWITCH = "switch"
    CLIMATE = "climate"
    LOCK = "lock"
    COVER = "cover"
    FAN = "fan"
    MEDIA_PLAYER = "media_player"
    SENSOR = "sensor"
    VACUUM = "vacuum"  # robot vacuum: start, pause, stop, return to the dock, clean a room


class AdapterName(StrEnum):
    ZIGBEE2MQTT = "zigbee2mqtt"
    TASMOTA = "tasmota"
    SHELLY = "shelly"
    HOMEASSISTANT = "homeassistant"  # HA MQTT discovery / generic templates
    VALETUDO = "valetudo"  # Valetudo robot vacuum firmware (its own MQTT topics)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Named(_Strict):
    """Something the user names: its id, its name and other names for it."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)


class _Place(_Named):
    """A floor or an area (ids checked like device ids)."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)


class Floor(_Place):
    level: int | None = None


class Area(_Place):
    floor: str | None = None


class Device(_Strict):
    """One device. ``topic`` is the adapter's base name (z2m friendly name, Tasmota topic,
    Shelly device id); ``topics`` overrides/extends per-adapter topics (HA discovery style:
    ``command_topic``, ``state_topic``, ...); ``payloads`` carries templates for generic devices."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    area: str | None = None
    floor: str | None = None
    kind: DeviceKind
    adapter: AdapterName
    topic: str | None = None
    topics: dict[str, str] = Field(default_factory=dict)
    payloads: dict[str, str] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)
    sensitive: bool = False
    confirm_timeout_s: float | None = Field(default=None, gt=0)
    channel: int = 0  # Shelly switch id / Tasmota POWER index (0 = plain POWER)
    #: Robot vacuums: area id -> the map segment ids the robot cleans for that area (Valetudo
    #: segment ids, or whatever the device's segment command takes). "clean the kitchen" needs
    #: an entry for the kitchen.
    segments: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @field_validator("segments", mode="before")
    @classmethod
    def _segment_ids(cls, v: Any) -> Any:
        # YAML reads `kitchen: [16, 17]` as numbers; segment ids are strings (Valetudo's are).
        if isinstance(v, dict):
            return {
                k: [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in ids]
                if isinstance(ids, list) else ids
                for k, ids in v.items()
            }
        return v

    @model_validator(mode="after")
    def _doors_are_sensitive(self) -> Device:
        # Opening a garage door, a door or a gate is sensitive unless the config says it is
        # not; blinds, curtains and awnings are not (``sensitive: true`` makes them so).
        if self.kind == DeviceKind.COVER and "sensitive" not in self.model_fields_set:
            words = " ".join([self.name, *self.aliases]).lower()
            if re.search(r"\b(garage|door|gate)s?\b", words) or any(
                    w in words for w in ("车库", "门")):
                self.sensitive = True
        return self

    @property
    def base_topic(self) -> str:
        return self.topic or self.id


class Scene(_Named):
    area: str | None = None
    #: device id -> intent name + slots to apply, e.g. {"kitchen_light": {"name": "light_set",
    #: "brightness": 30}}
    actions: dict[str, dict[str, Any]] = Field(default_factory=dict)


class MqttSettings(_Strict):
    """Broker connection. ``url`` None means: start the embedded broker (demo mode)."""

    url: str | None = None  # mqtt://host:1883 or mqtts://host:8883
    client_id: str = "hearth"
    username: str | None = None
    password_env: str | None = None  # name of the env var holding the password (never inline)
    ca_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    zigbee2mqtt_base: str = "zigbee2mqtt"
    valetudo_base: str = "valetudo"  # Valetudo's MQTT "topic prefix"
    discovery_prefix: str = "homeassistant"
    #: Hearth's own topics, shared by replicas: ``<topic_prefix>/timers/...``,
    #: ``.../confirmations/...``, ``.../replicas/...``, ``.../audit`` (docs/scale.md).
    topic_prefix: str = Field(default="hearth", pattern=r"^[^#+/\x00]+(/[^#+/\x00]+)*$")
    confirm_timeout_s: float = Field(default=DEFAULT_CONFIRM_TIMEOUT_S, gt=0)


class SecuritySettings(_Strict):
    min_confidence: float = Field(default=DEFAULT_MIN_CONFIDENCE, ge=0, le=1)
    sensitive_min_confidence: float = Field(default=DEFAULT_SENSITIVE_MIN_CONFIDENCE, ge=0, le=1)
    require_confirmation: bool = False  # sensitive actions wait for a spoken/sent "yes"
    confirmation_window_s: float = Field(default=10.0, gt=0)


class HomeConfig(_Strict):
    """The whole home: what the registry holds and how to reach it."""

    name: str = "home"
    language: str = "en"
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    floors: list[Floor] = Field(default_factory=list)
    areas: list[Area] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    scenes: list[Scene] = Field(default_factory=list)
    custom_intents: list[str] = Field(default_factory=list)  # paths, relative to the config file
    simulate: bool = False  # attach simulated devices (demo home)
    #: free-form sections owned by the assistant package (server, asr, vad, llm, ...)
    assistant: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> HomeConfig:
        problems = _reference_problems(
            self.model_dump(include={"floors", "areas", "devices", "scenes"})
        )
        if problems:
            raise _RefError(problems)
        return self

    # -- lookups -------------------------------------------------------------------------

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def area(self, area_id: str) -> Area:
        for a in self.areas:
            if a.id == area_id:
                return a
        raise KeyError(area_id)

    def floor_of(self, device: Device) -> str | None:
        if device.floor:
            return device.floor
        if device.area:
            return self.area(device.area).floor
        return None

    def spellings(self) -> list[str]:
        """Every name and alias in the home: devices', areas', floors', then scenes'."""
        named: list[Device | _Named] = [*self.devices, *self.areas, *self.floors, *self.scenes]
        return [n for thing in named for n in (thing.name, *thing.aliases)]


Loc = tuple[str | int, ...]


class _RefError(ValueError):
    """Every dangling or duplicate reference of a home config, as (location, message)."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(msg for _, msg in problems))


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _ids(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [x["id"] for x in items if isinstance(x, dict) and isinstance(x.get("id"), str)]


def _reference_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Unknown floors, areas and devices named by other entries, and duplicate device ids,
    over plain data (a validated config's dump or, when fields are wrong too, the raw YAML)."""
    floor_ids = _ids(data.get("floors"))
    area_ids = _ids(data.get("areas"))
    device_ids = _ids(data.get("devices"))
    out: list[tuple[Loc, str]] = []

    def entries(key: str) -> list[tuple[int, dict[str, Any]]]:
        items = data.get(key)
        if not isinstance(items, list):
            return []
        return [(i, x) for i, x in enumerate(items) if isinstance(x, dict)]

    def check(loc: Loc, value: Any, what: str, known: list[str]) -> None:
        if isinstance(value, str) and value not in known:
            out.append((loc, f"unknown {what} {value!r}{_did_you_mean(value, known)}"))

    for i, a in entries("areas"):
        check(("areas", i, "floor"), a.get("floor"), "floor", floor_ids)
    seen: set[str] = set()
    for i, d in entries("devices"):
        if isinstance(d.get("id"), str):
            if d["id"] in seen:
                out.append((("devices", i, "id"), f"duplicate device id {d['id']!r}"))
            seen.add(d["id"])
        check(("devices", i, "area"), d.get("area"), "area", area_ids)
        check(("devices", i, "floor"), d.get("floor"), "floor", floor_ids)
        segments = d.get("segments")
        for area in segments if isinstance(segments, dict) else ():
            check(("devices", i, "segments", area), area, "area", area_ids)
    for i, sc in entries("scenes"):
        check(("scenes", i, "area"), sc.get("area"), "area", area_ids)
        actions = sc.get("actions")
        for dev in actions if isinstance(actions, dict) else ():
            check(("scenes", i, "actions", dev), dev, "device", device_ids)
    return out


def _unwrap(annotation: Any) -> Any:
    """The model inside ``X | None``, ``list[X]`` and ``dict[str, X]``, else the annotation."""
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        elif origin is list and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return annotation


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (a location inside it); [] when not a model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def validation_problems(
    error: ValidationError, model: type[BaseModel], prefix: Loc = ()
) -> list[tuple[Loc, str]]:
    """Every problem of a pydantic validation of ``model``, as (location, message), with
    "did you mean" for unknown keys; ``prefix`` is where the model sits in the file."""
    out: list[tuple[Loc, str]] = []
    for err in error.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, _RefError):
            out.extend((prefix + where, msg) for where, msg in inner.problems)
            continue
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            msg = "unknown key" + _did_you_mean(str(loc[-1]), _known_keys(model, loc[:-1]))
        out.append((prefix + loc, msg))
    return out


def field_name(raw: Any, loc: Loc) -> str:
    """A location as the user reads it: list items by their ``id`` when they have one
    (``devices[kitchen_light].kind``), else by their position counted from 1."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            ident = item.get("id") if isinstance(item, dict) else None
            out += f"[{ident}]" if isinstance(ident, str) and ident else f"[item {part + 1}]"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _check_id(v: str) -> str:
    if not _ID.match(v):
        raise ValueError(f"ids are lower-case letters, digits, '_' and '-', got {v!r}")
    return v


# -- YAML with line numbers -------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = loader.construct_mapping(node, deep=True)  # type: ignore[assignment]
    lines: dict[str, int] = {"__line__": node.start_mark.line + 1}
    for key_node, _ in node.value:
        lines[str(key_node.value)] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    return mapping


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    seq = _LineList(loader.construct_sequence(node, deep=True))
    seq.lines = [item.start_mark.line + 1 for item in node.value]
    return seq


class _LineList(list[Any]):
    lines: list[int]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _strip_lines(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_lines(v) for k, v in obj.items() if k != "__lines__"}
    if isinstance(obj, list):
        return [_strip_lines(v) for v in obj]
    return obj


def _line_for(raw: Any, loc: tuple[str | int, ...]) -> int | None:
    """Best line for a pydantic error location: the deepest node that has one."""
    line: int | None = None
    node = raw
    for part in loc:
        if isinstance(node, dict):
            lines = node.get("__lines__", {})
            line = lines.get(str(part), lines.get("__line__", line))
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            if isinstance(node, _LineList):
                line = node.lines[part]
            node = node[part]
        else:
            break
    return line


#: Checks of free-form sections (``assistant``): given the section's plain data, every problem
#: as (location inside the section, message). The assistant package registers its own, so that
#: ``hearth check-config`` reports those too without this package importing it.
SectionCheck = Callable[[Any], list[tuple[Loc, str]]]


def _load_yaml(text: str, path: str) -> dict[str, Any]:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {getattr(e, 'problem', e)}", path=path, line=line) from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("top level must be a mapping", path=path, line=1)
    return raw


def config_problems(
    text: str,
    *,
    path: str = "<config>",
    section_checks: dict[str, SectionCheck] | None = None,
) -> tuple[HomeConfig | None, list[ConfigProblem]]:
    """Validate a config file's text: the config (None when invalid) and every problem found,
    in file order. ``section_checks`` validate free-form sections such as ``assistant``."""
    try:
        raw = _load_yaml(text, path)
    except ConfigError as e:
        return None, e.problems
    data = _strip_lines(raw)
    found: list[tuple[Loc, str]] = []
    cfg: HomeConfig | None = None
    try:
        cfg = HomeConfig.model_validate(data)
    except ValidationError as e:
        found = validation_problems(e, HomeConfig)
        if not any(isinstance((x.get("ctx") or {}).get("error"), _RefError) for x in e.errors()):
            # Field errors stop pydantic before the reference checks: run them on the raw data.
            found += _reference_problems(data)
    for section, check in (section_checks or {}).items():
        if section in data:
            found += [((section, *loc), msg) for loc, msg in check(data[section])]
    problems = [
        ConfigProblem(msg, path, _line_for(raw, loc), field_name(data, loc) or None)
        for loc, msg in found
    ]
    problems.sort(key=lambda p: p.line or 0)
    return (cfg if not problems else None), problems


def parse_config(text: str, *, path: str = "<config>") -> HomeConfig:
    """Validate a config file's text; raises :class:`ConfigError` listing every problem."""
    cfg, problems = config_problems(text, path=path)
    if problems or cfg is None:
        raise ConfigError(problems=problems or [ConfigProblem("invalid config", path)])
    return cfg


def load_config(path: str | Path) -> HomeConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", path=str(p)) from e
    cfg = parse_config(text, path=str(p))
    base = p.resolve().parent
    cfg.custom_intents = [str((base / c).resolve()) for c in cfg.custom_intents]
    return cfg


DEMO_CONFIG_NAME = "demo_home.yaml"


def demo_config_path() -> Path:
    return Path(__file__).resolve().parent / "data" / DEMO_CONFIG_NAME


def load_demo_config() -> HomeConfig:
    return load_config(demo_config_path())

