"""``hearth recognize``: one utterance → one JSON object on stdout; ``--jsonl FILE`` (or ``-``
for stdin): one sentence or ``{"text": ..., "language": ..., "area": ...}`` a line → one JSON
result a line. Touches no network.

Exit status: 0 when an intent was recognized (``--jsonl``: when every line was read), 1 when
the single sentence gave no intent, 2 for bad input (config, language, a bad ``--jsonl`` line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from devices.registry import ConfigError
from intents.custom import CustomIntentError
from intents.languages import UnknownLanguageError, normalize_language
from intents.model_tier_cli import add_llm_arguments, apply_model_tier


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "recognize",
        help="recognize the intent of a sentence and print it as JSON",
        description='Prints {"intent": {...}|null, "reason": "..."}; exits 1 when there is no '
                    'intent.',
    )
    p.add_argument("text", nargs="?", default=None,
                   help="the utterance, e.g. 'turn on the kitchen light'")
    p.add_argument("--jsonl", default=None, metavar="FILE",
                   help="recognize every line of FILE ('-': stdin): a sentence, or a JSON object "
                        '{"text", "language", "area"}; one JSON result a line')
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
    if (args.text is None) == (args.jsonl is None):
        print("error: give a sentence or --jsonl FILE (not both)", file=sys.stderr)
        return 2
    lines: list[str] = []
    if args.jsonl is not None:
        read = _read_lines(args.jsonl)
        if read is None:
            return 2
        lines = read
    try:
        recognizer = Recognizer.from_config_path(args.config)
    except (ConfigError, CustomIntentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.jsonl is not None:
        return _run_jsonl(args, recognizer, lines)
    if not args.text.strip():
        print("error: empty sentence", file=sys.stderr)
        return 2
    result = recognizer.recognize(args.text, language=args.language, area=args.area)
    # Grammar first; the model tier (config assistant.llm / --llm-*) when it has no
    # confident answer.
    language = result.intent.language if result.intent else (
        args.language or recognizer.config.language)
    result, rc = apply_model_tier(args, args.text, result, recognizer.config, language=language)
    print(json.dumps(result.to_cli(), ensure_ascii=False))
    if rc == 0 and result.intent is None:
        return 1
    return rc


def _read_lines(path: str) -> list[str] | None:
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: {path}: cannot read: {e}", file=sys.stderr)
        return None


def _run_jsonl(args: argparse.Namespace, recognizer: Any, lines: list[str]) -> int:
    """One JSON result a line; a line that is not a sentence or a valid object stops with a
    one-line error naming it (exit 2). Blank lines are skipped."""
    where = "stdin" if args.jsonl == "-" else args.jsonl
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        text, language, area = line, args.language, args.area
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"error: {where}:{n}: invalid JSON: {e.msg}", file=sys.stderr)
                return 2
            if not isinstance(doc.get("text"), str) or not doc["text"].strip():
                print(f'error: {where}:{n}: "text" must be a non-empty string', file=sys.stderr)
                return 2
            text = doc["text"]
            language = doc.get("language") or language
            area = doc.get("area") or area
            for key, val in (("language", language), ("area", area)):
                if val is not None and not isinstance(val, str):
                    print(f'error: {where}:{n}: "{key}" must be a string', file=sys.stderr)
                    return 2
        if language is not None:
            try:
                normalize_language(language)
            except UnknownLanguageError as e:
                print(f"error: {where}:{n}: {e}", file=sys.stderr)
                return 2
        result = recognizer.recognize(text, language=language, area=area)
        lang = result.intent.language if result.intent else (
            language or recognizer.config.language)
        result, rc = apply_model_tier(args, text, result, recognizer.config, language=lang)
        if rc == 2:
            return 2
        print(json.dumps(result.to_cli(), ensure_ascii=False), flush=True)
    return 0
