"""``hearth recognize``: one utterance → one JSON object on stdout. Touches no network."""

from __future__ import annotations

import argparse
import json
import sys

from devices.registry import ConfigError
from intents.custom import CustomIntentError
from intents.languages import UnknownLanguageError, normalize_language
from intents.model_tier_cli import add_llm_arguments, apply_model_tier


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "recognize",
        help="recognize the intent of a sentence and print it as JSON",
        description='Prints {"intent": {...}|null, "reason": "..."}.',
    )
    p.add_argument("text", help="the utterance, e.g. 'turn on the kitchen light'")
    p.add_argument("--config", default=None, help="home config file (default: the demo home)")
    p.add_argument("--language", default=None,
                   help="language code (en, zh-cn, ...); default: zh-CN for Chinese text, "
                        "else the config's language")
    p.add_argument("--area", default=None, help="area id of the device that heard it")
    add_llm_arguments(p)
    p.set_defaults(func=run_recognize)


def run_recognize(args: argparse.Namespace) -> int:
    from intents.recognizer import Recognizer

    if args.language is not None:
        try:
            normalize_language(args.language)
        except UnknownLanguageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        recognizer = Recognizer.from_config_path(args.config)
    except (ConfigError, CustomIntentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = recognizer.recognize(args.text, language=args.language, area=args.area)
    # Grammar first; the model tier (config assistant.llm / --llm-*) when it has no
    # confident answer.
    language = result.intent.language if result.intent else (
        args.language or recognizer.config.language)
    result, rc = apply_model_tier(args, args.text, result, recognizer.config, language=language)
    print(json.dumps(result.to_cli(), ensure_ascii=False))
    return rc
