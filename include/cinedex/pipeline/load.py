"""The load stage: a video's validated events, with their vectors, replace whatever the configured index backend
held for it (embedded or Elasticsearch alike, through `IndexBackend`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cinedex.core.progress import Progress
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.pipeline.embeddings import load_embeddings
from cinedex.core.model import read_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.validation import VALID_FILE

log = logging.getLogger(__name__)


class DocumentsRefused(RuntimeError):
    """The backend refused some of the video's events; the others are loaded, and the task fails to be retried
    rather than leave events silently unsearchable."""


def load_video(video: IngestedVideo, validation_dir: Path, embeddings_dir: Path, settings: Settings) -> dict:
    """Loads the video's valid events and their vectors into the configured backend; returns what was loaded."""
    events = read_events(Path(validation_dir) / VALID_FILE)
    by_id = load_embeddings(Path(embeddings_dir))
    vectors = np.stack([by_id[e.id] for e in events]) if events else None
    index = open_index(settings)
    progress = Progress(settings.home, len(events), "events loaded", log, name=f"load: {video.name}")
    report = index.replace_video(video.video_id, events, vectors, progress, model=settings.embedding_model)
    progress.finish()
    if report.failed:
        first = report.failed[0]
        raise DocumentsRefused(f"{len(report.failed)} of {len(events)} events of {video.name} were refused by "
                               f"{report.index}, e.g. {first.id}: {first.reason}")
    log.info("load: %d events of %s now in the %s index %s", report.indexed, video.name, index.name, report.index)
    return {"video_id": video.video_id, "backend": index.name, **report.model_dump(exclude={"failed", "indexed"}),
            "events": report.indexed}
