"""Respelling misheard slot values: a restricted grammar alignment for the built-in grammar.

Aligning a hypothesis against the whole home grammar (26 000 automaton states) was too slow
and too eager (docs/benchmarks.md). But in a misheard home command the *frame* is usually
heard right ("turn on the …", "set the … to 50 percent") and the *name* is wrong ("round jump"
for "lounge lamp", "cloth machine" for "coffee machine"). So only the slot spans are aligned:
every run of words in the hypothesis that holds no frame word (the grammar's own literal
words, numbers, politeness) is compared by sound (:mod:`intents.phonetic`) with the home's
device, area, floor and scene names and the grammar's colours, and replaced by the closest
one when

* the whole span sounds like it (:data:`MIN_SPAN_SIMILARITY`),
* every word that differs sounds like the word it replaces (:data:`MIN_WORD_SIMILARITY`;
  "lava lamp" is not "lounge lamp" just because both end in "lamp"),
* and no *other* name comes close (:data:`MIN_MARGIN`): "round jump" may become "lounge
  lamp" only because nothing else in the home sounds like it — nor any of the *decoys*,
  names of rooms and things a home may have but this one does not
  (``intents/data/decoys_<language>.txt``: "bathroom", "oven", "dining room"). Without
  them "turn on the lights in the bathroom" in a home with a bedroom and no bathroom would
  be repaired into the bedroom: a false action. They play the part of a garbage model.

The respelled text must then parse in the real recognizer, which is what keeps chatter
chatter. Numbers are never produced (a number heard wrong is a wrong action, and number
words are frame words here), nor "on"/"off" (frame words too): a wrong on/off is a wrong
action, not a misheard name.

Immutable after construction; thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from devices.registry import HomeConfig
from intents.phonetic import PhoneticIndex, SoundMatch, phonetic_similarity
from intents.repair import custom_template_texts, number_words, template_words, words

#: The span must sound at least this much like the name (1 = the same sounds).
MIN_SPAN_SIMILARITY: Final = 0.7
#: The words of the span that differ from the name's must sound this much like them.
MIN_WORD_SIMILARITY: Final = 0.7
#: Spans and names with different word counts ("bed room" / "bedroom") need this much.
MIN_JOINED_SIMILARITY: Final = 0.85
#: The closest name must beat the closest name of any other entity by this much.
MIN_MARGIN: Final = 0.12
#: Longest span looked at, in words ("kitchen temperature sensor" has three).
MAX_SPAN_WORDS: Final = 4
#: Respelled readings tried per utterance at most (each costs one parse).
MAX_CANDIDATES: Final = 8
#: Memoized runs kept at most (heard words are unbounded in a long-running server).
MEMO_LIMIT: Final = 20_000

#: Frame words that do not make a command by themselves: a run is respelled only when the
#: rest of the utterance holds another frame word ("turn", "on", "set", "percent", ...).
_FILLER: Final = frozenset(
    """a an the of and or my our your this that it its is are be please could can would you
    will i i'm me we us do does so just hey okay ok oh yes no thanks thank then now also there
    here what how good""".split()
)
_DECOY: Final = "decoy:"
_MISSING: Final = object()
_EXTRA_FRAME: Final = frozenset(
    """a an the of to in on off at by for with and or my our your this that it its is are
    please could can would you will i me we us do does turn switch set make change put get
    give start stop open close shut lock unlock activate dim brighten raise lower percent
    degrees degree celsius fahrenheit point half what how there here then now also so just
    hey okay ok thanks thank""".split()
)


@dataclass(frozen=True, slots=True)
class Respelling:
    """A hypothesis with one slot span replaced by a name that sounds like it."""

    text: str
    heard: str
    name: str
    entity: str
    similarity: float
    margin: float

    def describe(self) -> str:
        return f"{self.heard!r}→{self.name!r} (sounds {self.similarity:.2f})"


def home_spellings(config: HomeConfig, colors: Iterable[str] = ()) -> dict[str, str]:
    """Every ASCII spelling of the home's slot values → the entity it names
    (``device:<id>``, ``area:<id>``, ``floor:<id>``, ``scene:<id>``, ``color:<name>``)."""
    out: dict[str, str] = {}

    def add(spellings: Iterable[str], entity: str) -> None:
        for s in spellings:
            key = " ".join(words(s))
            if key and s.isascii():
                out.setdefault(key, entity)

    for d in config.devices:
        add([d.name, *d.aliases], f"device:{d.id}")
    for a in config.areas:
        add([a.name, *a.aliases], f"area:{a.id}")
    for f in config.floors:
        add([f.name, *f.aliases], f"floor:{f.id}")
    for s in config.scenes:
        add([s.name, *s.aliases], f"scene:{s.id}")
    for c in colors:
        add([c], f"color:{c}")
    return out


def _sentence_data(language: str) -> list[Mapping[str, Any]]:
    """The raw hassil data of ``language``: home-assistant-intents' and Hearth's own."""
    from home_assistant_intents import get_intents

    from intents.grammar import DATA_DIR

    out: list[Mapping[str, Any]] = []
    data = get_intents(language)
    if data:
        out.append(data)
    ours = DATA_DIR / f"sentences_{language}.yaml"
    if ours.is_file():
        loaded = yaml.safe_load(ours.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            out.append(loaded)
    return out


def grammar_words(language: str) -> set[str]:
    """The literal words of the built-in sentence templates and expansion rules of
    ``language`` (package spelling): the frame of every command."""
    found: set[str] = set()
    for data in _sentence_data(language):
        found.update(template_words(custom_template_texts(data)))
    return {w for t in found for w in words(t)}


def grammar_colors(language: str) -> list[str]:
    """The values of the built-in grammar's ``color`` list."""
    out: list[str] = []
    for data in _sentence_data(language):
        body = (data.get("lists") or {}).get("color") or {}
        for v in body.get("values") or []:
            text = v.get("in") if isinstance(v, dict) else v
            if isinstance(text, str) and not any(c in text for c in "()[]{}<>|"):
                out.append(text)
    return out


