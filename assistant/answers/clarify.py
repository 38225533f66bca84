"""Clarifying questions: "turn on the light" in a home with five lights asks "Which light:
bedroom, hallway, kitchen, living room or office?" instead of turning on all five, and the next
turn ("the kitchen one", "kitchen", "the living room light") picks the device.

Pure functions over the home registry; the acting stage keeps the question pending (like a
confirmation) and the reply module words it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from devices.registry import Device, HomeConfig
from intents.schema import Intent, IntentName

#: Commands that may ask which device (switching things on and off, dimming).
_ASKING: frozenset[str] = frozenset(
    {
        IntentName.LIGHT_ON,
        IntentName.LIGHT_OFF,
        IntentName.LIGHT_SET,
        IntentName.SWITCH_ON,
        IntentName.SWITCH_OFF,
        IntentName.FAN_ON,
        IntentName.FAN_OFF,
    }
)
#: "the light", "a lamp", "this lamp", "the next lamp" (a name misheard: "desk lamp"): one
#: device named by its kind, perhaps with a word the home does not know, in English.
_SINGULAR = re.compile(
    r"\b(?:the|a|that|this)\s+(?:[a-z']+\s+)?(?:light|lamp|fan|switch|plug)\b(?!s)", re.I)
#: "all the lights", "every lamp", "both": the user meant several.
_SEVERAL = re.compile(r"\b(?:all|every|everything|both|lights|lamps|fans|switches|plugs)\b", re.I)
#: A sentence with one of these verbs is a new command, not an answer to "which one?".
_COMMAND = re.compile(
    r"\b(?:turn|switch|set|dim|brighten|open|close|lock|unlock|start|stop|pause|play|make)\b"
    r"|打开|关闭|关掉|开灯|关灯|调",
    re.I,
)
#: Longest answer (words) taken as a choice.
_MAX_ANSWER_WORDS = 6


def ambiguous_targets(intent: Intent, home: HomeConfig) -> list[str] | None:
    """The devices to choose from when ``intent`` names one device by its kind ("turn on the
    light") but the home has several and the user said no room; else None."""
    s = intent.slots
    if (
        intent.name not in _ASKING
        or len(set(s.device_ids)) < 2
        or s.area is not None
        or s.floor is not None
        or intent.source == "context"
        or not _SINGULAR.search(intent.text)
        or _SEVERAL.search(intent.text)
    ):
        return None
    devices = [_device(home, d) for d in dict.fromkeys(s.device_ids)]
    if any(d is None for d in devices) or len({d.kind for d in devices if d}) != 1:
        return None
    return [d.id for d in devices if d is not None]


def _device(home: HomeConfig, device_id: str) -> Device | None:
    try:
        return home.device(device_id)
    except (KeyError, ValueError):
        return None


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split()) + " "


def choose(text: str, choices: Sequence[str], home: HomeConfig) -> list[str]:
    """The choices ``text`` picks ("the kitchen one", "kitchen", "厨房的"), or [] when it is
    not an answer (a new command, or no choice named)."""
    if _COMMAND.search(text) or len(text.split()) > _MAX_ANSWER_WORDS:
        return []
    said = _words(text)
    picked: list[str] = []
    for device_id in choices:
        d = _device(home, device_id)
        if d is None:
            continue
        names = [d.name, *d.aliases]
        if d.area is not None:
            for a in home.areas:
                if a.id == d.area:
                    names += [a.name, *a.aliases]
        for name in names:
            n = name.lower()
            hit = n in text.lower() if re.search(r"[^\x00-\x7f]", n) else _words(n) in said
            if hit:
                picked.append(device_id)
                break
    return picked


def named_area(text: str, home: HomeConfig) -> str | None:
    """The one room ``text`` names as an answer to "Which room are you in?" ("the kitchen",
    "I'm in the bedroom", "客厅"), or None (a new command, no room, or several)."""
    if _COMMAND.search(text) or len(text.split()) > _MAX_ANSWER_WORDS:
        return None
    said = _words(text)
    found: set[str] = set()
    for a in home.areas:
        for name in (a.name, *a.aliases):
            n = name.lower()
            if n in text.lower() if re.search(r"[^\x00-\x7f]", n) else _words(n) in said:
                found.add(a.id)
                break
    return found.pop() if len(found) == 1 else None
