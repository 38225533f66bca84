"""Shelly Gen2 RPC over MQTT: JSON-RPC requests on ``<device id>/rpc``.

A request is ``{"id": n, "src": "hearth/<device id>", "method": "Switch.Set", "params":
{"id": <channel>, "on": true}}``; the reply goes to ``<src>/rpc``. State comes from the status
notifications on ``<device id>/status/<component>:<channel>`` (``switch``, ``light``,
``cover``) and ``<device id>/events/rpc`` (``NotifyStatus``), as Shelly publishes when
"Generic status update over MQTT" is on.
"""

from __future__ import annotations

import itertools
from typing import Any

from devices.actions import AdapterError, Command
from devices.adapters import _common as c
from devices.registry import Device, DeviceKind, MqttSettings
from intents.schema import Intent, IntentName

#: JSON-RPC request ids; only need to be unique among a client's requests in flight.
_request_ids = itertools.count(1)

REPLY_PREFIX = "hearth"


def _component(device: Device) -> str:
    if device.kind == DeviceKind.COVER:
        return "cover"
    if device.kind == DeviceKind.LIGHT and "brightness" in device.capabilities:
        return "light"
    return "switch"


def reply_topic(device: Device) -> str:
    """Where the device answers our RPC requests."""
    return f"{REPLY_PREFIX}/{device.base_topic}/rpc"


def _rpc(
    device: Device, method: str, params: dict[str, Any], *, follow_up: bool = False
) -> Command:
    body = {
        "id": next(_request_ids),
        "src": f"{REPLY_PREFIX}/{device.base_topic}",
        "method": method,
        "params": {"id": device.channel, **params},
    }
    return Command(f"{device.base_topic}/rpc", c.json_payload(body), follow_up=follow_up)


def commands_for(device: Device, intent: Intent, settings: MqttSettings) -> list[Command]:
    """The RPC that acts, then ``<Component>.GetStatus``: Shelly only notifies *changes*, so
    a command that changes nothing (already on) is confirmed by the status reply instead.
    The status request is marked ``follow_up``: the action is the command before it."""
    cmds = _action(device, intent)
    method = _component(device).capitalize() + ".GetStatus"
    return [*cmds, _rpc(device, method, {}, follow_up=True)]


def _action(device: Device, intent: Intent) -> list[Command]:
    name = intent.name
    s = intent.slots
    comp = _component(device)
    if name in c.ON_INTENTS or name in c.OFF_INTENTS:
        c.require_kind(device, intent, DeviceKind.LIGHT, DeviceKind.SWITCH, DeviceKind.FAN)
        method = "Light.Set" if comp == "light" else "Switch.Set"
        return [_rpc(device, method, {"on": name in c.ON_INTENTS})]
    if name == IntentName.LIGHT_SET:
        c.require_kind(device, intent, DeviceKind.LIGHT)
        if s.brightness == 0:
            method = "Light.Set" if comp == "light" else "Switch.Set"
            return [_rpc(device, method, {"on": False})]
        if s.brightness is None:
            raise AdapterError(f"{device.id} can only set brightness")
        if comp != "light":
            raise AdapterError(f"{device.id} has no brightness capability")
        return [_rpc(device, "Light.Set", {"on": True, "brightness": s.brightness})]
    if name in (IntentName.COVER_OPEN, IntentName.COVER_CLOSE, IntentName.COVER_SET_POSITION):
        c.require_kind(device, intent, DeviceKind.COVER)
        if name == IntentName.COVER_OPEN:
            return [_rpc(device, "Cover.Open", {})]
        if name == IntentName.COVER_CLOSE:
            return [_rpc(device, "Cover.Close", {})]
        if s.position is None:
            raise AdapterError("cover_set_position needs a position")
        return [_rpc(device, "Cover.GoToPosition", {"pos": s.position})]
    raise AdapterError(f"Shelly device {device.id} cannot {name}")


def state_topics(device: Device, settings: MqttSettings) -> list[str]:
    d = device.base_topic
    return [
        f"{d}/status/{_component(device)}:{device.channel}",
        f"{d}/events/rpc",
        reply_topic(device),
    ]


def _normalize(status: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(status.get("output"), bool):
        out["state"] = "on" if status["output"] else "off"
    if isinstance(status.get("brightness"), int | float):
        out["brightness"] = int(status["brightness"])
    if isinstance(status.get("current_pos"), int | float):
        out["position"] = int(status["current_pos"])
    cover_state = status.get("state")
    if cover_state in ("open", "closed"):
        out["state"] = cover_state
    elif isinstance(cover_state, str) and cover_state in ("opening", "closing", "stopped"):
        out["moving"] = cover_state
    for key in ("apower", "voltage", "current"):
        if isinstance(status.get(key), int | float):
            out[key] = status[key]
    return out


def parse_state(device: Device, topic: str, payload: bytes) -> dict[str, Any] | None:
    obj = c.loads_object(payload)
    if obj is None:
        return None
    key = f"{_component(device)}:{device.channel}"
    if topic.endswith(f"/status/{key}"):
        return _normalize(obj) or None
    if topic == reply_topic(device):
        # Replies to our GetStatus carry the component's status; Set replies only "was_on".
        result = obj.get("result")
        if isinstance(result, dict) and result.get("id", device.channel) == device.channel:
            return _normalize(result) or None
        return None
    if topic.endswith("/events/rpc") and obj.get("method") == "NotifyStatus":
        params = obj.get("params")
        if isinstance(params, dict) and isinstance(params.get(key), dict):
            return _normalize(params[key]) or None
    return None


confirms = c.confirms  # the generic check: the state shows what was asked
