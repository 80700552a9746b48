"""The embedded index backend: tantivy on local disk, its schema derived from the event model's field roles, and
the events' vectors beside it (`vectors.py`).

Every event becomes one document: its free-text and name fields analysed (as Elasticsearch's `english` analyzer
does, as far as tantivy has its parts) and, beside each, their Chinese, Japanese and Korean runs as bigrams (`cjk.py`,
as the Elasticsearch mapping's `.cjk` subfields), its keywords and names as exact-match fields, its media times as
float fields, and a JSON copy of the whole event for hits.

User text is never handed to tantivy's query parser (where `:`, `"`, `-`, `AND` are syntax); it is cut into terms by
the index's own analyzer and the query is built from those terms, so no input is a syntax error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import tantivy

from cinedex.core.model import EVENT_FIELDS, Condition, Event, EventFields, SearchFilters
from cinedex.core.progress import Progress
from cinedex.index import cjk
from cinedex.index.protocol import EmbeddingModelMismatch, LoadReport
from cinedex.index.vectors import VectorStore

log = logging.getLogger(__name__)

TEXT_TOKENIZER = "english"
CJK_TOKENIZER = "cjk_bigrams"
EVENT_JSON_FIELD = "event_json"
VECTORS_DIR = "vectors"
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
# The CJK fields hold the bigrams `cjk.bigrams` made, space-separated: whitespace keeps them as they are.
CJK_ANALYZER = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()

WRITER_HEAP_BYTES = 128_000_000
WRITER_LOCK_TIMEOUT_S = 120.0
# A term matching several fields counts mostly for its best one, so long events are not favoured for repeating it.
FIELD_TIE_BREAKER = 0.1
PHRASE_BOOST = 2.0
PHRASE_SLOP = 1
# Bounds the query's cost when someone pastes a page of text.
MAX_QUERY_TERMS = 32
HIGHLIGHT_MAX_CHARS = 200


class IndexWriteError(RuntimeError):
    """tantivy could not write the index (most often: the disk is full); nothing of the failed write is visible."""


class IndexBusyError(TimeoutError):
    """Another writer (this process or another one) held the index for longer than the timeout."""


def keyword_field(name: str, fields: EventFields = EVENT_FIELDS) -> str:
    """The exact-match field of `name`: its own name, unless that is already taken by its free-text form."""
    return f"{name}_kw" if name in fields.text else name


def _register_analyzers(index: tantivy.Index) -> None:
    # Custom analyzers are not stored in the index: each handle registers the ones its text fields name.
    index.register_tokenizer(TEXT_TOKENIZER, TEXT_ANALYZER)
    index.register_tokenizer(CJK_TOKENIZER, CJK_ANALYZER)


def cjk_field(name: str) -> str:
    """The field of `name`'s CJK bigrams."""
    return f"{name}_cjk"


def build_schema(fields: EventFields = EVENT_FIELDS) -> tantivy.Schema:
    for own in [EVENT_JSON_FIELD, *(cjk_field(name) for name in fields.text)]:
        if own in fields.roles:
            raise RuntimeError(f"{fields.model.__name__} has a field {own!r}, which the index keeps for itself")
    builder = tantivy.SchemaBuilder()
    for name in fields.roles:
        if name in fields.text:
            builder.add_text_field(name, stored=True, tokenizer_name=TEXT_TOKENIZER)
            builder.add_text_field(cjk_field(name), tokenizer_name=CJK_TOKENIZER)
        if name in fields.exact:
            builder.add_text_field(keyword_field(name, fields), tokenizer_name="raw")
        if name in fields.ranges:
            builder.add_float_field(name, stored=True, indexed=True, fast=True)
    builder.add_bytes_field(EVENT_JSON_FIELD, stored=True)
    return builder.build()


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def to_document(event: Event, fields: EventFields = EVENT_FIELDS) -> tantivy.Document:
    doc = tantivy.Document()
    for name in fields.roles:
        value = getattr(event, name)
        if name in fields.text:
            for text in _as_list(value):
                if text:
                    doc.add_text(name, text)
                    if grams := cjk.bigrams(text):
                        # Two values: the bigrams in order, for words and phrases, then the characters, for a query
                        # of one character (a query's phrase is of bigrams only, so none spans the two).
                        doc.add_text(cjk_field(name), " ".join(grams))
                        doc.add_text(cjk_field(name), " ".join(cjk.characters(text)))
        if name in fields.exact:
            for text in _as_list(value):
                if text:
                    doc.add_text(keyword_field(name, fields), text)
        if name in fields.ranges:
            doc.add_float(name, float(value))
    doc.add_bytes(EVENT_JSON_FIELD, event.model_dump_json().encode())
    return doc


