"""Airflow's cost around our tasks, through a real scheduler: overhead, Celery scheduling latency, and a day of
many small files.

1. LocalExecutor: `cinedex_index_video` on the sample film (speech and shots; no vision model). Overhead = the run's
   wall time (its start to its end) over the sum of its task instances' durations. Tasks that run in parallel
   (frames beside audio) make the sum larger than a serial run would be, so the ratio can go below 1.
2. CeleryExecutor (Redis broker, a default-queue and a gpu-queue worker): the same run; scheduling latency per task
   instance = its start minus the moment the scheduler queued it (broker, worker pickup, process start).
3. CeleryExecutor: a day of --files small videos (4-second cuts of the sample film, each different) in one inbox
   folder, through `cinedex_daily_ingest`: wall time from trigger to the day's report, files per minute, each
   task's median duration, and the fixed cost per task: the median duration of the lightest task (plan_windows,
   plan_summary, write_report do milliseconds of work; what they take is starting and ending a task), and the CPU
   seconds each Airflow component's processes used over the day (the workers' include their task processes). Run twice in the same benchmark, with the
   workers' preload (docker-compose.yaml's setting) and, the baseline, without it (--days both|preload|baseline).

Needs PostgreSQL and Redis (CINEDEX_TEST_POSTGRES / CINEDEX_TEST_REDIS, default localhost).

    .venv/bin/python benchmarks/bench_airflow.py --files 50
    .venv/bin/python benchmarks/bench_airflow.py --files 20 --no-film     # only the days, both ways
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from airflow_services import airflow_stack  # noqa: E402

from cinedex.sample import build_sample_film  # noqa: E402

INDEX_DAG, DAILY_DAG = "cinedex_index_video", "cinedex_daily_ingest"
DAY = date(2026, 1, 15)


def seconds(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else float("nan")


def index_run(stack, video: str) -> tuple[dict, list[dict]]:
    run_id = stack.trigger(INDEX_DAG, {"video": video})
    state = stack.wait_for_run(INDEX_DAG, run_id, timeout_s=1200)
    if state != "success":
        raise RuntimeError(f"{run_id} {state}\n{stack.describe(INDEX_DAG, run_id)}")
    run = stack.api("GET", f"dags/{INDEX_DAG}/dagRuns/{run_id}")
    return run, [t for t in stack.task_instances(INDEX_DAG, run_id) if t["state"] == "success"]


def overhead(run: dict, tis: list[dict]) -> dict:
    wall = seconds(run["end_date"]) - seconds(run["start_date"])
    busy = sum(t["duration"] for t in tis)
    return {"run_wall_s": round(wall, 2), "task_seconds": round(busy, 2), "overhead_ratio": round(wall / busy, 3),
            "tasks": len(tis)}


def latencies(tis: list[dict]) -> dict:
    waits = sorted(seconds(t["start_date"]) - seconds(t["queued_when"]) for t in tis if t.get("queued_when"))
    return {"tasks": len(waits), "p50_s": round(statistics.median(waits), 3),
            "p95_s": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 3), "max_s": round(waits[-1], 3)}


def day_of_small_files(root: Path, name: str, env: dict, files: int, preload: bool, slots: int) -> dict:
    """A day of small files through `cinedex_daily_ingest` on a fresh CeleryExecutor deployment whose default-queue
    worker has `slots` task slots."""
    home = root / f"home-{name}"
    with airflow_stack(root / name, extra_env={**env, "CINEDEX_HOME": str(home)}, worker_preload=preload,
                       default_worker_concurrency=slots) as stack:
        stack.wait_for_dags(INDEX_DAG, DAILY_DAG)
        cpu_before = stack.cpu_seconds()
        started = time.monotonic()
        run_id = stack.trigger(DAILY_DAG, {"day": f"{DAY:%Y-%m-%d}"})
        state = stack.wait_for_run(DAILY_DAG, run_id, timeout_s=3600)
        wall = time.monotonic() - started
        cpu = {name: round(used - cpu_before.get(name, 0.0), 1) for name, used in stack.cpu_seconds().items()}
        report = json.loads((home / "reports" / "daily" / f"{DAY:%Y-%m-%d}.json").read_text())
        index_tis = [t for r in stack.runs(INDEX_DAG) if r["dag_run_id"].startswith("cinedex_daily__")
                     for t in stack.task_instances(INDEX_DAG, r["dag_run_id"]) if t["state"] == "success"]
        durations = sorted(t["duration"] for t in index_tis)
        by_task: dict[str, list[float]] = {}
        for t in index_tis:
            by_task.setdefault(t["task_id"], []).append(t["duration"])
        medians = {task: round(statistics.median(d), 2) for task, d in sorted(by_task.items())}
        return {"files": files, "worker_preload": preload, "default_worker_slots": slots, "state": state, "counts": report["counts"],
                "wall_s": round(wall, 1), "files_per_minute": round(files / wall * 60, 2),
                "task_seconds": round(sum(durations), 1),
                "task_seconds_per_file": round(sum(durations) / files, 1),
                "task_duration_p50_s": round(statistics.median(durations), 2),
                "fixed_cost_per_task_s": min(medians.values()), "median_duration_by_task_s": medians,
                "scheduling_latency": latencies(index_tis),
                "cpu_seconds_by_component": cpu, "cpu_seconds_per_file": round(sum(cpu.values()) / files, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--days", choices=["both", "preload", "baseline"], default="both")
    parser.add_argument("--slots", type=int, default=2, help="task slots of the default-queue worker for the days")
    parser.add_argument("--no-film", action="store_true", help="skip the sample film runs (sections 1 and 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "airflow.json")
    args = parser.parse_args()
    results: dict = {"when": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="cinedex-bench-airflow-") as scratch:
        root = Path(scratch)
        film = build_sample_film(root / "media")
        inbox = root / "inbox"
        day = inbox / f"{DAY:%Y-%m-%d}"
        day.mkdir(parents=True)
        for n in range(args.files):  # different start points and encodes: every file is a different video
            subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{(n * 0.61) % 30:.2f}", "-i", film.path, "-t", "4",
                            "-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                            str(day / f"clip {n:02d}.mp4")], check=True)
        env = {"CINEDEX_MEDIA_ROOTS": str(root / "media"), "CINEDEX_INBOX": str(inbox), "CINEDEX_VISION_MODEL": "none"}

        if not args.no_film:
            print("LocalExecutor: the sample film through the scheduler ...", flush=True)
            with airflow_stack(root / "local", executor="LocalExecutor",
                               extra_env={**env, "CINEDEX_HOME": str(root / "home-local")}) as stack:
                stack.wait_for_dags(INDEX_DAG)
                run, tis = index_run(stack, film.path)
                results["local_executor"] = overhead(run, tis)
            print(json.dumps(results["local_executor"]), flush=True)

            print("CeleryExecutor: the sample film ...", flush=True)
            with airflow_stack(root / "celery", extra_env={**env, "CINEDEX_HOME": str(root / "home-celery")}) as stack:
                stack.wait_for_dags(INDEX_DAG)
                run, tis = index_run(stack, film.path)
                results["celery_executor"] = {**overhead(run, tis), "scheduling_latency": latencies(tis)}
            print(json.dumps(results["celery_executor"]), flush=True)

        for preload in {"both": (True, False), "preload": (True,), "baseline": (False,)}[args.days]:
            name = "daily_small_files" if preload else "daily_small_files_baseline_no_preload"
            print(f"CeleryExecutor: a day of {args.files} small files, worker preload {preload} ...", flush=True)
            results[name] = day_of_small_files(root, name, env, args.files, preload, args.slots)
            print(json.dumps(results[name]), flush=True)
        if "daily_small_files" in results and "daily_small_files_baseline_no_preload" in results:
            ours, base = results["daily_small_files"], results["daily_small_files_baseline_no_preload"]
            results["preload_speedup"] = {
                "files_per_minute": round(ours["files_per_minute"] / base["files_per_minute"], 2),
                "task_seconds_per_file": round(base["task_seconds_per_file"] / ours["task_seconds_per_file"], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
