"""Normalization for the robust tier: English tokens (punctuation, contractions, number
words, plurals, a leading wake name or politeness) and Chinese text (numbers, fillers)."""

from __future__ import annotations

import re

from intents import robust_lexicon as L


def _singular(word: str, known: frozenset[str]) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word[:-1] in known:
        return word[:-1]
    if word in known:
        return word
    if word.endswith("ies") and word[:-3] + "y" in known:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2] in known:
        return word[:-2]
    if word.endswith("s") and word[:-1] in known:
        return word[:-1]
    return word


def _number_words(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in ("two", "too") and i > 0 and ((nxt.isdigit() and int(nxt) >= 10) or (
                nxt in L.NUMBERS_EN and L.NUMBERS_EN[nxt] >= 10)):
            out.append("to")  # "dim the lights two 50 percent": Whisper's "to"
            i += 1
            continue
        if t in L.NUMBERS_EN or (t in ("a", "one") and i + 1 < len(tokens)
                                 and tokens[i + 1] == "hundred"):
            value = 0
            j = i
            if t in ("a", "one") and j + 1 < len(tokens) and tokens[j + 1] == "hundred":
                value, j = 100, j + 2
            else:
                value = L.NUMBERS_EN[t]
                j += 1
                if value >= 20 and value % 10 == 0 and j < len(tokens) \
                        and tokens[j] in L.NUMBERS_EN and L.NUMBERS_EN[tokens[j]] < 10:
                    value += L.NUMBERS_EN[tokens[j]]
                    j += 1
                elif value < 10 and j < len(tokens) and tokens[j] == "hundred":
                    value *= 100
                    j += 1
            if j < len(tokens) and tokens[j] == "point" and j + 1 < len(tokens) \
                    and tokens[j + 1] in L.NUMBERS_EN and L.NUMBERS_EN[tokens[j + 1]] < 10:
                out.append(f"{value}.{L.NUMBERS_EN[tokens[j + 1]]}")
                j += 2
            elif tokens[j:j + 3] == ["and", "a", "half"]:  # "twenty one and a half"
                out.append(f"{value}.5")
                j += 3
            else:
                out.append(str(value))
            i = j
            continue
        out.append(t)
        i += 1
    return out


def normalize_en(text: str, *, correct: bool = True) -> list[str]:
    """Lower-cased tokens: punctuation dropped, contractions expanded, numbers as digits,
    "%" as "percent", a leading wake name/greeting/politeness and trailing politeness gone;
    with ``correct``, only what a correction said as the command was spoken kept."""
    s = text.lower().replace("’", "'").replace("‘", "'")
    s = re.sub(r"(\d)\s*%", r"\1 percent ", s)
    s = re.sub(r"\b(\d{4})\s*k\b", r"\1 kelvin", s)  # "4000K"
    s = re.sub(r"\b(colou?r) temperature\b", r"\1", s)  # a light's white, not the heat
    s = re.sub(r"(\d)\s*°\s*([cf])\b", r"\1 degrees \2", s)
    s = s.replace("°", " degrees ")
    s = re.sub(r"(?<=\d)\.(?=\d)", "\x00", s)
    # Chinese said amid English stays a word (unknown here), never dropped: "turn off all 灯"
    # is not "turn off all"
    s = re.sub(r"[^a-z0-9'\x00/ \u3400-\u9fff]+", " ", s.replace("-", " "))
    s = s.replace("\x00", ".")
    tokens: list[str] = []
    for t in s.split():
        t = t.strip("'")
        if not t:
            continue
        if t in L.CONTRACTIONS_EN:
            tokens.extend(L.CONTRACTIONS_EN[t].split())
        elif t.endswith("'s"):
            tokens.append(t[:-2])
        elif t.endswith("s'"):
            tokens.append(t[:-1])
        else:
            tokens.append(re.sub(r"^ple+a+s+e*$", "please", t.replace("'", "")))  # "pleeease"
    tokens = [_GERUNDS.get(t, _SAID_AS.get(t, t)) for t in _number_words(tokens)
              if t not in _HESITATIONS]
    while len(tokens) > 2 and tokens[0] == tokens[1] and tokens[0] in _COMMAND_VERBS:
        tokens = tokens[1:]  # "switch switch off the coffee maker": a stutter
    said = re.sub(r" (?:not so|not too|less) (loud|bright|hot|warm|cold|cool|dark) ",
                  lambda m: f" {_LESS[m.group(1)]} ", " " + " ".join(tokens) + " ")
    said = re.sub(r" power down ", " power off ", said)  # not a dimming "down"
    # "I'd like the blinds closed" (not "looks like the blinds are open"; an opening wished for
    # stays a wish: "I need the garage open" is no outright order)
    said = re.sub(r" (?:i|we|would) (?:like|want|need|prefer) ((?:the|my|all the)(?: (?!is |are |"
                  r"was |were |been )[a-z]+){1,3}) (?:closed|shut) ", r" close \1 ", said)
    said = re.sub(r"^ (do you know|i wonder|i am wondering|i was wondering|any idea) "
                  r"(if|whether) ", r" check \2 ", said)  # "do you know if the door is locked"
    # "half as bright", "twice as loud": the comparative, a step (the level is not known here)
    said = re.sub(r" half as (loud|bright|hot|warm) (as (it is|now) )?",
                  lambda m: f" {_LESS[m.group(1)]} ", said)
    said = re.sub(r" (twice|double) as (loud|bright|warm) (as (it is|now) )?",
                  lambda m: f" {_MORE[m.group(2)]} ", said)
    # "shut the coffee maker down", "fire up the fan": a verb of its own with its particle,
    # on or off (not a dimming "down"; a cover stays shut, not "off")
    said = re.sub(r" (shut|power) ((?:the|my|our|that|this|it)(?: (?!blind|shade|curtain|"
                  r"shutter|garage|window|door)\w+){0,4} )?down(?= |$)",
                  lambda m: f" {m.group(1)} {m.group(2) or ''}off", said)
    said = re.sub(r" fire ((?:the|my|our|that|this|it)(?: \w+){0,4} )?up(?= |$)",
                  lambda m: f" turn {m.group(1) or ''}on", said)
    sound = bool(set(tokens) & {"music", "volume", "sound", "speaker", "song", "tune", "tunes"})
    said = re.sub(r" (more|too|so|very) strong ", lambda m: (  # "the light is too strong"
        f" {'louder' if sound else 'brighter'} " if m.group(1) == "more"
        else f" {m.group(1)} {'loud' if sound else 'bright'} "), said)
    said = re.sub(r" make ((?:it|this|that|the \w+) )(loud|quiet) ",
                  lambda m: f" make {m.group(1)}{_MORE[m.group(2)]} ", said)  # "make it loud"
    said = re.sub(r" more (loud|bright|hot|warm|cold|cool|dark|quiet|high|low) ",
                  lambda m: f" {_MORE[m.group(1)]} ", said)  # "more hot please": hotter
    said = re.sub(r" (volume|louder|quieter|softer|percent) on (the|my) ", r" \1 of \2 ",
                  said)  # "raise the volume on the speaker": no "on"
    tokens = _strip_politeness(_fractions(said.split()))
    return _told(_corrected(tokens) if correct else tokens)


#: Words that take back what was just said ("… the kitchen light, no wait, the hall light").
_CORRECTIONS: tuple[tuple[str, ...], ...] = (
    ("no", "wait"), ("no", "sorry"), ("no", "no"), ("sorry", "i", "mean"), ("i", "mean"),
    ("or", "rather"), ("scratch", "that"), ("make", "that"), ("actually",), ("sorry",),
    ("wait",), ("no",))
_DETERMINERS = frozenset({"the", "my", "a", "an", "our"})
_COMMAND_VERBS = frozenset({"turn", "switch", "set", "dim", "brighten", "open", "close",
                            "lock", "unlock", "start", "stop", "pause", "play", "put", "make",
                            "shut", "raise", "lower", "activate"})


def _corrected(tokens: list[str]) -> list[str]:
    """A command corrected as it was said keeps only the correction: "turn on the kitchen
    light no wait the living room light" is the living room light (never both), "set it to
    20 no 30 percent" is 30. The words after the last correction replace the phrase of the
    same kind before it (a noun phrase from its determiner, a number), or the whole command
    when they are one; corrections of corrections are taken in the order they were said."""
    for i in range(2, len(tokens)):
        marker = next((m for m in _CORRECTIONS if tuple(tokens[i:i + len(m)]) == m), None)
        if marker is None:
            continue
        before, after = tokens[:i], tokens[i + len(marker):]
        if not after:
            return tokens
        head = after[0]
        if marker == ("no",) and not (head in _DETERMINERS or head in _COMMAND_VERBS
                                      or head.replace(".", "").isdigit()):
            continue  # "no" that is not a correction ("no more than …")
        if head in _COMMAND_VERBS:
            return _corrected(after)
        if head.replace(".", "").isdigit():
            nums = [j for j, t in enumerate(before) if t.replace(".", "").isdigit()]
            if not nums:
                return tokens
            return _corrected(before[:nums[-1]] + after)
        dets = [j for j, t in enumerate(before) if t in _DETERMINERS]
        if not dets:
            return tokens
        if head not in _DETERMINERS:
            after = [before[dets[-1]], *after]
        return _corrected(before[:dets[-1]] + after)
    return tokens


_MAKE_SURE = {"locked": ["lock"], "off": ["turn", "off"], "on": ["turn", "on"],
              "closed": ["close"], "shut": ["close"]}


def _told(tokens: list[str]) -> list[str]:
    """"tell the roomba to stop" is "stop the roomba"; "make sure the front door is locked" is
    "lock the front door" (never an opening: "make sure it is open" stays as said)."""
    if tokens[:2] == ["make", "sure"] and len(tokens) > 4 and tokens[-2] in ("is", "are") \
            and tokens[-1] in _MAKE_SURE:
        return _MAKE_SURE[tokens[-1]] + tokens[2:-2]
    if tokens[:1] == ["tell"] and "to" in tokens[2:]:
        k = tokens.index("to", 2)
        if k + 1 < len(tokens):
            return tokens[k + 1:] + tokens[1:k]
    return tokens


#: "not so loud", "less bright": the comparative the other way.
_LESS = {"loud": "quieter", "bright": "dimmer", "hot": "cooler", "warm": "cooler",
         "cold": "warmer", "cool": "warmer", "dark": "brighter"}
_MORE = {"loud": "louder", "bright": "brighter", "hot": "warmer", "warm": "warmer",
         "cold": "cooler", "cool": "cooler", "dark": "darker", "quiet": "quieter",
         "high": "higher", "low": "lower"}
_FRACTIONS = {"quarter": 25, "quarters": 25, "third": 33, "thirds": 33}


def _fractions(tokens: list[str]) -> list[str]:
    """"a quarter", "three quarters", "two thirds" as a level: 25, 75, 67 percent (not "a
    quarter past seven", "a quarter of an hour")."""
    out: list[str] = []
    for i, t in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in _FRACTIONS and out and (out[-1] in ("a", "one") or out[-1].isdigit()) \
                and (nxt not in ("past", "to", "of", "hour", "hours")
                     or tokens[i + 1:i + 4] == ["of", "the", "way"]):
            n = 1 if out[-1] in ("a", "one") else int(out[-1])
            if n * _FRACTIONS[t] <= 100:
                out[-1:] = [str(min(100, round(n * 100 / (4 if t[0] == "q" else 3)))),
                            "percent"]
                continue
        out.append(t)
    return out


#: Sounds of hesitation, dropped wherever they are said ("er, set the heating to, er, 20").
_HESITATIONS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm", "mm",
                          "mmm", "ah", "eh", "brr", "brrr"})

