"""Answering: where a turn's outcome becomes a reply. ``assistant.answers.stage.Answering``
(reply text, the shared voice, timers) plugs in here; with none, nothing is said.

What the other stages call of it (:class:`AnsweringLike`, all on the event loop; only
``settled`` waits):

* acting: :meth:`~AnsweringLike.handles` / :meth:`~AnsweringLike.act_local` — an intent the
  answering stage carries out itself (timers, the clock) instead of the dispatcher, then
  :meth:`~AnsweringLike.settled` (awaited: a timer's record is on the broker, where the other
  replicas see it, before the turn reports it confirmed);
* acting: :meth:`~AnsweringLike.ambiguous` / :meth:`~AnsweringLike.choose` — a command that
  names one device by its kind in a home with several ("turn on the light") asks "which
  one?" instead of acting on all of them, and the next turn's answer picks it;
* acting: :meth:`~AnsweringLike.prepare` — as an intent is dispatched, so that the reply
  it will probably get is synthesized while the devices confirm;
* the pipeline: :meth:`~AnsweringLike.answer`, through :func:`answer_turn` — once per turn
  that got a transcript (typed or heard) and was not cancelled, after acting and before the
  turn's ``metrics`` event (which stays its last). It receives the turn's result: the intent
  acted on (or the recognition's, or none), the action outcomes, the recognition's reason,
  the language and text, and whether the turn failed. It may emit events (it is built with the
  session's ``emit``). What it returns, when a :class:`ReplySent`, says when the reply's text
  and first audio left: the turn's ``metrics`` waits for that first audio (bounded) and
  reports both;
* hearing: :meth:`~AnsweringLike.barge_in` — the user started speaking over a reply;
* the session: :meth:`~AnsweringLike.cancel` (a ``cancel`` message) and
  :meth:`~AnsweringLike.close` (the connection is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from assistant.answers.responder import ReplySent
from assistant.protocol import Outcome
from assistant.turn.types import Utterance
from devices.actions import ActionResult
from intents.schema import Intent


class AnsweringLike(Protocol):
    """One session's answering stage (``assistant.answers.stage.Answering``)."""

    def handles(self, intent: Intent) -> bool: ...

    def act_local(self, utterance_id: str, intent: Intent) -> ActionResult: ...

    async def settled(self) -> None: ...

    def prepare(self, intent: Intent) -> None: ...

    def ambiguous(self, intent: Intent) -> list[str] | None: ...

    def choose(self, text: str, choices: Sequence[str]) -> list[str]: ...

    def room(self, text: str) -> str | None: ...

    def answer(
        self,
        utterance_id: str,
        intent: Intent | None,
        results: Sequence[ActionResult],
        *,
        reason: str = "",
        language: str | None = None,
        text: str = "",
        failed: bool = False,
        speech_end_t: float | None = None,
    ) -> object: ...

    def barge_in(self) -> bool: ...

    def cancel(self) -> bool: ...

    async def close(self) -> None: ...


#: Outcomes that get no answer: nothing was asked, or the user withdrew it.
SILENT_OUTCOMES: frozenset[Outcome] = frozenset({"cancelled", "no_speech"})


def answer_turn(
    answering: AnsweringLike | None, utt: Utterance, outcome: Outcome
) -> ReplySent | None:
    """Hand a finished turn to the answering stage (see the module's docstring); when its
    reply left, if it says."""
    if answering is None or outcome in SILENT_OUTCOMES or utt.text is None:
        return None
    rec = utt.recognition
    intent = utt.intent if utt.intent is not None else None if rec is None else rec.intent
    sent = answering.answer(
        utt.id,
        intent,
        utt.actions,
        reason="" if rec is None else rec.reason,
        language=utt.language,
        text=utt.text,
        failed=outcome == "error",
        speech_end_t=utt.speech_end_t,
    )
    return sent if isinstance(sent, ReplySent) else None
