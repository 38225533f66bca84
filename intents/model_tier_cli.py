"""Command-line glue for the model tier: ``hearth recognize TEXT --llm-url URL ...``.

Kept here so that ``intents/cli.py`` only needs two calls: :func:`add_llm_arguments` on its
parser and :func:`apply_model_tier` on the grammar's result.
"""

from __future__ import annotations

import argparse
import sys

from devices.registry import HomeConfig
from intents.model_tier import (
    ModelBackend,
    ModelTierError,
    ModelTierPolicy,
    ModelTierSettings,
    build_model_tier,
)
from intents.schema import Recognition


def add_llm_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--llm-*`` options; they override the config's ``assistant.llm`` section."""
    g = p.add_argument_group(
        "language-model tier",
        "asked when the grammar has no confident answer (config: assistant.llm)",
    )
    g.add_argument(
        "--llm-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    )
    g.add_argument("--llm-model", default=None, help="model name to request from the server")
    g.add_argument(
        "--llm-backend",
        default=None,
        choices=[b.value for b in ModelBackend],
        help="default: transformers with --llm-path, else openai",
    )
    g.add_argument(
        "--llm-path",
        default=None,
        help="local model folder for the transformers backend (never downloads)",
    )
    g.add_argument(
        "--llm-policy",
        default=None,
        choices=[p.value for p in ModelTierPolicy],
        help="prefer_local (default), model_first or off",
    )
    g.add_argument("--llm-timeout", default=None, type=float, metavar="SECONDS")


def apply_model_tier(
    args: argparse.Namespace,
    text: str,
    grammar: Recognition,
    config: HomeConfig,
    *,
    language: str,
) -> tuple[Recognition, int]:
    """The final answer and an exit status: the grammar's answer when the tier is off or not
    needed, else the model's. Errors are printed to stderr (status 2 for configuration, 1 for
    a failed model call, with ``intent: null``)."""
    backend = args.llm_backend
    if backend is None and (args.llm_path or args.llm_url):
        backend = ModelBackend.TRANSFORMERS if args.llm_path else ModelBackend.OPENAI
    overrides = {
        "backend": backend,
        "url": args.llm_url,
        "model": args.llm_model,
        "path": args.llm_path,
        "policy": args.llm_policy,
        "timeout_s": args.llm_timeout,
    }
    try:
        settings = ModelTierSettings.from_config(
            config, **{k: v for k, v in overrides.items() if v is not None}
        )
        if settings.policy is ModelTierPolicy.OFF:
            return grammar, 0
        tier = build_model_tier(settings)
    except ModelTierError as e:
        print(f"error: {e}", file=sys.stderr)
        return grammar, 2
    try:
        return tier.route(text, grammar, config=config, language=language), 0
    except ModelTierError as e:
        print(f"error: {e.code}: {e}", file=sys.stderr)
        return Recognition(intent=None, reason=f"{e.code}: {e.public_message}"), 1
    finally:
        tier.close()
