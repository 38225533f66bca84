"""``hearth bench wake``: wake-word figures, and wyoming-bench on Hearth's Wyoming ASR.

1. **False wakes** per hour: every bundled wake word's detector (the gate's own code) over at
   least ``--hours`` of speech without any wake word — the Picovoice recordings (real people
   ordering coffee, ../shared/data) and synthesized speech (the SLURP iot phrasings and the
   Home Assistant intent test sentences, four voices), concatenated with short gaps — clean,
   and the same stream with the Picovoice kitchen noise at 10 dB.
2. **Misses** on spoken wake phrases ("okay nabu", "okay nabu, turn on the kitchen light",
   …) by ten synthetic voices (piper and espeak-ng at several speeds and pitches), clean and
   at 10 dB kitchen noise; with the delay from the end of the phrase to the detection.
3. **CPU per idle always-on stream**: ``hearth serve`` in a subprocess (real models, demo
   home), ``--streams`` WebSocket sessions with ``wake: okay_nabu`` streaming that speech in
   real time for ``--seconds``; the server's CPU (psutil) minus the same sessions connected
   without audio, per stream, as % of one core. The same without the wake word
   (VAD on every frame) for comparison.
4. **Wake → action**: "okay nabu, <command>" streamed in real time: the wake detection's
   position after the wake phrase ends, and the server's ``speech_end_to_action`` for the
   command.
5. **wyoming-bench** (PyPI, when installed) on the server's Wyoming port with a corpus of
   synthesized home commands (``DIR/stt-corpus``: wav + txt); its output is saved as is.

Writes ``DIR/wake.json`` and ``DIR/wake.md``. Synthesized speech is cached (never in the
repository). Nothing here asserts a target: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

RATE: Final = 16000
Float32Array = npt.NDArray[np.float32]

#: Phrases for the miss rate, per wake word ("{cmd}" phrases carry a command after it).
WAKE_PHRASES: Final = {
    "okay_nabu": ("okay nabu", "ok nabu", "okay nabu, turn on the kitchen light",
                  "okay nabu, what is the temperature in the living room"),
    "hey_jarvis": ("hey jarvis", "hey jarvis, turn off the office light"),
    "alexa": ("alexa", "alexa, open the bedroom blinds"),
    "hey_mycroft": ("hey mycroft", "hey mycroft, pause the speaker"),
}
#: Near-homophones the sweep counts wakes on (each voice, clean and 10 dB): what a lower
#: threshold costs beyond the false-wake hour.
NEAR_PHRASES: Final = {
    "okay_nabu": ("okay, no", "okay now", "okay, new boots", "okay, not now", "okay, let's go",
                  "okay, now who left the garage door open again", "a nap, okay"),
}
#: Kitchen-noise draws per phrase at 10 dB: one clip is 2.5 % of 40, too coarse for a 5 %
#: target, so each phrase is heard over five stretches of the noise (200 clips a word).
NOISE_DRAWS: Final = 5
#: Commands for the wake -> action run (demo home devices).
LATENCY_COMMANDS: Final = (
    "turn on the kitchen light", "turn off the kitchen light", "turn on the office light",
    "turn off the office light", "turn on the hallway light", "turn off the hallway light",
    "turn on the ceiling fan", "turn off the ceiling fan", "turn on the bedroom lamp",
    "turn off the bedroom lamp",
)
#: Commands for the wyoming-bench STT corpus.
STT_COMMANDS: Final = (
    "turn on the kitchen light", "turn off the living room light", "set the bedroom lamp to "
    "forty percent", "set the thermostat to twenty one degrees", "open the bedroom blinds",
    "close the garage door", "turn on the ceiling fan", "pause the speaker", "lock the front "
    "door", "what is the temperature in the kitchen", "turn off all the lights",
    "dim the office light", "turn on the tv plug", "set the speaker volume to thirty percent",
    "activate movie night",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--hours", type=float, default=1.0,
                   help="hours of speech without a wake word for the false-wake count (1)")
    p.add_argument("--streams", type=int, default=20, help="always-on streams for CPU (20)")
    p.add_argument("--seconds", type=float, default=60.0, help="CPU window in seconds (60)")
    p.add_argument("--no-server", action="store_true",
                   help="only the offline detector figures (1, 2)")
    p.add_argument("--sweep", metavar="WORD",
                   help="only the detection-rule sweep for WORD: the model's per-step "
                   "probabilities are recorded once (the false-wake hour and the wake "
                   "phrases, clean and 10 dB) and every threshold x window x steps rule is "
                   "scored on them; writes sweep.json / sweep.md")
    p.add_argument("--data", type=Path, help="picovoice-speech-to-intent directory "
                   "(default ../shared/data/picovoice-speech-to-intent)")


# -- audio -------------------------------------------------------------------------------


def make_speaker(out: Path) -> Any:
    from assistant.bench.accuracy_sets import DEFAULT_CACHE, Speaker

    return Speaker(DEFAULT_CACHE)


def wake_voices() -> list[Any]:
    from assistant.bench.accuracy_sets import VOICES, Voice

    return [*VOICES,
            Voice("espeak-us-m3", "espeak", "en-us+m3"),
            Voice("espeak-f3", "espeak", "en+f3"),
            Voice("espeak-us-f2-fast", "espeak", "en-us+f2", speed=200, pitch=60),
            Voice("espeak-gb-m7", "espeak", "en-gb+m7", speed=160, pitch=40),
            Voice("espeak-us-slow", "espeak", "en-us", speed=130, pitch=50),
            Voice("espeak-caribbean", "espeak", "en-029", speed=170, pitch=55)]


def to_pcm(x: Float32Array) -> bytes:
    return bytes((np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())


def background(hours: float, data_dir: Path, out: Path) -> tuple[Float32Array, dict[str, Any]]:
    """Speech without a wake word, at least ``hours`` long (or all there is)."""
    from assistant.bench.accuracy_sets import VOICES, read_audio

    rng = np.random.default_rng(20261203)
    parts: list[Float32Array] = []
    sources: dict[str, float] = {}

    def add(x: Float32Array, source: str) -> None:
        gap = np.zeros(int(rng.uniform(0.2, 1.5) * RATE), np.float32)
        parts.extend((x.astype(np.float32), gap))
        sources[source] = sources.get(source, 0.0) + (x.size + gap.size) / RATE

    clips = sorted((data_dir / "clean").glob("*.flac"))
    speaker = make_speaker(out)
    texts = _slurp_sentences(data_dir.parent) + _ha_sentences(data_dir.parent)
    # Two real recordings, then one synthesized sentence, until the length is reached.
    i = j = 0
    while sum(sources.values()) < hours * 3600 and (i < len(clips) or j < len(texts)):
        if i < len(clips) and (j >= len(texts) or i < 2 * (j + 1)):
            add(read_audio(clips[i]), "picovoice")
            i += 1
        else:
            add(speaker.say(texts[j], VOICES[j % len(VOICES)]), "synthesized")
            j += 1
    audio = np.concatenate(parts) if parts else np.zeros(RATE, np.float32)
    info = {"seconds": round(audio.size / RATE, 1),
            "by_source_s": {k: round(v, 1) for k, v in sources.items()},
            "picovoice_clips": i, "synthesized_sentences": j}
    return audio, info


def _slurp_sentences(shared: Path) -> list[str]:
    path = shared / "slurp-iot-devel" / "devel-iot.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["sentence"] for line in path.read_text().splitlines() if line]


def _ha_sentences(shared: Path, limit: int = 1500) -> list[str]:
    import yaml

    out: list[str] = []
    for path in sorted((shared / "home-assistant-intents-tests" / "en").rglob("*.yaml")):
        if path.name.startswith("_"):
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for test in data.get("tests", []):
            out.extend(s for s in test.get("sentences", []) if isinstance(s, str))
    return out[:limit]


def with_noise(x: Float32Array, noise: Float32Array, snr_db: float, seed: int) -> Float32Array:
    from assistant.bench.noise import mix_at_snr

    return mix_at_snr(x, noise, snr_db, np.random.default_rng(seed))


# -- 1, 2: the detector offline ---------------------------------------------------------------


def detect_all(word: str, audio: Float32Array, chunk: int = 320) -> tuple[list[Any], float, int]:
    """Detections of ``word`` in ``audio`` fed in 20 ms chunks, the CPU seconds spent, and how
    many near misses the second model re-heard."""
    from assistant.audio.wake import WakeDetector

    det = WakeDetector(word)
    pcm = to_pcm(audio)
    step = chunk * 2
    hits: list[Any] = []
    t0 = time.process_time()
    for i in range(0, len(pcm), step):
        hits.extend(det.process(pcm[i : i + step]))
    return hits, time.process_time() - t0, det.verified


def false_wakes(audio: Float32Array, noise: Float32Array) -> dict[str, Any]:
    from assistant.audio.wake import WAKE_WORDS

    hours = audio.size / RATE / 3600
    noisy = with_noise(audio, noise, 10.0, 7)
    out: dict[str, Any] = {"hours": round(hours, 3)}
    for word in WAKE_WORDS:
        row: dict[str, Any] = {}
        for cond, x in (("clean", audio), ("10dB", noisy)):
            hits, cpu, verified = detect_all(word, x)
            row[cond] = {"false_wakes": len(hits), "per_hour": round(len(hits) / hours, 2),
                         "second_opinions_per_hour": round(verified / hours, 1),
                         "at_s": [round(h.at_ms / 1000, 1) for h in hits][:20],
                         "detector_cpu_percent_of_core": round(100 * cpu / (x.size / RATE), 3)}
        out[word] = row
    return out


def miss_rates(noise: Float32Array, out: Path) -> dict[str, Any]:
    speaker = make_speaker(out)
    voices = wake_voices()
    result: dict[str, Any] = {"voices": [v.name for v in voices]}
    for word, phrases in WAKE_PHRASES.items():
        row: dict[str, Any] = {}
        for cond in ("clean", "10dB"):
            total = missed = 0
            delays: list[float] = []
            missed_items: list[str] = []
            for vi, voice in enumerate(voices):
                for pi, text in enumerate(phrases):
                    x = speaker.say(text, voice)
                    lead = np.zeros(RATE, np.float32)
                    clean = np.concatenate((lead, x.astype(np.float32),
                                            np.zeros(RATE, np.float32)))
                    draws = range(NOISE_DRAWS) if cond == "10dB" else (None,)
                    for k in draws:
                        clip = clean if k is None else with_noise(
                            clean, noise, 10.0, 1000 * vi + pi + 7919 * k)
                        hits, _, _ = detect_all(word, clip)
                        total += 1
                        if not hits:
                            missed += 1
                            missed_items.append(f"{voice.name}: {text}"
                                                + (f" (noise {k})" if k is not None else ""))
                            continue
                        if "," not in text:  # the phrase alone: delay after its end
                            end_ms = (lead.size + _speech_end(x)) * 1000 / RATE
                            delays.append(hits[0].at_ms - end_ms)
            row[cond] = {
                "phrases": total, "missed": missed,
                "miss_percent": round(100 * missed / max(total, 1), 1),
                "detection_delay_ms_p50": round(statistics.median(delays)) if delays else None,
                "missed_items": missed_items,
            }
        result[word] = row
    return result


def _speech_end(x: Float32Array, floor_dbfs: float = -40.0) -> int:
    win = RATE // 100
    n = x.size // win
    rms = np.sqrt(np.mean(x[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1))
    loud = np.nonzero(rms > 10 ** (floor_dbfs / 20))[0]
    return int((loud[-1] + 1) * win) if loud.size else x.size


# -- 3, 4, 5: against a server ----------------------------------------------------------------


async def _session(url: str, wake: str | None) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None)
    await ws.recv()  # session.created
    update: dict[str, Any] = {"type": "session.update", "partials": False,
                              "device_events": False}
    if wake:
        update["wake"] = {"word": wake}
    await ws.send(json.dumps(update))
    return ws


async def _drain(ws: Any, sink: list[dict[str, Any]], done: asyncio.Event | None = None) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for msg in ws:
            if isinstance(msg, str):
                event = json.loads(msg)
                sink.append(event)
                if done is not None and event.get("type") == "metrics":
                    done.set()
    except ConnectionClosed:
        pass


async def idle_cpu(url: str, pid: int, streams: int, seconds: float,
                   audio: Float32Array) -> dict[str, Any]:
    from assistant.bench.latency_runner import ProcessMonitor

    monitor = ProcessMonitor(pid)
    out: dict[str, Any] = {"streams": streams, "seconds": seconds}
    for label, wake in (("wake_okay_nabu", "okay_nabu"), ("no_wake_vad_only", None)):
        sessions = [await _session(url, wake) for _ in range(streams)]
        events: list[dict[str, Any]] = []
        drains = [asyncio.ensure_future(_drain(ws, events)) for ws in sessions]
        await asyncio.sleep(2.0)
        c0, t0 = monitor.cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds / 4)
        idle = (monitor.cpu_seconds() - c0) / (time.monotonic() - t0)
        pcm = to_pcm(audio)
        frame = RATE * 20 // 1000 * 2
        rng = np.random.default_rng(3)
        offsets = [int(rng.integers(0, max(1, len(pcm) // frame - 1))) * frame
                   for _ in sessions]
        n_frames = int(seconds * 50)
        start = time.monotonic()
        c1 = monitor.cpu_seconds()
        late = 0
        for i in range(n_frames):
            for k, ws in enumerate(sessions):
                off = (offsets[k] + i * frame) % (len(pcm) - frame)
                await ws.send(pcm[off : off + frame])
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late += 1
        wall = time.monotonic() - start
        busy = (monitor.cpu_seconds() - c1) / wall
        for ws in sessions:
            await ws.close()
        for d in drains:
            d.cancel()
        per_stream = 100 * (busy - idle) / streams
        out[label] = {
            "server_percent_of_core_connected_no_audio": round(100 * idle, 2),
            "server_percent_of_core_streaming": round(100 * busy, 2),
            "per_stream_percent_of_core": round(per_stream, 3),
            "frames_sent_late": late,
            "wake_detected": sum(1 for e in events if e.get("type") == "wake.detected"),
            "utterances": sum(1 for e in events if e.get("type") == "speech.started"),
        }
    return out


async def wake_latency(url: str, out: Path) -> dict[str, Any]:
    from assistant.bench.accuracy_sets import VOICES

    speaker = make_speaker(out)
    piper = VOICES[0]
    rows: list[dict[str, Any]] = []
    for i, cmd in enumerate(LATENCY_COMMANDS):
        wake = speaker.say("okay nabu", VOICES[1])
        command = speaker.say(cmd, piper)
        lead = np.zeros(RATE // 2, np.float32)
        pause = np.zeros(int(RATE * (0.3 if i % 2 else 1.0)), np.float32)
        audio = np.concatenate((lead, wake, pause, command, np.zeros(RATE * 2, np.float32)))
        wake_end_ms = (lead.size + _speech_end(wake)) * 1000 / RATE
        ws = await _session(url, "okay_nabu")
        events: list[dict[str, Any]] = []
        finished = asyncio.Event()
        drain = asyncio.ensure_future(_drain(ws, events, finished))
        pcm = to_pcm(audio)
        frame = 640
        t0 = time.monotonic()
        for j, off in enumerate(range(0, len(pcm), frame)):
            await ws.send(pcm[off : off + frame])
            delay = t0 + (j + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), 20)
        await ws.close()
        drain.cancel()
        wake_ev = next((e for e in events if e.get("type") == "wake.detected"), None)
        metrics = next((e for e in events if e.get("type") == "metrics"), None)
        finals = [e for e in events if e.get("type") == "action" and e.get("final")]
        rows.append({
            "command": cmd,
            "pause_ms": pause.size * 1000 // RATE,
            "woke": wake_ev is not None,
            "wake_delay_ms": None if wake_ev is None else round(wake_ev["audio_ms"] - wake_end_ms),
            "actions": [(a.get("device_id"), a.get("status")) for a in finals],
            "speech_end_to_action_ms": None if metrics is None
            else metrics["timings_ms"].get("speech_end_to_action"),
        })
    ok = [r for r in rows if r["woke"] and r["speech_end_to_action_ms"] is not None]
    return {
        "runs": rows,
        "woke": sum(r["woke"] for r in rows),
        "acted": sum(1 for r in rows if any(s == "confirmed" for _, s in r["actions"])),
        "wake_delay_ms_p50": statistics.median([r["wake_delay_ms"] for r in rows if r["woke"]])
        if any(r["woke"] for r in rows) else None,
        "speech_end_to_action_ms_p50": statistics.median(
            [r["speech_end_to_action_ms"] for r in ok]) if ok else None,
    }


def stt_corpus(out: Path) -> Path:
    from assistant.bench.accuracy_sets import VOICES

    speaker = make_speaker(out)
    corpus = out / "stt-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    n = 0
    for voice in (VOICES[0], VOICES[1]):
        for text in STT_COMMANDS:
            n += 1
            x = np.concatenate((np.zeros(RATE // 4, np.float32), speaker.say(text, voice),
                                np.zeros(RATE // 4, np.float32)))
            with wave.open(str(corpus / f"cmd_{n:02d}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(to_pcm(x))
            (corpus / f"cmd_{n:02d}.txt").write_text(text + "\n", encoding="utf-8")
    return corpus


def wyoming_bench(port: int, corpus: Path, out: Path) -> dict[str, Any]:
    exe = shutil.which("wyoming-bench") or str(Path(sys.executable).parent / "wyoming-bench")
    if not Path(exe).exists():
        return {"skipped": "wyoming-bench is not installed (pip install wyoming-bench)"}
    cmd = [exe, "stt", "--corpus", str(corpus), "--mode", "non_streaming", "--rounds", "1",
           "--warmup", "1", f"127.0.0.1:{port}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    (out / "wyoming-bench.txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return {"command": " ".join(cmd[1:]), "returncode": proc.returncode,
            "output": (proc.stdout + proc.stderr)[-6000:]}


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from assistant.bench.accuracy_sets import default_data_dir, kitchen_noise

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir = args.data or default_data_dir()
    noise = kitchen_noise(data_dir)
    report: dict[str, Any] = {}
    if args.sweep:
        from assistant.bench.wake_sweep import render_sweep, sweep

        audio, info = background(args.hours, data_dir, out)
        sw = sweep(args.sweep, audio, noise, out)
        sw["background"] = info
        (out / "sweep.json").write_text(json.dumps(sw, indent=1, default=str), encoding="utf-8")
        (out / "sweep.md").write_text(render_sweep(sw), encoding="utf-8")
        print(render_sweep(sw))
        return 0
    logger.info("building %.1f h of speech without a wake word ...", args.hours)
    audio, info = background(args.hours, data_dir, out)
    report["background"] = info
    logger.info("false wakes ...")
    report["false_wakes"] = false_wakes(audio, noise)
    logger.info("misses ...")
    report["misses"] = miss_rates(noise, out)
    if not args.no_server:
        report.update(asyncio.run(_server_figures(args, out, audio)))
    (out / "wake.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    (out / "wake.md").write_text(render(report), encoding="utf-8")
    print(render(report))
    return 0


async def _server_figures(args: argparse.Namespace, out: Path,
                          audio: Float32Array) -> dict[str, Any]:
    from assistant.bench.latency_runner import free_port
    from assistant.bench.soak import Started, start_server

    work = out / "work"
    work.mkdir(exist_ok=True)
    wport = free_port()
    ns = argparse.Namespace(config=None, token=None,
                            server_args=["--wyoming", f"tcp://127.0.0.1:{wport}"])
    started = Started()
    result: dict[str, Any] = {}
    try:
        url, pid = await asyncio.to_thread(start_server, ns, work, started)
        logger.info("server %s (pid %d), Wyoming port %d", url, pid, wport)
        logger.info("wake -> action ...")
        result["latency"] = await wake_latency(url, out)
        logger.info("CPU of %d always-on streams ...", args.streams)
        result["cpu"] = await idle_cpu(url, pid, args.streams, args.seconds, audio)
        logger.info("wyoming-bench ...")
        corpus = await asyncio.to_thread(stt_corpus, out)
        result["wyoming_bench"] = await asyncio.to_thread(wyoming_bench, wport, corpus, out)
    finally:
        await asyncio.to_thread(started.stop)
    return result


def render(r: dict[str, Any]) -> str:
    lines = ["# hearth bench wake", ""]
    bg = r["background"]
    lines.append(f"Speech without a wake word: {bg['seconds'] / 3600:.2f} h "
                 f"({json.dumps(bg['by_source_s'])}).")
    lines += ["", "| wake word | false wakes clean (/h) | at 10 dB (/h) | detector CPU "
              "| second opinions / h (clean, 10 dB) |", "|---|---|---|---|---|"]
    fw = r["false_wakes"]
    for word, row in fw.items():
        if word == "hours":
            continue
        lines.append(f"| {word} | {row['clean']['false_wakes']} ({row['clean']['per_hour']}) "
                     f"| {row['10dB']['false_wakes']} ({row['10dB']['per_hour']}) "
                     f"| {row['clean']['detector_cpu_percent_of_core']} % of a core "
                     f"| {row['clean']['second_opinions_per_hour']}, "
                     f"{row['10dB']['second_opinions_per_hour']} |")
    lines += ["", "| wake word | misses clean | misses 10 dB | delay after phrase (P50) |",
              "|---|---|---|---|"]
    for word, row in r["misses"].items():
        if word == "voices":
            continue
        c, n = row["clean"], row["10dB"]
        lines.append(f"| {word} | {c['missed']}/{c['phrases']} ({c['miss_percent']} %) | "
                     f"{n['missed']}/{n['phrases']} ({n['miss_percent']} %) | "
                     f"{c['detection_delay_ms_p50']} ms |")
    if "cpu" in r:
        cpu = r["cpu"]
        lines += ["", f"CPU, {cpu['streams']} streams x {cpu['seconds']:g} s real time:"]
        for label in ("wake_okay_nabu", "no_wake_vad_only"):
            row = cpu[label]
            lines.append(f"- {label}: {row['per_stream_percent_of_core']} % of a core per "
                         f"stream (server {row['server_percent_of_core_streaming']} % "
                         f"streaming, {row['server_percent_of_core_connected_no_audio']} % "
                         f"connected; late frames {row['frames_sent_late']}; wakes "
                         f"{row['wake_detected']}, utterances {row['utterances']})")
    if "latency" in r:
        lat = r["latency"]
        lines += ["", f"Wake -> action: {lat['woke']}/{len(lat['runs'])} woke, "
                  f"{lat['acted']} confirmed; wake delay P50 {lat['wake_delay_ms_p50']} ms; "
                  f"speech end -> action P50 {lat['speech_end_to_action_ms_p50']} ms"]
    if "wyoming_bench" in r:
        wb = r["wyoming_bench"]
        lines += ["", "wyoming-bench:", "", "```", wb.get("output", wb.get("skipped", "")),
                  "```"]
    return "\n".join(lines) + "\n"
