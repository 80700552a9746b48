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


@runtime_checkable
class IndexBackend(Protocol):
    """Where events are stored and searched. Rankings are best first, as (event, HTML highlight) pairs."""

    name: str  # "embedded" or "elasticsearch"
    fields: EventFields  # the event model it stores, with its field roles

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None = None,
                      progress: Progress | None = None) -> LoadReport:
        """Makes the index hold exactly `events` for the video (row i of `vectors` is events[i]'s embedding);
        a searcher sees the old set or the new one, never a mix that lacks events. `progress` is advanced by the
        events sent."""

    def delete_video(self, video_id: str) -> int: ...

    def count(self, video_id: str | None = None, pipeline_version: str | None = None) -> int: ...

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]: ...

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float) -> list[tuple[Event, str]]: ...
