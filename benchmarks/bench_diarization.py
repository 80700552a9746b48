"""Diarization benchmark: the local engine (cinedex.pipeline.diarization.diarize) on long soundtracks of known turns.

A soundtrack of --hours hours among four voices (pyannote's two real callers and two espeak-ng voices, the same as
tests/test_diarization.py's four-voice recording, tests/voices.py) is built once into benchmarks/.films/; the
--memory-hours one repeats it with ffmpeg's -stream_loop (its turns repeated with it). Each is diarized in its own
process, after a 30 s warm-up call that loads the models, so the figures are of one film: wall and CPU time
(time.perf_counter, time.process_time) around diarize(), peak resident memory of that process (ru_maxrss, models
included), speakers found and DER with pyannote.metrics (no collar, and 0.25 s either side). Goals (issue 15):
real-time factor <= 0.05 on 2 cores for 1 hour, peak memory < 1 GB for 2.5 hours.

--accuracy scores the short recordings of tests/test_diarization.py instead (pyannote's sample call with its
sample.rttm, three and four voices) and appends to benchmarks/results/diarization_der.jsonl.

Usage:
  nice -n 10 .venv/bin/python benchmarks/bench_diarization.py                  # 1 h, then 2.5 h
  nice -n 10 .venv/bin/python benchmarks/bench_diarization.py --accuracy
  nice -n 10 .venv/bin/python benchmarks/bench_diarization.py --hours 0.25 --memory-hours 0
Results: one JSON line per soundtrack on stdout, appended to benchmarks/results/diarization.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILMS, RESULTS = ROOT / "benchmarks" / ".films", ROOT / "benchmarks" / "results" / "diarization.jsonl"
ACCURACY = ROOT / "benchmarks" / "results" / "diarization_der.jsonl"
VOICES = ["Diane", "Sheila", "Bea", "Cal"]
TURN_S = 3.3  # about the mean turn with its pause in tests/voices.py recordings
GOAL_RTF, GOAL_PEAK_MB = 0.05, 1024


def soundtrack(hours: float) -> tuple[Path, list]:
    """The hours-long soundtrack and its reference turns, built once."""
    sys.path.insert(0, str(ROOT / "tests"))
    from voices import build_recording

    FILMS.mkdir(parents=True, exist_ok=True)
    wav, turns = FILMS / f"voices4_{hours:g}h.wav", FILMS / f"voices4_{hours:g}h.json"
    if not turns.is_file():
        reference = build_recording(wav, VOICES, int(hours * 3600 / TURN_S), seed=3)
        turns.write_text(json.dumps(reference))
    return wav, json.loads(turns.read_text())


def looped(source: Path, reference: list, hours: float) -> tuple[Path, list]:
    """`source` repeated up to `hours` hours, with its turns shifted along."""
    import soundfile

    length = soundfile.info(str(source)).duration
    copies = int(hours * 3600 // length) + 1
    wav = FILMS / f"{source.stem}_x{hours:g}h.wav"
    if not wav.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-stream_loop", str(copies - 1),
                        "-i", str(source), "-t", str(hours * 3600), "-c", "copy", str(wav)], check=True)
    return wav, [(a + i * length, b + i * length, s) for i in range(copies) for a, b, s in reference
                 if b + i * length <= hours * 3600]


def measure(wav: Path) -> dict:
    """Runs in the child: diarize `wav` after a warm-up, print the figures."""
    from cinedex.pipeline.diarization import diarize
    from cinedex.sample import conversation

    diarize(conversation()[0])
    wall, cpu = time.perf_counter(), time.process_time()
    found = diarize(wav)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "speakers": found.speakers,
            "turns": [(t.start_s, t.end_s, t.speaker) for t in found.turns],
            "duration_s": round(found.turns[-1].end_s if found.turns else 0.0), "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> int:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent across fork and
    exec, so a child of a big parent reports the parent's peak."""
    status = Path("/proc/self/status").read_text()
    return round(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024)


def der(reference: list, turns: list, collar: float) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(items):
        result = Annotation()
        for index, (start, end, speaker) in enumerate(items):
            result[Segment(start, end), index] = speaker
        return result

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return round(float(DiarizationErrorRate(collar=collar)(annotation(reference), annotation(turns))), 4)


def run(wav: Path, reference: list, hours: float) -> dict:
    import soundfile

    load = os.getloadavg()[0]
    child = subprocess.run([sys.executable, __file__, "--measure", str(wav)], check=True, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "include")})
    figures = json.loads(child.stdout.splitlines()[-1])
    turns = figures.pop("turns")
    duration = soundfile.info(str(wav)).duration
    figures["duration_s"] = round(duration)
    return {"benchmark": "diarization", "date": time.strftime("%Y-%m-%d"), "hours": hours,
            "cores": os.cpu_count(), "machine": platform.machine(), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2), **figures,
            "rtf": round(figures["wall_s"] / duration, 4), "cpu_rtf": round(figures["cpu_s"] / duration, 4),
            "speakers_true": len(VOICES), "der": der(reference, turns, 0.0),
            "der_collar_025": der(reference, turns, 0.5),
            "goal_rtf": GOAL_RTF, "goal_peak_mb": GOAL_PEAK_MB}


def accuracy() -> None:
    """DER and speaker count on the test recordings (same builds, same seeds as tests/test_diarization.py)."""
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from cinedex.pipeline.diarization import diarize
    from cinedex.sample import conversation
    from voices import build_recording

    sample = conversation()[0]
    rttm = [line.split() for line in sample.with_suffix(".rttm").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as scratch:
        recordings = {"pyannote sample call":
                      (sample, [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in rttm])}
        for name, voices, turns, seed in (("three voices", ["Alex", "Bea", "Cal"], 30, 1),
                                          ("four voices", ["Diane", "Sheila", "Bea", "Cal"], 40, 2)):
            wav = Path(scratch) / f"{name.split()[0]}.wav"
            recordings[name] = (wav, build_recording(wav, voices, turns, seed=seed))
        for name, (wav, reference) in recordings.items():
            found = diarize(wav)
            turns = [(t.start_s, t.end_s, t.speaker) for t in found.turns]
            result = {"benchmark": "diarization accuracy", "date": time.strftime("%Y-%m-%d"), "recording": name,
                      "speakers_true": len({s for _, _, s in reference}), "speakers_found": len(found.speakers),
                      "der": der(reference, turns, 0.0), "der_collar_025": der(reference, turns, 0.5)}
            print(json.dumps(result), flush=True)
            with ACCURACY.open("a", encoding="utf-8") as out:
                out.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="soundtrack timed for speed (default 1)")
    parser.add_argument("--memory-hours", type=float, default=2.5, help="soundtrack for peak memory; 0 = none")
    parser.add_argument("--accuracy", action="store_true", help="DER on the short test recordings instead")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.accuracy:
        accuracy()
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    wav, reference = soundtrack(args.hours)
    jobs = [(wav, reference, args.hours)]
    if args.memory_hours:
        jobs.append((*looped(wav, reference, args.memory_hours), args.memory_hours))
    for job in jobs:
        result = run(*job)
        print(json.dumps(result), flush=True)
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
