"""``hearth bench accuracy``: speech → intent command acceptance.

An utterance counts only if the intent and every action slot are right ("command acceptance",
the metric of the Picovoice speech-to-intent benchmark). Each clip goes through the real
pipeline pieces in-process: the server's ``AudioFrontEnd`` (silero-vad + endpointer) cuts it
into utterances, ``WhisperTranscriber`` transcribes each, and ``intents.Recognizer`` (with the
coffee-maker custom intents loaded through the documented custom-intent mechanism) turns the
text into an intent, exactly as the server does: its transcriber settings and hotwords, the
retry on the 30 s window when nothing parses, its decoder (``intents.decode``) and the
acoustic repair of guessed or missing readings (``assistant.audio.acoustic_repair``). Another
setting is measured with ``--set-option KEY=JSON`` (``asr.beam_size=1``), an override of the
server's own ``assistant:`` section; ``--serve`` streams the clips through a real server.

Writes ``DIR/accuracy.json`` (summary), ``DIR/accuracy_records.jsonl`` (one record per clip
and condition) and ``DIR/accuracy.md`` (tables). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from assistant.answers.clarify import ambiguous_targets
from assistant.audio.asr import pool_transcripts
from assistant.bench.accuracy_asr import AsrVariant, ServerEndpointing, server_variant
from assistant.bench.accuracy_report import write_markdown
from assistant.bench.accuracy_sets import (
    DEFAULT_CACHE,
    DEFAULT_SEED,
    SYNTHETIC_COUNT,
    Item,
    Speaker,
    chatter_talkers,
    default_data_dir,
    kitchen_noise,
    negative_items,
    picovoice_items,
    subset,
    synthetic_items,
)
from assistant.bench.accuracy_summary import (
    PICOVOICE_AVERAGED,
    PUBLISHED,
    TARGETS,
    _variant_names,
    build_report,
    summarize_condition,
)
from assistant.bench.accuracy_text import matches, moves_device, word_errors
from assistant.bench.noise import babble, mix_at_snr, stable_seed, white_noise
from assistant.config import AssistantSettings
from intents.decode import Hypothesis
from intents.evidence import weigh_reading
from intents.repair import normalize_transcript

logger = logging.getLogger(__name__)

SETS: Final = ("picovoice", "synthetic", "negatives")


#: Noise conditions per set when ``--snr`` is not given ("clean" = no noise added).
DEFAULT_CONDITIONS: Final[dict[str, tuple[str, ...]]] = {
    "picovoice": ("clean", "24", "18", "12", "6"),
    "synthetic": ("clean", "20", "10", "5"),
    "negatives": ("clean", "10"),
}


#: The one variant: the server's transcriber with its decoder (and acoustic repair).
DEFAULT_KEEP: Final = "server/shipped"


COFFEE_FILE: Final = (
    Path(__file__).resolve().parents[2] / "intents" / "data" / "examples" / "picovoice_coffee.yaml"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hearth bench accuracy``."""
    parser.add_argument("--set", dest="sets", action="append", choices=(*SETS, "zh-cn"),
                        help="set to run (repeatable; default: picovoice). zh-cn: Mandarin "
                             "commands streamed through a server (assistant/bench/"
                             "accuracy_zh.py; conditions clean 10), alone")
    parser.add_argument("--language", default=None, metavar="LANG",
                        help="spoken language; zh-CN runs the zh-cn set (default: en)")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="Whisper model of the zh-cn set: base (default), small or a path")
    parser.add_argument("--snr", nargs="+", default=None, metavar="DB",
                        help="conditions: 'clean' and/or SNRs in dB (default per set: "
                             "picovoice clean 24 18 12 6; synthetic clean 20 10 5; negatives "
                             "clean 10)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="at most N clips per set (a seeded, representative subset)")
    parser.add_argument("--out", default="bench-out/accuracy", metavar="DIR",
                        help="report directory (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="confidence below which Hearth asks to repeat instead of acting, "
                             "for the headline figures (default: %(default)s)")
    parser.add_argument("--noise", choices=("kitchen", "white", "babble"), default="kitchen",
                        help="noise for the synthetic and negatives sets (default: kitchen)")
    parser.add_argument("--config", default=None,
                        help="home config (default: the demo home)")
    parser.add_argument("--custom-intents", action="append", default=None, metavar="FILE",
                        help="custom intent files (default: the coffee-maker example with "
                             "the picovoice set, none otherwise)")
    parser.add_argument("--data", default=None,
                        help="picovoice-speech-to-intent folder (default: ../shared/data/...)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE),
                        help="cache for synthesized audio (default: %(default)s)")
    parser.add_argument("--synthetic-count", type=int, default=SYNTHETIC_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--threads", type=int, default=2, help="Whisper CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--serve", action="store_true",
                        help="picovoice through a real server in real time (endpointing, "
                             "speculation and actions as a client gets them; "
                             "accuracy_serve.py)")
    parser.add_argument("--streams", type=int, default=1, metavar="N",
                        help="with --serve: client sessions streaming at once (default 1)")
    parser.add_argument("--set-option", action="append", default=None, metavar="KEY=JSON",
                        help="an override of the server's assistant: settings (dotted "
                             "key, JSON value), e.g. asr.beam_size=1 or speculative=false")
    parser.add_argument("--resume", nargs="+", default=None, metavar="JSONL",
                        help="skip the clips (set, condition, id) already in these records "
                             "files; merge them afterwards with --from-records")
    parser.add_argument("--from-records", nargs="+", default=None, metavar="JSONL",
                        help="measure nothing: rebuild the report from records files of "
                             "earlier runs (e.g. one run per set, merged)")


@dataclass
class _Pipeline:
    """Everything built once per run and shared by all sets."""

    recognizer: Any
    endpointing: ServerEndpointing
    variant: AsrVariant
    transcriber: Any  # assistant.audio.asr.WhisperTranscriber
    hotwords: tuple[str, ...]
    query_intents: frozenset[str]
    models: dict[str, Any]
    shipped: Any  # intents.decode.HypothesisDecoder, as the server builds it
    repair: Any  # assistant.audio.acoustic_repair.AcousticRepair, or None (no custom intents)


def custom_files(args: argparse.Namespace) -> list[str]:
    """The custom intent files of the home: ``--custom-intents``, else the coffee example when
    the Picovoice orders are among the sets (the demo home as served has none, and the home's
    own sets are measured on it as it is served)."""
    if args.custom_intents:
        return list(args.custom_intents)
    return [str(COFFEE_FILE)] if "picovoice" in (args.sets or ("picovoice",)) else []


def _build_pipeline(args: argparse.Namespace, settings: AssistantSettings) -> _Pipeline:
    from assistant.app import Hearth
    from assistant.audio.acoustic_repair import AcousticRepair
    from assistant.audio.asr import WhisperTranscriber
    from devices.registry import load_config, load_demo_config
    from intents.decode import FULL_DECODE, HypothesisDecoder
    from intents.recognizer import Recognizer
    from intents.schema import QUERY_INTENTS
    from intents.timers import DATE_GET, TIME_GET, TIMER_STATUS

    config = load_demo_config() if args.config is None else load_config(args.config)
    files = custom_files(args)
    recognizer = Recognizer(config, custom_intent_files=files)
    asr = settings.asr
    shipped = HypothesisDecoder(recognizer, FULL_DECODE)
    shipped.warmup()
    variant = server_variant(settings, args.threads)
    transcriber = WhisperTranscriber(variant.settings)
    transcriber.warmup()
    repair = None
    if asr.acoustic_repair and asr.decode == "grammar":
        repair = AcousticRepair.for_settings(recognizer, transcriber, asr)
    return _Pipeline(
        recognizer=recognizer,
        endpointing=ServerEndpointing(),
        variant=variant,
        transcriber=transcriber,
        hotwords=Hearth.asr_hotwords(recognizer),
        # the clock and a timer's status answer; they move nothing
        query_intents=frozenset(QUERY_INTENTS) | {TIME_GET, DATE_GET, TIMER_STATUS},
        models={variant.name: variant.settings.model_dump(mode="json")},
        shipped=shipped if asr.decode == "grammar" else None,
        repair=repair,
    )


# -- one clip -------------------------------------------------------------------------------


def _intent_json(intent: Any) -> dict[str, Any] | None:
    if intent is None:
        return None
    slots = intent.slots.model_dump(mode="json", exclude_defaults=True)
    return {"name": intent.name, "slots": slots, "confidence": intent.confidence,
            "source": intent.source}


def _hypotheses(t: Any) -> list[Hypothesis]:
    return [Hypothesis(a.text, a.avg_logprob) for a in t.alternatives] or [
        Hypothesis(t.text, t.avg_logprob)]


def _run_clip(p: _Pipeline, item: Item, audio: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Endpointing, transcription, decoding and acoustic repair of one clip, as the server
    does them."""
    segs = p.endpointing.segments(audio)
    rec: dict[str, Any] = {
        "set": item.set, "id": item.id, "kind": item.kind, "voice": item.voice,
        "reference": item.text,
        "expected": None if item.expected is None else item.expected.to_json(),
        "duration_s": round(len(audio) / 16000, 3), "segments": len(segs.audio),
        "vad_ms": round(segs.vad_ms, 2), "variants": {},
    }
    v = p.variant
    asr_ms = 0.0
    seg_out: list[tuple[list[Hypothesis], float]] = []
    texts: list[str] = []
    fell_back = False
    retried = 0
    for seg in segs.audio:
        # The transcriber's own retries (30 s window when broken or cut off) included.
        t = p.transcriber.transcribe(seg, hotwords=p.hotwords)
        asr_ms += t.elapsed_s * 1000.0
        retried += t.cut_off
        fell_back |= t.fell_back and not t.cut_off  # a loop or a budget hit
        if v.retry_parse and not t.full_window:
            t0 = time.perf_counter()
            retry = not any(p.recognizer.recognize(normalize_transcript(h.text)).intent
                            for h in _hypotheses(t))
            asr_ms += (time.perf_counter() - t0) * 1000.0
            if retry:
                t_full = p.transcriber.transcribe_full(seg, hotwords=p.hotwords)
                asr_ms += t_full.elapsed_s * 1000.0
                retried += 1
                t = pool_transcripts(t_full, t)  # the full window's hypotheses first
        seg_out.append((_hypotheses(t), t.no_speech_prob))
        texts.append(t.text)
    vrec: dict[str, Any] = {
        "text": " ".join(texts), "asr_ms": round(asr_ms, 1), "fell_back": fell_back,
        "retried_full": retried,
        "nbest": [[h.text for h in hyps] for hyps, _ in seg_out] if v.n_best > 1 else None,
        "decode": {},
    }
    if item.text is not None:
        errs, n = word_errors(item.text, vrec["text"])
        vrec["word_errors"], vrec["ref_words"] = errs, n
    acted: list[tuple[Any, float, str]] = []
    intent_ms = 0.0
    repair_ms = 0.0
    first_text = ""
    for (hyps, no_speech), seg in zip(seg_out, segs.audio, strict=True):
        t0 = time.perf_counter()
        if p.shipped is not None:
            found = p.shipped.decode(hyps, no_speech_prob=no_speech)
        else:  # asr.decode: plain
            found = p.recognizer.recognize(normalize_transcript(hyps[0].text if hyps else ""))
        intent_ms += (time.perf_counter() - t0) * 1000.0
        transform = "shipped"
        rescued = found.intent is None
        if p.repair is not None and p.repair.engages(found):
            t0 = time.perf_counter()
            repaired = p.repair.repair(seg, hyps, found)
            repair_ms += (time.perf_counter() - t0) * 1000.0
            if repaired.recognition is not found:
                transform = "repaired"
            found = repaired.recognition
        # what Whisper wrote weighs a guessed reading, as in the server's turn
        found = weigh_reading(p.recognizer, found, [h.text for h in hyps], rescued=rescued)
        if found.intent is not None and ambiguous_targets(found.intent, p.recognizer.config):
            continue  # the server asks "which light?" and acts on nothing yet
        if found.intent is not None:
            acted.append((found.intent, found.intent.confidence, transform))
            first_text = first_text or found.intent.text
    # The server acts on every utterance that yields an intent: a clip is right only if
    # exactly one did and it is the expected one.
    intent = acted[0][0] if acted else None
    drec: dict[str, Any] = {
        "intent": _intent_json(intent),
        "confidence": round(acted[0][1], 4) if acted else 0.0,
        "actions": len(acted),
        "moves": any(moves_device(i, p.query_intents) for i, _, _ in acted),
        "transform": acted[0][2] if acted else None,
        "used_text": first_text or None,
        "intent_ms": round(intent_ms, 2),
        "repair_ms": round(repair_ms, 1),
    }
    if item.expected is not None:
        drec["correct"] = len(acted) == 1 and matches(item.expected, intent)
    vrec["decode"]["shipped"] = drec
    rec["variants"][v.name] = vrec
    if item.text is not None:
        text_rec = p.recognizer.recognize(item.text)
        rec["text_intent"] = _intent_json(text_rec.intent)
        if item.expected is not None:
            rec["text_correct"] = matches(item.expected, text_rec.intent)
        else:
            rec["text_moves"] = moves_device(text_rec.intent, p.query_intents)
    return rec


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("faster-whisper", "ctranslate2", "hassil", "home-assistant-intents",
                "silero-vad", "onnxruntime", "piper-tts", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions,
            "load_average": list(os.getloadavg())}


def _conditions(set_name: str, snr: Sequence[str] | None) -> list[str]:
    if not snr:
        return list(DEFAULT_CONDITIONS[set_name])
    out = []
    for c in snr:
        c = c.strip().lower()
        if c not in ("clean", "inf"):
            float(c)  # validate
        out.append("clean" if c in ("clean", "inf") else str(int(float(c)))
                   if float(c).is_integer() else c)
    return out


# -- run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the chosen sets and write the report. Returns 0, or 2 on bad arguments/data."""
    logging.basicConfig(level=logging.WARNING)
    if args.from_records:
        return _rebuild(args)
    zh = (args.language or "en").lower().startswith("zh")
    if zh or "zh-cn" in (args.sets or []):
        if any(s != "zh-cn" for s in args.sets or []) or (not zh and args.language):
            print("--set zh-cn runs alone, in zh-CN (--language zh-CN)", file=sys.stderr)
            return 2
        from assistant.bench.accuracy_zh import run as run_zh

        return run_zh(args)
    if args.serve:
        if any(s != "picovoice" for s in args.sets or []):
            print("--serve runs the picovoice set", file=sys.stderr)
            return 2
        from assistant.bench.accuracy_serve import run as run_serve

        return run_serve(args)
    sets = args.sets or ["picovoice"]
    try:
        settings = AssistantSettings().with_overrides(**_options(args.set_option))
    except (ValueError, KeyError, TypeError) as e:  # AssistantConfigError is a ValueError
        why = f"no setting {e}" if isinstance(e, KeyError) else str(e)
        print(f"error: --set-option: {why}", file=sys.stderr)
        return 2
    data_dir = Path(args.data) if args.data else default_data_dir()
    if ("picovoice" in sets or "negatives" in sets or args.noise == "kitchen") and not (
            data_dir / "labels.json").is_file():
        print(f"picovoice data not found in {data_dir}", file=sys.stderr)
        return 2
    try:
        conditions = {s: _conditions(s, args.snr) for s in sets}
    except ValueError:
        print("--snr takes 'clean' or numbers (dB)", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    pipeline = _build_pipeline(args, settings)
    speaker = Speaker(Path(args.cache))
    noise = kitchen_noise(data_dir)
    pico_all = picovoice_items(data_dir, _snake())
    talkers = chatter_talkers(speaker)
    noises: dict[str, np.ndarray[Any, Any]] = {"kitchen": noise}
    rng0 = np.random.default_rng(args.seed)
    noises["white"] = white_noise(30.0, 16000, rng0)
    noises["babble"] = babble(talkers, 30.0, 16000, rng0)

    builders: dict[str, Callable[[], list[Item]]] = {
        "picovoice": lambda: pico_all,
        "synthetic": lambda: synthetic_items(pipeline.recognizer.config, speaker,
                                             count=args.synthetic_count, seed=args.seed),
        "negatives": lambda: negative_items(speaker, noise, talkers, seed=args.seed),
    }
    done: set[tuple[str, str, str]] = set()
    for path in args.resume or []:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                done.add((r["set"], r["condition"], r["id"]))
    records_path = out_dir / "accuracy_records.jsonl"
    all_records: list[dict[str, Any]] = []
    with records_path.open("w", encoding="utf-8") as rec_file:
        for set_name in sets:
            items = subset(builders[set_name](), args.limit, args.seed)
            set_noise = noise if set_name == "picovoice" else noises[args.noise]
            for cond in conditions[set_name]:
                t_cond = time.perf_counter()
                for k, item in enumerate(items):
                    if cond != "clean" and item.kind == "noise":
                        continue  # noise-only clips have no speech to mix with
                    if (set_name, cond, item.id) in done:
                        continue
                    clean = item.load()
                    if cond == "clean":
                        audio = clean
                    else:
                        rng = np.random.default_rng(stable_seed(set_name, item.id, cond, args.seed))
                        audio = mix_at_snr(clean, set_noise, float(cond), rng)
                    rec = _run_clip(pipeline, item, audio)
                    rec["condition"] = cond
                    all_records.append(rec)
                    rec_file.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    rec_file.flush()  # a killed run keeps what it measured
                    if not args.quiet and (k + 1) % 10 == 0:
                        el = time.perf_counter() - t_cond
                        print(f"[accuracy] {set_name} {cond}: {k + 1}/{len(items)} "
                              f"({el / (k + 1):.2f} s/clip)", file=sys.stderr, flush=True)
                rec_file.flush()

    variant_names = _variant_names(all_records)
    keep = DEFAULT_KEEP
    report = build_report(all_records, sets, conditions, variant_names, keep, args.threshold)
    report.update({
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "command": "hearth bench accuracy " + " ".join(sys.argv[3:] if len(sys.argv) > 3 else []),
        "machine": {**_machine(), "load_average_before": list(load_before)},
        "model": pipeline.models,
        "settings": {
            "overrides": args.set_option or [],
            "hotwords": list(pipeline.hotwords),
            "limit": args.limit, "seed": args.seed, "noise": args.noise,
            "threshold": args.threshold, "custom_intents": custom_files(args),
            "config": args.config or "demo home",
            "endpointing": "assistant.audio.frontend.AudioFrontEnd, default EndpointSettings",
        },
        "records": records_path.name,
    })
    return _write(report, out_dir, args.quiet)


def _write(report: dict[str, Any], out_dir: Path, quiet: bool) -> int:
    """``accuracy.json`` and ``accuracy.md`` in ``out_dir`` (the tables printed unless quiet)."""
    (out_dir / "accuracy.json").write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                           encoding="utf-8")
    write_markdown(report, out_dir / "accuracy.md")
    if not quiet:
        print((out_dir / "accuracy.md").read_text(encoding="utf-8"))
    return 0


def _options(items: Sequence[str] | None) -> dict[str, Any]:
    """``--set-option KEY=JSON`` items as overrides of the assistant settings."""
    out: dict[str, Any] = {}
    for kv in items or []:
        key, eq, value = kv.partition("=")
        if not eq or not key:
            raise ValueError(f"takes KEY=JSON, not {kv!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value  # a bare word: a string
    return out


def _rebuild(args: argparse.Namespace) -> int:
    """``--from-records``: the report of earlier runs' records, without measuring anything.
    Records of the same clip and condition are merged: their variants are pooled (a later
    file wins for a variant measured twice)."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in args.from_records:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                key = (r["set"], r["condition"], r["id"])
                if key in merged:
                    # The same clip measured by another run: keep both runs' variants.
                    merged[key]["variants"].update(r["variants"])
                else:
                    merged[key] = r
    records = list(merged.values())
    sets = [s for s in SETS if any(r["set"] == s for r in records)]
    conditions = {s: [c for c in dict.fromkeys(r["condition"] for r in records if r["set"] == s)]
                  for s in sets}
    for s in sets:
        conditions[s].sort(key=lambda c: -1e9 if c == "clean" else -float(c))
    variant_names = _variant_names(records)
    keep = DEFAULT_KEEP if DEFAULT_KEEP in variant_names else variant_names[-1]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records_path = out_dir / "accuracy_records.jsonl"
    with records_path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    report = build_report(records, sets, conditions, variant_names, keep, args.threshold)
    report.update({
        "command": "hearth bench accuracy --from-records " + " ".join(args.from_records),
        "machine": _machine(), "model": {}, "records": records_path.name,
        "settings": {"threshold": args.threshold, "merged_from": list(args.from_records)},
    })
    return _write(report, out_dir, args.quiet)


def _snake() -> Callable[[str], str]:
    from intents.custom import snake_case

    return snake_case


# The summaries live in accuracy_summary since the split; still importable from here.
__all__ = ["COFFEE_FILE", "PICOVOICE_AVERAGED", "PUBLISHED", "TARGETS", "add_arguments",
           "build_report", "run", "summarize_condition"]
