"""Simulated devices that speak each adapter's MQTT conventions (demo home, tests, benchmarks).

Each simulator is a small sans-I/O state machine: ``initial()`` gives the state messages to
publish at start, ``handle(topic, payload)`` applies a command and returns the messages a real
device would publish in answer. :class:`SimulatedHome` wires them to a broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devices.adapters import _common as c
from devices.adapters import homeassistant as ha
from devices.adapters import shelly as shelly_adapter
from devices.adapters import valetudo as valetudo_adapter
from devices.mqtt import MqttClient, MqttMessage, unique_client_id
from devices.registry import AdapterName, Device, DeviceKind, HomeConfig, MqttSettings

logger = logging.getLogger(__name__)


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


SIMULATORS: dict[AdapterName, type[DeviceSimulator]] = {
    AdapterName.ZIGBEE2MQTT: Zigbee2MqttSimulator,
    AdapterName.TASMOTA: TasmotaSimulator,
    AdapterName.SHELLY: ShellySimulator,
    AdapterName.HOMEASSISTANT: HomeAssistantSimulator,
    AdapterName.VALETUDO: ValetudoSimulator,
}


class SimulatedHome:
    """Every device of ``config`` simulated on the broker at ``mqtt_url``.

    Devices in ``silent`` never publish anything (to test ``unconfirmed``); ``latency_s`` delays
    every answer. Initial states are published retained at start.
    """

    def __init__(
        self,
        config: HomeConfig,
        mqtt_url: str,
        *,
        silent: Iterable[str] = frozenset(),
        latency_s: float = 0.0,
    ) -> None:
        self.config = config
        self.silent = set(silent)
        self.latency_s = latency_s
        self.mqtt = MqttClient(mqtt_url, client_id=unique_client_id("hearth-sim"))
        self.sims: dict[str, DeviceSimulator] = {
            d.id: SIMULATORS[d.adapter](d, config.mqtt) for d in config.devices
        }
        self.commands: dict[str, int] = {d.id: 0 for d in config.devices}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Any] = []

    def state(self, device_id: str) -> dict[str, Any]:
        """The simulated device's own (normalized) state."""
        return dict(self.sims[device_id].state)

    async def start(self) -> None:
        await self.mqtt.connect()
        for device_id, sim in self.sims.items():
            if device_id in self.silent:
                continue
            for topic in sim.command_topics():
                self._unsubscribe.append(self.mqtt.subscribe(topic, self._handler(device_id, sim)))
        await asyncio.gather(
            *(
                self._publish(p)
                for device_id, sim in self.sims.items()
                if device_id not in self.silent
                for p in sim.initial()
            )
        )
        await self.mqtt.barrier()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.mqtt.close()

    def _handler(self, device_id: str, sim: DeviceSimulator) -> Any:
        def handle(msg: MqttMessage) -> None:
            self.commands[device_id] += 1
            sim.epoch += 1
            try:
                publishes = sim.handle(msg.topic, msg.payload)
            except Exception:
                logger.exception("simulator %s failed on %s", device_id, msg.topic)
                return
            task = asyncio.get_running_loop().create_task(self._answer(publishes, sim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return handle

    async def _answer(self, publishes: list[Publish], sim: DeviceSimulator) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        waited = 0.0
        for p in publishes:
            if p.delay_s > waited:
                await asyncio.sleep(p.delay_s - waited)
                waited = p.delay_s
            if p.epoch is not None and p.epoch != sim.epoch:
                continue  # another command came in meanwhile: this report is out of date
            if p.settle:
                sim.state.update(p.settle)
            await self._publish(p)

    async def _publish(self, p: Publish) -> None:
        try:
            await self.mqtt.publish(p.topic, p.payload, qos=1, retain=p.retain)
        except Exception as e:  # a simulator must not die with the broker
            logger.warning("simulator publish to %s failed: %s", p.topic, e)
