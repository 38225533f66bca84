"""Simulators of devices that speak their own firmware's (or bridge's) MQTT API: zigbee2mqtt,
Tasmota, Shelly (Gen2 RPC) and Valetudo (robot vacuums).

Re-exported by :mod:`devices.simulators`.
"""

from __future__ import annotations

import logging
from typing import Any

from devices.adapters import _common as c
from devices.adapters import shelly as shelly_adapter
from devices.adapters import valetudo as valetudo_adapter
from devices.registry import DeviceKind
from devices.simulators_base import DeviceSimulator, Publish

logger = logging.getLogger("devices.simulators")


class Zigbee2MqttSimulator(DeviceSimulator):
    def _base(self) -> str:
        return f"{self.settings.zigbee2mqtt_base}/{self.device.base_topic}"

    def command_topics(self) -> list[str]:
        return [f"{self._base()}/set", f"{self._base()}/get"]

    def _render(self) -> Publish:
        s = self.state
        kind = self.device.kind
        body: dict[str, Any]
        if kind == DeviceKind.LOCK:
            locked = s["state"] == "locked"
            body = {"state": "LOCK" if locked else "UNLOCK", "lock_state": s["state"]}
        elif kind == DeviceKind.COVER:
            body = {"state": "OPEN" if s["state"] == "open" else "CLOSE", "position": s["position"]}
        elif kind == DeviceKind.CLIMATE:
            body = {
                "occupied_heating_setpoint": s["temperature"],
                "local_temperature": s["current_temperature"],
                "system_mode": "heat",
            }
        elif kind == DeviceKind.SENSOR:
            body = {"temperature": s["temperature"], "humidity": s.get("humidity"), "battery": 97}
        else:
            body = {"state": s["state"].upper()}
            if kind == DeviceKind.LIGHT:
                body["brightness"] = c.pct_to_scale(s["brightness"], 254)
                body["color_temp"] = c.kelvin_to_mireds(s["color_temp_kelvin"])
                if "rgb" in s:
                    r, g, b = s["rgb"]
                    body["color"] = {"r": r, "g": g, "b": b}
        return Publish(self._base(), c.json_payload(body))

    def initial(self) -> list[Publish]:
        return [self._render()]

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        if topic.endswith("/get"):
            return [self._render()]
        obj = c.loads_object(payload)
        if obj is None:
            return []
        st = obj.get("state")
        if isinstance(st, str):
            st = st.upper()
            if st in ("LOCK", "UNLOCK"):
                self.state["state"] = "locked" if st == "LOCK" else "unlocked"
            elif st in ("OPEN", "CLOSE"):
                self._position(100 if st == "OPEN" else 0)
            elif st in ("ON", "OFF", "TOGGLE"):
                self._power(None if st == "TOGGLE" else st == "ON")
        if isinstance(obj.get("brightness"), int | float):
            self.state["brightness"] = c.scale_to_pct(obj["brightness"], 254)
            self.state["state"] = "on" if obj["brightness"] > 0 else "off"
        if isinstance(obj.get("brightness_step"), int | float):
            cur = c.pct_to_scale(self.state.get("brightness", 0), 254)
            new = max(0, min(254, cur + int(obj["brightness_step"])))
            self.state["brightness"] = c.scale_to_pct(new, 254)
            self.state["state"] = "on" if new > 0 else "off"
        if isinstance(obj.get("color_temp"), int | float):
            self.state["color_temp_kelvin"] = c.mireds_to_kelvin(obj["color_temp"])
        color = obj.get("color")
        if isinstance(color, dict) and all(k in color for k in "rgb"):
            self.state["rgb"] = [color["r"], color["g"], color["b"]]
        if isinstance(obj.get("position"), int | float):
            self._position(int(obj["position"]))
        if isinstance(obj.get("occupied_heating_setpoint"), int | float):
            self.state["temperature"] = float(obj["occupied_heating_setpoint"])
        return [self._render()]


class TasmotaSimulator(DeviceSimulator):
    def _key(self) -> str:
        return "POWER" if self.device.channel == 0 else f"POWER{self.device.channel}"

    def command_topics(self) -> list[str]:
        return [f"cmnd/{self.device.base_topic}/+"]

    def _result(self) -> dict[str, Any]:
        s = self.state
        if self.device.kind == DeviceKind.COVER:
            n = max(1, self.device.channel)
            return {f"Shutter{n}": {"Position": s["position"], "Direction": 0, "Target": 0}}
        out: dict[str, Any] = {self._key(): s["state"].upper()}
        if self.device.kind == DeviceKind.LIGHT:
            out["Dimmer"] = s["brightness"]
            out["CT"] = c.kelvin_to_mireds(s["color_temp_kelvin"])
        return out

    def _publishes(self, result: dict[str, Any]) -> list[Publish]:
        t = self.device.base_topic
        out = [Publish(f"stat/{t}/RESULT", c.json_payload(result))]
        if self._key() in result:
            out.append(Publish(f"stat/{t}/{self._key()}", result[self._key()]))
        return out

    def initial(self) -> list[Publish]:
        return self._publishes(self._result())

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        cmd = topic.rsplit("/", 1)[-1].lower()
        arg = payload.decode("utf-8", "replace").strip()
        up = arg.upper()
        if cmd == self._key().lower() or (cmd == "power" and self.device.channel <= 1):
            if up in ("ON", "1", "OFF", "0", "TOGGLE", "2"):
                self._power(None if up in ("TOGGLE", "2") else up in ("ON", "1"))
            return self._publishes({self._key(): self.state["state"].upper()})
        if cmd == "dimmer" and arg.isdigit():
            self.state["brightness"] = max(0, min(100, int(arg)))
            self.state["state"] = "on" if self.state["brightness"] > 0 else "off"
        elif cmd == "ct" and arg.isdigit():
            self.state["color_temp_kelvin"] = c.mireds_to_kelvin(int(arg))
        elif cmd == "color":
            parts = arg.split(",")
            if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
                self.state["rgb"] = [int(p) for p in parts]
                self.state["state"] = "on"
        elif cmd.startswith("shutteropen"):
            self._position(100)
        elif cmd.startswith("shutterclose"):
            self._position(0)
        elif cmd.startswith("shutterposition") and arg.isdigit():
            self._position(int(arg))
        else:
            return [
                Publish(
                    f"stat/{self.device.base_topic}/RESULT",
                    c.json_payload({"Command": "Unknown"}),
                    retain=False,
                )
            ]
        return self._publishes(self._result())


