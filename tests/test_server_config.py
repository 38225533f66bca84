"""Typed assistant settings from the home config's ``assistant:`` section."""

from __future__ import annotations

import pytest

from assistant.app import endpoint_settings
from assistant.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    AsrConfig,
    AssistantConfigError,
    parse_assistant_settings,
)
from devices.registry import parse_config


def test_defaults_are_loopback_8765() -> None:
    s = parse_assistant_settings({})
    assert (s.server.host, s.server.port) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8765)
    assert s.token is None
    assert s.session.sample_rate == 16000


def test_sections_from_a_yaml_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "t0k3n")
    cfg = parse_config(
        """
assistant:
  server: {host: 0.0.0.0, port: 9000, token_env: MY_TOKEN}
  limits: {max_messages_per_s: 50}
  turn_detection: {silence_ms: 300}
  asr: {threads: 2, workers: 3, device: cpu}
  llm: {backend: openai}
"""
    )
    s = parse_assistant_settings(cfg.assistant)
    assert (s.server.host, s.server.port) == ("0.0.0.0", 9000)
    assert s.token == "t0k3n"
    assert "t0k3n" not in repr(s)
    assert s.limits.max_messages_per_s == 50
    assert s.turn_detection.silence_ms == 300
    assert s.asr.overrides() == {"cpu_threads": 2, "num_workers": 3, "device": "cpu"}
    assert s.llm == {"backend": "openai"}


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"server": {"port": 70000}}, "assistant.server.port"),
        ({"limits": {"max_messages_per_s": 0}}, "assistant.limits.max_messages_per_s"),
        ({"bogus": 1}, "assistant.bogus"),
        ({"session": {"sample_rate": 12345}}, "assistant.session.sample_rate"),
    ],
)
def test_invalid_sections_name_the_field(section: dict[str, object], where: str) -> None:
    with pytest.raises(AssistantConfigError, match=where):
        parse_assistant_settings(section)


def test_overrides_keep_the_token_and_skip_none() -> None:
    s = parse_assistant_settings({}).with_overrides(
        **{"server.port": 0, "server.host": None, "token": "x"}
    )
    assert (s.server.host, s.server.port, s.token) == ("127.0.0.1", 0, "x")
    assert s.with_overrides(**{"limits.max_connections": 3}).token == "x"


def test_endpoint_settings_mapping() -> None:
    s = parse_assistant_settings({"turn_detection": {"silence_ms": 50, "threshold": 0.3}})
    vad = endpoint_settings(s.turn_detection, "vad")
    assert vad.silence_ms == 50
    assert vad.silence_ms_when_complete <= vad.silence_ms
    assert vad.neg_threshold <= vad.threshold == 0.3
    assert vad.turn_detection == "vad"
    assert endpoint_settings(s.turn_detection, "push_to_talk").turn_detection == "manual"


def test_asr_extra_passes_through() -> None:
    assert AsrConfig(extra={"beam_size": 2}).overrides() == {"beam_size": 2}
