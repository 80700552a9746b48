"""The embedded search index: tantivy on local disk, its schema derived from `Event`, and the events' vectors beside it.

Every event becomes one document: its free-text fields analysed with English stemming, its identifiers and
names as exact-match keywords, its time range as float fields, and a JSON copy of the whole event for hits.
Each video's event vectors sit in `vectors/<video_id>.npz` with what the search filters need (times, scene type,
speaker, characters), so kNN filters exactly without asking tantivy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tantivy

from cinedex import PIPELINE_VERSION
from cinedex.pipeline.events import read_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.model import Event, SearchFilters
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

TEXT_TOKENIZER = "english"
KEYWORD_FIELDS = ("id", "video_id", "scene_type", "source", "speaker", "characters", "language", "pipeline_version")
EVENT_JSON_FIELD = "event_json"
TEXT_FIELDS = tuple(Event.text_fields())
RANGE_FIELDS = tuple(name for name, field in Event.model_fields.items() if field.annotation is float)
# Close to Elasticsearch's `english` analyzer, as far as tantivy has its parts: words, lowercased, without the same
# 33 English stop words, stemmed (Snowball here, Porter there, which differ on a few words). A question's "the",
# "a" and "in", which match most of a film's events, then cost nothing and no longer rank events that merely
# repeat them, on either backend.
TEXT_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stopword("english"))
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)

WRITER_HEAP_BYTES = 128_000_000
WRITER_LOCK_TIMEOUT_S = 120.0


class IndexWriteError(RuntimeError):
    """tantivy could not write the index (most often: the disk is full); nothing of the failed write is visible."""


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
                f"the index at {self.path} was built by an older version of cinedex (its fields or text analysis "
                "differ); delete it and index the videos again (their cached stages make that quick)"
            ) from exc
        # Custom analyzers are not stored in the index: each handle registers the one its text fields name.
        self._index.register_tokenizer(TEXT_TOKENIZER, TEXT_ANALYZER)
        self._write_lock = threading.Lock()

    def searcher(self) -> tantivy.Searcher:
        return self._index.searcher()

    def reload(self) -> None:
        """Sees commits made through other handles now rather than after the reader's file-watch delay."""
        self._index.reload()

    @property
    def vectors(self) -> VectorStore:
        return VectorStore(self.path / VECTORS_DIR)

    def replace_video(self, video_id: str, events: Iterable[Event], vectors: np.ndarray | None = None) -> int:
        """Swaps the video's documents for `events` in one commit, so a reader sees the old set or the new one;
        then its vectors (row i belongs to the i-th event), if given."""
        events = list(events)
        docs = []
        for event in events:
            if event.video_id != video_id:
                raise ValueError(f"event {event.id} belongs to video {event.video_id!r}, not {video_id!r}")
            docs.append(to_document(event))
        self._commit(video_id, docs)
        # A kNN hit whose document is not (or no longer) in tantivy is dropped, so this order is safe either way.
        self.vectors.replace_video(video_id, events, vectors)
        return len(docs)

    def delete_video(self, video_id: str) -> None:
        self._commit(video_id, [])
        self.vectors.replace_video(video_id, [], None)

    def events_by_id(self, ids: list[str]) -> dict[str, Event]:
        if not ids:
            return {}
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "id", i)) for i in ids])
        searcher = self.searcher()
        found = (from_document(searcher.doc(address)) for _, address in searcher.search(query, limit=len(ids)).hits)
        return {event.id: event for event in found}

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""
        query = tantivy.Query.term_query(self.schema, keyword_field("video_id"), video_id)
        searcher = self.searcher()
        limit = max(self.count(video_id), 1)
        events = [from_document(searcher.doc(address)) for _, address in searcher.search(query, limit=limit).hits]
        return sorted(events, key=lambda e: (e.start_s, e.end_s, e.id))

    def count(self, video_id: str | None = None, pipeline_version: str | None = None) -> int:
        """Events in the index, of one video and/or one pipeline version when given."""
        searcher = self.searcher()
        terms = [(name, value) for name, value in (("video_id", video_id), ("pipeline_version", pipeline_version))
                 if value is not None]
        if not terms:
            return searcher.num_docs
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, keyword_field(name), value))
            for name, value in terms])
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
            except BaseException as exc:
                with contextlib.suppress(Exception):  # a writer tantivy killed cannot roll back, nor needs to
                    writer.rollback()
                if isinstance(exc, ValueError):  # tantivy's I/O errors, e.g. "No space left on device (os error 28)"
                    free_mib = shutil.disk_usage(self.path).free / 2**20
                    raise IndexWriteError(
                        f"writing video {video_id[:12]} into the index at {self.path} failed ({exc}); the index keeps "
                        f"its previous contents. {free_mib:.1f} MiB free there: a full disk is the usual cause") from exc
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


