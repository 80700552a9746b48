"""The films the index holds, as the cinedex page and the run report show them: what was ingested, what was
indexed of it, and the exports of a film's events (subtitles, JSON, an Elasticsearch bulk file).

A film is known by its ingest record (`artifacts/<video_id>/ingest-*/video.json`); its events come from the
configured index backend, so the page shows exactly what a search can find.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from cinedex.core.artifacts import upstream_file
from cinedex.pipeline import asr
from cinedex.pipeline.events import PEOPLE_SHOWN_FILE
from cinedex.pipeline.asr import Transcript, Utterance
from cinedex.pipeline.frames import Shot, load_sampling
from cinedex.pipeline.ingest import IngestedVideo, MediaInfo
from cinedex.core.model import Event
from cinedex.core.settings import Settings
from cinedex.index import open_index


VIDEO_ID = re.compile(r"[0-9a-f]{1,64}")
# A film view answers with at most this many shots and events; longer films are read a page at a time.
PAGE_LIMIT = 2000
MAX_ARTIFACT_PATH = 512


class UnknownFilm(LookupError):
    """No ingested film has this id."""


class FilmSummary(BaseModel):
    """One film of the library: what it is and what the index holds of it."""

    video_id: str
    name: str
    path: str
    info: MediaInfo
    events: int = Field(description="Events in the index.")
    events_by_source: dict[str, int] = Field(description="asr, vision, summary, chapter.")
    events_by_scene_type: dict[str, int]
    languages: list[str]
    pipeline_versions: list[str]
    speakers: list[str]
    report: str = Field("", description="The latest run report, relative to the film's artifact folder.")


class FilmPerson(BaseModel):
    """Someone on screen, as the indexed run found them by their face."""

    name: str = Field(description="The name the speakers or the vision model give them, else Person N.")
    screen_time_s: float
    appearances: list[tuple[float, float]]
    face: str = Field("", description="Their face thumbnail, relative to the film's artifact folder (the files "
                      "route serves it).")


class FilmDetail(FilmSummary):
    shots: list[Shot] = Field(description=f"The first {PAGE_LIMIT} shots; the rest from the shots route.")
    shots_total: int
    timeline: list[Event] = Field(description=f"The first {PAGE_LIMIT} indexed events of the film, in time order; "
                                  "the rest from the events route.")
    validation: dict | None = Field(None, description="The validation report of the indexed events, if found.")
    people: list[FilmPerson] = Field(default_factory=list, description="Who is on screen, most seen first.")


def film_dir(settings: Settings, video_id: str) -> Path:
    """The film's artifact folder; the id (a sha256 in hex) is checked so it cannot name a folder elsewhere."""
    if not VIDEO_ID.fullmatch(video_id):
        raise UnknownFilm(video_id[:80])
    folder = settings.artifacts_dir / video_id
    if not folder.is_dir():
        raise UnknownFilm(video_id)
    return folder


def ingested(settings: Settings, video_id: str) -> IngestedVideo:
    """The film's ingest record (the newest, if it was ingested more than once)."""
    records = sorted(film_dir(settings, video_id).glob("ingest-*/video.json"), key=lambda p: p.stat().st_mtime)
    if not records:
        raise UnknownFilm(video_id)
    return IngestedVideo.model_validate_json(records[-1].read_text())


def ingested_films(settings: Settings) -> list[IngestedVideo]:
    if not settings.artifacts_dir.is_dir():
        return []
    films = []
    for folder in sorted(settings.artifacts_dir.iterdir()):
        try:
            films.append(ingested(settings, folder.name))
        except UnknownFilm:
            continue  # a folder without a finished ingest stage
    return films


def film_events(settings: Settings, video_id: str) -> list[Event]:
    """The film's events as the configured backend holds them, in time order."""
    return open_index(settings).video_events(video_id)


def latest_report(settings: Settings, video_id: str) -> str:
    reports = sorted(film_dir(settings, video_id).glob("report-*/report.html"), key=lambda p: p.stat().st_mtime)
    return str(reports[-1].relative_to(film_dir(settings, video_id))) if reports else ""


def summarize(video: IngestedVideo, events: list[Event], report: str = "") -> FilmSummary:
    return FilmSummary(
        video_id=video.video_id, name=video.name, path=video.path, info=video.info, events=len(events),
        events_by_source=dict(Counter(e.source for e in events).most_common()),
        events_by_scene_type=dict(Counter(e.scene_type for e in events).most_common()),
        languages=sorted({e.language for e in events if e.language}),
        pipeline_versions=sorted({e.pipeline_version for e in events}),
        speakers=sorted({e.speaker for e in events if e.speaker}),
        report=report,
    )


def library(settings: Settings) -> list[FilmSummary]:
    """Every ingested film, by name."""
    films = [summarize(video, film_events(settings, video.video_id), latest_report(settings, video.video_id))
             for video in ingested_films(settings)]
    return sorted(films, key=lambda f: (f.name.casefold(), f.video_id))


def frames_folder(settings: Settings, video_id: str, events: list[Event]) -> Path | None:
    """The frame-sampling folder the indexed events' thumbnails come from (the run that loaded them)."""
    base = film_dir(settings, video_id).resolve()
    for event in events:
        if event.thumbnail:
            folder = Path(event.thumbnail).resolve().parent.parent
            if folder.is_relative_to(base) and (folder / "sampling.json").is_file():
                return folder
    return None