#: Everyday words for what the lexicon knows by another name.
_SAID_AS = {"telly": "tv", "tele": "tv", "hoovering": "vacuuming",
            # how hot or cold a room is, in the words people say it with
            "roasting": "boiling", "sweltering": "boiling", "scorching": "boiling",
            "nippy": "chilly", "baltic": "freezing", "arctic": "freezing"}

_GERUNDS = {"closing": "close", "opening": "open", "turning": "turn", "switching": "switch",
            "dimming": "dim", "locking": "lock", "unlocking": "unlock", "pausing": "pause",
            "lowering": "lower", "raising": "raise", "brightening": "brighten",
            "setting": "set", "putting": "put", "shutting": "shut", "starting": "start",
            "stopping": "stop", "making": "make", "changing": "change"}


def _strip_politeness(tokens: list[str]) -> list[str]:
    changed = True
    while changed and tokens:
        changed = False
        while tokens and (tokens[0] in L.GREETINGS_EN or tokens[0] in L.WAKE_WORDS_EN) \
                and len(tokens) > 1:
            tokens = tokens[1:]
            changed = True
        for p in L.POLITE_PREFIXES_EN:
            if tuple(tokens[: len(p)]) == p and len(tokens) > len(p):
                tokens = tokens[len(p):]
                changed = True
                break
        for p in L.POLITE_SUFFIXES_EN:
            if len(tokens) > len(p) + (p == ("good", "night")) and tuple(tokens[-len(p):]) == p:
                tokens = tokens[: -len(p)]
                changed = True
                break
        while len(tokens) > 1 and tokens[-1] in L.WAKE_WORDS_EN - {"home"}:
            tokens = tokens[:-1]
            changed = True
    return [t for t in tokens if t not in ("please", "kindly")]


