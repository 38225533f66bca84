"""Kinds of wording the robust tier reads (fresh phrasings found wrong or refused, fixed as a
kind, never as a sentence): each case says what acts, or that nothing may."""

from __future__ import annotations

import pytest

from intents.recognizer import Recognizer

MIN_CONF = 0.5


@pytest.fixture(scope="module")
def demo() -> Recognizer:
    return Recognizer.from_config_path(None)


@pytest.mark.parametrize(("text", "area", "name", "ids"), [
    # a verb with its own particle: "shut … down", "power … down" is off, "fire … up" on
    ("shut the coffee maker down", None, "switch_off", ["coffee_maker"]),
    ("shut down the fan", None, "fan_off", ["ceiling_fan"]),
    ("power the tv down", None, "switch_off", ["tv_plug"]),
    ("fire up the coffee machine", None, "switch_on", ["coffee_maker"]),
    ("fire the fan up", None, "fan_on", ["ceiling_fan"]),
    ("shut the blinds down", None, "cover_close", ["bedroom_blinds"]),
    # how hot or cold a room is, in everyday words
    ("it's roasting in here", "living_room", "climate_set_temperature", ["thermostat"]),
    ("it's a bit nippy in here", "living_room", "climate_set_temperature", ["thermostat"]),
    # "it" after a remark that named one device is that device
    ("we're done with the kitchen light, you can turn it off", None, "light_off",
     ["kitchen_light"]),
    # questions: the thing named first then "is it …?", A or B, how bright, check, still
    ("the tv plug, is it on", None, "get_state", ["tv_plug"]),
    ("lights in the office on or off", None, "get_state", ["office_light"]),
    ("are the bedroom blinds up", None, "get_state", ["bedroom_blinds"]),
    ("is the vacuum still cleaning", None, "get_state", ["robot_vacuum"]),
    ("how bright is the living room light", None, "get_state", ["living_room_light"]),
    ("can you check the garage door", None, "get_state", ["garage_door"]),
    # Whisper's "two" for "to" before a level
    ("Dim the lights two 50 percent in the kitchen.", None, "light_set", ["kitchen_light"]),
    # amounts: a degree and a half, "drop … 2 degrees" (a step, not a setpoint of 2)
    ("raise the heat by one and a half degrees", None, "climate_set_temperature",
     ["thermostat"]),
    ("drop the temperature 2 degrees", None, "climate_set_temperature", ["thermostat"]),
    # "here" and another room: both
    ("lights off in this room and the hallway", "kitchen", "light_off",
     ["hallway_light", "kitchen_light"]),
    # a device said for where a light is: its room, not a second target
    ("turn on the light by the front door", None, "light_on", ["hallway_light"]),
    # a correction that says its verb again takes back the first command
    ("turn on the kitchen light, no, turn on the hallway light", None, "light_on",
     ["hallway_light"]),
])
def test_wording_acts(demo: Recognizer, text: str, area: str | None, name: str,
                      ids: list[str]) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and got.confidence >= MIN_CONF, (text, got)
    assert (got.name, sorted(got.slots.device_ids)) == (name, ids), got


@pytest.mark.parametrize(("text", "area"), [
    # a remark naming two devices (one by a loose word): "them" is not the one the lexicon knows
    ("I am done with the coffee machine and the tv, turn them off", None),
    ("fire up the heating", None),  # the thermostat is not switched on or off
    ("set the lights to 20 and 60", None),  # two levels: which one?
    ("kitchen light 30 and office light 60", None),
    # "here" with no room known, even beside a room that is named
    ("turn off the lights in here and in the hallway", None),
    # a room told by where it is from another
    ("turn on the lights in the other room", "kitchen"),
    ("turn on the light next door", "kitchen"),
    ("lights on in the room next to the kitchen", None),
    # a kind of thing said for where a light is: which light? (never the door's lock)
    ("turn on the light by the door", None),
    ("turn off the light at the door", None),
    ("turn on the lamp next to the tv", None),
    ("turn on the light and the tv", None),  # which room's light?
    ("kick off the vacuum", None),  # start or stop?
])
def test_wording_does_not_act(demo: Recognizer, text: str, area: str | None) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is None or got.confidence < MIN_CONF, (text, got)


