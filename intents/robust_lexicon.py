"""Word lists of the robust understanding tier (``intents/robust.py``), English and Chinese.

Plain data: what a word means to a home command (an action, a kind of device, a place, an
amount), never a sentence template. The parser finds these words anywhere in a sentence.
"""

from __future__ import annotations

# -- English ---------------------------------------------------------------------------------

#: Names people give their assistant, and greetings, said before the command.
WAKE_WORDS_EN = frozenset({
    "hearth", "olly", "ollie", "alexa", "siri", "google", "assistant", "computer", "jarvis",
    "cortana", "bixby", "home", "nabu", "mycroft", "rhasspy",
})
GREETINGS_EN = frozenset({"hey", "hi", "hello", "ok", "okay", "yo", "oi", "so", "um", "uh",
                          "well", "right", "alright", "now", "and"})

#: Politeness and request frames stripped at the start (longest first when matched).
POLITE_PREFIXES_EN: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split()) for p in sorted([
        "please", "kindly", "just", "can you", "could you", "would you", "will you",
        "can you please", "could you please", "would you please", "will you please",
        "please can you", "please could you", "can u", "would you mind", "would you kindly",
        "i want you to", "i need you to", "i would like you to", "i'd like you to",
        "i want to", "i would like to", "i'd like to", "i wanna", "i need to",
        "go ahead and", "help me", "please help me", "could you help me", "can you help me",
        "let us", "let's", "lets", "you can", "you should", "do me a favour and",
        "do me a favor and", "quickly", "now", "good night", "goodnight", "good morning",
        "morning", "good evening", "good afternoon", "excuse me", "sorry", "oh",
        "maybe", "possibly", "i was wondering if you could", "i am wondering if you could",
        "i wonder if you could", "i was wondering if you can", "do you think you could",
        "would it be possible to", "is it possible to", "would you be able to",
        "are you able to", "i would love it if you could", "i would appreciate it if you could",
        "would you be so kind as to", "be a dear and", "do you mind", "could you just",
        "if you could", "if you can", "if you would", "if you do not mind",
        "is possible to", "it is possible to", "please to", "can you to", "you can to",
    ], key=lambda s: -len(s.split()))
)
POLITE_SUFFIXES_EN: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split()) for p in sorted([
        "please", "thanks", "thank you", "now", "right now", "for me", "for me please",
        "please thanks", "ok", "okay", "asap", "immediately", "thank you very much", "mate",
        "then", "quickly", "already", "good night", "goodnight", "cheers",
        "if you could", "if you can", "if you do not mind", "if possible",
    ], key=lambda s: -len(s.split()))
)

CONTRACTIONS_EN = {
    "it's": "it is", "that's": "that is", "what's": "what is", "where's": "where is",
    "how's": "how is", "i'm": "i am", "i'd": "i would", "don't": "do not", "doesn't": "does not",
    "can't": "cannot", "won't": "will not", "isn't": "is not", "aren't": "are not",
    "let's": "let us", "i'll": "i will", "you're": "you are", "we're": "we are",
    "there's": "there is", "it'll": "it will", "didn't": "did not", "wanna": "want to",
    "gonna": "going to", "gimme": "give me", "lemme": "let me", "tv's": "tv",
    "shouldn't": "should not", "couldn't": "could not", "wouldn't": "would not",
    "mustn't": "must not", "haven't": "have not", "hasn't": "has not", "wasn't": "was not",
    "weren't": "were not",
}

NUMBERS_EN = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}

#: Levels said as words (percent).
#: The brightness (%) of "on low", "to dim".
LOW_LEVEL = 25.0
LEVEL_WORDS_EN = {
    "max": 100, "maximum": 100, "full": 100, "fully": 100, "full brightness": 100,
    "half": 50, "halfway": 50, "half way": 50, "minimum": 1, "min": 1, "lowest": 1,
    "highest": 100, "brightest": 100, "dimmest": 1, "as bright as possible": 100,
    "as high as possible": 100, "as loud as possible": 100, "as dim as possible": 1,
    "as low as possible": 1, "as quiet as possible": 1,
}

