"""Hearth answers: the reply to every turn (text, speech), timers and the clock."""
