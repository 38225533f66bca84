"""Custom intents from user files (hassil template format plus an ``actions`` section).

The loader lives here; :class:`CustomAction` is the contract with ``devices.Dispatcher``.

A file looks like (see docs/intents.md)::

    language: en
    intents:
      order_drink:
        data:
          - sentences: ["[make me] [a] {size} {drink}"]
    lists:
      size: {values: [{in: "(large|big)", out: large}, small]}
      drink: {values: [latte, espresso]}
    expansion_rules: {}
    actions:
      order_drink:
        topic: kitchen/coffee/order
        payload: '{"size": "{size}", "drink": "{drink}"}'

Intent and slot names are converted to snake_case (``orderDrink`` → ``order_drink``,
``{coffeeDrink}`` → slot ``coffee_drink``, also in action templates). Sentences may use
the registry's ``{name}``, ``{area}`` and ``{floor}`` lists as well as the file's own lists.
Every load error is a :class:`CustomIntentError` naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Lists every custom file may use without declaring them: built from the registry.
REGISTRY_LISTS: frozenset[str] = frozenset({"name", "area", "floor"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = frozenset({"language", "intents", "lists", "expansion_rules", "skip_words",
                       "actions", "settings"})


class CustomAction(BaseModel):
    """What a custom intent does on MQTT. Templates use ``{slot_name}`` placeholders filled
    from the intent's ``slots.custom`` (and ``{text}`` for the utterance)."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    payload: str
    qos: int = Field(default=1, ge=0, le=2)
    retain: bool = False
    state_topic: str | None = None  # where the device confirms
    state_value: str | None = None  # template the state payload must contain to confirm
    confirm_timeout_s: float | None = Field(default=None, gt=0)
    sensitive: bool = False


class CustomIntentError(Exception):
    """A custom intent file that cannot be used. ``str()`` names the file and line."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


@dataclass
class CustomIntentFile:
    """One loaded file: hassil-format data (intent names already snake_case) and actions."""

    path: str
    language: str
    data: dict[str, Any]
    actions: dict[str, CustomAction] = field(default_factory=dict)

    @property
    def intent_names(self) -> list[str]:
        return sorted(self.data.get("intents", {}))


def snake_case(name: str) -> str:
    """``orderDrink`` / ``Order-Drink`` → ``order_drink``."""
    out = _CAMEL.sub("_", name.strip()).replace("-", "_").replace(" ", "_").lower()
    return re.sub(r"_+", "_", out)


# -- YAML with line numbers ---------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _get(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _items(node: yaml.MappingNode) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode):
            yield k, v


def load_custom_intents(path: str | Path) -> CustomIntentFile:
    """Load and check a custom intent file. Raises :class:`CustomIntentError`."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise CustomIntentError(f"cannot read: {e.strerror}", path=p) from e
    return parse_custom_intents(text, path=p)


