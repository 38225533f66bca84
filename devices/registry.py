"""The device registry: a validated YAML home description.

``load_config(path)`` parses YAML keeping line numbers, validates it with pydantic and raises
:class:`ConfigError` whose message names the file, the line and the field that is wrong.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

DEFAULT_CONFIRM_TIMEOUT_S = 3.0
DEFAULT_SENSITIVE_MIN_CONFIDENCE = 0.9
DEFAULT_MIN_CONFIDENCE = 0.5


class ConfigError(Exception):
    """An invalid configuration file. ``str()`` is a user-facing message with file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path or "<config>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


class DeviceKind(StrEnum):
    LIGHT = "light"
    SWITCH = "switch"
    CLIMATE = "climate"
    LOCK = "lock"
    COVER = "cover"
    FAN = "fan"
    MEDIA_PLAYER = "media_player"
    SENSOR = "sensor"


class AdapterName(StrEnum):
    ZIGBEE2MQTT = "zigbee2mqtt"
    TASMOTA = "tasmota"
    SHELLY = "shelly"
    HOMEASSISTANT = "homeassistant"  # HA MQTT discovery / generic templates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Floor(_Strict):
    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    level: int | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)


class Area(_Strict):
    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    floor: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)


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

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @property
    def base_topic(self) -> str:
        return self.topic or self.id


class Scene(_Strict):
    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
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
    discovery_prefix: str = "homeassistant"
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
        floor_ids = {f.id for f in self.floors}
        area_ids = {a.id for a in self.areas}
        seen: set[str] = set()
        for i, a in enumerate(self.areas):
            if a.floor is not None and a.floor not in floor_ids:
                raise _RefError(("areas", i, "floor"), f"unknown floor {a.floor!r}")
        for i, d in enumerate(self.devices):
            if d.id in seen:
                raise _RefError(("devices", i, "id"), f"duplicate device id {d.id!r}")
            seen.add(d.id)
            if d.area is not None and d.area not in area_ids:
                raise _RefError(("devices", i, "area"), f"unknown area {d.area!r}")
            if d.floor is not None and d.floor not in floor_ids:
                raise _RefError(("devices", i, "floor"), f"unknown floor {d.floor!r}")
        for i, s in enumerate(self.scenes):
            for dev in s.actions:
                if dev not in seen:
                    raise _RefError(("scenes", i, "actions", dev), f"unknown device {dev!r}")
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


class _RefError(ValueError):
    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.loc = loc
        super().__init__(msg)


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


def parse_config(text: str, *, path: str = "<config>") -> HomeConfig:
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
    try:
        return HomeConfig.model_validate(_strip_lines(raw))
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, _RefError):
            loc = inner.loc
            msg = str(inner)
        else:
            msg = err["msg"]
        field = ".".join(str(p) for p in loc) or None
        raise ConfigError(msg, path=path, line=_line_for(raw, loc), field=field) from None


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