@pytest.mark.parametrize(("text", "first", "then"), [
    # each target with its own value: the second takes the first's verb (not both at 20)
    ("dim the kitchen light to 20 and the office light to 60",
     ("kitchen_light", 20, None), ("office_light", 60, None)),
    ("make the kitchen light red and the office light blue",
     ("kitchen_light", None, "red"), ("office_light", None, "blue")),
])
def test_each_target_its_own_value(demo: Recognizer, text: str,
                                   first: tuple[str, int | None, str | None],
                                   then: tuple[str, int | None, str | None]) -> None:
    rec = demo.recognize(text)
    got = [rec.intent, *rec.also]
    assert len(got) == 2 and all(i is not None for i in got), rec
    for i, (dev, level, color) in zip(got, (first, then), strict=True):
        assert i is not None and i.slots.device_ids == [dev], i
        assert (i.slots.brightness, i.slots.color) == (level, color), i


def test_a_list_of_commands_a_comma_apart(demo: Recognizer) -> None:
    rec = demo.recognize("lock the door, close the garage and turn off the hallway light")
    assert rec.intent is not None and rec.intent.name == "lock", rec
    assert [(a.name, a.slots.device_ids) for a in rec.also] == [
        ("cover_close", ["garage_door"]), ("light_off", ["hallway_light"])]


@pytest.mark.parametrize(("text", "area", "name", "ids", "slot", "value"), [
    ("亮度调到三成", "office", "light_set", ["office_light"], "brightness", 30),  # tenths
    ("客厅灯开到八成亮", None, "light_set", ["living_room_light"], "brightness", 80),
    ("把灯整亮点", "kitchen", "light_set", ["kitchen_light"], "brightness_step", 20),  # 整: 调
    ("声音大一丢丢", None, "media_set_volume", ["speaker"], "volume_step", 10),
    ("把灯给我关喽", "hallway", "light_off", ["hallway_light"], None, None),
    ("窗帘给我拉严实", None, "cover_close", ["bedroom_blinds"], None, None),
    ("歌切一下", None, "media_next", ["speaker"], None, None),
    ("换首歌呗", None, "media_next", ["speaker"], None, None),
])
def test_chinese_colloquial(demo: Recognizer, text: str, area: str | None, name: str,
                            ids: list[str], slot: str | None, value: int | None) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and got.confidence >= MIN_CONF, (text, got)
    assert (got.name, got.slots.device_ids) == (name, ids), got
    if slot is not None:
        assert getattr(got.slots, slot) == value, got


def test_chinese_by_the_way_is_a_second_command(demo: Recognizer) -> None:
    rec = demo.recognize("打开窗帘顺便开灯", area="bedroom")
    assert rec.intent is not None and rec.intent.name == "cover_open", rec
    assert [(a.name, a.slots.device_ids) for a in rec.also] == [("light_on", ["bedroom_lamp"])]


@pytest.mark.parametrize("text", ["我关灯了", "他已经锁门了"])
def test_chinese_reports_do_not_act(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text, area="bedroom").intent
    assert got is None or got.confidence < MIN_CONF, got


@pytest.mark.parametrize(("text", "step"), [
    ("raise the heat by one and a half degrees", 1.5),
    ("drop the temperature 2 degrees", -2.0),
])
def test_temperature_steps(demo: Recognizer, text: str, step: float) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.slots.temperature_step == step, got


