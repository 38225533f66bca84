"""Shared fixtures. Fixture plugins live beside this file, one module per capability."""

from __future__ import annotations

import importlib.util

pytest_plugins = [
    name
    for name in ("tests.mqtt_fixtures", "tests.speech_fixtures", "tests.server_fixtures")
    if importlib.util.find_spec(name) is not None
]
