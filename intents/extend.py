"""Could the speaker still be going on? Whether a complete command, as heard, is also the
beginning of a longer sentence of the grammar.

"I want a large latte" is a complete coffee order, and so is "I want a large latte with some
milk"; "turn on the light" is complete, and so is "turn on the light in the kitchen". A turn
that ends at the first pause after such a prefix cuts the speaker off (issue 21): the
endpointing waits longer after a reading that the grammar could extend than after one it
cannot ("... with some milk and sugar" has nothing left to add).

The grammar is the word automaton of :mod:`intents.align` (every template, its lists and
expansion rules): the words are run through it exactly, and the reading can go on when a
state reached at the end still has a word to read. Words the automaton does not follow exactly
(a repaired or fuzzy reading, a number written "50%") give None: unknown, and the caller keeps
its usual rule.

The custom grammars' automata are small (the coffee orders: 749 states, 15 ms) and built on
first use; the built-in English grammar's is large (~130k states, 3–4 s) and is built in a
background thread on first use; until it is ready, built-in readings give None. One
:class:`Continuations` per recognizer (:func:`continuations`); thread-safe after building.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Final

from intents.align import WordAutomaton, _tokens

logger = logging.getLogger(__name__)


def _closure(a: WordAutomaton, states: Iterable[int]) -> set[int]:
    out = set(states)
    stack = list(out)
    while stack:
        s = stack.pop()
        for w, t in a.arcs[s]:
            if w is None and t not in out:
                out.add(t)
                stack.append(t)
    return out


def can_go_on(a: WordAutomaton, text: str) -> bool | None:
    """True: ``text`` is a whole sentence of ``a`` and a longer one starts with it; False: a
    whole sentence that no longer one extends; None: not a whole sentence as written."""
    cur = _closure(a, (a.start,))
    for tok in _tokens(text):
        nxt = {t for s in cur for w, t in a.arcs[s]
               if w == tok or (w == "<number>" and tok.isdigit())}
        if not nxt:
            return None
        cur = _closure(a, nxt)
    if a.final not in cur:
        return None
    return any(w is not None for s in cur for w, _ in a.arcs[s])


class Continuations:
    """The grammars of one recognizer, as automata, for :meth:`can_go_on`."""

    def __init__(self, recognizer: Any, *, home: bool = True) -> None:
        self._recognizer = recognizer
        self._custom: dict[str, tuple[WordAutomaton, ...]] = {}
        self._home: WordAutomaton | None = None
        self._home_wanted = home
        self._home_started = False
        self._lock = threading.Lock()

    def _custom_for(self, language: str) -> tuple[WordAutomaton, ...]:
        lang = language.split("-")[0].lower()
        with self._lock:
            got = self._custom.get(lang)
            if got is None:
                from hassil import Intents

                from intents.align import build_automaton
                from intents.grammar import build_slot_lists

                registry = build_slot_lists(self._recognizer.config)
                built: list[WordAutomaton] = []
                for f in getattr(self._recognizer, "custom_files", ()):
                    if str(f.language or "en").split("-")[0].lower() != lang:
                        continue
                    try:
                        built.append(build_automaton(Intents.from_dict(f.data), registry))
                    except Exception:  # a grammar the aligner cannot compile: unknown
                        logger.warning("continuations: custom grammar not compiled",
                                       exc_info=True)
                got = self._custom[lang] = tuple(built)
            return got

    def _home_automaton(self) -> WordAutomaton | None:
        if self._home is not None or not self._home_wanted:
            return self._home
        with self._lock:
            if not self._home_started:
                self._home_started = True
                threading.Thread(target=self._build_home, name="continuations-home",
                                 daemon=True).start()
        return None

    def _build_home(self) -> None:
        try:
            from intents.align import build_automaton
            from intents.grammar import build_slot_lists

            grammar = self._recognizer._grammar.intents_for("en")
            self._home = build_automaton(grammar, build_slot_lists(self._recognizer.config))
        except Exception:
            logger.warning("continuations: built-in grammar not compiled", exc_info=True)

    def warmup(self, language: str = "en") -> None:
        """Build the custom automata now and start the built-in one (English)."""
        self._custom_for(language)
        if language.lower().startswith("en"):
            self._home_automaton()

    def can_go_on(self, text: str, *, custom: bool, language: str | None) -> bool | None:
        """Whether the complete reading ``text`` could go on (None: unknown). ``custom``: the
        reading is a custom intent's (its own grammar decides), else a built-in one's."""
        lang = (language or getattr(self._recognizer.config, "language", None) or "en")
        if custom:
            answers = [can_go_on(a, text) for a in self._custom_for(lang)]
        else:
            if not lang.lower().startswith("en"):
                return None
            home = self._home_automaton()
            answers = [] if home is None else [can_go_on(home, text)]
        if any(x is True for x in answers):
            return True
        if any(x is False for x in answers):
            return False
        return None

    def name_cut_short(self, text: str, device_ids: Iterable[str]) -> bool:
        """Whether ``text`` ends in the first words of a longer name of one of these devices
        and no whole name of it was heard: "turn off the TV" read as the *TV plug* may go
        on "... plug" (a reading of a part of a name is a guess the next word can change:
        "plug" heard alone after the early end was once read as "lock")."""
        words = _tokens(text)
        by_id = {d.id: d for d in self._recognizer.config.devices}
        for dev_id in device_ids:
            dev = by_id.get(dev_id)
            if dev is None:
                continue
            names = [_tokens(n) for n in (dev.name, *dev.aliases)]
            if any(n and _contains(words, n) for n in names):
                continue
            for n in names:
                for k in range(1, len(n)):
                    if words[-k:] == n[:k]:
                        return True
        return False

    def target_unsaid(self, text: str, device_ids: Iterable[str]) -> bool:
        """Whether ``text`` says no word of any name of these devices: the target was inferred
        ("next" for the home's one media player), and the speaker may still name it ("next
        ... song on the living room speaker"). A pronoun names it ("turn it off"); words
        this cannot split (Chinese) count as naming it."""
        words = set(_tokens(text))
        if not words or words & _PRONOUNS or _CJK.search(text):
            return False
        by_id = {d.id: d for d in self._recognizer.config.devices}
        devices = [by_id[i] for i in device_ids if i in by_id]
        if not devices:
            return False
        return not any(words & set(_tokens(n)) for d in devices for n in (d.name, *d.aliases))


_CJK: Final = re.compile(r"[\u3400-\u9fff]")
#: Words that name a device already heard ("turn it off").
_PRONOUNS: Final = frozenset({"it", "its", "it's", "them", "that", "this", "those", "these"})


def _contains(words: list[str], part: list[str]) -> bool:
    k = len(part)
    return any(words[i:i + k] == part for i in range(len(words) - k + 1))


_CACHE: weakref.WeakKeyDictionary[Any, Continuations] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def continuations(recognizer: Any) -> Continuations:
    """The :class:`Continuations` of ``recognizer`` (one per recognizer, shared)."""
    with _CACHE_LOCK:
        got = _CACHE.get(recognizer)
        if got is None:
            got = _CACHE[recognizer] = Continuations(recognizer)
        return got
