"""Timer and clock intents: Home Assistant's timer/clock sentences to Hearth's intents.

They act on no device: the session answers them itself (``assistant.answers.timers``), the
dispatcher never sees them. Slots: ``custom.seconds`` (a timer's length, total seconds) and
``custom.name`` (a timer's name, when one was given).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from intents.schema import Slots

TIMER_START: Final = "timer_start"
TIMER_STATUS: Final = "timer_status"
TIMER_PAUSE: Final = "timer_pause"
TIMER_RESUME: Final = "timer_resume"
TIMER_CANCEL: Final = "timer_cancel"
TIME_GET: Final = "time_get"
DATE_GET: Final = "date_get"

#: Intents answered by the session itself, without the dispatcher.
LOCAL_INTENTS: frozenset[str] = frozenset(
    {TIMER_START, TIMER_STATUS, TIMER_PAUSE, TIMER_RESUME, TIMER_CANCEL, TIME_GET, DATE_GET}
)

#: Home Assistant intent → Hearth intent.
TIMER_HA_INTENTS: dict[str, str] = {
    "HassStartTimer": TIMER_START,
    "HassTimerStatus": TIMER_STATUS,
    "HassPauseTimer": TIMER_PAUSE,
    "HassUnpauseTimer": TIMER_RESUME,
    "HassCancelTimer": TIMER_CANCEL,
    "HassCancelAllTimers": TIMER_CANCEL,
    "HassGetCurrentTime": TIME_GET,
    "HassGetCurrentDate": DATE_GET,
}

#: Longest timer (a day).
MAX_TIMER_S: Final = 24 * 3600


#: Words the grammar may take for a timer's name ("the timer", "my timer").
_NO_NAME: frozenset[str] = frozenset({"the", "my", "a", "this", "that"})


class TimerError(ValueError):
    """A timer sentence that cannot be carried out (no length, too long); user-facing."""


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def timer_slots(ha_intent: str, values: Mapping[str, Any]) -> tuple[str, Slots, str]:
    """(intent name, slots, reason) for a Home Assistant timer/clock intent. Raises
    :class:`TimerError` for a timer with no usable length."""
    name = TIMER_HA_INTENTS[ha_intent]
    if values.get("conversation_command"):
        raise TimerError("I can't set reminders yet")
    custom: dict[str, str | int | float | bool] = {}
    timer_name = values.get("name")
    if isinstance(timer_name, str) and timer_name.strip() and timer_name.strip() not in _NO_NAME:
        custom["name"] = timer_name.strip()
    if name == TIMER_START:
        total = 0.0
        for key, scale in (("hours", 3600), ("minutes", 60), ("seconds", 1)):
            n = _number(values.get(key))
            if n is not None:
                total += n * scale
        if total <= 0:
            raise TimerError("a timer needs a length")
        if total > MAX_TIMER_S:
            raise TimerError("timers are limited to 24 hours")
        custom["seconds"] = round(total, 1)
        return name, Slots(custom=custom), f"timer for {custom['seconds']:g} s"
    if ha_intent == "HassCancelAllTimers":
        custom["all"] = True
    return name, Slots(custom=custom), name.replace("_", " ")


# -- the phrasings Home Assistant's sentences miss ---------------------------------------------

_UNITS_EN: Final = {"hour": 3600, "hr": 3600, "minute": 60, "min": 60, "second": 1, "sec": 1}
_DURATION_EN: Final = re.compile(r"(\d+(?:\.\d+)?) ?(hours?|hrs?|minutes?|mins?|seconds?|secs?)\b")
_UNITS_ZH: Final = {"小时": 3600, "钟头": 3600, "分钟": 60, "分": 60, "秒钟": 1, "秒": 1}
_DURATION_ZH: Final = re.compile(r"(\d+(?:\.\d+)?)个?(小时|钟头|分钟|分|秒钟|秒)")
_TIMER_ZH: Final = ("定时器", "计时器", "倒计时", "定时", "计时")
#: How a request for a timer starts once politeness is gone ("can you", "please").
_REQUEST_STARTS: Final = frozenset({"set", "start", "make", "create", "put", "timer", "countdown",
                                    "a", "an", "new", "cancel", "stop", "delete", "remove",
                                    "pause", "resume", "continue", "unpause", "how", "what",
                                    "check", "begin", "run", "end", "kill", "hold", "give",
                                    "get", "need", "want"})
_NOT_A_NAME: Final = _NO_NAME | {"an", "minute", "minutes", "second", "seconds", "hour",
                                 "hours", "kitchen", "set", "start", "new", "another"}


def fallback_timer(text: str, language: str) -> tuple[str, Slots, str] | None:
    """(intent, slots, reason) for a timer said in a way the grammar does not have ("set a
    pasta timer for 8 minutes", "设一个五分钟的定时器", "取消定时器"), or None. ``text`` has
    its numbers as digits (``intents.robust_text.normalize_en`` / ``_normalize_zh``).
    Raises :class:`TimerError` for a timer too long."""
    zh = language.lower().startswith("zh")
    if zh:
        from intents.robust_lexicon import TRADITIONAL_ZH
        from intents.robust_text import _ZH_NUM, _zh_number

        text = text.translate(TRADITIONAL_ZH)  # Whisper's 定時器
        if not any(w in text for w in _TIMER_ZH) or any(
                w in text for w in ("昨天", "刚才", "已经", "上次", "不要设")):
            return None  # about a timer, not a request for one
        if re.search(r"(后|以后|之后|结束).*[开关调]", text):
            return None  # "十分钟后关灯" with a timer word: an action for later, not a timer
        def and_a_half(m: re.Match[str]) -> str:  # 一个半小时: 1.5 小时
            n = float(m.group(1)) if m.group(1).isdigit() else (_zh_number(m.group(1)) or 0)
            return f"{n + 0.5:g}小时"

        text = re.sub(rf"([{_ZH_NUM}]+|\d+)个半(小时|钟头)", and_a_half, text)
        text = re.sub(r"(?<![\d.])半个?(小时|钟头)", "30分钟", text).replace("一刻钟", "15分钟")
        text = re.sub(rf"([{_ZH_NUM}]+)(?=个?(?:小时|钟头|分钟|分|秒钟|秒))",
                      lambda m: str(_zh_number(m.group(1)) or m.group(1)), text)
        if any(w in text for w in ("取消", "停止", "删除", "不要")) or re.search(
                r"器(给我)?[关停]|关[掉闭]?(这个|那个)?(定时|计时|倒计时)", text):
            # 把计时器关了, 关掉定时器 (not 定时关灯: lights off later)
            return TIMER_CANCEL, Slots(), "timer cancel"
        if any(w in text for w in ("还剩", "多久", "多长时间", "剩下", "剩余")):
            return TIMER_STATUS, Slots(), "timer status"
        if "暂停" in text:
            return TIMER_PAUSE, Slots(), "timer pause"
        if "继续" in text or "恢复" in text:
            return TIMER_RESUME, Slots(), "timer resume"
        spans = [(float(n), _UNITS_ZH[u]) for n, u in _DURATION_ZH.findall(text)]
        name = None
    else:
        text = re.sub(r"\b(a|1) quarter of an hour\b", "15 minutes", text)
        text = re.sub(r"\ban hour\b", "1 hour", re.sub(r"\bhalf an hour\b", "30 minutes", text))
        text = re.sub(r"(\d+) (hours?|minutes?) and a half\b",  # "an hour and a half"
                      lambda m: f"{int(m.group(1)) + 0.5:g} {m.group(2)}", text)
        words = text.split()
        if "timer" not in words and "timers" not in words and "countdown" not in words:
            return None
        if (words[0] not in _REQUEST_STARTS and not words[0].replace(".", "").isdigit()) \
                or set(words) & {"yesterday", "ago", "earlier", "last", "was", "had"}:
            return None  # "I set a timer for 5 minutes yesterday": about a timer
        if re.search(r"\b(turn|switch|lock|unlock|open|close|dim|brighten)\b", text):
            return None  # "set a timer to turn off the lights in 10 minutes": not a bare timer
        if set(words) & {"cancel", "stop", "delete", "remove", "end", "kill"}:
            return TIMER_CANCEL, Slots(), "timer cancel"
        if set(words) & {"left", "remaining", "long", "longer", "status"}:
            return TIMER_STATUS, Slots(), "timer status"
        if set(words) & {"pause", "hold", "freeze"}:
            return TIMER_PAUSE, Slots(), "timer pause"
        if set(words) & {"resume", "continue", "unpause", "restart"}:
            return TIMER_RESUME, Slots(), "timer resume"
        spans = [(float(n), _UNITS_EN[u.rstrip("s")]) for n, u in _DURATION_EN.findall(text)]
        k = words.index("timer") if "timer" in words else -1
        before = words[k - 1] if k > 0 else ""
        name = before if before.isalpha() and before not in _NOT_A_NAME else None
    if not spans:
        return None
    total = sum(n * scale for n, scale in spans)
    if total <= 0:
        return None
    if total > MAX_TIMER_S:
        raise TimerError("timers are limited to 24 hours")
    custom: dict[str, str | int | float | bool] = {"seconds": round(total, 1)}
    if name:
        custom["name"] = name
    return TIMER_START, Slots(custom=custom), f"timer for {total:g} s"
