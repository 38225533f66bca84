"""The speaker's area: ``session.update {area}`` / ``{client_id}`` (``assistant.clients``) reach
the recognizer, so "here", "this room" and a bare "lights off" act in the client's room, and
without a room "in here" acts nowhere. The real recognizer on the demo home; the session's other
parts are the fakes of tests/test_server_session.py."""

from __future__ import annotations

from typing import Any

from assistant import protocol as p
from intents.recognizer import Recognizer
from tests.test_server_session import Harness, json_text

_REC = Recognizer.from_config_path(None)


def _harness(**overrides: Any) -> Harness:
    h = Harness(**overrides)
    h.resources.recognizer = _REC
    return h


async def _say(h: Harness, text: str, n: int) -> p.IntentEvent:
    h.session.handle_text(json_text({"type": "text", "text": text}))
    await h.until(lambda: len(h.of(p.IntentEvent)) >= n)
    return h.of(p.IntentEvent)[n - 1]  # type: ignore[no-any-return]


async def test_area_from_session_update() -> None:
    async with _harness() as h:
        first = await _say(h, "turn off the lights in here", 1)
        assert first.intent is None and "which room" in first.reason
        h.session.handle_text(json_text({"type": "session.update", "area": "bedroom"}))
        await h.until(lambda: bool(h.of(p.SessionUpdated)))
        assert h.of(p.SessionUpdated)[-1].config.area == "bedroom"
        here = await _say(h, "turn off the lights in here", 2)
        assert here.intent is not None
        assert (here.intent.name, here.intent.slots.device_ids) == ("light_off", ["bedroom_lamp"])
        bare = await _say(h, "lights on please", 3)
        assert bare.intent is not None and bare.intent.slots.device_ids == ["bedroom_lamp"]
        named = await _say(h, "turn on the kitchen light", 4)  # a named room still wins
        assert named.intent is not None and named.intent.slots.device_ids == ["kitchen_light"]


async def test_area_from_the_client_setting() -> None:
    clients = [{"id": "kitchen_satellite", "area": "kitchen"}]
    async with _harness(clients=clients) as h:
        h.session.handle_text(json_text({"type": "session.update",
                                         "client_id": "kitchen_satellite"}))
        await h.until(lambda: bool(h.of(p.SessionUpdated)))
        cfg = h.of(p.SessionUpdated)[-1].config
        assert (cfg.client_id, cfg.area) == ("kitchen_satellite", "kitchen")
        dark = await _say(h, "it's too dark in here", 1)
        assert dark.intent is not None and dark.intent.slots.device_ids == ["kitchen_light"]


async def test_unknown_area_or_client_is_an_error() -> None:
    async with _harness() as h:
        h.session.handle_text(json_text({"type": "session.update", "area": "attic"}))
        h.session.handle_text(json_text({"type": "session.update", "client_id": "nobody"}))
        await h.until(lambda: len(h.of(p.ErrorEvent)) >= 2)
        errors = h.of(p.ErrorEvent)
        assert [e.code for e in errors] == [p.ErrorCode.INVALID_MESSAGE] * 2
        assert "attic" in errors[0].message and "nobody" in errors[1].message
        assert not h.of(p.SessionUpdated)


async def test_two_commands_in_one_sentence_are_both_dispatched() -> None:
    async with _harness() as h:
        h.session.handle_text(json_text({
            "type": "text", "text": "turn off the lights in the kitchen and lock the front door"}))
        await h.metrics_count(1)
        assert [(i.name, i.slots.device_ids) for i in h.dispatcher.dispatched] == [
            ("light_off", ["kitchen_light"]), ("lock", ["front_door_lock"])]
        assert [e.intent.name for e in h.of(p.IntentEvent) if e.intent] == ["light_off"]
        assert {a.intent for a in h.of(p.ActionEvent)} == {"light_off", "lock"}
        assert h.of(p.MetricsEvent)[0].outcome == "actions"
