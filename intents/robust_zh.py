"""Chinese: one sentence split into clauses and each parsed into a command; characters the
parse cannot explain are kept so that the confidence can say so."""

from __future__ import annotations

import re

from intents import robust_lexicon as L
from intents.robust_base import (
    SETPOINT_RANGE,
    Rejected,
    _cjk,
    _light_kind,
    _Parse,
    _TierBase,
    _unique,
)
from intents.robust_text import _ZH_NUM, _normalize_zh, _strip_zh, _zh_has_verb, _zh_number

#: Words that take back what was just said (不对, 我是说; a bare 不 or 不是 between commas).
_ZH_CORRECTION = re.compile(r"(?:不对|我是说|说错了|应该是|哦不)[，,、]?|[，,、](?:不是|不)[，,、]")


#: With coffee said, words that make it no request for a cup ("咖啡凉了", "咖啡煮好了吗",
#: "我不想喝咖啡了").
_NOT_COFFEE_PLEASE = ("关", "停", "凉", "冷", "苦", "洒", "吗", "没", "好了", "不想", "不要",
                      "不喝", "别", "?", "？")

#: Words that name a kind of device (a device named by one of them is named loosely).
_KIND_ZH = frozenset(w for w, _ in L.KIND_WORDS_ZH)


class _ChineseParser(_TierBase):
    """Chinese sentences to parses."""

    def _parts_zh(self, text: str) -> list[_Parse | Rejected | None]:
        s = _normalize_zh(text)
        if not s:
            return []
        if any(w in s for w in L.SCHEDULE_WORDS_ZH) or (re.search(  # 等我睡着了再关灯
                r"等.+再|(半个?|[\d一二两三四五六七八九十几]+个?半?)(小时|钟头|分钟)", s)
                and not any(w in s for w in ("计时", "定时"))):
            raise Rejected("I can't schedule actions for later yet; ask when you want it")
        if re.match(r"[^我你请帮把开关打调，,]{1,4}?(说|让我|叫我|要我|要求)", s) \
                and not re.match(r"(小爱|小度|天猫|壁炉|嘿|你好)", s):  # "妈妈说把电视关了"
            raise Rejected("that sounds like what someone said, not a request")
        if re.search(r"开玩笑|逗你|骗你的|说着玩|算了|当我没说", s) or re.search(
                r"[，,。.!！?？…、\s](还是)?(不了|不要了?|不用了?|不对|等等|等一下|取消|别了?|停|错了|"
                r"哦不\w*|不不\w*)[吧啊呀了。.!！…]*$", s) or re.search(
                r"(不对|取消|等等|等一下|(还是)?不[要用]了)[吧啊呀。.!！…]*$", s):  # "…，不对"
            raise Rejected("that was taken back; nothing done")
        if "除了" in s or "除开" in s:  # "把家里的灯都关掉，除了卧室": leave one out
            raise Rejected("I can't leave a room out yet; name the rooms to act on")
        said, s = s, self._corrected_zh(s)
        chunks = [c for c in re.split(r"然后|接着|再把|再(?=[开关锁调打拉])|并且|同时|顺便|顺手|"
                                      r"，|,|；|;|。", s) if c]
        for i in range(len(chunks) - 1, 0, -1):  # "把风扇，打开": a 把 phrase and its verb
            if re.fullmatch(r"[把将][^开关调设锁拉]+", chunks[i - 1]) or chunks[i - 1] in {
                    n for n, _ in self._lex.cjk_devices}:  # "扫地机器人，打扫走廊"
                chunks[i - 1:i + 1] = [chunks[i - 1] + chunks[i]]
        out: list[_Parse | Rejected | None] = []
        for c in chunks:
            sub = re.split(r"(?<=[灯扇帘门箱视座])和|(?<=[灯扇帘门箱视座])并", c)
            if len(sub) > 1 and all(_zh_has_verb(x) for x in sub):
                out.extend(self._parse_zh_part(x, len(chunks) > 1) for x in sub)
            else:
                out.append(self._parse_zh_part(c, len(chunks) > 1))
        for p, prev in zip(out[1:], out, strict=False):  # "打开客厅灯，调到百分之四十": that light
            if isinstance(p, _Parse) and isinstance(prev, _Parse) and prev.devices and not (
                    p.devices or p.partial_devices or p.scene or p.areas or p.here or p.home
                    or p.floor) and (p.kind_from_action or not p.kinds):
                p.devices, p.kinds, p.kind_from_action = list(prev.devices), [], False
        said_outright = {q.action for q in out if isinstance(q, _Parse) and not q.indirect}
        told = [q for q in out if isinstance(q, _Parse) and q.indirect and (
            q.action in said_outright or (said_outright and {q.action, *said_outright} <= {
                "on", "step"}))]
        out = [q for q in out if not any(q is t for t in told)]
        for q in out:  # "好暗，开灯": the light where the speaker is, as the complaint said
            if told and isinstance(q, _Parse) and q.action in ("on", "step") and not (
                    q.areas or q.floor or q.home or q.devices or q.partial_devices):
                q.areas, q.floor = list(told[0].areas), told[0].floor
                q.here = not (q.areas or q.floor)
        for p in out:  # "太热了，温度调低点": the complaint, then what to do about it
            if isinstance(p, _Parse):
                p.corrected = s != said
        return out

    def _corrected_zh(self, s: str) -> str:
        """"打开厨房灯，不对，客厅灯" is the living room light (never both), "调到二十，不，三十"
        is 30: the words after the last correction replace the device or place (or the
        number) before it, or the whole command when they are one."""
        found = list(_ZH_CORRECTION.finditer(s))
        if not found:
            return s
        m = found[0]  # the first; what follows it may be corrected again
        before, after = s[:m.start()].rstrip("，,、。"), s[m.end():].strip("，,、。")
        if not before or not after:
            return s
        if _zh_has_verb(after):
            return self._corrected_zh(after)
        value = _zh_number(after) if re.fullmatch(rf"[{_ZH_NUM}]+", after) else None
        if value is not None or re.fullmatch(r"\d+(\.\d+)?", after):
            nums = list(re.finditer(r"\d+(?:\.\d+)?", before))
            if not nums:
                return s
            n = nums[-1]
            new = f"{value:g}" if value is not None else after
            return self._corrected_zh(before[:n.start()] + new + before[n.end():])
        names = [n for n, _ in self._lex.cjk_devices] + [n for n, _ in self._lex.cjk_areas]
        spans = [(before.rfind(n), n) for n in names if n in before]
        if not spans:
            return s
        at, name = max(spans, key=lambda x: (x[0] + len(x[1]), len(x[1])))
        return self._corrected_zh(before[:at] + after + before[at + len(name):])

    def _parse_zh_part(self, s: str, several: bool) -> _Parse | Rejected | None:
        """One clause; with several clauses, an unknown-name rejection is kept (not raised)
        so that "我要睡觉了，把灯关了" still acts on its command."""
        try:
            return self._parse_zh(s)
        except Rejected as e:
            if several and not e.final:
                return e
            if several and not _zh_has_verb(s) and not any(w in s for w in L.NEGATIONS_ZH):
                return None  # "我要做饭了，把厨房灯打开": a remark before the command
            raise

    def _parse_zh(self, raw: str) -> _Parse | None:
        s = _strip_zh(raw)
        if not s or "它" in s or "它们" in s:
            return None
        p = _Parse()
        lex = self._lex
        # "车库门关了没有", "前门锁了没": a sentence ending in 没(有) asks whether it was done
        done_q = re.search(r"(没有|没)$", s)
        if done_q and done_q.start() > 0:
            s = s[:done_q.start()]
        if not done_q and "把" not in s and re.search(r"[开关]着(呢|的)?$", s) \
                and not s.startswith(("让", "保持")):
            done_q = re.search(r"$", s)  # "咖啡机开着呢": how it is, not a command
        if (ab := re.search(r"([开关锁])[没不]\1", s)) and not done_q:
            s, done_q = s[:ab.start() + 1] + s[ab.end():], ab  # "车库门关没关": was it done
        if re.match(r"(谢谢|多谢|感谢)(你|您)", raw.strip()) \
                and re.search(r"[开关锁]了|了\W*$", raw):  # "谢谢你把灯关了": thanks for it
            raise Rejected("that is thanks for what was done; nothing to do")
        if re.match(r"(让我来|让我|我来|我去|我自己|我待会自己|我一会自己)", s):
            raise Rejected("that sounds like you'll do it yourself, not a request")  # "我来关灯"
        who = r"(我|我们|他|她|他们|她们)(刚才|刚|已经|都|早就)?"
        if (re.match(who + "把", s) or (re.match(who + "(打开|关掉|[开关锁熄])", s)
                                         and re.search(r"了[啊哦呀喔]?\W*$", raw))) \
                and not re.search(r"吧\W*$", raw):  # "我把灯关了", "我关灯了": told
            raise Rejected("that sounds like a statement, not a request")
        if s.startswith(L.NEGATIONS_ZH) or re.search(
                r"(?<![特分区识级类])(别|不要|不用|不必).*[开关调打拉锁解放播启停弄扫吸]", s):
            raise Rejected("that is not something to do (a negation)", negated=True)
        for words, reason in L.OUT_OF_SCOPE_ZH:
            if any(w in s for w in words) and not any(n in s for n, _ in lex.cjk_devices):
                raise Rejected(reason)
        if "咖啡" in s and not any("咖啡" in n for n, _ in lex.cjk_devices):
            raise Rejected("I can't make coffee: there is no coffee machine in the home")
        if "咖啡" in s and not any(w in s for w in _NOT_COFFEE_PLEASE) \
                and not any(n in s for n, _ in lex.cjk_devices if "咖啡" in n):  # not "咖啡凉了"
            machine = _unique(d for n, d in lex.cjk_devices if "咖啡" in n)
            p.partial_devices = machine[:1]
            p.action, p.explicit_verb, p.imperative = "on", True, True
            return p  # "来杯咖啡", "煮杯咖啡": the coffee machine on

        rest = s
        generic = ""  # a device named by a word of its kind ("窗帘"), and what came before it
        for name, dev in sorted(lex.cjk_devices, key=lambda x: -len(x[0])):
            if name in rest:
                p.devices.append(dev)
                if name in _KIND_ZH:
                    generic = rest[:rest.index(name)]
                rest = rest.replace(name, "＃")
        for en in re.finditer(r"[a-z]+", rest):  # "把TV关了": an English name said in Chinese
            w = en.group()
            w = w if w in self._en_names or w[:-1] not in self._en_names else w[:-1]
            if w in self._en_names:
                got = self._en_names[w]
                (p.devices if got[0] == "device" else p.partial_devices if got[0] == "loose"
                 else p.kinds).extend(got[1])
                rest = rest.replace(en.group(), "＃", 1)
        for name, sc in sorted(lex.cjk_scenes, key=lambda x: -len(x[0])):
            if name in rest:
                p.scene = sc
                rest = rest.replace(name, "＃")
        for name, a in sorted(lex.cjk_areas, key=lambda x: -len(x[0])):
            if name in rest:
                p.areas.append(a)
                rest = rest.replace(name, "＠")
        for name, f in sorted(lex.cjk_floors, key=lambda x: -len(x[0])):
            if name in rest:
                p.floor = f
                rest = rest.replace(name, "＠")
        for w in L.HERE_WORDS_ZH:
            if w in rest and (w != "这" or "这么" not in rest):
                p.here = True
                rest = rest.replace(w, "＠")
                break
        for w in L.ALL_WORDS_ZH:
            if w in rest:
                p.home = True
                p.everything = w in ("一切",)
                rest = rest.replace(w, "＠")
        for w, kind in L.KIND_WORDS_ZH:
            if w in rest:
                other = sorted({d for n, d in lex.cjk_devices if w in n
                                and self._devices[d].kind.value != kind})
                same = [d for n, d in lex.cjk_devices if w in n
                        and self._devices[d].kind.value == kind]
                if other and not same and kind in ("media_player", "switch"):  # 电视 → plug
                    p.partial_devices.extend(other)
                    rest = rest.replace(w, "＃")
                    continue
                if kind == "climate" and w == "温度":
                    p.action = None
                p.kinds.append(kind)
                p.kind_words.append(w)
                if w in L.COVER_CLASS_ZH:
                    p.cover_class = L.COVER_CLASS_ZH[w]
                rest = rest.replace(w, "＃")
        p.devices = _unique(p.devices)
        p.areas = _unique(p.areas)
        p.imperative = True  # Chinese word order puts the verb anywhere; 把/verb-first alike
        self._door(p)
        p.joined = bool(re.search(r"[和跟与、]", s))
        if not p.joined:
            self._not_there(p)
        leftover = re.sub(r"[看听]不[清见]楚?|(?<=[＠＃])[和跟与](?=[＠＃])|左右|大概|大约|"
                          r"暖和|凉快|[＃＠\d%度再个先着儿看冻黑减加增死掉叫]|开始|打扫|清扫|充电|是不是|"
                          r"回去|回来|显示|还是|睡不着|快点|赶紧|赶快|声|就行|就好|就可以|"
                          r"刺眼|晃眼|状态|查看|查|位置|那个|那|忘了|忘记|去|提高|提升|增加|减少|降低|"
                          r"转起来|转动|来点|"
                          r"大声|小声|静音|吵|切歌|切|确认|看看|检查|把|的|将|给|"
                          r"打开|开启|开|关闭|关掉|关上|关|一下|都|里|里面|"
                          r"调|到|成|为|设置|设|亮度|一点|点|些|太|好|很|有|暗|亮|颜色|色|拉|上|下|"
                          r"启动|停止|停|暂停|继续|播放|锁|解|请|帮|我|你|现在|马上|立刻|灯|"
                          r"高|低|大|小|多少|少|多|温度|度|吧|吗|了|呢|啊|是|在|"
                          r"最|一半|稍微|熄|灭|起|来|放|升|降|合|换|首|暖|冷|热|白|一|变|光|弄|让|得|更|"
                          + "|".join(map(re.escape, L.COLORS_ZH)) + "|"
                          + "|".join(map(re.escape, L.COLOR_TEMP_ZH)), "", rest)
        leftover = "".join(ch for ch in leftover if _cjk(ch))
        p.zh, p.size = True, len(s)
        if leftover:
            p.unknown = [leftover]  # a sensitive action is then never confident
        if leftover and generic.endswith((leftover, leftover + "的")) and not p.areas:
            # "阳台窗帘拉上": a place the home lacks before a word that names a device by kind
            raise Rejected(f"I don't know a place called {leftover!r}", final=False,
                           unknown=leftover)
        if leftover and not p.devices and not p.scene:
            if not (p.kinds or p.areas or p.partial_devices or p.floor) and not _zh_has_verb(s):
                # "我今天很累": no device word and no verb; the leftover names no device
                raise Rejected("I didn't understand that as a command for the home", final=False)
            raise Rejected(f"I don't know a device called {leftover!r}", final=False,
                           unknown=leftover)
        if "东西" in rest or "电器" in rest:
            p.everything = True

        # amounts
        m = re.search(r"(\d+(?:\.\d+)?)(%|度)", rest)
        if m:
            if m.group(2) == "%":
                p.number, p.percent = float(m.group(1)), True
            else:
                p.temperature, p.unit = float(m.group(1)), "C"
        else:
            m = re.search(r"(?:到|成|为|在)(\d+(?:\.\d+)?)", rest) or (
                re.search(r"(?:＃|亮度)(\d+(?:\.\d+)?)$", rest)  # "音量30", "亮度100"
                if "音量" in p.kind_words or "亮度" in rest else None)
            if m:
                p.number = float(m.group(1))
        if p.number is not None and p.number > 100 and p.temperature is None \
                and "climate" not in p.kinds:  # "音量调到两百": more than the whole way
            raise Rejected(f"{p.number:g} percent is out of range; say up to 100 percent")
        other_kind = bool(set(p.kinds) & {"climate", "media_player"})
        if "最亮" in rest or ("最高" in rest and not other_kind):
            p.number, p.percent = 100.0, True
        elif "最暗" in rest or ("最低" in rest and not other_kind):
            p.number, p.percent = 1.0, True
        elif "最大" in rest:  # "把音量开到最大"
            p.number, p.percent = 100.0, True
        elif "最小" in rest:
            p.number, p.percent = 1.0, True
        elif "一半" in rest:
            p.number, p.percent = 50.0, True
        # 一点/一些 only soften a request (调暗一点 is "dim it", as the grammar reads it):
        # the small step is for 稍微 (slightly) and the like
        small = any(w in rest for w in ("稍微", "稍稍", "微微", "一丢丢", "一点点"))
        big = any(w in rest for w in ("很多", "大大", "多一些", "非常"))
        step = L.STEP_SMALL if small else L.STEP_BIG if big else L.STEP_DEFAULT
        by = re.search(r"(?:[高低亮暗大小加减]|减少|增加|提升|降低)(\d+(?:\.\d+)?)%?(?!度|\d)",
                       rest)
        if by and p.temperature is None and not any(w in rest for w in ("到", "成", "为")):
            step, p.number, p.percent = int(float(by.group(1))), None, False  # "调高百分之十"
        kelvin = next((k for w, k in L.COLOR_TEMP_ZH.items() if w in rest), None)
        color = next((c for w, c in L.COLORS_ZH.items() if w in rest), None)
        if kelvin is not None and color in ("white", "yellow"):
            color = None  # 暖白色, 暖黄: a colour temperature, not a colour
        kinds = set(p.kinds) | {self._devices[d].kind.value for d in p.devices}
        lightish = "light" in kinds or not kinds

        def act(action: str, explicit: bool = True) -> None:
            p.action = action
            p.explicit_verb = explicit

        # questions
        check = (re.search(r"查|看看", rest) is not None and not _zh_has_verb(rest)) \
            or "确认" in rest  # "查一下前门", "帮我确认一下车库门关好了"
        question = done_q is not None or check or any(
            w in rest for w in ("多少", "几度", "吗", "怎么样", "是不是", "有没有", "？", "?",
                                "什么", "还是", "谁", "为什么", "怎么", "干嘛", "干什么"))
        if question:
            if ("climate" in kinds and any(w in rest for w in ("多少", "几度", "怎么样", "什么"))) \
                    or "几度" in rest or "多少度" in rest or (check and "温度" in p.kind_words):
                act("get_temp")
                if "climate" not in p.kinds and not any(  # not "厨房温度计显示多少度"
                        "temperature" in self._devices[d].capabilities for d in p.devices):
                    p.kinds.append("climate")
                return p
            if p.has_target() and (any(w in rest for w in ("开着", "关着", "锁", "状态", "吗"))
                                   or done_q is not None or "lock" in kinds or check
                                   or re.search(r"[开关][的着]?还是[开关]", rest)):
                act("get_state")
                return p
            raise Rejected("a question Hearth cannot answer")
        if "温度" in p.kind_words and p.temperature is None and p.number is None \
                and not any(w in rest for w in ("调", "设", "升", "降", "高", "低")):
            act("get_temp")
            return p
        # vacuum
        if "vacuum" in kinds or "打扫" in rest or "清扫" in rest:
            if not self._vacuums():
                raise Rejected("there is no robot vacuum in the home")
            if any(w in rest for w in ("回", "充电")):
                act("vreturn")
            elif "暂停" in rest:
                act("vpause")
            elif any(w in rest for w in ("停", "关")):
                act("vstop")
            elif any(w in rest for w in ("开始", "打扫", "清扫", "扫", "启动", "开", "工作",
                                         "吸")) \
                    or ("扫地" in p.kind_words and "去" in rest):  # "扫地机器人去客厅扫地"
                act("vstart", any(w in rest for w in ("开始", "打扫", "清扫", "启动", "开")))
            else:
                return None  # "扫地机器人好吵": no request
            if "vacuum" not in p.kinds:
                p.kinds.append("vacuum")
            return p
        # locks
        if "解锁" in s or "开锁" in s or ("开门" in rest and "lock" in kinds):  # not 锁 as kind
            act("unlock", bool(p.devices))  # "前门开锁"; a bare "开锁" names no door
            if "lock" not in p.kinds:
                p.kinds.append("lock")
            return p
        if any(w in s for w in ("锁上", "锁门", "上锁", "锁好", "把门锁", "锁起来", "反锁")) \
                or re.search(r"锁一下|锁上", raw):  # "前门帮我锁一下"
            act("lock")
            if "lock" not in p.kinds:
                p.kinds.append("lock")
            return p
        if p.scene and not p.devices:
            if any(w in rest for w in ("关", "退出", "取消", "停", "结束", "离开")):
                raise Rejected("a scene can't be switched off; say what to change")  # 关闭电影模式
            act("scene", any(w in rest for w in ("打开", "开启", "启动", "切换", "进入", "开")))
            return p
        # media
        if "静音" in rest:
            act("volume")
            p.number, p.percent = 0.0, True
            p.kinds.append("media_player")
            return p
        if "media_player" in kinds or any(w in rest for w in ("下一首", "暂停", "继续播放",
                                                              "切歌", "上一首", "大声", "小声",
                                                              "太吵", "换一首", "换首")):
            if any(w in rest for w in ("下一首", "下一曲", "切歌", "换一首", "换首", "切＃",
                                       "＃切")):
                act("next")
            elif m := re.search(r"(太|好|有点)(吵|响|大)|(吵)[死得]|(太|好|有点)(小|轻)|听不[清见]",
                                rest):
                # "音乐太吵了", "声音太大了": quieter; "声音太小", "听不清": louder
                loud = bool(m.group(2) or m.group(3))
                p.vstep = (-1 if loud else 1) * (20 if big and not small else 10)
                act("vstep", False)
            elif "音量" in p.kind_words or "声音" in p.kind_words or "大声" in rest \
                    or "小声" in rest or re.search(r"[开调][大小]", rest):  # "音乐声开大些"
                if p.number is not None:
                    act("volume")
                else:
                    up = any(w in rest for w in ("大", "高", "加", "升"))
                    down = any(w in rest for w in ("小", "低", "减", "降"))
                    if up == down:
                        raise Rejected("louder or quieter? say a level, such as 'volume 30'")
                    amount = step if by else 20 if big and not small else 10
                    p.vstep = amount if up else -amount
                    act("vstep")
            elif any(w in rest for w in ("暂停", "停", "关")):
                act("pause")
            elif any(w in rest for w in ("播放", "继续", "开", "放", "来点", "来首", "来一首")):
                act("resume")
            if p.action is not None:
                if "media_player" not in p.kinds:
                    p.kinds.append("media_player")
                    p.kind_from_action = True
                return p
        # temperature
        climate = "climate" in kinds
        step_words = ("调高", "调低", "升高", "降低", "提高", "高一点", "低一点", "加", "减",
                      "升", "降")
        if (p.temperature is not None or (climate and p.number is not None)) \
                and (any(w in rest for w in step_words)
                     or re.search(r"[高低]\d+(\.\d+)?度", rest)) and not any(
                    w in rest for w in ("到", "成", "为")):
            # "空调调高两度": a step of two degrees, not a setpoint of two
            degrees = p.temperature if p.temperature is not None else p.number
            p.temperature = None
            up = any(w in rest for w in ("高", "升", "加"))
            # at most 10 degrees, as in English ("turn the heat up by 40" is +10)
            self._climate_here(p, up, indirect=False, step=min(10.0, float(degrees or 1.0)))
            return p
        if p.temperature is not None or (climate and p.number is not None):
            p.temperature = p.temperature if p.temperature is not None else p.number
            t_lo, t_hi = SETPOINT_RANGE["C"]
            if p.temperature is not None and not t_lo <= p.temperature <= t_hi:
                raise Rejected(f"{p.temperature:g} degrees is not a temperature I would set; "
                               "say one between 5 and 35 degrees")
            act("temp")
            if "climate" not in p.kinds:
                p.kinds.append("climate")
            return p
        if any(w in rest for w in ("冷", "热", "冻", "暖和", "凉快")) and not color \
                and kelvin is None:  # "好冷", "冻死了", "稍微暖和一点"
            if climate or not p.has_target():
                self._climate_here(p, any(w in rest for w in ("冷", "冻", "暖和")),
                                   indirect=True)
                return p
        m = re.search(r"(太|有点|好)?([高低])了|太([高低])", rest)  # "温度高了": a complaint
        if "温度" in p.kind_words and m and not any(w in rest for w in ("调", "到", "设")):
            self._climate_here(p, "低" in m.group(0), indirect=True)
            return p
        if climate and any(w in rest for w in ("调高", "调低", "升高", "降低", "高一点",
                                               "低一点", "暖和", "凉快", "开大", "调大", "开高",
                                               "开小", "关小", "调小")):
            # "暖气开大一点": the heat up, not the heating on
            self._climate_here(p, any(w in rest for w in ("高", "升", "暖", "大")),
                               indirect=False, step=3.0 if big else 1.0)
            return p
        # covers
        if "cover" in kinds:
            if p.number is not None and p.percent:
                act("position")
            elif any(w in rest for w in ("打开", "拉开", "开", "升起", "升")):
                act("open", any(w in rest for w in ("打开", "拉开", "开启", "升起")))
            elif any(w in rest for w in ("关", "拉上", "合上", "放下", "降")):
                act("close")
            return p if p.action else None
        # colour
        if color and lightish:
            p.color = color
            act("set")
            _light_kind(p)
            return p
        if kelvin is not None and lightish:
            p.kelvin = kelvin
            act("set")
            _light_kind(p)
            return p
        # brightness
        dim = any(w in rest for w in ("调暗", "暗一点", "暗一些", "暗点", "调低亮度", "降低亮度",
                                      "亮度调低", "亮度调小", "亮度降低", "调低", "低一点",
                                      "调小亮度", "暗些", "弄暗", "变暗", "暗", "小一点", "亮度减",
                                      "亮度降"))
        bright = any(w in rest for w in ("调亮", "亮一点", "亮一些", "亮点", "调高亮度",
                                         "亮度调高", "亮度调大", "亮度提高", "调高", "高一点",
                                         "提高亮度", "调大亮度", "更亮", "亮些", "弄亮",
                                         "变亮", "大一点", "亮度加", "亮度增加"))
        too_dark = any(w in rest for w in ("太暗", "好暗", "很暗", "有点暗", "看不见", "看不清",
                                           "黑", "暗了"))
        too_bright = any(w in rest for w in ("太亮", "好亮", "很亮", "刺眼", "晃眼"))
        to_level = "light" in kinds and any(w in rest for w in ("到", "成", "为"))  # "灯光调到五十"
        if lightish and (p.number is not None and (p.percent or "亮度" in rest or to_level)):
            p.brightness = max(0, min(100, int(p.number)))
            act("set")
            _light_kind(p)
            return p
        if lightish and too_bright:
            p.step, p.indirect = -step, True
            act("step", False)
            _light_kind(p)
            return p
        if lightish and too_dark and not any(w in rest for w in ("调暗", "暗一点", "暗点")):
            p.indirect = True
            p.step = step  # on, or brighter where it is on already
            act("on", False)
            _light_kind(p)
            return p
        if lightish and (dim or bright) and not (dim and bright):
            p.step = -step if dim else step
            act("step")
            _light_kind(p)
            return p
        # on / off
        if not p.has_target() and not (p.areas or p.here or p.home or p.floor):
            return None  # "把后门打开": on/off of something the home does not name
        off = any(w in rest for w in ("关", "熄", "灭", "停"))
        on = any(w in rest for w in ("开", "启动", "点亮", "亮起", "转起来", "转动"))
        if "lock" in kinds and on != off:
            # 开门 opens (unlocks) a door, 关门 shuts it: never the other way round; an opening
            # said so is not an outright "unlock", so it stays below the sensitive bar
            act("unlock", False) if on else act("lock")
            return p
        if off and not ("打开" in rest or "开启" in rest):
            act("off")
            return p
        if on:
            act("on")
            return p
        return None
