"""The cinedex page and its HTTP API: upload and index videos, follow their runs, browse the library, search, watch
a film from any hit, and download what was found.

A plain FastAPI app; `plugins/cinedex_plugin.py` mounts it in Airflow's API server under `/cinedex`, links it
from Airflow's navigation, and puts every route behind Airflow's own authentication (`auth`, a dependency every
route requires) and, for runs, Airflow's DAG permissions (`access`). Nothing is served without a login.
"""

from __future__ import annotations

import logging
import threading
from html import escape
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cinedex import PIPELINE_VERSION
from cinedex.index import embedder
from cinedex.page import catalog, uploads
from cinedex.index.elastic import ElasticsearchNotConfigured, versioned_index
from cinedex.pipeline.ingest import PathNotAllowed, confine, media_type
from cinedex.core.model import SearchFilters
from cinedex.index.search import SearchHit, search
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
# Artifact pages (reports, Data Docs) are shown in a sandbox: no script of theirs runs with the viewer's login.
ARTIFACT_CSP = "sandbox allow-popups; default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
UPLOAD_CHUNK = 1 << 20
Page = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
PageSize = Annotated[int, Query(ge=1, le=catalog.PAGE_LIMIT, description="Items to return.")]


def _embedder_warm_up(settings: Callable[[], Settings]):
    """The app's lifespan: loads the query embedder in the background as the API server starts, so its first
    search does not wait.

    A lifespan, not a side effect of `create_app`: every Airflow process that loads plugins (each task process,
    `airflow backfill create`...) builds the app, and only the API server runs it. A model loading in a thread of
    a process that then exits or forks aborts it ("terminate called without an active exception") or hangs the
    child. Airflow's API server enters the lifespans of the FastAPI apps it mounts."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def load() -> None:
            try:
                embedder.load_model(settings().embedding_model)
            except Exception:  # noqa: BLE001 - the first search loads it again and reports what is wrong
                log.exception("cinedex: could not preload the query embedder")

        if settings().preload_embedder:
            threading.Thread(target=load, name="cinedex-embedder-warm-up", daemon=True).start()
        yield

    return lifespan


def create_app(auth: Callable | None = None, settings: Callable[[], Settings] = Settings,
               access: Callable[[str], Callable] | None = None, user: Callable | None = None,
               login_url: Callable[[str], str] | None = None) -> FastAPI:
    """`auth`: dependency every route requires. `access(method)`: dependency allowing that method on the index
    DAG's runs. `user`: dependency giving the logged-in user (for the run's "triggered by"). `login_url(next)`:
    where a browser without a login is sent."""
    # FastAPI serves its API description to anyone; here it is served below, behind the login like every route.
    app = FastAPI(title="cinedex", description=__doc__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_embedder_warm_up(settings))
    # Every route needs the login and read access to the index DAG's runs (the films are what its runs made);
    # upload and trigger also need the right to run it.
    router = APIRouter(dependencies=[*([Depends(auth)] if auth else []), *([Depends(access("GET"))] if access else [])])

    def run_access(method: str) -> list:
        return [Depends(access(method))] if access else []

    if user is not None:
        def user_name(found=Depends(user)) -> str | None:
            return found.get_name()
    else:
        def user_name() -> str | None:
            return None

    @app.exception_handler(StarletteHTTPException)
    async def login_page_for_browsers(request: Request, error: StarletteHTTPException) -> Response:
        # A person opening the page without a login gets a way to log in; the status stays 401, with no data.
        if error.status_code == 401 and "text/html" in request.headers.get("accept", "") and login_url:
            target = escape(login_url(str(request.url.path)), quote=True)
            return HTMLResponse(f'<!doctype html><title>cinedex: log in</title><p>Please <a href="{target}">log in '
                                "to Airflow</a> to use cinedex.</p>", status_code=401)
        return await http_exception_handler(request, error)

    # --- the page -------------------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        return FileResponse(WEB_DIR / name, media_type=STATIC_FILES[name])

    # --- search ---------------------------------------------------------------------------------------------

    @router.get("/api/search", response_model=list[SearchHit], summary="Hybrid search; hits are time ranges")
    def search_events(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="Any text: a question, words, a quote.")],
        video: Annotated[str | None, Query(description="Only this video id.")] = None,
        start_s: Annotated[float | None, Query(alias="from", description="Only events ending after this second.")] = None,
        end_s: Annotated[float | None, Query(alias="to", description="Only events starting before this second.")] = None,
        scene_type: str | None = None,
        speaker: str | None = None,
        character: str | None = None,
        person: Annotated[str | None, Query(description="Only events where this person is on screen.")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 10,
        backend: Literal["embedded", "elasticsearch"] | None = None,
        mode: Literal["hybrid", "bm25", "knn"] = "hybrid",
    ) -> list[SearchHit]:
        filters = SearchFilters(video_id=video, start_s=start_s, end_s=end_s, scene_type=scene_type,
                                speaker=speaker, character=character, person=person)
        try:
            return search(q, settings(), filters, limit=limit, backend=backend, mode=mode)
        except ConnectionError as error:  # Elasticsearch unreachable after its retries (ElasticsearchUnavailable)
            raise HTTPException(503, f"search backend unavailable: {error}") from error

    # --- upload and runs --------------------------------------------------------------------------------------

    @router.put("/api/uploads", response_model=uploads.UploadedVideo, status_code=201,
                summary="Upload a video into the inbox (the request body is the file)", dependencies=run_access("POST"))
    async def upload(request: Request, name: Annotated[str, Query(min_length=1, max_length=500)]):
        declared = request.headers.get("content-length")
        try:
            return await uploads.receive(request.stream(), name, settings(),
                                         int(declared) if declared and declared.isdigit() else None)
        except uploads.UploadTooLarge as error:
            raise HTTPException(413, str(error)) from error
        except uploads.NotAVideo as error:
            raise HTTPException(415, str(error)) from error

    @router.get("/api/form", summary="The index DAG's trigger form: its params", dependencies=run_access("GET"))
    def form() -> list[dict]:
        from cinedex.page import runs

        try:
            return [field.model_dump(by_alias=True) for field in runs.form_fields()]
        except runs.DagNotReady as error:
            raise HTTPException(503, str(error)) from error

    @router.post("/api/runs", status_code=201, summary="Trigger the index DAG with the trigger form's fields",
                 dependencies=run_access("POST"))
    def trigger_run(conf: Annotated[dict[str, Any], Body(embed=True)],
                    who: str | None = Depends(user_name)) -> dict:  # a closure's name: not an annotation
        from cinedex.page import runs

        try:
            return runs.trigger(conf, who).model_dump()
        except runs.DagNotReady as error:
            raise HTTPException(503, str(error)) from error
        except ValueError as error:  # a field the DAG's params refuse
            raise HTTPException(400, str(error)) from error

    @router.get("/api/runs/{run_id}", summary="A run's progress: task states, its stage, its error",
                dependencies=run_access("GET"))
    def run_progress(run_id: str) -> dict:
        from cinedex.page import runs

        try:
            return runs.progress(run_id, settings().home).model_dump()
        except runs.UnknownRun as error:
            raise HTTPException(404, f"no run {run_id} of {runs.DAG_ID}") from error

    # --- library and films ------------------------------------------------------------------------------------

    def last_runs(films: list[catalog.FilmSummary]) -> dict:
        from cinedex.page import runs

        return {k: v.model_dump() for k, v in runs.last_runs({f.video_id: f.path for f in films}).items()}

    @router.get("/api/films", summary="Every ingested film with what the index holds of it and its last run")
    def films() -> list[dict]:
        found = catalog.library(settings())
        latest = last_runs(found)
        return [{**film.model_dump(), "last_run": latest.get(film.video_id)} for film in found]

    def film_or_404(video_id: str) -> tuple[Settings, catalog.FilmDetail]:
        current = settings()
        try:
            return current, catalog.film_detail(current, video_id)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, f"no film {video_id[:80]}") from error

    @router.get("/api/films/{video_id}", summary="One film: shots, events, chapters, validation, last run")
    def film(video_id: str) -> dict:
        _, detail = film_or_404(video_id)
        return {**detail.model_dump(), "last_run": last_runs([detail]).get(video_id)}

    def film_events_or_404(video_id: str) -> tuple[Settings, str, list]:
        current = settings()
        try:
            return current, catalog.ingested(current, video_id).name, catalog.film_events(current, video_id)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, f"no film {video_id[:80]}") from error

    @router.get("/api/films/{video_id}/events", summary="A page of the film's indexed events, in time order")
    def film_events_page(video_id: str, offset: Page = 0, limit: PageSize = catalog.PAGE_LIMIT) -> dict:
        _, _, events = film_events_or_404(video_id)
        return {"total": len(events), "offset": offset,
                "events": [e.model_dump() for e in events[offset:offset + limit]]}

    @router.get("/api/films/{video_id}/shots", summary="A page of the film's shots")
    def film_shots_page(video_id: str, offset: Page = 0, limit: PageSize = catalog.PAGE_LIMIT) -> dict:
        try:
            shots = catalog.film_shots(settings(), video_id)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, f"no film {video_id[:80]}") from error
        return {"total": len(shots), "offset": offset, "shots": [s.model_dump() for s in shots[offset:offset + limit]]}

    @router.get("/api/films/{video_id}/video", summary="The film itself, with HTTP range requests",
                response_class=FileResponse)
    def video(video_id: str) -> FileResponse:
        current = settings()
        try:
            record = catalog.ingested(current, video_id)
            path = confine(Path(record.path), current)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, f"no film {video_id}") from error
        except PathNotAllowed as error:
            raise HTTPException(403, "the film lies outside the configured media roots (CINEDEX_MEDIA_ROOTS)") \
                from error
        if not path.is_file():
            raise HTTPException(404, f"the file of film {video_id} is gone")

        # The type of the container the probe found, never one guessed from the name (an MP4 uploaded as
        # `x.html` is not a page); no sniffing, and a sandbox should a browser open it as a document anyway.
        return FileResponse(path, media_type=media_type(record.info), content_disposition_type="inline",
                            headers={"X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "sandbox; default-src 'none'"})

    @router.get("/api/films/{video_id}/shots/{shot_id}.jpg", summary="A shot's thumbnail", response_class=FileResponse)
    def thumbnail(video_id: str, shot_id: int) -> FileResponse:
        try:
            path = catalog.shot_thumbnail(settings(), video_id, shot_id)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, str(error)) from error
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/api/films/{video_id}/files/{relative:path}", summary="A file of the film's artifacts (report, "
                "Data Docs)", response_class=FileResponse)
    def artifact(video_id: str, relative: str) -> FileResponse:
        try:
            path = catalog.artifact_file(settings(), video_id, relative)
        except catalog.UnknownFilm as error:
            raise HTTPException(404, str(error)) from error
        return FileResponse(path, headers={"Content-Security-Policy": ARTIFACT_CSP,
                                           "X-Content-Type-Options": "nosniff"})

    exports: dict[str, tuple[str, Callable[[list, Settings], str]]] = {
        "transcript.srt": ("application/x-subrip", lambda events, _: catalog.to_srt(events)),
        "transcript.vtt": ("text/vtt", lambda events, _: catalog.to_vtt(events)),
        "events.json": ("application/json", lambda events, _: catalog.to_json(events)),
        "bulk.ndjson": ("application/x-ndjson", lambda events, current: catalog.to_bulk_ndjson(
            events, versioned_index(current.elasticsearch_alias, PIPELINE_VERSION))),
    }

    @router.get("/api/films/{video_id}/export/{kind}", summary="Downloads: transcript.srt, transcript.vtt, "
                "events.json, bulk.ndjson (an Elasticsearch _bulk body)")
    def export(video_id: str, kind: str) -> Response:
        if kind not in exports:
            raise HTTPException(404, f"no export {kind[:80]}; there are {', '.join(exports)}")
        current, name, events = film_events_or_404(video_id)
        media_type, render = exports[kind]
        return Response(render(events, current), media_type=f"{media_type}; charset=utf-8",
                        headers={"Content-Disposition": attachment(f"{Path(name).stem}.{kind}")})

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @router.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{request.scope.get('root_path', '')}/openapi.json",
                                   title="cinedex API")

    @app.exception_handler(ElasticsearchNotConfigured)
    async def search_backend_not_configured(request: Request, error: ElasticsearchNotConfigured) -> Response:
        return JSONResponse({"detail": f"the search index is not set up: {error}"}, status_code=503)

    app.include_router(router)
    return app


def attachment(filename: str) -> str:
    """A Content-Disposition for a download (RFC 6266): an ASCII name for old clients, the real one in UTF-8."""
    fallback = uploads.safe_name(filename).encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
