"""Async Python client for the Hearth WebSocket protocol.

The wire schema lives in :mod:`assistant.protocol`; this module only moves its messages over a
socket and keeps track of utterances. Typical use::

    async with HearthClient("ws://127.0.0.1:8765") as client:
        utt = await client.say("turn on the kitchen light")
        print(utt.intent, [a.status for a in utt.final_actions])

        results = await client.stream("command.wav", realtime=True)

Lower-level building blocks: :meth:`HearthClient.send_text`, :meth:`~HearthClient.send_audio`,
:meth:`~HearthClient.update_session`, :meth:`~HearthClient.commit`,
:meth:`~HearthClient.stream_wav`, :meth:`~HearthClient.events` (the single reader of the
socket) and :class:`UtteranceTracker`, a sans-I/O record of which utterances are finished.

An utterance is finished when its ``metrics`` event arrives: the protocol sends it last for
every utterance, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Final, TypeAlias

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from assistant.client_audio import (
    PcmAudio,
    read_wav,
    silence,
)
from assistant.client_turns import (
    SUCCESS_STATUSES,
    Event,
    UnknownEvent,
    Utterance,
    UtteranceTracker,
    decode_event,
    event_to_dict,
)
from assistant.protocol import (
    PROTOCOL_VERSION,
    SAMPLE_WIDTH,
    AudioClear,
    AudioCommit,
    Cancel,
    ErrorEvent,
    ImageInput,
    Mode,
    ReplySettings,
    SessionCreated,
    SessionUpdate,
    TextInput,
    TurnDetection,
)
from assistant.redact import protect_websockets_logs

logger = logging.getLogger(__name__)

DEFAULT_URL: Final = "ws://127.0.0.1:8765"


#: How long to wait for the TCP/WebSocket handshake and the ``session.created`` event.
DEFAULT_OPEN_TIMEOUT_S: Final = 10.0


#: Audio chunk length sent by :meth:`HearthClient.stream_wav`: 20 ms is what microphones and
#: the browser page send, small enough that the server's VAD sees speech end promptly.
DEFAULT_CHUNK_MS: Final = 20


#: Chunk length when not sending in real time: fewer, larger frames (under the frame limit).
FAST_CHUNK_MS: Final = 200


#: Share of the server's ``max_messages_per_s`` that fast (non-real-time) streaming uses.
FAST_RATE_SHARE: Final = 0.5


#: Silence appended after a WAV when the session's own ``silence_ms`` is unknown.
DEFAULT_TRAILING_SILENCE_MS: Final = 1200


#: Extra silence beyond the server's ``silence_ms`` so its endpointer fires with margin (VAD
#: works on windows, and the last voiced window may straddle the WAV's end).
TRAILING_SILENCE_MARGIN_MS: Final = 700


#: After the last audio is sent, how long without any event (and with no utterance
#: unfinished) before :meth:`HearthClient.stream` decides no more utterances are coming.
DEFAULT_SETTLE_S: Final = 1.5


#: Largest event accepted from the server (device listings can be long; audio never comes).
MAX_EVENT_BYTES: Final = 4 * 1024 * 1024


class HearthClientError(Exception):
    """Base of the client's errors."""


class HearthConnectionError(HearthClientError):
    """The server cannot be reached, refused the handshake, or closed the connection."""


class HearthServerError(HearthClientError):
    """The server reported an error that ends the request (``error`` event)."""

    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(f"{event.code}: {event.message}")
        self.event = event


# -- the client ----------------------------------------------------------------------------


EventCallback: TypeAlias = Callable[[Event], None]