class ShellySimulator(DeviceSimulator):
    def _component(self) -> str:
        return shelly_adapter.state_topics(self.device, self.settings)[0].rsplit("/", 1)[-1]

    def command_topics(self) -> list[str]:
        return [f"{self.device.base_topic}/rpc"]

    def _status(self) -> dict[str, Any]:
        s = self.state
        status: dict[str, Any] = {"id": self.device.channel, "source": "MQTT"}
        if self.device.kind == DeviceKind.COVER:
            status["state"] = s["state"]
            status["current_pos"] = s["position"]
        else:
            status["output"] = s["state"] == "on"
            status["apower"] = 42.0 if s["state"] == "on" else 0.0
            if self._component().startswith("light"):
                status["brightness"] = s.get("brightness", 100)
        return status

    def _status_publish(self) -> Publish:
        d = self.device.base_topic
        return Publish(f"{d}/status/{self._component()}", c.json_payload(self._status()))

    def initial(self) -> list[Publish]:
        return [self._status_publish()]

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        req = c.loads_object(payload)
        if req is None or not isinstance(req.get("src"), str):
            return []
        method = req.get("method")
        params = req.get("params") if isinstance(req.get("params"), dict) else {}
        assert isinstance(params, dict)
        was_on = self.state.get("state") == "on"
        before = self._status()
        result: dict[str, Any] | None = {"was_on": was_on}
        if method in ("Switch.Set", "Light.Set") and isinstance(params.get("on"), bool):
            self._power(params["on"])
            if isinstance(params.get("brightness"), int | float):
                self.state["brightness"] = int(params["brightness"])
        elif method in ("Switch.Toggle", "Light.Toggle"):
            self._power(None)
        elif method == "Cover.Open":
            self._position(100)
            result = None
        elif method == "Cover.Close":
            self._position(0)
            result = None
        elif method == "Cover.GoToPosition" and isinstance(params.get("pos"), int):
            self._position(params["pos"])
            result = None
        elif method in ("Switch.GetStatus", "Cover.GetStatus", "Light.GetStatus"):
            result = self._status()
        else:
            error = {"code": -114, "message": f"Method {method} failed: No handler"}
            reply = {
                "id": req.get("id"),
                "src": self.device.base_topic,
                "dst": req["src"],
                "error": error,
            }
            return [Publish(f"{req['src']}/rpc", c.json_payload(reply), retain=False)]
        reply = {
            "id": req.get("id"),
            "src": self.device.base_topic,
            "dst": req["src"],
            "result": result,
        }
        out = [Publish(f"{req['src']}/rpc", c.json_payload(reply), retain=False)]
        # Like a real Shelly: status notifications only when something changed.
        if self._status() != before:
            out.append(self._status_publish())
        return out

class ValetudoSimulator(DeviceSimulator):
    """A robot vacuum running Valetudo: BasicControlCapability and MapSegmentationCapability
    commands, StatusStateAttribute and BatteryStateAttribute state. Its map segments are those of
    ``device.segments``; an unknown segment id is refused (nothing published), as Valetudo does.
    A robot sent home reports ``returning``, then ``docked`` :attr:`DOCKING_S` later."""

    def _base(self) -> str:
        return valetudo_adapter.base(self.device, self.settings)

    def command_topics(self) -> list[str]:
        b = self._base()
        return [f"{b}/BasicControlCapability/operation/set",
                f"{b}/MapSegmentationCapability/clean/set"]

    def _status(self, state: dict[str, Any] | None = None, **kw: Any) -> list[Publish]:
        b = self._base()
        s = state or self.state
        return [
            Publish(f"{b}/StatusStateAttribute/status", s["state"], **kw),
            Publish(f"{b}/StatusStateAttribute/detail", s["status_detail"], **kw),
        ]

    def initial(self) -> list[Publish]:
        return [*self._status(),
                Publish(f"{self._base()}/BatteryStateAttribute/level", str(self.state["battery"]))]

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        text = payload.decode("utf-8", "replace").strip()
        if topic.endswith("/BasicControlCapability/operation/set"):
            operation = text.upper()
            if not self._vacuum(operation):
                return []  # Valetudo publishes a property only when it changes
            if operation == "HOME":
                docked = {"state": "docked", "status_detail": "none"}
                return [*self._status(), *self._status(
                    docked, delay_s=self.DOCKING_S, epoch=self.epoch, settle=docked)]
            return self._status()
        if topic.endswith("/MapSegmentationCapability/clean/set"):
            req = c.loads_object(payload)
            known = {str(i) for ids in self.device.segments.values() for i in ids}
            wanted = req.get("segment_ids") if req is not None else None
            if not isinstance(wanted, list) or not wanted or any(
                str(i) not in known for i in wanted
            ):
                logger.warning("%s: segment ids not on the map: %s", self.device.id, text)
                return []
            self._vacuum("SEGMENTS", [str(i) for i in wanted])
            return self._status()
        return []