#: Relative amounts (percent of brightness).
SMALL_STEP_WORDS = frozenset({"bit", "little", "slightly", "touch", "tad", "notch", "smidge"})
BIG_STEP_WORDS = frozenset({"lot", "much", "way", "loads", "significantly", "considerably"})
STEP_SMALL = 10
STEP_DEFAULT = 20
STEP_BIG = 40

#: Kind words → device kind (singular forms; plurals are reduced before lookup).
KIND_WORDS_EN: dict[str, str] = {
    "light": "light", "lamp": "light", "bulb": "light", "lighting": "light",
    "lightbulb": "light", "lights": "light", "lantern": "light", "chandelier": "light",
    "plug": "switch", "socket": "switch", "outlet": "switch", "wemo": "switch",
    "switch": "switch", "power strip": "switch", "relay": "switch",
    "fan": "fan",
    "blind": "cover", "shade": "cover", "curtain": "cover", "shutter": "cover",
    "drape": "cover", "awning": "cover", "garage": "cover", "garage door": "cover",
    "roller": "cover", "window": "cover",
    "lock": "lock", "door": "door", "deadbolt": "lock",
    "thermostat": "climate", "heat": "climate", "heating": "climate", "heater": "climate",
    "ac": "climate", "aircon": "climate", "air conditioning": "climate",
    "air conditioner": "climate", "a/c": "climate", "radiator": "climate",
    "temperature": "climate", "boiler": "climate", "temp": "climate",
    "speaker": "media_player", "music": "media_player", "song": "media_player",
    "track": "media_player", "volume": "media_player", "tv": "media_player",
    "television": "media_player", "stereo": "media_player",
    "sound": "media_player", "playback": "media_player", "tune": "media_player",
    "vacuum": "vacuum", "roomba": "vacuum", "hoover": "vacuum", "robot": "vacuum",
    "vacuum cleaner": "vacuum", "robot vacuum": "vacuum", "cleaner": "vacuum",
}
#: Cover device classes named by a kind word (see intents.resolve.COVER_CLASS_WORDS).
COVER_CLASS_EN = {"garage": "garage", "garage door": "garage", "blind": "blind",
                  "shade": "shade", "curtain": "curtain", "shutter": "shutter",
                  "drape": "curtain", "awning": "awning", "window": "window"}

#: Words meaning "every device" / "the whole home".
ALL_WORDS_EN = frozenset({"everything", "anything", "all", "every", "each", "whole"})
HOME_WORDS_EN = frozenset({"house", "home", "apartment", "flat", "everywhere", "place",
                           "building", "property", "interior", "indoor", "indoors"})
#: "here", "this room": the speaker's area.
HERE_PHRASES_EN: tuple[tuple[str, ...], ...] = (
    ("in", "here"), ("down", "here"), ("up", "here"), ("over", "here"), ("this", "room"),
    ("my", "room"), ("the", "room"), ("a", "room"), ("room",), ("here",),
    ("this", "area"), ("where", "i", "am"),
)

#: Adjectives that may stand before a kind word without naming a device.
HARMLESS_MODIFIERS_EN = frozenset({
    "the", "my", "our", "your", "all", "every", "each", "both", "these", "those", "this",
    "that", "a", "an", "some", "any", "other", "current", "smart", "new", "main", "interior",
    "indoor", "inside", "house", "home", "room", "little", "big", "few", "remaining",
    "electric", "electrical", "wall", "of", "to", "in", "on", "off", "and", "up", "down",
    "please", "its", "their", "more", "less", "whole", "entire", "general", "normal",
    "one", "two", "1", "2", "just", "different", "random", "another", "night", "nighttime",
    "mood", "reading", "ambient", "sleep", "romantic", "relaxing", "getting", "gets",
    "becoming", "nice", "lovely", "pleasant", "gentle",
})

