"""Hearth devices package."""
