"""Shared fixtures. Fixture plugins live beside this file, one module per capability."""

from __future__ import annotations

import importlib.util

pytest_plugins = [
    name
    for name in ("tests.mqtt_fixtures", "tests.speech_fixtures", "tests.server_fixtures")
    if importlib.util.find_spec(name) is not None
]


def _no_tts_prefill_in_tests() -> None:
    """Test servers start by the dozen on a small machine: none spends a core synthesizing
    confirmations after start-up (``tts.prefill``, on by default for ``hearth serve``). A test
    of the prefill asks for it (``TtsConfig(prefill=True)``)."""
    try:
        from assistant.answers.tts import TtsConfig
    except ImportError:  # a checkout without the answers package
        return
    TtsConfig.model_fields["prefill"].default = False
    TtsConfig.model_rebuild(force=True)


_no_tts_prefill_in_tests()
