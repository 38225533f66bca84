"""The intent schema: what every recognition tier produces and the dispatcher consumes.

An :class:`Intent` is resolved: its ``slots.device_ids`` already name concrete devices of the
registry (or are empty for intents that need none, such as ``cancel``). Recognizers do the
resolution from names, aliases, areas and floors; dispatchers never guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class IntentName(StrEnum):
    """Built-in intents. Custom intents (user files) use other snake_case names."""

    LIGHT_ON = "light_on"
    LIGHT_OFF = "light_off"
    LIGHT_SET = "light_set"
    SWITCH_ON = "switch_on"
    SWITCH_OFF = "switch_off"
    CLIMATE_SET_TEMPERATURE = "climate_set_temperature"
    CLIMATE_GET_TEMPERATURE = "climate_get_temperature"
    LOCK = "lock"
    UNLOCK = "unlock"
    COVER_OPEN = "cover_open"
    COVER_CLOSE = "cover_close"
    COVER_SET_POSITION = "cover_set_position"
    FAN_ON = "fan_on"
    FAN_OFF = "fan_off"
    MEDIA_PAUSE = "media_pause"
    MEDIA_RESUME = "media_resume"
    MEDIA_NEXT = "media_next"
    MEDIA_SET_VOLUME = "media_set_volume"
    VACUUM_START = "vacuum_start"  # start cleaning (the whole map)
    VACUUM_PAUSE = "vacuum_pause"
    VACUUM_STOP = "vacuum_stop"
    VACUUM_RETURN = "vacuum_return"  # back to the dock
    VACUUM_CLEAN_AREA = "vacuum_clean_area"  # clean one room: ``slots.area``, by map segments
    SCENE_ACTIVATE = "scene_activate"
    GET_STATE = "get_state"
    CANCEL = "cancel"
    CONFIRM = "confirm"  # "yes" answering a pending confirmation of a sensitive action


#: Intents that change the physical world in a way that matters for safety wherever they
#: act. They need the higher confidence from the security config and, when configured, an
#: explicit confirmation. Opening is sensitive on a device marked ``sensitive`` (the default
#: for garage doors, doors and gates: ``devices.registry.Device``), not on blinds.
SENSITIVE_INTENTS: frozenset[str] = frozenset({IntentName.UNLOCK})
#: Intents that open something (a sensitive device's opening is a sensitive action).
OPENING_INTENTS: frozenset[str] = frozenset(
    {IntentName.UNLOCK, IntentName.COVER_OPEN, IntentName.COVER_SET_POSITION}
)

#: Intents that only read state; they never publish a command.
QUERY_INTENTS: frozenset[str] = frozenset(
    {IntentName.GET_STATE, IntentName.CLIMATE_GET_TEMPERATURE}
)

Source = Literal["grammar", "fuzzy", "custom", "context", "robust", "llm"]

SlotValue = str | int | float | bool


class Slots(BaseModel):
    """Typed slots. Every field is optional; which ones an intent uses is in docs/intents.md."""

    model_config = ConfigDict(extra="forbid")

    device_ids: list[str] = Field(default_factory=list)
    area: str | None = None  # area id from the registry (vacuum_clean_area: the room to clean)
    floor: str | None = None  # floor id from the registry
    domain: str | None = None  # device kind the user named ("light", "fan", ...)
    brightness: int | None = Field(default=None, ge=0, le=100)  # percent
    brightness_step: int | None = Field(default=None, ge=-100, le=100)  # relative percent
    color: str | None = None  # CSS colour name, e.g. "red"
    rgb: tuple[int, int, int] | None = None
    color_temp_kelvin: int | None = Field(default=None, ge=1000, le=10000)
    temperature: float | None = None  # target, in the unit below
    temperature_unit: Literal["C", "F"] | None = None
    #: relative setpoint change in ``temperature_unit`` ("turn the heat up": +1); the dispatcher
    #: makes it absolute from the device's current setpoint
    temperature_step: float | None = Field(default=None, ge=-20, le=20)
    position: int | None = Field(default=None, ge=0, le=100)  # cover percent open
    volume: int | None = Field(default=None, ge=0, le=100)
    #: relative volume change in percent ("louder": +10), made absolute by the dispatcher
    volume_step: int | None = Field(default=None, ge=-100, le=100)
    scene: str | None = None  # scene id
    custom: dict[str, SlotValue] = Field(default_factory=dict)  # slots of custom intents


class Intent(BaseModel):
    """A recognized, resolved intent with its provenance."""

    model_config = ConfigDict(extra="forbid")

    name: str
    slots: Slots = Field(default_factory=Slots)
    confidence: float = Field(ge=0.0, le=1.0)
    source: Source
    reason: str
    text: str = ""
    language: str = "en"

    @field_validator("name")
    @classmethod
    def _snake_case(cls, v: str) -> str:
        if not _SNAKE.match(v):
            raise ValueError(f"intent name must be snake_case, got {v!r}")
        return v

    @property
    def is_sensitive(self) -> bool:
        return self.name in SENSITIVE_INTENTS

    @property
    def is_query(self) -> bool:
        return self.name in QUERY_INTENTS


#: The reason given when "here" is said and the speaker's room is unknown (see
#: :attr:`Recognition.needs_area`).
ROOM_UNKNOWN = "I don't know which room you're in"


class Recognition(BaseModel):
    """What a recognizer answers: an intent, or none with the reason why."""

    intent: Intent | None
    reason: str
    alternatives: list[Intent] = Field(default_factory=list)
    #: The intent comes from a *guessed* reading of what was heard (a lower n-best
    #: hypothesis, repaired words, a grammar alignment: ``intents.decode``). Such a reading
    #: of a transcript cut at a pause may complete a sentence the speaker has not finished
    #: ("give me a double shot" → "... americano"), so it must never end a turn early.
    guessed: bool = False
    #: The guess is only that a lower n-best hypothesis was chosen: it parsed as heard (no
    #: repaired words) and has no more words than the top one, so it completes nothing the
    #: speaker has not said, and may end a turn early like the top hypothesis would.
    heard_in_n_best: bool = False
    #: Further intents of the same sentence, to run after ``intent`` ("turn off the lights and
    #: lock the door"); only the robust tier fills it.
    also: list[Intent] = Field(default_factory=list)
    #: No intent because the sentence is about the speaker's room ("it's too dark in here")
    #: and no area is known: a turn that names a room may answer it.
    needs_area: bool = False
    #: No intent because the sentence names a device or place the home lacks (this name).
    unknown_name: str | None = None
    #: No intent because the sentence says not to do it ("don't open the garage door"): no
    #: lower hypothesis, repair or search of the audio may act on it without the "not".
    negated: bool = False
    #: The reading came from a lower hypothesis in place of this name, which the top one
    #: said and the home lacks (``intents.decode``): a guess, asked back at most.
    in_place_of: str | None = None
    #: A guessed custom reading checked against the audio (``assistant.audio.acoustic_repair``):
    #: how clearly the audio picks each of its slot values over the other values of the list,
    #: the least over its slots, in nats (``intents.constrained.value_margin``; negative: the
    #: audio prefers another value somewhere). None: not checked. ``intents.evidence`` weighs it.
    audio_margin: float | None = None

    def to_cli(self) -> dict[str, object]:
        out: dict[str, object] = {
            "intent": None if self.intent is None else self.intent.model_dump(mode="json"),
            "reason": self.reason,
        }
        if self.also:
            out["also"] = [i.model_dump(mode="json") for i in self.also]
        return out


#: Slots that need a device capability (``Device.capabilities``) to make sense.
SLOT_CAPABILITY: Final[Mapping[str, str]] = {
    "brightness": "brightness",
    "brightness_step": "brightness",
    "color": "color",
    "rgb": "color",
    "color_temp_kelvin": "color_temp",
    "position": "position",
}


def lacks_capability(intent: Intent, devices: Iterable[Any]) -> bool:
    """Whether a device ``intent`` names lacks the capability one of its values needs (a
    colour for a light that has none: "turn on the kitchen white" heard for "… light").
    ``devices``: the home's (``id``, ``capabilities``); a device that lists none is taken to
    have them all, as the adapters do."""
    ids = set(intent.slots.device_ids)
    for d in devices:
        if d.id not in ids or not d.capabilities:
            continue
        for slot, capability in SLOT_CAPABILITY.items():
            if getattr(intent.slots, slot, None) is not None and capability not in d.capabilities:
                return True
    return False
