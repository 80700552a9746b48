"""Hybrid search over any index backend: any user text in, time ranges out.

Two rankings are fused with reciprocal rank fusion: BM25 over the events' text, which finds the words of the
question, and kNN over the events' embeddings, which finds its meaning when the words differ. Every backend
produces both rankings with the same filters (`IndexBackend`); the fusion is done here, once.
"""

from __future__ import annotations

import functools
import logging
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, Field, create_model

from cinedex.core.model import EVENT_FIELDS, Event, EventFields, SearchFilters
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.index.embedder import encode, min_similarity

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal rank fusion's constant, as in Elasticsearch and the paper (Cormack et al., 2009)
CANDIDATES = 50  # hits each ranking contributes to the fusion, at least


@functools.cache
def hit_model(fields: EventFields) -> type[BaseModel]:
    """A search hit: every field of the event model (its id as `event_id`) and how the search found it."""
    carried = {name: (field.annotation, field) for name, field in fields.model.model_fields.items() if name != "id"}
    return create_model(
        "SearchHit",
        __doc__="One time range found by a search, with the event it holds.",
        event_id=(str, Field(description="The event's id.")),
        **carried,
        score=(float, Field(description="Reciprocal rank fusion score: higher ranks in either ranking score higher.")),
        highlight=(str, Field("", description="HTML snippet of the best matching field, matched terms in <b>; "
                                              "empty for hits found by meaning alone.")),
        matched_by=(list[str], Field(default_factory=list, description="The rankings that found it: bm25, knn.")),
    )


SearchHit = hit_model(EVENT_FIELDS)


def fuse(rankings: dict[str, list[tuple[Event, str]]], limit: int,
         fields: EventFields = EVENT_FIELDS) -> list[BaseModel]:
    """Reciprocal rank fusion: an event scores the sum of 1 / (RRF_K + rank) over the rankings that found it; the
    highlight comes from the first ranking that has one. Ties go to the earlier moment."""
    scores: dict[str, float] = {}
    found: dict[str, tuple[Event, str, list[str]]] = {}
    for name, ranking in rankings.items():
        for rank, (event, highlight) in enumerate(ranking, start=1):
            scores[event.id] = scores.get(event.id, 0.0) + 1.0 / (RRF_K + rank)
            if event.id in found:
                known, known_highlight, names = found[event.id]
                found[event.id] = (known, known_highlight or highlight, [*names, name])
            else:
                found[event.id] = (event, highlight, [name])
    order = sorted(scores, key=lambda i: (-scores[i], found[i][0].video_id, found[i][0].start_s, i))[:limit]
    hit = hit_model(fields)
    hits = []
    for event_id in order:
        event, highlight, names = found[event_id]
        hits.append(hit(**dict(event), event_id=event.id, score=scores[event_id], highlight=highlight,
                        matched_by=names))
    return hits


def search(query: str, settings: Settings, filters: SearchFilters | None = None, limit: int = 10,
           backend: str | None = None, mode: str = "hybrid") -> list[BaseModel]:
    """The best `limit` time ranges for `query`: BM25 and kNN fused (mode "hybrid"), or one of them alone
    ("bm25", "knn")."""
    filters = filters or SearchFilters()
    if limit < 1 or not query.strip():
        return []
    index = open_index(settings, backend)
    depth = max(CANDIDATES, limit)
    # One ranking after the other: run side by side, BM25 and kNN competed for the cores with the query
    # encoder's threads, and the slowest queries got slower (p95 at a million events 51 -> 41 ms in this order).
    rankings = {}
    if mode in ("hybrid", "bm25"):
        rankings["bm25"] = index.bm25(query, filters, depth)
    if mode in ("hybrid", "knn"):
        # The query is embedded by the model the index's vectors were made with, whatever is configured now: a
        # question embedded by another model would be compared with vectors it does not share a space with.
        model = index.embedding_model() or settings.embedding_model
        threshold = settings.knn_min_similarity if model == settings.embedding_model else \
            min_similarity(model, settings.knn_min_similarity)
        rankings["knn"] = index.knn(query_vector(query, model), filters, depth, threshold)
    return fuse(rankings, limit, index.fields)


@lru_cache(maxsize=256)
def _cached_query_vector(query: str, model: str) -> bytes:
    clean = query.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates cannot reach the Rust tokenizer
    return encode([clean], model, role="query")[0].tobytes()


def query_vector(query: str, model: str) -> np.ndarray:
    return np.frombuffer(_cached_query_vector(query, model), dtype=np.float32)