def validation_report(settings: Settings, video_id: str, events: list[Event]) -> dict | None:
    """The report of the validation stage whose valid events are the indexed ones."""
    ids = {e.id for e in events}
    folders = sorted(film_dir(settings, video_id).glob("validation-*/report.json"), key=lambda p: -p.stat().st_mtime)
    for report in folders:
        valid = report.parent / "valid.jsonl"
        with open(valid, encoding="utf-8") as f:
            if {json.loads(line)["id"] for line in f if line.strip()} == ids:
                return {**json.loads(report.read_text()), "folder": report.parent.name}
    return None


def film_people(settings: Settings, video_id: str, validation: dict | None) -> list[FilmPerson]:
    """The people of the indexed run (the events stage's people_shown.json upstream of its validation), faces as
    paths inside the film's artifact folder."""
    if not validation:
        return []
    base = film_dir(settings, video_id).resolve()
    shown = upstream_file(base / validation["folder"], PEOPLE_SHOWN_FILE)
    if shown is None:
        return []
    people = []
    for person in json.loads(shown.read_text()):
        face = Path(person.get("thumbnail", "")).resolve()
        people.append(FilmPerson(name=person["name"], screen_time_s=person["screen_time_s"],
                                 appearances=person["appearances"],
                                 face=str(face.relative_to(base)) if face.is_relative_to(base) and face.is_file()
                                 else ""))
    return sorted(people, key=lambda p: -p.screen_time_s)


def film_detail(settings: Settings, video_id: str) -> FilmDetail:
    video = ingested(settings, video_id)
    events = film_events(settings, video_id)
    shots = film_shots(settings, video_id, events)
    validation = validation_report(settings, video_id, events)
    return FilmDetail(**summarize(video, events, latest_report(settings, video_id)).model_dump(),
                      shots=shots[:PAGE_LIMIT], shots_total=len(shots), timeline=events[:PAGE_LIMIT],
                      validation=validation, people=film_people(settings, video_id, validation))


_shots_cache: dict[tuple, tuple[Path | None, list[Shot]]] = {}
_shots_lock = threading.Lock()


def _indexed_sampling(settings: Settings, video_id: str, events: list[Event] | None = None
                      ) -> tuple[Path | None, list[Shot]]:
    """The frames folder and shots of the run the index holds, read once per film and index state: a thumbnail
    then costs one file, not the film's events and its whole sampling."""
    index = open_index(settings)
    key = (index.name, str(settings.index_dir), settings.elasticsearch_alias, video_id, index.count(video_id))
    with _shots_lock:
        if key in _shots_cache:
            return _shots_cache[key]
    folder = frames_folder(settings, video_id, film_events(settings, video_id) if events is None else events)
    found = (folder, load_sampling(folder).shots if folder else [])
    with _shots_lock:
        if len(_shots_cache) > 64:
            _shots_cache.clear()
        _shots_cache[key] = found
    return found


def film_shots(settings: Settings, video_id: str, events: list[Event] | None = None) -> list[Shot]:
    film_dir(settings, video_id)
    return _indexed_sampling(settings, video_id, events)[1]


def shot_thumbnail(settings: Settings, video_id: str, shot_id: int) -> Path:
    """The thumbnail of one shot of the indexed run, always inside the film's artifact folder."""
    film_dir(settings, video_id)
    folder, shots = _indexed_sampling(settings, video_id)
    if folder is None:
        raise UnknownFilm(f"{video_id} has no shots")
    if 0 <= shot_id < len(shots) and shots[shot_id].shot_id == shot_id:  # shots are numbered in order
        return Path(shots[shot_id].thumbnail)
    raise UnknownFilm(f"{video_id} has no shot {shot_id}")


def artifact_file(settings: Settings, video_id: str, relative: str) -> Path:
    """A file of the film's artifact folder (reports, Data Docs); refused when the path leads out of it."""
    base = film_dir(settings, video_id).resolve()
    if "\x00" in relative or len(relative) > MAX_ARTIFACT_PATH:
        raise UnknownFilm(f"{video_id}: no such artifact")
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise UnknownFilm(f"{video_id}: no artifact {relative}")
    return path


# --- exports ------------------------------------------------------------------------------------------------------

def as_transcript(events: list[Event]) -> Transcript:
    """The film's dialogue events as a transcript, with the speaker names the index holds (after the roster)."""
    lines = [Utterance(start_s=e.start_s, end_s=e.end_s, text=e.content, speaker=e.speaker)
             for e in events if e.source == "asr"]
    return Transcript(language=next((e.language for e in events if e.language), ""), model="", utterances=lines)


def to_srt(events: list[Event]) -> str:
    return asr.to_srt(as_transcript(events))


def to_vtt(events: list[Event]) -> str:
    return asr.to_vtt(as_transcript(events))


def to_json(events: list[Event]) -> str:
    return json.dumps([e.model_dump(mode="json") for e in events], ensure_ascii=False, indent=1)


def to_bulk_ndjson(events: list[Event], index: str) -> str:
    """An Elasticsearch `_bulk` body: an index action keyed by the event's id, then the event, per event."""
    lines = []
    for e in events:
        lines.append(json.dumps({"index": {"_index": index, "_id": e.id}}))
        lines.append(json.dumps(e.model_dump(mode="json"), ensure_ascii=False))
    return "\n".join(lines) + "\n" if lines else ""