COLORS_EN = frozenset({
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "violet", "cyan",
    "magenta", "turquoise", "teal", "indigo", "lime", "gold", "amber", "lavender", "crimson",
    "aqua", "coral", "navy", "maroon", "brown", "salmon", "beige",
})
#: Colour-temperature words → kelvin.
COLOR_TEMP_EN = {
    "warm": 2700, "warmer": 2700, "cozy": 2700, "cosy": 2700, "soft": 2700, "candle": 2200,
    "cool": 5000, "cooler": 5000, "cold": 6500, "daylight": 5500, "neutral": 4000,
    "natural": 4000, "bright white": 6500,
}

#: Action words. Each maps a token to an action; particles ("on", "off", "up", "down") are
#: handled by the parser because they depend on their neighbours.
VERBS_ON_OFF_EN = frozenset({"turn", "switch", "put", "power", "flip", "toggle", "set", "get",
                             "knock", "click", "shut", "cut", "flick", "leave", "keep"})
VERBS_OFF_EN = frozenset({"kill", "extinguish", "douse", "deactivate", "disable",
                          "unplug", "cut"})
VERBS_ON_EN = frozenset({"activate", "enable", "start", "illuminate", "launch", "boot"})
VERBS_OPEN_EN = frozenset({"open", "raise", "lift", "unroll"})
VERBS_CLOSE_EN = frozenset({"close", "shut", "lower", "draw"})
VERBS_DIM_EN = frozenset({"dim", "darken", "dimmer", "darker", "decrease", "reduce", "lower",
                          "lessen", "soften", "tone", "minimize", "minimise", "low", "lesser",
                          "less", "weaken", "drop"})
VERBS_BRIGHTEN_EN = frozenset({"brighten", "brighter", "increase", "raise", "boost",
                               "intensify", "bright", "more", "maximize", "maximise",
                               "strengthen", "lighter", "stronger"})
VERBS_SET_EN = frozenset({"set", "make", "change", "turn", "put", "adjust", "switch",
                          "go", "bring", "give", "show", "paint", "color", "colour"})
VERBS_PAUSE_EN = frozenset({"pause", "stop", "halt", "freeze"})
VERBS_RESUME_EN = frozenset({"resume", "unpause", "continue", "play"})
VERBS_NEXT_EN = frozenset({"next", "skip"})

#: Requests Hearth cannot serve, by the first keyword found, with the reason shown.
OUT_OF_SCOPE_EN: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"timer", "timers", "countdown"}),
     "say how long the timer should run, such as 'set a timer for 5 minutes'"),
    (frozenset({"alarm", "alarms", "wake"}), "I can't set alarms yet"),
    (frozenset({"remind", "reminder", "reminders"}), "I can't set reminders yet"),
    (frozenset({"weather", "forecast", "rain", "raining", "sunny", "umbrella", "snow"}),
     "I can't tell the weather"),
    (frozenset({"joke", "jokes", "funny"}), "I can't tell jokes"),
    (frozenset({"news", "headlines"}), "I can't read the news"),
    (frozenset({"shopping", "buy", "purchase", "groceries", "cart", "basket"}),
     "I can't keep shopping lists"),
    (frozenset({"call", "phone", "dial", "text", "message", "email", "e-mail", "sms"}),
     "I can't make calls or send messages"),
    (frozenset({"recipe", "cook", "cooking", "bake", "oven", "microwave", "dishwasher",
                "washing", "laundry", "fridge", "kettle", "toaster", "tea"}),
     "I can't control that appliance"),
    (frozenset({"order", "deliver", "delivery", "pizza", "taxi", "uber", "book"}),
     "I can't order things"),
    (frozenset({"time", "date", "day", "clock"}), "I can't tell the time yet"),
    (frozenset({"calendar", "meeting", "appointment", "schedule"}),
     "I can't manage a calendar"),
    (frozenset({"spell", "translate", "define", "meaning", "wikipedia", "who", "why"}),
     "a question Hearth cannot answer; I can only control the home"),
)

