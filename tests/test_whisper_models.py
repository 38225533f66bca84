"""Where the Whisper models come from (``assistant.audio.whisper_models``): split packages joined
once into a checked cache, clear errors naming the pip extra, nothing downloaded. The join is
tested on small made-up parts (no model load); the installed base model once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from assistant.audio.errors import ModelLoadError
from assistant.audio.whisper_models import (
    MODELS,
    ModelSpec,
    is_multilingual,
    join_parts,
    main,
    resolve_model,
)


def _packages(tmp: Path, parts: list[bytes]) -> list[Path]:
    dirs = []
    for i, data in enumerate(parts, start=1):
        d = tmp / f"pkg{i}" / "data"
        d.mkdir(parents=True)
        (d / f"model.bin.part{i}").write_bytes(data)
        dirs.append(d)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (dirs[-1] / name).write_text("{}")
    return dirs


def _spec(sha: str | None) -> ModelSpec:
    return ModelSpec(name="fake", packages=("fake_1", "fake_2"),
                     distributions=("fake-1", "fake-2"), extra="fake-extra",
                     multilingual=True, params_m=1, sha256=sha)


def test_parts_are_joined_once_and_checked(tmp_path: Path) -> None:
    parts = [b"a" * 1000, b"b" * 500]
    sha = hashlib.sha256(b"".join(parts)).hexdigest()
    dirs = _packages(tmp_path, parts)
    target = join_parts(_spec(sha), dirs, root=tmp_path / "cache")
    assert (target / "model.bin").read_bytes() == b"".join(parts)
    assert {p.name for p in target.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
    stamp = json.loads((target / ".hearth-joined.json").read_text())
    assert stamp["size"] == 1500 and stamp["sha256"] == sha
    # Once joined, a later call only checks the stamp and sizes: the file is not rewritten.
    before = (target / "model.bin").stat().st_mtime_ns
    assert join_parts(_spec(sha), dirs, root=tmp_path / "cache") == target
    assert (target / "model.bin").stat().st_mtime_ns == before
    # A truncated copy (the size no longer matches) is joined again.
    (target / "model.bin").write_bytes(b"a" * 10)
    join_parts(_spec(sha), dirs, root=tmp_path / "cache")
    assert (target / "model.bin").stat().st_size == 1500


def test_a_corrupt_join_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    dirs = _packages(tmp_path, [b"a" * 10, b"b" * 10])
    with pytest.raises(ModelLoadError, match=r"SHA-256.*hearth\[fake-extra\]"):
        join_parts(_spec("0" * 64), dirs, root=tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def test_a_missing_part_names_the_package(tmp_path: Path) -> None:
    dirs = _packages(tmp_path, [b"a", b"b"])
    (dirs[1] / "model.bin.part2").unlink()
    with pytest.raises(ModelLoadError, match=r"fake-2 has no model\.bin\.part2"):
        join_parts(_spec(None), dirs, root=tmp_path / "cache")


def test_names_paths_and_refusals() -> None:
    assert is_multilingual("tiny.en") is False and is_multilingual(None) is False
    assert is_multilingual("base") is True and is_multilingual("/some/dir") is None
    with pytest.raises(ModelLoadError, match="never downloaded"):
        resolve_model("large-v3")
    assert resolve_model("large-v3", allow_download=True) == "large-v3"
    assert MODELS["small"].extra == "whisper-small"


def test_missing_multilingual_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(name="nope", packages=("hearth_no_such_pkg_1", "hearth_no_such_pkg_2"),
                     distributions=("no-such-1", "no-such-2"), extra="multilingual",
                     multilingual=True, params_m=1)
    monkeypatch.setitem(MODELS, "nope", spec)
    with pytest.raises(ModelLoadError, match=r"pip install 'hearth\[multilingual\]'"):
        resolve_model("nope")
    assert main(["prepare", "nope", "--if-installed"]) == 0
    assert main(["prepare", "nope"]) == 2
    assert main(["prepare", "unknown-model"]) == 2


def test_installed_base_joins_to_the_pinned_model() -> None:
    """CI installs the base packages (``.[dev,models]``); the joined file has the pinned hash."""
    path = Path(resolve_model("base"))
    stamp = json.loads((path / ".hearth-joined.json").read_text())
    assert stamp["sha256"] == MODELS["base"].sha256
    assert (path / "model.bin").stat().st_size == stamp["size"] == 145_217_607
