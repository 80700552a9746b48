"""The film-level summary: once all events exist, the vision model reads them (text only) and writes the film's
summary and chapters, which are indexed as documents of their own. (One film-wide name per character and the
voices attached to them are settled earlier, in `cinedex.pipeline.characters`.)
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from cinedex.core.artifacts import cached_stage
from cinedex.pipeline.characters import DIARIZATION_LABEL
from cinedex.pipeline.events import EVENTS_FILE
from cinedex.core.model import read_events, write_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.model import Event
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

MAX_CHAPTERS = 24
CHARS_PER_TOKEN = 3  # a cautious average for English text, so the outline fits the context
OUTLINE_LINE_CHARS = 160
FILM_PROMPT_TOKENS = 300  # the instructions around the outline, about
MIN_CHAPTER_S = 60.0
CHAPTER_OVERHEAD_TOKENS = 40  # a chapter's keys, two times and punctuation, at most


class Chapter(BaseModel):
    start_s: float = Field(description="Where the chapter begins, seconds from the beginning of the film.")
    end_s: float = Field(description="Where it ends, seconds from the beginning of the film.")
    title: str = Field(description="A short title.")
    summary: str = Field(description="One or two sentences on what happens in it.")


class FilmSummary(BaseModel):
    """The film-level answer: a summary of the whole film and its chapters in order."""

    summary: str = Field(description="A paragraph on the whole film: who, where, what happens.")
    chapters: list[Chapter] = Field(max_length=MAX_CHAPTERS)


def summary_schema(duration_s: float, max_new_tokens: int) -> tuple[tuple, dict]:
    """FilmSummary's schema with times bounded to the film and text capped so the longest answer the grammar
    allows fits `max_new_tokens` (a token is at least one character): no summary is ever cut off mid-JSON.
    A chapter is at least MIN_CHAPTER_S long; fewer, fuller chapters when the budget is small."""
    usable = max_new_tokens - 40
    summary_chars = min(max(usable // 3, 16), 1500)
    chapters = max(1, min(MAX_CHAPTERS, int(duration_s // MIN_CHAPTER_S)))
    while chapters > 1 and (usable - summary_chars - chapters * CHAPTER_OVERHEAD_TOKENS) // (2 * chapters) < 40:
        chapters -= 1
    chapter_chars = min(max((usable - summary_chars - chapters * CHAPTER_OVERHEAD_TOKENS) // (2 * chapters), 8), 400)
    schema = FilmSummary.model_json_schema()
    chapter = schema["$defs"]["Chapter"]["properties"]
    for name in ("start_s", "end_s"):
        chapter[name].update(minimum=0.0, maximum=float(duration_s))
    chapter["title"]["maxLength"] = min(chapter_chars, 80)
    chapter["summary"]["maxLength"] = chapter_chars
    schema["properties"]["summary"]["maxLength"] = summary_chars
    schema["properties"]["chapters"].update(minItems=1, maxItems=chapters)
    return ("film_summary", float(duration_s), max_new_tokens), schema


def outline(events: Sequence[Event], max_chars: int) -> str:
    """The events as one line each, time first; evenly thinned out when they would not fit `max_chars`."""
    lines = []
    for e in sorted(events, key=lambda e: (e.start_s, e.end_s)):
        text = " ".join((e.event or e.content).split())[:OUTLINE_LINE_CHARS]
        who = f"{e.speaker}: " if e.speaker else (f"[{', '.join(e.characters[:4])}] " if e.characters else "")
        lines.append(f"{e.start_time}-{e.end_time} {e.scene_type}: {who}{text}")
    total = sum(len(line) + 1 for line in lines)
    if total > max_chars and lines:
        keep = max(1, int(len(lines) * max_chars / total))
        lines = [lines[round(i * (len(lines) - 1) / max(keep - 1, 1))] for i in range(keep)]
    return "\n".join(lines)


def summary_chat(events: Sequence[Event], duration_s: float, context_tokens: int, max_new_tokens: int,
                 language: str = "") -> list[dict]:
    """The film-level prompt; with `language` (a code), the summary and chapters are asked for in it."""
    from cinedex.pipeline.vision.prompt import language_name

    budget = max(context_tokens - max_new_tokens - FILM_PROMPT_TOKENS, 64) * CHARS_PER_TOKEN
    written_in = f" Write the summary and the chapters in {language_name(language)}." if language else ""
    return [
        {"role": "system", "content":
            "You summarise films. From a film's moments in time order (what is said and what is seen), write JSON: "
            "{\"summary\": a paragraph on the whole film, \"chapters\": the film's parts in order, each with "
            "start_s and end_s in seconds from the beginning, a short title and a one or two sentence summary}. "
            f"The chapters cover the film from 0 to {duration_s:.1f} seconds.{written_in} Write nothing but the JSON."},
        {"role": "user", "content": f"Film length: {duration_s:.1f} seconds.\nMoments:\n"
                                    f"{outline(events, budget)}\nSummarise the film as JSON."},
    ]


def tile_chapters(chapters: Sequence[Chapter], duration_s: float) -> list[Chapter]:
    """Chapters as consecutive parts of the film: sorted by start, the first from 0, each running until the next
    begins and the last until the end (the model's own end times are overruled by that definition); chapters
    with neither title nor summary, or starting where another does, are dropped."""
    kept: dict[float, Chapter] = {}
    for chapter in sorted(chapters, key=lambda c: c.start_s):
        start = min(max(chapter.start_s, 0.0), duration_s)
        if (chapter.title.strip() or chapter.summary.strip()) and start < duration_s and start not in kept:
            kept[start] = chapter
    starts = sorted(kept)
    if starts:
        kept[0.0] = kept.pop(starts[0])
        starts[0] = 0.0
    ends = [*starts[1:], duration_s]
    return [kept[start].model_copy(update={"start_s": start, "end_s": end}) for start, end in zip(starts, ends)]


def _cast(events: Iterable[Event], limit: int = 12) -> list[str]:
    counts = Counter(c for e in events for c in e.characters if not DIARIZATION_LABEL.match(c))
    return [name for name, _ in counts.most_common(limit)]


def _on_screen(events: Iterable[Event], limit: int) -> list[str]:
    """The people most often on screen in the events."""
    return [name for name, _ in Counter(p for e in events for p in e.people).most_common(limit)]


def film_documents(video: IngestedVideo, answer: FilmSummary, events: Sequence[Event], language: str) -> list[Event]:
    """The summary (source "summary", the whole film) and each chapter (source "chapter") as indexable events."""
    duration = video.info.duration_s
    documents = []
    if answer.summary.strip():
        documents.append(Event(video_id=video.video_id, start_s=0.0, end_s=duration, source="summary",
                               event=f"Summary of {video.name}", content=answer.summary.strip(),
                               characters=_cast(events), people=_on_screen(events, 12), language=language))
    for chapter in tile_chapters(answer.chapters, duration):
        inside = [e for e in events if chapter.start_s <= (e.start_s + e.end_s) / 2 < chapter.end_s]
        documents.append(Event(video_id=video.video_id, start_s=chapter.start_s, end_s=chapter.end_s,
                               source="chapter", event=chapter.title.strip() or chapter.summary.strip()[:80],
                               content=chapter.summary.strip() or chapter.title.strip(),
                               characters=_cast(inside, 6), people=_on_screen(inside, 6), language=language))
    return documents


def summary_work(events_dir: Path, settings: Settings) -> list[str]:
    """The events folder to summarise, or nothing without a vision model: the DAG maps the summary task over
    this, so with nothing to do it is skipped without taking a GPU slot."""
    return [str(events_dir)] if settings.vision_enabled else []


def summarize_film(video: IngestedVideo, events_dir: Path, settings: Settings) -> Path:
    """The cached film stage: the events with the film's summary and chapters added, in `events.jsonl`, and the
    model's answer in `summary.json`. Without a vision model the events folder is passed on unchanged."""
    from cinedex.pipeline.vision import backend_for, backend_key, options_from, parse_json

    if not settings.vision_enabled:
        return Path(events_dir)

    def write(folder: Path) -> None:
        events = read_events(Path(events_dir) / EVENTS_FILE)
        options = options_from(settings).model_copy(update={"max_new_tokens": settings.summary_max_new_tokens})
        schema_key, schema = summary_schema(video.info.duration_s, options.max_new_tokens)
        spoken = next((e.language for e in events if e.language), "")
        chat = summary_chat(events, video.info.duration_s, settings.vision_context_tokens, options.max_new_tokens,
                            settings.event_language or spoken)
        log.info("film: summarising %s from %d events", video.name, len(events))
        raw = backend_for(settings).write_json(chat, schema_key, schema, options)
        try:
            answer = FilmSummary.model_validate(parse_json(raw))
        except ValueError as error:
            # A summary is a convenience: without one the film's events are still indexed.
            log.warning("film: no summary for %s, the answer could not be read (%s)", video.name, str(error)[:200])
            answer = FilmSummary(summary="", chapters=[])
        documents = film_documents(video, answer, events, settings.event_language or spoken)
        write_events([*events, *documents], folder / EVENTS_FILE)
        (folder / "summary.json").write_text(json.dumps({"raw": raw, "documents": [d.model_dump() for d in documents]},
                                                        indent=1, ensure_ascii=False))
        log.info("film: summary and %d chapters for %s", max(len(documents) - 1, 0), video.name)

    return cached_stage("film", video.video_id, settings.artifacts_dir, write, upstream=[events_dir],
                        summary_max_new_tokens=settings.summary_max_new_tokens, **backend_key(settings))
