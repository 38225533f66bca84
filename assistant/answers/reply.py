"""The reply to a turn, as text in the user's language (English and Simplified Chinese).

Pure: from the intent (or the reason there is none), the final action results of the turn and
the home's registry to one :class:`Reply`. No I/O beyond reading the packaged templates once
(``assistant/answers/data/replies_<lang>.yaml``). The wording follows Home Assistant's
response templates where they fit ("Turned on the kitchen light", "Sorry, I didn't understand
that"), with values read from device state for questions:

* a temperature question answers with the *measured* value (a sensor's reading, a
  thermostat's ``current_temperature``), the setpoint only when the question asks for it;
* several devices of one kind are summed up ("Turned off 4 lights in the living room",
  "Two lights are on in the living room");
* what did not happen is said: a device that did not confirm "didn't respond", one that
  could not be reached, a sensitive action waiting for a "yes" ("Unlock the front door? Say
  yes.").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from devices.actions import ActionResult
from devices.registry import Device, DeviceKind, HomeConfig
from intents.languages import has_cjk
from intents.schema import ROOM_UNKNOWN, Intent, IntentName, Slots

ReplyKind = Literal[
    "done",
    "answer",
    "partial",
    "failed",
    "confirm",
    "refused",
    "not_understood",
    "error",
    "timer",
    "clarify",
]

#: On/off kinds whose state questions over an area or several devices are counted.
_COUNTED: frozenset[DeviceKind] = frozenset(
    {DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN}
)
#: A temperature question that asks for the setpoint rather than the reading.
_SETPOINT = re.compile(r"set ?point|set to|target|设定|设置|设为", re.IGNORECASE)
#: Failure sentences listed one by one before they are summed up ("and 3 more").
_MAX_LISTED = 3


@dataclass(frozen=True, slots=True)
class Reply:
    """What Hearth says back: ``text`` in ``language`` (``en`` or ``zh-CN``)."""

    text: str
    language: str
    kind: ReplyKind


def reply_language(language: str | None, text: str = "") -> str:
    """``zh-CN`` for any Chinese code (or, with no code, Chinese text), else ``en``."""
    if language:
        return "zh-CN" if language.lower().startswith("zh") else "en"
    return "zh-CN" if has_cjk(text) else "en"


@cache
def templates(language: str) -> dict[str, Any]:
    """The packaged templates of ``language`` (``en`` or ``zh-CN``)."""
    name = f"replies_{language}.yaml"
    data = resources.files("assistant.answers").joinpath("data", name).read_text("utf-8")
    loaded: dict[str, Any] = yaml.safe_load(data)
    return loaded


def fmt_number(value: float) -> str:
    """21.5 → "21.5", 20.0 → "20" (as it is spoken)."""
    v = round(float(value), 1)
    return str(int(v)) if v == int(v) else f"{v:g}"


class _Words:
    """Template lookup and the small grammar around it, for one language."""

    def __init__(self, home: HomeConfig, language: str) -> None:
        self.home = home
        self.lang = language
        self.t = templates(language)
        self.zh = language == "zh-CN"

    # -- names -------------------------------------------------------------------------

    def _local(self, name: str, aliases: Sequence[str]) -> str:
        if self.zh:
            for a in aliases:
                if has_cjk(a):
                    return a
        return name

    def device(self, device_id: str | None) -> str:
        if device_id is None:
            return "设备" if self.zh else "device"
        try:
            d = self.home.device(device_id)
        except (KeyError, ValueError):
            return device_id.replace("_", " ")
        name = self._local(d.name, d.aliases)
        if not self.zh and d.kind == DeviceKind.LOCK and name.endswith(" lock"):
            name = name[: -len(" lock")]  # "The front door is locked"
        return name

    def area(self, area_id: str) -> str:
        for a in self.home.areas:
            if a.id == area_id:
                return self._local(a.name, a.aliases)
        return area_id.replace("_", " ")

    def floor(self, floor_id: str) -> str:
        for f in self.home.floors:
            if f.id == floor_id:
                return self._local(f.name, f.aliases)
        return floor_id.replace("_", " ")

    def where(self, area: str | None, floor: str | None, key: str = "where") -> str:
        if floor is not None:
            return str(self.t[f"{key}_floor"]).format(floor=self.floor(floor))
        if area is not None:
            return str(self.t[f"{key}_area"]).format(area=self.area(area))
        return str(self.t[f"{key}_home"])

    def noun(self, kind: str, plural: bool) -> str:
        pair = self.t["nouns"].get(kind) or self.t["nouns"]["device"]
        return str(pair[1 if plural else 0])

    def measure(self, kind: str) -> str:
        m = self.t.get("measure") or {}
        return str(m.get(kind, m.get("other", "")))

    def count_word(self, n: int) -> str:
        words = self.t["numbers"]
        return str(words[n]) if 0 <= n < len(words) else str(n)

    # -- sentences ---------------------------------------------------------------------

    def fill(self, template: str, **values: Any) -> str:
        return template.format(**values)

    def join(self, items: Sequence[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        sep, last = str(self.t["join_sep"]), str(self.t["join_last"])
        return sep.join(items[:-1]) + last + items[-1]

    def sentences(self, parts: Sequence[str]) -> str:
        parts = [p for p in parts if p]
        if not parts:
            return ""
        text = str(self.t["sentence_sep"]).join(_cap(p) for p in parts)
        end = str(self.t["end"]) or "."
        return text if text.endswith(("?", "？", "。", ".", "!")) else text + end


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def compose_reply(
    intent: Intent | None,
    results: Sequence[ActionResult],
    home: HomeConfig,
    *,
    reason: str = "",
    language: str | None = None,
    text: str = "",
) -> Reply:
    """The reply to one turn. ``results``: the final action results (any order); ``reason``:
    the recognizer's reason when ``intent`` is None; ``language``/``text``: the session's
    language and the transcript, for picking the reply language when there is no intent."""
    lang = reply_language(intent.language if intent is not None else language, text)
    if intent is not None and language and language.lower().startswith("zh"):
        lang = "zh-CN"
    w = _Words(home, lang)
    if intent is None and _COURTESY.fullmatch(_plain(text)):
        # "Thank you." after a command (said, or Whisper's favourite reading of the noise
        # after speech): not "Sorry, I didn't understand that"
        return Reply(w.sentences([w.t["courtesy"]]), w.lang, "answer")
    if intent is None:
        return _not_understood(w, reason)
    finals = [r for r in results if r.final]
    if intent.name in (IntentName.CLIMATE_GET_TEMPERATURE, IntentName.GET_STATE):
        return _answer(w, intent, finals)
    return _done(w, intent, finals)


#: Thanks said to the assistant (English and Chinese), alone in a turn.
_COURTESY = re.compile(
    r"(?:(?:ok(?:ay)? |oh )?(?:thank you(?: (?:very|so) much)?|thanks(?: a lot)?|thank you hearth|"
    r"cheers|ta|much appreciated)|谢谢(?:你|您)?|多谢|谢啦|感谢)")


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def error_reply(language: str | None, text: str = "") -> Reply:
    """A stage failed (ASR, recognizer, dispatcher): said plainly."""
    lang = reply_language(language, text)
    return Reply(str(templates(lang)["error"]) + ("。" if lang == "zh-CN" else "."), lang, "error")


def cancelled_confirmation_reply(
    home: HomeConfig, language: str | None, intent_name: str, device_ids: Sequence[str]
) -> Reply:
    """A sensitive action that was waiting for a "yes" was cancelled by a reconnect: "I didn't
    unlock the front door: the connection changed before you said yes. ..."."""
    w = _Words(home, reply_language(language))
    ct = w.t["confirm"]
    verb = _verb(w, intent_name)
    names = [w.device(d) for d in device_ids]
    if not names or verb is None:
        text = str(ct["cancelled_general"])
    else:
        text = w.fill(ct["cancelled"], verb=verb, name=w.join(names))
    return Reply(w.sentences([text]), w.lang, "confirm")