def query_terms(text: str) -> list[tuple[int, str]]:
    """(position, term) pairs as the index analyses text; lone surrogates, which Rust strings cannot hold, dropped."""
    clean = text.encode("utf-8", "ignore").decode("utf-8")
    return [(token.position, token.text) for token in TEXT_ANALYZER.pre_tokenize(clean).tokens][:MAX_QUERY_TERMS]


def query_bigrams(text: str) -> list[str]:
    """The query's CJK terms, as the documents' CJK fields hold them."""
    return cjk.bigrams(text.encode("utf-8", "ignore").decode("utf-8"))[:MAX_QUERY_TERMS]


class EmbeddedIndex:
    """The embedded backend: a tantivy index in one folder (opened if it exists, created otherwise) and the event
    vectors beside it.

    Readers never block. Writes take tantivy's single-writer lock only for the one commit they make, and wait
    for it (up to `lock_timeout_s`) when another thread or process holds it.
    """

    name = "embedded"

    def __init__(self, path: Path, lock_timeout_s: float = WRITER_LOCK_TIMEOUT_S,
                 fields: EventFields = EVENT_FIELDS) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock_timeout_s = lock_timeout_s
        self.fields = fields
        self.schema = build_schema(fields)
        try:
            self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            self._rebuild()
            self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        _register_analyzers(self._index)
        self._write_lock = threading.Lock()
        self.vectors = VectorStore(self.path / VECTORS_DIR, fields)

    def _rebuild(self) -> None:
        """An index an older version wrote (other fields or analysis) is rebuilt with this schema from the events it
        stores, each kept whole as JSON: nothing indexed is lost, nothing needs indexing again. The new index is
        written aside, then swapped in; the vectors beside it stay as they are."""
        stored = json.loads((self.path / "meta.json").read_text())["schema"]  # tantivy's own description
        if EVENT_JSON_FIELD not in {field["name"] for field in stored}:
            raise RuntimeError(
                f"the index at {self.path} was built by an older version of cinedex that kept no copy of its "
                "events; delete it and index the videos again (their cached stages make that quick)")
        old = tantivy.Index.open(str(self.path))
        searcher = old.searcher()
        total = searcher.num_docs
        docs = [to_document(self.fields.model.model_validate_json(searcher.doc(address).get_first(EVENT_JSON_FIELD)),
                            self.fields)
                for _, address in (searcher.search(tantivy.Query.all_query(), limit=total).hits if total else [])]
        del searcher, old
        aside = self.path.with_name(f".{self.path.name}.rebuilding-{os.getpid()}")
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir(parents=True)
        fresh = tantivy.Index(self.schema, path=str(aside))
        _register_analyzers(fresh)
        writer = fresh.writer(heap_size=WRITER_HEAP_BYTES)
        for doc in docs:
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        del writer, fresh
        retired = self.path.with_name(f".{self.path.name}.retired-{os.getpid()}")
        self.path.rename(retired)
        aside.rename(self.path)
        if (retired / VECTORS_DIR).exists():
            (retired / VECTORS_DIR).rename(self.path / VECTORS_DIR)
        shutil.rmtree(retired)
        log.warning("embedded index: %s was written by an older version of cinedex; rebuilt from its %d stored "
                    "events", self.path, len(docs))

    def searcher(self) -> tantivy.Searcher:
        return self._index.searcher()

    def reload(self) -> None:
        """Sees commits made through other handles now rather than after the reader's file-watch delay."""
        self._index.reload()

    def _event(self, doc: tantivy.Document) -> Event:
        return self.fields.model.model_validate_json(doc.get_first(EVENT_JSON_FIELD))

    # --- loading

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None = None,
                      progress: Progress | None = None, model: str = "") -> LoadReport:
        """Swaps the video's documents for `events` in one commit, so a reader sees the old set or the new one;
        then its vectors (row i belongs to the i-th event), if given, with the `model` that made them."""
        events = list(events)
        if vectors is not None and model:
            held = {m for video, m in self.vectors.models().items() if video != video_id and m}
            if held - {model}:
                raise EmbeddingModelMismatch(str(self.path), ", ".join(sorted(held)), model)
        docs = []
        for event in events:
            if event.video_id != video_id:
                raise ValueError(f"event {event.id} belongs to video {event.video_id!r}, not {video_id!r}")
            docs.append(to_document(event, self.fields))
            if progress:
                progress.advance(1)
        self._commit(video_id, docs)
        # A kNN hit whose document is not (or no longer) in tantivy is dropped, so this order is safe either way.
        self.vectors.replace_video(video_id, events, vectors, model)
        return LoadReport(index=str(self.path), indexed=len(docs))

    def embedding_model(self) -> str:
        held = set(self.vectors.models().values()) - {""}
        return next(iter(held)) if len(held) == 1 else ""

    def delete_video(self, video_id: str) -> int:
        count = self.count(video_id)
        self._commit(video_id, [])
        self.vectors.replace_video(video_id, [], None)
        return count

    # --- reading

    def events_by_id(self, ids: list[str]) -> dict[str, Event]:
        if not ids:
            return {}
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "id", i)) for i in ids])
        searcher = self.searcher()
        found = (self._event(searcher.doc(address)) for _, address in searcher.search(query, limit=len(ids)).hits)
        return {event.id: event for event in found}

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""
        query = tantivy.Query.term_query(self.schema, keyword_field("video_id", self.fields), video_id)
        searcher = self.searcher()
        limit = max(self.count(video_id), 1)
        events = [self._event(searcher.doc(address)) for _, address in searcher.search(query, limit=limit).hits]
        return sorted(events, key=lambda e: (e.start_s, e.end_s, e.id))

    def count(self, video_id: str | None = None, pipeline_version: str | None = None) -> int:
        """Events in the index, of one video and/or one pipeline version when given."""
        searcher = self.searcher()
        terms = [(name, value) for name, value in (("video_id", video_id), ("pipeline_version", pipeline_version))
                 if value is not None]
        if not terms:
            return searcher.num_docs
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, keyword_field(name, self.fields), value))
            for name, value in terms])
        return searcher.search(query, limit=1, count=True).count  # limit=0 panics in tantivy

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]:
        tantivy_query = self.build_query(query, filters)
        if tantivy_query is None or limit < 1:
            return []
        searcher = self.searcher()
        highlighter = _Highlighter(searcher, tantivy_query, self.schema, self.fields.highlight_order,
                                   query_bigrams(query))
        ranked = []
        for score, address in searcher.search(tantivy_query, limit=limit, count=False).hits:
            doc = searcher.doc(address)
            ranked.append((score, self._event(doc), highlighter.highlight(doc)))
        # tantivy breaks score ties by segment order, which changes with merges; break them by time instead.
        ranked.sort(key=lambda hit: (-hit[0], hit[1].video_id, hit[1].start_s))
        return [(event, highlight) for _, event, highlight in ranked]

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float) -> list[tuple[Event, str]]:
        nearest = [(i, score) for i, score in self.vectors.search(vector, filters, limit) if score >= min_similarity]
        events = self.events_by_id([event_id for event_id, _ in nearest])
        return [(events[event_id], "") for event_id, _ in nearest if event_id in events]

    # --- queries

    def build_query(self, text: str, filters: SearchFilters | None = None) -> tantivy.Query | None:
        """BM25 over the text fields and their CJK bigrams: each term scored by its best field, plus a bonus where
        the words (or bigrams) come as a phrase in a phrase field; narrowed by the filters."""
        terms, grams = query_terms(text), query_bigrams(text)
        if not terms and not grams:
            return None
        clauses = []
        boosts = self.fields.boosts
        # English terms in the fields themselves, CJK bigrams in their CJK twins: the same scoring for both.
        for named, sequence in ((lambda field: field, [t for _, t in terms]), (cjk_field, grams)):
            for term in dict.fromkeys(sequence):
                per_field = []
                for field in self.fields.text:
                    query = tantivy.Query.term_query(self.schema, named(field), term)
                    per_field.append(tantivy.Query.boost_query(query, boosts[field]) if boosts[field] != 1.0
                                     else query)
                clauses.append((tantivy.Occur.Should,
                                tantivy.Query.disjunction_max_query(per_field, FIELD_TIE_BREAKER)))
        phrases = []
        if len(terms) > 1:
            first = terms[0][0]
            phrases.append((lambda field: field, [(position - first, term) for position, term in terms]))
        if len(grams) > 1:
            phrases.append((cjk_field, list(enumerate(grams))))
        for named, words in phrases:
            for field in self.fields.phrase:
                phrase = tantivy.Query.phrase_query(self.schema, named(field), words, slop=PHRASE_SLOP)
                clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(phrase, PHRASE_BOOST)))
        query = tantivy.Query.boolean_query(clauses)
        narrowing = [self._filter(condition) for condition in (filters or SearchFilters()).conditions()]
        if not narrowing:
            return query
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, query),
                                            *((tantivy.Occur.Must, clause) for clause in narrowing)])

    def _filter(self, condition: Condition) -> tantivy.Query:
        """One filter as a tantivy query scored 0, so it changes which documents match, not their scores."""
        if condition.op == "==":
            clause = tantivy.Query.term_query(self.schema, keyword_field(condition.field, self.fields),
                                              condition.value)
        elif condition.op == ">":
            clause = tantivy.Query.range_query(self.schema, condition.field, tantivy.FieldType.Float,
                                               lower_bound=condition.value, include_lower=False)
        else:
            clause = tantivy.Query.range_query(self.schema, condition.field, tantivy.FieldType.Float,
                                               upper_bound=condition.value, include_upper=False)
        return tantivy.Query.const_score_query(clause, 0.0)

    # --- writing

    def _commit(self, video_id: str, docs: list[tantivy.Document]) -> None:
        """Deletes the video's documents and adds `docs` in one commit."""
        with self._write_lock:
            writer = self._acquire_writer()
            try:
                writer.delete_documents_by_term(keyword_field("video_id", self.fields), video_id)
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


