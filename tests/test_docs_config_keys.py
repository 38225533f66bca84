"""The docs agree with the settings models: every config key the docs name in backticks
(``asr.beam_size``, ``assistant.speculative``, ``security.min_confidence``) exists, and every
home-config YAML example validates. The allowlist is the models themselves
(``devices.registry.HomeConfig``, ``assistant.config.AssistantSettings``,
``intents.model_tier.ModelTierSettings`` for ``assistant.llm``), so a key added to a model is
known here at once."""

from __future__ import annotations

import importlib.util
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from assistant.config import AssistantSettings, assistant_problems
from assistant.protocol import CLIENT_MESSAGES, SERVER_EVENTS
from devices.registry import HomeConfig, config_problems
from intents.model_tier import ModelTierSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

_SPAN = re.compile(r"`([^`\n]+)`")
#: A dotted name, not part of a longer path, file name or call.
_KEY = re.compile(r"(?<![\w./$-])([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)(?![\w/(-]|\.\w)")
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
#: Last segments that make a dotted name a file (``audit.jsonl``), not a key.
_FILE_SUFFIXES = frozenset({"md", "json", "jsonl", "yaml", "yml", "png", "onnx", "bin", "py",
                            "txt", "wav", "csv", "html", "js"})
_MESSAGE_TYPES = frozenset(CLIENT_MESSAGES) | frozenset(SERVER_EVENTS)
_PACKAGES = ("assistant", "intents", "devices")


def _model(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (through ``X | None``), else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _section_model(owner: type[BaseModel], name: str) -> type[BaseModel] | None:
    if owner is AssistantSettings and name == "llm":
        return ModelTierSettings  # a free-form dict there, validated by the model tier
    field = owner.model_fields.get(name)
    return None if field is None else _model(field.annotation)


def resolve(key: str) -> bool | None:
    """Whether a dotted key exists in the settings (None: it is not a config key at all)."""
    parts = key.split(".")
    if parts[0] == "assistant":
        model: type[BaseModel] | None = AssistantSettings
        parts = parts[1:]
    elif _section_model(HomeConfig, parts[0]) is not None:
        model = HomeConfig
    elif _section_model(AssistantSettings, parts[0]) is not None:
        model = AssistantSettings
    else:
        return None
    for i, part in enumerate(parts):
        assert model is not None
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i == len(parts) - 1:
            return True
        model = _section_model(model, part)
        if model is None:
            # A scalar with more after it is no key; a free-form mapping (``asr.extra``)
            # takes any key.
            origin = typing.get_origin(field.annotation)
            return True if origin is dict else False
    return True


def _is_module_path(key: str) -> bool:
    parts = key.split(".")
    if parts[0] not in _PACKAGES:
        return False
    for n in range(len(parts), 1, -1):
        try:
            if importlib.util.find_spec(".".join(parts[:n])) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _not_a_key(key: str) -> bool:
    parts = key.split(".")
    if parts[-1] in _FILE_SUFFIXES:
        return True
    if any(".".join(parts[:n]) in _MESSAGE_TYPES for n in range(1, len(parts) + 1)):
        return True  # ``session.update``, ``session.created.limits``
    return _is_module_path(key)


def doc_keys() -> list[tuple[str, int, str]]:
    """(doc, line, key) of every dotted config-looking name in backticks."""
    out = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for span in _SPAN.findall(line):
                for key in _KEY.findall(span):
                    out.append((doc.name, n, key))
    return out


def test_resolver_knows_keys_and_non_keys() -> None:
    """The resolver itself: the models are the allowlist."""
    for key in ("asr.beam_size", "assistant.speculative", "security.min_confidence",
                "turn_detection.pause_ms", "assistant.server.token_env", "mqtt.confirm_timeout_s",
                "assistant.llm.policy", "asr.extra.cpu_threads", "assistant.asr_shed_jobs"):
        assert resolve(key) is True, key
    for key in ("asr.beam_sise", "assistant.speculativ", "security.min_conf", "llm.polic"):
        assert resolve(key) is False, key
    for key in ("audio.commit", "timings_ms.asr", "error.code", "tiny.en"):
        assert resolve(key) is None or _not_a_key(key), key
    for key in ("session.update", "session.created.limits", "assistant.protocol",
                "audit.jsonl", "assistant.session._ends_turn"):
        assert _not_a_key(key), key
    # Fields a model gains are known at once: the allowlist is built from the models.
    for name in AssistantSettings.model_fields:
        assert resolve(f"assistant.{name}") is True


def test_every_config_key_in_the_docs_exists() -> None:
    keys = doc_keys()
    assert len(keys) > 30  # the scan finds the docs' keys at all
    missing = [
        f"{doc}:{line}: `{key}`"
        for doc, line, key in keys
        if resolve(key) is False and not _not_a_key(key)
    ]
    assert not missing, "config keys named in the docs but not in the settings:\n" + "\n".join(
        missing
    )


_SETTING = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+): (.+)$")


def doc_settings() -> list[tuple[str, int, str, str]]:
    """(doc, line, key, value) of every ``key: value`` in backticks with a dotted config key,
    such as ``asr.rescue_nats: 16``."""
    out = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for span in _SPAN.findall(line):
                m = _SETTING.match(span)
                found = resolve(m.group(1)) if m else None
                if m and (found is True or (found is False and not _not_a_key(m.group(1)))):
                    out.append((doc.name, n, m.group(1), m.group(2)))
    return out


def test_settings_written_in_the_docs_validate() -> None:
    """``asr.confidence: combined`` is a key the settings have *and* a value they accept."""
    settings = doc_settings()
    assert len(settings) > 5
    bad = []
    for doc, line, key, value in settings:
        parts = key.split(".")
        if parts[0] != "assistant" and parts[0] not in HomeConfig.model_fields:
            parts = ["assistant", *parts]
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            continue  # prose such as `x: …`
        data: Any = parsed
        for part in reversed(parts):
            data = {part: data}
        _, problems = config_problems(
            yaml.safe_dump(data), path=doc, section_checks={"assistant": assistant_problems}
        )
        bad += [f"{doc}:{line}: `{key}: {value}`: {p.message}" for p in problems]
    assert not bad, "\n".join(bad)


def _yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for block in _YAML_BLOCK.findall(doc.read_text(encoding="utf-8")):
            data = yaml.safe_load(block)
            # Home configs only: custom-intent files (docs/intents.md) are checked elsewhere.
            if isinstance(data, dict) and set(data) <= set(HomeConfig.model_fields):
                out.append((doc.name, block))
    return out


@pytest.mark.parametrize(("doc", "block"), _yaml_blocks(), ids=lambda v: str(v)[:20])
def test_home_config_examples_in_the_docs_validate(doc: str, block: str) -> None:
    _, problems = config_problems(
        block, path=doc, section_checks={"assistant": assistant_problems}
    )
    assert not problems, "\n".join(str(p) for p in problems)
