"""The dispatcher: policy, then intent -> adapter commands -> QoS 1 publish -> confirmation.

Every action ends in exactly one final :class:`ActionResult` (``confirmed``, ``unconfirmed``,
``failed`` or ``rejected``), preceded by ``published`` when something was published. Device
state is rebuilt from the devices' (mostly retained) state topics, so another replica sharing
the broker sees the same state; nothing here is the only copy of anything.

Its parts: ``devices.device_state`` (the state cache, listeners, confirmation waiters),
``devices.relative`` (relative steps made absolute, commands that would change nothing),
``devices.custom_dispatch`` (custom actions), ``devices.emit`` (results to the caller).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from devices.actions import (
    ActionResult,
    AdapterError,
    BrokerUnavailable,
    Command,
    PublishFailed,
)
from devices.adapters import adapter_for
from devices.custom_dispatch import CustomActions
from devices.device_state import DeviceStates, StateListener
from devices.emit import Emitter, ResultCallback, make_result
from devices.mqtt import MessageCallback
from devices.registry import Device, DeviceKind, HomeConfig, Scene
from devices.relative import (
    LIGHT_UP_STEP,
    MIN_DIM_BRIGHTNESS,
    SETPOINT_MAX_C,
    SETPOINT_MIN_C,
    absolute_brightness,
    absolute_level,
    light_up_step,
    nothing_to_do,
)
from intents.custom import CustomAction
from intents.schema import OPENING_INTENTS, SENSITIVE_INTENTS, Intent, IntentName, Slots

logger = logging.getLogger(__name__)

#: Intents that act on nothing.
NO_OP_INTENTS: frozenset[str] = frozenset({IntentName.CANCEL, IntentName.CONFIRM})
#: Detail of the rejection that asks for a "yes" (``extra["needs_confirmation"]`` is True).
#: How far below ``security.min_confidence`` a guessed reading is asked back rather than
#: refused (:meth:`Dispatcher.may_ask_back`).
ASK_BACK_BAND: Final = 0.15
_NEVER_ASKED_BACK: Final = frozenset({IntentName.LOCK, IntentName.UNLOCK, IntentName.COVER_OPEN,
                                      IntentName.SCENE_ACTIVATE})
NEEDS_CONFIRMATION = "sensitive action needs an explicit confirmation"
_BUILTIN: frozenset[str] = frozenset(i.value for i in IntentName)


class Publisher(Protocol):
    """What the dispatcher needs of an MQTT client (``devices.mqtt.MqttClient`` fits)."""

    async def publish(
        self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False
    ) -> float: ...

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Callable[[], None]: ...

    async def barrier(self, timeout: float | None = None) -> None: ...  # noqa: ASYNC109


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
        self._state = DeviceStates()
        self._unsubscribe: list[Callable[[], None]] = []
        self._customs = CustomActions(
            mqtt, lambda: self.config.mqtt.confirm_timeout_s, self._unsubscribe
        )

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
                self._unsubscribe.append(self.mqtt.subscribe(topic, self._state.handler(device)))
        for action in self.custom_actions.values():
            if action.state_topic and "{" not in action.state_topic:
                self._customs.watch(action.state_topic)
        if wait_for_retained is not None:
            try:
                await self.mqtt.barrier(wait_for_retained)
            except PublishFailed as e:
                logger.warning("state topics subscribed, retained states not confirmed: %s", e)

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._state.close()

    # -- state ---------------------------------------------------------------------------

    def state(self, device_id: str) -> dict[str, Any] | None:
        """The last known normalized state of a device (a copy), or None if none was seen."""
        return self._state.state(device_id)

    def states(self) -> dict[str, dict[str, Any]]:
        return self._state.states()

    def last_seen(self, device_id: str) -> float | None:
        """``time.time()`` of the device's last state message."""
        return self._state.last_seen(device_id)

    def add_state_listener(self, callback: StateListener) -> Callable[[], None]:
        """Call ``callback(device_id, state)`` whenever a device's state changes (not on
        repeated identical reports); returns a function that removes the listener."""
        return self._state.add_listener(callback)

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

    def may_ask_back(self, intent: Intent) -> bool:
        """Whether a *guessed* ``intent`` refused for its confidence may be asked back ("Did
        you mean …? Say yes") rather than refused: within ``ASK_BACK_BAND`` below
        ``security.min_confidence``, and nothing sensitive about it — no lock either way, no
        opening, no scene, no device marked sensitive."""
        bar = self.config.security.min_confidence
        if not bar - ASK_BACK_BAND <= intent.confidence < bar:
            return False
        if intent.name in _NEVER_ASKED_BACK or self.requires_confirmation(intent):
            return False
        return not any(self._devices[d].sensitive for d in intent.slots.device_ids
                       if d in self._devices)

    def too_unsure(self, intent: Intent) -> bool:
        """Whether the policy refuses ``intent`` for its confidence alone (a "yes" aside):
        what a reading heard early must reach to end the turn on it."""
        return self._policy(intent, self.is_sensitive(intent), confirmed=True) is not None

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
        amends: str | None = None,
    ) -> list[ActionResult]:
        """Carry out ``intent``; returns the final result of every device action.

        ``amends``: the utterance id whose custom order this one completes (the amend window,
        ``assistant.turn.amend``); the payload says so (a custom action only).

        ``on_result`` receives every result as it happens (``published``, then the final one).
        ``confirmed=True`` says the user confirmed a sensitive action (see
        :meth:`requires_confirmation`)."""
        emit = Emitter(on_result)
        name = intent.name
        if name in NO_OP_INTENTS:
            return []
        if name == IntentName.SCENE_ACTIVATE:
            return await self._scene(intent, emit, confirmed)
        if name in self.custom_actions:
            action = self.custom_actions[name]
            return [await self._custom(intent, action, emit, confirmed, amends)]
        if amends is not None:
            return [await emit.final(make_result(
                None, intent, "rejected", "only a custom order can be amended"))]
        if name not in _BUILTIN:
            return [
                await emit.final(make_result(None, intent, "rejected", f"unknown intent {name!r}"))
            ]
        if not intent.slots.device_ids:
            return [
                await emit.final(
                    make_result(None, intent, "rejected", "the intent names no device")
                )
            ]
        device_ids = list(dict.fromkeys(intent.slots.device_ids))  # once per device
        jobs = [self._one(intent, device_id, emit, confirmed) for device_id in device_ids]
        return list(await asyncio.gather(*jobs))

    def _scene_intents(self, intent: Intent) -> list[Intent]:
        if intent.name != IntentName.SCENE_ACTIVATE or intent.slots.scene not in self._scenes:
            return []
        return scene_intents(self._scenes[intent.slots.scene], intent)

    async def _scene(self, intent: Intent, emit: Emitter, confirmed: bool) -> list[ActionResult]:
        scene_id = intent.slots.scene
        if scene_id is None or scene_id not in self._scenes:
            return [
                await emit.final(
                    make_result(None, intent, "rejected", f"unknown scene {scene_id!r}")
                )
            ]
        try:
            expanded = self._scene_intents(intent)
        except (ValueError, KeyError) as e:
            return [
                await emit.final(
                    make_result(None, intent, "rejected", f"scene {scene_id} is invalid: {e}")
                )
            ]
        jobs = [
            self._one(i, i.slots.device_ids[0], emit, confirmed, scene=scene_id) for i in expanded
        ]
        return list(await asyncio.gather(*jobs))

    async def _one(
        self,
        intent: Intent,
        device_id: str,
        emit: Emitter,
        confirmed: bool,
        scene: str | None = None,
    ) -> ActionResult:
        extra: dict[str, Any] = {"scene": scene} if scene else {}
        device = self._devices.get(device_id)
        if device is None:
            return await emit.final(
                make_result(
                    device_id, intent, "rejected", f"unknown device {device_id!r}", extra=extra
                )
            )
        sensitive = self.is_sensitive(intent, device)
        refusal = self._policy(intent, sensitive, confirmed)
        if refusal is not None:
            _mark_refusal(extra, refusal, sensitive)
            return await emit.final(
                make_result(device_id, intent, "rejected", refusal, extra=extra)
            )
        if intent.name in (IntentName.GET_STATE, IntentName.CLIMATE_GET_TEMPERATURE):
            return await emit.final(
                query_result(
                    intent, device, self.state(device.id), self.last_seen(device.id), extra
                )
            )
        adapter = adapter_for(device)
        nothing = nothing_to_do(intent, device, self._state.get(device.id))
        if nothing is not None:
            extra["noop"] = True
            return await emit.final(
                make_result(
                    device_id, intent, "rejected", nothing, state=self.state(device.id),
                    extra=extra,
                )
            )
        intent = absolute_brightness(intent, self._state.get(device.id))
        relative = absolute_level(intent, device, self._state.get(device.id))
        if isinstance(relative, str):
            return await emit.final(
                make_result(
                    device_id, intent, "rejected", relative, state=self.state(device.id),
                    extra=extra,
                )
            )
        intent = relative
        try:
            commands = adapter.commands_for(device, intent, self.config.mqtt)
        except AdapterError as e:
            return await emit.final(
                make_result(device_id, intent, "rejected", str(e), extra=extra)
            )
        if len(commands) > 1:
            extra["commands"] = [{"topic": c.topic, "payload": c.payload} for c in commands]
        timeout = device.confirm_timeout_s or self.config.mqtt.confirm_timeout_s
        waiter = self._state.wait_for(device.id, lambda s: adapter.confirms(device, intent, s))
        try:
            published_at = await self._publish_all(commands)
        except (PublishFailed, BrokerUnavailable) as e:
            self._state.drop(device.id, waiter)
            return await emit.final(
                make_result(
                    device_id, intent, "failed", str(e), **_topic_payload(commands), extra=extra
                )
            )
        except BaseException:
            self._state.drop(device.id, waiter)
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
                make_result(
                    device_id,
                    intent,
                    "unconfirmed",
                    f"no matching state from {device.id} within {timeout:g} s",
                    state=self.state(device.id),
                    **base,
                )
            )
        finally:
            self._state.drop(device.id, waiter)
        return await emit.final(make_result(device_id, intent, "confirmed", state=state, **base))

    async def _publish_all(self, commands: Iterable[Command]) -> float:
        published_at = 0.0
        for cmd in commands:
            published_at = await self.mqtt.publish(cmd.topic, cmd.payload, cmd.qos, cmd.retain)
        return published_at

    # -- custom intents ------------------------------------------------------------------

    async def _custom(
        self,
        intent: Intent,
        action: CustomAction,
        emit: Emitter,
        confirmed: bool,
        amends: str | None = None,
    ) -> ActionResult:
        extra: dict[str, Any] = {"custom": True}
        if amends is not None:
            extra["amends"] = amends
        sensitive = self.is_sensitive(intent)
        refusal = self._policy(intent, sensitive, confirmed)
        if refusal is not None:
            _mark_refusal(extra, refusal, sensitive)
            return await emit.final(make_result(None, intent, "rejected", refusal, extra=extra))
        return await self._customs.run(intent, action, emit, extra, amends=amends)


