"""On-screen text benchmark: cinedex.pipeline.on_screen_text.read_text against the frame sampler on the same film.

For each film, in one process, one after another: ingest, then the frame sampler (cinedex.pipeline.frames.sample,
default settings, into a fresh folder), then the on-screen text reader on that sampling (the OCR engine loaded
before the clock starts: a worker loads it once). Wall and CPU time (user+sys of this process and its ffmpeg
children) of each; seconds per film-hour; the frames the reader examined and what it did with them
(cinedex.pipeline.on_screen_text.TextCounts); for the text film, the drawn texts found (CER <= 5 %, both span
edges within 0.5 s).

The budget (issue 16): OCR and faces together cost no more than frame sampling on 2 CPU cores, so OCR's goal here
is ocr / sampler <= 0.5 (wall).

Films (default: text and sample; --only NAME):
  text       cinedex.sample.build_text_film (640x360, 25 fps, 23.56 s: 7 captions, signs and title-card lines in
             English and Chinese) repeated --copies times (default 3) with ffmpeg's concat demuxer (-c copy):
             a film full of text, the reader's worst case
  sample     cinedex.sample.build_sample_film (640x360, 34.56 s of real clips, no drawn text)
  synthetic  the first --minutes (default 5) of benchmarks/.films/synthetic_60m_ultrafast.mp4 (bench_frames.py
             builds it; 1280x720, lavfi test patterns, testsrc's counters among them), cut with -c copy

Usage:
  nice -n 10 .venv/bin/python benchmarks/bench_on_screen_text.py [--only text] [--copies 3]
  nice -n 10 .venv/bin/python benchmarks/bench_on_screen_text.py --only text --detections-per-minute 30
  nice -n 10 .venv/bin/python benchmarks/bench_on_screen_text.py --only synthetic --minutes 5
Results: one JSON line per film on stdout; the run is appended to benchmarks/results/on_screen_text.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jiwer

from cinedex.core.settings import Settings
from cinedex.pipeline import frames, ingest, on_screen_text
from cinedex.sample import build_sample_film, build_text_film

HERE = Path(__file__).resolve().parent
FILMS_DIR = HERE / ".films"
RESULTS_FILE = HERE / "results" / "on_screen_text.json"
GOAL_OCR_OVER_SAMPLER = 0.5


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(work):
    wall, cpu = time.perf_counter(), _cpu_s()
    result = work()
    return result, time.perf_counter() - wall, _cpu_s() - cpu


def _concat(source: Path, copies: int, out: Path) -> Path:
    if not out.exists():
        listing = out.with_suffix(".txt")
        listing.write_text("".join(f"file '{source}'\n" for _ in range(copies)))
        subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i",
                        str(listing), "-c", "copy", str(out)], check=True)
    return out


def sampled(path: Path, home: Path) -> tuple[ingest.IngestedVideo, frames.FrameSampling, float, float]:
    """The film ingested into a fresh `home` and frame-sampled with the default settings: the video, its sampling
    (paths absolute, as the stages read them) and the sampler's wall and CPU seconds."""
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home / "home", media_roots=os.pathsep.join([str(path.parent), str(home)]))
    video = ingest.ingest(path, settings)
    out = home / "frames"
    sampling, wall, cpu = _timed(lambda: frames.sample(video, settings, out))
    (out / "sampling.json").write_text(sampling.model_dump_json())
    return video, frames.load_sampling(out), wall, cpu


def films(args) -> dict[str, tuple[Path, list[dict]]]:
    """name -> (path, the texts drawn on it with their true spans)."""
    FILMS_DIR.mkdir(exist_ok=True)
    found = {}
    if args.only in (None, "text"):
        film = build_text_film(FILMS_DIR / "text")
        path = _concat(Path(film.path), args.copies, FILMS_DIR / f"text_x{args.copies}.mp4")
        texts = [dict(t.model_dump(), start_s=t.start_s + k * film.duration_s, end_s=t.end_s + k * film.duration_s)
                 for k in range(args.copies) for t in film.texts]
        found["text"] = (path, texts)
    if args.only in (None, "sample"):
        found["sample"] = (Path(build_sample_film(FILMS_DIR / "sample").path), [])
    if args.only == "synthetic":
        long = FILMS_DIR / "synthetic_60m_ultrafast.mp4"
        if not long.exists():
            sys.exit(f"{long} is missing: build it with benchmarks/bench_frames.py --only synthetic")
        out = FILMS_DIR / f"synthetic_{args.minutes:g}m.mp4"
        if not out.exists():
            subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-i", str(long), "-t",
                            str(args.minutes * 60), "-c", "copy", str(out)], check=True)
        found["synthetic"] = (out, [])
    return found


def accuracy(events, texts: list[dict]) -> dict:
    found = 0
    for want in texts:
        same = [e for e in events if on_screen_text.similarity(e.content, want["text"]) >= 0.6
                and e.start_s < want["end_s"] and e.end_s > want["start_s"]]
        if any(jiwer.cer(want["text"], e.content) <= 0.05 and abs(e.start_s - want["start_s"]) <= 0.5
               and abs(e.end_s - want["end_s"]) <= 0.5 for e in same):
            found += 1
    return {"texts_drawn": len(texts), "texts_found": found, "events": len(events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["text", "sample", "synthetic"])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--detections-per-minute", type=float, default=on_screen_text._DETECTIONS_PER_MINUTE,
                        help="the reader's detection budget (module default: %(default)s); for the trade-off")
    args = parser.parse_args()
    on_screen_text._DETECTIONS_PER_MINUTE = args.detections_per_minute
    run = {"started": dt.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
           "cpus": os.cpu_count(), "load_before": os.getloadavg(),
           "detections_per_minute": args.detections_per_minute, "films": []}
    on_screen_text._engine()  # loaded once per worker, as in a pipeline run
    for name, (path, texts) in films(args).items():
        home = HERE / "results" / "tmp" / f"ocr-{name}"
        video, sampling, sample_wall, sample_cpu = sampled(path, home)
        reading, ocr_wall, ocr_cpu = _timed(lambda: on_screen_text.read_text(video, sampling))
        hours = video.info.duration_s / 3600
        result = {
            "film": name, "path": str(path), "duration_s": video.info.duration_s,
            "source_size": [video.info.width, video.info.height],
            "sampler": {"wall_s": round(sample_wall, 2), "cpu_s": round(sample_cpu, 2),
                        "wall_s_per_film_hour": round(sample_wall / hours, 1), "frames_kept": len(sampling.frames)},
            "ocr": {"wall_s": round(ocr_wall, 2), "cpu_s": round(ocr_cpu, 2),
                    "wall_s_per_film_hour": round(ocr_wall / hours, 1), **asdict(reading.counts)},
            "ocr_over_sampler": round(ocr_wall / sample_wall, 2),
            "ocr_over_sampler_cpu": round(ocr_cpu / sample_cpu, 2),
            "goal_met": ocr_wall / sample_wall <= GOAL_OCR_OVER_SAMPLER,
            **({"accuracy": accuracy(reading.events, texts)} if texts else {"texts_read": len(reading.events)}),
        }
        print(json.dumps(result, ensure_ascii=False), flush=True)
        run["films"].append(result)
        shutil.rmtree(home, ignore_errors=True)
    run["load_after"] = os.getloadavg()
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    runs = json.loads(RESULTS_FILE.read_text())["runs"] if RESULTS_FILE.exists() else []
    RESULTS_FILE.write_text(json.dumps({"runs": [*runs, run]}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