@pytest.mark.parametrize(("text", "name", "ids"), [
    ("车库门是开的还是关的", "get_state", ["garage_door"]),  # A还是B asks its state
    ("帮我查一下车库门关好没有", "get_state", ["garage_door"]),  # 查: check
    ("查一下前门", "get_state", ["front_door_lock"]),
    ("看看厨房温度", "climate_get_temperature", ["kitchen_temperature"]),
])
def test_chinese_checks_ask(demo: Recognizer, text: str, name: str, ids: list[str]) -> None:
    got = demo.recognize(text).intent
    assert got is not None and (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize(("text", "area", "want"), [
    # a kind word beside a device named loosely ("the tv", a plug): the kind where the
    # speaker is, and the room said never reaches the plug's kind there (the coffee maker)
    ("turn on the light and the tv", "living_room",
     [("switch_on", ["tv_plug"]), ("light_on", ["living_room_light"])]),
    ("turn on the lights and the tv in the kitchen", None,
     [("switch_on", ["tv_plug"]), ("light_on", ["kitchen_light"])]),
    ("把灯和电视打开", "living_room",
     [("switch_on", ["tv_plug"]), ("light_on", ["living_room_light"])]),
    ("turn on the kitchen and living room lights", None,
     [("light_on", ["kitchen_light", "living_room_light"])]),
])
def test_a_kind_beside_a_loose_name(demo: Recognizer, text: str, area: str | None,
                                    want: list[tuple[str, list[str]]]) -> None:
    rec = demo.recognize(text, area=area)
    got = [(i.name, sorted(i.slots.device_ids)) for i in [rec.intent, *rec.also] if i]
    assert got == want, rec


@pytest.mark.parametrize(("text", "name"), [
    ("give me a 30 second timer", "timer_start"),
    ("how much longer on the timer", "timer_status"),
])
def test_timer_wording(demo: Recognizer, text: str, name: str) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.name == name, got


@pytest.mark.parametrize(("text", "area", "name", "ids"), [
    ("把大门反锁", None, "lock", ["front_door_lock"]),  # 反锁: locked from inside
    ("把走廊扫一扫", None, "vacuum_clean_area", ["robot_vacuum"]),
    ("太热了，温度调低点", None, "climate_set_temperature", ["thermostat"]),
    ("书房好暗，开灯", "kitchen", "light_on", ["office_light"]),  # the room the remark named
    ("前门开锁", None, "unlock", ["front_door_lock"]),  # the door named, the verb outright
])
def test_chinese_devices(demo: Recognizer, text: str, area: str | None, name: str,
                         ids: list[str]) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and got.confidence >= (0.9 if name == "unlock" else MIN_CONF), got
    assert got is not None and (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize("text", ["暖气调到五十度", "暖气调到70度", "好暗，开灯"])
def test_chinese_no_action(demo: Recognizer, text: str) -> None:
    # 度 is Celsius (not 50 °F); "it's dark, light on" with no room known: which room?
    got = demo.recognize(text).intent
    assert got is None or got.confidence < MIN_CONF, got


def test_bare_unlock_in_chinese_is_below_the_bar(demo: Recognizer) -> None:
    got = demo.recognize("开锁").intent  # no door named: never on a guess
    assert got is None or got.confidence < 0.9, got


@pytest.mark.parametrize(("text", "name", "ids"), [
    # English as non-native speakers say it
    ("please to open the light of kitchen", "light_on", ["kitchen_light"]),
    ("close the fan", "fan_off", ["ceiling_fan"]),
    ("open all lights", "light_on", ["bedroom_lamp", "hallway_light", "kitchen_light",
                                     "living_room_light", "office_light"]),
    ("do the lights off in the kitchen", "light_off", ["kitchen_light"]),
    ("lights is too strong in the hall", "light_set", ["hallway_light"]),
    ("music more strong", "media_set_volume", ["speaker"]),
    ("is possible to turn off the tv?", "switch_off", ["tv_plug"]),
    # the thing named first, then the command with "it" (its name may hold the verb)
    ("the front door, lock it", "lock", ["front_door_lock"]),
    ("the blinds, open them", "cover_open", ["bedroom_blinds"]),
])
def test_non_native_wording(demo: Recognizer, text: str, name: str, ids: list[str]) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.confidence >= MIN_CONF, (text, got)
    assert (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize("text", ["open the light and the blinds", "don't open the light",
                                  "open the door"])
def test_open_a_light_goes_no_further(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent
    assert got is None or got.confidence < MIN_CONF, got


@pytest.mark.parametrize(("text", "area", "name", "ids"), [
    ("屋里黑乎乎的", "office", "light_on", ["office_light"]),
    ("音乐吵死了", None, "media_set_volume", ["speaker"]),
    ("帮我把卧室窗帘拉到一半的位置", None, "cover_set_position", ["bedroom_blinds"]),
    ("你帮我把厨房那个灯关一下", None, "light_off", ["kitchen_light"]),
    ("音量30", None, "media_set_volume", ["speaker"]),
    ("客厅灯亮度加百分之二十", None, "light_set", ["living_room_light"]),
    ("温度再高一度", None, "climate_set_temperature", ["thermostat"]),
])
def test_chinese_indirect_and_levels(demo: Recognizer, text: str, area: str | None, name: str,
                                     ids: list[str]) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and got.confidence >= MIN_CONF, (text, got)
    assert (got.name, got.slots.device_ids) == (name, ids), got


def test_chinese_except_is_refused(demo: Recognizer) -> None:
    got = demo.recognize("把家里的灯都关掉，除了卧室").intent  # never the bedroom's too
    assert got is None, got


@pytest.mark.parametrize("text", [
    "turn on the lights at 7",  # a time, not 7 %
    "lock the door at night",
    "you shouldn't have turned off the fan",  # should/could/must not
    "the lights should be off",  # what one thinks
])
def test_times_and_opinions_do_not_act(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent
    assert got is None or got.confidence < MIN_CONF, got


def test_an_exclamation_before_the_command(demo: Recognizer) -> None:
    got = demo.recognize("oops, wrong light, turn the kitchen light back on").intent
    assert got is not None and (got.name, got.slots.device_ids) == ("light_on", ["kitchen_light"])


@pytest.mark.parametrize("text", [
    "turn off movie night", "stop movie night", "deactivate movie night", "关闭电影模式",
    "等我睡着了再关灯", "风扇开半个小时",  # later, for a while
])
def test_scenes_are_not_switched_off_and_later_is_not_now(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent
    assert got is None or got.confidence < MIN_CONF, got


@pytest.mark.parametrize(("text", "ids"), [
    ("我是不是忘了锁门", ["front_door_lock"]),
    ("我想知道车库门开没开", ["garage_door"]),
])
def test_chinese_did_i_forget(demo: Recognizer, text: str, ids: list[str]) -> None:
    got = demo.recognize(text).intent
    assert got is not None and (got.name, got.slots.device_ids) == ("get_state", ids), got


@pytest.mark.parametrize(("text", "kelvin"), [
    ("color temperature 3000 kelvin in the kitchen", 3000),  # a light's white, not the heat
    ("set the lights in the living room to 4000K", 4000),
])
def test_kelvin(demo: Recognizer, text: str, kelvin: int) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.name == "light_set", got
    assert got.slots.color_temp_kelvin == kelvin, got


def test_what_is_the_brightness_asks(demo: Recognizer) -> None:
    got = demo.recognize("what is the brightness of the kitchen light").intent
    assert got is not None and (got.name, got.slots.device_ids) == ("get_state",
                                                                     ["kitchen_light"])


def test_chinese_a_sensor_named_is_read_alone(demo: Recognizer) -> None:
    got = demo.recognize("厨房温度计显示多少度").intent  # not the thermostat too
    assert got is not None and got.slots.device_ids == ["kitchen_temperature"], got


def test_chinese_tv_set(demo: Recognizer) -> None:
    got = demo.recognize("打开电视机").intent
    assert got is not None and (got.name, got.slots.device_ids) == ("switch_on", ["tv_plug"])


@pytest.mark.parametrize(("text", "acts"), [
    ("mommy says turn off the tv", False),  # what someone else said
    ("my wife wants the lights off", False),
    ("I said turn off the fan", True),  # said again
])
def test_reported_speech(demo: Recognizer, text: str, acts: bool) -> None:
    got = demo.recognize(text).intent
    assert (got is not None and got.confidence >= MIN_CONF) == acts, got


@pytest.mark.parametrize(("text", "acts"), [
    ("妈妈说，把电视关了", False),  # what someone else said, a comma apart or not
    ("他让我关灯", False),
    ("我说了关灯", True),  # said again
])
def test_chinese_reported_speech(demo: Recognizer, text: str, acts: bool) -> None:
    got = demo.recognize(text, area="bedroom").intent
    assert (got is not None and got.confidence >= MIN_CONF) == acts, got


@pytest.mark.parametrize(("text", "area", "name", "ids"), [
    ("make it 21 in here", "living_room", "climate_set_temperature", ["thermostat"]),
    ("make it 22 in the living room", None, "climate_set_temperature", ["thermostat"]),
    ("garage door status", None, "get_state", ["garage_door"]),  # a name then status
    ("kitchen light state", None, "get_state", ["kitchen_light"]),
])
def test_terse_setpoints_and_status(demo: Recognizer, text: str, area: str | None, name: str,
                                    ids: list[str]) -> None:
    got = demo.recognize(text, area=area).intent
    assert got is not None and (got.name, got.slots.device_ids) == (name, ids), got


def test_a_thermostat_mode_is_not_a_step(demo: Recognizer) -> None:
    got = demo.recognize("switch the thermostat to cool mode").intent
    assert got is None, got


@pytest.mark.parametrize(("text", "area"), [
    ("扫地机器人去客厅扫地", "living_room"),  # 去 a room 扫地
    ("吸一下走廊", "hallway"),  # 吸: vacuum
    ("厨房和走廊都扫一下", "kitchen"),
])
def test_chinese_vacuum_rooms(demo: Recognizer, text: str, area: str) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.name == "vacuum_clean_area", got
    assert got.slots.area == area, got


@pytest.mark.parametrize(("text", "name", "ids"), [
    ("temperature in the living room", "climate_get_temperature", ["thermostat"]),  # terse
    ("make it loud", "media_set_volume", ["speaker"]),  # make it loud: louder
    ("set the lounge to a nice warm glow", "light_set", ["living_room_light"]),  # nice: no name
])
def test_old_refusals_of_the_own_set(demo: Recognizer, text: str, name: str,
                                     ids: list[str]) -> None:
    got = demo.recognize(text).intent
    assert got is not None and (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize(("text", "name", "ids"), [
    ("hey nabu lights on in the office", "light_on", ["office_light"]),  # Assist's wake word
    ("Front Door Lock lock", "lock", ["front_door_lock"]),  # the name ends in the verb
])
def test_assist_wording(demo: Recognizer, text: str, name: str, ids: list[str]) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.confidence >= MIN_CONF, got
    assert (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize("text", ["二楼客厅的灯打开", "turn on the living room light upstairs",
                                  "upstairs living room light on"])
def test_a_device_on_a_floor_it_is_not_on(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent  # grammar and robust tiers alike
    assert got is None, got


@pytest.mark.parametrize(("text", "name", "slot", "value"), [
    ("亮度减少百分之十", "light_set", "brightness_step", -10),  # 减少 N%: a step, not N %
    ("客厅灯亮度提高百分之三十", "light_set", "brightness_step", 30),
    ("能不能帮我把客厅灯调暗一点", "light_set", "brightness_step", -20),
    ("可以把风扇关了吗", "fan_off", None, None),  # 可以把…了吗 asks for it
])
def test_chinese_steps_and_requests(demo: Recognizer, text: str, name: str, slot: str | None,
                                    value: int | None) -> None:
    got = demo.recognize(text, area="bedroom").intent
    assert got is not None and got.confidence >= MIN_CONF and got.name == name, got
    if slot is not None:
        assert getattr(got.slots, slot) == value, got


@pytest.mark.parametrize(("text", "seconds"), [("定一个一个半小时的计时器", 5400.0),
                                               ("定时器半小时", 1800.0)])
def test_chinese_half_hours(demo: Recognizer, text: str, seconds: float) -> None:
    got = demo.recognize(text).intent
    assert got is not None and got.name == "timer_start", got
    assert got.slots.custom["seconds"] == seconds


@pytest.mark.parametrize(("text", "name", "ids"), [
    ("把 TV 打开", "switch_on", ["tv_plug"]),  # heard as English: Chinese words of command
    ("关掉 bedroom lamp", "light_off", ["bedroom_lamp"]),
    ("turn off all 灯", None, None),  # Chinese amid English is a word, never dropped
])
def test_mixed_chinese_and_english(demo: Recognizer, text: str, name: str | None,
                                   ids: list[str] | None) -> None:
    got = demo.recognize(text, language="en").intent
    if name is None:
        assert got is None or got.confidence < MIN_CONF, got
    else:
        assert got is not None and (got.name, got.slots.device_ids) == (name, ids), got


@pytest.mark.parametrize("text", ["go to sleep", "let me turn off the fan",
                                  "I'm going to open the blinds",
                                  "I will turn off the lights myself"])
def test_what_the_speaker_will_do(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent
    assert got is None or got.confidence < MIN_CONF, got


def test_do_you_know_if_asks(demo: Recognizer) -> None:
    got = demo.recognize("do you know if the front door is locked").intent
    assert got is not None and (got.name, got.slots.device_ids) == ("get_state",
                                                                     ["front_door_lock"])


@pytest.mark.parametrize("text", ["我来关灯", "我去开灯", "让我来开窗帘"])
def test_chinese_what_the_speaker_will_do(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text, area="bedroom").intent
    assert got is None or got.confidence < MIN_CONF, got


def test_chinese_confirm_asks(demo: Recognizer) -> None:
    got = demo.recognize("帮我确认一下车库门关好了").intent  # never closes it
    assert got is not None and (got.name, got.slots.device_ids) == ("get_state",
                                                                     ["garage_door"])


@pytest.mark.parametrize("text", ["maybe open the garage", "possibly unlock the door"])
def test_a_hedged_sensitive_action_is_below_the_bar(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent
    assert got is None or got.confidence < 0.9, got


@pytest.mark.parametrize("text", ["解锁前门，开玩笑的", "把前门解锁，算了别解",
                                  "unlock the front door, just kidding"])
def test_taken_back_never_acts(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent  # an unlock above all
    assert got is None or got.confidence < MIN_CONF, got


@pytest.mark.parametrize("text", [
    "打开车库门，不了", "打开车库门，还是不要了", "解锁前门，不对", "解锁前门，等等",
    "解锁前门，取消",
    "open the garage, cancel that", "unlock the front door. No.", "turn on the fan, or not",
    "open the garage, I changed my mind",
])
def test_a_last_clause_taking_it_back(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent  # 解锁前门，不对 unlocked the front door
    assert got is None or got.confidence < MIN_CONF, got


def test_or_not_in_a_question_still_asks(demo: Recognizer) -> None:
    got = demo.recognize("is the front door locked or not").intent
    assert got is not None and got.name == "get_state", got


@pytest.mark.parametrize("text", ["解锁前门 不对", "解锁前门不对", "打开客厅灯取消"])
def test_chinese_taken_back_with_no_comma(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent  # Whisper's space, or nothing, before 不对
    assert got is None or got.confidence < MIN_CONF, got


@pytest.mark.parametrize(("text", "name"), [
    ("I'd like the blinds closed", "cover_close"),  # want/like/need the X closed|open
    ("let's have the blinds down", "cover_close"),  # have the X down: a verb, not a question
])
def test_wishes_with_a_state(demo: Recognizer, text: str, name: str) -> None:
    got = demo.recognize(text).intent
    assert got is not None and (got.name, got.slots.device_ids) == (name, ["bedroom_blinds"])


def test_an_opening_wished_for_stays_a_wish(demo: Recognizer) -> None:
    got = demo.recognize("I need the garage open").intent  # never an outright order
    assert got is None or got.confidence < 0.9, got


@pytest.mark.parametrize(("text", "want"), [
    ("咖啡煮好了吗", None),  # a question about the coffee, never the machine on
    ("我不想喝咖啡了，把咖啡机关了", ("switch_off", ["coffee_maker"])),  # not on, then off
    ("让风扇转起来", ("fan_on", ["ceiling_fan"])),
    ("给我来点音乐", ("media_resume", ["speaker"])),
])
def test_chinese_coffee_and_wishes(demo: Recognizer, text: str,
                                   want: tuple[str, list[str]] | None) -> None:
    rec = demo.recognize(text)
    got = [(i.name, i.slots.device_ids) for i in [rec.intent, *rec.also]
           if i is not None and i.confidence >= MIN_CONF]
    assert got == ([want] if want else []), rec


@pytest.mark.parametrize("text", ["set the heat to minus 5", "set the kitchen light to 150 percent",
                                  "volume 200", "音量调到两百"])
def test_values_past_the_ends_are_refused(demo: Recognizer, text: str) -> None:
    got = demo.recognize(text).intent  # a misheard number, not the most there is
    assert got is None, got


@pytest.mark.parametrize(("text", "want"), [
    ("thanks for turning off the fan", None),  # thanks for what was done
    ("cheers, lights off", ("light_off", ["bedroom_lamp"])),  # thanks, then the command
    ("lights off, it's bedtime", ("light_off", ["bedroom_lamp"])),  # not the good night scene
])
def test_thanks_and_remarks_about_scenes(demo: Recognizer, text: str,
                                         want: tuple[str, list[str]] | None) -> None:
    got = demo.recognize(text, area="bedroom").intent
    if want is None:
        assert got is None or got.confidence < MIN_CONF, got
    else:
        assert got is not None and (got.name, got.slots.device_ids) == want, got


@pytest.mark.parametrize(("text", "acts"), [("谢谢你把灯关了", False), ("多谢你开了风扇", False),
                                            ("谢谢，把灯关了", True)])
def test_chinese_thanks(demo: Recognizer, text: str, acts: bool) -> None:
    got = demo.recognize(text, area="bedroom").intent
    assert (got is not None and got.confidence >= MIN_CONF) == acts, got