def scene_intents(scene: Scene, intent: Intent) -> list[Intent]:
    """The device intents a scene activation stands for (ValueError/KeyError: an invalid
    scene action)."""
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


def query_result(
    intent: Intent,
    device: Device,
    state: dict[str, Any] | None,
    seen: float | None,
    extra: dict[str, Any],
) -> ActionResult:
    """The answer to a state or temperature question from the device's known ``state``
    (``seen``: ``time.time()`` of its last report)."""
    if intent.name == IntentName.CLIMATE_GET_TEMPERATURE and device.kind not in (
        DeviceKind.CLIMATE,
        DeviceKind.SENSOR,
    ):
        return make_result(
            device.id,
            intent,
            "rejected",
            f"{device.id} does not measure temperature",
            extra=extra,
        )
    if state is None:
        return make_result(
            device.id,
            intent,
            "unconfirmed",
            f"no state received from {device.id} yet",
            extra=extra,
        )
    if seen is not None:
        extra = {**extra, "age_s": round(time.time() - seen, 3)}
    return make_result(device.id, intent, "confirmed", state=state, extra=extra)


def _topic_payload(commands: list[Command]) -> dict[str, Any]:
    # Several publishes (Tasmota, HA templates): the result names the last that acts, the one
    # that completes the action, never a follow-up read (Shelly's GetStatus); all of them
    # are listed in extra["commands"] by the caller.
    acting = [c for c in commands if not c.follow_up] or commands
    if not acting:
        return {}
    return {"topic": acting[-1].topic, "payload": acting[-1].payload}


# Re-exported: these lived here before the dispatcher was split.
__all__ = [
    "LIGHT_UP_STEP",
    "MIN_DIM_BRIGHTNESS",
    "NEEDS_CONFIRMATION",
    "NO_OP_INTENTS",
    "OPENING_INTENTS",
    "SETPOINT_MAX_C",
    "SETPOINT_MIN_C",
    "Dispatcher",
    "Publisher",
    "ResultCallback",
    "StateListener",
    "light_up_step",
]


def _mark_refusal(extra: dict[str, Any], refusal: str, sensitive: bool) -> None:
    """What the reply needs to know of a policy refusal: a sensitive action's, whether it
    asks for a "yes", and whether the reading was too unsure to act on (``low_confidence``:
    the user hears "I'm not sure I heard that right", not the confidence figures)."""
    if refusal != NEEDS_CONFIRMATION:
        extra["low_confidence"] = True
    if sensitive:
        extra["sensitive"] = True
        extra["needs_confirmation"] = refusal == NEEDS_CONFIRMATION
