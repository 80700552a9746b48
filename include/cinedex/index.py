"""The embedded search index: tantivy on local disk, its schema derived from `Event`.

Every event becomes one document: its free-text fields analysed with English stemming, its identifiers and
names as exact-match keywords, its time range as float fields, and a JSON copy of the whole event for hits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import tantivy

from cinedex.events import read_events
from cinedex.ingest import IngestedVideo
from cinedex.model import Event
from cinedex.settings import Settings

log = logging.getLogger(__name__)

TEXT_TOKENIZER = "en_stem"
KEYWORD_FIELDS = ("id", "video_id", "scene_type", "source", "speaker", "characters", "language", "pipeline_version")
EVENT_JSON_FIELD = "event_json"
TEXT_FIELDS = tuple(Event.text_fields())
RANGE_FIELDS = tuple(name for name, field in Event.model_fields.items() if field.annotation is float)
# tantivy's `en_stem` has no Python handle; this is the same pipeline (SimpleTokenizer, RemoveLong(40),
# LowerCaser, English stemmer), so queries are cut into exactly the terms the index holds.
TEXT_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)

WRITER_HEAP_BYTES = 128_000_000
WRITER_LOCK_TIMEOUT_S = 120.0


class IndexBusyError(TimeoutError):
    """Another writer (this process or another one) held the index for longer than the timeout."""


def keyword_field(name: str) -> str:
    """The exact-match field of `name`: its own name, unless that is already taken by its free-text form."""
    return f"{name}_kw" if name in TEXT_FIELDS else name


def build_schema() -> tantivy.Schema:
    unknown = set(KEYWORD_FIELDS) - set(Event.model_fields)
    if unknown or EVENT_JSON_FIELD in Event.model_fields:
        raise RuntimeError(
            f"index schema out of step with Event: no fields {sorted(unknown)}, or {EVENT_JSON_FIELD!r} taken"
        )
    builder = tantivy.SchemaBuilder()
    for name in Event.model_fields:
        if name in TEXT_FIELDS:
            builder.add_text_field(name, stored=True, tokenizer_name=TEXT_TOKENIZER)
        if name in KEYWORD_FIELDS:
            builder.add_text_field(keyword_field(name), tokenizer_name="raw")
        if name in RANGE_FIELDS:
            builder.add_float_field(name, stored=True, indexed=True, fast=True)
    builder.add_bytes_field(EVENT_JSON_FIELD, stored=True)
    return builder.build()


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def to_document(event: Event) -> tantivy.Document:
    doc = tantivy.Document()
    for name in Event.model_fields:
        value = getattr(event, name)
        if name in TEXT_FIELDS:
            for text in _as_list(value):
                if text:
                    doc.add_text(name, text)
        if name in KEYWORD_FIELDS:
            for text in _as_list(value):
                if text:
                    doc.add_text(keyword_field(name), text)
        if name in RANGE_FIELDS:
            doc.add_float(name, float(value))
    doc.add_bytes(EVENT_JSON_FIELD, event.model_dump_json().encode())
    return doc


def from_document(doc: tantivy.Document) -> Event:
    return Event.model_validate_json(doc.get_first(EVENT_JSON_FIELD))


class EmbeddedIndex:
    """A tantivy index in one folder: opened if it exists, created otherwise.

    Readers never block. Writes take tantivy's single-writer lock only for the one commit they make, and wait
    for it (up to `lock_timeout_s`) when another thread or process holds it.
    """

    def __init__(self, path: Path, lock_timeout_s: float = WRITER_LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock_timeout_s = lock_timeout_s
        self.schema = build_schema()
        try:
            self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            raise RuntimeError(
                f"the index at {self.path} does not match this version's Event schema; delete it and reindex"
            ) from exc
        self._write_lock = threading.Lock()

    def searcher(self) -> tantivy.Searcher:
        return self._index.searcher()

    def reload(self) -> None:
        """Sees commits made through other handles now rather than after the reader's file-watch delay."""
        self._index.reload()

    def replace_video(self, video_id: str, events: Iterable[Event]) -> int:
        """Swaps the video's documents for `events` in one commit, so a reader sees the old set or the new one."""
        docs = []
        for event in events:
            if event.video_id != video_id:
                raise ValueError(f"event {event.id} belongs to video {event.video_id!r}, not {video_id!r}")
            docs.append(to_document(event))
        self._commit(video_id, docs)
        return len(docs)

    def delete_video(self, video_id: str) -> None:
        self._commit(video_id, [])

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""
        query = tantivy.Query.term_query(self.schema, keyword_field("video_id"), video_id)
        searcher = self.searcher()
        limit = max(self.count(video_id), 1)
        events = [from_document(searcher.doc(address)) for _, address in searcher.search(query, limit=limit).hits]
        return sorted(events, key=lambda e: (e.start_s, e.end_s, e.id))

    def count(self, video_id: str | None = None) -> int:
        searcher = self.searcher()
        if video_id is None:
            return searcher.num_docs
        query = tantivy.Query.term_query(self.schema, keyword_field("video_id"), video_id)
        return searcher.search(query, limit=1, count=True).count  # limit=0 panics in tantivy

    def _commit(self, video_id: str, docs: list[tantivy.Document]) -> None:
        """Deletes the video's documents and adds `docs` in one commit."""
        with self._write_lock:
            writer = self._acquire_writer()
            try:
                writer.delete_documents_by_term(keyword_field("video_id"), video_id)
                for doc in docs:
                    writer.add_document(doc)
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            finally:
                # Lets merges finish and drops the writer, which is what releases the lock file.
                writer.wait_merging_threads()
        self._index.reload()

    def _acquire_writer(self) -> tantivy.IndexWriter:
        deadline = time.monotonic() + self.lock_timeout_s
        pause = 0.05
        while True:
            try:
                return self._index.writer(heap_size=WRITER_HEAP_BYTES)
            except ValueError as exc:
                if "LockBusy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise IndexBusyError(
                        f"another writer held {self.path} for over {self.lock_timeout_s:.0f}s"
                    ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def load_video(video: IngestedVideo, validation_dir: Path, settings: Settings) -> dict:
    """The load stage: the video's validated events replace whatever the index held for it."""
    events = read_events(Path(validation_dir) / "valid.jsonl")
    count = EmbeddedIndex(settings.index_dir).replace_video(video.video_id, events)
    log.info("load: %d events of %s now in the index at %s", count, video.name, settings.index_dir)
    return {"video_id": video.video_id, "events": count, "index": str(settings.index_dir)}
