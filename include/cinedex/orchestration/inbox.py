"""The daily inbox: videos are dropped into one folder per day (`<inbox>/YYYY-MM-DD/`), on a local disk or in
object storage. Each file of a day is triaged (rejected as bad input, skipped as already indexed, or new), each new
one is indexed by its own `cinedex_index_video` run, and a per-file report says what happened and why."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from cinedex import PIPELINE_VERSION
from cinedex.pipeline import ingest
from cinedex.index import open_index
from cinedex.core.artifacts import stage_times
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

DAY_FORMAT = "%Y-%m-%d"

Status = Literal["new", "skipped", "rejected", "indexed", "failed"]


class InboxFile(BaseModel):
    """One file of a day's inbox and what became of it."""

    name: str
    path: str = ""  # the local file the pipeline reads (a staged copy when the inbox is object storage)
    status: Status
    reason: str = ""
    video_id: str = ""
    run_id: str = ""  # the cinedex_index_video run that indexes it
    events: int = 0
    stage_s: dict[str, float] = {}  # seconds each stage worked on it, in the order they finished


def inbox_root(settings: Settings):
    """The inbox as an ObjectStoragePath: a plain folder becomes file://, a URL keeps its scheme (s3:// wants the
    Amazon provider and, through CINEDEX_INBOX_CONN_ID, a connection)."""
    from airflow.sdk import ObjectStoragePath

    url = settings.local_inbox.as_uri() if settings.local_inbox else settings.inbox
    return ObjectStoragePath(url, conn_id=settings.inbox_conn_id or None)


def parse_day(text: str) -> date:
    try:
        return datetime.strptime(text, DAY_FORMAT).date()
    except ValueError:
        raise ValueError(f"{text!r} is not a day: write it as YYYY-MM-DD") from None


def run_id_for(day: date, video_id: str) -> str:
    """The index run of a video found on a day: the same on every retry and backfill of that day, so a rerun
    finds (and resets) its earlier run instead of starting a second one."""
    return f"cinedex_daily__{day:%Y-%m-%d}__{video_id[:16]}"


def day_files(day: date, settings: Settings) -> list:
    """The day's files (hidden ones, such as uploads in progress, left out), in name order."""
    folder = inbox_root(settings) / f"{day:%Y-%m-%d}"
    if not folder.exists():
        log.info("inbox: nothing for %s (%s does not exist)", day, folder)
        return []
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def local_copy(path, day: date, settings: Settings) -> Path:
    """A local path ffmpeg can read: the file itself on a local inbox, else a copy under CINEDEX_HOME (kept, so a
    retried triage does not download it again)."""
    if path.protocol in ("file", "local"):
        return Path(path.path)
    staged = settings.home.resolve() / "staging" / f"{day:%Y-%m-%d}" / path.name
    if not (staged.is_file() and staged.stat().st_size == path.stat().st_size):
        staged.parent.mkdir(parents=True, exist_ok=True)
        partial = staged.with_name(f".{staged.name}.part")
        with path.open("rb") as source, partial.open("wb") as target:
            while chunk := source.read(8 << 20):
                target.write(chunk)
        partial.replace(staged)
    return staged


def triage_day(day: date, settings: Settings) -> list[InboxFile]:
    """Every file of the day, ingested (probed and fingerprinted) and sorted into new, skipped and rejected. One bad
    file is a rejected row, never an exception: the others go on."""
    files: list[InboxFile] = []
    first_seen: dict[str, str] = {}
    for path in day_files(day, settings):
        try:
            video = ingest.ingest(local_copy(path, day, settings), settings)
        except ingest.IngestError as exc:
            files.append(InboxFile(name=path.name, status="rejected", reason=str(exc)))
            log.warning("inbox: %s rejected: %s", path.name, exc)
            continue
        except Exception as exc:  # an unforeseen failure on one file must not stop the day's other files
            log.exception("inbox: %s could not be read", path.name)
            files.append(InboxFile(name=path.name, status="rejected", reason=f"{type(exc).__name__}: {exc}"))
            continue
        row = InboxFile(name=path.name, path=video.path, status="new", video_id=video.video_id,
                        run_id=run_id_for(day, video.video_id))
        if video.video_id in first_seen:
            row.status, row.run_id = "skipped", ""
            row.reason = f"same content as {first_seen[video.video_id]}"
        elif count := open_index(settings).count(video.video_id, PIPELINE_VERSION):
            row.status, row.run_id, row.events = "skipped", "", count
            row.reason = f"already indexed by pipeline version {PIPELINE_VERSION} ({count} events)"
        first_seen.setdefault(video.video_id, path.name)
        files.append(row)
        log.info("inbox: %s -> %s%s", path.name, row.status, f" ({row.reason})" if row.reason else "")
    return files


