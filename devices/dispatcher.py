"""The dispatcher: policy, then intent -> adapter commands -> QoS 1 publish -> confirmation.

Every action ends in exactly one final :class:`ActionResult` (``confirmed``, ``unconfirmed``,
``failed`` or ``rejected``), preceded by ``published`` when something was published. Device
state is rebuilt from the devices' (mostly retained) state topics, so another replica sharing
the broker sees the same state; nothing here is the only copy of anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices.actions import (
    ActionResult,
    ActionStatus,
    AdapterError,
    BrokerUnavailable,
    Command,
    PublishFailed,
)
from devices.adapters import adapter_for
from devices.adapters._common import POSITION_TOLERANCE
from devices.mqtt import MessageCallback, MqttMessage
from devices.registry import Device, DeviceKind, HomeConfig
from intents.custom import CustomAction
from intents.schema import SENSITIVE_INTENTS, Intent, IntentName, Slots

logger = logging.getLogger(__name__)

ResultCallback = Callable[[ActionResult], Awaitable[None] | None]
StateListener = Callable[[str, dict[str, Any]], Awaitable[None] | None]

#: Intents that open something; on a device marked ``sensitive`` they need the higher confidence.
OPENING_INTENTS: frozenset[str] = frozenset(
    {IntentName.UNLOCK, IntentName.COVER_OPEN, IntentName.COVER_SET_POSITION}
)
#: Intents that act on nothing.
NO_OP_INTENTS: frozenset[str] = frozenset({IntentName.CANCEL, IntentName.CONFIRM})
#: Detail of the rejection that asks for a "yes" (``extra["needs_confirmation"]`` is True).
NEEDS_CONFIRMATION = "sensitive action needs an explicit confirmation"
_BUILTIN: frozenset[str] = frozenset(i.value for i in IntentName)
#: The lowest brightness (%) a relative dimming goes to: "dim" never turns a light off.
MIN_DIM_BRIGHTNESS = 1
#: A relative setpoint step stays within what household thermostats accept (degrees Celsius).
SETPOINT_MIN_C = 5.0
SETPOINT_MAX_C = 35.0


class Publisher(Protocol):
    """What the dispatcher needs of an MQTT client (``devices.mqtt.MqttClient`` fits)."""

    async def publish(
        self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False
    ) -> float: ...

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Callable[[], None]: ...

    async def barrier(self, timeout: float | None = None) -> None: ...  # noqa: ASYNC109


@dataclass(eq=False)
class _Waiter:
    check: Callable[[dict[str, Any]], bool]
    future: asyncio.Future[dict[str, Any]]


@dataclass
class _CustomTarget:
    """A subscription for a custom action's state topic and the waiters on it."""

    last: bytes | None = None
    waiters: list[tuple[str, asyncio.Future[bytes]]] = field(default_factory=list)


