"""The robust understanding tier: everyday phrasings the exact grammar does not cover.

Between the grammar (exact templates) and the fuzzy/model tiers. Not templates: the sentence is
*normalized* (a leading wake name, greeting or politeness and trailing "please"/"thanks" are
dropped, numbers in words become digits, plurals are reduced), then a small slot-filling parser
looks for the pieces of a command anywhere in it:

* the **action**: verbs and particles in any order ("put the kitchen light on", "lights off",
  "kill the lights", "lock up", "dim", "a bit brighter", "make it blue", "pause");
* the **target**: device names and aliases from the registry (loosely: plural, extra words,
  "the wemo plug socket"), kind words ("lights", "plug", "blinds", "heating", "everything"),
  areas and floors, "here"/"this room" (the speaker's area);
* **amounts**: levels ("fifty percent", "to 30", "max", "half"), relative steps ("a bit",
  "a lot"), colours, colour-temperature words, temperatures;
* **indirect requests**: "it's too dark in here" (lights on), "this room is too bright" (dim).

Two commands joined by "and"/"then" ("和"/"然后") are both parsed: one intent when they are
the same action (their targets merged), else the first intent plus ``Recognition.also``.

What it will not do: act on a device word it does not know ("the closet light" → "I don't know a
device called 'closet light'"), act on the whole home for "here" when the speaker's area is
unknown, act on out-of-scope requests (timers, weather, coffee with no coffee machine...), act
later ("when I get home"), or produce a sensitive action (unlock, opening a garage door) above
the guess cap unless both the verb and the target were said outright.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from intents.robust_base import Rejected, _merge, _NeedsRoom
from intents.robust_en import _EnglishParser
from intents.robust_targets import _Targets
from intents.robust_text import normalize_en
from intents.robust_zh import _ChineseParser
from intents.schema import ROOM_UNKNOWN, Intent, Recognition

__all__ = ["Rejected", "RobustTier", "normalize_en"]


class RobustTier(_EnglishParser, _ChineseParser, _Targets):
    """Parses everyday phrasings against one home. Thread-safe (read-only after init).

    The parts: :mod:`intents.robust_text` (normalization), :mod:`intents.robust_en` and
    :mod:`intents.robust_en_action` (English), :mod:`intents.robust_zh` (Chinese),
    :mod:`intents.robust_targets` (devices, reach and confidence), :mod:`intents.robust_base`
    (the parse record, the home's lexicon, shared helpers)."""

    def recognize(self, text: str, lang: str, *, area: str | None = None) -> Recognition | None:
        """A recognition, a rejection with the reason (``intent=None``) when the sentence was
        understood as something Hearth must not do, or None when it does not parse at all."""
        return self.analyze(text, lang, area=area)[0]

    def analyze(self, text: str, lang: str, *, area: str | None = None,
                follow_ids: Sequence[str] = ()) -> tuple[Recognition | None, bool]:
        """:meth:`recognize` plus whether a rejection is final (see :class:`Rejected`).
        ``follow_ids``: the previous command's devices, which a bare step ("brighter") with no
        room known applies to."""
        try:
            return self._analyze(text, lang, area, list(follow_ids)), False
        except _NeedsRoom as e:
            reason = str(e) if area is not None else f"{ROOM_UNKNOWN}; say the room"
            return Recognition(intent=None, reason=f"no intent: {reason}",
                               needs_area=area is None), True
        except Rejected as e:
            return Recognition(intent=None, reason=f"no intent: {e}",
                               unknown_name=e.unknown, negated=e.negated), e.final

    def _analyze(self, text: str, lang: str, area: str | None,
                 follow_ids: list[str]) -> Recognition | None:
        zh = lang.lower().startswith("zh")
        if not zh and not lang.lower().startswith("en"):
            return None
        # "把 TV 打开" heard as English: Chinese words of command (a verb, 把) make it Chinese,
        # whose parser takes the English names among them
        zh = zh or re.search(r"[把开关调锁拉暂停播放打扫]", text) is not None
        parts = self._parts_zh(text) if zh else self._parts_en(text)
        if not parts:
            return None
        if len(parts) > 1 and all(isinstance(x, Rejected) and not x.final for x in parts):
            raise next(x for x in parts if isinstance(x, Rejected))
        parts = [None if isinstance(x, Rejected) and not x.final else x for x in parts]
        for x in parts:
            if isinstance(x, Rejected):
                raise x
        intents: list[Intent] = []
        for p in parts:
            assert not isinstance(p, Rejected)
            if p is None:
                if len(parts) == 1:
                    return None
                continue
            p.follow_ids = follow_ids
            intents.extend(self._intents(p, text, "zh-CN" if zh else lang, area))
        if not intents:
            return None
        intents = _merge(intents)
        first, rest = intents[0], intents[1:]
        reason = first.reason
        if rest:
            reason += "; then: " + "; ".join(i.reason for i in rest)
        return Recognition(intent=first.model_copy(update={"reason": reason}), reason=reason,
                           also=rest)
