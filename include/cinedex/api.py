"""The HTTP search API: the same hybrid search as `cinedex search`, as JSON, for the cinedex page and for scripts.

A plain FastAPI app; `plugins/cinedex_plugin.py` mounts it in Airflow's API server under `/cinedex` and puts it
behind Airflow's own authentication (`auth` is a dependency every route requires).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query

from cinedex.model import SearchFilters
from cinedex.search import SearchHit, search
from cinedex.settings import Settings


def create_app(auth: Callable | None = None, settings: Callable[[], Settings] = Settings) -> FastAPI:
    app = FastAPI(title="cinedex search", description=__doc__)
    router = APIRouter(dependencies=[Depends(auth)] if auth else [])

    @router.get("/api/search", response_model=list[SearchHit], summary="Hybrid search; hits are time ranges")
    def search_events(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="Any text: a question, words, a quote.")],
        video: Annotated[str | None, Query(description="Only this video id.")] = None,
        start_s: Annotated[float | None, Query(alias="from", description="Only events ending after this second.")] = None,
        end_s: Annotated[float | None, Query(alias="to", description="Only events starting before this second.")] = None,
        scene_type: str | None = None,
        speaker: str | None = None,
        character: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 10,
        backend: Literal["embedded", "elasticsearch"] | None = None,
        mode: Literal["hybrid", "bm25", "knn"] = "hybrid",
    ) -> list[SearchHit]:
        filters = SearchFilters(video_id=video, start_s=start_s, end_s=end_s, scene_type=scene_type,
                                speaker=speaker, character=character)
        try:
            return search(q, settings(), filters, limit=limit, backend=backend, mode=mode)
        except ConnectionError as error:  # Elasticsearch unreachable after its retries (ElasticsearchUnavailable)
            raise HTTPException(503, f"search backend unavailable: {error}") from error

    app.include_router(router)
    return app