def _not_understood(w: _Words, reason: str) -> Reply:
    why = reason.removeprefix("no intent:").strip().rstrip(".")
    if ROOM_UNKNOWN in why:
        # "it's too dark in here" with no room known: ask; a turn naming a room answers
        return Reply(str(w.t["clarify"]["room"]), w.lang, "clarify")
    if not why or "matched" in why or why.startswith("nothing") or "understand" in why:
        return Reply(w.sentences([w.t["not_understood"]["plain"]]), w.lang, "not_understood")
    if not w.zh and why.startswith(("I ", "Hearth ")):
        # Already a sentence for the user ("I can't set reminders yet").
        return Reply(w.sentences([f"Sorry, {why}"]), w.lang, "not_understood")
    return Reply(
        w.sentences([w.fill(w.t["not_understood"]["reason"], reason=why)]),
        w.lang,
        "not_understood",
    )


# -- questions ----------------------------------------------------------------------------


def _kind(w: _Words, device_id: str | None) -> DeviceKind | None:
    if device_id is None:
        return None
    try:
        return w.home.device(device_id).kind
    except (KeyError, ValueError):
        return None


def _answer(w: _Words, intent: Intent, finals: Sequence[ActionResult]) -> Reply:
    if intent.name == IntentName.CLIMATE_GET_TEMPERATURE:
        parts = _temperatures(w, intent, finals)
    else:
        parts = _states(w, intent, finals)
    failures = _failures(w, intent, [r for r in finals if r.status in ("failed", "rejected")])
    kind: ReplyKind = "answer" if parts else "failed"
    return Reply(w.sentences([*parts, *failures]), w.lang, kind)


