"""``hearth check-config`` and config validation: every problem at once, by file:line, list
items named by id, "did you mean" for unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.cli import main
from assistant.config import AssistantConfigError, parse_assistant_settings
from devices.registry import ConfigError, demo_config_path, parse_config

BAD = """\
name: test
mqtt:
  urll: mqtt://x
  keepalive_s: abc
areas:
  - id: kitchen
    name: kitchen
    floor: ground
devices:
  - id: kitchen_light
    name: kitchen light
    area: kitchn
    kind: lamp
    adapter: zigbee2mqtt
    capabilites: [brightness]
  - name: no id
    kind: light
    adapter: tasmota
scenes:
  - id: movie
    name: movie
    actions:
      kitchen_lite: {name: light_off}
assistant:
  asr: {beam_sise: 3, threads: 0}
  speculativ: false
"""

#: (line, field, fragment of the message) of every problem in BAD, in file order.
EXPECTED = [
    (3, "mqtt.urll", "unknown key; did you mean 'url'?"),
    (4, "mqtt.keepalive_s", "valid integer"),
    (8, "areas[kitchen].floor", "unknown floor 'ground'"),
    (12, "devices[kitchen_light].area", "unknown area 'kitchn'; did you mean 'kitchen'?"),
    (13, "devices[kitchen_light].kind", "Input should be 'light'"),
    (15, "devices[kitchen_light].capabilites", "did you mean 'capabilities'?"),
    (16, "devices[item 2].id", "Field required"),
    (23, "scenes[movie].actions.kitchen_lite", "did you mean 'kitchen_light'?"),
    (25, "assistant.asr.beam_sise", "unknown key; did you mean 'beam_size'?"),
    (25, "assistant.asr.threads", "greater than 0"),
    (26, "assistant.speculativ", "did you mean 'speculative'?"),
]


def _check(lines: list[str], path: str) -> None:
    assert len(lines) == len(EXPECTED), lines
    got = sorted(lines)
    for line, field, fragment in EXPECTED:
        prefix = f"{path}:{line}: {field}: "
        match = [x for x in got if x.startswith(prefix)]
        assert match, f"no problem {prefix!r} in {lines}"
        assert fragment in match[0]


def test_check_config_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "home.yaml"
    path.write_text(BAD, encoding="utf-8")
    rc = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1] == f"{path}: {len(EXPECTED)} problems"
    _check(lines[:-1], str(path))


def test_parse_config_raises_with_every_home_problem() -> None:
    """The loader (``hearth serve``) lists the home's problems too; the assistant section is
    the assistant package's to check."""
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, path="home.yaml")
    home = [(line, f, m) for line, f, m in EXPECTED if not f.startswith("assistant")]
    assert [(p.line, p.field) for p in info.value.problems] == [(x[0], x[1]) for x in home]
    assert str(info.value).splitlines()[0].startswith("home.yaml:3: mqtt.urll: unknown key")
    assert (info.value.line, info.value.field) == (3, "mqtt.urll")


def test_reference_problems_all_reported_when_fields_are_valid() -> None:
    text = """\
areas: [{id: kitchen, name: kitchen}]
devices:
  - {id: a, name: a, kind: light, adapter: shelly, area: kitchen}
  - {id: a, name: b, kind: light, adapter: shelly, area: bathroom}
  - {id: c, name: c, kind: light, adapter: shelly, floor: attic}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="h.yaml")
    assert [str(p) for p in info.value.problems] == [
        "h.yaml:4: devices[a].id: duplicate device id 'a'",
        "h.yaml:4: devices[a].area: unknown area 'bathroom'",
        "h.yaml:5: devices[c].floor: unknown floor 'attic'",
    ]


def test_check_config_ok_and_unreadable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(demo_config_path())]) == 0
    assert ": ok (" in capsys.readouterr().out
    assert main(["check-config", "/nonexistent/home.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "/nonexistent/home.yaml: cannot read: No such file or directory"


def test_invalid_yaml_is_one_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndevices: [\n", encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{path}:3: invalid YAML")


def test_assistant_settings_name_every_field() -> None:
    with pytest.raises(AssistantConfigError) as info:
        parse_assistant_settings({"server": {"port": 70000}, "asr": {"beam_sise": 2}})
    message = str(info.value)
    assert "assistant.server.port" in message
    assert "assistant.asr.beam_sise: unknown key; did you mean 'beam_size'?" in message


def test_serve_with_a_bad_override_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["serve", "--port", "99999", "--no-audio"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: assistant.server.port:") and len(err.splitlines()) == 1