#: Words meaning the request is for later or repeated: Hearth acts now or not at all.
SCHEDULE_WORDS_EN = frozenset({"when", "tomorrow", "tonight", "daily", "weekly", "every day",
                               "later", "o'clock", "oclock", "minutes", "hours",
                               "hour", "minute", "until", "after", "before", "morning",
                               "evening", "afternoon", "whenever", "schedule", "week",
                               "weekend", "sunset", "sunrise"})

NEGATIONS_EN = frozenset({"not", "never", "dont", "don't", "no"})

#: Words that may appear in a command without meaning anything for it (never "unknown names").
FUNCTION_WORDS_EN = frozenset({
    "the", "a", "an", "my", "our", "your", "to", "in", "on", "off", "of", "at", "for", "with",
    "and", "then", "up", "down", "it", "them", "is", "are", "be", "this", "that", "these",
    "those", "me", "us", "i", "we", "you", "some", "all", "every", "please", "by", "percent",
    "degrees", "degree", "level", "bit", "little", "lot", "so", "can", "could", "would",
    "will", "should", "too", "very", "really", "quite", "much", "way", "now", "again",
    "there", "here", "room", "from", "into", "its", "their", "any", "just", "also", "about",
    "around", "over", "out", "as", "than", "setting", "settings", "mode", "colour",
    "color", "brightness", "intensity", "power", "light", "lights", "let", "have",
    "has", "had", "get", "got", "go", "do", "does", "need", "want", "like", "more", "less",
    "what", "how", "am", "was", "were", "being", "if", "or", "but", "yes", "feels", "feel",
})

# -- Chinese ---------------------------------------------------------------------------------

WAKE_PREFIXES_ZH: tuple[str, ...] = tuple(sorted([
    "小爱同学", "小度小度", "天猫精灵", "嘿壁炉", "你好壁炉", "壁炉", "嘿", "嗨", "你好", "喂",
    "哈喽", "小爱", "小度", "hearth", "hey hearth", "那个",
], key=len, reverse=True))
POLITE_ZH: tuple[str, ...] = tuple(sorted([
    "请你帮我", "请帮我", "麻烦你帮我", "麻烦帮我", "麻烦你", "麻烦", "帮我", "帮忙", "请你",
    "请", "能不能", "可以帮我", "可不可以", "你能", "能否", "给我", "替我", "我想要", "我想",
    "我要", "我需要", "你可以", "可以", "一下子", "一下", "谢谢你", "谢谢", "好吗", "好不好",
    "行吗", "可以吗", "吧", "呀", "啊", "哦", "呢", "嘛", "了吧", "了", "我想知道", "想知道",
    "告诉我",
], key=len, reverse=True))

DIGITS_ZH = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
UNITS_ZH = {"十": 10, "百": 100}

KIND_WORDS_ZH: tuple[tuple[str, str], ...] = (
    ("灯光", "light"), ("灯泡", "light"), ("电灯", "light"), ("照明", "light"), ("台灯", "light"),
    ("灯", "light"),
    ("智能插座", "switch"), ("插座", "switch"), ("插头", "switch"), ("开关", "switch"),
    ("风扇", "fan"), ("电扇", "fan"), ("吊扇", "fan"),
    ("车库门", "cover"), ("窗帘", "cover"), ("百叶窗", "cover"), ("卷帘", "cover"),
    ("遮阳帘", "cover"),
    ("门锁", "lock"), ("锁", "lock"), ("前门", "lock"), ("大门", "lock"), ("窗户", "cover"),
    ("门", "door"),
    ("温控器", "climate"), ("暖气", "climate"), ("空调", "climate"), ("地暖", "climate"),
    ("温度计", "sensor"), ("温度", "climate"), ("恒温器", "climate"),
    ("音箱", "media_player"), ("音响", "media_player"), ("音乐", "media_player"),
    ("歌", "media_player"),
    ("音量", "media_player"), ("声音", "media_player"), ("电视", "media_player"),
    ("播放器", "media_player"),
    ("扫地机器人", "vacuum"), ("扫地机", "vacuum"), ("吸尘器", "vacuum"), ("扫地", "vacuum"),
)
COVER_CLASS_ZH = {"窗户": "window", "车库门": "garage", "窗帘": "curtain", "百叶窗": "blind",
                  "卷帘": "blind", "遮阳帘": "shade"}
