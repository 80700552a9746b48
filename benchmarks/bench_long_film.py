"""A long film end to end: wall time against the sum of its stages' work and against its longest stage, and peak
memory, with `cinedex index` (the DAG in one process, tasks one after another) and through a real scheduler
(LocalExecutor: independent stages run side by side).

The film is the sample film (real clips, pyannote's real call as its speech) looped to --hours with ffmpeg
(`-stream_loop`, streams copied), so it holds real speech throughout. No vision model (CINEDEX_VISION_MODEL=none):
on CPU the vision stage is a GPU benchmark's business (bench_vision_gpu.py).

Figures per way of running: wall time; each stage's work (`core.artifacts.stage_times`: what each cached stage
recorded doing); their sum and the longest; wall / longest (1.0 = the film takes as long as its slowest stage);
peak resident memory of the largest single process and of all of the run's processes together (psutil, sampled
every 0.5 s over the process tree).

Goals (issue "Throughput on one machine"): through the scheduler, wall time approaching the longest stage; peak
memory < 2 GB.

Usage:
  nice -n 10 .venv/bin/python benchmarks/bench_long_film.py --hours 2.5      # needs PostgreSQL on localhost
  nice -n 10 .venv/bin/python benchmarks/bench_long_film.py --hours 0.25 --only scheduler
Results: one JSON line per way of running on stdout, appended to benchmarks/results/long_film.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from airflow_services import airflow_stack  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "long_film.jsonl"
FILMS = ROOT / "benchmarks" / ".films"
INDEX_DAG = "cinedex_index_video"
GOAL_PEAK_MB = 2048


class PeakMemory:
    """Samples the resident memory of a process tree every half second, in a thread."""

    def __init__(self, root_pid: int):
        self.root, self.single_mb, self.total_mb = root_pid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                tree = [psutil.Process(self.root), *psutil.Process(self.root).children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for process in tree:
                try:
                    sizes.append(process.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    continue
            if sizes:
                self.single_mb, self.total_mb = max(self.single_mb, max(sizes)), max(self.total_mb, sum(sizes))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def build_long_film(hours: float) -> Path:
    from cinedex.sample import build_sample_film

    FILMS.mkdir(parents=True, exist_ok=True)
    film = FILMS / f"long_film_{hours:g}h.mp4"
    if not film.exists():
        sample = build_sample_film(FILMS / "sample")
        scratch = film.with_name(f".{film.name}")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", sample.path, "-t",
                        str(hours * 3600), "-c", "copy", str(scratch)], check=True)
        scratch.replace(film)
    return film


def stage_figures(home: Path, wall_s: float) -> dict:
    from cinedex.core.artifacts import stage_times

    [film_dir] = [p for p in (home / "artifacts").iterdir() if p.is_dir()]
    stages = {stage: round(seconds, 1) for stage, seconds in stage_times(home / "artifacts", film_dir.name).items()}
    longest = max(stages, key=stages.get)
    return {"wall_s": round(wall_s, 1), "stages_s": stages, "sum_of_stages_s": round(sum(stages.values()), 1),
            "longest_stage": longest, "longest_stage_s": stages[longest],
            "wall_over_sum": round(wall_s / sum(stages.values()), 3),
            "wall_over_longest": round(wall_s / stages[longest], 3)}


def run_cli(film: Path, scratch: Path) -> dict:
    home = scratch / "home-cli"
    env = {**os.environ, "CINEDEX_HOME": str(home), "CINEDEX_MEDIA_ROOTS": str(film.parent),
           "CINEDEX_VISION_MODEL": "none", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cinedex.cli", "index", str(film)], env=env,
                               stdout=subprocess.DEVNULL, stderr=(scratch / "cli.log").open("wb"))
    with PeakMemory(process.pid) as peak:
        if process.wait():
            raise RuntimeError(f"cinedex index exited {process.returncode}: see {scratch / 'cli.log'}")
    return {"way": "cinedex index", **stage_figures(home, time.perf_counter() - started),
            "peak_process_mb": round(peak.single_mb), "peak_all_mb": round(peak.total_mb)}


def run_scheduler(film: Path, scratch: Path) -> dict:
    home = scratch / "home-scheduler"
    env = {"CINEDEX_HOME": str(home), "CINEDEX_MEDIA_ROOTS": str(film.parent), "CINEDEX_VISION_MODEL": "none"}
    with airflow_stack(scratch / "airflow", executor="LocalExecutor", extra_env=env) as stack:
        stack.wait_for_dags(INDEX_DAG)
        with PeakMemory(stack.components["scheduler"].process.pid) as peak:
            started = time.perf_counter()
            run_id = stack.trigger(INDEX_DAG, {"video": str(film)})
            state = stack.wait_for_run(INDEX_DAG, run_id, timeout_s=4 * 3600)
            wall = time.perf_counter() - started
        if state != "success":
            raise RuntimeError(f"{run_id} {state}\n{stack.describe(INDEX_DAG, run_id)}")
        tasks = {t["task_id"]: round(t["duration"], 1) for t in stack.task_instances(INDEX_DAG, run_id)
                 if t.get("duration")}
    return {"way": "scheduler (LocalExecutor)", **stage_figures(home, wall), "task_durations_s": tasks,
            "peak_process_mb": round(peak.single_mb), "peak_all_mb": round(peak.total_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.5)
    parser.add_argument("--only", choices=["cli", "scheduler"])
    args = parser.parse_args()
    film = build_long_film(args.hours)
    scratch = Path(tempfile.mkdtemp(prefix="bench-long-film-"))
    for name, way in (("cli", run_cli), ("scheduler", run_scheduler)):
        if args.only and args.only != name:
            continue
        load_before = os.getloadavg()[0]
        figures = way(film, scratch)
        record = {"bench": "long_film", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "hours": args.hours, "load_before": round(load_before, 2),
                  "load_after": round(os.getloadavg()[0], 2), **figures,
                  "goal_peak_mb": GOAL_PEAK_MB, "peak_met": figures["peak_process_mb"] < GOAL_PEAK_MB}
        line = json.dumps(record)
        print(line, flush=True)
        with RESULTS.open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
