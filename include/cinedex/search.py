"""Full-text search over the embedded index: any user text in, time ranges ranked by BM25 out.

User text is never handed to tantivy's query parser (where `:`, `"`, `-`, `AND` are syntax); it is cut into
terms by the index's own analyzer and the query is built from those terms, so no input is a syntax error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import tantivy
from pydantic import BaseModel, Field

from cinedex.index import TEXT_ANALYZER, TEXT_FIELDS, EmbeddedIndex, from_document, keyword_field
from cinedex.model import Event
from cinedex.settings import Settings

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


class SearchHit(BaseModel):
    video_id: str
    event_id: str
    start_s: float
    end_s: float
    start_time: str = Field(description="Start as HH:MM:SS.")
    end_time: str = Field(description="End as HH:MM:SS.")
    score: float
    scene_type: str
    source: str
    speaker: str
    content: str
    event: str = Field(description="One-sentence summary of what happens.")
    shot_id: int | None
    thumbnail: str
    highlight: str = Field("", description="HTML snippet of the best matching field, matched terms in <b>.")


def query_terms(text: str) -> list[tuple[int, str]]:
    """(position, term) pairs as the index analyses text; lone surrogates, which Rust strings cannot hold, dropped."""
    clean = text.encode("utf-8", "ignore").decode("utf-8")
    return [(token.position, token.text) for token in TEXT_ANALYZER.pre_tokenize(clean).tokens][:MAX_QUERY_TERMS]


def build_query(schema: tantivy.Schema, text: str, video_id: str | None = None) -> tantivy.Query | None:
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
    if video_id is None:
        return query
    # Score 0 so the filter changes which documents match, not their scores.
    in_video = tantivy.Query.const_score_query(
        tantivy.Query.term_query(schema, keyword_field("video_id"), video_id), 0.0
    )
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, in_video)])


_EVENT_FIELDS_IN_HITS = set(SearchHit.model_fields) & set(Event.model_fields)


@lru_cache(maxsize=8)
def _open_index(path: Path) -> EmbeddedIndex:
    return EmbeddedIndex(path)


def search(query: str, settings: Settings, video_id: str | None = None, limit: int = 10) -> list[SearchHit]:
    if limit < 1 or not (settings.index_dir / "meta.json").is_file():
        return []
    index = _open_index(settings.index_dir)
    tantivy_query = build_query(index.schema, query, video_id)
    if tantivy_query is None:
        return []
    index.reload()
    searcher = index.searcher()
    highlighter = _Highlighter(searcher, tantivy_query, index.schema)
    hits = []
    for score, address in searcher.search(tantivy_query, limit=limit, count=False).hits:
        doc = searcher.doc(address)
        event = from_document(doc)
        hits.append(SearchHit(**event.model_dump(include=_EVENT_FIELDS_IN_HITS), event_id=event.id, score=score,
                              highlight=highlighter.highlight(doc)))
    # tantivy breaks score ties by segment order, which changes with merges; break them by time instead.
    return sorted(hits, key=lambda hit: (-hit.score, hit.video_id, hit.start_s))


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
