"""Progress of a long stage, as it goes: a line in the task log now and then, and a small record the cinedex page
reads to draw a run's progress bar.

A record is one JSON file per task (and per part of a task, e.g. a batch of a mapped task) at
`<home>/progress/<run id>/<task>[@<part>].json`, written atomically ('@' because a task id may hold dots, inside
a task group, and never an '@'). The run and task come from the environment
Airflow gives a running task (AIRFLOW_CTX_DAG_RUN_ID, ...); outside a task (`cinedex index`, tests) there is no run,
so only the log lines are written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

LOG_EVERY_S = 10.0
RECORD_EVERY_S = 2.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+@-]")


def _safe(name: str) -> str:
    """A run id as a file name: Airflow's run ids hold ':' and '+', and nothing may climb out of the folder."""
    return _UNSAFE.sub("_", name).lstrip(".") or "_"


def run_dir(home: Path, run_id: str) -> Path:
    return Path(home) / "progress" / _safe(run_id)


class Progress:
    """`total` units of work (seconds of film, windows, frames ...), reported as they are done.

    Within one try the figure only grows: an `update` below the last one is ignored. A retried task starts a new
    try, whose first record replaces the old try's, starting from `done` (the work a resumed task finds finished).
    """

    def __init__(self, home: Path | None, total: float, unit: str, log: logging.Logger, *, name: str = "",
                 part: str | int | None = None, done: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 log_every_s: float = LOG_EVERY_S, record_every_s: float = RECORD_EVERY_S):
        self.total, self.unit, self.log, self.name = max(float(total), 0.0), unit, log, name
        self.done = self.resumed_at = min(max(float(done), 0.0), self.total)
        self.clock, self.log_every_s, self.record_every_s = clock, log_every_s, record_every_s
        self.started = clock()
        self._logged = self._recorded = -float("inf")
        run_id, task_id = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"), os.environ.get("AIRFLOW_CTX_TASK_ID")
        self.try_number = int(os.environ.get("AIRFLOW_CTX_TRY_NUMBER") or 0)
        self.path = None
        if home is not None and run_id and task_id:
            stem = task_id if part is None else f"{task_id}@{part}"
            self.path = run_dir(home, run_id) / f"{_safe(stem)}.json"
        self._write(force=True)

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total

    def advance(self, amount: float) -> None:
        self.update(self.done + amount)

    def update(self, done: float) -> None:
        if done <= self.done:
            return
        self.done = min(float(done), self.total)
        now = self.clock()
        if now - self._logged >= self.log_every_s:
            self._log(now)
        if now - self._recorded >= self.record_every_s:
            self._write()

    def finish(self) -> None:
        """All done: the record says so whatever the rate limit, and the log gets its last line."""
        self.done = self.total
        self._log(self.clock())
        self._write(force=True)

    def _log(self, now: float) -> None:
        self._logged = now
        elapsed = now - self.started
        self.log.info("%s%.0f of %.0f %s (%.0f%%) in %.0f s", f"{self.name}: " if self.name else "", self.done,
                      self.total, self.unit, 100 * self.fraction, elapsed)

    def _write(self, force: bool = False) -> None:
        now = self.clock()
        if self.path is None or (not force and now - self._recorded < self.record_every_s):
            return
        self._recorded = now
        record = {"done": self.done, "total": self.total, "unit": self.unit, "try_number": self.try_number,
                  "resumed_at": self.resumed_at, "elapsed_s": round(now - self.started, 3), "written_at": time.time()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
            scratch.write_text(json.dumps(record))
            scratch.replace(self.path)
        except OSError as error:  # progress is a courtesy: it must never fail the work it describes
            self.log.warning("progress: could not write %s: %s", self.path, error)


def read_records(home: Path, run_id: str) -> dict[str, dict[str, dict]]:
    """The run's records: task id -> part ("" for a task in one part, else e.g. the batch) -> record. Files being
    written or unreadable are passed over."""
    found: dict[str, dict[str, dict]] = {}
    folder = run_dir(home, run_id)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        task_id, _, part = path.stem.partition("@")
        found.setdefault(task_id, {})[part] = record
    return found


def combined(parts: dict[str, dict]) -> dict:
    """One task's parts (the batches of a mapped task) as one figure: work done and total summed, the unit, the
    task-seconds summed, the latest try, and when the first part started (a wall-clock time)."""
    records = list(parts.values())
    return {"done": sum(float(r.get("done") or 0) for r in records),
            "total": sum(float(r.get("total") or 0) for r in records), "unit": records[0].get("unit", ""),
            "seconds": sum(float(r.get("elapsed_s") or 0) for r in records),
            "try_number": max(int(r.get("try_number") or 0) for r in records),
            "started": min(float(r.get("written_at") or 0) - float(r.get("elapsed_s") or 0) for r in records)}


def fraction(record: dict) -> float:
    total = float(record.get("total") or 0)
    return min(float(record.get("done") or 0) / total, 1.0) if total else 1.0


def seconds_left(record: dict) -> float | None:
    """At this try's rate so far (work a resumed try found done does not count); None until a twentieth of the
    work is done by this try (too early to tell) or once all is."""
    total, done = float(record.get("total") or 0), float(record.get("done") or 0)
    worked = done - float(record.get("resumed_at") or 0)
    if not total or done >= total or worked < 0.05 * total:
        return None
    return float(record.get("elapsed_s") or 0) * (total - done) / worked
