"""Bad command-line input is a one-line error on stderr and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant import cli
from assistant.cli import main
from assistant.protocol import MAX_TEXT_CHARS


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["say", ""], "the text is empty"),
        (["say", "   "], "the text is empty"),
        (["say", "a" * (MAX_TEXT_CHARS + 1)], f"at most {MAX_TEXT_CHARS}"),
        (["say", "turn on the light", "--language", "x"], "--language 'x'"),
        (["say", "turn on the light", "--timeout", "0"], "--timeout 0"),
        (["stream", "missing.wav", "--timeout", "-1"], "--timeout -1"),
        (["say", "turn on the light", "--url", "foo"], "invalid server URL 'foo'"),
        (["say", "turn on the light", "--url", "http://127.0.0.1:1/"], "invalid server URL"),
    ],
)
def test_bad_client_input_is_one_line_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A closed port: input errors must be caught before (or without) a server.
    if "--url" not in argv:
        argv = [*argv, "--url", f"ws://127.0.0.1:{_closed_port()}"]
    rc = main(argv)
    line = _one_line_error(capsys)
    assert rc == 2
    assert line.startswith("hearth: ") and fragment in line


def test_text_at_the_limit_reaches_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    """MAX_TEXT_CHARS itself is allowed: the only error is the missing server."""
    rc = main(["say", "a" * MAX_TEXT_CHARS, "--url", f"ws://127.0.0.1:{_closed_port()}"])
    assert rc == 2
    assert "connection refused" in _one_line_error(capsys)


def _parser_raising(error: Exception) -> Callable[[], argparse.ArgumentParser]:
    def build() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="hearth")
        parser.add_argument("-v", "--verbose", action="count", default=0)
        sub = parser.add_subparsers(dest="command", required=True)

        def fail(args: argparse.Namespace) -> int:
            raise error

        sub.add_parser("boom").set_defaults(func=fail)
        return parser

    return build


@pytest.mark.parametrize(
    ("error", "rc", "line"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"), 2,
         "hearth boom: ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 1)"),
        (RuntimeError("subscriber failed: first line\n  second line"), 1,
         "hearth boom: RuntimeError: subscriber failed: first line"),
    ],
)
def test_unexpected_errors_are_one_line_and_v_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    error: Exception, rc: int, line: str,
) -> None:
    monkeypatch.setattr(cli, "build_parser", _parser_raising(error))
    assert main(["boom"]) == rc
    assert _one_line_error(capsys).startswith(line + " (hearth -v boom")
    with pytest.raises(type(error)):
        main(["-v", "boom"])


def test_server_not_running_for_a_benchmark_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}"
    rc = main(["bench", "soak", "--url", url, "--cycles", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("hearth")
