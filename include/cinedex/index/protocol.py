"""The one interface every index backend implements, so the pipeline, search and the page never ask which backend
they hold (after Haystack's DocumentStore protocol; both backends pass the same contract tests)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field

from cinedex.core.model import Event, EventFields, SearchFilters
from cinedex.core.progress import Progress


class FailedDocument(BaseModel):
    id: str
    status: int
    reason: str


class LoadReport(BaseModel):
    index: str = Field(description="Where the events went: the index folder, or the Elasticsearch index.")
    indexed: int = Field(description="Documents of the video written.")
    failed: list[FailedDocument] = Field(default_factory=list, description="Documents refused, with why.")
    stale_deleted: int = Field(0, description="The video's documents deleted for not being in the new set.")
    carried_over: int = Field(0, description="Other videos' documents copied from an older version's index.")


class EmbeddingModelMismatch(ValueError):
    """A video's vectors are of another embedding model than the index's: nothing was loaded."""

    def __init__(self, index: str, held: str, given: str):
        super().__init__(f"{index} holds vectors of the embedding model {held!r}; these are of {given!r}, and "
                         f"vectors of two models do not compare. Index every film again with one model "
                         f"(CINEDEX_EMBEDDING_MODEL), into an empty index, or keep {held!r}.")


@runtime_checkable
class IndexBackend(Protocol):
    """Where events are stored and searched. Rankings are best first, as (event, HTML highlight) pairs."""

    name: str  # "embedded" or "elasticsearch"
    fields: EventFields  # the event model it stores, with its field roles

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None = None,
                      progress: Progress | None = None, model: str = "") -> LoadReport:
        """Makes the index hold exactly `events` for the video (row i of `vectors` is events[i]'s embedding, made
        by the embedding `model`); a searcher sees the old set or the new one, never a mix that lacks events.
        `progress` is advanced by the events sent. Vectors of a model other than the one the index's other videos
        were embedded with are refused (`EmbeddingModelMismatch`): they do not compare."""

    def embedding_model(self) -> str:
        """The embedding model the index's vectors were made with; "" when it holds none, or does not know."""

    def delete_video(self, video_id: str) -> int: ...

    def count(self, video_id: str | None = None, pipeline_version: str | None = None) -> int: ...

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]: ...

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float) -> list[tuple[Event, str]]: ...
