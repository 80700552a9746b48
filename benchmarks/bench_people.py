"""People benchmark: cinedex.pipeline.people.find_people (and on-screen text beside it) against the frame sampler.

For each film, in one process, one after another: ingest, the frame sampler (cinedex.pipeline.frames.sample,
default settings, into a fresh folder), then the people finder on that sampling, then the on-screen text reader on
it (both stages' models loaded before the clock starts: a worker loads them once). Wall and CPU time (user+sys of
this process and its ffmpeg children) of each, seconds per film-hour, what the finder examined
(cinedex.pipeline.people.PeopleCounts), and for the people film how well the faces became people: purity and
coverage of the embedded face tracks against the people drawn on each shot, and the number of people found.

The budget (issue 16): people and on-screen text together cost no more than frame sampling on 2 CPU cores.

Films (default: people and synthetic; --only NAME):
  people     cinedex.sample.build_people_film (640x360, 25.9 s: three real people in 9 shots, one shot of two,
             one of nobody) repeated --copies times (default 10) with ffmpeg's concat demuxer (-c copy): the same
             three people in many shots, as a film's leads are
  synthetic  the 1-hour benchmark film of bench_frames.py (1280x720 lavfi test patterns, hard cuts every few
             seconds; built once into benchmarks/.films, several minutes), or its first --minutes

Usage:
  nice -n 10 .venv/bin/python benchmarks/bench_people.py [--only people] [--copies 10] [--minutes 60]
Results: one JSON line per film on stdout, appended to benchmarks/results/people.jsonl.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from cinedex.pipeline import on_screen_text, people
from cinedex.sample import PeopleFilm, build_people_film

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The same films folder, clocks and sampling as the on-screen text benchmark.
from bench_on_screen_text import FILMS_DIR, _concat, _timed, sampled  # noqa: E402
from recording import facts, keep  # noqa: E402

RESULTS_FILE = HERE / "results" / "people.jsonl"


def films(args) -> dict[str, tuple[Path, PeopleFilm | None]]:
    FILMS_DIR.mkdir(exist_ok=True)
    found = {}
    if args.only in (None, "people"):
        film = build_people_film(FILMS_DIR / "people")
        path = _concat(Path(film.path), args.copies, FILMS_DIR / f"people_x{args.copies}.mp4")
        shots = [shot.model_copy(update={"start_s": shot.start_s + k * film.duration_s,
                                         "end_s": shot.end_s + k * film.duration_s})
                 for k in range(args.copies) for shot in film.shots]
        found["people"] = (path, film.model_copy(update={"shots": shots, "duration_s": film.duration_s * args.copies}))
    if args.only in (None, "synthetic"):
        from bench_frames import build_synthetic

        long = Path(build_synthetic(60.0, "ultrafast")["path"])
        out = long if args.minutes >= 60 else FILMS_DIR / f"synthetic_{args.minutes:g}m.mp4"
        if not out.exists():
            subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-i", str(long), "-t",
                            str(args.minutes * 60), "-c", "copy", str(out)], check=True)
        found["synthetic"] = (out, None)
    return found


def clustering(found: people.PeopleFound, truth: PeopleFilm) -> dict:
    """Purity and coverage of the embedded tracks: each track's identity is the person drawn on its shot (left or
    right by the face's place on the shot of two)."""
    pairs = []
    for track in found.tracks:
        if not track.person:
            continue
        middle = (track.start_s + track.end_s) / 2
        shot = next((s for s in truth.shots if s.start_s <= middle < s.end_s), None)
        if shot is None or not shot.people:
            pairs.append((track.person, "nobody"))
            continue
        left = (track.box[0] + track.box[2]) / 2 < 0.5
        pairs.append((track.person, shot.people[0] if len(shot.people) == 1 or left else shot.people[1]))
    if not pairs:
        return {"tracks_embedded": 0}
    purity = sum(Counter(t for p, t in pairs if p == label).most_common(1)[0][1] for label in {p for p, _ in pairs})
    coverage = sum(Counter(p for p, t in pairs if t == who).most_common(1)[0][1] for who in {t for _, t in pairs})
    return {"tracks_embedded": len(pairs), "purity": round(purity / len(pairs), 3),
            "coverage": round(coverage / len(pairs), 3), "people_found": len(found.people),
            "people_drawn": len({p for s in truth.shots for p in s.people})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["people", "synthetic"])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    people._models()  # loaded once per worker, as in a pipeline run
    on_screen_text._engine()
    for name, (path, truth) in films(args).items():
        home = HERE / "results" / "tmp" / f"people-{name}"
        video, sampling, sample_wall, sample_cpu = sampled(path, home)
        (found, counts), people_wall, people_cpu = _timed(lambda: people.find_people(video, sampling, home / "people"))
        reading, ocr_wall, ocr_cpu = _timed(lambda: on_screen_text.read_text(video, sampling))
        hours = video.info.duration_s / 3600
        result = {
            **facts("people"), "film": name, "path": str(path), "duration_s": video.info.duration_s,
            "sampler": {"wall_s": round(sample_wall, 2), "cpu_s": round(sample_cpu, 2),
                        "cpu_s_per_film_hour": round(sample_cpu / hours, 1), "frames_kept": len(sampling.frames),
                        "shots": len(sampling.shots)},
            "people": {"wall_s": round(people_wall, 2), "cpu_s": round(people_cpu, 2),
                       "cpu_s_per_film_hour": round(people_cpu / hours, 1), **asdict(counts)},
            "ocr": {"wall_s": round(ocr_wall, 2), "cpu_s": round(ocr_cpu, 2),
                    "cpu_s_per_film_hour": round(ocr_cpu / hours, 1), "frames_detected": reading.counts.detected},
            "people_over_sampler_cpu": round(people_cpu / sample_cpu, 2),
            "people_and_ocr_over_sampler_cpu": round((people_cpu + ocr_cpu) / sample_cpu, 2),
            "goal_met": people_cpu + ocr_cpu <= sample_cpu,
            **({"clustering": clustering(found, truth)} if truth else {}),
        }
        keep(result, RESULTS_FILE)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
