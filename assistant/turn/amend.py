"""The amend window: the rest of an order cut off at a pause (issue 21).

"I want a dark roast house coffee … with some almond milk": when the pause ends the turn
after "house coffee" (a complete order), the order is sent, and "with some almond milk"
arrives as a turn of its own that parses as nothing. Within ``turn_detection.amend_ms`` of
the end of the order's speech, such a turn is read joined to the order before it; when the
joined words parse as the *same* custom intent with more slots (every slot of the order kept,
none changed), the turn carries out the whole order once more, marked as an amendment of the
previous utterance (``amends``): the device replaces the order it has rather than making a
second one (docs/protocol.md, "Amended orders").

Conservative by design: only a turn that parsed as nothing amends (a new command is a new
command); only a custom intent whose action was published is amended; never a sensitive one;
the joined reading must add slots and change none ("thank you" after an order joins to
nothing and does nothing). Built-in commands are never amended here (their extension, "turn
on the light" + "in the kitchen", is the "which one?" answer in :mod:`acting`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from assistant.turn.types import SessionResources, SessionState, Utterance
from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)

_TRAILING = " \t\n.,;:!?…。，！？"


@dataclass(frozen=True, slots=True)
class Order:
    """A custom intent a turn of the session published: what may be amended."""

    utterance_id: str
    text: str
    intent: Intent
    #: When its speech ended (typed text: when it arrived), on the session clock.
    end_t: float


def amendment(previous: Intent, joined: Intent) -> bool:
    """``joined`` is ``previous`` with more custom slots: same intent, every slot kept with
    its value, at least one added, nothing else changed."""
    if joined.name != previous.name or joined.source != "custom":
        return False
    before, after = previous.slots.custom, joined.slots.custom
    if any(after.get(k) != v for k, v in before.items()) or len(after) <= len(before):
        return False
    rest = {"custom"}
    return previous.slots.model_dump(exclude=rest) == joined.slots.model_dump(exclude=rest)


class Amends:
    """The last order of one session, and the amendment a following fragment makes of it."""

    def __init__(
        self, resources: SessionResources, state: SessionState, clock: Callable[[], float]
    ) -> None:
        self._res = resources
        self._state = state
        self._clock = clock
        self.last: Order | None = None

    def window_s(self) -> float:
        td = self._res.settings.turn_detection.model_copy(
            update=self._state.config.turn_detection.model_dump(exclude_none=True)
        )
        return max(0, int(td.amend_ms)) / 1000

    def published(self, utt: Utterance, intent: Intent) -> None:
        """``utt`` published ``intent``: a custom order may be amended by the next turn."""
        if intent.source != "custom" or self._sensitive(intent):
            return
        text = intent.text or utt.text or ""
        end = utt.speech_end_t if utt.speech_end_t is not None else utt.started
        self.last = Order(utt.id, text, intent, end)

    def other_turn(self, utt: Utterance) -> None:
        """A turn that did anything else ends the window of the order before it."""
        if self.last is not None and self.last.utterance_id != utt.id:
            self.last = None

    def _sensitive(self, intent: Intent) -> bool:
        if intent.is_sensitive:
            return True
        check = getattr(self._res.dispatcher, "is_sensitive", None)
        return bool(check(intent)) if callable(check) else False

    async def propose(self, utt: Utterance, text: str, language: str | None) -> Recognition | None:
        """The amended order ``text`` (a turn that parsed as nothing) makes of the last one,
        or None. Used once: a second fragment amends the amended order."""
        order = self.last
        window = self.window_s()
        if order is None or window <= 0 or not text.strip():
            return None
        gap = utt.started - order.end_t
        if gap > window or self._sensitive(order.intent):
            return None
        joined = f"{order.text.rstrip(_TRAILING)} {text.strip()}"
        lang = language or order.intent.language
        try:
            result = await asyncio.to_thread(
                self._res.recognizer.recognize, joined, language=lang
            )
        except Exception:
            logger.warning("session %s: amend recognition failed", self._state.id, exc_info=True)
            return None
        got = result.intent
        if got is None or not amendment(order.intent, got) or self._sensitive(got):
            return None
        added = {k: v for k, v in got.slots.custom.items() if k not in order.intent.slots.custom}
        reason = (
            f"amends {order.utterance_id} ({gap * 1000:.0f} ms after it): {joined!r} adds "
            + ", ".join(f"{k}={v}" for k, v in added.items())
        )
        amended = got.model_copy(update={"reason": reason, "text": joined})
        return Recognition(intent=amended, reason=reason)
