"""English: one sentence split into commands and each parsed into its target words (devices,
areas, kinds, here, all), with unknown names, statements and out-of-scope requests refused."""

from __future__ import annotations

import itertools
import re

from devices.registry import DeviceKind
from intents import robust_lexicon as L
from intents.robust_base import (
    _ACTION_WORDS,
    _ALL_MAY_FOLLOW,
    _GENERIC_NOUNS,
    _MODIFIERS,
    _MORE_VERBS,
    _PAST_VERBS,
    _SUBJECTS,
    Rejected,
    _explained,
    _find_spans,
    _Parse,
    _split_commands,
    _unique,
    lex_play_ok,
    media_words,
)
from intents.robust_en_action import _EnglishActions
from intents.robust_text import _singular, _strip_politeness, normalize_en

#: Words that join two targets of one command ("the tv and the living room light").
_JOINERS = frozenset({"and", "plus", "also"})
#: Words of scene names that say no scene on their own ("good night", "movie time").
_SHARED_SCENE_WORDS = frozenset({"good", "night", "time", "mode", "scene", "day", "morning",
                                 "evening", "the", "a", "my", "all", "on", "off"})


#: A last clause that takes the command back ("unlock the front door. No.", "…, or not").
_TAKEN_BACK = (r"([,.;!?…]\s*(wait|hold on|no+|nah|nope|don'?t|stop|cancel|or not|actually,? no)"
               r"|\b(cancel (that|it)|never ?mind|forget (it|that)|scratch that"
               r"|i('ve| have)? changed my mind|on second thought.*))[\s.!?…]*$")

#: Verbs a command starts with (a comma before one starts the next command of a list).
_VERBS_FIRST = frozenset({"turn", "switch", "lock", "unlock", "open", "close", "set", "dim",
                          "brighten", "pause", "play", "resume", "start", "stop", "put", "make",
                          "shut", "raise", "lower"})


