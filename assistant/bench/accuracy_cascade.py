"""The server's two-pass speech path, scored from the passes the benchmark already ran.

The session transcribes at each pause with a cheap first look (greedy, the
``assistant.speculation_beam_size`` setting) and lets it stand as the final transcript only
when its words, as heard, parse as a complete command; otherwise the turn is transcribed again
with the full settings (beam 5, its n-best list decoded, the full-window retries). When the
benchmark ran both the greedy variant and the full one on the same clips, this module adds the
combination as one more variant of every record (``cascade``): per clip, the greedy pass's
``top1`` result when it parsed as heard, else the full pass's decode. Its ASR time is the
greedy pass's, plus the full pass's when that ran.
"""

from __future__ import annotations

from typing import Any, Final

from assistant.audio.asr import looks_cut_off

#: Variant name added to the records.
CASCADE: Final = "cascade"
#: The server's first look (greedy, no prompt, 6 s window floor) and the full pass.
DEFAULT_FAST: Final = "look"
DEFAULT_SLOW: Final = "beam5-phrases-retry2"
#: Decode of the full pass (what the server's HypothesisDecoder does) and of the cascade.
SLOW_DECODE: Final = "shipped"


def _stands(result: dict[str, Any]) -> bool:
    """The first look parsed, as heard, to an intent (no repair, no lower hypothesis), and
    is not a custom intent whose text stops mid-sentence
    (``assistant.turn.understanding.ends_turn``)."""
    intent = result.get("intent")
    if intent is None or result.get("transform") != "raw":
        return False
    return not (intent.get("source") == "custom" and looks_cut_off(result.get("used_text", "")))


def add_cascade(
    records: list[dict[str, Any]],
    fast: str = DEFAULT_FAST,
    slow: str = DEFAULT_SLOW,
    slow_decode: str = SLOW_DECODE,
) -> int:
    """Add the ``cascade`` variant (decode ``slow_decode``) to every record holding both
    passes; returns how many got it. Records are changed in place."""
    added = 0
    for rec in records:
        variants = rec.get("variants", {})
        first, full = variants.get(fast), variants.get(slow)
        if first is None or full is None:
            continue
        top1 = first.get("decode", {}).get("top1")
        chosen = full.get("decode", {}).get(slow_decode)
        if top1 is None or chosen is None:
            continue
        stands = _stands(top1)
        variants[CASCADE] = {
            **{k: v for k, v in (first if stands else full).items() if k != "decode"},
            "asr_ms": first.get("asr_ms", 0.0) + (0.0 if stands else full.get("asr_ms", 0.0)),
            "first_look_stands": stands,
            "decode": {slow_decode: top1 if stands else chosen},
        }
        added += 1
    return added
