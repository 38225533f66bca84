"""Audio pipeline: resampling, voice activity detection, endpointing and speech recognition.

Heavy dependencies (onnxruntime, faster-whisper) are imported lazily by the classes that need
them, so importing this package is cheap.
"""

from assistant.audio.asr import (
    Alternative,
    AsrSettings,
    Transcriber,
    Transcript,
    WhisperTranscriber,
)
from assistant.audio.endpoint import (
    Endpointer,
    EndpointEvent,
    EndpointSettings,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
)
from assistant.audio.errors import (
    AudioError,
    AudioFormatError,
    ModelLoadError,
    UnsupportedRateError,
)
from assistant.audio.frontend import AudioFrontEnd
from assistant.audio.resample import SUPPORTED_RATES, Resampler
from assistant.audio.vad import SileroVad, VadStream

__all__ = [
    "SUPPORTED_RATES",
    "Alternative",
    "AsrSettings",
    "AudioError",
    "AudioFormatError",
    "AudioFrontEnd",
    "EndpointEvent",
    "EndpointSettings",
    "Endpointer",
    "ModelLoadError",
    "Resampler",
    "SileroVad",
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "SpeechStopped",
    "Transcriber",
    "Transcript",
    "UnsupportedRateError",
    "VadStream",
    "WhisperTranscriber",
]
