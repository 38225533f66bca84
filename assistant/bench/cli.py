"""``hearth bench …``: each benchmark module exposes ``add_arguments(parser)`` and
``run(args) -> int`` and is imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Callable
from typing import Any

_BENCHMARKS: dict[str, tuple[str, str]] = {
    "text": ("intents.benchmark", "text -> intent accuracy on the home-assistant intents tests"),
    "latency": ("assistant.bench.latency", "speech-end -> action latency over real-time streams"),
    "capacity": ("assistant.bench.capacity",
                 "streams speaking at once until P99 speech end -> action passes 1 s: the knee"),
    "accuracy": ("assistant.bench.accuracy",
                 "speech -> intent command acceptance: the server's path, acoustic repair "
                 "included"),
    "understanding": ("intents.understanding_bench",
                      "real phrasings understood: right / wrong action / rejected per intent"),
    "soak": ("assistant.bench.soak", "connect/disconnect cycles and streaming; server fds/RSS"),
    "wake": ("assistant.bench.wake", "wake words: false wakes, misses, CPU per always-on "
             "stream, wake -> action; wyoming-bench on the Wyoming ASR"),
}


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser("bench", help="run a benchmark and write a report")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module_name, help_text) in _BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if module_name.startswith(e.name or "\0"):
                continue  # not built yet
            raise
        p = bench_sub.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)


def module_main(
    prog: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """``python -m assistant.bench.NAME ...``: the benchmark's own arguments and ``-v``, the
    same as ``hearth bench NAME``."""
    parser = argparse.ArgumentParser(prog=prog)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)


def command_line(name: str) -> str:
    """How benchmark ``name`` was started, for its report: ``hearth bench NAME ...``, or
    ``python -m assistant.bench.NAME ...``, or else the process's own argv."""
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == name and i > 0 and argv[i - 1] == "bench":
            return shlex.join(["hearth", *argv[i - 1 :]])
    if argv and argv[0].endswith(f"{name}.py"):
        return shlex.join(["python", "-m", f"assistant.bench.{name}", *argv[1:]])
    return shlex.join(argv)