def _temperatures(w: _Words, intent: Intent, finals: Sequence[ActionResult]) -> list[str]:
    setpoint = bool(_SETPOINT.search(intent.text or ""))
    tt = w.t["temperature"]
    out: list[str] = []
    for r in finals:
        if r.status not in ("confirmed", "unconfirmed"):
            continue
        name = w.device(r.device_id)
        state = r.state or {}
        kind = _kind(w, r.device_id)
        if setpoint and kind == DeviceKind.CLIMATE and _num(state.get("temperature")) is not None:
            out.append(w.fill(tt["setpoint"], name=name, value=fmt_number(state["temperature"])))
            continue
        value = _num(state.get("current_temperature"))
        if value is None and kind == DeviceKind.SENSOR:
            value = _num(state.get("temperature"))
        if value is None:
            out.append(w.fill(tt["unknown"], name=name))
            continue
        dev = _device(w, r.device_id)
        if dev is not None and dev.area is not None:
            out.append(
                w.fill(
                    tt["area"],
                    value=fmt_number(value),
                    where=w.where(dev.area, None),
                    place=w.where(dev.area, None, "place"),
                    name=name,
                )
            )
        else:
            out.append(w.fill(tt["device"], name=name, value=fmt_number(value)))
    return out


def _states(w: _Words, intent: Intent, finals: Sequence[ActionResult]) -> list[str]:
    known = [r for r in finals if r.status in ("confirmed", "unconfirmed")]
    kinds = {_kind(w, r.device_id) for r in known}
    slots = intent.slots
    grouped = slots.area is not None or slots.floor is not None or len(known) > 1
    if known and grouped and len(kinds) == 1 and next(iter(kinds)) in _COUNTED:
        kind = next(iter(kinds))
        assert kind is not None
        on = [r for r in known if (r.state or {}).get("state") == "on"]
        unknown = [r for r in known if not r.state]
        ct = w.t["count_on"]
        values = {
            "noun": w.noun(kind.value, False),
            "nouns": w.noun(kind.value, True),
            "measure": w.measure(kind.value),
            "where": w.where(slots.area, slots.floor),
            "place": w.where(slots.area, slots.floor, "place"),
        }
        out: list[str] = []
        if len(known) == 1 and on:
            out.append(w.fill(ct["all_one"], name=w.device(on[0].device_id)))
        elif not on:
            out.append(w.fill(ct["zero"], **values))
        elif len(on) == 1:
            out.append(w.fill(ct["one"], **values))
        else:
            word = w.count_word(len(on))
            out.append(w.fill(ct["many"], Count=_cap(word), count=len(on), **values))
        for r in unknown:
            out.append(w.fill(w.t["state"]["unknown"], name=w.device(r.device_id)))
        return out
    return [_state_sentence(w, r) for r in known]


def _state_sentence(w: _Words, r: ActionResult) -> str:
    st = w.t["state"]
    name = w.device(r.device_id)
    state = r.state or {}
    if not state:
        return w.fill(st["unknown"], name=name)
    kind = _kind(w, r.device_id)
    if kind == DeviceKind.SENSOR:
        value = _num(state.get("current_temperature", state.get("temperature")))
        if value is not None:
            dev = _device(w, r.device_id)
            area = dev.area if dev is not None else None
            if area is not None:
                return w.fill(
                    w.t["temperature"]["area"],
                    value=fmt_number(value),
                    where=w.where(area, None),
                    place=w.where(area, None, "place"),
                    name=name,
                )
            return w.fill(w.t["temperature"]["device"], name=name, value=fmt_number(value))
    if kind == DeviceKind.CLIMATE:
        value = _num(state.get("current_temperature"))
        if value is not None:
            return w.fill(w.t["temperature"]["device"], name=name, value=fmt_number(value))
    value_state = state.get("state")
    position = state.get("position")
    if (
        kind == DeviceKind.COVER
        and isinstance(position, int | float)
        and 0 < position < 100
        and value_state not in ("opening", "closing")
    ):
        return w.fill(st["position"], name=name, position=int(position))
    if isinstance(value_state, str) and value_state in st:
        return w.fill(st[value_state], name=name)
    if value_state is not None:
        return w.fill(st["other"], name=name, state=str(value_state))
    return w.fill(st["unknown"], name=name)


