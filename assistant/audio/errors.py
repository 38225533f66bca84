"""Exceptions of the audio pipeline.

The server maps these once, at the boundary, to ``error`` events with stable codes; the
messages are safe to show to a client (they never contain paths or model internals).
"""

from __future__ import annotations


class AudioError(Exception):
    """Base class of every error raised by :mod:`assistant.audio`."""


class AudioFormatError(AudioError, ValueError):
    """The client sent audio that cannot be decoded (odd byte count, wrong dtype or shape)."""


class UnsupportedRateError(AudioFormatError):
    """The declared sample rate is not one of :data:`assistant.audio.resample.SUPPORTED_RATES`."""


class ModelLoadError(AudioError, RuntimeError):
    """A speech model (VAD or ASR) could not be found or loaded."""
