"""``hearth say``, ``hearth stream`` and ``hearth listen``: the command-line clients.

Every server event is printed to stdout as one JSON line (UTF-8, as on the wire); a one-line
summary or error goes to stderr. Exit codes:

* 0 — every utterance finished with its device actions ``confirmed``;
* 1 — an utterance failed: no intent, an action not confirmed, an ``error`` event, no speech;
* 2 — cannot start: server unreachable or refusing, unreadable WAV, no microphone;
* 3 — timed out waiting for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import wave
from pathlib import Path
from typing import Any, Final

from assistant.client import (
    DEFAULT_URL,
    Event,
    HearthClient,
    HearthClientError,
    HearthServerError,
    Utterance,
    UtteranceTracker,
    read_wav,
)
from assistant.protocol import (
    MAX_TEXT_CHARS,
    SUPPORTED_SAMPLE_RATES,
    ErrorCode,
    ReplySettings,
    ResponseAudio,
    SessionUpdate,
    WakeSettings,
)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNAVAILABLE: Final = 2
EXIT_TIMEOUT: Final = 3
#: What the server accepts as ``language`` (protocol: 2 to 16 characters, e.g. en, zh-CN).
LANGUAGE_MIN_CHARS: Final = 2
LANGUAGE_MAX_CHARS: Final = 16

#: Environment variable read for ``--token`` when the option is not given.
TOKEN_ENV: Final = "HEARTH_TOKEN"
DEFAULT_SAY_TIMEOUT_S: Final = 30.0
#: ``hearth listen`` captures at this rate when the microphone allows it (the pipeline's own
#: rate: nothing to resample on either side).
LISTEN_SAMPLE_RATE: Final = 16000
LISTEN_BLOCK_MS: Final = 20
#: Microphone blocks buffered while the socket is slow; beyond it the oldest are dropped,
#: since late audio is worth less than current audio to a live assistant.
LISTEN_QUEUE_BLOCKS: Final = 100
#: Rate of the spoken reply asked for by ``--reply-audio`` (the joe voice's own rate).
REPLY_SAMPLE_RATE: Final = 22050


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
        p.add_argument(
            "--token",
            default=os.environ.get(TOKEN_ENV),
            help=f"access token, sent as 'Authorization: Bearer' (default: ${TOKEN_ENV})",
        )
        p.add_argument("--language", help="language of the speech/text, e.g. en, zh-CN")

    def reply_audio(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--reply-audio",
            type=Path,
            metavar="FILE.wav",
            help="ask for the spoken reply and write it to this WAV file (16-bit mono, "
            f"{REPLY_SAMPLE_RATE} Hz)",
        )

    def wake(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--wake",
            metavar="WORD",
            help="hear only commands after this wake word (okay_nabu, hey_jarvis, alexa, "
            "hey_mycroft); audio before it is dropped by the server",
        )

    p = sub.add_parser(
        "say",
        help="send a text command, print the events as JSON lines",
        description="Send a typed command to a Hearth server and print every event as one "
        "JSON line until the command's actions are final.",
    )
    p.add_argument("text", nargs="+", help="the command, e.g. turn on the kitchen light")
    common(p)
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_SAY_TIMEOUT_S, help="seconds (default 30)"
    )
    reply_audio(p)
    p.set_defaults(func=_say)

    p = sub.add_parser(
        "stream",
        help="stream a WAV file, print the events as JSON lines",
        description="Stream a 16-bit PCM WAV file (8/16/22.05/44.1/48 kHz) to a Hearth server "
        "and print every event as one JSON line until its utterances are finished.",
    )
    p.add_argument("file", type=Path, help="WAV file")
    common(p)
    p.add_argument(
        "--realtime",
        action="store_true",
        help="send at the audio's own pace with trailing silence, like a microphone "
        "(default: as fast as possible, then audio.commit)",
    )
    p.add_argument("--timeout", type=float, help="seconds (default: the audio's length plus 30 s)")
    reply_audio(p)
    wake(p)
    p.set_defaults(func=_stream)

    p = sub.add_parser(
        "listen",
        help="stream the microphone (needs sounddevice), print the events",
        description="Stream the default microphone to a Hearth server and print every event "
        "as one JSON line. Ctrl-C (or --seconds) stops; with --seconds the exit code says "
        "whether every utterance succeeded. Needs the optional 'sounddevice' package.",
    )
    common(p)
    p.add_argument("--device", help="input device name or number (see python -m sounddevice)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument(
        "--no-reply-audio", action="store_true", help="do not play the spoken replies"
    )
    wake(p)
    p.set_defaults(func=_listen)


# -- output --------------------------------------------------------------------------------


def print_event(event: Event) -> None:
    """One JSON line; a ``response.audio`` chunk is shown with its size, not its audio."""
    obj = event.to_dict()
    if isinstance(event, ResponseAudio):
        obj.pop("audio", None)
        obj["audio_bytes"] = len(event.audio) * 3 // 4 - event.audio[-2:].count("=")
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def write_reply(path: Path, utterances: list[Utterance]) -> bool:
    """The spoken replies of ``utterances``, one after the other, as a WAV file. False (with a
    message) when there was none or the file cannot be written."""
    pcm = b"".join(bytes(u.reply_audio) for u in utterances)
    rate = next((u.reply_rate for u in utterances if u.reply_rate), REPLY_SAMPLE_RATE)
    for u in utterances:
        if u.reply is not None:
            _error(f"reply: {u.reply.text}")
    if not pcm:
        _error("the server sent no reply audio (no voice for the language?)")
        return False
    try:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
    except OSError as e:
        _error(f"cannot write {path}: {e}")
        return False
    return True


def _error(message: str) -> None:
    print(f"hearth: {message}", file=sys.stderr, flush=True)


def _verdict(utterances: list[Utterance]) -> int:
    if not utterances:
        _error("no speech was detected")
        return EXIT_FAILED
    failed = [u for u in utterances if not u.ok]
    for u in failed:
        _error(f"utterance {u.utterance_id}: {u.summary}")
    return EXIT_FAILED if failed else EXIT_OK


def _bad_input(args: argparse.Namespace, text: str | None = None) -> str | None:
    """What is wrong with the command line before anything is sent, or None. The server
    would refuse the same things; saying so here gives one line instead of a round trip."""
    if text is not None:
        if not text.strip():
            return "nothing to say: the text is empty"
        if len(text) > MAX_TEXT_CHARS:
            return (
                f"the text is {len(text)} characters; the server accepts at most "
                f"{MAX_TEXT_CHARS}"
            )
    language = args.language
    if language is not None and not LANGUAGE_MIN_CHARS <= len(language) <= LANGUAGE_MAX_CHARS:
        return f"--language {language!r}: expected a language code such as en or zh-CN"
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not timeout > 0:
        return f"--timeout {timeout:g}: must be more than 0 seconds"
    seconds = getattr(args, "seconds", None)
    if seconds is not None and not seconds > 0:
        return f"--seconds {seconds:g}: must be more than 0 seconds"
    return None


def _failed(e: TimeoutError | HearthClientError, timeout_s: float | None = None) -> int:
    """One line for a client call that failed, and its exit code: no answer in time, the
    server's error, or no server."""
    if isinstance(e, TimeoutError):
        waited = "" if timeout_s is None else f" after {timeout_s:g} s"
        _error(f"timed out{waited} waiting for the server")
        return EXIT_TIMEOUT
    if isinstance(e, HearthServerError):
        if e.event.code == ErrorCode.UNAUTHORIZED:
            _error(f"server error {e} (check --token)")
            return EXIT_UNAVAILABLE  # could not start, like a refused handshake
        _error(f"server error {e}")
        return EXIT_FAILED
    _error(str(e))
    return EXIT_UNAVAILABLE


