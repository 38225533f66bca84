"""Language codes: what users write (``zh-cn``, ``en-US``) to what the sentence data ships."""

from __future__ import annotations

import re
from functools import cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

#: Languages we fall back to when a user gives only the macro-language.
_DEFAULT_REGION = {"zh": "zh-CN", "pt": "pt", "de": "de", "sr": "sr"}


class UnknownLanguageError(ValueError):
    """No sentence data for the requested language."""


@cache
def shipped_languages() -> tuple[str, ...]:
    """Language codes shipped by ``home-assistant-intents``, spelled as the package spells them."""
    from home_assistant_intents import get_languages

    return tuple(get_languages())


def normalize_language(language: str) -> str:
    """Map a user-supplied code to the package's spelling (``zh-cn`` → ``zh-CN``, ``en-US`` →
    ``en``). Raises :class:`UnknownLanguageError` when nothing matches."""
    wanted = language.strip().replace("_", "-")
    by_lower = {code.lower(): code for code in shipped_languages()}
    if wanted.lower() in by_lower:
        return by_lower[wanted.lower()]
    base = wanted.split("-", 1)[0].lower()
    if base in _DEFAULT_REGION and _DEFAULT_REGION[base].lower() in by_lower:
        return by_lower[_DEFAULT_REGION[base].lower()]
    if base in by_lower:
        return by_lower[base]
    raise UnknownLanguageError(f"no sentence data for language {language!r}")


def has_cjk(text: str) -> bool:
    """True when ``text`` contains CJK ideographs (used to pick zh-CN automatically)."""
    return _CJK.search(text) is not None
