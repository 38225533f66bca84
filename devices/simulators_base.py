"""What every simulator shares: the :class:`Publish` it answers with, the state a simulated
device starts in, and :class:`DeviceSimulator` (the contract and the shared state transitions:
power, cover position, a robot vacuum's operations).

Re-exported by :mod:`devices.simulators`, which wires the simulators to a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devices.registry import Device, DeviceKind, MqttSettings


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: str
    retain: bool = True
    #: Published this long after the others (a robot reaching its dock); dropped when the
    #: simulator handled another command in the meantime (``epoch`` is its command count).
    delay_s: float = 0.0
    epoch: int | None = None
    #: Normalized state the simulator takes on when this (delayed) report goes out.
    settle: dict[str, Any] | None = None


def initial_state(device: Device) -> dict[str, Any]:
    """What a simulated device reports before anyone touches it (normalized)."""
    kind = device.kind
    if kind == DeviceKind.LIGHT:
        return {"state": "off", "brightness": 50, "color_temp_kelvin": 3003}
    if kind in (DeviceKind.SWITCH, DeviceKind.FAN):
        return {"state": "off"}
    if kind == DeviceKind.LOCK:
        return {"state": "locked"}
    if kind == DeviceKind.COVER:
        return {"state": "closed", "position": 0}
    if kind == DeviceKind.CLIMATE:
        return {"temperature": 20.0, "current_temperature": 19.5}
    if kind == DeviceKind.MEDIA_PLAYER:
        return {"state": "paused", "volume": 30}
    if kind == DeviceKind.VACUUM:
        return {"state": "docked", "battery": 100, "status_detail": "none"}
    return {"temperature": 21.5, "current_temperature": 21.5, "humidity": 40}


class DeviceSimulator:
    """Base: normalized state plus the conventions of one adapter."""

    def __init__(self, device: Device, settings: MqttSettings) -> None:
        self.device = device
        self.settings = settings
        self.state = initial_state(device)
        self.epoch = 0  # commands handled (SimulatedHome counts them)

    def command_topics(self) -> list[str]:
        raise NotImplementedError

    def initial(self) -> list[Publish]:
        raise NotImplementedError

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        raise NotImplementedError

    # Shared state transitions, in normalized units.
    def _power(self, on: bool | None) -> None:
        if on is None:  # toggle
            on = self.state.get("state") != "on"
        self.state["state"] = "on" if on else "off"

    def _position(self, pos: int) -> None:
        self.state["position"] = max(0, min(100, pos))
        self.state["state"] = "closed" if self.state["position"] == 0 else "open"

    #: Seconds a simulated robot vacuum takes to reach its dock.
    DOCKING_S = 1.5

    def _vacuum(self, operation: str, segments: list[str] | None = None) -> bool:
        """A robot vacuum's transition (Valetudo's operations: START, PAUSE, STOP, HOME, or
        SEGMENTS with ``segments``); False when the command changes nothing."""
        s = self.state
        now = s["state"]
        if operation in ("START", "SEGMENTS"):
            s["state"], s["status_detail"] = "cleaning", "none"
            if operation == "SEGMENTS":
                s["status_detail"] = "segment"
                s["segments"] = list(segments or [])
            else:
                s.pop("segments", None)
        elif operation == "PAUSE":
            if now not in ("cleaning", "returning"):
                return False
            s["state"], s["status_detail"] = "paused", "resumable"
        elif operation == "STOP":
            if now == "docked":
                return False
            s["state"], s["status_detail"] = "idle", "none"
        elif operation == "HOME":
            if now == "docked":
                return False
            s["state"], s["status_detail"] = "returning", "none"
        else:
            return False
        return True
