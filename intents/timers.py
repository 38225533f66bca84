"""Timer and clock intents: Home Assistant's timer/clock sentences to Hearth's intents.

They act on no device: the session answers them itself (``assistant.answers.timers``), the
dispatcher never sees them. Slots: ``custom.seconds`` (a timer's length, total seconds) and
``custom.name`` (a timer's name, when one was given).
"""

from __future__ import annotations

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