VECTORS_DIR = "vectors"
EXACT_KNN_ROWS = 20_000  # up to here every candidate is scored exactly; above, binary codes shortlist them first
RESCORE_FACTOR = 40  # shortlist size per hit wanted, rescored exactly


class VectorStore:
    """The embedded index's event vectors: one `.npz` per video (written aside, renamed into place), all of them
    held in memory while unchanged. kNN is exact up to EXACT_KNN_ROWS candidates; beyond, each vector's sign bits
    (48 bytes for 384 dimensions) shortlist the candidates by Hamming distance, which are then scored exactly —
    sentence-transformers' binary quantization with rescoring, without a separate ANN library."""

    _cache: dict[Path, tuple[tuple, dict]] = {}
    _cache_lock = threading.Lock()

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _file(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.npz"

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None) -> None:
        target = self._file(video_id)
        if vectors is None or not len(events):
            target.unlink(missing_ok=True)
            return
        if len(vectors) != len(events):
            raise ValueError(f"{len(vectors)} vectors for {len(events)} events of video {video_id}")
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.npz")
        np.savez(scratch, ids=np.array([e.id for e in events]), vectors=np.asarray(vectors, dtype=np.float32),
                 start_s=np.array([e.start_s for e in events]), end_s=np.array([e.end_s for e in events]),
                 scene_type=np.array([e.scene_type for e in events]), speaker=np.array([e.speaker for e in events]),
                 characters=np.array(["\x1f" + "\x1f".join(e.characters) + "\x1f" for e in events]))
        scratch.replace(target)

    def _load(self) -> dict:
        # Every replace renames a file into (or out of) the folder, which changes the folder's own mtime: one stat
        # tells whether the cached arrays are current.
        stamp = self.folder.stat().st_mtime_ns if self.folder.is_dir() else 0
        with self._cache_lock:
            cached = self._cache.get(self.folder)
            if cached and cached[0] == stamp:
                return cached[1]
        files = sorted(self.folder.glob("[!.]*.npz")) if stamp else []
        parts = []
        for file in files:
            with np.load(file) as part:
                parts.append({**part, "video_id": np.full(len(part["ids"]), file.stem)})
        if parts:
            data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        else:
            data = {"ids": np.array([], dtype=str), "vectors": np.zeros((0, 8), np.float32)}
        data["codes"] = sign_codes(data["vectors"])
        with self._cache_lock:
            self._cache[self.folder] = (stamp, data)
        return data

    def __len__(self) -> int:
        return len(self._load()["ids"])

    def search(self, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[tuple[str, float]]:
        """(event id, cosine similarity) of the nearest events passing the filters, best first."""
        data = self._load()
        if not len(data["ids"]) or limit < 1:
            return []
        rows = self._filtered_rows(data, filters)
        count = len(data["ids"]) if rows is None else len(rows)
        if count == 0:
            return []
        vector = np.asarray(vector, dtype=np.float32)
        if count > EXACT_KNN_ROWS:
            codes = data["codes"] if rows is None else data["codes"][:, rows]
            shortlist = nearest_codes(codes, sign_codes(vector[None, :])[:, 0], RESCORE_FACTOR * limit)
            rows = shortlist if rows is None else rows[shortlist]
        elif rows is None:
            rows = np.arange(count)
        # einsum, not `@`: a few thousand rows are too few for BLAS's threads, which on a small machine then wait
        # for the cores that the query encoder's threads still spin on (hybrid p95 at a million events, 2 cores:
        # 129 ms with BLAS threads here, 39 ms without).
        scores = np.einsum("ij,j->i", data["vectors"][rows], vector)
        best = np.argpartition(-scores, limit - 1)[:limit] if len(scores) > limit else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(str(data["ids"][rows[i]]), float(scores[i])) for i in best]

    @staticmethod
    def _filtered_rows(data: dict, filters: SearchFilters) -> np.ndarray | None:
        """Row numbers passing the filters, or None for all rows."""
        mask = None

        def narrow(condition):
            nonlocal mask
            mask = condition if mask is None else mask & condition

        if filters.video_id is not None:
            narrow(data["video_id"] == filters.video_id)
        if filters.scene_type is not None:
            narrow(data["scene_type"] == filters.scene_type)
        if filters.speaker is not None:
            narrow(data["speaker"] == filters.speaker)
        if filters.start_s is not None:
            narrow(data["end_s"] > filters.start_s)
        if filters.end_s is not None:
            narrow(data["start_s"] < filters.end_s)
        if filters.character is not None:
            narrow(np.char.find(data["characters"], "\x1f" + filters.character + "\x1f") >= 0)
        return None if mask is None else np.flatnonzero(mask)