class _Highlighter:
    """Snippets from the first field, in the fields' highlight order, where the query matched: its English terms
    (tantivy's snippets), else its CJK bigrams (marked here: tantivy only marks the terms of the field it reads)."""

    def __init__(self, searcher: tantivy.Searcher, query: tantivy.Query, schema: tantivy.Schema,
                 order: tuple[str, ...], grams: list[str] = ()) -> None:
        self._searcher, self._query, self._schema, self._order = searcher, query, schema, order
        self._grams = list(grams)
        self._generators: dict[str, tantivy.SnippetGenerator] = {}

    def highlight(self, doc: tantivy.Document) -> str:
        for field in self._order:
            snippet = self._generator(field).snippet_from_doc(doc)
            if snippet.highlighted():
                return snippet.to_html()
        for field in self._order if self._grams else ():
            for text in doc.to_dict().get(field, []):
                if marked := cjk.highlight(text, self._grams, HIGHLIGHT_MAX_CHARS):
                    return marked
        return ""

    def _generator(self, field: str) -> tantivy.SnippetGenerator:
        if field not in self._generators:
            generator = tantivy.SnippetGenerator.create(self._searcher, self._query, self._schema, field)
            generator.set_max_num_chars(HIGHLIGHT_MAX_CHARS)
            self._generators[field] = generator
        return self._generators[field]