class DayFailed(RuntimeError):
    """Some of the day's videos failed to index: the day's run fails, so rerunning it retries them."""


def index_requests(files: list[dict]) -> list[dict]:
    """One index run (its run id and conf) per new file of the triage."""
    return [{"trigger_run_id": f["run_id"], "conf": {"video": f["path"]}} for f in files if f["status"] == "new"]


def report_day(day: date, files: list[dict], run_states: dict[str, str | None],
               task_states: dict[str, dict[str, str]], settings: Settings) -> dict:
    """The day's report, once its index runs ended, written and printed; DayFailed when an index run failed
    (rejected input is reported, not retried)."""
    rows = [InboxFile.model_validate(f) for f in files]
    failed_tasks = {run_id: sorted(t for t, s in tasks.items() if s == "failed") for run_id, tasks in task_states.items()}
    settled = settle(rows, run_states, failed_tasks, settings)
    path = write_report(day, settled, settings)
    print(report_table(day, settled, {}))
    failed = [r.name for r in settled if r.status == "failed"]
    if failed:
        raise DayFailed(f"{len(failed)} video(s) failed to index: {', '.join(failed)}; see {path}")
    return {"report": str(path), "files": len(settled)}


def settle(files: list[InboxFile], run_states: dict[str, str | None], failed_tasks: dict[str, list[str]],
           settings: Settings) -> list[InboxFile]:
    """The day's files once their index runs ended: new ones become indexed (with their event count) or failed
    (with the run's state and the tasks that failed)."""
    settled = []
    for row in files:
        row = row.model_copy()
        if row.status == "new":
            state = run_states.get(row.run_id)
            row.stage_s = stage_times(settings.artifacts_dir, row.video_id)
            if state == "success":
                row.status, row.events = "indexed", open_index(settings).count(row.video_id, PIPELINE_VERSION)
            else:
                row.status = "failed"
                tasks = ", ".join(failed_tasks.get(row.run_id, [])) or "none recorded"
                row.reason = f"run {row.run_id} ended {state or 'without starting'}; failed tasks: {tasks}"
        settled.append(row)
    return settled


def write_report(day: date, files: list[InboxFile], settings: Settings) -> Path:
    """`reports/daily/YYYY-MM-DD.json` and `.md` under CINEDEX_HOME; returns the JSON file."""
    folder = settings.home.resolve() / "reports" / "daily"
    folder.mkdir(parents=True, exist_ok=True)
    counts = {status: sum(f.status == status for f in files) for status in ("indexed", "skipped", "rejected", "failed")}
    report = {"day": f"{day:%Y-%m-%d}", "pipeline_version": PIPELINE_VERSION, "counts": counts,
              "files": [f.model_dump() for f in files]}
    target = folder / f"{day:%Y-%m-%d}.json"
    target.write_text(json.dumps(report, indent=2))
    (folder / f"{day:%Y-%m-%d}.md").write_text(report_table(day, files, counts))
    return target


def stage_cell(stage_s: dict[str, float]) -> str:
    if not stage_s:
        return ""
    return f"{sum(stage_s.values()):.1f}: " + ", ".join(f"{stage} {s:.1f}" for stage, s in stage_s.items())


def report_table(day: date, files: list[InboxFile], counts: dict[str, int]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# Inbox {day:%Y-%m-%d}", "", ", ".join(f"{n} {status}" for status, n in counts.items()), "",
             "| file | status | events | video | stage seconds | why |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {cell(f.name)} | {f.status} | {f.events or ''} | {f.video_id[:12]} | {stage_cell(f.stage_s)} "
              f"| {cell(f.reason)} |" for f in files]
    return "\n".join(lines) + "\n"
