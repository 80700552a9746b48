"""The artifact store: every stage's output, per video, keyed by the stage's settings and the pipeline version.

A stage writes into a scratch folder that is renamed into place only when it finished, so a killed task leaves
nothing that looks complete, and a rerun with the same input and settings finds the finished folder and skips
the work.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinedex import PIPELINE_VERSION

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ArtifactDiskFull(OSError):
    """The artifact disk filled up while a stage wrote its output."""


def settings_key(params: dict[str, Any]) -> str:
    canonical = json.dumps({**params, "pipeline_version": PIPELINE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StageArtifacts:
    """The folder holding one stage's output for one video and one set of stage settings."""

    root: Path
    video_id: str
    stage: str
    params: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.root / self.video_id / f"{self.stage}-{settings_key(self.params)}"

    @property
    def complete(self) -> bool:
        return (self.path / MANIFEST).is_file()

    @contextmanager
    def writing(self, prior_work_s: float = 0.0) -> Iterator[Path]:
        """Yields a scratch folder of this writer's own; on success it becomes `path`, on error it is removed. When
        two runs of one video write the same stage at once, the first to finish wins and the other's identical
        output is dropped, so a reader never sees the folder change under it."""
        scratch = self.path.with_name(f"{self.path.name}.partial-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.mkdir(parents=True)
            started = time.perf_counter()
            yield scratch
            # How long the work took and when it ended: the per-file stage times of the daily report.
            (scratch / MANIFEST).write_text(
                json.dumps({"stage": self.stage, "params": self.params, "pipeline_version": PIPELINE_VERSION,
                            "work_s": round(prior_work_s + time.perf_counter() - started, 3),
                            "finished_at": time.time()},
                           indent=2, sort_keys=True, default=str)
            )
            self._move_into_place(scratch)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ArtifactDiskFull(
                    f"no space left on the artifact disk ({self.root}) while writing the {self.stage} stage of video "
                    f"{self.video_id[:12]}; its partial output was removed and nothing was indexed from it: free "
                    "space there (or point CINEDEX_HOME at a bigger disk) and retry") from exc
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _move_into_place(self, scratch: Path) -> None:
        try:
            scratch.rename(self.path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if self.complete:
                log.info("%s: video %s was finished meanwhile by another run; keeping that output", self.stage,
                         self.video_id[:12])
                return
            shutil.rmtree(self.path, ignore_errors=True)  # a folder without a manifest is an older, unfinished one
            scratch.rename(self.path)

    def log_cached(self) -> None:
        log.info("%s: cached result for video %s reused from %s", self.stage, self.video_id[:12], self.path)


def stage_artifacts(artifacts_dir: Path, video_id: str, stage: str, **params: Any) -> StageArtifacts:
    return StageArtifacts(Path(artifacts_dir), video_id, stage, params)


def cached_stage(stage: str, video_id: str, artifacts_dir: Path, write: Callable[[Path], Any], *,
                 upstream: Iterable[Path | None] = (), prior_work_s: float = 0.0, **params: Any) -> Path:
    """The folder of one stage's output for one video: reused when a finished one exists for the same settings
    and inputs, else filled by `write(scratch)` in a scratch folder and published by rename. `params` are the
    stage's own settings; `upstream` the artifacts it reads (their names hold their own keys, so a changed input
    makes a new folder). `prior_work_s`: the stage's work done before this call (recorded with the folder's own)."""
    film = Path(artifacts_dir) / video_id
    inputs = [str(Path(p).relative_to(film)) if Path(p).is_relative_to(film) else Path(p).name
              for p in upstream if p]
    artifacts = StageArtifacts(Path(artifacts_dir), video_id, stage, {**params, "upstream": inputs})
    if artifacts.complete:
        artifacts.log_cached()
        return artifacts.path
    with artifacts.writing(prior_work_s) as folder:
        write(folder)
    return artifacts.path


def stage_times(artifacts_dir: Path, video_id: str) -> dict[str, float]:
    """Seconds each stage of a video worked, from its latest finished folder per stage; stages found in the cache
    by the last run count with the time they took when they were made."""
    latest: dict[str, tuple[float, float]] = {}
    for manifest in (Path(artifacts_dir) / video_id).glob(f"*/{MANIFEST}"):
        try:
            written = json.loads(manifest.read_text())
            finished, work = float(written["finished_at"]), float(written["work_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # written before stage times were recorded
        if written.get("stage") and finished >= latest.get(written["stage"], (-1.0, 0.0))[0]:
            latest[written["stage"]] = (finished, work)
    return {stage: work for stage, (_, work) in sorted(latest.items(), key=lambda item: item[1][0])}


def upstream_file(folder: Path, name: str) -> Path | None:
    """`name` in a stage folder or in the nearest stage folder upstream of it that holds one, followed through the
    manifests' upstream lists: a reader of a late stage's output (the run report, the page) reaches an earlier
    stage's file without being handed its folder."""
    film = Path(folder).parent
    queue, seen = [Path(folder)], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if (current / name).is_file():
            return current / name
        try:
            upstream = json.loads((current / MANIFEST).read_text())["params"].get("upstream", [])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        # Only folders of the film: a manifest naming another place (absolute, or up and out) is not followed.
        queue.extend(film / relative for relative in upstream
                     if not Path(relative).is_absolute() and ".." not in Path(relative).parts)
    return None
