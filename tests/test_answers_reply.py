"""Reply text: real intents from the demo home's recognizer, action results as the dispatcher
reports them (en and zh-CN)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.answers.reply import (
    cancelled_confirmation_reply,
    compose_reply,
    error_reply,
    reply_language,
)
from devices.actions import ActionResult
from devices.registry import HomeConfig, load_demo_config
from intents.recognizer import Recognizer
from intents.schema import Intent


@pytest.fixture(scope="module")
def home() -> HomeConfig:
    return load_demo_config()


@pytest.fixture(scope="module")
def rec(home: HomeConfig) -> Recognizer:
    return Recognizer(home)


def _intent(rec: Recognizer, text: str) -> Intent:
    r = rec.recognize(text)
    assert r.intent is not None, r.reason
    return r.intent


def _ok(intent: Intent, state: dict[str, Any] | None = None, **kw: Any) -> list[ActionResult]:
    return [
        ActionResult(
            device_id=d, intent=intent.name, status=kw.get("status", "confirmed"),
            state=state, detail=kw.get("detail", ""), extra=kw.get("extra", {}),
        )
        for d in intent.slots.device_ids
    ]


def test_done_one_device_en_and_zh(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "turn on the kitchen light")
    assert compose_reply(i, _ok(i, {"state": "on"}), home).text == "Turned on the kitchen light."
    z = _intent(rec, "打开厨房灯")
    reply = compose_reply(z, _ok(z, {"state": "on"}), home)
    assert (reply.text, reply.language, reply.kind) == ("已打开厨房灯。", "zh-CN", "done")


def test_several_devices_are_summed_up(home: HomeConfig) -> None:
    ids = ["living_room_light", "kitchen_light", "hallway_light", "office_light"]
    i = Intent(name="light_off", confidence=1.0, source="grammar", reason="t",
               slots={"device_ids": ids, "area": "living_room"})  # type: ignore[arg-type]
    assert compose_reply(i, _ok(i, {"state": "off"}), home).text == (
        "Turned off 4 lights in the living room."
    )
    z = i.model_copy(update={"language": "zh-CN"})
    assert compose_reply(z, _ok(z, {"state": "off"}), home).text == "已关闭客厅的4盏灯。"


def test_temperature_is_the_measured_value(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "what's the temperature in the kitchen")
    assert i.slots.device_ids == ["kitchen_temperature"]
    state = {"temperature": 21.5, "current_temperature": 21.5, "humidity": 40}
    assert compose_reply(i, _ok(i, state), home).text == "It's 21.5 degrees in the kitchen."
    # A thermostat: its reading, not its setpoint.
    t = _intent(rec, "what is the temperature")
    assert t.slots.device_ids == ["thermostat"]
    reply = compose_reply(t, _ok(t, {"temperature": 20.0, "current_temperature": 19.5}), home)
    assert "19.5" in reply.text and "20" not in reply.text
    z = _intent(rec, "厨房的温度是多少")
    assert compose_reply(z, _ok(z, state), home).text == "厨房现在21.5度。"


def test_setpoint_when_asked(home: HomeConfig) -> None:
    i = Intent(name="climate_get_temperature", confidence=1.0, source="grammar", reason="t",
               text="what is the thermostat set to",
               slots={"device_ids": ["thermostat"]})  # type: ignore[arg-type]
    reply = compose_reply(i, _ok(i, {"temperature": 20.0, "current_temperature": 19.5}), home)
    assert reply.text == "The thermostat is set to 20 degrees."


def test_state_questions(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "is the front door locked")
    assert compose_reply(i, _ok(i, {"state": "locked"}), home).text == (
        "The front door is locked."
    )
    z = _intent(rec, "前门锁了吗")
    assert compose_reply(z, _ok(z, {"state": "locked"}), home).text == "前门已上锁。"
    k = _intent(rec, "is the kitchen light on")
    assert compose_reply(k, _ok(k, {"state": "off"}), home).text == "The kitchen light is off."
    unknown = compose_reply(k, _ok(k, None, status="unconfirmed"), home)
    assert unknown.text == "I don't know the state of the kitchen light yet."


def test_lights_on_in_an_area_are_counted(home: HomeConfig) -> None:
    home2 = home.model_copy(deep=True)
    extra = home2.devices[0].model_copy(update={"id": "lamp2", "name": "floor lamp",
                                                "aliases": ["落地灯"]})
    home2.devices.append(extra)
    i = Intent(name="get_state", confidence=1.0, source="grammar", reason="t",
               slots={"device_ids": ["living_room_light", "lamp2"], "area": "living_room",
                      "domain": "light"})  # type: ignore[arg-type]
    assert compose_reply(i, _ok(i, {"state": "on"}), home2).text == (
        "Two lights are on in the living room."
    )
    results = _ok(i, {"state": "off"})
    assert compose_reply(i, results, home2).text == "No lights are on in the living room."
    z = i.model_copy(update={"language": "zh-CN"})
    assert compose_reply(z, _ok(z, {"state": "on"}), home2).text == "客厅有两盏灯开着。"


def test_failures_are_said(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "close the garage door")
    r = compose_reply(i, _ok(i, None, status="unconfirmed", detail="no matching state"), home)
    assert (r.text, r.kind) == ("The garage door didn't respond.", "failed")
    r = compose_reply(i, _ok(i, None, status="failed", detail="broker down"), home)
    assert r.text == "I couldn't reach the garage door."
    mixed = [
        ActionResult(device_id="kitchen_light", intent="light_off", status="confirmed"),
        ActionResult(device_id="living_room_light", intent="light_off", status="unconfirmed"),
    ]
    li = Intent(name="light_off", confidence=1.0, source="grammar", reason="t",
                slots={"device_ids": ["kitchen_light", "living_room_light"]})  # type: ignore[arg-type]
    r = compose_reply(li, mixed, home)
    assert r.text == "Turned off the kitchen light. The living room light didn't respond."
    assert r.kind == "partial"


def test_confirmation_prompt_and_refusal(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "unlock the front door")
    ask = _ok(i, None, status="rejected", detail="sensitive action needs an explicit confirmation",
              extra={"sensitive": True, "needs_confirmation": True})
    r = compose_reply(i, ask, home)
    assert (r.text, r.kind) == ("Unlock the front door? Say yes.", "confirm")
    z = _intent(rec, "解锁前门")
    assert compose_reply(z, ask, home).text == "要解锁前门吗？请说“是”。"
    low = _ok(i, None, status="rejected", detail="sensitive action needs confidence 0.90",
              extra={"sensitive": True, "needs_confirmation": False})
    assert "didn't unlock the front door" in compose_reply(i, low, home).text


async def test_a_reading_too_unsure_to_act_on_is_said_plainly(home: HomeConfig) -> None:
    """The user hears that they were not understood well enough, never confidence figures."""
    from devices.dispatcher import Dispatcher
    from tests.test_devices_dispatcher import FakeMqtt

    dispatcher = Dispatcher(home, FakeMqtt())  # nothing is published: refused first
    unsure = Intent(name="light_set", confidence=0.42, source="robust", reason="t",
                    slots={"device_ids": ["office_light"], "brightness": 80})  # type: ignore[arg-type]
    results = await dispatcher.dispatch(unsure)
    assert [r.status for r in results] == ["rejected"]
    assert "below the minimum" in (results[0].detail or "")  # the event's detail keeps why
    said = compose_reply(unsure, results, home).text
    assert said == ("I'm not sure I heard that right, so I didn't change the office light. "
                    "Please say it again."), said
    assert "0.42" not in said


def test_not_understood_and_nothing_to_do(rec: Recognizer, home: HomeConfig) -> None:
    none = rec.recognize("blah blah banana")
    r = compose_reply(None, [], home, reason=none.reason, text="blah blah banana")
    assert (r.text, r.kind) == ("Sorry, I didn't understand that.", "not_understood")
    why = rec.recognize("turn on the lights in the garage")
    said = compose_reply(None, [], home, reason=why.reason).text
    assert said.startswith("Sorry, I can't do that: ") and "garage" in said, said
    assert compose_reply(None, [], home, reason="no intent: I can't set reminders yet").text == (
        "Sorry, I can't set reminders yet."
    )
    assert compose_reply(None, [], home, reason="no intent: x", text="打开车库的灯").text == (
        "抱歉，这个我做不到。"
    )
    c = _intent(rec, "cancel")
    nothing = [ActionResult(device_id=None, intent="cancel", status="rejected",
                            detail="nothing to do")]
    assert compose_reply(c, nothing, home).text == "OK, cancelled."
    assert error_reply("zh-CN").text == "抱歉，出了点问题。"


def test_reply_language() -> None:
    assert reply_language("zh-cn") == "zh-CN"
    assert reply_language(None, "把客厅灯打开") == "zh-CN"
    assert reply_language("en-US") == "en"
    assert reply_language("de") == "en"


def test_which_one_is_asked_and_answered(rec: Recognizer, home: HomeConfig) -> None:
    from assistant.answers.clarify import ambiguous_targets, choose

    i = _intent(rec, "turn on the light")
    choices = ambiguous_targets(i, home)
    assert choices is not None and "kitchen_light" in choices and len(choices) >= 2
    asking = [ActionResult(device_id=None, intent=i.name, status="rejected",
                           detail="which one?", extra={"choices": choices})]
    r = compose_reply(i, asking, home)
    assert r.kind == "clarify"
    assert r.text.startswith("Which light: ") and r.text.endswith(" or office?"), r.text
    assert "kitchen, living room" in r.text
    z = compose_reply(i.model_copy(update={"language": "zh-CN"}), asking, home)
    assert z.text.startswith("哪个灯？") and "厨房" in z.text and z.text.endswith("？")
    # One lamp with a word the home does not know ("desk lamp" heard as "next lamp", "this
    # lamp"): which one? — never every light in the home
    for text in ("Switch off the next lamp.", "Can you turn off this lamp?"):
        assert ambiguous_targets(_intent(rec, text), home) == choices, text
    # Named, plural, a room, or context: no question.
    for text in ("turn on the kitchen light", "turn on the lights", "turn on all the lights",
                 "turn on the lights in the living room", "turn off the living room lamps"):
        assert ambiguous_targets(_intent(rec, text), home) is None, text
    assert choose("the kitchen one", choices, home) == ["kitchen_light"]
    assert choose("living room", choices, home) == ["living_room_light"]
    assert choose("厨房的", choices, home) == ["kitchen_light"]
    assert choose("turn off the kitchen light", choices, home) == []  # a new command
    assert choose("never mind", choices, home) == []


def test_a_cancelled_confirmation_is_said_in_the_language_it_was_asked(home: HomeConfig) -> None:
    """A reconnect cancelled a sensitive action waiting for a "yes" (docs/scale.md)."""
    en = cancelled_confirmation_reply(home, "en", "unlock", ["front_door_lock"])
    assert (en.text, en.kind) == (
        "I didn't unlock the front door: the connection changed before you said yes. "
        "Ask again if you still want it.",
        "confirm",
    )
    zh = cancelled_confirmation_reply(home, "zh-CN", "unlock", ["front_door_lock"])
    assert zh.text == "没有解锁前门：您说“是”之前连接已切换。如果还需要，请再说一次。"
    general = cancelled_confirmation_reply(home, "en", "unlock", [])
    assert general.text.startswith("I didn't do it: the connection changed")


@pytest.mark.parametrize(
    ("text", "state", "said"),
    [
        ("turn the heat up by 2 degrees", {"temperature": 22.0},
         "Set the thermostat to 22 degrees."),
        ("空调调高两度", {"temperature": 22.5}, "已将温控器设为22.5度。"),
        ("turn up the volume", {"volume": 40}, "Set the living room speaker volume to 40%."),
    ],
)
def test_a_step_says_the_value_the_device_confirmed(
    rec: Recognizer, home: HomeConfig, text: str, state: dict[str, Any], said: str
) -> None:
    """A relative step has no value in its slots (the dispatcher makes it absolute per
    device): the reply says the confirmed one, not "Set the thermostat to  degrees"."""
    i = _intent(rec, text)
    assert i.slots.temperature is None and i.slots.volume is None, i.slots
    assert compose_reply(i, _ok(i, state), home).text == said


def test_each_command_of_a_turn_is_said_with_its_own_verb(
    rec: Recognizer, home: HomeConfig
) -> None:
    r = rec.recognize("turn off the kitchen light and lock the front door")
    assert r.intent is not None and len(r.also) == 1, r
    results = _ok(r.intent, {"state": "off"}) + _ok(r.also[0], {"state": "locked"})
    assert compose_reply(r.intent, results, home).text == (
        "Turned off the kitchen light. Locked the front door.")
    # a correction's restore: the light set back to the level it had, said as such
    on = _intent(rec, "turn on the office light")
    back = Intent(name="light_set", confidence=1.0, source="context", reason="undoes s-1",
                  slots={"device_ids": ["kitchen_light"], "brightness": 40})  # type: ignore[arg-type]
    results = _ok(on, {"state": "on"}) + _ok(back, {"state": "on", "brightness": 40})
    assert compose_reply(on, results, home).text == (
        "Turned on the office light. Set the kitchen light to 40%.")


def test_a_guess_is_asked_back_in_the_users_language(rec: Recognizer, home: HomeConfig) -> None:
    i = _intent(rec, "turn off the office light")
    asked = [ActionResult(device_id=None, intent=i.name, status="rejected",
                          detail="not sure", extra={"asks_back": "turn off the office light"})]
    r = compose_reply(i, asked, home)
    assert r.kind == "confirm"
    assert r.text == ("I'm not sure I heard that right. Did you mean: turn off the office light? "
                      "Say yes."), r.text
    z = compose_reply(i.model_copy(update={"language": "zh-CN"}),
                      [ActionResult(device_id=None, intent=i.name, status="rejected",
                                    extra={"asks_back": "把书房灯关掉"})], home)
    assert z.kind == "confirm" and "把书房灯关掉" in z.text and z.text.startswith("我不太确定")
