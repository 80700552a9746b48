"""Hybrid search over either backend: any user text in, time ranges out.

Two rankings are fused with reciprocal rank fusion: BM25 over the events' text, which finds the words of the
question, and kNN over the events' embeddings, which finds its meaning when the words differ. Both backends (the
embedded index and Elasticsearch) produce the two rankings with the same filters; the fusion is done here, once.

User text is never handed to tantivy's query parser (where `:`, `"`, `-`, `AND` are syntax); it is cut into
terms by the index's own analyzer and the query is built from those terms, so no input is a syntax error.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import tantivy
from pydantic import BaseModel, Field

from cinedex.index.embedded import TEXT_ANALYZER, TEXT_FIELDS, EmbeddedIndex, from_document, keyword_field
from cinedex.core.model import Event, SearchFilters
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

FIELD_BOOSTS = {"content": 2.0, "event": 2.0}
# A term matching several fields counts mostly for its best one, so long events are not favoured for repeating it.
FIELD_TIE_BREAKER = 0.1
PHRASE_BOOST = 2.0
PHRASE_FIELDS = ("content", "event")
PHRASE_SLOP = 1
# Bounds the query's cost when someone pastes a page of text.
MAX_QUERY_TERMS = 32
HIGHLIGHT_FIELDS = ("content", "event", *(name for name in TEXT_FIELDS if name not in ("content", "event")))
HIGHLIGHT_MAX_CHARS = 200
RRF_K = 60  # reciprocal rank fusion's constant, as in Elasticsearch and the paper (Cormack et al., 2009)
CANDIDATES = 50  # hits each ranking contributes to the fusion, at least


class SearchHit(BaseModel):
    video_id: str
    event_id: str
    start_s: float
    end_s: float
    start_time: str = Field(description="Start as HH:MM:SS.")
    end_time: str = Field(description="End as HH:MM:SS.")
    score: float = Field(description="Reciprocal rank fusion score: higher ranks in either ranking score higher.")
    scene_type: str
    source: str
    speaker: str
    content: str
    event: str = Field(description="One-sentence summary of what happens.")
    shot_id: int | None
    thumbnail: str
    characters: list[str] = Field(default_factory=list)
    highlight: str = Field("", description="HTML snippet of the best matching field, matched terms in <b>; "
                           "empty for hits found by meaning alone.")
    matched_by: list[str] = Field(default_factory=list, description="The rankings that found it: bm25, knn.")


def query_terms(text: str) -> list[tuple[int, str]]:
    """(position, term) pairs as the index analyses text; lone surrogates, which Rust strings cannot hold, dropped."""
    clean = text.encode("utf-8", "ignore").decode("utf-8")
    return [(token.position, token.text) for token in TEXT_ANALYZER.pre_tokenize(clean).tokens][:MAX_QUERY_TERMS]


def filter_clauses(schema: tantivy.Schema, filters: SearchFilters) -> list[tantivy.Query]:
    """The filters as tantivy queries, each scored 0 so they change which documents match, not their scores."""
    clauses = []
    for name, value in (("video_id", filters.video_id), ("scene_type", filters.scene_type),
                        ("speaker", filters.speaker), ("characters", filters.character)):
        if value is not None:
            clauses.append(tantivy.Query.term_query(schema, keyword_field(name), value))
    if filters.start_s is not None:
        clauses.append(tantivy.Query.range_query(schema, "end_s", tantivy.FieldType.Float, lower_bound=filters.start_s,
                                                 include_lower=False))
    if filters.end_s is not None:
        clauses.append(tantivy.Query.range_query(schema, "start_s", tantivy.FieldType.Float,
                                                 upper_bound=filters.end_s, include_upper=False))
    return [tantivy.Query.const_score_query(clause, 0.0) for clause in clauses]


def build_query(schema: tantivy.Schema, text: str, filters: SearchFilters | None = None) -> tantivy.Query | None:
    """BM25 over the text fields: each term scored by its best field, plus a bonus where the words come as a phrase."""
    terms = query_terms(text)
    if not terms:
        return None
    clauses = []
    for term in dict.fromkeys(term for _, term in terms):
        per_field = []
        for field in TEXT_FIELDS:
            query = tantivy.Query.term_query(schema, field, term)
            boost = FIELD_BOOSTS.get(field, 1.0)
            per_field.append(tantivy.Query.boost_query(query, boost) if boost != 1.0 else query)
        clauses.append((tantivy.Occur.Should, tantivy.Query.disjunction_max_query(per_field, FIELD_TIE_BREAKER)))
    if len(terms) > 1:
        first = terms[0][0]
        words = [(position - first, term) for position, term in terms]
        for field in PHRASE_FIELDS:
            phrase = tantivy.Query.phrase_query(schema, field, words, slop=PHRASE_SLOP)
            clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(phrase, PHRASE_BOOST)))
    query = tantivy.Query.boolean_query(clauses)
    narrowing = filter_clauses(schema, filters or SearchFilters())
    if not narrowing:
        return query
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *((tantivy.Occur.Must, c) for c in narrowing)])


class SearchBackend(Protocol):
    """Where events are searched: both rankings, best first, as (event, highlight) pairs."""

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]: ...

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float) -> list[tuple[Event, str]]: ...


class EmbeddedSearch:
    """The two rankings over the embedded index: tantivy BM25, and kNN over the vectors stored beside it."""

    def __init__(self, index: EmbeddedIndex) -> None:
        self.index = index

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]:
        tantivy_query = build_query(self.index.schema, query, filters)
        if tantivy_query is None:
            return []
        searcher = self.index.searcher()
        highlighter = _Highlighter(searcher, tantivy_query, self.index.schema)
        ranked = []
        for score, address in searcher.search(tantivy_query, limit=limit, count=False).hits:
            doc = searcher.doc(address)
            ranked.append((score, from_document(doc), highlighter.highlight(doc)))
        # tantivy breaks score ties by segment order, which changes with merges; break them by time instead.
        ranked.sort(key=lambda hit: (-hit[0], hit[1].video_id, hit[1].start_s))
        return [(event, highlight) for _, event, highlight in ranked]

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float) -> list[tuple[Event, str]]:
        nearest = [(i, score) for i, score in self.index.vectors.search(vector, filters, limit)
                   if score >= min_similarity]
        events = self.index.events_by_id([event_id for event_id, _ in nearest])
        return [(events[event_id], "") for event_id, _ in nearest if event_id in events]


def fuse(rankings: dict[str, list[tuple[Event, str]]], limit: int) -> list[SearchHit]:
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
    hits = []
    for event_id in order:
        event, highlight, names = found[event_id]
        hits.append(SearchHit(**event.model_dump(include=_EVENT_FIELDS_IN_HITS), event_id=event.id,
                              score=scores[event_id], highlight=highlight, matched_by=names))
    return hits


_EVENT_FIELDS_IN_HITS = set(SearchHit.model_fields) & set(Event.model_fields)


@lru_cache(maxsize=8)
def _open_index(path: Path) -> EmbeddedIndex:
    return EmbeddedIndex(path)


def backend_for(settings: Settings, name: str | None = None) -> SearchBackend | None:
    """The backend `name` (default: CINEDEX_INDEX_BACKEND), or None when the embedded index does not exist yet."""
    name = name or settings.index_backend
    if name == "elasticsearch":
        from cinedex.index.elastic import search_backend

        return search_backend(settings)
    if name != "embedded":
        raise ValueError(f"unknown index backend {name!r}: use embedded or elasticsearch")
    if not (settings.index_dir / "meta.json").is_file():
        return None
    index = _open_index(settings.index_dir)
    index.reload()
    return EmbeddedSearch(index)


def search(query: str, settings: Settings, filters: SearchFilters | None = None, limit: int = 10,
           backend: str | None = None, mode: str = "hybrid") -> list[SearchHit]:
    """The best `limit` time ranges for `query`: BM25 and kNN fused (mode "hybrid"), or one of them alone
    ("bm25", "knn")."""
    filters = filters or SearchFilters()
    if limit < 1 or not query.strip():
        return []
    searcher = backend_for(settings, backend)
    if searcher is None:
        return []
    depth = max(CANDIDATES, limit)
    # One ranking after the other: run side by side, BM25 and kNN competed for the cores with the query
    # encoder's threads, and the slowest queries got slower (p95 at a million events 51 -> 41 ms in this order).
    rankings = {}
    if mode in ("hybrid", "bm25"):
        rankings["bm25"] = searcher.bm25(query, filters, depth)
    if mode in ("hybrid", "knn"):
        vector = query_vector(query, settings.embedding_model)
        rankings["knn"] = searcher.knn(vector, filters, depth, settings.knn_min_similarity)
    return fuse(rankings, limit)


@lru_cache(maxsize=256)
def _cached_query_vector(query: str, model: str) -> bytes:
    from cinedex.pipeline.embeddings import encode

    clean = query.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates cannot reach the Rust tokenizer
    return encode([clean], model)[0].tobytes()


def query_vector(query: str, model: str) -> np.ndarray:
    return np.frombuffer(_cached_query_vector(query, model), dtype=np.float32)


class _Highlighter:
    """Snippets from the first field (content, then event, then the rest) where the query matched."""

    def __init__(self, searcher: tantivy.Searcher, query: tantivy.Query, schema: tantivy.Schema) -> None:
        self._searcher, self._query, self._schema = searcher, query, schema
        self._generators: dict[str, tantivy.SnippetGenerator] = {}

    def highlight(self, doc: tantivy.Document) -> str:
        for field in HIGHLIGHT_FIELDS:
            snippet = self._generator(field).snippet_from_doc(doc)
            if snippet.highlighted():
                return snippet.to_html()
        return ""

    def _generator(self, field: str) -> tantivy.SnippetGenerator:
        if field not in self._generators:
            generator = tantivy.SnippetGenerator.create(self._searcher, self._query, self._schema, field)
            generator.set_max_num_chars(HIGHLIGHT_MAX_CHARS)
            self._generators[field] = generator
        return self._generators[field]