def decoy_names(language: str) -> list[str]:
    """The decoy names of ``language`` (``intents/data/decoys_<language>.txt``; none when
    there is no such file)."""
    from intents.grammar import DATA_DIR

    path = DATA_DIR / f"decoys_{language}.txt"
    if not path.is_file():
        return []
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


class SlotRespeller:
    """Finds slot spans of a hypothesis that sound like one of the home's names.

    ``spellings``: name → entity (:func:`home_spellings`); ``frame_words``: words that are
    never part of a slot value (the grammar's literal words); words of a spelling are never
    frame words, whatever the grammar says. ``decoys``: names that compete with the home's
    but are never respelled to (:func:`decoy_names`); a decoy the home has is the home's.
    """

    def __init__(self, spellings: Mapping[str, str], frame_words: Iterable[str],
                 decoys: Iterable[str] = ()) -> None:
        competitors = dict(spellings)
        for d in decoys:
            key = " ".join(words(d))
            if key:
                competitors.setdefault(key, _DECOY + key)
        self._index = PhoneticIndex(competitors)
        self._spellings = dict(spellings)
        # heard run → closest; the n-best hypotheses of one utterance share most runs
        self._memo: dict[str, SoundMatch | None] = {}
        name_words = {w for s in spellings for w in s.split()}
        numbers = {number_words(n) for n in range(100)} | {"hundred", "thousand"}
        frame = set(frame_words) | _EXTRA_FRAME | {w for n in numbers for w in n.split()}
        self._frame = frozenset(frame - name_words)

    def is_frame(self, word: str) -> bool:
        return word in self._frame or any(c.isdigit() for c in word)

    def slot_runs(self, text: str) -> list[tuple[int, int]]:
        """The maximal runs of non-frame words of ``text`` as (start, end) word indices."""
        runs: list[tuple[int, int]] = []
        start: int | None = None
        ws = words(text)
        for k, w in enumerate([*ws, ""]):
            if w and not self.is_frame(w):
                if start is None:
                    start = k
            elif start is not None:
                runs.append((start, k))
                start = None
        return runs

    def respellings(self, text: str) -> list[Respelling]:
        """Readings of ``text`` with one slot run respelled, most alike first.

        Only whole runs are respelled: a run is what the speaker said in place of a slot
        value, and part of one ("machine" of "cloth machine") is not a name by itself. And
        only runs inside a command: some frame word other than a filler must be heard
        around the run."""
        ws = words(text)
        out: list[Respelling] = []
        for i, j in self.slot_runs(text):
            if not any(w not in _FILLER and self.is_frame(w) for w in [*ws[:i], *ws[j:]]):
                # No command heard around the run ("Good time." is not "bedtime"): the
                # premise that the frame was heard right does not hold.
                continue
            span = ws[i:j]
            heard = " ".join(span)
            if j - i > MAX_SPAN_WORDS or heard in self._spellings:
                continue
            hit = self._closest(heard)
            if hit is None or hit.entity.startswith(_DECOY) or \
                    hit.similarity < MIN_SPAN_SIMILARITY or \
                    hit.margin < MIN_MARGIN or not _words_alike(span, hit.spelling.split(),
                                                                hit.similarity):
                continue
            respelled = " ".join([*ws[:i], hit.spelling, *ws[j:]])
            out.append(Respelling(respelled, heard, hit.spelling, hit.entity,
                                  hit.similarity, hit.margin))
        out.sort(key=lambda r: (-r.similarity, -r.margin, r.text))
        return out

    def _closest(self, heard: str) -> SoundMatch | None:
        hit = self._memo.get(heard, _MISSING)
        if hit is _MISSING:
            # Below this floor a name can neither be accepted nor come within the margin of
            # one that is, so it need not be scored.
            hit = self._index.closest(heard, floor=MIN_SPAN_SIMILARITY - MIN_MARGIN)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()  # only costs recomputation; keeps memory flat
            self._memo[heard] = hit
        return hit if isinstance(hit, SoundMatch) else None


def _words_alike(heard: list[str], name: list[str], whole: float) -> bool:
    """Whether the words that differ sound alike by themselves: the words a span shares
    with a name ("room light" of "sitting room light" and "living room light") say nothing
    about the words it does not share."""
    if len(heard) != len(name):
        return whole >= MIN_JOINED_SIMILARITY
    differ = [(h, n) for h, n in zip(heard, name, strict=True) if h != n]
    return phonetic_similarity(" ".join(h for h, _ in differ),
                               " ".join(n for _, n in differ)) >= MIN_WORD_SIMILARITY
