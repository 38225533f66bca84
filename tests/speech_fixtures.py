"""pytest plugin: shared speech models for the whole test session.

Loaded through ``pytest_plugins`` in tests/conftest.py. Models load once per session (the
Whisper model takes ~0.5 s and ~100 MB); tests must not mutate them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Never reach for a model hub from tests: every model is bundled in an installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from assistant.audio.asr import AsrSettings, WhisperTranscriber
from assistant.audio.vad import SileroVad


@pytest.fixture(scope="session")
def silero_vad() -> SileroVad:
    """The shared silero-vad model."""
    return SileroVad()


@pytest.fixture(scope="session")
def whisper_transcriber() -> Iterator[WhisperTranscriber]:
    """The shared Whisper tiny.en transcriber (CPU, int8, default trimmed window), warmed up."""
    t = WhisperTranscriber(AsrSettings(device="cpu"))
    t.warmup()
    yield t
