"""Loading a Whisper model for :class:`assistant.audio.asr.WhisperTranscriber`: the model
chosen by the settings (:mod:`assistant.audio.whisper_models`), its device, compute type and
replicas, and the niceness of the compute threads CTranslate2 starts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.audio.errors import ModelLoadError
from assistant.priority import lower_thread_priority, native_thread_ids

if TYPE_CHECKING:
    from assistant.audio.asr import AsrSettings


@dataclass(frozen=True)
class LoadedWhisper:
    """A loaded ``faster_whisper.WhisperModel`` and how it was loaded."""

    model: Any
    #: The CTranslate2 directory (or hub name) the model was loaded from.
    model_ref: str
    device: str
    compute_type: str
    workers: int


def load_whisper(s: AsrSettings) -> LoadedWhisper:
    """Load the model the settings name; :class:`ModelLoadError` when it cannot be."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise ModelLoadError("faster-whisper is not installed") from e

    from assistant.audio.whisper_models import resolve_model

    model_ref = resolve_model(s.model, allow_download=s.allow_download)
    device = s.resolved_device()
    compute_type = s.resolved_compute_type(device)
    workers = s.resolved_workers(device)
    before = native_thread_ids()
    try:
        model = WhisperModel(
            model_ref,
            device=device,
            compute_type=compute_type,
            cpu_threads=s.cpu_threads,
            num_workers=workers,
            local_files_only=not s.allow_download,
        )
    except Exception as e:  # CTranslate2/huggingface raise many unrelated types
        raise ModelLoadError(f"cannot load Whisper model {model_ref!r}: {e}") from e
    # CTranslate2 starts one thread per replica; threads other code started meanwhile
    # (the server loads models in parallel) are Python threads and are left alone.
    python_threads = {t.native_id for t in threading.enumerate()}
    compute = native_thread_ids() - before - python_threads
    if s.nice and compute:
        lower_thread_priority(compute, s.nice)
    return LoadedWhisper(model, model_ref, device, compute_type, workers)


__all__ = ["LoadedWhisper", "load_whisper"]