def _zh_number(s: str) -> int | None:
    if not s:
        return None
    if s.isdigit():
        return int(s)
    total, cur = 0, 0
    for ch in s:
        if ch in L.DIGITS_ZH:
            cur = L.DIGITS_ZH[ch]
        elif ch in L.UNITS_ZH:
            unit = L.UNITS_ZH[ch]
            total += (cur or 1) * unit
            cur = 0
        else:
            return None
    return total + cur


_ZH_NUM = "零〇一二两三四五六七八九十百"


def _normalize_zh(text: str) -> str:
    s = re.sub(r"\s+", "", text.lower().translate(L.TRADITIONAL_ZH))
    s = s.replace("％", "%")
    s = re.sub(rf"([{_ZH_NUM}]+)点([{_ZH_NUM}])(?=度|%)", lambda m: f"{_zh_number(m.group(1))}."
               f"{_zh_number(m.group(2))}" if _zh_number(m.group(1)) is not None else m.group(0),
               s)  # 一点五度
    s = re.sub(rf"百分之([{_ZH_NUM}\d]+)",
               lambda m: f"{_zh_number(m.group(1))}%" if _zh_number(m.group(1)) is not None
               else m.group(0), s)
    s = re.sub(rf"([{_ZH_NUM}]+)(度|%|摄氏度)",
               lambda m: f"{_zh_number(m.group(1))}{'度' if '度' in m.group(2) else '%'}"
               if _zh_number(m.group(1)) is not None else m.group(0), s)
    s = re.sub(rf"([{_ZH_NUM}]+|\d+)成(?=亮|的?亮度|$|[，,。吧左就])",
               lambda m: f"{10 * n:g}%" if (n := _zh_number(m.group(1)) if not m.group(1).isdigit()
                                              else int(m.group(1))) and 0 < n <= 10
               else m.group(0), s)  # 三成, 八成亮: tenths, as a level
    s = re.sub(r"一丢丢|一丁点儿?", "一点点", s)
    s = re.sub(r"[整搞弄](?=[亮暗大小高低])", "调", s)  # 把灯整亮点
    s = re.sub(r"拉(严实|严|紧)", "拉上", s)  # 窗帘拉严实: closed
    s = re.sub(r"反锁(上|起来)?", "锁上", s)  # 把大门反锁
    s = re.sub(r"黑(乎乎|漆漆|咕隆咚|洞洞)的?", "好黑", s)  # 屋里黑乎乎的
    s = s.replace("电视机", "电视")
    # 把走廊扫一扫, 吸一下走廊: the vacuum's verbs
    s = re.sub(r"扫一扫|扫扫|(?<![打清])扫(?=一下|下)|吸(?=一下|尘|一吸)", "打扫", s)
    s = re.sub(rf"(到|成|为|在|音量|[高低大小加减])([{_ZH_NUM}]+)(?!点|下|些|半|个)",
               lambda m: f"{m.group(1)}{_zh_number(m.group(2))}"
               if _zh_number(m.group(2)) is not None else m.group(0), s)
    s = re.sub(rf"([{_ZH_NUM}\d]+)分之([{_ZH_NUM}\d]+)", lambda m: f"{round(100 * n / d)}%"
               if (d := _zh_number(m.group(1))) and (n := _zh_number(m.group(2))) is not None
               and n <= d else m.group(0), s)  # 三分之一: 33 %
    s = re.sub(r"([大小])一?点儿?声", r"\1声", s.replace("摄氏度", "度"))  # 小点声
    s = re.sub(r"(\d+)度半", r"\1.5度", s)  # 二十度半
    return s


