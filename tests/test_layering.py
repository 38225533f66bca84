"""The package layering docs/architecture.md describes, read from the source's imports (no
imports run): ``intents`` and ``devices`` never import ``assistant``; the model tier's backends
never import the module that builds them; the turn's stages never import the session."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offenders(package: str, forbidden: str) -> list[str]:
    return sorted(
        f"{p.relative_to(ROOT)}: {m}"
        for p in (ROOT / package).rglob("*.py")
        for m in imports(p)
        if m == forbidden or m.startswith(forbidden + ".")
    )


#: The one exception, a command line's: ``hearth check-config`` asks ``assistant`` to check its
#: own section when it is installed (a guarded, lazy import; the package works without it).
CLI_EXCEPTIONS = ["devices/cli.py: assistant.config"]


def test_intents_and_devices_never_import_assistant() -> None:
    assert offenders("intents", "assistant") == []
    assert offenders("devices", "assistant") == CLI_EXCEPTIONS


def test_model_tier_backends_do_not_import_the_module_that_builds_them() -> None:
    for backend in ("model_tier_openai.py", "model_tier_transformers.py"):
        assert "intents.model_tier" not in imports(ROOT / "intents" / backend), backend
    for part in ("model_tier_types.py", "model_tier_prompt.py", "model_tier_base.py"):
        found = imports(ROOT / "intents" / part)
        assert "intents.model_tier" not in found, part
        assert not any(m.startswith("intents.model_tier_openai") for m in found), part
        assert not any(m.startswith("intents.model_tier_transformers") for m in found), part


def test_the_turn_stages_do_not_import_the_session() -> None:
    assert offenders("assistant/turn", "assistant.session") == []
    assert offenders("assistant/turn", "assistant.server") == []


def test_the_model_tier_still_offers_its_public_names() -> None:
    from intents import model_tier

    for name in model_tier.__all__:
        assert hasattr(model_tier, name), name
    assert model_tier.ModelTier is model_tier.DisabledModelTier.__mro__[1]
