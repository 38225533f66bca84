"""Custom intents from user files (hassil template format plus an ``actions`` section).

The loader lives here; :class:`CustomAction` is the contract with ``devices.Dispatcher``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CustomAction(BaseModel):
    """What a custom intent does on MQTT. Templates use ``{slot_name}`` placeholders filled
    from the intent's ``slots.custom`` (and ``{text}`` for the utterance)."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    payload: str
    qos: int = Field(default=1, ge=0, le=2)
    retain: bool = False
    state_topic: str | None = None  # where the device confirms
    state_value: str | None = None  # template the state payload must contain to confirm
    confirm_timeout_s: float | None = Field(default=None, gt=0)
    sensitive: bool = False
