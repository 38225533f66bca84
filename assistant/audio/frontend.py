"""The per-session audio front end: PCM bytes in, endpoint events out.

resample (client rate → 16 kHz float32) → 512-sample framing → silero-vad → endpointer.
Sans-I/O and synchronous: the server calls :meth:`AudioFrontEnd.feed` with each binary
WebSocket message and the time it received it. VAD costs ~60 µs per 32 ms frame, so feeding
inline is cheap; the caller may still run it in a worker thread.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

import numpy as np
import numpy.typing as npt

from assistant.audio.endpoint import (
    Endpointer,
    EndpointEvent,
    EndpointSettings,
    EndpointState,
    SpeechStopped,
)
from assistant.audio.resample import TARGET_RATE, Int16Array, Resampler, check_rate
from assistant.audio.vad import FRAME_SAMPLES, SileroVad

logger = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]

FRAME_MS: Final = FRAME_SAMPLES * 1000 // TARGET_RATE
#: silero's recurrent state drifts over a long stretch without speech in steady noise: after
#: a few seconds of 6 dB kitchen noise it scored the next command 0.00-0.03 where a fresh
#: state scores 0.5-1.0, and the first 1.5 s of the order were lost. Streaming the 60
#: Picovoice recordings back to back in kitchen noise, 16 of 60 onsets at 6 dB (12 at 12 dB)
#: were found > 200 ms later than a fresh state finds them; with the state reset at the end of
#: each utterance and after this much audio with no utterance, 1 (1000 / 2000 ms: 2 / 1 and
#: 2 / 1; 120 s of kitchen noise alone: 2 spurious starts, none without resets).
VAD_RESET_MS: Final = 1500


class AudioFrontEnd:
    """Resampler + framing + VAD + endpointer for one audio stream (one session).

    Not thread-safe: a session feeds it from one task or thread at a time. The VAD model is
    shared; only its per-stream state lives here.
    """

    def __init__(
        self, vad: SileroVad, settings: EndpointSettings | None = None, in_rate: int = TARGET_RATE,
        *, vad_reset_ms: int | None = VAD_RESET_MS,
    ) -> None:
        self._vad = vad
        self._vad_stream = vad.new_stream()
        #: Frames of no utterance after which the VAD's recurrent state is reset (None: only
        #: at the end of each utterance); see :data:`VAD_RESET_MS`.
        self._reset_frames = None if vad_reset_ms is None else max(1, vad_reset_ms // FRAME_MS)
        self._idle_frames = 0
        self._endpointer = Endpointer(settings)
        self._resampler = Resampler(in_rate)
        self._pending: Float32Array = np.zeros(0, dtype=np.float32)
        # Arrival bookkeeping: (cumulative input samples at the end of a chunk, its receive
        # time). A frame is stamped with the arrival of the chunk holding its last input
        # sample, so the resampler's filter delay (~21 ms at 48 kHz, ~66 ms at 8 kHz with
        # soxr HQ) does not shift speech_end_t.
        self._arrivals: deque[tuple[int, float]] = deque()
        self._in_total = 0
        self._out_total = 0
        #: Frames processed by the VAD since creation (metrics).
        self.frames_processed = 0

    @property
    def rate(self) -> int:
        return self._resampler.in_rate

    @property
    def endpointer(self) -> Endpointer:
        return self._endpointer

    @property
    def settings(self) -> EndpointSettings:
        return self._endpointer.settings

    @property
    def in_speech(self) -> bool:
        return self._endpointer.in_speech

    def update_settings(self, settings: EndpointSettings) -> None:
        self._endpointer.update_settings(settings)

    def set_rate(self, rate: int) -> None:
        """Change the client sample rate (``session.update``). Buffered audio is dropped,
        since samples of two rates cannot be joined; the VAD state is kept."""
        check_rate(rate)
        if rate == self._resampler.in_rate:
            return
        self._resampler = Resampler(rate)
        self._reset_buffers()

    def feed(
        self, pcm: bytes | bytearray | memoryview | Int16Array, now: float
    ) -> list[EndpointEvent]:
        """Feed PCM s16le mono at the session rate, received at ``now`` (server clock, s).

        Frames are stamped with the receive time of the chunk that held their last input
        sample (that is what ``speech_end_t`` reports); events carry ``now`` as their
        decision time. Raises
        :class:`~assistant.audio.errors.AudioFormatError` (a ``ValueError``) for an odd
        number of bytes; nothing is consumed in that case.
        """
        x = self._resampler.process(pcm)
        n_in = int(pcm.size) if isinstance(pcm, np.ndarray) else memoryview(pcm).nbytes // 2
        if n_in:
            self._in_total += n_in
            self._arrivals.append((self._in_total, now))
        if self._pending.size:
            x = np.concatenate((self._pending, x))
        events: list[EndpointEvent] = []
        n_frames = x.size // FRAME_SAMPLES
        for i in range(n_frames):
            frame = x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            self._out_total += FRAME_SAMPLES
            prob = self._vad_stream.process(frame)
            self.frames_processed += 1
            got = self._endpointer.process(frame, prob, self._arrival(), now)
            events.extend(got)
            self._refresh_vad(got)
        self._pending = x[n_frames * FRAME_SAMPLES :].copy()
        return events

    def _refresh_vad(self, events: list[EndpointEvent]) -> None:
        """Reset the VAD state at the end of an utterance and after a long stretch without
        one (:data:`VAD_RESET_MS`)."""
        if any(isinstance(e, SpeechStopped) for e in events):
            self._vad_stream.reset()
            self._idle_frames = 0
        elif self._endpointer.state is EndpointState.IDLE:
            self._idle_frames += 1
            if self._reset_frames is not None and self._idle_frames >= self._reset_frames:
                self._vad_stream.reset()
                self._idle_frames = 0
        else:
            self._idle_frames = 0

    def _arrival(self) -> float:
        """Receive time of the chunk holding the input behind output sample ``_out_total``."""
        needed = self._out_total * self._resampler.in_rate / TARGET_RATE
        while len(self._arrivals) > 1 and self._arrivals[0][0] < needed:
            self._arrivals.popleft()
        return self._arrivals[0][1]

    def _reset_buffers(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._arrivals.clear()
        self._in_total = 0
        self._out_total = 0

    def set_complete(self, complete: bool, now: float | None = None) -> list[EndpointEvent]:
        """Grammar-aware endpointing; see :meth:`Endpointer.set_complete`."""
        events = self._endpointer.set_complete(complete, now)
        self._refresh_vad(events)
        return events

    def commit(self, now: float) -> list[EndpointEvent]:
        """Push-to-talk end: close the utterance now, including audio not yet framed."""
        tail = np.concatenate((self._pending, self._resampler.flush()))
        self._reset_buffers()
        events: list[EndpointEvent] = []
        if tail.size:
            # Pad the partial frame with silence so the VAD sees a full frame; the padding
            # is a few ms at most and only ever trails the utterance.
            frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
            frame[: tail.size] = tail[:FRAME_SAMPLES]
            prob = self._vad_stream.process(frame)
            events.extend(self._endpointer.process(frame, prob, now))
        events.extend(self._endpointer.commit(now))
        self._refresh_vad(events)
        return events

    def clear(self) -> None:
        """Forget everything buffered (``audio.clear``, ``cancel``)."""
        self._resampler.reset()
        self._reset_buffers()
        self._vad_stream.reset()
        self._endpointer.clear()
