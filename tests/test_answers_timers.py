"""Timers and the clock: recognition (en, zh-CN), the timer manager on a real event loop, the
replies; the responder's events with a text-only client."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from assistant.answers.responder import Responder
from assistant.answers.timers import (
    Timer,
    TimerManager,
    answer_local,
    finished_reply,
    say_date,
    say_duration,
    say_time,
)
from assistant.protocol import ResponseDone, ResponseText
from devices.registry import load_demo_config
from intents.recognizer import Recognizer
from intents.schema import Intent


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(load_demo_config())


def _intent(rec: Recognizer, text: str) -> Intent:
    r = rec.recognize(text)
    assert r.intent is not None, r.reason
    return r.intent


@pytest.mark.parametrize("text", ["I set a timer for 5 minutes yesterday",
                                  "我昨天设了一个五分钟的定时器"])
def test_talk_about_a_timer_sets_none(rec: Recognizer, text: str) -> None:
    r = rec.recognize(text)
    assert r.intent is None or r.intent.name != "timer_start", r


@pytest.mark.parametrize(
    ("text", "name", "seconds"),
    [
        ("set a timer for five minutes", "timer_start", 300.0),
        ("set a timer for 3 seconds", "timer_start", 3.0),
        ("设置5分钟计时器", "timer_start", 300.0),
        ("设置三秒计时器", "timer_start", 3.0),
        ("how much time is left on the timer", "timer_status", None),
        ("计时器还有多久", "timer_status", None),
        ("pause the timer", "timer_pause", None),
        ("继续计时器", "timer_resume", None),
        ("cancel the timer", "timer_cancel", None),
        ("取消计时器", "timer_cancel", None),
        ("what time is it", "time_get", None),
        ("现在几点了", "time_get", None),
        ("what's the date", "date_get", None),
        ("今天几号", "date_get", None),
        # phrasings Home Assistant's sentences do not have (intents.timers.fallback_timer)
        ("set a pasta timer for 8 minutes", "timer_start", 480.0),
        ("start a countdown of 2 minutes", "timer_start", 120.0),
        ("设一个五分钟的定时器", "timer_start", 300.0),
        ("帮我定一个十分钟的计时器", "timer_start", 600.0),
        ("倒计时三十秒", "timer_start", 30.0),
        ("取消定时器", "timer_cancel", None),
        ("定时器还剩多久", "timer_status", None),
        ("暂停定时器", "timer_pause", None),
    ],
)
def test_timer_and_clock_sentences(
    rec: Recognizer, text: str, name: str, seconds: float | None
) -> None:
    i = _intent(rec, text)
    assert i.name == name
    assert i.slots.custom.get("seconds") == seconds
    assert i.slots.device_ids == []


def test_words() -> None:
    assert say_duration(300, "en") == "5 minutes"
    assert say_duration(3900, "en") == "1 hour and 5 minutes"
    assert say_duration(61, "zh-CN") == "1分钟1秒"
    at = dt.datetime(2026, 12, 3, 17, 42)
    assert say_time(at, "en") == "It's 5:42 PM"
    assert say_time(at, "zh-CN") == "现在是下午5点42分"
    assert say_date(at, "en") == "Today is Thursday, December 3"
    assert say_date(at, "zh-CN") == "今天是12月3日，星期四"


async def test_timer_lifecycle_on_a_real_loop(rec: Recognizer) -> None:
    now = [0.0]
    timers = TimerManager(clock=lambda: now[0])
    fired: list[Timer] = []
    timers.attach("s1", fired.append)
    start = answer_local(_intent(rec, "set a timer for 3 seconds"), timers, owner="s1",
                         utterance_id="s1-1")
    assert start.text == "Timer set for 3 seconds."
    now[0] = 1.2
    status = answer_local(_intent(rec, "how much time is left on the timer"), timers,
                          owner="s1", utterance_id="s1-2")
    assert status.text == "2 seconds left on the timer."
    assert answer_local(_intent(rec, "pause the timer"), timers, owner="s1",
                        utterance_id="s1-3").text == "Timer paused."
    now[0] = 50.0  # paused: no time passes for it
    zh = answer_local(_intent(rec, "计时器还有多久"), timers, owner="s1", utterance_id="s1-4")
    assert zh.text == "计时器已暂停，还剩2秒。"
    answer_local(_intent(rec, "resume the timer"), timers, owner="s1", utterance_id="s1-5")
    # A real short timer on the loop: it fires and reaches its session.
    real = TimerManager()
    got: list[Timer] = []
    real.attach("s2", got.append)
    answer_local(_intent(rec, "set a timer for 1 second"), real, owner="s2",
                 utterance_id="s2-1")
    await asyncio.sleep(1.5)
    assert [t.duration_s for t in got] == [1.0]
    assert finished_reply(got[0]).text == "Your 1 second timer is done."
    assert answer_local(_intent(rec, "cancel the timer"), timers, owner="s1",
                        utterance_id="s1-6").text == "Timer cancelled."
    assert answer_local(_intent(rec, "cancel the timer"), timers, owner="s1",
                        utterance_id="s1-7").text == "There's no timer running."
    timers.close()


async def test_timer_of_a_gone_session_goes_to_the_audit_log(rec: Recognizer) -> None:
    rows: list[dict[str, Any]] = []

    class Audit:
        def record(self, row: dict[str, Any]) -> None:
            rows.append(row)

    timers = TimerManager(audit=Audit())
    timers.attach("s1", lambda t: None)
    answer_local(_intent(rec, "设置一秒计时器"), timers, owner="s1", utterance_id="s1-1")
    timers.detach("s1")
    await asyncio.sleep(1.5)
    assert [(r["event"], r["session"], r["duration_s"]) for r in rows] == [
        ("timer.finished", "s1", 1.0)
    ]


async def test_responder_text_only(rec: Recognizer) -> None:
    events: list[Any] = []
    r = Responder(events.append, load_demo_config())
    reply = answer_local(_intent(rec, "what time is it"), TimerManager(), owner="s",
                         utterance_id="s-1", now=dt.datetime(2026, 1, 1, 9, 5))
    r.say("s-1", reply)
    assert [type(e) for e in events] == [ResponseText, ResponseDone]
    assert events[0].text == "It's 9:05 AM." and events[0].audio is False
    assert not r.speaking and r.interrupt() is False


async def test_timers_follow_the_client_id(rec: Recognizer) -> None:
    timers = TimerManager()
    got: dict[str, list[Timer]] = {"a": [], "b": [], "c": []}
    for s in got:
        timers.attach(s, got[s].append)
    timers.adopt("a", "hub")
    answer_local(_intent(rec, "set a timer for 1 second"), timers, owner="a",
                 utterance_id="a-1", client="hub")
    # The client reconnects (b) before its old session (a) has closed; c is someone else.
    timers.adopt("b", "hub")
    timers.adopt("c", "other")
    timers.detach("a")
    await asyncio.sleep(1.5)
    assert [len(got[s]) for s in ("a", "b", "c")] == [0, 1, 0]
    timers.close()


# -- shared with other replicas (the broker's part: tests/test_replicas.py) --------------------


class FakeShare:
    """Stands in for assistant.replicas.Share: records what the timers write, answers who may
    fire and claim (one layer: the broker and its ordering are tested with real processes)."""

    def __init__(self, replica: str, live: set[str]) -> None:
        self.replica = replica
        self.live = live
        self.connected = True
        self.puts: list[dict[str, Any]] = []
        self.clears: list[tuple[str, str]] = []
        self.finished: list[dict[str, Any]] = []

    @property
    def tag(self) -> str:
        return self.replica

    def can_fire(self) -> bool:
        return self.connected

    def should_claim(self, holder: str | None) -> bool:
        return holder is not None and holder not in self.live and self.replica == min(self.live)

    def put_timer(self, record: dict[str, Any]) -> None:
        self.puts.append(record)

    def clear_timer(self, client: str, timer_id: str) -> None:
        self.clears.append((client, timer_id))

    def timer_finished(self, record: dict[str, Any]) -> None:
        self.finished.append(record)


def _pair() -> tuple[TimerManager, FakeShare, TimerManager, FakeShare]:
    live = {"a", "b"}
    share_a, share_b = FakeShare("a", live), FakeShare("b", live)
    a, b = TimerManager(), TimerManager()
    a.share_with(share_a)
    b.share_with(share_b)
    return a, share_a, b, share_b


async def test_a_mirror_answers_and_its_changes_reach_the_holder_which_alone_fires() -> None:
    a, share_a, b, share_b = _pair()
    t = a.start("s1", 0.8, utterance_id="s1-1", client="hub")
    record = share_a.puts[-1]
    assert (record["holder"], record["client"], t.id) == ("a", "hub", "t1-a")
    heard: list[Timer] = []
    b.attach("s2", heard.append)
    b.adopt("s2", "hub")
    b.remote("hub", t.id, record)
    mirror = b.timers_of("s2")[0]
    assert mirror.handle is None and 0 < mirror.remaining(b.now()) <= 0.8  # no countdown here
    # Paused on B: the record says so, and the holder stops counting.
    b.pause("s2")
    a.remote("hub", t.id, share_b.puts[-1])
    assert t.paused and t.handle is None
    await asyncio.sleep(1.0)
    assert not share_a.finished and not share_b.finished
    # Resumed on B: the holder counts again, and it alone fires, once.
    b.resume("s2")
    a.remote("hub", t.id, share_b.puts[-1])
    await asyncio.sleep(1.2)
    assert [r["id"] for r in share_a.finished] == [t.id] and not share_b.finished
    # B hears of it from the holder's "finished" message and tells its session.
    b.remote("hub", t.id, {**share_a.finished[0], "state": "finished"})
    assert [h.id for h in heard] == [t.id] and not b.timers_of("s2")
    a.close()
    b.close()


async def test_a_gone_holders_timer_is_claimed_by_the_lowest_live_replica() -> None:
    a, share_a, b, share_b = _pair()
    t = a.start("s1", 0.3, utterance_id="s1-1", client="hub")
    b.remote("hub", t.id, share_a.puts[-1])
    share_a.live.discard("a")  # a's presence went (it is cut off, its last will went out)
    b.claim_orphans()
    assert share_b.puts[-1]["holder"] == "b"
    # a hears of the claim: its countdown stops; only b fires.
    a.remote("hub", t.id, share_b.puts[-1])
    await asyncio.sleep(0.6)
    assert not share_a.finished and [r["id"] for r in share_b.finished] == [t.id]
    a.close()
    b.close()


async def test_a_holder_cut_off_from_the_broker_waits_to_fire() -> None:
    a, share_a, _b, _share_b = _pair()
    a.start("s1", 0.1, utterance_id="s1-1", client="hub")
    share_a.connected = False
    await asyncio.sleep(0.4)
    assert not share_a.finished
    share_a.connected = True
    await asyncio.sleep(0.7)
    assert len(share_a.finished) == 1
    a.close()


async def test_a_record_naming_this_holder_for_a_fired_timer_is_emptied() -> None:
    a, share_a, _b, _share_b = _pair()
    record = {"id": "t9-a", "client": "hub", "holder": "a", "ends_at": None, "left_s": 5.0}
    a.remote("hub", "t9-a", record)  # a late "pause" from another replica, after it fired
    assert share_a.clears == [("hub", "t9-a")] and not a.timers_of("")


async def test_after_a_reconnect_a_mirror_the_broker_no_longer_has_is_dropped() -> None:
    a, share_a, b, _share_b = _pair()
    kept = a.start("s1", 60, utterance_id="s1-1", client="hub")
    b.remote("hub", kept.id, share_a.puts[-1])
    gone = a.start("s1", 60, utterance_id="s1-2", client="hub")
    b.remote("hub", gone.id, share_a.puts[-1])
    b.adopt("s2", "hub")
    # b was cut off while `gone` was cancelled: the emptied record is not sent again, only
    # the retained ones are.
    b.resync()
    b.seen(kept.id)
    b.resynced()
    assert [t.id for t in b.timers_of("s2")] == [kept.id]
    a.close()
    b.close()
