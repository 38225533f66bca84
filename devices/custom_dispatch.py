"""Custom actions (intents files): fill the action's topic and payload from the slots, publish,
and confirm from its state topic when one is configured. The policy (confidence, sensitive,
confirmation) is the dispatcher's and has run before."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devices.actions import ActionResult, BrokerUnavailable, PublishFailed
from devices.emit import Emitter, make_result
from devices.mqtt import MqttMessage
from intents.custom import CustomAction
from intents.schema import Intent

if TYPE_CHECKING:
    from devices.dispatcher import Publisher


@dataclass
class _CustomTarget:
    """A subscription for a custom action's state topic and the waiters on it."""

    last: bytes | None = None
    waiters: list[tuple[str, asyncio.Future[bytes]]] = field(default_factory=list)


class CustomActions:
    """Runs custom actions through ``mqtt``; subscriptions go on ``unsubscribe``;
    ``confirm_timeout_s()`` is the default wait for a confirming state."""

    def __init__(
        self,
        mqtt: Publisher,
        confirm_timeout_s: Callable[[], float],
        unsubscribe: list[Callable[[], None]],
    ) -> None:
        self._mqtt = mqtt
        self._confirm_timeout_s = confirm_timeout_s
        self._unsubscribe = unsubscribe
        self._topics: dict[str, _CustomTarget] = {}

    def watch(self, topic: str) -> _CustomTarget:
        target = self._topics.get(topic)
        if target is None:
            target = self._topics[topic] = _CustomTarget()

            def handle(msg: MqttMessage, t: _CustomTarget = target) -> None:
                t.last = msg.payload
                text = msg.payload.decode("utf-8", "replace")
                for want, fut in list(t.waiters):
                    if not fut.done() and want in text:
                        fut.set_result(msg.payload)

            self._unsubscribe.append(self._mqtt.subscribe(topic, handle))
        return target

    async def run(
        self,
        intent: Intent,
        action: CustomAction,
        emit: Emitter,
        extra: dict[str, Any],
        *,
        amends: str | None = None,
    ) -> ActionResult:
        """Publish the action; ``amends``: the utterance id whose order this one replaces
        (the payload, a JSON object, gets an ``amends`` member; any other payload could not
        be told from a new order, so it is not sent)."""
        values: dict[str, Any] = {**intent.slots.custom, "text": intent.text}
        try:
            topic = fill_topic(action.topic, values)
            payload = fill(action.payload, values, json_escape=looks_json(action.payload))
            state_topic = fill_topic(action.state_topic, values) if action.state_topic else None
            state_value = fill(action.state_value, values) if action.state_value else None
        except ValueError as e:
            return await emit.final(make_result(None, intent, "rejected", str(e), extra=extra))
        except KeyError as e:
            return await emit.final(
                make_result(
                    None, intent, "rejected", f"custom action needs slot {e.args[0]!r}", extra=extra
                )
            )
        if amends is not None:
            marked = mark_amendment(payload, amends)
            if marked is None:
                return await emit.final(make_result(
                    None, intent, "rejected",
                    "not sent: an amended order needs a JSON object payload to say 'amends'",
                    topic=topic, payload=payload, extra=extra))
            payload = marked
        fut: asyncio.Future[bytes] | None = None
        target: _CustomTarget | None = None
        if state_topic is not None:
            target = self.watch(state_topic)
            fut = asyncio.get_running_loop().create_future()
            target.waiters.append((state_value or "", fut))
        try:
            try:
                published_at = await self._mqtt.publish(topic, payload, action.qos, action.retain)
            except (PublishFailed, BrokerUnavailable) as e:
                return await emit.final(
                    make_result(
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
                    make_result(
                        None, intent, "unconfirmed", "no state_topic configured to confirm", **base
                    )
                )
            timeout = action.confirm_timeout_s or self._confirm_timeout_s()
            try:
                raw = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return await emit.final(
                    make_result(
                        None,
                        intent,
                        "unconfirmed",
                        f"no matching state on {state_topic} within {timeout:g} s",
                        **base,
                    )
                )
            state = {"payload": raw.decode("utf-8", "replace")}
            return await emit.final(make_result(None, intent, "confirmed", state=state, **base))
        finally:
            if target is not None and fut is not None:
                target.waiters = [(v, f) for v, f in target.waiters if f is not fut]
                fut.cancel()


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, values: Mapping[str, Any], *, json_escape: bool = False) -> str:
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


def fill_topic(template: str, values: Mapping[str, Any]) -> str:
    """A topic template filled with slot values that cannot add levels or wildcards."""
    for key, value in values.items():
        if f"{{{key}" in template and any(ch in str(value) for ch in "/+#\0"):
            raise ValueError(f"slot {key!r} cannot go into a topic: {value!r}")
    return fill(template, values)


def mark_amendment(payload: str, amends: str) -> str | None:
    """The JSON object ``payload`` with ``"amends": amends`` added (None: not an object)."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    obj["amends"] = amends
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def looks_json(template: str) -> bool:
    return template.lstrip().startswith(("{{", "[", '{"', "{ "))


__all__ = ["CustomActions", "fill", "fill_topic", "looks_json", "mark_amendment"]