class _EnglishParser(_EnglishActions):
    """English sentences to parses."""

    def _parts_en(self, text: str) -> list[_Parse | None]:
        if re.search(r"\b(just kidding|only kidding|just joking|only joking|jk)\b", text, re.I) \
                or re.search(_TAKEN_BACK, text, re.I):  # "open the garage, cancel that"

            raise Rejected("that was taken back; nothing done")  # "unlock the door, just kidding"
        # "oops, wrong light, turn …": an exclamation before the command
        text = re.sub(r"^\s*(oops|whoops|oopsie|oh no|oh dear|my bad|dang|darn)\b[\s,.!]*", "",
                      text, flags=re.I)
        # "cheers, lights off": thanks said before the command (not "thanks for turning …")
        text = re.sub(r"^\s*(cheers|thanks|thank you)\s*[,.!]+\s*", "", text, flags=re.I)
        # "kitchen light on, hallway light off": two commands a comma apart
        text = re.sub(r"\b(on|off)\s*,\s*(?!(no|not|wait|sorry|actually|i mean|rather)\b)(?=\w)",
                      r"\1 and ", text, flags=re.I)
        text = re.sub(r"[.!?;]+\s+(?=(turn|switch|lock|unlock|open|close|set|dim|pause|play|start|"
                      r"stop|put|make)\b)", " and ", text, flags=re.I)  # "Pause the music. Lock …"
        pieces = text.split(",")
        for k in range(len(pieces) - 1, 0, -1):
            # "lock the door, close the garage and …": a list of commands a comma apart (each
            # starting with its verb; never "…, no, turn on …", a correction)
            if all((normalize_en(c, correct=False)[:1] or [""])[0] in _VERBS_FIRST
                   for c in pieces[k - 1:k + 1]):
                pieces[k - 1:k + 1] = [f"{pieces[k - 1]} and {pieces[k]}"]
        text = ",".join(pieces)
        clauses = [c for c in re.split(r"[,.;:!?]+", text) if c.strip()]
        named = normalize_en(clauses[0], correct=False) if len(clauses) == 2 else []
        if named and named[0] not in ("i", "we", "it", "you", "time") and not set(named) & (
                _ACTION_WORDS | L.VERBS_SET_EN | {"is", "are", "what", "how"}):
            # "the tv plug, is it on?": the question about the thing named first; "the front
            # door, lock it": the command (its name may hold the verb: "front door lock")
            if m := re.match(r"\s*(is|are|was|were|does|did|has)\s+(it|they|that|this|those)\b",
                             clauses[1], re.I):
                text = f"{m.group(1)} {clauses[0].strip()}{clauses[1][m.end():]}"
            elif (m := re.match(r"\s*((?:please |can you |could you )?\w+)\s+(it|them)\b",
                                clauses[1], re.I)) and normalize_en(m.group(1), correct=False)[
                                    -1:] and normalize_en(m.group(1), correct=False)[-1] in (
                                    _VERBS_FIRST | _ACTION_WORDS) - {"on", "off"}:
                text = f"{m.group(1)} {clauses[0].strip()}{clauses[1][m.end():]}"
            clauses = [c for c in re.split(r"[,.;:!?]+", text) if c.strip()]
        while len(clauses) > 1 and re.match(r"\s*(i|we|it|time|wrong)\b", clauses[0], re.I) and (
                normalize_en(clauses[1], correct=False)[:1] or [""])[0] in _ACTION_WORDS | {
                "turn", "switch", "set", "make", "put"}:
            # "I'm heading out, lock the front door": the command after what was said of us;
            # "we're done with the tv, turn it off": "it" is the one device the remark named
            said = [_singular(t, self._lex.singular)
                    for t in normalize_en(clauses[0], correct=False)]
            spans = _find_spans(said, self._lex.devices, [False] * len(said))
            rest = clauses[1]
            others = set(said) - set(said[spans[0][0]:spans[0][1]]) if spans else set()
            if len(spans) == 1 and not others & (_JOINERS | {"or"} | set(L.KIND_WORDS_EN)):
                name = " ".join(said[spans[0][0]:spans[0][1]])
                rest = re.sub(r"\b(it|them)\b", f"the {name}", rest, count=1, flags=re.I)
            text = ",".join(clauses := [rest, *clauses[2:]])
        tokens = normalize_en(text)
        if not tokens:
            return []
        corrected = tokens != normalize_en(text, correct=False)
        tokens = [_singular(t, self._lex.singular) for t in tokens]
        joined: list[str] = []
        for t in tokens:  # "bed room" said for "bedroom"
            if joined and joined[-1] + t in self._lex.singular and joined[-1] not in \
                    self._lex.singular:
                joined[-1] += t
            else:
                joined.append(t)
        tokens = joined
        chunks = _split_commands(tokens)
        parts = [self._parse_en(c) for c in chunks]
        hedged = re.search(r"\b(maybe|possibly|perhaps|i guess|probably)\b", text, re.I) is not None
        for p in parts:
            if p is not None:
                p.corrected, p.hedged = corrected, hedged
        return parts

    def _landmark(self, tokens: list[str], i: int) -> bool:
        """Whether the thing named at ``i`` tells where another one named before it is ("the
        light by the front door", "the lamp next to the tv")."""
        before = " " + " ".join(tokens[:i]) + " "
        m = re.search(r" (by|near|beside|at|behind|above|over|under|below|next to|in front of|"
                      r"opposite) (the |my |our )?$", before)
        return m is not None and any(
            t in L.KIND_WORDS_EN or t in self._lex.distinctive
            for t in tokens[:i - len(m.group(0).split())])

    def _parse_en(self, tokens: list[str]) -> _Parse | None:
        tokens = _strip_politeness(tokens)
        if not tokens:
            return None
        text = " " + " ".join(tokens) + " "
        p = _Parse()
        lex = self._lex
        tset = set(tokens)

        if tokens[0] in L.NEGATIONS_EN or text.startswith((" do not ", " please do not ")):
            raise Rejected("that is not something to do (a negation)", negated=True)
        if re.search(r" (do|does|did|would|will|should|could|must|might) (not|never) | dont "
                     r"| never "
                     r"| (cannot|can not) (?!see |hear |find )", text):  # "I can't sleep with …"
            # "I don't want the lights on": whatever follows is not to be done
            raise Rejected("that is not something to do (a negation)", negated=True)

        for k, (a, b) in enumerate(itertools.pairwise(tokens)):
            if a in ("switch", "turn", "shut", "power", "put", "flip", "toggle") \
                    and b in ("me", "him", "her", "us", "you"):
                raise Rejected("that doesn't sound like a command for a device")
            ends_name = b in _ACTION_WORDS and any(  # "Front Door Lock lock": its name, a verb
                tuple(tokens[k + 1 - len(t):k + 1]) == t for t, _ in lex.devices)
            if a == b and (a in L.KIND_WORDS_EN or a in lex.distinctive) and not ends_name:
                # "turn on the lamp lamp": a stutter or a misheard name ("lava lamp")
                raise Rejected(f"I heard '{a} {b}'; say which {a} you mean", final=False)

        used = [False] * len(tokens)
        dev_spans = _find_spans(tokens, lex.devices, used)
        scene_spans = _find_spans(tokens, lex.scenes, used)
        area_spans = _find_spans(tokens, lex.areas, used)
        floor_spans = _find_spans(tokens, lex.floors, used)
        landmarks = [(i0, d) for i0, _, d in dev_spans if self._landmark(tokens, i0)]
        # "the light by the front door": a device said for where the light is, not a target;
        # its room is where the light is
        p.devices = _unique([d for _, _, d in dev_spans if d not in {d for _, d in landmarks}])
        p.areas = _unique([a for _, _, a in area_spans]
                          + [where for _, d in landmarks if (where := self._devices[d].area)])
        if floor_spans:
            p.floor = floor_spans[0][2]
        if scene_spans:
            p.scene = scene_spans[0][2]
        elif m := re.search(r" for (?:a |the )?(\w+) | (\w+) (?:mode|scene) ", text):
            # "set the mood for a movie", "movie mode": a scene's own word (in no other scene)
            word = m.group(1) or m.group(2)
            own = {sid for t, sid in lex.scenes if word in t and word not in _SHARED_SCENE_WORDS}
            if len(own) == 1 and word not in lex.known - {w for t, _ in lex.scenes for w in t}:
                p.scene = own.pop()
        if re.search(r" (other|another|next|adjacent|neighbouring|neighboring|spare) (room|one) "
                     r"| next door | (next to|beside|near|opposite|across from|behind|beyond|"
                     r"past) (the |my )?(\w+ )?(room|kitchen|hall|hallway|bedroom|office|lounge|"
                     r"garage)(?= $| (on|off|and|please|now|to|at|up|down|too) )", text):
            # "the lights in the other room", "the room next to the kitchen": somewhere said by
            # where it is from another room, which Hearth cannot tell
            raise Rejected("I can't tell which room that is; say its name")
        if re.search(r" kick off (the|my) ", text):  # start ("kick off a job") or stop?
            raise Rejected("'kick off' may mean start or stop; say which")
        for here_ph in L.HERE_PHRASES_EN:
            n = len(here_ph)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i:i + n]) == here_ph and not any(used[i:i + n]):
                    if here_ph == ("room",) and i > 0 and tokens[i - 1] not in (
                            "the", "this", "my", "a", "in", "of", "every"):
                        continue
                    if here_ph == ("room",) and i > 0 and tokens[i - 1] == "every":
                        continue
                    p.here = True
                    for k in range(i, i + n):
                        used[k] = True
        if tset & L.HOME_WORDS_EN or "every room" in text or "all room" in text \
                or "whole house" in text:
            p.home = True
        # kind words, multi-word first
        for phrase in sorted(L.KIND_WORDS_EN, key=lambda k: -len(k.split())):
            ph = tuple(phrase.split())
            n = len(ph)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i:i + n]) == ph and not any(used[i:i + n]):
                    kind = L.KIND_WORDS_EN[phrase]
                    if phrase == "switch" and not self._switch_is_noun(tokens, i):
                        continue
                    if phrase in ("light", "lighting") and i + 1 < len(tokens) \
                            and tokens[i + 1] == "up" and (i == 0 or tokens[i - 1] not in (
                                "the", "my", "all", "a")):
                        continue  # "light up": a verb
                    if self._landmark(tokens, i):  # "the light by the door": which light?
                        raise Rejected(f"I can't tell which one is by the {phrase}; say its "
                                       "name or room", final=False)
                    if phrase in lex.kind_redirect:  # "the tv" where the TV is a plug
                        p.partial_devices.extend(lex.kind_redirect[phrase])
                        for k in range(i, i + n):
                            used[k] = True
                        continue
                    if phrase == "temperature" and ("what" in tset or "how" in tset):
                        p.action = p.action or "get_temp"
                    for k in range(i, i + n):
                        used[k] = True
                    p.kinds.append(kind)
                    p.kind_words.append(phrase)
                    if phrase in L.COVER_CLASS_EN:
                        p.cover_class = L.COVER_CLASS_EN[phrase]
        if not p.kinds:  # "open the garage": a room that is also a kind of device
            for i0, i1, _ in area_spans:
                phrase = " ".join(tokens[i0:i1])
                if phrase in L.KIND_WORDS_EN and L.KIND_WORDS_EN[phrase] != "light":
                    p.kinds.append(L.KIND_WORDS_EN[phrase])
                    p.kind_words.append(phrase)
                    if phrase in L.COVER_CLASS_EN:
                        p.cover_class = L.COVER_CLASS_EN[phrase]
        # loose device names: a distinctive word of exactly one device ("the wemo", "desk")
        loose: set[int] = set()
        for i, t in enumerate(tokens):
            if used[i]:
                continue
            ids = lex.distinctive.get(t)
            if not ids and t not in lex.known and len(t) > 2 and re.search(
                    r" (by|beside|near|above|over|next to) (the |my )?$",
                    " " + " ".join(tokens[:i]) + " "):
                # "the lamp by the bed": where it stands, said with a word of its name
                ids = set().union(*(v for w, v in lex.distinctive.items() if w.startswith(t)))
            if ids and len(ids) == 1:
                (dev_id,) = ids
                if dev_id not in p.devices:
                    p.partial_devices.append(dev_id)
                used[i] = True
                loose.add(i)
        p.joined = bool(tset & _JOINERS)
        if p.partial_devices and p.devices and not tset & _JOINERS:
            # a loose word beside a full name is taken as another device only where the two
            # are joined ("the tv and the living room light"), never a word of a description
            p.partial_devices = []
        p.everything = bool(tset & {"everything", "anything"}) or (
            "all" in tset and not p.kinds and not p.devices and not p.partial_devices)
        if p.everything and "all" in tset and not tset & {"everything", "anything"}:
            self._check_all(tokens, used)

        self._door(p)
        if not tset & _JOINERS:
            self._not_there(p)
        p.unknown = [t for t in tokens if not _explained(t, lex.known)]
        p.size = len(tokens)
        if "all" in tset and p.kinds and not (p.devices or p.partial_devices or p.areas):
            # "all <a word not heard right> light": "Please turn off all-way light." was "the
            # hallway light"; every light of the home is further than anyone asked
            i = tokens.index("all") + 1
            while i < len(tokens) and tokens[i] in ("the", "of", "my", "our"):
                i += 1
            if (i + 1 < len(tokens) and not used[i] and tokens[i] not in _ALL_MAY_FOLLOW
                    and used[i + 1]):
                raise Rejected(f"I didn't catch {tokens[i]!r}, so I won't act on every "
                               f"{tokens[-1] if tokens[-1] in p.kinds else 'device'}; say which "
                               "room or device", final=False)
        p.imperative = tokens[0] in _ACTION_WORDS | L.VERBS_SET_EN | _MORE_VERBS \
            and tokens[0] not in ("on", "off", "up", "down")
        self._unknown_names_en(tokens, used, loose)
        for i in sorted(loose):  # "the washing machine" is not the coffee machine
            if i > 0 and tokens[i - 1] in p.unknown and tokens[i] in _GENERIC_NOUNS:
                name = tokens[i - 1] + " " + tokens[i]
                raise Rejected(f"I don't know a device called {name!r}", final=False,
                               unknown=name)
        self._out_of_scope_en(tokens, p)
        self._action_en(tokens, text, p)
        if p.action is None:
            return None
        if p.kind_from_action or not p.has_target():
            unknown = [t for t in tokens if t not in lex.known and not t.isdigit()
                       and not re.fullmatch(r"\d+(\.\d+)?", t)]
            if unknown and not p.indirect:
                raise Rejected(f"I don't know a device called {' '.join(unknown)!r}",
                               final=False, unknown=" ".join(unknown))
            if p.action in ("on", "off") and not (p.areas or p.here or p.home or p.everything
                                                  or p.floor or p.indirect):
                return None  # "turn on": on what?
        if not (p.has_target() and not p.kind_from_action) and not p.here and not p.home \
                and not p.everything and not p.indirect and not p.areas and not p.floor \
                and tset & {"it", "them", "that", "those"} and p.action != "tstep" \
                and not (p.action == "temp" and "degrees" in tset) \
                and not (p.action == "vstep" and tset & {"louder", "quieter", "softer", "loud"}):
            return None  # "turn it off": the previous command's devices (grammar, context)
        return p

    @staticmethod
    def _check_all(tokens: list[str], used: list[bool]) -> None:
        """A bare "all" reaches the whole home only when nothing unexplained follows it:
        "turn off all", "switch it all off", "all off" — not "turn off all we like" (a
        misheard "the hallway light")."""
        i = tokens.index("all")
        if tokens[i + 1:i + 3] in (["of", "them"], ["of", "those"], ["those"], ["these"]):
            # "turn off all of them": the devices of the previous command, not the home
            raise Rejected("which devices do you mean? name them or the room")
        j = i + 1
        while j < len(tokens) and tokens[j] in ("the", "of", "my", "our", "it", "them"):
            j += 1
        if j >= len(tokens) or used[j] or tokens[j] in _ALL_MAY_FOLLOW:
            return
        raise Rejected(f"I didn't catch {' '.join(tokens[i + 1:])!r}, so I won't act on the "
                       "whole home; say which room or device")

    def _switch_is_noun(self, tokens: list[str], i: int) -> bool:
        if i == 0:
            return False
        prev = tokens[i - 1]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt in ("on", "off", "it", "them", "to", "the", "my", "all", "everything", "every"):
            return False
        return prev in ("the", "my", "a", "wall", "light", "smart", "power", "that", "this", "all",
                        "every", "both")

    def _unknown_names_en(self, tokens: list[str], used: list[bool], loose: set[int]) -> None:
        """A word the home does not know right before a kind word, or after "in the", names a
        device or place Hearth does not have: refuse rather than act on another one."""
        lex = self._lex
        for i, t in enumerate(tokens):
            is_kind = used[i] and t in {w for k in L.KIND_WORDS_EN for w in k.split()}
            if is_kind:
                j = i - 1
                name: list[str] = []
                # a word before the kind word that is no modifier, verb, amount or colour
                # ("the closet light", "movie light", "the back door", "drawing room light")
                while j >= 0 and not used[j] and not tokens[j].isdigit() and (
                        tokens[j] in ("room", "hall", "area") or tokens[j] not in _MODIFIERS):
                    name.insert(0, tokens[j])
                    j -= 1
                while name and j >= 0 and j in loose:  # "the front porch light"
                    name.insert(0, tokens[j])
                    j -= 1
                if name and not (name == ["room"] or set(name) <= {"room", "hall", "area"}):
                    while j >= 0 and not used[j] and tokens[j] not in L.FUNCTION_WORDS_EN \
                            and tokens[j] not in L.HARMLESS_MODIFIERS_EN \
                            and tokens[j] not in _ACTION_WORDS and not tokens[j].isdigit():
                        name.insert(0, tokens[j])
                        j -= 1
                    what = "room or device" if t in ("door",) else "device"
                    raise Rejected(f"I don't know a {what} called {' '.join([*name, t])!r}",
                                   final=False)
            if (t in ("in", "at") or (t == "on" and tokens[i + 1:i + 2] in (["the"], ["my"])
                                      and i > 0 and tokens[i - 1] not in _ACTION_WORDS
                                      | L.VERBS_SET_EN | {"it", "them", "back", "flip"})) \
                    and i + 1 < len(tokens):  # "… on the patio", not "turn on the …"
                k = i + 1
                while k < len(tokens) and tokens[k] in ("the", "my", "our", "this", "that"):
                    k += 1
                name = []
                while k < len(tokens) and not used[k] and tokens[k] not in lex.known \
                        and not tokens[k].isdigit():
                    name.append(tokens[k])
                    k += 1
                if name and (k >= len(tokens) or tokens[k] in ("room", "hall", "area")
                             or tokens[k] in ("please", "and", "then", "now")
                             or k == len(tokens)):
                    if k < len(tokens) and tokens[k] in ("room", "hall", "area"):
                        name.append(tokens[k])
                    raise Rejected(f"I don't know a room called {' '.join(name)!r}",
                                   final=t == "on")  # "on the stairs" is not "upstairs"

    def _out_of_scope_en(self, tokens: list[str], p: _Parse) -> None:
        tset = set(tokens)
        said = " " + " ".join(tokens) + " "
        if re.match(r" ((do|did) you think )?(should|shall|must|do) (i|we) ", said):
            raise Rejected("a question about what to do; say it as a request")
        if re.match(r" (\w+ )?(\w+) (says|said|wants|wanted|told (me|us|you)|asked (me|us|you)"
                    r"|thinks|reckons) ", said) and tokens[0] not in _ACTION_WORDS | {
                        "i", "we", "you"}:  # "I said turn off the fan": said again
            raise Rejected("that sounds like what someone said, not a request")  # "mommy says …"
        if re.match(r" (thanks|thank you|cheers)( so much| very much)? for ", said):
            raise Rejected("that is thanks for what was done; nothing to do")  # "thanks for …"
        if re.match(r" (let me|(i|we) (am|are) going to|(i|we) (will|shall)( just)?) "
                    r"(turn|switch|open|close|lock|unlock|dim|set|put|start|stop|shut|get) ",
                    said):
            raise Rejected("that sounds like you'll do it yourself, not a request")
        if re.match(r" go to (sleep|bed) ", said):  # no mood: the assistant told to sleep?
            raise Rejected("say 'good night' for the bedtime scene, or what to switch off")
        if re.match(r" (i|we) (think|guess|believe|suppose|reckon|bet|noticed|see) ", said) \
                or re.match(r" (seems|looks like|apparently|maybe|perhaps|probably) ", said):
            raise Rejected("that sounds like a statement, not a request")
        asks = re.match(r" (check|tell me|see) (if|whether) ", said) is not None
        if tokens[0] not in _ACTION_WORDS | L.VERBS_SET_EN | _MORE_VERBS | {"make", "let", "is",
                                                                              "are"} \
                and not asks and re.search(r" (is|are|am|s|still|been)( still| now| wide| all)? "
                              r"(open|opened|closed|shut|locked|unlocked|on|off|running|"
                              r"playing|ajar|left|clean|dirty|tidy|messy|spotless|done|ready|"
                              r"fine) ", said):
            raise Rejected("that sounds like a statement, not a request")
        if tset & {"was", "were", "yesterday", "earlier", "last", "had", "been"} or (
                tokens[0] in _SUBJECTS and len(tokens) > 1 and tokens[1] in _PAST_VERBS):
            raise Rejected("that sounds like a statement, not a request")
        for words, reason in L.OUT_OF_SCOPE_EN[:3]:  # timers, alarms, reminders
            if tset & words:
                raise Rejected("a timer and a device in one request: say them one at a time"
                               if p.has_target() and "timer" in words else reason)
        if not (p.has_target() or p.here):
            for words, reason in L.OUT_OF_SCOPE_EN:
                if tset & words and not (words & {"time", "day", "clock"}
                                         and tset & L.SCHEDULE_WORDS_EN):
                    raise Rejected(reason)
        said = " " + " ".join(tokens) + " "
        switching = tset & {"on", "off", "lock", "unlock", "open", "close"}
        if re.search(r"\d (am|pm|oclock|o'clock) | at (night|midnight|noon|dawn|dusk|bedtime) ",
                     said) or (switching and re.search(r" at ([1-9]|1[0-2])( \d\d?)? $", said)):
            # "turn on the lights at 7": a time, not 7 %
            raise Rejected("I can't schedule actions for later yet; ask when you want it")
        if re.search(r" (should|ought to) (be|have been|stay) ", said) and tokens[0] not in (
                "make", "please"):  # "the lights should be off": what one thinks
            raise Rejected("that sounds like a statement, not a request")
        if re.search(r"(^| )(if|unless|once|in case) (it|i|we|they|he|she|someone|anyone|"
                     r"nobody|there|its) ", said.strip()) and not asks:
            raise Rejected("I can't act on a condition yet; ask when you want it done")
        if tset & {"except", "but", "apart", "besides", "without"}:
            raise Rejected("I can't leave a device or room out yet; name the ones you mean")
        if tset & L.SCHEDULE_WORDS_EN or " every day" in " ".join(tokens):
            sched = tset & L.SCHEDULE_WORDS_EN
            if sched - {"morning", "evening", "afternoon"} or not p.has_target():
                raise Rejected("I can't schedule actions for later yet; ask when you want it")
        coffee = ("coffee" in tset or "espresso" in tset or "cappuccino" in tset
                  or "latte" in tset) and not re.search(r" (coffee|espresso|cappuccino|latte) "
                                                        r"(is|was|tastes|looks) ", said)
        if coffee:
            machine = [d.id for d in self.config.devices if d.kind == DeviceKind.SWITCH
                       and any("coffee" in n.lower() or "espresso" in n.lower()
                               for n in (d.name, *d.aliases))]
            if not machine:
                raise Rejected("I can't make coffee: there is no coffee machine in the home")
            if not (tset & {"off", "stop"}) and not p.devices:
                p.partial_devices = machine[:1]
                p.action = "on"
                p.explicit_verb = bool(tset & {"make", "brew", "start", "prepare", "turn",
                                               "switch", "power"})
                return
        vacuum_words = tset & {"vacuum", "roomba", "hoover", "clean", "cleaning", "cleanup",
                               "vacuuming", "hoovering", "dust", "mop", "sweep", "robot"}
        if vacuum_words and not (p.devices or p.partial_devices):
            if not self._vacuums():
                raise Rejected("there is no robot vacuum in the home")
        if "play" in tset or ("back" in tset and media_words(tset)):
            start = tokens.index("play") + 1 if "play" in tset else tokens.index("back")
            what: list[str] = []
            for t in tokens[start:]:
                if t in ("on", "in", "at", "through", "from"):
                    break
                what.append(t)
            rest = [t for t in what if t not in lex_play_ok
                    and L.KIND_WORDS_EN.get(t) != "media_player"]
            back_on = "play" not in tset and bool(  # "put the music back on", not "go back"
                re.match(r" (put|turn|switch) .*back on ", said))
            if not back_on and (rest or ("back" in tset and "play" not in tset)):
                raise Rejected("I can't choose what to play; I can pause, resume and skip")
        if p.has_target() or p.here:
            return
        for words, reason in L.OUT_OF_SCOPE_EN:
            if tset & words:
                raise Rejected(reason)
        if "play" in tset:
            rest = [t for t in tokens if t not in ("play", "some", "the", "a", "me", "my",
                                                   "music", "again")]
            if rest:
                raise Rejected("I can't choose what to play; I can pause, resume and skip")