class Dispatcher:
    """Carries out intents on the devices of ``config`` through ``mqtt``."""

    def __init__(
        self,
        config: HomeConfig,
        mqtt: Publisher,
        *,
        custom_actions: Mapping[str, CustomAction] | None = None,
    ) -> None:
        self.config = config
        self.mqtt = mqtt
        self.custom_actions: dict[str, CustomAction] = dict(custom_actions or {})
        self._devices: dict[str, Device] = {d.id: d for d in config.devices}
        self._scenes = {s.id: s for s in config.scenes}
        self._states: dict[str, dict[str, Any]] = {}
        self._last_seen: dict[str, float] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._listeners: list[StateListener] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._custom_topics: dict[str, _CustomTarget] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, wait_for_retained: float | None = 2.0) -> None:
        """Subscribe to every device's state topics; with ``wait_for_retained`` (seconds,
        None to skip), return once the broker has delivered the retained states. Calling it
        again does nothing."""
        if self._unsubscribe:
            return
        for device in self.config.devices:
            adapter = adapter_for(device)
            for topic in adapter.state_topics(device, self.config.mqtt):
                self._unsubscribe.append(self.mqtt.subscribe(topic, self._state_handler(device)))
        for action in self.custom_actions.values():
            if action.state_topic and "{" not in action.state_topic:
                self._watch_custom(action.state_topic)
        if wait_for_retained is not None:
            try:
                await self.mqtt.barrier(wait_for_retained)
            except PublishFailed as e:
                logger.warning("state topics subscribed, retained states not confirmed: %s", e)

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for task in list(self._tasks):
            task.cancel()
        for waiters in self._waiters.values():
            for w in waiters:
                w.future.cancel()
        self._waiters.clear()

    # -- state ---------------------------------------------------------------------------

    def state(self, device_id: str) -> dict[str, Any] | None:
        """The last known normalized state of a device (a copy), or None if none was seen."""
        s = self._states.get(device_id)
        return dict(s) if s is not None else None

    def states(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._states.items()}

    def last_seen(self, device_id: str) -> float | None:
        """``time.time()`` of the device's last state message."""
        return self._last_seen.get(device_id)

    def add_state_listener(self, callback: StateListener) -> Callable[[], None]:
        """Call ``callback(device_id, state)`` whenever a device's state changes (not on
        repeated identical reports); returns a function that removes the listener."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def _state_handler(self, device: Device) -> MessageCallback:
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
            state = _merge(device, previous or {}, update)
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

    # -- policy --------------------------------------------------------------------------

    def is_sensitive(self, intent: Intent, device: Device | None = None) -> bool:
        """Sensitive: a sensitive intent, an opening of a device marked sensitive, or a custom
        action marked sensitive."""
        if intent.name in SENSITIVE_INTENTS:
            return True
        custom = self.custom_actions.get(intent.name)
        if custom is not None and custom.sensitive:
            return True
        devices = (
            [device]
            if device is not None
            else [self._devices[d] for d in intent.slots.device_ids if d in self._devices]
        )
        return any(d.sensitive and self._opens(intent, d) for d in devices)

    @staticmethod
    def _opens(intent: Intent, device: Device) -> bool:
        if intent.name == IntentName.COVER_SET_POSITION:
            return (intent.slots.position or 0) > 0
        return intent.name in OPENING_INTENTS

    def requires_confirmation(self, intent: Intent) -> bool:
        """Whether the security config wants a spoken/sent "yes" before this intent runs."""
        if not self.config.security.require_confirmation:
            return False
        return self.is_sensitive(intent) or any(
            self.is_sensitive(i) for i in self._scene_intents(intent)
        )

    def _policy(self, intent: Intent, sensitive: bool, confirmed: bool) -> str | None:
        sec = self.config.security
        if intent.confidence < sec.min_confidence:
            return (
                f"confidence {intent.confidence:.2f} is below the minimum {sec.min_confidence:.2f}"
            )
        if sensitive and intent.confidence < sec.sensitive_min_confidence:
            return (
                f"sensitive action needs confidence {sec.sensitive_min_confidence:.2f}, "
                f"got {intent.confidence:.2f}"
            )
        if sensitive and sec.require_confirmation and not confirmed:
            return NEEDS_CONFIRMATION
        return None

    # -- dispatch ------------------------------------------------------------------------

    async def dispatch(
        self,
        intent: Intent,
        *,
        on_result: ResultCallback | None = None,
        confirmed: bool = False,
    ) -> list[ActionResult]:
        """Carry out ``intent``; returns the final result of every device action.

        ``on_result`` receives every result as it happens (``published``, then the final one).
        ``confirmed=True`` says the user confirmed a sensitive action (see
        :meth:`requires_confirmation`)."""
        emit = _Emitter(on_result)
        name = intent.name
        if name in NO_OP_INTENTS:
            return []
        if name == IntentName.SCENE_ACTIVATE:
            return await self._scene(intent, emit, confirmed)
        if name in self.custom_actions:
            return [await self._custom(intent, self.custom_actions[name], emit, confirmed)]
        if name not in _BUILTIN:
            return [
                await emit.final(self._result(None, intent, "rejected", f"unknown intent {name!r}"))
            ]
        if not intent.slots.device_ids:
            return [
                await emit.final(
                    self._result(None, intent, "rejected", "the intent names no device")
                )
            ]
        device_ids = list(dict.fromkeys(intent.slots.device_ids))  # once per device
        jobs = [self._one(intent, device_id, emit, confirmed) for device_id in device_ids]
        return list(await asyncio.gather(*jobs))

    def _scene_intents(self, intent: Intent) -> list[Intent]:
        if intent.name != IntentName.SCENE_ACTIVATE or intent.slots.scene not in self._scenes:
            return []
        scene = self._scenes[intent.slots.scene]
        out: list[Intent] = []
        for device_id, action in scene.actions.items():
            params = dict(action)
            action_name = str(params.pop("name"))
            slots = Slots.model_validate({**params, "device_ids": [device_id]})
            out.append(
                Intent(
                    name=action_name,
                    slots=slots,
                    confidence=intent.confidence,
                    source=intent.source,
                    reason=f"scene {scene.id}",
                    text=intent.text,
                    language=intent.language,
                )
            )
        return out

    async def _scene(self, intent: Intent, emit: _Emitter, confirmed: bool) -> list[ActionResult]:
        scene_id = intent.slots.scene
        if scene_id is None or scene_id not in self._scenes:
            return [
                await emit.final(
                    self._result(None, intent, "rejected", f"unknown scene {scene_id!r}")
                )
            ]
        try:
            expanded = self._scene_intents(intent)
        except (ValueError, KeyError) as e:
            return [
                await emit.final(
                    self._result(None, intent, "rejected", f"scene {scene_id} is invalid: {e}")
                )
            ]
        jobs = [
            self._one(i, i.slots.device_ids[0], emit, confirmed, scene=scene_id) for i in expanded
        ]
        return list(await asyncio.gather(*jobs))

    def _result(
        self,
        device_id: str | None,
        intent: Intent,
        status: ActionStatus,
        detail: str = "",
        **kw: Any,
    ) -> ActionResult:
        return ActionResult(
            device_id=device_id,
            intent=intent.name,
            status=status,
            detail=detail,
            finished_at=time.monotonic(),
            **kw,
        )

    async def _one(
        self,
        intent: Intent,
        device_id: str,
        emit: _Emitter,
        confirmed: bool,
        scene: str | None = None,
    ) -> ActionResult:
        extra: dict[str, Any] = {"scene": scene} if scene else {}
        device = self._devices.get(device_id)
        if device is None:
            return await emit.final(
                self._result(
                    device_id, intent, "rejected", f"unknown device {device_id!r}", extra=extra
                )
            )
        sensitive = self.is_sensitive(intent, device)
        refusal = self._policy(intent, sensitive, confirmed)
        if refusal is not None:
            if sensitive:
                extra["sensitive"] = True
                extra["needs_confirmation"] = refusal == NEEDS_CONFIRMATION
            return await emit.final(
                self._result(device_id, intent, "rejected", refusal, extra=extra)
            )
        if intent.name in (IntentName.GET_STATE, IntentName.CLIMATE_GET_TEMPERATURE):
            return await emit.final(self._query(intent, device, extra))
        adapter = adapter_for(device)
        nothing = self._nothing_to_do(intent, device)
        if nothing is not None:
            extra["noop"] = True
            return await emit.final(
                self._result(
                    device_id, intent, "rejected", nothing, state=self.state(device.id),
                    extra=extra,
                )
            )
        intent = self._absolute(intent, device)
        relative = self._relative(intent, device)
        if isinstance(relative, str):
            return await emit.final(
                self._result(
                    device_id, intent, "rejected", relative, state=self.state(device.id),
                    extra=extra,
                )
            )
        intent = relative
        try:
            commands = adapter.commands_for(device, intent, self.config.mqtt)
        except AdapterError as e:
            return await emit.final(
                self._result(device_id, intent, "rejected", str(e), extra=extra)
            )
        if len(commands) > 1:
            extra["commands"] = [{"topic": c.topic, "payload": c.payload} for c in commands]
        timeout = device.confirm_timeout_s or self.config.mqtt.confirm_timeout_s
        waiter = self._wait_state(device.id, lambda s: adapter.confirms(device, intent, s))
        try:
            published_at = await self._publish_all(commands)
        except (PublishFailed, BrokerUnavailable) as e:
            self._drop_waiter(device.id, waiter)
            return await emit.final(
                self._result(
                    device_id, intent, "failed", str(e), **_topic_payload(commands), extra=extra
                )
            )
        except BaseException:
            self._drop_waiter(device.id, waiter)
            raise
        base: dict[str, Any] = {
            **_topic_payload(commands),
            "published_at": published_at,
            "extra": extra,
        }
        await emit.send(
            ActionResult(device_id=device_id, intent=intent.name, status="published", **base)
        )
        try:
            state = await asyncio.wait_for(waiter.future, timeout)
        except TimeoutError:
            return await emit.final(
                self._result(
                    device_id,
                    intent,
                    "unconfirmed",
                    f"no matching state from {device.id} within {timeout:g} s",
                    state=self.state(device.id),
                    **base,
                )
            )
        finally:
            self._drop_waiter(device.id, waiter)
        return await emit.final(self._result(device_id, intent, "confirmed", state=state, **base))

    def _query(self, intent: Intent, device: Device, extra: dict[str, Any]) -> ActionResult:
        state = self.state(device.id)
        if intent.name == IntentName.CLIMATE_GET_TEMPERATURE and device.kind not in (
            DeviceKind.CLIMATE,
            DeviceKind.SENSOR,
        ):
            return self._result(
                device.id,
                intent,
                "rejected",
                f"{device.id} does not measure temperature",
                extra=extra,
            )
        if state is None:
            return self._result(
                device.id,
                intent,
                "unconfirmed",
                f"no state received from {device.id} yet",
                extra=extra,
            )
        seen = self._last_seen.get(device.id)
        if seen is not None:
            extra = {**extra, "age_s": round(time.time() - seen, 3)}
        return self._result(device.id, intent, "confirmed", state=state, extra=extra)

    @staticmethod
    def _is_step(intent: Intent) -> bool:
        s = intent.slots
        return (
            intent.name == IntentName.LIGHT_SET
            and s.brightness_step is not None
            and not s.brightness
        )

    def _nothing_to_do(self, intent: Intent, device: Device) -> str | None:
        """Why a relative dimming cannot do anything, or None: a light known to be off is not
        dimmed (dimming never turns a light off or on), nor one already at its lowest. Likewise
        a robot vacuum asked for the state it is known to be in (it would report nothing)."""
        if device.kind == DeviceKind.VACUUM:
            return _vacuum_noop(intent.name, device, self._states.get(device.id, {}))
        if not self._is_step(intent) or (intent.slots.brightness_step or 0) >= 0:
            return None
        state = self._states.get(device.id, {})
        if state.get("state") == "off":
            return f"the {device.name} is off"
        current = state.get("brightness")
        if isinstance(current, int | float) and current <= MIN_DIM_BRIGHTNESS:
            return f"the {device.name} is already at its lowest brightness"
        return None

    def _absolute(self, intent: Intent, device: Device) -> Intent:
        """Turn a relative brightness step into an absolute brightness when the current one is
        known (adapters are pure and cannot know it). A brighter step on a light that is off
        turns it on at the step's level; a dimmer step stops at ``MIN_DIM_BRIGHTNESS``.

        A light-on said as "light up" / "brighten up" (:func:`light_up_step`) is that step when
        the light is known to be on at a known brightness, else a plain light-on."""
        s = intent.slots
        up = light_up_step(intent)
        if up is not None:
            state = self._states.get(device.id, {})
            now = state.get("brightness")
            if state.get("state") == "on" and isinstance(now, int | float):
                bright = max(MIN_DIM_BRIGHTNESS, min(100, round(now + up)))
                slots = s.model_copy(update={"brightness": bright, "brightness_step": None})
                return intent.model_copy(update={"name": IntentName.LIGHT_SET, "slots": slots})
            return intent
        if not self._is_step(intent) or s.brightness_step is None:
            return intent
        step = s.brightness_step
        state = self._states.get(device.id, {})
        current = state.get("brightness")
        if state.get("state") == "off" and step > 0:
            current = 0
        elif not isinstance(current, int | float):
            return intent
        target = max(MIN_DIM_BRIGHTNESS, min(100, round(current + step)))
        slots = s.model_copy(update={"brightness": target, "brightness_step": None})
        return intent.model_copy(update={"slots": slots})

    def _relative(self, intent: Intent, device: Device) -> Intent | str:
        """A setpoint or volume step ("turn the heat up", "louder") made absolute from the
        device's current state, clamped; or why it cannot be: the current value is unknown."""
        s = intent.slots
        state = self._states.get(device.id, {})
        if intent.name == IntentName.CLIMATE_SET_TEMPERATURE and s.temperature is None \
                and s.temperature_step is not None:
            current = state.get("temperature")
            if not isinstance(current, int | float):
                return (f"I don't know the {device.name}'s current setpoint yet, so I can't "
                        "change it by a step; say a temperature")
            step = s.temperature_step * (5 / 9 if s.temperature_unit == "F" else 1)
            target = max(SETPOINT_MIN_C, min(SETPOINT_MAX_C, round((current + step) * 2) / 2))
            slots = s.model_copy(update={"temperature": target, "temperature_unit": "C",
                                         "temperature_step": None})
            return intent.model_copy(update={"slots": slots})
        if intent.name == IntentName.MEDIA_SET_VOLUME and s.volume is None \
                and s.volume_step is not None:
            current = state.get("volume")
            if not isinstance(current, int | float):
                return (f"I don't know the {device.name}'s current volume yet, so I can't "
                        "change it by a step; say a level, such as 'volume 30'")
            target_v = max(0, min(100, round(current + s.volume_step)))
            slots = s.model_copy(update={"volume": target_v, "volume_step": None})
            return intent.model_copy(update={"slots": slots})
        return intent

    async def _publish_all(self, commands: Iterable[Command]) -> float:
        published_at = 0.0
        for cmd in commands:
            published_at = await self.mqtt.publish(cmd.topic, cmd.payload, cmd.qos, cmd.retain)
        return published_at

    def _wait_state(self, device_id: str, check: Callable[[dict[str, Any]], bool]) -> _Waiter:
        # Registered before publishing: the device may answer before our PUBACK arrives.
        w = _Waiter(check, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(device_id, []).append(w)
        return w

    def _drop_waiter(self, device_id: str, waiter: _Waiter) -> None:
        waiters = self._waiters.get(device_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    # -- custom intents ------------------------------------------------------------------

    def _watch_custom(self, topic: str) -> _CustomTarget:
        target = self._custom_topics.get(topic)
        if target is None:
            target = self._custom_topics[topic] = _CustomTarget()

            def handle(msg: MqttMessage, t: _CustomTarget = target) -> None:
                t.last = msg.payload
                text = msg.payload.decode("utf-8", "replace")
                for want, fut in list(t.waiters):
                    if not fut.done() and want in text:
                        fut.set_result(msg.payload)

            self._unsubscribe.append(self.mqtt.subscribe(topic, handle))
        return target

    async def _custom(
        self, intent: Intent, action: CustomAction, emit: _Emitter, confirmed: bool
    ) -> ActionResult:
        extra: dict[str, Any] = {"custom": True}
        sensitive = self.is_sensitive(intent)
        refusal = self._policy(intent, sensitive, confirmed)
        if refusal is not None:
            if sensitive:
                extra["sensitive"] = True
                extra["needs_confirmation"] = refusal == NEEDS_CONFIRMATION
            return await emit.final(self._result(None, intent, "rejected", refusal, extra=extra))
        values: dict[str, Any] = {**intent.slots.custom, "text": intent.text}
        try:
            topic = _fill_topic(action.topic, values)
            payload = _fill(action.payload, values, json_escape=_looks_json(action.payload))
            state_topic = _fill_topic(action.state_topic, values) if action.state_topic else None
            state_value = _fill(action.state_value, values) if action.state_value else None
        except ValueError as e:
            return await emit.final(self._result(None, intent, "rejected", str(e), extra=extra))
        except KeyError as e:
            return await emit.final(
                self._result(
                    None, intent, "rejected", f"custom action needs slot {e.args[0]!r}", extra=extra
                )
            )
        fut: asyncio.Future[bytes] | None = None
        target: _CustomTarget | None = None
        if state_topic is not None:
            target = self._watch_custom(state_topic)
            fut = asyncio.get_running_loop().create_future()
            target.waiters.append((state_value or "", fut))
        try:
            try:
                published_at = await self.mqtt.publish(topic, payload, action.qos, action.retain)
            except (PublishFailed, BrokerUnavailable) as e:
                return await emit.final(
                    self._result(
                        None, intent, "failed", str(e), topic=topic, payload=payload, extra=extra
                    )
                )
            base: dict[str, Any] = {
                "topic": topic,
                "payload": payload,
                "published_at": published_at,
                "extra": extra,
            }
            await emit.send(
                ActionResult(device_id=None, intent=intent.name, status="published", **base)
            )
            if fut is None:
                return await emit.final(
                    self._result(
                        None, intent, "unconfirmed", "no state_topic configured to confirm", **base
                    )
                )
            timeout = action.confirm_timeout_s or self.config.mqtt.confirm_timeout_s
            try:
                raw = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return await emit.final(
                    self._result(
                        None,
                        intent,
                        "unconfirmed",
                        f"no matching state on {state_topic} within {timeout:g} s",
                        **base,
                    )
                )
            state = {"payload": raw.decode("utf-8", "replace")}
            return await emit.final(self._result(None, intent, "confirmed", state=state, **base))
        finally:
            if target is not None and fut is not None:
                target.waiters = [(v, f) for v, f in target.waiters if f is not fut]
                fut.cancel()


#: "light up the kitchen", "brighten it up": Home Assistant's sentences read them as *turn on*
#: (the intent's slots stay exactly that); said to a light that is already on they mean brighter.
_LIGHT_UP = re.compile(r"\b(?:light|lighten|brighten)(?:\s+(?:it|them))?\s+up\b", re.I)
LIGHT_UP_STEP = 20


def light_up_step(intent: Intent) -> int | None:
    """The brightness step (percent) a light-on means when the light is already on: an explicit
    ``brightness_step`` on the light-on, or ``LIGHT_UP_STEP`` when its words were "light up";
    None for a plain light-on."""
    if intent.name != IntentName.LIGHT_ON or intent.slots.brightness is not None:
        return None
    if intent.slots.brightness_step is not None:
        return intent.slots.brightness_step if intent.slots.brightness_step > 0 else None
    return LIGHT_UP_STEP if _LIGHT_UP.search(intent.text) else None


def _vacuum_noop(name: str, device: Device, state: Mapping[str, Any]) -> str | None:
    """A vacuum command that would change nothing, given the robot's known state: Valetudo
    publishes a status only when it changes, so such a command could never be confirmed."""
    now = state.get("state")
    if name in (IntentName.VACUUM_RETURN, IntentName.VACUUM_STOP) and now == "docked":
        return f"the {device.name} is already docked"
    if name == IntentName.VACUUM_START and now == "cleaning":
        return f"the {device.name} is already cleaning"
    if name == IntentName.VACUUM_PAUSE and now in ("docked", "idle", "paused"):
        return f"the {device.name} is {'already paused' if now == 'paused' else 'not cleaning'}"
    return None


class _Emitter:
    """Delivers results to the caller's callback; a failing callback never breaks dispatch."""

    def __init__(self, callback: ResultCallback | None) -> None:
        self._callback = callback

    async def send(self, result: ActionResult) -> None:
        if self._callback is None:
            return
        try:
            out = self._callback(result)
            if inspect.isawaitable(out):
                await out
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("on_result callback failed")

    async def final(self, result: ActionResult) -> ActionResult:
        await self.send(result)
        return result


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fill(template: str, values: Mapping[str, Any], *, json_escape: bool = False) -> str:
    """Fill ``{slot}`` placeholders; ``{{``/``}}`` are literal braces, and any other brace is
    kept as written, so JSON templates work with single or doubled braces. Only plain names:
    no attribute or index access into values. A missing slot raises KeyError."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = values[m.group(1)]
        if json_escape and isinstance(value, str):
            # Spoken text inside a JSON payload must stay a JSON string, whatever it contains.
            return json.dumps(value)[1:-1]
        return str(value)

    return _PLACEHOLDER.sub(sub, template)


def _fill_topic(template: str, values: Mapping[str, Any]) -> str:
    """A topic template filled with slot values that cannot add levels or wildcards."""
    for key, value in values.items():
        if f"{{{key}" in template and any(ch in str(value) for ch in "/+#\0"):
            raise ValueError(f"slot {key!r} cannot go into a topic: {value!r}")
    return _fill(template, values)


def _looks_json(template: str) -> bool:
    return template.lstrip().startswith(("{{", "[", '{"', "{ "))


def _merge(device: Device, previous: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
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


def _topic_payload(commands: list[Command]) -> dict[str, Any]:
    # Several publishes (Tasmota, HA templates): the result names the last that acts, the one
    # that completes the action, never a follow-up read (Shelly's GetStatus); all of them
    # are listed in extra["commands"] by the caller.
    acting = [c for c in commands if not c.follow_up] or commands
    if not acting:
        return {}
    return {"topic": acting[-1].topic, "payload": acting[-1].payload}


__all__ = ["Dispatcher", "Publisher", "ResultCallback", "StateListener"]
