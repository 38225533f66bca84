"""The stages of a turn, each a small object with a narrow interface, wired by
:class:`assistant.session.Session` (see docs/architecture.md)::

    hearing ─► transcribing ─► understanding ─► acting ─► answering

* :mod:`.hearing` — the audio queue, the front end (resampling, VAD, endpointing);
  :mod:`.speculation` — transcription looks at pauses that may end the turn early.
* :mod:`.transcribing` — the ASR executor, the final pass, the full-window retry, the
  acoustic repair.
* :mod:`.understanding` — the recognizer tiers: grammar (through the hypothesis decoder),
  model tier.
* :mod:`.acting` — confirmations and the dispatcher.
* :mod:`.answering` — the turn's outcome, for a reply (no-op by default).
* :mod:`.pipeline` — one task per utterance running those stages; the ``metrics`` event.
* :mod:`.events` — events out: counters, the audit trail, throttled errors.
* :mod:`.types` — what the stages need from the rest of Hearth (injected) and share.
"""
