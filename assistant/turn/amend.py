"""The amend window: the rest of an order cut off at a pause (issue 21).

"I want a dark roast house coffee … with some almond milk": when the pause ends the turn
after "house coffee" (a complete order), the order is sent, and "with some almond milk"
arrives as a turn of its own that parses as nothing. Within ``turn_detection.amend_ms`` of
the end of the order's speech, such a turn is read joined to the order before it; when the
joined words parse as the *same* custom intent with more slots (every slot of the order kept,
none changed), the turn carries out the whole order once more, marked as an amendment of the
previous utterance (``amends``): the device replaces the order it has rather than making a
second one (docs/protocol.md, "Amended orders").

Conservative by design: only a turn that parsed as nothing amends (a new command is a new
command); only a custom intent whose action was published is amended; never a sensitive one;
the joined reading must add slots and change none ("thank you" after an order joins to
nothing and does nothing).

Built-in commands (lights, switches, fans, covers, the thermostat, the volume) are amended by a
turn that goes on with them or takes them back, read joined to the command before it:

* **going on** ("turn on the kitchen light" … "to 50 percent" / "and the hallway light"): a
  turn that parses as nothing or starts with a joining word (to, at, and, 调到, 和 …) whose
  joined reading is the same command on the same devices with more said (a level, a colour,
  more devices: every value kept) carries out what was added;
* **taking back** ("turn on the kitchen light" … "no wait, the living room light"; 打开厨房灯 …
  不对，客厅灯): a turn that starts with a correction (no, wait, actually, I mean, 不对, 不是,
  我是说 …) whose joined reading is another command (the recognizer reads a correction as
  what follows it) carries that out, and each device the first command moved that the
  correction no longer names is put back as it was before (a light off again, at its former
  brightness; a cover at its former position). A restore that would open or unlock something
  sensitive is never sent; the reply says what was done.

The ``intent`` event of such a turn has ``amends`` set to the command it amends. Without a
state reported by the device before the command, nothing is put back (nothing to restore)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from assistant.turn.types import SessionResources, SessionState, Utterance
from devices.adapters._common import expected_state, state_matches
from devices.registry import Device, DeviceKind
from intents.schema import Intent, IntentName, Recognition, Slots

logger = logging.getLogger(__name__)

_TRAILING = " \t\n.,;:!?…。，！？"
N = IntentName
#: Built-in commands a following turn may go on with or take back.
AMENDABLE: Final = frozenset({
    N.LIGHT_ON, N.LIGHT_OFF, N.LIGHT_SET, N.SWITCH_ON, N.SWITCH_OFF, N.FAN_ON, N.FAN_OFF,
    N.COVER_OPEN, N.COVER_CLOSE, N.COVER_SET_POSITION, N.CLIMATE_SET_TEMPERATURE,
    N.MEDIA_SET_VOLUME})
#: A turn that takes back what was just said ("no wait, …", "actually …", 不对，…).
CORRECTION: Final = re.compile(
    r"^(?:no|nope|sorry|oops|wait|actually|i mean|i meant|rather|not that|make (?:that|it)|"
    r"instead)\b|^(?:不对|不是|错了|我是说|我说的是|应该是|改成|换成)", re.IGNORECASE)
#: A turn that goes on with it ("… to 50 percent", "… and the hallway light", 调到五十).
CONTINUATION: Final = re.compile(
    r"^(?:to|at|and|also|plus|in|on|with)\b|^(?:调到|调成|到|和|还有|跟)", re.IGNORECASE)
_LEAD: Final = re.compile(r"^(?:[\W_]|(?:um+|uh+|er+|oh|嗯|呃|啊)\b)+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Order:
    """A custom intent a turn of the session published: what may be amended."""

    utterance_id: str
    text: str
    intent: Intent
    #: When its speech ended (typed text: when it arrived), on the session clock.
    end_t: float
    #: A built-in command's devices as they were before it (what taking it back restores).
    before: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Amendment:
    """What a turn amending the last command carries out: ``recognition`` (its ``also``: the
    restores of a correction) as an amendment of utterance ``amends``."""

    recognition: Recognition
    amends: str


def fragment_kind(text: str) -> str | None:
    """``"correction"``, ``"continuation"`` or None for how a turn starts."""
    head = _LEAD.sub("", text.strip().lower())
    if CORRECTION.match(head):
        return "correction"
    return "continuation" if CONTINUATION.match(head) else None


def refines(previous: Intent, joined: Intent) -> bool:
    """``joined`` is ``previous`` with more said: the same command (or "on" made a setting)
    on at least its devices, every value it had kept, something added."""
    same = joined.name == previous.name or (
        previous.name == N.LIGHT_ON and joined.name == N.LIGHT_SET)
    if not same or not set(previous.slots.device_ids) <= set(joined.slots.device_ids):
        return False
    rest = {"device_ids", "area", "floor", "domain"}
    before = previous.slots.model_dump(exclude=rest, exclude_none=True)
    after = joined.slots.model_dump(exclude=rest, exclude_none=True)
    kept = all(after.get(k) == v for k, v in before.items() if v not in ({}, []))
    return kept and (after != before or joined.slots.device_ids != previous.slots.device_ids)


def restore(device: Device, state: Mapping[str, Any] | None, why: str) -> Intent | None:
    """The command that puts ``device`` back to ``state`` (its state before a command that
    was taken back), or None when that state says too little."""
    if not state:
        return None
    on = state.get("state")
    slots: dict[str, Any] = {"device_ids": [device.id]}
    name: str | None = None
    kind = device.kind
    if kind in (DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN) and on in ("on", "off"):
        prefix = {DeviceKind.LIGHT: "light", DeviceKind.SWITCH: "switch"}.get(kind, "fan")
        name = f"{prefix}_{on}"
        level = state.get("brightness")
        if kind == DeviceKind.LIGHT and on == "on" and isinstance(level, int | float):
            name, slots["brightness"] = N.LIGHT_SET, round(level)
    elif kind == DeviceKind.COVER and isinstance(state.get("position"), int | float):
        name, slots["position"] = N.COVER_SET_POSITION, round(state["position"])
    elif kind == DeviceKind.COVER and on in ("open", "closed"):
        name = N.COVER_OPEN if on == "open" else N.COVER_CLOSE
    elif kind == DeviceKind.CLIMATE and isinstance(state.get("temperature"), int | float):
        name = N.CLIMATE_SET_TEMPERATURE
        slots.update(temperature=float(state["temperature"]), temperature_unit="C")
    elif kind == DeviceKind.MEDIA_PLAYER and isinstance(state.get("volume"), int | float):
        name, slots["volume"] = N.MEDIA_SET_VOLUME, round(state["volume"])
    if name is None:
        return None
    return Intent(name=name, slots=Slots(**slots), confidence=1.0, source="context", reason=why)


def amendment(previous: Intent, joined: Intent) -> bool:
    """``joined`` is ``previous`` with more custom slots: same intent, every slot kept with
    its value, at least one added, nothing else changed."""
    if joined.name != previous.name or joined.source != "custom":
        return False
    before, after = previous.slots.custom, joined.slots.custom
    if any(after.get(k) != v for k, v in before.items()) or len(after) <= len(before):
        return False
    rest = {"custom"}
    return previous.slots.model_dump(exclude=rest) == joined.slots.model_dump(exclude=rest)


class Amends:
    """The last order of one session, and the amendment a following fragment makes of it."""

    def __init__(
        self, resources: SessionResources, state: SessionState, clock: Callable[[], float]
    ) -> None:
        self._res = resources
        self._state = state
        self._clock = clock
        self.last: Order | None = None

    def window_s(self) -> float:
        td = self._res.settings.turn_detection.model_copy(
            update=self._state.config.turn_detection.model_dump(exclude_none=True)
        )
        return max(0, int(td.amend_ms)) / 1000

    def snapshot(self, intent: Intent) -> dict[str, Mapping[str, Any] | None]:
        """The states of a built-in command's devices, taken before it is carried out."""
        state = getattr(self._res.dispatcher, "state", None)
        if intent.source == "custom" or intent.name not in AMENDABLE or not callable(state):
            return {}
        return {d: state(d) for d in intent.slots.device_ids}

    def published(
        self, utt: Utterance, intent: Intent, before: Mapping[str, Any] | None = None
    ) -> None:
        """``utt`` published ``intent``: the next turn may amend it (a custom order, or the
        turn's own built-in command: not a restore or a second command of the sentence)."""
        if self._sensitive(intent):
            return
        if intent.source != "custom" and (
            intent.name not in AMENDABLE or utt.recognition is None
            or intent is not utt.recognition.intent):
            return
        text = intent.text or utt.text or ""
        end = utt.speech_end_t if utt.speech_end_t is not None else utt.started
        self.last = Order(utt.id, text, intent, end, dict(before or {}))

    def other_turn(self, utt: Utterance) -> None:
        """A turn that did anything else ends the window of the order before it."""
        if self.last is not None and self.last.utterance_id != utt.id:
            self.last = None

    def _sensitive(self, intent: Intent) -> bool:
        if intent.is_sensitive:
            return True
        check = getattr(self._res.dispatcher, "is_sensitive", None)
        return bool(check(intent)) if callable(check) else False

    async def propose(
        self, utt: Utterance, text: str, language: str | None, result: Recognition,
        where: Mapping[str, str] | None = None,
    ) -> Amendment | None:
        """What ``text`` (a turn whose own reading is ``result``) amends the last command
        into, or None. Used once: a further turn amends the amended command."""
        order = self.last
        window = self.window_s()
        if order is None or window <= 0 or not text.strip():
            return None
        gap = utt.started - order.end_t
        if gap > window or self._sensitive(order.intent):
            return None
        kind = fragment_kind(text)
        custom = order.intent.source == "custom"
        if result.intent is not None and (custom or kind != "continuation"):
            return None  # a command of its own ("no more music" is not a correction)
        joined = f"{order.text.rstrip(_TRAILING)} {text.strip()}"
        lang = language or order.intent.language
        try:
            got = await asyncio.to_thread(
                self._res.recognizer.recognize, joined, language=lang,
                area=None if custom else (where or {}).get("area"))
        except Exception:
            logger.warning("session %s: amend recognition failed", self._state.id, exc_info=True)
            return None
        new = got.intent
        if new is None or got.also or self._sensitive(new):
            return None
        after = f"{order.utterance_id} ({gap * 1000:.0f} ms after it): {joined!r}"
        if custom:
            if not amendment(order.intent, new):
                return None
            added = {k: v for k, v in new.slots.custom.items()
                     if k not in order.intent.slots.custom}
            reason = f"amends {after} adds " + ", ".join(f"{k}={v}" for k, v in added.items())
            amended = new.model_copy(update={"reason": reason, "text": joined})
            return Amendment(Recognition(intent=amended, reason=reason), order.utterance_id)
        if new.source == "custom" or new.name not in AMENDABLE:
            return None
        restores: list[Intent] = []
        if kind == "correction" and (new.name, new.slots) != (order.intent.name,
                                                              order.intent.slots):
            reason = f"corrects {after} -> {new.reason}"
            restores = self._restores(order, new)
        elif refines(order.intent, new):
            reason = f"amends {after} -> {new.reason}"
            if new.name == order.intent.name and new.slots.model_copy(
                    update={"device_ids": order.intent.slots.device_ids}) == order.intent.slots:
                more = [d for d in new.slots.device_ids if d not in order.intent.slots.device_ids]
                new = new.model_copy(update={"slots": new.slots.model_copy(
                    update={"device_ids": more})})  # "… and the hallway light": that one
        else:
            return None
        amended = new.model_copy(update={"reason": reason, "text": joined})
        return Amendment(
            Recognition(intent=amended, reason=reason, also=restores), order.utterance_id)

    def _restores(self, order: Order, new: Intent) -> list[Intent]:
        """Each device ``order`` moved that ``new`` leaves out, put back as it was (never an
        opening or unlocking of something sensitive)."""
        config = getattr(self._res.dispatcher, "config", None)
        devices = {d.id: d for d in getattr(config, "devices", ())}
        out = []
        for device_id, before in order.before.items():
            device = devices.get(device_id)
            if device is None or device_id in new.slots.device_ids or not before:
                continue
            if state_matches(expected_state(device, order.intent), dict(before)):
                continue  # the command changed nothing there
            why = f"undoes {order.utterance_id} on {device.name}: as it was before"
            back = restore(device, before, why)
            if back is not None and not self._sensitive(back):
                out.append(back.model_copy(update={"language": order.intent.language}))
        return out