ALL_WORDS_ZH = ("所有的", "所有", "全部的", "全部", "全屋", "全家", "整个房子", "家里所有",
                "家里的", "家里", "每个", "一切", "都", "全")
HERE_WORDS_ZH = ("这个房间", "这间屋", "这屋", "这里", "这儿", "这边", "屋里", "房间里",
                 "我这", "这")

COLORS_ZH = {
    "红色": "red", "红": "red", "绿色": "green", "绿": "green", "蓝色": "blue", "蓝": "blue",
    "黄色": "yellow", "黄": "yellow", "橙色": "orange", "橙": "orange", "紫色": "purple",
    "紫": "purple", "粉色": "pink", "粉红": "pink", "粉": "pink", "白色": "white",
    "青色": "cyan", "金色": "gold",
}
COLOR_TEMP_ZH = {"暖白": 2700, "暖光": 2700, "暖色": 2700, "暖一点": 2700, "暖黄": 2700,
                 "冷白": 5000, "冷光": 5000, "冷色": 5000, "白光": 5000, "自然光": 4000}

OUT_OF_SCOPE_ZH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("计时", "定时", "倒计时"),
     "say how long the timer should run, such as 'set a timer for 5 minutes'"),
    (("闹钟", "叫我起床"), "I can't set alarms yet"),
    (("提醒",), "I can't set reminders yet"),
    (("天气", "下雨", "气温预报", "预报"), "I can't tell the weather"),
    (("笑话",), "I can't tell jokes"),
    (("新闻",), "I can't read the news"),
    (("购物", "买", "下单", "外卖", "订"), "I can't order things"),
    (("打电话", "发短信", "发消息", "微信"), "I can't make calls or send messages"),
    (("几点", "时间", "日期", "星期几"), "I can't tell the time yet"),
    (("做饭", "菜谱", "烤箱", "微波炉", "洗碗机", "洗衣机", "冰箱", "烧水", "泡茶"),
     "I can't control that appliance"),
)
SCHEDULE_WORDS_ZH = ("分钟后", "小时后", "明天", "今晚", "每天", "以后", "之后", "的时候",
                     "点钟", "早上", "晚上", "回家时", "到家", "等一下再", "等会", "待会",
                     "一会儿", "过会", "稍后")
NEGATIONS_ZH = ("不要", "别", "不用", "不必", "没")
#: Traditional characters Whisper writes now and then (打開客廳的燈), as the simplified ones.
TRADITIONAL_ZH = str.maketrans(
    "開關燈廳臥樂暫氣調門鎖溫設電視風簾聲響掃機書廚間點請幫個這裡邊樓層後車庫將為麼嗎還沒時啟動讓給變"
    "換顏紅綠藍黃熱涼兩幾謝煩聽繼續靜閉捲塵頭鐘計鬧現馬確認檢著們裏臺態狀過對說錯應該總陽會試睡覺亂濕乾淨",
    "开关灯厅卧乐暂气调门锁温设电视风帘声响扫机书厨间点请帮个这里边楼层后车库将为么吗还没时启动让给变"
    "换颜红绿蓝黄热凉两几谢烦听继续静闭卷尘头钟计闹现马确认检着们里台态状过对说错应该总阳会试睡觉乱湿干净")
