"""What ``hearth bench latency`` measures against (:mod:`assistant.bench.latency`): the
variants (server config overrides, session settings, ``hearth serve`` flags) and their
parsing, the raw config with dotted overrides, the expected publishes of each spoken command,
and the settings the started server really runs with."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.bench.latency_corpus import (
    SpokenCommand,
)

#: Session settings sent by every stream: a satellite that shows no text needs no partial
#: transcripts or device events; they are variants (``@partials=true``), not the baseline.
BASE_SESSION: dict[str, Any] = {"sample_rate": 16000, "partials": False, "device_events": False}


_TURN_KEYS = ("threshold", "min_speech_ms", "silence_ms", "prefix_padding_ms", "max_utterance_ms")


@dataclass
class Variant:
    """One configuration of the server and the sessions to measure."""

    name: str
    config_overrides: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)

    def session_update(self) -> dict[str, Any]:
        msg: dict[str, Any] = dict(BASE_SESSION)
        turn: dict[str, Any] = {}
        for k, v in self.session.items():
            if k in _TURN_KEYS:
                turn[k] = v
            else:
                msg[k] = v
        if turn:
            msg["turn_detection"] = turn
        return msg

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config_overrides": self.config_overrides,
            "session": self.session,
            "server_args": self.server_args,
        }


def parse_variant(spec: str) -> Variant:
    """``NAME=TOKENS`` (see the module docstring). Raises ``ValueError`` with what is wrong."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--variant wants NAME=SPEC, got {spec!r}")
    v = Variant(name=name.strip())
    for tok in shlex.split(rest):
        if tok.startswith("@"):
            key, eq, val = tok[1:].partition("=")
            if not eq or not key:
                raise ValueError(f"session setting wants @key=value, got {tok!r}")
            v.session[key] = yaml.safe_load(val)
        elif "=" in tok and not tok.startswith("-"):
            key, _, val = tok.partition("=")
            v.config_overrides[key] = yaml.safe_load(val)
        else:
            v.server_args.append(tok)
    return v


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw home config with dotted keys set (intermediate mappings created)."""
    out: dict[str, Any] = json.loads(json.dumps(config))
    for key, value in overrides.items():
        target = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = target.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                target[p] = nxt
            target = nxt
        target[parts[-1]] = value
    return out


def expected_commands(
    config_path: Path, commands: list[SpokenCommand]
) -> dict[str, list[tuple[str, str]]]:
    """The (topic, payload) publishes each spoken command should cause, from the devices
    package's pure adapters: the benchmark's ground truth, independent of the server."""
    from devices.adapters import adapter_for
    from devices.registry import load_config
    from intents.schema import Intent, Slots

    cfg = load_config(config_path)
    out: dict[str, list[tuple[str, str]]] = {}
    for c in commands:
        dev = cfg.device(c.device_id)
        intent = Intent(
            name=c.intent,
            slots=Slots(device_ids=[c.device_id], **c.slots),
            confidence=1.0,
            source="grammar",
            reason="benchmark ground truth",
        )
        out[c.text] = [
            (cmd.topic, cmd.payload) for cmd in adapter_for(dev).commands_for(dev, intent, cfg.mqtt)
        ]
    return out


def effective_settings(config: dict[str, Any], server_args: list[str]) -> dict[str, Any]:
    """What the started server runs with: the ``assistant:`` section resolved through the
    server's own settings classes (so defaults are reported, not only overrides), the ASR model
    and its settings. ``hearth serve`` flags (``--threads``, ``--model``, ...) are listed as given.
    """
    out: dict[str, Any] = {"server_args": server_args}
    try:
        from assistant.audio.asr import AsrSettings, default_model_path
        from assistant.config import parse_assistant_settings

        settings = parse_assistant_settings(config.get("assistant") or {})
        out["assistant"] = settings.model_dump(mode="json")
        asr = AsrSettings(**settings.asr.overrides())
        out["asr"] = asr.model_dump(mode="json")
        if asr.num_workers is None:  # one per core: say how many that is on this machine
            out["asr"]["num_workers"] = asr.resolved_workers(asr.resolved_device())
        out["asr_model"] = asr.model or str(default_model_path())
    except Exception as e:  # reporting aid only: a settings change must not stop the run
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def _parse_sets(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
        out.append((key, yaml.safe_load(val)))
    return out
