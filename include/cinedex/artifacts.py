"""The artifact store: every stage's output, per video, keyed by the stage's settings and the pipeline version.

A stage writes into a scratch folder that is renamed into place only when it finished, so a killed task leaves
nothing that looks complete, and a rerun with the same input and settings finds the finished folder and skips
the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinedex import PIPELINE_VERSION

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


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
    def writing(self) -> Iterator[Path]:
        """Yields a scratch folder; on success it becomes `path`, on error it is removed."""
        scratch = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            yield scratch
            (scratch / MANIFEST).write_text(
                json.dumps({"stage": self.stage, "params": self.params, "pipeline_version": PIPELINE_VERSION},
                           indent=2, sort_keys=True, default=str)
            )
            shutil.rmtree(self.path, ignore_errors=True)
            scratch.rename(self.path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def log_cached(self) -> None:
        log.info("%s: cached result for video %s reused from %s", self.stage, self.video_id[:12], self.path)


def stage_artifacts(artifacts_dir: Path, video_id: str, stage: str, **params: Any) -> StageArtifacts:
    return StageArtifacts(Path(artifacts_dir), video_id, stage, params)