# -- commands -----------------------------------------------------------------------------


def _done(w: _Words, intent: Intent, finals: Sequence[ActionResult]) -> Reply:
    asking = next((r for r in finals if r.extra.get("choices")), None)
    if asking is not None:
        return _which(w, list(asking.extra["choices"]))
    asked = next((r for r in finals if r.extra.get("asks_back")), None)
    if asked is not None:  # a guess held just below the bar (assistant.turn.acting)
        text = w.fill(w.t["confirm"]["guess"], text=str(asked.extra["asks_back"]))
        return Reply(w.sentences([text]), w.lang, "confirm")
    nothing = [r for r in finals if r.device_id is None and r.status == "rejected"]
    if nothing and len(finals) == len(nothing):
        return _nothing(w, intent, nothing[0])
    confirm = [r for r in finals if r.extra.get("needs_confirmation")]
    if confirm:
        return _confirm_prompt(w, intent, confirm)
    ok = [r for r in finals if r.status == "confirmed"]
    bad = [r for r in finals if r.status != "confirmed"]
    parts: list[str] = []
    # One sentence per command carried out: a sentence's second command ("… and lock the
    # door") or a correction's restore ("… no wait, the kitchen light": the office light off
    # again) is said with its own verb.
    by_name: dict[str, list[ActionResult]] = {}
    for r in ok:
        by_name.setdefault(r.intent or intent.name, []).append(r)
    for name, rs in by_name.items():
        parts.append(_success(w, intent if name == intent.name else _as_done(name, intent, rs), rs))
    parts.extend(_failures(w, intent, bad))
    kind: ReplyKind = "done" if not bad else ("partial" if ok else "failed")
    if bad and not ok and all(r.status == "rejected" for r in bad):
        kind = "refused"
    return Reply(w.sentences(parts), w.lang, kind)


def _as_done(name: str, intent: Intent, ok: Sequence[ActionResult]) -> Intent:
    """The command ``name`` the results ``ok`` carried out beside ``intent``, its values as
    the devices confirmed them."""
    level, position = _confirmed(ok, "brightness"), _confirmed(ok, "position")
    slots = Slots(
        device_ids=[r.device_id for r in ok if r.device_id],
        brightness=round(level) if name == IntentName.LIGHT_SET and level is not None else None,
        position=round(position) if position is not None else None,
    )
    return intent.model_copy(update={"name": name, "slots": slots})


def _nothing(w: _Words, intent: Intent, r: ActionResult) -> Reply:
    nt = w.t["nothing"]
    if r.detail.startswith("cancelled before confirmation"):
        return Reply(w.sentences([nt["withdrawn"]]), w.lang, "done")
    if r.detail == "nothing to do":
        key = intent.name if intent.name in ("cancel", "confirm") else "other"
        return Reply(w.sentences([nt[key]]), w.lang, "done")
    return Reply(
        w.sentences([w.fill(w.t["failure"]["rejected_general"], detail=r.detail)]),
        w.lang,
        "refused",
    )


def _which(w: _Words, choices: list[str]) -> Reply:
    """"Which light: kitchen or living room?" — by room when every choice has its own."""
    ct = w.t["clarify"]
    devices = [_device(w, c) for c in choices]
    kind = next((d.kind.value for d in devices if d is not None), "device")
    areas = [d.area for d in devices if d is not None]
    if len(areas) == len(choices) and len(set(areas)) == len(areas):
        options = [w.area(a) for a in areas if a is not None]
        template = ct["areas"]
    else:
        options = [w.device(c) for c in choices]
        template = ct["devices"]
    sep = str(w.t["join_sep"])
    listed = options[-1]
    if len(options) > 1:
        listed = sep.join(options[:-1]) + str(ct["join_last"]) + options[-1]
    text = w.fill(template, noun=w.noun(kind, False), options=listed)
    return Reply(_cap(text), w.lang, "clarify")


