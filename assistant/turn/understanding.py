"""Understanding: what was said (typed text, or the ASR's hypotheses) -> one
:class:`~intents.schema.Recognition`, through the recognizer tiers.

* The grammar tier: the hypothesis decoder over what was heard (``asr.decode: grammar``), or
  the recognizer on the text (typed text is never decoded). Speculative looks use this tier
  only (:meth:`Understanding.grammar`).
* The model tier (``tiered``), for final utterances, with the session's image: after the
  grammar's repairs of what was heard when there is a decoder, else on the transcript.

Recognition runs in a worker thread; a failure becomes a :class:`StageError` with a stable
code (the model tier's own ``model_*`` codes pass through)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from assistant.audio.asr import looks_cut_off
from assistant.protocol import ErrorCode
from assistant.turn.types import Heard, SessionResources, SessionState, StageError, Utterance
from intents.schema import Intent, Recognition

logger = logging.getLogger(__name__)

#: Error codes of ``intents.model_tier`` errors, passed through as they are.
MODEL_CODES: frozenset[str] = frozenset(c.value for c in ErrorCode if c.value.startswith("model_"))


class Understanding:
    """The recognizer tiers of one session (reads ``state.last_intent`` as context)."""

    def __init__(self, resources: SessionResources, state: SessionState) -> None:
        self._res = resources
        self._state = state

    def grammar(
        self, text: str, lang: str | None, context: Intent | None, heard: Heard | None
    ) -> Callable[[], Recognition]:
        """The grammar recognizer's call for this text: through the decoder when there is
        one and the text was heard (ASR hypotheses), else the recognizer on the text."""
        decoder = self._res.decoder
        # the speaker's room ("here", "lights off"), when the client said it
        where = self._where()
        if decoder is not None and heard is not None:
            return functools.partial(
                decoder.decode,
                heard.hypotheses,
                language=lang,
                context=context,
                no_speech_prob=heard.no_speech_prob,
                **where,
            )
        return functools.partial(
            self._res.recognizer.recognize, text, language=lang, context=context, **where
        )

    def _where(self) -> dict[str, str]:
        area = self._state.config.area
        return {} if area is None else {"area": area}

    async def recognize(
        self,
        utt: Utterance,
        text: str,
        lang: str | None,
        heard: Heard | None,
        audio: Any = None,
    ) -> Recognition:
        """All tiers on a final utterance (``heard``: its ASR hypotheses; None for typed
        text; ``audio``: what was heard, float32 16 kHz, for a model tier that hears), in a
        worker thread; cancelling ``utt`` ends a model-tier request."""
        context = self._state.last_intent
        tiered = self._res.tiered
        decoder = self._res.decoder if heard is not None else None
        # The model hears the utterance when its settings say so (``assistant.llm.audio``).
        sound = None if tiered is None or audio is None else tiered.audio(audio)
        hearing: dict[str, Any] = {} if sound is None else {"audio": sound}
        if tiered is not None and sound is not None and tiered.always_hears:
            decoder = None  # ``always``: the model hears every turn, whatever the grammar says
        recognize: Callable[[], Recognition] = self.grammar(text, lang, context, heard)
        if tiered is not None:
            # Final utterances may go to the model tier (with the session's image); partial
            # text never does (speculation uses the grammar recognizer only).
            images = [] if utt.image is None else [tiered.image(utt.image.data)]
            ask_model: Callable[[], Recognition] = functools.partial(
                tiered.recognize,
                text,
                language=lang,
                context=context,
                images=images,
                cancel=utt.cancel_event,
                **self._where(),
                **hearing,
            )
            # With a decoder, repairs of what was heard come first (milliseconds, measured);
            # the model gets the transcript when no reading parses.
            recognize = (
                ask_model if decoder is None else functools.partial(decode_or, recognize, ask_model)
            )
        try:
            return await asyncio.to_thread(recognize)
        except Exception as e:
            code = getattr(e, "code", None)
            public = getattr(e, "public_message", None)
            if isinstance(code, str) and code in MODEL_CODES and isinstance(public, str):
                # The model tier's own stable codes and client-safe messages.
                logger.warning("session %s: model tier failed on %s: %s", self._state.id, utt.id, e)
                raise StageError(ErrorCode(code), public) from e
            logger.exception("session %s: recognizer failed on %s", self._state.id, utt.id)
            raise StageError(ErrorCode.RECOGNIZER_FAILED, "intent recognition failed") from e


def decode_or(
    decode: Callable[[], Recognition], fallback: Callable[[], Recognition]
) -> Recognition:
    """The decoder's recognition when it found an intent, else ``fallback()``'s."""
    result = decode()
    return result if result.intent is not None else fallback()


def armed(result: Recognition | None) -> bool:
    """The words as heard (no repaired words, nothing added to the top hypothesis) form a
    complete command."""
    return (
        result is not None
        and result.intent is not None
        and (not result.guessed or result.heard_in_n_best)
    )


def ends_turn(result: Recognition | None, text: str) -> bool:
    """A speculative transcript may end the turn: :func:`armed`, and not a custom intent
    whose text stops mid-sentence (orders go on: "a triple shot cappuccino," + "with sugar
    and milk"; the final pass's cut-off retry has the same rule)."""
    if not armed(result):
        return False
    assert result is not None and result.intent is not None
    return not (result.intent.source == "custom" and looks_cut_off(text))


def needs_retry(first: Recognition, text: str) -> bool:
    """The final pass transcribes again on the full window (``Transcribing``): nothing
    decoded, or a text that ends mid-sentence read as a guess or a custom intent (a text
    that ends mid-sentence stands only as an exact home command: "turn off the living room
    light," is how Whisper often ends one; orders go on: "a triple shot, cappuccino, with
    ...")."""
    if first.intent is None:
        return True
    return looks_cut_off(text) and (first.guessed or first.intent.source == "custom")