# -- commands ------------------------------------------------------------------------------


def _say(args: argparse.Namespace) -> int:
    return asyncio.run(_say_async(args))


async def _say_async(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    if (problem := _bad_input(args, text)) is not None:
        _error(problem)
        return EXIT_UNAVAILABLE
    try:
        async with HearthClient(args.url, token=args.token) as client:
            if args.reply_audio is not None:
                await client.update_session(
                    reply=ReplySettings(audio=True, sample_rate=REPLY_SAMPLE_RATE)
                )
            utt = await client.say(
                text, args.language, timeout_s=args.timeout, on_event=print_event
            )
    except (TimeoutError, HearthClientError) as e:
        return _failed(e, args.timeout)
    if args.reply_audio is not None and not write_reply(args.reply_audio, [utt]):
        return EXIT_FAILED
    return _verdict([utt])


def _stream(args: argparse.Namespace) -> int:
    return asyncio.run(_stream_async(args))


async def _stream_async(args: argparse.Namespace) -> int:
    if (problem := _bad_input(args)) is not None:
        _error(problem)
        return EXIT_UNAVAILABLE
    try:
        audio = read_wav(args.file)
    except (OSError, EOFError, ValueError, wave.Error) as e:
        _error(f"cannot read {args.file}: {e}")
        return EXIT_UNAVAILABLE
    timeout_s = args.timeout if args.timeout is not None else audio.duration_s + 30.0
    tracker: UtteranceTracker
    try:
        async with HearthClient(args.url, token=args.token) as client:
            if args.language:
                await client.update_session(language=args.language)
            if args.wake:
                await client.send_message(SessionUpdate(wake=WakeSettings(word=args.wake)))
            if args.reply_audio is not None:
                await client.update_session(
                    reply=ReplySettings(audio=True, sample_rate=REPLY_SAMPLE_RATE)
                )
            tracker = await client.stream(
                audio, realtime=args.realtime, timeout_s=timeout_s, on_event=print_event
            )
    except (TimeoutError, HearthClientError) as e:
        return _failed(e, timeout_s)
    for err in tracker.session_errors:
        _error(f"server error {err.code}: {err.message}")
    utterances = list(tracker.utterances.values())
    if args.reply_audio is not None and not write_reply(args.reply_audio, utterances):
        return EXIT_FAILED
    rc = _verdict(utterances)
    return EXIT_FAILED if tracker.session_errors else rc


def _listen(args: argparse.Namespace) -> int:
    if (problem := _bad_input(args)) is not None:
        _error(problem)
        return EXIT_UNAVAILABLE
    # Imported lazily: sounddevice is optional (the 'mic' extra) and needs the PortAudio
    # shared library, which servers and CI machines usually lack.
    try:
        import sounddevice
    except ImportError:
        _error("hearth listen needs the optional 'sounddevice' package: pip install 'hearth[mic]'")
        return EXIT_UNAVAILABLE
    except OSError as e:  # sounddevice raises this when libportaudio is missing
        _error(f"sounddevice cannot load PortAudio ({e}); install libportaudio2")
        return EXIT_UNAVAILABLE
    return asyncio.run(_listen_async(args, sounddevice))


async def _listen_async(args: argparse.Namespace, sd: Any) -> int:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=LISTEN_QUEUE_BLOCKS)

    def put(block: bytes) -> None:
        if queue.full():
            queue.get_nowait()  # overflow policy: drop the oldest block
        queue.put_nowait(block)

    def on_audio(indata: Any, frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: hand the block to the event loop, never block here.
        loop.call_soon_threadsafe(put, bytes(indata))

    device = int(args.device) if args.device and args.device.isdigit() else args.device
    stream = None
    rate = LISTEN_SAMPLE_RATE
    try:
        default_rate = int(sd.query_devices(device, "input")["default_samplerate"])
        rates = [r for r in (LISTEN_SAMPLE_RATE, default_rate) if r in SUPPORTED_SAMPLE_RATES]
        for rate in dict.fromkeys(rates):
            try:
                stream = sd.RawInputStream(
                    samplerate=rate,
                    channels=1,
                    dtype="int16",
                    blocksize=rate * LISTEN_BLOCK_MS // 1000,
                    device=device,
                    callback=on_audio,
                )
                break
            except sd.PortAudioError:
                continue
    except (sd.PortAudioError, ValueError) as e:
        _error(f"no usable microphone: {e}")
        return EXIT_UNAVAILABLE
    if stream is None:
        _error("the microphone offers no sample rate the server accepts")
        return EXIT_UNAVAILABLE
    try:
        return await _listen_stream(args, stream, rate, queue)
    finally:
        if not stream.closed:  # the connection failed before capture started
            stream.close()


async def _listen_stream(
    args: argparse.Namespace, stream: Any, rate: int, queue: asyncio.Queue[bytes]
) -> int:
    async def send_microphone(client: HearthClient) -> None:
        """Forward microphone blocks until ``--seconds`` have passed (forever without it),
        then end the utterance in progress."""
        loop = asyncio.get_running_loop()
        deadline = None if args.seconds is None else loop.time() + args.seconds
        with stream:
            while deadline is None or loop.time() < deadline:
                wait = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    async with asyncio.timeout(wait):
                        block = await queue.get()
                except TimeoutError:
                    break
                await client.send_audio(block)
        await client.commit()

    player = None if args.no_reply_audio else _Player.open(sd_module(), rate)
    on_event = print_event if player is None else player.wrap(print_event)
    try:
        async with HearthClient(args.url, token=args.token) as client:
            reply = None if player is None else ReplySettings(audio=True, sample_rate=rate)
            await client.update_session(sample_rate=rate, language=args.language, reply=reply)
            if args.wake:
                await client.send_message(SessionUpdate(wake=WakeSettings(word=args.wake)))
            until = f" for {args.seconds:g} s" if args.seconds is not None else "; Ctrl-C stops"
            _error(f"listening at {rate} Hz{until}")
            tracker = await client.collect(send_microphone(client), on_event=on_event)
    except HearthClientError as e:
        return _failed(e)
    finally:
        if player is not None:
            player.close()
    failed = [u for u in tracker.utterances.values() if not u.ok]
    for u in failed:
        _error(f"utterance {u.utterance_id}: {u.summary}")
    return EXIT_FAILED if failed or tracker.session_errors else EXIT_OK


def sd_module() -> Any:
    import sounddevice

    return sounddevice


class _Player:
    """Plays ``response.audio`` on the default output device (PortAudio pulls from a buffer
    in its own thread); ``response.interrupted`` empties the buffer at once. The microphone
    hears the speaker unless the room or the device cancels the echo: use a headset, or a
    device with echo cancellation, for barge-in (docs/clients.md)."""

    def __init__(self, stream: Any) -> None:
        import threading

        self._stream = stream
        self._buf = bytearray()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, sd: Any, rate: int) -> _Player | None:
        player = cls(None)
        try:
            player._stream = sd.RawOutputStream(
                samplerate=rate, channels=1, dtype="int16", callback=player._pull
            )
            player._stream.start()
        except Exception as e:  # no output device: listen without playing
            _error(f"cannot play replies ({e}); text only")
            return None
        return player

    def _pull(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        n = frames * 2
        with self._lock:
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
        outdata[:] = chunk + bytes(n - len(chunk))

    def wrap(self, inner: Any) -> Any:
        import base64

        from assistant.protocol import ResponseInterrupted

        def on_event(event: Event) -> None:
            inner(event)
            if isinstance(event, ResponseAudio):
                with self._lock:
                    self._buf += base64.b64decode(event.audio)
            elif isinstance(event, ResponseInterrupted):
                with self._lock:
                    self._buf.clear()

        return on_event

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
