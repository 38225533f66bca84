"""Hearth assistant package."""