def parse_custom_intents(text: str, *, path: str = "<custom intents>") -> CustomIntentFile:
    """Parse custom intents from YAML text; ``path`` is only used in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CustomIntentError(f"invalid YAML: {getattr(e, 'problem', e)}", path=path,
                                line=None if mark is None else mark.line + 1) from e
    if not isinstance(root, yaml.MappingNode):
        raise CustomIntentError("top level must be a mapping", path=path, line=1)
    raw: dict[str, Any] = yaml.safe_load(text)

    for k, _ in _items(root):
        if k.value not in _TOP_KEYS:
            raise CustomIntentError(
                f"unknown key {k.value!r} (expected one of {', '.join(sorted(_TOP_KEYS))})",
                path=path, line=_line(k))
    language = raw.get("language")
    if not isinstance(language, str) or not language:
        found = _get(root, "language")
        raise CustomIntentError("'language' (e.g. en) is required", path=path,
                                line=_line(found[0]) if found else 1)

    intents_entry = _get(root, "intents")
    if intents_entry is None or not isinstance(intents_entry[1], yaml.MappingNode):
        raise CustomIntentError("'intents' must be a mapping of intent name to data",
                                path=path, line=_line(intents_entry[0]) if intents_entry else 1)
    list_names = set(REGISTRY_LISTS) | set((raw.get("lists") or {}).keys())
    rule_names = set((raw.get("expansion_rules") or {}).keys())
    intents: dict[str, Any] = {}
    for key_node, body_node in _items(intents_entry[1]):
        name = snake_case(key_node.value)
        if not _SNAKE.match(name):
            raise CustomIntentError(f"intent name {key_node.value!r} is not usable",
                                    path=path, line=_line(key_node))
        if name in intents:
            raise CustomIntentError(f"duplicate intent {name!r}", path=path,
                                    line=_line(key_node))
        data = _get(body_node, "data") if isinstance(body_node, yaml.MappingNode) else None
        if data is None or not isinstance(data[1], yaml.SequenceNode):
            raise CustomIntentError(f"intent {name!r} needs a 'data' list", path=path,
                                    line=_line(key_node))
        for block in data[1].value:
            sentences = _get(block, "sentences") if isinstance(block, yaml.MappingNode) else None
            if sentences is None or not isinstance(sentences[1], yaml.SequenceNode):
                raise CustomIntentError(f"intent {name!r}: each data item needs 'sentences'",
                                        path=path, line=_line(block))
            for s in sentences[1].value:
                if not isinstance(s, yaml.ScalarNode):
                    raise CustomIntentError("a sentence must be a string", path=path,
                                            line=_line(s))
                _check_template(s.value, list_names, rule_names, path=path, line=_line(s))
        intents[name] = raw["intents"][key_node.value]

    lists_entry = _get(root, "lists")
    if lists_entry is not None:
        if not isinstance(lists_entry[1], yaml.MappingNode):
            raise CustomIntentError("'lists' must be a mapping", path=path,
                                    line=_line(lists_entry[0]))
        for k, v in _items(lists_entry[1]):
            _check_list(k.value, v, path)
    rules_entry = _get(root, "expansion_rules")
    if rules_entry is not None and isinstance(rules_entry[1], yaml.MappingNode):
        for k, v in _items(rules_entry[1]):
            if not isinstance(v, yaml.ScalarNode):
                raise CustomIntentError(f"expansion rule {k.value!r} must be a string",
                                        path=path, line=_line(k))
            _check_template(v.value, list_names, rule_names, path=path, line=_line(v))

    actions: dict[str, CustomAction] = {}
    actions_entry = _get(root, "actions")
    if actions_entry is not None:
        if not isinstance(actions_entry[1], yaml.MappingNode):
            raise CustomIntentError("'actions' must be a mapping of intent name to action",
                                    path=path, line=_line(actions_entry[0]))
        for k, v in _items(actions_entry[1]):
            name = snake_case(k.value)
            if name not in intents:
                raise CustomIntentError(f"action for unknown intent {k.value!r}", path=path,
                                        line=_line(k))
            try:
                action = CustomAction.model_validate(raw["actions"][k.value])
                actions[name] = _snake_placeholders(action)
            except ValidationError as e:
                err = e.errors()[0]
                field_name = ".".join(str(x) for x in err["loc"])
                line = _line(k)
                if isinstance(v, yaml.MappingNode) and err["loc"]:
                    found = _get(v, str(err["loc"][0]))
                    if found is not None:
                        line = _line(found[0])
                raise CustomIntentError(f"action {name!r}: {field_name}: {err['msg']}",
                                        path=path, line=line) from None

    data_out: dict[str, Any] = {
        "language": language,
        "intents": intents,
        "lists": raw.get("lists") or {},
        "expansion_rules": raw.get("expansion_rules") or {},
    }
    if raw.get("skip_words"):
        data_out["skip_words"] = list(raw["skip_words"])
    if raw.get("settings"):
        data_out["settings"] = raw["settings"]
    try:
        from hassil import Intents

        Intents.from_dict(data_out)
    except Exception as e:  # hassil raises a mix of its own and builtin errors
        raise CustomIntentError(f"not valid hassil data: {e}", path=path,
                                line=_line(intents_entry[0])) from e
    return CustomIntentFile(path=path, language=language, data=data_out, actions=actions)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _snake_placeholders(action: CustomAction) -> CustomAction:
    """Slot names reach ``slots.custom`` in snake_case, so ``{coffeeDrink}`` in a template
    is rewritten to ``{coffee_drink}`` (doubled braces and JSON braces are left alone)."""

    def fix(template: str | None) -> str | None:
        if template is None:
            return None
        return _PLACEHOLDER.sub(
            lambda m: m.group(0) if m.group(1) is None else "{" + snake_case(m.group(1)) + "}",
            template,
        )

    return action.model_copy(update={
        "topic": fix(action.topic), "payload": fix(action.payload),
        "state_topic": fix(action.state_topic), "state_value": fix(action.state_value),
    })


def _check_list(name: str, node: yaml.Node, path: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        raise CustomIntentError(f"list {name!r} must be a mapping with values/range/wildcard",
                                path=path, line=_line(node))
    keys = {k.value for k, _ in _items(node)}
    if not keys & {"values", "range", "wildcard"}:
        raise CustomIntentError(f"list {name!r} needs 'values', 'range' or 'wildcard'",
                                path=path, line=_line(node))
    values = _get(node, "values")
    if values is not None:
        if not isinstance(values[1], yaml.SequenceNode):
            raise CustomIntentError(f"list {name!r}: 'values' must be a list", path=path,
                                    line=_line(values[0]))
        for item in values[1].value:
            if isinstance(item, yaml.MappingNode) and _get(item, "in") is None:
                raise CustomIntentError(f"list {name!r}: a value mapping needs 'in'",
                                        path=path, line=_line(item))


def walk_expressions(expr: Any) -> Iterator[Any]:
    """``expr`` and, depth first, every expression in its groups (a parsed hassil template)."""
    from hassil.expression import Group

    yield expr
    if isinstance(expr, Group):
        for item in expr.items:
            yield from walk_expressions(item)


def _check_template(template: str, lists: set[str], rules: set[str], *, path: str,
                    line: int) -> None:
    from hassil.expression import ListReference, RuleReference
    from hassil.parse_expression import parse_sentence

    try:
        sentence = parse_sentence(template)
    except Exception as e:  # hassil's parser raises several error types
        raise CustomIntentError(f"bad template {template!r}: {e}", path=path, line=line) from e

    for expr in walk_expressions(getattr(sentence, "expression", sentence)):
        if isinstance(expr, ListReference) and expr.list_name not in lists:
            raise CustomIntentError(f"template uses undefined list {{{expr.list_name}}}",
                                    path=path, line=line)
        if isinstance(expr, RuleReference) and expr.rule_name not in rules:
            raise CustomIntentError(f"template uses undefined rule <{expr.rule_name}>",
                                    path=path, line=line)
