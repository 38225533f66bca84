"""Hearth intents package."""
