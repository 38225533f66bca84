"""Types shared by adapters, the dispatcher and their callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

ActionStatus = Literal["published", "confirmed", "unconfirmed", "failed", "rejected"]


@dataclass(frozen=True, slots=True)
class Command:
    """One MQTT publish an adapter wants made."""

    topic: str
    payload: str
    qos: int = 1
    retain: bool = False
    #: A read sent after the action only to learn the result (Shelly's ``GetStatus``): not
    #: what the user asked for, so never the command an ``action`` event shows.
    follow_up: bool = False


class ActionResult(BaseModel):
    """The fate of one intent on one device. The dispatcher reports ``published`` when the broker
    acknowledged the publish (PUBACK), then exactly one final status: ``confirmed`` (the device's
    state topic showed the expected state), ``unconfirmed`` (no matching state before the
    timeout), ``failed`` (could not publish: broker unreachable, adapter error) or ``rejected``
    (policy refused it: unknown device, unsupported capability, confidence too low)."""

    device_id: str | None
    intent: str
    status: ActionStatus
    topic: str | None = None
    payload: str | None = None
    detail: str = ""
    state: dict[str, Any] | None = None
    published_at: float | None = None  # time.monotonic() of the PUBACK
    finished_at: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status != "published"


class DeviceError(Exception):
    """Base of the devices package's errors."""


class BrokerUnavailable(DeviceError):
    """The MQTT broker cannot be reached."""


class AdapterError(DeviceError):
    """An intent that a device's adapter cannot express."""


class PublishFailed(DeviceError):
    """A publish that the broker did not acknowledge in time (disconnected too long, outbox
    full, client closed). The message says whether the command may still have gone out."""