def _confirm_prompt(w: _Words, intent: Intent, rs: Sequence[ActionResult]) -> Reply:
    ct = w.t["confirm"]
    verb = _verb(w, rs[0].intent)
    names = [w.device(r.device_id) for r in rs if r.device_id is not None]
    if not names or verb is None:
        text = str(ct["prompt_general"])
    else:
        text = w.fill(ct["prompt"], Verb=_cap(verb), verb=verb, name=w.join(names))
    return Reply(w.sentences([text]), w.lang, "confirm")


def _verb(w: _Words, intent_name: str) -> str | None:
    verbs = w.t["verbs"]
    v = verbs.get(intent_name)
    return None if v is None else str(v)


def _success(w: _Words, intent: Intent, ok: Sequence[ActionResult]) -> str:
    done = w.t["done"]
    if intent.name == IntentName.SCENE_ACTIVATE:
        scene = intent.slots.scene or ""
        for s in w.home.scenes:
            if s.id == scene:
                scene = w._local(s.name, s.aliases)
        return w.fill(done["scene"], scene=scene)
    entry = done.get(intent.name)
    if entry is None:
        return str(done["custom"])
    slots = intent.slots
    # A step ("turn the heat up", "空调调高两度", "louder") was made absolute per device by the
    # dispatcher: say the value the device confirmed, not an empty one.
    temperature = slots.temperature if slots.temperature is not None \
        else _confirmed(ok, "temperature")
    volume = slots.volume if slots.volume is not None else _confirmed(ok, "volume")
    values: dict[str, Any] = {
        "temperature": fmt_number(temperature) if temperature is not None else "",
        "position": slots.position if slots.position is not None else "",
        "volume": round(volume) if volume is not None else "",
        "setting": _setting(w, intent, ok),
    }
    if len(ok) == 1:
        return w.fill(entry["one"], name=w.device(ok[0].device_id), **values)
    kinds = {_kind(w, r.device_id) for r in ok}
    only = next(iter(kinds)) if len(kinds) == 1 else None
    kind = only.value if only is not None else "device"
    return w.fill(
        entry["many"],
        count=len(ok),
        noun=w.noun(kind, False),
        nouns=w.noun(kind, True),
        measure=w.measure(kind),
        where=w.where(slots.area, slots.floor),
        **values,
    )


def _confirmed(ok: Sequence[ActionResult], key: str) -> float | None:
    """The value ``key`` the first confirmed device reports (its state after the command)."""
    value = (ok[0].state or {}).get(key) if ok else None
    return float(value) if isinstance(value, int | float) else None


def _setting(w: _Words, intent: Intent, ok: Sequence[ActionResult]) -> str:
    if intent.name != IntentName.LIGHT_SET:
        return ""
    st = w.t["setting"]
    s = intent.slots
    brightness = s.brightness
    if brightness is None and s.brightness_step is not None and ok:
        b = (ok[0].state or {}).get("brightness")
        brightness = int(b) if isinstance(b, int | float) else None
    if brightness is not None:
        return w.fill(st["brightness"], brightness=brightness)
    if s.color:
        return w.fill(st["color"], color=s.color)
    if s.color_temp_kelvin is not None:
        return w.fill(st["color_temp"], kelvin=s.color_temp_kelvin)
    return ""


def _failures(w: _Words, intent: Intent, bad: Sequence[ActionResult]) -> list[str]:
    ft = w.t["failure"]
    out: list[str] = []
    for r in bad:
        name = w.device(r.device_id)
        if r.status == "unconfirmed":
            out.append(w.fill(ft["unconfirmed"], name=name))
        elif r.status == "failed":
            out.append(w.fill(ft["failed"], name=name))
        elif r.extra.get("low_confidence") and r.device_id is None:
            out.append(w.fill(ft["not_sure_general"]))
        elif r.extra.get("low_confidence") or (
            r.extra.get("sensitive") and not r.extra.get("needs_confirmation")
        ):
            verb = _verb(w, r.intent) or str(w.t["verbs"]["other"])
            out.append(w.fill(ft["not_sure"], verb=verb, name=name))
        elif r.device_id is None:
            out.append(w.fill(ft["rejected_general"], detail=r.detail))
        else:
            out.append(w.fill(ft["rejected"], name=name, detail=r.detail))
    if len(out) > _MAX_LISTED + 1:
        rest = len(out) - _MAX_LISTED
        out = [*out[:_MAX_LISTED], w.fill(ft["more"], count=rest)]
    return out


def _device(w: _Words, device_id: str | None) -> Device | None:
    if device_id is None:
        return None
    try:
        return w.home.device(device_id)
    except (KeyError, ValueError):
        return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
