"""Event embeddings: a sentence-transformers model turns each event's text into a unit vector, so search can find
a moment by meaning when the question shares no word with it ("how does gravity work in the dream")."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from cinedex.core.artifacts import cached_stage
from cinedex.core.progress import Progress
from cinedex.index.embedder import encode
from cinedex.core.model import read_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.validation import VALID_FILE
from cinedex.core.model import EVENT_FIELDS
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
PROGRESS_CHUNK = 512  # events encoded between two progress reports: many model batches, so nothing is lost


def embed_events(video: IngestedVideo, validation_dir: Path, settings: Settings) -> Path:
    """The cached embeddings stage: `vectors.npy` (row i is the i-th valid event) and `ids.json` (their ids)."""
    def write(folder: Path) -> None:
        events = read_events(Path(validation_dir) / VALID_FILE)
        started = time.monotonic()
        passages = [EVENT_FIELDS.passage(e) for e in events]
        progress = Progress(settings.home, len(passages), "events embedded", log, name=f"embeddings: {video.name}")
        parts = []
        for first in range(0, len(passages), PROGRESS_CHUNK):
            parts.append(encode(passages[first:first + PROGRESS_CHUNK], settings.embedding_model,
                                settings.embedding_batch_size))
            progress.advance(len(parts[-1]))
        progress.finish()
        vectors = np.concatenate(parts) if parts else encode([], settings.embedding_model,
                                                             settings.embedding_batch_size)
        elapsed = time.monotonic() - started
        np.save(folder / VECTORS_FILE, vectors)
        (folder / IDS_FILE).write_text(json.dumps([e.id for e in events]))
        log.info("embeddings: %d events of %s embedded with %s in %.1f s (%.0f events/s)", len(events), video.name,
                 settings.embedding_model, elapsed, len(events) / elapsed if elapsed else 0.0)

    return cached_stage("embeddings", video.video_id, settings.artifacts_dir, write, upstream=[validation_dir],
                        model=settings.embedding_model)


def load_embeddings(embeddings_dir: Path) -> dict[str, np.ndarray]:
    """Event id -> its vector."""
    ids = json.loads((Path(embeddings_dir) / IDS_FILE).read_text())
    vectors = np.load(Path(embeddings_dir) / VECTORS_FILE)
    return dict(zip(ids, vectors))