HAMMING_BLOCK = 1 << 16  # rows per pass: the block's temporaries stay in the CPU cache


def hamming_distances(codes: np.ndarray, query_code: np.ndarray) -> np.ndarray:
    """Hamming distance from `query_code` to every column of the word-major `codes`, a block of rows at a time
    into reused buffers: at a million rows, whole-array temporaries cost more in page faults than the XORs."""
    words, count = codes.shape
    distance = np.empty(count, np.uint16)
    xor = np.empty((words, min(count, HAMMING_BLOCK)), np.uint64)
    bits = np.empty(xor.shape, np.uint8)
    for start in range(0, count, HAMMING_BLOCK):
        stop = min(count, start + HAMMING_BLOCK)
        n = stop - start
        np.bitwise_xor(codes[:, start:stop], query_code[:, None], out=xor[:, :n])
        np.bitwise_count(xor[:, :n], out=bits[:, :n])
        np.add.reduce(bits[:, :n], axis=0, dtype=np.uint16, out=distance[start:stop])
    return distance


def nearest_codes(codes: np.ndarray, query_code: np.ndarray, count: int) -> np.ndarray:
    """Columns of `codes` at the `count` smallest Hamming distances from `query_code` (ties in column order).
    Distances are small integers, so a histogram finds the cut-off distance in one pass: several times faster
    than argpartition over a million rows."""
    distance = hamming_distances(codes, query_code)
    if count >= len(distance):
        return np.arange(len(distance))
    cutoff = int(np.searchsorted(np.cumsum(np.bincount(distance)), count))
    closer = np.flatnonzero(distance < cutoff)
    return np.concatenate([closer, np.flatnonzero(distance == cutoff)[:count - len(closer)]])


def sign_codes(vectors: np.ndarray) -> np.ndarray:
    """Each vector's sign bits as 64-bit words, word-major (words x rows): Hamming distances are then a few
    contiguous XOR and popcount passes, several times faster than row by row."""
    bits = np.packbits(vectors > 0, axis=1)
    padded = np.zeros((len(vectors), -(-bits.shape[1] // 8) * 8), np.uint8)
    padded[:, :bits.shape[1]] = bits
    return np.ascontiguousarray(padded.view(np.uint64).T)


def indexed_events(video_id: str, settings: Settings, pipeline_version: str = PIPELINE_VERSION) -> int:
    """How many events of the video this pipeline version has in the configured index (0: not indexed yet)."""
    if settings.index_backend == "elasticsearch":
        from cinedex.index.elastic import search_backend

        return search_backend(settings).count(video_id, pipeline_version)
    if not (settings.index_dir / "meta.json").is_file():
        return 0
    return EmbeddedIndex(settings.index_dir).count(video_id, pipeline_version)


def load_embedded(video: IngestedVideo, events: list[Event], vectors: np.ndarray | None, settings: Settings) -> dict:
    count = EmbeddedIndex(settings.index_dir).replace_video(video.video_id, events, vectors)
    log.info("load: %d events of %s now in the index at %s", count, video.name, settings.index_dir)
    return {"video_id": video.video_id, "events": count, "backend": "embedded", "index": str(settings.index_dir)}


def load_video(video: IngestedVideo, validation_dir: Path, settings: Settings,
               embeddings_dir: Path | None = None) -> dict:
    """The load stage: the video's validated events (with their vectors, when embedded) replace whatever the
    configured backend held for it."""
    events = read_events(Path(validation_dir) / "valid.jsonl")
    vectors = None
    if embeddings_dir:
        from cinedex.pipeline.embeddings import load_embeddings

        by_id = load_embeddings(Path(embeddings_dir))
        vectors = np.stack([by_id[e.id] for e in events]) if events else None
    if settings.index_backend == "elasticsearch":
        from cinedex.index.elastic import load_elasticsearch

        return load_elasticsearch(video, events, vectors, settings)
    return load_embedded(video, events, vectors, settings)
