"""The dispatcher's view of device state: a cache rebuilt from the devices' state topics, the
listeners told of changes, and the waiters a published command confirms against.

Nothing here is the only copy of anything: the state comes from (mostly retained) MQTT topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from devices.adapters import adapter_for
from devices.adapters._common import POSITION_TOLERANCE
from devices.mqtt import MessageCallback, MqttMessage
from devices.registry import Device, DeviceKind

logger = logging.getLogger(__name__)

StateListener = Callable[[str, dict[str, Any]], Awaitable[None] | None]


@dataclass(eq=False)
class Waiter:
    """A command waiting for the device state that confirms it."""

    check: Callable[[dict[str, Any]], bool]
    future: asyncio.Future[dict[str, Any]]


class DeviceStates:
    """Known device states, their change listeners and confirmation waiters."""

    def __init__(self) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._last_seen: dict[str, float] = {}
        self._waiters: dict[str, list[Waiter]] = {}
        self._listeners: list[StateListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, device_id: str) -> dict[str, Any]:
        """The known state of a device (not a copy; empty when none was seen)."""
        return self._states.get(device_id, {})

    def state(self, device_id: str) -> dict[str, Any] | None:
        """The last known normalized state of a device (a copy), or None if none was seen."""
        s = self._states.get(device_id)
        return dict(s) if s is not None else None

    def states(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._states.items()}

    def last_seen(self, device_id: str) -> float | None:
        """``time.time()`` of the device's last state message."""
        return self._last_seen.get(device_id)

    def add_listener(self, callback: StateListener) -> Callable[[], None]:
        """Call ``callback(device_id, state)`` whenever a device's state changes; returns a
        function that removes the listener."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def handler(self, device: Device) -> MessageCallback:
        """The MQTT callback for one device's state topics."""
        adapter = adapter_for(device)

        def handle(msg: MqttMessage) -> None:
            try:
                update = adapter.parse_state(device, msg.topic, msg.payload)
            except Exception:
                logger.exception("cannot parse state of %s from %s", device.id, msg.topic)
                return
            if update is None:
                return
            previous = self._states.get(device.id)
            state = merge_state(device, previous or {}, update)
            self._states[device.id] = state
            self._last_seen[device.id] = time.time()
            # Waiters see every report (a repeat of the same state still confirms a command);
            # listeners only changes.
            for w in list(self._waiters.get(device.id, ())):
                if not w.future.done() and w.check(state):
                    w.future.set_result(dict(state))
            if state != previous:
                for listener in list(self._listeners):
                    self._call(listener, device.id, dict(state))

        return handle

    def _call(self, cb: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        try:
            result = cb(*args)
        except Exception:
            logger.exception("listener failed")
            return
        if inspect.isawaitable(result):
            task: asyncio.Task[None] = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def wait_for(self, device_id: str, check: Callable[[dict[str, Any]], bool]) -> Waiter:
        """A waiter resolved by the first report of ``device_id`` that passes ``check``."""
        # Registered before publishing: the device may answer before our PUBACK arrives.
        w = Waiter(check, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(device_id, []).append(w)
        return w

    def drop(self, device_id: str, waiter: Waiter) -> None:
        waiters = self._waiters.get(device_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for waiters in self._waiters.values():
            for w in waiters:
                w.future.cancel()
        self._waiters.clear()


def merge_state(device: Device, previous: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A device's state after one report. A cover's named state and its position may come in
    separate messages (HA ``state_topic`` and ``position_topic``): a known value the report
    contradicts is dropped rather than kept stale (never "closed" at position 100)."""
    state = {**previous, **update}
    if device.kind != DeviceKind.COVER:
        return state
    named, position = state.get("state"), state.get("position")
    if isinstance(position, int | float) and named in ("open", "closed"):
        if (named == "closed") != (position <= POSITION_TOLERANCE):
            del state["state" if "state" not in update else "position"]
    if "state" in update and "moving" not in update:
        state.pop("moving", None)  # a Shelly cover that reports open/closed has stopped
    return state


__all__ = ["DeviceStates", "StateListener", "Waiter", "merge_state"]
