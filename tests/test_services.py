"""Through a real scheduler: Airflow with CeleryExecutor on PostgreSQL and Redis, a default-queue worker and a
`gpu`-queue worker. The daily ingest and a three-day backfill over an inbox, the index DAG with its GPU tasks on
the GPU worker, and `kill -9` of the GPU worker in the middle of inference."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_services import airflow_stack, services_available
from cinedex.index.embedded import EmbeddedIndex
from cinedex.sample import conversation

pytestmark = [pytest.mark.services, pytest.mark.slow]

INDEX_DAG = "cinedex_index_video"
DAILY_DAG = "cinedex_daily_ingest"
GPU_TASKS = {"transcribe", "describe_windows", "summarize_film"}
YESTERDAY = datetime.now(timezone.utc).date() - timedelta(days=1)
DAYS = [YESTERDAY - timedelta(days=2), YESTERDAY - timedelta(days=1), YESTERDAY]


def day_folder(inbox: Path, day: date) -> Path:
    folder = inbox / f"{day:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sample_film):
    """The deployment, with an inbox laid out before it starts: the scheduler runs the daily ingest for yesterday
    as soon as it parses the DAG (catchup off)."""
    if reason := services_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"services tests must run in CI: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("services")
    inbox = root / "inbox"
    # Three different videos with speech (a video without any events is never counted as indexed).
    shutil.copyfile(sample_film.path, day_folder(inbox, DAYS[0]) / "sample film.mp4")
    shutil.copyfile(conversation()[0], day_folder(inbox, DAYS[1]) / "phone call.wav")
    subprocess.run(["ffmpeg", "-v", "error", "-i", sample_film.path, "-t", "20", "-c", "copy",
                    str(day_folder(inbox, DAYS[2]) / "first reel.mp4")], check=True)
    shutil.copyfile(day_folder(inbox, DAYS[2]) / "first reel.mp4", day_folder(inbox, DAYS[1]) / "reel (copy).mp4")
    (inbox / "manual").mkdir()
    shutil.copyfile(conversation()[0], inbox / "manual" / "phone call.wav")  # outside the day folders
    (day_folder(inbox, DAYS[2]) / "notes.mp4").write_text("minutes of the meeting\n")
    env = {
        "CINEDEX_HOME": str(root / "cinedex"),
        "CINEDEX_INBOX": str(inbox),
        "CINEDEX_MEDIA_ROOTS": str(Path(sample_film.path).parent),
        "CINEDEX_VISION_MODEL": "none",  # the daily runs index speech and shots; the index tests name a model
        "CINEDEX_SUMMARY_MAX_NEW_TOKENS": "300",
        "CINEDEX_WINDOW_TARGET_S": "5",  # several vision windows in the 35 s sample film, so inference can be cut
        "CINEDEX_WINDOW_MAX_S": "10",
        "CINEDEX_VISION_BATCH_SIZE": "4",
        "CINEDEX_DAILY_START_DATE": f"{DAYS[0] - timedelta(days=30):%Y-%m-%d}",
    }
    with airflow_stack(root / "airflow", extra_env=env) as deployment:
        deployment.home = root / "cinedex"
        deployment.wait_for_dags(INDEX_DAG, DAILY_DAG)
        yield deployment


def report(stack, day: date) -> dict:
    return json.loads((stack.home / "reports" / "daily" / f"{day:%Y-%m-%d}.json").read_text())


def statuses(stack, day: date) -> dict[str, str]:
    return {f["name"]: f["status"] for f in report(stack, day)["files"]}


def video_id_of(stack, run_id: str) -> str:
    """The video an index run ingested, from its ingest task's XCom."""
    ingested = stack.api("GET", f"dags/{INDEX_DAG}/dagRuns/{run_id}/taskInstances/ingest_video/xcomEntries/"
                                "return_value")["value"]
    return (json.loads(ingested) if isinstance(ingested, str) else ingested)["video_id"]


def events_of(stack, video_id: str) -> list[str]:
    return [event.id for event in EmbeddedIndex(stack.home / "index").video_events(video_id)]


def wait_for_daily_runs(stack, count: int, timeout_s: float = 900) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = stack.runs(DAILY_DAG)
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"daily runs: {[(r['dag_run_id'], r['state']) for r in runs]}")
        time.sleep(3)


