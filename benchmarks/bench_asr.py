"""ASR benchmark: cinedex.pipeline.asr.transcribe against bare faster-whisper batched inference, same model, same audio.

In one process, on one audio file, alternating run by run (never in parallel):

  ours  cinedex.pipeline.asr.transcribe(audio, settings): WhisperX's pyannote VAD, batched decoding with word times,
        utterance cutting; settings as configured (by default: bundled tiny.en, batch size 8, no alignment or
        diarization where none is configured).
  bare  faster_whisper.BatchedInferencePipeline(model).transcribe(audio, batch_size=B, word_timestamps=True,
        language=L) with faster-whisper's own defaults (Silero VAD), its segment generator consumed.

Both use the one model object cinedex loads (cinedex.pipeline.asr.load_speech_model(...).model), so model load time is
excluded from both; each contender runs once on the audio as a warm-up before the timed runs. Wall time is
time.perf_counter around the call; CPU time is time.process_time (all threads of this process), which is less
disturbed than wall time when other work shares the machine. The ratio compares medians. Goal: ours / bare wall
time <= 1.1.

Audio: pyannote's 30 s sample conversation concatenated --copies times (default 10: 5 minutes) with ffmpeg's
concat demuxer into a temporary folder.

Usage:
  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_asr.py                  # 5 min of audio, 3 timed runs each
  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_asr.py --copies 20 --repeat 5
Results: a table and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

GOAL_OURS_OVER_BARE = 1.1


def concatenated(wav: Path, copies: int, folder: Path) -> Path:
    listing = folder / "copies.txt"
    listing.write_text("".join(f"file '{wav}'\n" for _ in range(copies)))
    out = folder / f"conversation_x{copies}.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(out)], check=True)
    return out


def timed(run) -> tuple[float, float, int]:
    """(wall s, cpu s, words) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    words = run()
    return time.perf_counter() - wall, time.process_time() - cpu, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="times the 30 s sample is repeated (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (default 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import faster_whisper

    from cinedex.pipeline import asr
    from cinedex.sample import conversation
    from cinedex.core.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench_asr_") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        audio = concatenated(conversation()[0], args.copies, Path(tmp))
        duration_s = args.copies * 30.0
        device = asr.resolved_device(settings)
        compute_type = asr.resolved_compute_type(settings, device)
        started = time.perf_counter()
        model = asr.load_speech_model(settings.resolved_asr_model, device, compute_type).model
        load_s = time.perf_counter() - started

        def ours() -> int:
            return sum(len(u.words) for u in asr.transcribe(audio, settings).utterances)

        def bare() -> int:
            segments, _ = faster_whisper.BatchedInferencePipeline(model).transcribe(
                str(audio), language=settings.language or None, batch_size=settings.asr_batch_size,
                word_timestamps=True)
            return sum(len(s.words) for s in segments)

        contenders = {"ours": ours, "bare": bare}
        for run in contenders.values():
            run()
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in contenders}
        for _ in range(args.repeat):
            for name, run in contenders.items():
                runs[name].append(timed(run))

    wall = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    ratio, cpu_ratio = wall["ours"] / wall["bare"], cpu["ours"] / cpu["bare"]
    print(f"audio {duration_s:.0f} s, model {settings.resolved_asr_model} "
          f"on {device} ({compute_type}), batch size {settings.asr_batch_size}, model load {load_s:.1f} s (excluded)")
    print(f"{'':6}{'median wall s':>14}{'median cpu s':>14}{'x real time':>13}{'words':>7}   wall s of each run")
    for name, rs in runs.items():
        print(f"{name:6}{wall[name]:14.2f}{cpu[name]:14.2f}{duration_s / wall[name]:13.1f}{rs[-1][2]:7d}   "
              + " ".join(f"{r[0]:.2f}" for r in rs))
    verdict = "meets" if ratio <= GOAL_OURS_OVER_BARE else "misses"
    print(f"ours / bare: wall {ratio:.3f}, cpu {cpu_ratio:.3f} ({verdict} the goal of <= {GOAL_OURS_OVER_BARE})")
    print(json.dumps({
        "bench": "asr", "audio_s": duration_s, "model": settings.resolved_asr_model, "device": device,
        "compute_type": compute_type, "batch_size": settings.asr_batch_size, "repeat": args.repeat,
        "load_s": round(load_s, 2),
        **{f"{name}_wall_s": [round(r[0], 3) for r in rs] for name, rs in runs.items()},
        **{f"{name}_cpu_s": [round(r[1], 3) for r in rs] for name, rs in runs.items()},
        **{f"{name}_words": rs[-1][2] for name, rs in runs.items()},
        "ratio_wall": round(ratio, 3), "ratio_cpu": round(cpu_ratio, 3), "goal": GOAL_OURS_OVER_BARE,
        "meets_goal": ratio <= GOAL_OURS_OVER_BARE, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
        "host": platform.node(),
    }))


if __name__ == "__main__":
    main()