class HearthClient:
    """One WebSocket session with a Hearth server.

    ``async with HearthClient(url, token=...) as client`` connects and waits for
    ``session.created`` (available as :attr:`session`); leaving the block closes the
    connection normally. Raises :class:`HearthConnectionError` when the server cannot be
    reached or refuses the connection, :class:`HearthServerError` when the first event is an
    error (for example ``unauthorized``).

    Sending methods may be called from any task. :meth:`events` is the one reader of the
    socket: run a single consumer of it at a time (the high-level :meth:`say` and
    :meth:`stream` are such consumers).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.token = token
        self.open_timeout = open_timeout
        self.session: SessionCreated | None = None
        #: The sample rate the server assumes for binary frames (tracks update_session).
        self.sample_rate: int | None = None
        self._ws: ClientConnection | None = None
        self._backlog: list[Event] = []  # events read before a consumer asked for them

    # -- connection ------------------------------------------------------------------

    async def __aenter__(self) -> HearthClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> SessionCreated:
        """Open the connection and wait for ``session.created``."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        protect_websockets_logs()  # websockets logs headers at DEBUG: keep the token out
        try:
            self._ws = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                max_size=MAX_EVENT_BYTES,
                user_agent_header=f"hearth-client/{PROTOCOL_VERSION}",
            )
        except InvalidURI as e:
            raise HearthConnectionError(f"invalid server URL {self.url!r}: {e}") from None
        except InvalidStatus as e:
            status = e.response.status_code
            hint = " (check the token)" if status in (401, 403) else ""
            raise HearthConnectionError(
                f"{self.url} refused the WebSocket connection: HTTP {status}{hint}"
            ) from None
        except InvalidHandshake as e:
            raise HearthConnectionError(f"{self.url}: WebSocket handshake failed: {e}") from None
        except TimeoutError:
            raise HearthConnectionError(f"{self.url}: timed out connecting") from None
        except ConnectionRefusedError:
            raise HearthConnectionError(
                f"cannot connect to {self.url}: connection refused (is 'hearth serve' running?)"
            ) from None
        except OSError as e:
            reason = e.strerror or str(e) or type(e).__name__
            raise HearthConnectionError(f"cannot connect to {self.url}: {reason}") from None
        try:
            first = await asyncio.wait_for(self._recv(), self.open_timeout)
        except TimeoutError:
            await self.close()
            hint = "" if self.token else " (does it require a token?)"
            raise HearthConnectionError(
                f"{self.url}: no session.created from the server{hint}"
            ) from None
        if first is None:
            raise HearthConnectionError(f"{self.url}: {self._closed_reason()}")
        if isinstance(first, ErrorEvent):
            await self.close()
            raise HearthServerError(first)
        if not isinstance(first, SessionCreated):
            await self.close()
            raise HearthConnectionError(f"{self.url}: server did not start with session.created")
        # Kept for the first consumer of events(): printing every event includes this one.
        self._backlog.append(first)
        self.session = first
        self.sample_rate = first.config.sample_rate
        return first

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            raise HearthClientError("not connected: use 'async with HearthClient(...)'")
        return self._ws

    def _closed_reason(self) -> str:
        ws = self._ws
        if ws is None or ws.close_code is None:
            return "connection closed"
        reason = f" {ws.close_reason}" if ws.close_reason else ""
        return f"server closed the connection ({ws.close_code}{reason})"

    # -- sending ---------------------------------------------------------------------

    async def send_message(
        self, message: SessionUpdate | AudioCommit | AudioClear | TextInput | ImageInput | Cancel
    ) -> None:
        """Send one typed client message."""
        try:
            await self.ws.send(message.to_json())
        except ConnectionClosed:
            raise HearthConnectionError(self._closed_reason()) from None

    async def send_text(self, text: str, language: str | None = None) -> None:
        """A typed command; the server skips VAD and ASR."""
        await self.send_message(TextInput(text=text, language=language))

    async def send_audio(self, pcm: bytes) -> None:
        """One binary frame of PCM s16le mono at the session's sample rate."""
        try:
            await self.ws.send(pcm)
        except ConnectionClosed:
            raise HearthConnectionError(self._closed_reason()) from None

    async def update_session(
        self,
        *,
        sample_rate: int | None = None,
        language: str | None = None,
        mode: Mode | None = None,
        turn_detection: TurnDetection | None = None,
        partials: bool | None = None,
        device_events: bool | None = None,
        reply: ReplySettings | None = None,
    ) -> None:
        """Change session settings; None keeps the server's current value. The server
        answers with ``session.updated`` (or an ``error``) on the event stream."""
        await self.send_message(
            SessionUpdate(
                sample_rate=sample_rate,
                language=language,
                mode=mode,
                turn_detection=turn_detection,
                partials=partials,
                device_events=device_events,
                reply=reply,
            )
        )
        if sample_rate is not None:
            self.sample_rate = sample_rate

    async def commit(self) -> None:
        """End the current utterance now (push-to-talk release)."""
        await self.send_message(AudioCommit())

    async def clear(self) -> None:
        """Drop the audio buffered for the utterance in progress."""
        await self.send_message(AudioClear())

    async def cancel(self, utterance_id: str | None = None) -> None:
        """Stop work in flight: one utterance, or all of the session's."""
        await self.send_message(Cancel(utterance_id=utterance_id))

    async def send_image(self, image: str | Path | bytes, mime: str | None = None) -> None:
        """Send an image as context for the next utterance. ``mime`` defaults to the one the
        file name implies, else ``image/jpeg``."""
        if isinstance(image, bytes):
            data = image
        else:
            data = await asyncio.to_thread(Path(image).read_bytes)
            if mime is None:
                mime = mimetypes.guess_type(str(image))[0]
        await self.send_message(
            ImageInput(data=base64.b64encode(data).decode("ascii"), mime=mime or "image/jpeg")
        )

    def trailing_silence_ms(self) -> int:
        """Silence to append after audio so that the server's endpointer fires: the session's
        ``silence_ms`` plus a margin, or a safe default if the server did not say."""
        silence_ms = None
        if self.session is not None:
            silence_ms = self.session.config.turn_detection.silence_ms
        if silence_ms is None:
            return DEFAULT_TRAILING_SILENCE_MS
        return silence_ms + TRAILING_SILENCE_MARGIN_MS

    async def stream_wav(
        self,
        path: str | Path | PcmAudio,
        *,
        realtime: bool = True,
        chunk_ms: int | None = None,
        trailing_silence_ms: int | None = None,
        commit: bool = True,
    ) -> PcmAudio:
        """Send a WAV file's audio, declaring its sample rate first with ``session.update``.

        ``realtime``: pace ``chunk_ms`` chunks (default 20 ms) at the audio's own speed, as a
        microphone would, and append ``trailing_silence_ms`` of silence (default
        :meth:`trailing_silence_ms`) so that the server's endpointer ends the utterance by
        itself. Otherwise send larger chunks (default 200 ms) as fast as the server's message
        rate limit allows, with no silence appended. With ``commit`` an ``audio.commit``
        follows the audio, which ends an utterance still open (a no-op otherwise).
        """
        audio = path if isinstance(path, PcmAudio) else await asyncio.to_thread(read_wav, path)
        if audio.sample_rate != self.sample_rate:
            await self.update_session(sample_rate=audio.sample_rate)
        if chunk_ms is None:
            chunk_ms = DEFAULT_CHUNK_MS if realtime else FAST_CHUNK_MS
        limits = self.session.limits if self.session is not None else None
        if limits is not None:
            largest_ms = limits.max_audio_frame_bytes * 1000 // (audio.sample_rate * SAMPLE_WIDTH)
            chunk_ms = max(1, min(chunk_ms, largest_ms))
        if realtime:
            interval = chunk_ms / 1000
        elif limits is not None:
            # The server drops messages over its per-connection rate (``rate_limited``):
            # stay well under it, leaving room for control messages.
            interval = 1.0 / (FAST_RATE_SHARE * limits.max_messages_per_s)
        else:
            interval = 0.0
        pcm = audio.pcm
        tail = trailing_silence_ms
        if tail is None and realtime:
            tail = self.trailing_silence_ms()
        if tail:
            pcm += silence(audio.sample_rate, tail)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, chunk in enumerate(PcmAudio(pcm, audio.sample_rate).chunks(chunk_ms)):
            # Sleep to an absolute schedule so that send jitter does not accumulate.
            delay = start + i * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_audio(chunk)
        if commit:
            await self.commit()
        return audio

    # -- receiving -------------------------------------------------------------------

    async def _recv(self) -> Event | None:
        """Next event, or None when the connection is closed."""
        while True:
            try:
                data = await self.ws.recv()
            except ConnectionClosed:
                return None
            if isinstance(data, bytes):
                logger.debug("ignoring %d-byte binary frame from server", len(data))
                continue
            return decode_event(data)

    async def next_event(self) -> Event | None:
        """The next event (including any read while connecting), or None once closed."""
        if self._backlog:
            return self._backlog.pop(0)
        return await self._recv()

    async def events(self) -> AsyncIterator[Event]:
        """Every event from the server, decoded, until the connection closes."""
        while (event := await self.next_event()) is not None:
            yield event

    # -- high level --------------------------------------------------------------------

    async def say(
        self,
        text: str,
        language: str | None = None,
        *,
        timeout_s: float = 30.0,
        on_event: EventCallback | None = None,
    ) -> Utterance:
        """Send a text command and wait for its utterance to finish.

        Returns the :class:`Utterance` (check :attr:`Utterance.ok`). Raises
        :class:`HearthServerError` if the server rejects the message itself,
        :class:`HearthConnectionError` if the connection closes, ``TimeoutError`` after
        ``timeout_s`` seconds. Events before the command (``session.created``) go to
        ``on_event`` too. The command's utterance is the first one the server reports after
        sending: use a connection of its own when commands run concurrently.
        """
        tracker = UtteranceTracker()

        async def wait() -> Utterance:
            await self.send_text(text, language)
            async for event in self.events():
                if on_event is not None:
                    on_event(event)
                utt = tracker.feed(event)
                if isinstance(event, ErrorEvent) and event.utterance_id is None:
                    raise HearthServerError(event)
                if utt is not None and utt.done and not utt.reply_pending:
                    return utt
            raise HearthConnectionError(self._closed_reason())

        async with asyncio.timeout(timeout_s):
            return await wait()

    async def stream(
        self,
        path: str | Path | PcmAudio,
        *,
        realtime: bool = True,
        timeout_s: float | None = None,
        settle_s: float = DEFAULT_SETTLE_S,
        on_event: EventCallback | None = None,
        chunk_ms: int | None = None,
        trailing_silence_ms: int | None = None,
    ) -> UtteranceTracker:
        """Stream a WAV file and collect the utterances the server finds in it.

        Returns as :meth:`collect` does. ``timeout_s`` defaults to the audio's length plus
        30 s; past it, ``TimeoutError``.
        """
        audio = path if isinstance(path, PcmAudio) else await asyncio.to_thread(read_wav, path)
        if timeout_s is None:
            timeout_s = audio.duration_s + 30.0
        sending = self.stream_wav(
            audio, realtime=realtime, chunk_ms=chunk_ms, trailing_silence_ms=trailing_silence_ms
        )
        async with asyncio.timeout(timeout_s):
            return await self.collect(sending, settle_s=settle_s, on_event=on_event)

    async def collect(
        self,
        sending: Awaitable[object],
        *,
        settle_s: float = DEFAULT_SETTLE_S,
        on_event: EventCallback | None = None,
    ) -> UtteranceTracker:
        """Run ``sending`` (a coroutine that sends audio) while reading events.

        Returns once ``sending`` has finished, every utterance that started has finished, and
        no event arrived for ``settle_s`` seconds (the server may still be working through
        buffered audio). Session-level errors are in the tracker's ``session_errors``. If
        sending or receiving fails, the other is cancelled and the error raised.
        """
        tracker = UtteranceTracker()
        sent = asyncio.Event()

        async def send() -> None:
            await sending
            sent.set()

        async def receive() -> None:
            while True:
                # While audio is still going out, wake up now and then to notice the end of
                # sending; after it, a quiet period of settle_s ends the wait. Cancelling
                # recv() is safe in websockets: no message is lost.
                done_sending = sent.is_set()
                try:
                    async with asyncio.timeout(settle_s if done_sending else 0.5):
                        event = await self.next_event()
                except TimeoutError:
                    if done_sending and tracker.all_done:
                        return
                    continue
                if event is None:
                    if sent.is_set() and tracker.all_done and tracker.utterances:
                        return
                    raise HearthConnectionError(self._closed_reason())
                if on_event is not None:
                    on_event(event)
                tracker.feed(event)

        try:
            async with asyncio.TaskGroup() as tg:
                # The receiver returns only after the sender has finished.
                tg.create_task(send(), name="hearth-send")
                tg.create_task(receive(), name="hearth-receive")
        except BaseExceptionGroup as group:
            # Callers catch plain errors (connection lost, ...), not groups of one.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        return tracker


# Events, utterance tracking and audio helpers live in client_turns / client_audio since the
# split; still importable from here.
__all__ = ["DEFAULT_URL", "SUCCESS_STATUSES", "Event", "HearthClient", "HearthClientError",
           "HearthConnectionError", "HearthServerError", "PcmAudio", "UnknownEvent", "Utterance",
           "UtteranceTracker", "decode_event", "event_to_dict", "read_wav", "silence"]
