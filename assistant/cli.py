"""The ``hearth`` command line. Each subcommand lives in the module that owns the capability;
this module only wires them together (``add_parser(subparsers)`` + ``run(args) -> int``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: (module, attribute prefix) pairs. Each module exposes ``add_<name>_parser(sub)`` which
#: registers its subcommands and sets ``func`` on them. Imported lazily so that
#: ``hearth recognize`` does not pay for torch.
_COMMAND_MODULES: tuple[str, ...] = (
    "intents.cli",
    "devices.cli",
    "assistant.server_cli",
    "assistant.client_cli",
    "assistant.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearth", description="Hearth: local voice-and-action assistant."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if name.startswith(e.name or "\0"):  # capability not built yet
                continue
            raise
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a command's own errors are one line already; this is the net
        if args.verbose:
            raise
        # OSError: could not start (a server or broker not running, a file not there).
        code = 2 if isinstance(e, OSError) else 1
        print(f"hearth {args.command}: {_one_line(e)} (hearth -v {args.command} ... shows "
              "where)", file=sys.stderr)
        return code
    return rc


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