def _strip_zh(s: str) -> str:
    s = s.strip("，。！？!?,. ")
    changed = True
    while changed:
        changed = False
        for w in L.WAKE_PREFIXES_ZH:
            if s.startswith(w) and len(s) > len(w):
                s = s[len(w):].lstrip("，,、 ")
                changed = True
    s = re.sub(r"^([嗯呃额唔哎]+[，,、]?|请问|我(刚才|都)?说了?[，,、]?(?=[把开关打调锁拉]))", "",
               s)  # hesitations, 请问, "我说了关灯" (said again)
    if m := re.match(r"(你|您)?(能不能|可不可以|可以|能否|能)", s):
        if (re.search(r"[^了着]吗$", s) or re.search(r"把.+了吗$", s)) \
                and not re.search(r"着|没|看看|查|确认|是不是|有没有", s):
            s = s[:-1]  # "能帮我开一下咖啡机吗": a request, not a question
        s = s[m.end():] if m.group(2) == "能" else s
    for w in L.POLITE_ZH:
        if w in ("了", "吧", "呢", "啊", "呀", "哦", "嘛"):
            continue
        s = s.replace(w, "")
    s = re.sub(r"[吧呢啊呀哦嘛啦咯哈嘞呗喽哟噢]+$", "", s)
    s = re.sub(r"(?<=[关开])了", "", s)
    return s.strip("，。！？!?,. ")


def _zh_has_verb(s: str) -> bool:
    return any(w in s for w in ("开", "关", "调", "设", "锁", "暂停", "播放", "拉"))
