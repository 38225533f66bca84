"""``hearth check-config``."""

from __future__ import annotations

import argparse
import sys

from devices.registry import ConfigError, load_config


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a home config file and say what is wrong")
    p.add_argument("file")
    p.set_defaults(func=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.file}: ok ({len(cfg.devices)} devices, {len(cfg.areas)} areas, "
        f"{len(cfg.floors)} floors, {len(cfg.scenes)} scenes)"
    )
    return 0
