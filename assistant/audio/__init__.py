"""Audio pipeline: resampling, voice activity detection, endpointing and speech recognition.

Import the modules themselves (``assistant.audio.asr``, ``.endpoint``, ``.vad`` ...); heavy
dependencies (onnxruntime, faster-whisper) are imported lazily by the classes that need them.
"""
