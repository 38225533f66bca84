"""How the dispatcher hands results back: one :class:`ActionResult` per step, to a callback
that can never break a dispatch."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from devices.actions import ActionResult, ActionStatus
from intents.schema import Intent

logger = logging.getLogger("devices.dispatcher")

ResultCallback = Callable[[ActionResult], Awaitable[None] | None]


def make_result(
    device_id: str | None,
    intent: Intent,
    status: ActionStatus,
    detail: str = "",
    **kw: Any,
) -> ActionResult:
    """A result of ``intent`` on ``device_id`` (None: no device), stamped now."""
    return ActionResult(
        device_id=device_id,
        intent=intent.name,
        status=status,
        detail=detail,
        finished_at=time.monotonic(),
        **kw,
    )


class Emitter:
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


__all__ = ["Emitter", "ResultCallback", "make_result"]
