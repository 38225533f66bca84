"""Property-based fuzzing of the protocol: pure decoding, then a live server.

Property: any frame either decodes to a message or raises :class:`ProtocolError` with a known
code; the server answers bad frames with ``error`` events (or nothing), never dies, and every
other session keeps working.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import protocol as p
from tests.server_fixtures import ServerThread, open_session, recv_utterances

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [
        "text",
        "language",
        "sample_rate",
        "mode",
        "turn_detection",
        "partials",
        "device_events",
        "token",
        "data",
        "mime",
        "utterance_id",
        "accept",
        "threshold",
        "silence_ms",
    ]
)
TYPES = st.sampled_from(sorted(p.CLIENT_MESSAGE_TYPES)) | st.text(max_size=15)
MESSAGES = st.builds(
    lambda t, fields: {"type": t, **fields},
    TYPES,
    st.dictionaries(FIELD_NAMES | st.text(max_size=8), JSON_VALUES, max_size=4),
)


def check(data: str | bytes) -> None:
    try:
        msg = p.parse_client_message(data)
    except p.ProtocolError as e:
        assert isinstance(e.code, p.ErrorCode)
        assert e.message
        return
    assert msg.type in p.CLIENT_MESSAGE_TYPES
    # Whatever decodes, re-encodes to something that decodes to the same message.
    assert p.parse_client_message(msg.to_json()) == msg


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_structured_messages_decode_or_raise_protocol_error(obj: dict[str, Any]) -> None:
    check(json.dumps(obj))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_frames_decode_or_raise_protocol_error(data: bytes | str) -> None:
    check(data)


def fuzz_frames(n: int, seed: int) -> list[str | bytes]:
    """Deterministic mix of garbage: structured near-misses, random text and binary."""
    rng = random.Random(seed)
    frames: list[str | bytes] = []
    types = [*sorted(p.CLIENT_MESSAGE_TYPES), "", "TEXT", "audio", "x" * 60]
    values: list[Any] = [
        None,
        True,
        0,
        -1,
        16000,
        11025,
        1e309,
        "",
        "x" * 2000,
        [],
        {},
        [1],
        {"a": 1},
    ]
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            obj: dict[str, Any] = {"type": rng.choice(types)}
            for _ in range(rng.randint(0, 3)):
                obj[rng.choice(["text", "sample_rate", "mode", "data", "accept", "zz"])] = (
                    rng.choice(values)
                )
            text = json.dumps(obj)
            if obj.get("type") == "text" and isinstance(obj.get("text"), str) and obj["text"]:
                obj["text"] = 5  # keep the recognizer out of it: the fuzz is about decoding
                text = json.dumps(obj)
            frames.append(text)
        elif kind < 0.8:
            frames.append("".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 40))))
        else:
            frames.append(rng.randbytes(rng.choice([1, 3, 7, 64, 641])))
    return frames


@pytest.mark.slow
async def test_live_server_survives_fuzzed_frames(
    text_server_factory: Callable[..., ServerThread],
) -> None:
    server = text_server_factory(
        **{"limits.max_messages_per_s": 1e6, "limits.outbox_events": 100_000}
    )
    # HEARTH_FUZZ_FRAMES=100000 makes this the long run (docs/protocol.md).
    frames = fuzz_frames(int(os.environ.get("HEARTH_FUZZ_FRAMES", "10000")), seed=1234)
    bystander, _ = await open_session(server.url)
    fuzzed, _ = await open_session(server.url)
    async with bystander, fuzzed:

        async def drain() -> int:
            count = 0
            try:
                while True:
                    await asyncio.wait_for(fuzzed.recv(), 3.0)
                    count += 1
            except TimeoutError:
                return count

        reader = asyncio.create_task(drain())
        for frame in frames:
            await fuzzed.send(frame)
        answered = await reader
        # Quoted in docs/reliability.md (run with -s).
        print(f"\nlive fuzz: {len(frames)} frames sent, {answered} events back")
        assert answered > 0
        for ws in (fuzzed, bystander):
            await ws.send(json.dumps({"type": "text", "text": "turn on the kitchen light"}))
            got = await recv_utterances(ws, 1)
            assert got.of("action")[-1]["status"] == "confirmed"
