"""The two bundled speech models and the default that chooses between them, on the same English audio: tiny.en, the
multilingual Whisper base (`CINEDEX_ASR_MODEL=whisper-base-multilingual`) and `auto` (the language of each chunk
told by the base model, then tiny.en for English), each through cinedex.pipeline.asr.transcribe (VAD, batched
decoding, speech checks, utterances), alternating run by run.

Audio: pyannote's 30 s two-person call repeated --copies times. Figures per model: real-time factor (median wall
time / audio length; model load excluded by a warm-up run), the language found, and the word error rate against the
call's reference transcript (pyannote's own, repeated likewise; lowercased, punctuation dropped, jiwer).

Usage:
  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_asr_models.py [--copies 4] [--repeat 3]
Results: one JSON line on stdout, appended to benchmarks/results/asr_models.jsonl.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import jiwer
from recording import facts, keep

from cinedex.core.settings import Settings
from cinedex.pipeline import asr
from cinedex.sample import conversation, read_stm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "asr_models.jsonl"
MODELS = {"tiny.en": "tiny.en", "whisper-base-multilingual": "whisper-base-multilingual", "auto": "auto"}


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wav, stm = conversation()
    reference = " ".join([normalised(" ".join(u.text for u in read_stm(stm)))] * args.copies)
    with tempfile.TemporaryDirectory(prefix="cinedex-asr-models-") as scratch:
        listing = Path(scratch) / "list.txt"
        listing.write_text("".join(f"file '{wav}'\n" for _ in range(args.copies)))
        audio = Path(scratch) / "call.wav"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-ar", "16000", "-ac", "1", str(audio)], check=True)
        seconds = 30.0 * args.copies
        settings = {name: Settings(home=Path(scratch) / "home", asr_model=model, diarization="off")
                    for name, model in MODELS.items()}
        for name in MODELS:  # warm-up: loads each model (and joins the base model's two parts) outside the timing
            asr.transcribe(audio, settings[name])
        walls: dict[str, list[float]] = {name: [] for name in MODELS}
        found = {}
        for _ in range(args.repeat):
            for name in MODELS:
                started = time.perf_counter()
                found[name] = asr.transcribe(audio, settings[name])
                walls[name].append(time.perf_counter() - started)
    result = {**facts("asr_models"), "audio_s": seconds}
    for name in MODELS:
        hypothesis = normalised(" ".join(u.text for u in found[name].utterances))
        result[name] = {"real_time_factor": round(statistics.median(walls[name]) / seconds, 4),
                        "wall_s": [round(w, 2) for w in walls[name]], "language": found[name].language,
                        "wer": round(jiwer.wer(reference, hypothesis), 4)}
    names = list(MODELS)
    result["rtf_ratio"] = round(result[names[1]]["real_time_factor"] / result[names[0]]["real_time_factor"], 2)
    keep(result, RESULTS)


if __name__ == "__main__":
    main()
