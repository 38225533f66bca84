"""The simulator of a device configured by Home Assistant MQTT discovery keys (any kind,
robot vacuums and media players included).

Re-exported by :mod:`devices.simulators`.
"""

from __future__ import annotations

import contextlib

from devices.adapters import _common as c
from devices.adapters import homeassistant as ha
from devices.registry import DeviceKind
from devices.simulators_base import DeviceSimulator, Publish


class HomeAssistantSimulator(DeviceSimulator):
    """A device configured by HA discovery keys (``topics``/``payloads``)."""

    _COMMAND_KEYS = (
        "command_topic",
        "brightness_command_topic",
        "color_temp_command_topic",
        "rgb_command_topic",
        "set_position_topic",
        "temperature_command_topic",
        "volume_command_topic",
        "send_command_topic",
    )

    def _p(self, key: str) -> str:
        return ha._p(self.device, key)

    def command_topics(self) -> list[str]:
        return [self.device.topics[k] for k in self._COMMAND_KEYS if k in self.device.topics]

    def _publishes(self) -> list[Publish]:
        t = self.device.topics
        s = self.state
        kind = self.device.kind
        out: list[Publish] = []
        if "state_topic" in t and kind == DeviceKind.VACUUM:
            body = {"state": s["state"], "battery_level": s["battery"]}
            out.append(Publish(t["state_topic"], c.json_payload(body)))
        elif "state_topic" in t:
            if self.device.payloads.get("schema") == "json" or kind == DeviceKind.MEDIA_PLAYER:
                body = {k: v for k, v in s.items() if k != "color_temp_kelvin"}
                if kind == DeviceKind.LIGHT:
                    body["state"] = s["state"].upper()
                    body["brightness"] = c.pct_to_scale(
                        s["brightness"], int(self._p("brightness_scale"))
                    )
                out.append(Publish(t["state_topic"], c.json_payload(body)))
            elif kind == DeviceKind.SENSOR:
                out.append(Publish(t["state_topic"], f"{s['temperature']:g}"))
            else:
                key = {
                    "on": "state_on",
                    "off": "state_off",
                    "open": "state_open",
                    "closed": "state_closed",
                    "locked": "state_locked",
                    "unlocked": "state_unlocked",
                }.get(str(s.get("state")))
                if key is not None:
                    out.append(Publish(t["state_topic"], self._p(key)))
        if "brightness_state_topic" in t and "brightness" in s:
            value = c.pct_to_scale(s["brightness"], int(self._p("brightness_scale")))
            out.append(Publish(t["brightness_state_topic"], str(value)))
        if "position_topic" in t and "position" in s:
            out.append(Publish(t["position_topic"], str(s["position"])))
        if "temperature_state_topic" in t and "temperature" in s:
            out.append(Publish(t["temperature_state_topic"], f"{s['temperature']:g}"))
        if "current_temperature_topic" in t and "current_temperature" in s:
            out.append(Publish(t["current_temperature_topic"], f"{s['current_temperature']:g}"))
        if "volume_state_topic" in t and "volume" in s:
            out.append(Publish(t["volume_state_topic"], str(s["volume"])))
        return out

    def initial(self) -> list[Publish]:
        return self._publishes()

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        t = self.device.topics
        text = payload.decode("utf-8", "replace").strip()
        kind = self.device.kind
        if kind == DeviceKind.VACUUM:
            return self._vacuum_command(topic, text)
        if topic == t.get("command_topic"):
            obj = c.loads_object(payload) if self.device.payloads.get("schema") == "json" else None
            if obj is not None:
                if isinstance(obj.get("state"), str):
                    self._power(obj["state"].upper() == "ON")
                if isinstance(obj.get("brightness"), int | float):
                    scale = int(self._p("brightness_scale"))
                    self.state["brightness"] = c.scale_to_pct(obj["brightness"], scale)
            elif kind == DeviceKind.LOCK:
                if text in (self._p("payload_lock"), self._p("payload_unlock")):
                    locked = text == self._p("payload_lock")
                    self.state["state"] = "locked" if locked else "unlocked"
            elif kind == DeviceKind.COVER:
                if text == self._p("payload_open"):
                    self._position(100)
                elif text == self._p("payload_close"):
                    self._position(0)
            elif kind == DeviceKind.MEDIA_PLAYER:
                if text in (self._p("payload_play"), self._p("payload_next")):
                    self.state["state"] = "playing"
                elif text == self._p("payload_pause"):
                    self.state["state"] = "paused"
            elif text in (self._p("payload_on"), self._p("payload_off")):
                self._power(text == self._p("payload_on"))
        elif topic == t.get("brightness_command_topic"):
            with contextlib.suppress(ValueError):
                scale = int(self._p("brightness_scale"))
                self.state["brightness"] = c.scale_to_pct(float(text), scale)
                self.state["state"] = "on" if float(text) > 0 else "off"
        elif topic == t.get("color_temp_command_topic"):
            with contextlib.suppress(ValueError):
                self.state["color_temp_kelvin"] = c.mireds_to_kelvin(float(text))
        elif topic == t.get("set_position_topic"):
            with contextlib.suppress(ValueError):
                self._position(int(float(text)))
        elif topic == t.get("temperature_command_topic"):
            with contextlib.suppress(ValueError):
                self.state["temperature"] = float(text)
        elif topic == t.get("volume_command_topic"):
            with contextlib.suppress(ValueError):
                scale = int(self._p("volume_scale"))
                self.state["volume"] = c.scale_to_pct(float(text), scale)
        return self._publishes()

    def _vacuum_command(self, topic: str, text: str) -> list[Publish]:
        t = self.device.topics
        docking = False
        if topic == t.get("command_topic"):
            operations = {
                self._p("payload_start"): "START",
                self._p("payload_pause"): "PAUSE",
                self._p("payload_stop"): "STOP",
                self._p("payload_return_to_base"): "HOME",
            }
            operation = operations.get(text)
            docking = operation is not None and self._vacuum(operation) and operation == "HOME"
        elif topic == t.get("send_command_topic"):
            req = c.loads_object(text.encode())
            command = self.device.payloads.get("segment_clean_command")
            ids = req.get("segment_ids") if req is not None else None
            if req is not None and command and req.get("command") == command and (
                isinstance(ids, list) and ids
            ):
                self._vacuum("SEGMENTS", [str(i) for i in ids])
        # A Home Assistant vacuum publishes its state after every command.
        out = self._publishes()
        if docking and "state_topic" in t:
            body = {"state": "docked", "battery_level": self.state["battery"]}
            out.append(Publish(t["state_topic"], c.json_payload(body), delay_s=self.DOCKING_S,
                               epoch=self.epoch, settle={"state": "docked"}))
        return out