def wait_for_backfill(stack, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        [backfill] = stack.api("GET", "backfills", params={"dag_id": DAILY_DAG})["backfills"]
        if backfill["completed_at"]:
            return backfill
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill not complete: {backfill}")
        time.sleep(3)


def test_daily_ingest_then_a_three_day_backfill(stack):
    # The scheduled run for yesterday: one video indexed, the text file rejected with its reason.
    [scheduled] = wait_for_daily_runs(stack, 1)
    assert scheduled["state"] == "success", stack.describe(DAILY_DAG, scheduled["dag_run_id"])
    assert statuses(stack, DAYS[2]) == {"first reel.mp4": "indexed", "notes.mp4": "rejected"}
    reel = next(f for f in report(stack, DAYS[2])["files"] if f["name"] == "first reel.mp4")
    reel_events = events_of(stack, reel["video_id"])
    assert reel["events"] == len(reel_events) > 0
    index_runs = {r["dag_run_id"]: r for r in stack.runs(INDEX_DAG)}
    assert index_runs[reel["run_id"]]["state"] == "success"

    # The README's backfill over three days, yesterday included: the two earlier days are indexed, yesterday's
    # video is found already indexed and skipped, and nothing is doubled.
    stack.airflow("backfill", "create", "--dag-id", DAILY_DAG, "--from-date", f"{DAYS[0]:%Y-%m-%d}",
                  "--to-date", f"{DAYS[2]:%Y-%m-%d}", "--reprocess-behavior", "completed")
    wait_for_backfill(stack)
    runs = wait_for_daily_runs(stack, 3)  # yesterday's completed run is run again, not doubled
    assert sorted(r["logical_date"][:10] for r in runs) == [f"{day:%Y-%m-%d}" for day in DAYS]
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"]) for r in runs]
    assert statuses(stack, DAYS[0]) == {"sample film.mp4": "indexed"}
    assert statuses(stack, DAYS[1]) == {"phone call.wav": "indexed", "reel (copy).mp4": "skipped"}
    assert statuses(stack, DAYS[2]) == {"first reel.mp4": "skipped", "notes.mp4": "rejected"}
    assert "already indexed" in report(stack, DAYS[1])["files"][1]["reason"]
    assert "not a media file" in report(stack, DAYS[2])["files"][1]["reason"]
    assert events_of(stack, reel["video_id"]) == reel_events
    for row in report(stack, DAYS[0])["files"] + report(stack, DAYS[1])["files"]:
        if row["status"] == "indexed":
            assert len(events_of(stack, row["video_id"])) == row["events"] > 0


@pytest.fixture(scope="module")
def clean_run(stack, sample_film, tiny_vision_model):
    """The sample film indexed with the tiny vision model through the scheduler: (run id, video id, event ids)."""
    run_id = stack.trigger(INDEX_DAG, {"video": sample_film.path, "vision_model": str(tiny_vision_model)})
    assert stack.wait_for_run(INDEX_DAG, run_id) == "success", stack.describe(INDEX_DAG, run_id)
    video_id = video_id_of(stack, run_id)
    return run_id, video_id, events_of(stack, video_id)


def test_index_dag_runs_its_gpu_tasks_on_the_gpu_worker(stack, clean_run):
    run_id, video_id, event_ids = clean_run
    tis = stack.task_instances(INDEX_DAG, run_id)
    ran = [t for t in tis if t["state"] == "success"]
    assert {t["task_id"] for t in ran} >= GPU_TASKS | {"ingest_video", "build_events", "load"}
    for ti in ran:
        on_gpu = ti["task_id"] in GPU_TASKS
        assert (ti["queue"], ti["pool"]) == (("gpu", "gpu") if on_gpu else ("default", "default_pool")), ti
        assert ti["hostname"] == ("gpu-worker" if on_gpu else "default-worker"), ti
    assert sum(t["task_id"] == "describe_windows" for t in ran) >= 2  # mapped over batches of windows
    indexed = EmbeddedIndex(stack.home / "index").video_events(video_id)
    # The film pass ran on the gpu worker and what it wrote is indexed. A random model's summary or chapter may say
    # nothing (blank), and a blank one is dropped: the documents the pass kept are exactly the ones indexed.
    film_dir = max((stack.home / "artifacts" / video_id).glob("film-*"), key=lambda p: p.stat().st_mtime)
    written = json.loads((film_dir / "summary.json").read_text())
    assert written["raw"] and "asr" in {e.source for e in indexed}
    assert sorted(d["id"] for d in written["documents"]) == sorted(
        e.id for e in indexed if e.source in ("summary", "chapter"))
    chapters = [e for e in indexed if e.source == "chapter"]
    assert not chapters or (chapters[0].start_s == 0.0 and chapters[-1].end_s == max(e.end_s for e in indexed))
    windows = json.loads(next((stack.home / "artifacts" / video_id).glob("windows-*/windows.json")).read_text())
    described = list((stack.home / "artifacts" / video_id).glob("windows-*/vision-*/window_*.json"))
    assert len(described) == len(windows["windows"]) >= 4
    assert len(event_ids) == len(set(event_ids)) > 0


def test_killing_the_gpu_worker_mid_inference_loses_and_doubles_nothing(stack, sample_film, tiny_vision_model,
                                                                        clean_run):
    _, video_id, clean_ids = clean_run
    # Forget the clean run from inference on, so inference and everything after it happen again from scratch; the
    # stages before it (ingest, audio, frames, speech, the window plan) are found finished, which they are.
    EmbeddedIndex(stack.home / "index").delete_video(video_id)
    artifacts = stack.home / "artifacts" / video_id
    for stage in [*artifacts.glob("windows-*/vision-*"),
                  *(p for name in ("events", "film", "validation", "embeddings", "report")
                    for p in artifacts.glob(f"{name}-*"))]:
        shutil.rmtree(stage)
    run_id = stack.trigger(INDEX_DAG, {"video": sample_film.path, "vision_model": str(tiny_vision_model)})

    # Wait until the first batch has checkpointed a window but not finished, then kill -9 the GPU worker.
    deadline = time.monotonic() + 600
    while True:
        done = list((stack.home / "artifacts" / video_id).glob("windows-*/vision-*/window_*.json"))
        running = [t for t in stack.task_instances(INDEX_DAG, run_id)
                   if t["task_id"] == "describe_windows" and t["state"] == "running"]
        if done and running:
            break
        assert time.monotonic() < deadline, stack.describe(INDEX_DAG, run_id)
        time.sleep(0.2)
    killed_map_index = running[0]["map_index"]
    stack.components["gpu-worker"].kill()
    windows_at_kill = len(list((stack.home / "artifacts" / video_id).glob("windows-*/vision-*/window_*.json")))
    stack.start_worker("gpu-worker", "gpu")

    assert stack.wait_for_run(INDEX_DAG, run_id, timeout_s=900) == "success", stack.describe(INDEX_DAG, run_id)
    killed = next(t for t in stack.task_instances(INDEX_DAG, run_id)
                  if t["task_id"] == "describe_windows" and t["map_index"] == killed_map_index)
    assert killed["try_number"] >= 2 and killed["hostname"] == "gpu-worker"
    # The retry resumed: it found the windows checkpointed before the kill.
    retry_log = "\n".join(p.read_text(errors="replace") for p in (Path(stack.env["AIRFLOW_HOME"]) / "logs").rglob(
        f"run_id={run_id}/task_id=describe_windows/map_index={killed_map_index}/attempt={killed['try_number']}.log"))
    resumed = [line for line in retry_log.splitlines() if "already done" in line]
    assert resumed and windows_at_kill >= 1, retry_log[-3000:]
    # Its progress record is the retry's: it started from the windows it found done and ended with all of them.
    from cinedex.core import progress

    record = progress.read_records(stack.home, run_id)["describe_windows"][str(killed_map_index)]
    already = int(re.search(r"(\d+) already done", resumed[-1]).group(1))
    assert record["try_number"] == killed["try_number"] and record["resumed_at"] == already, record
    assert record["done"] == record["total"] and progress.fraction(record) == 1.0
    assert events_of(stack, video_id) == clean_ids  # same ids, none missing, none doubled


def test_the_same_video_triggered_twice_at_once_is_indexed_once(stack):
    video = str(stack.home.parent / "inbox" / "manual" / "phone call.wav")
    runs = [stack.trigger(INDEX_DAG, {"video": video}) for _ in range(2)]
    for run_id in runs:
        assert stack.wait_for_run(INDEX_DAG, run_id) == "success", stack.describe(INDEX_DAG, run_id)
    video_id = video_id_of(stack, runs[0])
    together = events_of(stack, video_id)
    assert together and len(together) == len(set(together))
    stages = [p.name for p in (stack.home / "artifacts" / video_id).iterdir()]
    assert not [name for name in stages if ".partial" in name]  # no scratch folder left behind
    # A run on its own afterwards finds the same set: the two at once left one complete set, not a mixture.
    assert stack.wait_for_run(INDEX_DAG, stack.trigger(INDEX_DAG, {"video": video})) == "success"
    assert events_of(stack, video_id) == together
