"""Wire protocol: decode/encode every message and every error code, without sockets."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from assistant import protocol as p
from intents.schema import Intent


def decode_error(data: str | bytes) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_client_message(data)
    return info.value


# -- client messages -------------------------------------------------------------------------

CLIENT_EXAMPLES: list[dict[str, Any]] = [
    {"type": "session.update"},
    {
        "type": "session.update",
        "sample_rate": 48000,
        "language": "zh-CN",
        "mode": "push_to_talk",
        "turn_detection": {
            "threshold": 0.6,
            "min_speech_ms": 100,
            "silence_ms": 300,
            "prefix_padding_ms": 200,
            "max_utterance_ms": 8000,
        },
        "partials": False,
        "device_events": False,
        "token": "secret",
        "reply": {"audio": True, "sample_rate": 22050},
    },
    {"type": "audio.commit"},
    {"type": "audio.clear"},
    {"type": "text", "text": "把客厅灯打开"},
    {"type": "text", "text": "turn on the kitchen light", "language": "en"},
    {"type": "image", "data": base64.b64encode(b"\x89PNG...").decode(), "mime": "image/png"},
    {"type": "cancel"},
    {"type": "cancel", "utterance_id": "abc-1"},
    {"type": "confirm"},
    {"type": "confirm", "accept": False, "utterance_id": "abc-2"},
]


@pytest.mark.parametrize("raw", CLIENT_EXAMPLES, ids=lambda r: str(r["type"]))
def test_every_client_message_decodes_and_round_trips(raw: dict[str, Any]) -> None:
    msg = p.parse_client_message(json.dumps(raw))
    assert isinstance(msg, p.CLIENT_MESSAGES[raw["type"]])
    again = json.loads(msg.to_json())
    assert {k: again[k] for k in raw} == raw  # every field sent survives as sent
    assert p.parse_client_message(msg.to_json()) == msg


def test_client_message_types_cover_the_registry() -> None:
    assert {r["type"] for r in CLIENT_EXAMPLES} == set(p.CLIENT_MESSAGES) == p.CLIENT_MESSAGE_TYPES


def test_bytes_input_is_decoded_as_utf8_json() -> None:
    assert isinstance(p.parse_client_message(b'{"type":"cancel"}'), p.Cancel)


@pytest.mark.parametrize("rate", p.SUPPORTED_SAMPLE_RATES)
def test_supported_sample_rates(rate: int) -> None:
    msg = p.parse_client_message(json.dumps({"type": "session.update", "sample_rate": rate}))
    assert isinstance(msg, p.SessionUpdate) and msg.sample_rate == rate


def test_session_update_repr_hides_the_token() -> None:
    msg = p.SessionUpdate(token="hunter2")
    assert "hunter2" not in repr(msg)


# -- error codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", ["", "not json", "{", "[1, 2]", '"text"', "42", "null", b"\xff\xfe", "[" * 100_000]
)
def test_bad_json(data: str | bytes) -> None:
    assert decode_error(data).code is p.ErrorCode.BAD_JSON


@pytest.mark.parametrize(
    "raw",
    [{}, {"type": "nope"}, {"type": 5}, {"type": None}, {"type": "Text"}, {"kind": "text"}],
)
def test_unknown_type(raw: dict[str, Any]) -> None:
    err = decode_error(json.dumps(raw))
    assert err.code is p.ErrorCode.UNKNOWN_TYPE


def test_unknown_type_message_does_not_echo_long_input() -> None:
    err = decode_error(json.dumps({"type": "x" * 1000}))
    assert err.code is p.ErrorCode.UNKNOWN_TYPE
    assert "x" * 100 not in err.message


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "text"},  # missing field
        {"type": "text", "text": ""},
        {"type": "text", "text": 5},  # wrong type
        {"type": "text", "text": "x" * (p.MAX_TEXT_CHARS + 1)},
        {"type": "text", "text": "hi", "extra": 1},  # unknown field
        {"type": "session.update", "sample_rate": "16000"},  # strings are not coerced
        {"type": "session.update", "partials": 1},
        {"type": "session.update", "mode": "always"},
        {"type": "session.update", "turn_detection": {"threshold": 2}},
        {"type": "session.update", "turn_detection": {"silence": 300}},
        {"type": "session.update", "turn_detection": "fast"},
        {"type": "session.update", "reply": {"audio": "yes"}},
        {"type": "session.update", "reply": {"voice": "joe"}},
        {"type": "image", "data": "aGk=", "mime": "text/html"},
        {"type": "image"},
        {"type": "cancel", "utterance_id": 7},
        {"type": "confirm", "accept": "yes"},
    ],
)
def test_invalid_message(raw: dict[str, Any]) -> None:
    err = decode_error(json.dumps(raw))
    assert err.code is p.ErrorCode.INVALID_MESSAGE
    assert err.message.startswith(raw["type"])


@pytest.mark.parametrize("rate", [0, 11025, 16001, 96000, -16000])
def test_unsupported_sample_rate(rate: int) -> None:
    err = decode_error(json.dumps({"type": "session.update", "sample_rate": rate}))
    assert err.code is p.ErrorCode.UNSUPPORTED_SAMPLE_RATE
    assert str(rate) in err.message


def test_image_too_large() -> None:
    data = "A" * (p.MAX_IMAGE_BYTES * 4 // 3 + 8)
    err = decode_error(json.dumps({"type": "image", "data": data}))
    assert err.code is p.ErrorCode.IMAGE_TOO_LARGE


def test_audio_frames() -> None:
    p.check_audio_frame(b"")
    p.check_audio_frame(b"\x00\x01" * 320)
    with pytest.raises(p.ProtocolError) as odd:
        p.check_audio_frame(b"\x00" * 3)
    assert odd.value.code is p.ErrorCode.ODD_LENGTH_AUDIO
    with pytest.raises(p.ProtocolError) as big:
        p.check_audio_frame(b"\x00" * 1002, max_bytes=1000)
    assert big.value.code is p.ErrorCode.FRAME_TOO_LARGE


def test_protocol_error_maps_to_an_error_event() -> None:
    err = p.ProtocolError(p.ErrorCode.RATE_LIMITED, "slow down", utterance_id="u-1")
    event = err.to_event()
    assert json.loads(event.to_json()) == {
        "type": "error",
        "code": "rate_limited",
        "message": "slow down",
        "utterance_id": "u-1",
    }


def test_error_codes_are_stable_strings() -> None:
    # Clients branch on these; renaming one is a protocol change (bump PROTOCOL_VERSION).
    assert {c.value for c in p.ErrorCode} >= {
        "bad_json",
        "unknown_type",
        "invalid_message",
        "unsupported_sample_rate",
        "odd_length_audio",
        "frame_too_large",
        "rate_limited",
        "unauthorized",
        "internal_error",
        "asr_failed",
        "recognizer_failed",
    }


# -- server events ---------------------------------------------------------------------------

INTENT = Intent(
    name="light_on", confidence=0.97, source="grammar", reason="template", text="turn on"
)

SERVER_EXAMPLES: list[p._Message] = [
    p.SessionCreated(
        session_id="s1",
        config=p.SessionConfig(),
        limits=p.Limits(
            max_audio_frame_bytes=96000,
            max_message_bytes=4_000_000,
            max_utterance_ms=15000,
            max_messages_per_s=200,
        ),
    ),
    p.SessionUpdated(config=p.SessionConfig(sample_rate=48000, mode="push_to_talk")),
    p.SpeechStarted(utterance_id="s1-1", audio_ms=420),
    p.SpeechStopped(utterance_id="s1-1", audio_ms=1960, speech_end_ms=1440, duration_ms=1500),
    p.TranscriptPartial(utterance_id="s1-1", text="turn on the"),
    p.TranscriptFinal(utterance_id="s1-1", text="Turn on the kitchen light.", language="en"),
    p.IntentEvent(utterance_id="s1-1", intent=INTENT, reason="template", confidence=0.97),
    p.IntentEvent(utterance_id="s1-2", intent=None, reason="no match"),
    p.ActionEvent(
        utterance_id="s1-1",
        intent="light_on",
        status="confirmed",
        final=True,
        device_id="kitchen_light",
        topic="zigbee2mqtt/kitchen_light/set",
        payload='{"state":"ON"}',
        state={"state": "on"},
    ),
    p.ErrorEvent(code=p.ErrorCode.ASR_FAILED, message="speech recognition failed"),
    p.MetricsEvent(
        utterance_id="s1-1",
        outcome="actions",
        timings_ms=p.StageTimings(asr=96.1, speech_end_to_action=180.0),
        audio_ms=1500,
    ),
    p.DeviceState(device_id="kitchen_light", state={"state": "on", "brightness": 50}),
    p.ResponseText(utterance_id="s1-1", response_id="s1-1-r", text="Turned on the kitchen light.",
                   language="en", kind="done", audio=True),
    p.ResponseAudio(utterance_id="s1-1", response_id="s1-1-r", audio="AAAA", sample_rate=16000,
                    offset_ms=0.0),
    p.ResponseDone(utterance_id="s1-1", response_id="s1-1-r", audio_ms=1520.0,
                   timings_ms={"first_audio": 180.0}),
    p.ResponseInterrupted(utterance_id="s1-1", response_id="s1-1-r", played_ms=640.0,
                          sent_ms=1640.0),
    p.TimerFinished(utterance_id="s1-3", timer_id="t1", duration_s=300.0),
    p.ConfirmationCancelled(
        utterance_id="s1-4",
        intent="unlock",
        device_ids=["front_door_lock"],
        reason="the connection changed before it was confirmed; nothing was done",
    ),
    p.WakeDetected(word="okay_nabu", audio_ms=5120, probability=0.97),
]


@pytest.mark.parametrize("event", SERVER_EXAMPLES, ids=lambda e: str(e.type))
def test_every_server_event_round_trips(event: p._Message) -> None:
    text = event.to_json()
    obj = json.loads(text)
    assert obj["type"] == event.type  # type: ignore[attr-defined]
    assert p.parse_server_event(text) == event


def test_server_event_types_cover_the_registry() -> None:
    assert {e.type for e in SERVER_EXAMPLES} == set(p.SERVER_EVENTS)  # type: ignore[attr-defined]


def test_events_carry_utterance_ids_where_they_apply() -> None:
    for name, cls in p.SERVER_EVENTS.items():
        if name in ("session.created", "session.updated", "device.state", "wake.detected"):
            assert "utterance_id" not in cls.model_fields
        else:
            assert "utterance_id" in cls.model_fields, name
