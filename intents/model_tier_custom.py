"""Custom intents (the user's files, :mod:`intents.custom`) as the model tier offers them.

Each custom intent becomes a value of ``hearth_command``'s ``intent`` enum, and its slots the
properties of a ``custom_slots`` object: a slot over a list of values is an enum of the list's
canonical values (``out``), a range list an integer in its range, a wildcard a short string, the
registry's ``{name}``/``{area}``/``{floor}`` lists enums of registry ids. What the model answers
is validated like a built-in intent: only that intent's slots, only their values, every slot the
intent's MQTT action needs present; a sensitive action keeps its confidence below the
dispatcher's bar (see :mod:`intents.model_tier`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.registry import HomeConfig
from intents.custom import (
    REGISTRY_LISTS,
    CustomIntentError,
    CustomIntentFile,
    load_custom_intents,
    snake_case,
    walk_expressions,
)
from intents.model_tier_types import ModelTierSettings
from intents.resolve import SCENE_PREFIX

#: Longest wildcard value the model may fill in.
MAX_WILDCARD_CHARS = 80


@dataclass(frozen=True)
class SlotSpec:
    """What one custom slot may hold: ``values`` (strings), an integer range, or free text."""

    values: tuple[str, ...] | None = None
    low: int | None = None
    high: int | None = None

    def schema(self) -> dict[str, Any]:
        if self.values is not None:
            return {"type": "string", "enum": list(self.values)}
        if self.low is not None and self.high is not None:
            return {"type": "integer", "minimum": self.low, "maximum": self.high}
        return {"type": "string", "maxLength": MAX_WILDCARD_CHARS}

    def accepts(self, value: Any) -> bool:
        if self.values is not None:
            return isinstance(value, str) and value in self.values
        if self.low is not None and self.high is not None:
            return (
                isinstance(value, int)
                and not isinstance(value, bool)
                and self.low <= value <= self.high
            )
        return isinstance(value, str) and 0 < len(value.strip()) <= MAX_WILDCARD_CHARS


@dataclass(frozen=True)
class CustomIntentSpec:
    """One custom intent as offered: its slots, which of them its action needs, an example."""

    name: str
    slots: Mapping[str, SlotSpec]
    required: frozenset[str]
    example: str
    sensitive: bool = False
    source: str = ""

    def describe(self) -> str:
        bits = ["custom"]
        if self.slots:
            bits.append("custom_slots " + ", ".join(self.slots))
        if self.required:
            bits.append("needs " + ", ".join(sorted(self.required)))
        bits.append(f"e.g. {self.example!r}")
        return f"{self.name}: {'; '.join(bits)}"


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[tuple[str, float], CustomIntentFile] = field(default_factory=dict)


_CACHE = _Cache()


def _load(path: str) -> CustomIntentFile | None:
    """A custom file, loaded once per modification (the recognizer reports load errors)."""
    try:
        key = (path, Path(path).stat().st_mtime)
    except OSError:
        return None
    with _CACHE.lock:
        found = _CACHE.files.get(key)
    if found is not None:
        return found
    try:
        loaded = load_custom_intents(path)
    except CustomIntentError:
        return None
    with _CACHE.lock:
        _CACHE.files[key] = loaded
    return loaded


def _list_refs(template: str, rules: Mapping[str, str], seen: frozenset[str] = frozenset()
               ) -> Iterator[str]:
    from hassil.expression import ListReference, RuleReference
    from hassil.parse_expression import parse_sentence

    sentence = parse_sentence(template)
    for expr in walk_expressions(getattr(sentence, "expression", sentence)):
        if isinstance(expr, ListReference):
            yield expr.list_name
        elif isinstance(expr, RuleReference) and expr.rule_name not in seen:
            body = rules.get(expr.rule_name)
            if isinstance(body, str):
                yield from _list_refs(body, rules, seen | {expr.rule_name})


def _slot_spec(list_name: str, lists: Mapping[str, Any], config: HomeConfig) -> SlotSpec:
    if list_name in REGISTRY_LISTS and list_name not in lists:
        if list_name == "area":
            return SlotSpec(values=tuple(a.id for a in config.areas))
        if list_name == "floor":
            return SlotSpec(values=tuple(f.id for f in config.floors))
        ids = [d.id for d in config.devices] + [SCENE_PREFIX + s.id for s in config.scenes]
        return SlotSpec(values=tuple(ids))
    body = lists.get(list_name) or {}
    if "values" in body:
        out: list[str] = []
        for v in body["values"] or []:
            value = v.get("out", v.get("in")) if isinstance(v, Mapping) else v
            if value is not None and str(value) not in out:
                out.append(str(value))
        return SlotSpec(values=tuple(out))
    if "range" in body:
        r = body["range"] or {}
        return SlotSpec(low=int(r.get("from", 0)), high=int(r.get("to", 100)))
    return SlotSpec()


def _placeholders(template: str | None) -> set[str]:
    import re

    if not template:
        return set()
    return set(re.findall(r"(?<!\{)\{([a-z][a-z0-9_]*)\}(?!\})", template))


def custom_specs(config: HomeConfig, settings: ModelTierSettings) -> list[CustomIntentSpec]:
    """The custom intents of the home's files offered to the model (``settings.custom_intents``
    narrows them; ``[]`` offers none). Intents without an MQTT action are not offered: the
    model could name them but nothing would happen."""
    if settings.custom_intents == []:
        return []
    allow = None if settings.custom_intents is None else set(settings.custom_intents)
    specs: dict[str, CustomIntentSpec] = {}
    for path in config.custom_intents:
        f = _load(path)
        if f is None:
            continue
        lists: Mapping[str, Any] = f.data.get("lists") or {}
        rules: Mapping[str, str] = f.data.get("expansion_rules") or {}
        for name, body in (f.data.get("intents") or {}).items():
            if name not in f.actions or (allow is not None and name not in allow):
                continue
            blocks = body.get("data") or []
            sentences = [s for block in blocks for s in block.get("sentences") or []]
            slots: dict[str, SlotSpec] = {}
            for template in sentences:
                for ref in _list_refs(template, rules):
                    slots.setdefault(snake_case(ref), _slot_spec(ref, lists, config))
            action = f.actions[name]
            needed = (_placeholders(action.topic) | _placeholders(action.payload)) - {"text"}
            specs[name] = CustomIntentSpec(
                name=name,
                slots=slots,
                required=frozenset(needed & set(slots)),
                example=sentences[0] if sentences else name,
                sensitive=action.sensitive,
                source=Path(path).name,
            )
    return list(specs.values())


def custom_slots_schema(specs: list[CustomIntentSpec]) -> dict[str, Any] | None:
    """The ``custom_slots`` property of ``hearth_command``: every custom slot, typed."""
    props: dict[str, Any] = {}
    for spec in specs:
        for slot, slot_spec in spec.slots.items():
            schema = slot_spec.schema()
            if slot in props and props[slot] != schema:
                old = props[slot]
                if "enum" in old and "enum" in schema:  # same slot name, other values
                    schema = {**old, "enum": list(dict.fromkeys([*old["enum"], *schema["enum"]]))}
                else:
                    schema = {"type": ["string", "integer"]}
            props[slot] = schema
    if not props:
        return None
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "description": "Slots of a custom intent (only that intent's): "
        + " | ".join(s.describe() for s in specs),
    }


def validate_custom_slots(
    spec: CustomIntentSpec, raw: Any
) -> dict[str, str | int | float | bool]:
    """The model's ``custom_slots`` for ``spec``, checked; raises ``ValueError`` naming the
    problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError("custom_slots is not an object")
    out: dict[str, str | int | float | bool] = {}
    for key, value in raw.items():
        slot = spec.slots.get(key)
        if slot is None:
            raise ValueError(f"{spec.name} has no slot {key!r}")
        if not slot.accepts(value):
            raise ValueError(f"{value!r} is not a value of {spec.name}.{key}")
        out[key] = value.strip() if isinstance(value, str) else value
    missing = sorted(spec.required - set(out))
    if missing:
        raise ValueError(f"{spec.name} needs {', '.join(missing)}")
    return out
