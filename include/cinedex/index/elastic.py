"""The Elasticsearch backend of the search index: the same events as the embedded index, served by a cluster.

- The mapping is derived from `Event`: free text analysed in English (plus a CJK subfield), identifiers and
  enumerations as keywords, names searchable as text and filterable whole, times as numbers, and the event's vector
  as a cosine `dense_vector`.
- Each pipeline version writes its own index, `<alias>-v<version>`, and searches go through the alias. The first
  load of a new version copies the other videos' documents over from the index the alias serves, loads its video,
  then moves the alias in one `update_aliases` call and drops the old index: searchers go from one complete index
  to the other.
- Loads run in different processes and machines, so they coordinate through a lock held in Elasticsearch itself
  (`<alias>-locks`): a load that moves the alias (a new version's first load, or the alias's very first) holds it
  alone, every other load shares it with the loads of other videos. See `ElasticIndex._locked` for why.
- A reload writes the video's documents first (ids are deterministic, so an unchanged event is overwritten in place)
  and only then deletes its documents outside the new set: no search finds the video's events missing or doubled.
- The index refreshes only when a load ends (`refresh_interval: -1`), so a searcher sees a video's old events or its
  new ones, not a load half done; a concurrent load of another video refreshing meanwhile can show the union of
  old and new for a moment, never fewer.
- The client retries timeouts and 502/503/504, `streaming_bulk` backs off on 429, and every write step, being
  idempotent, is retried with back-off while the server stays unreachable, up to `LoadOptions.outage_timeout_s`.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import numpy as np
from elasticsearch import (
    ApiError,
    BadRequestError,
    ConflictError,
    ConnectionError as TransportConnectionError,
    ConnectionTimeout,
    Elasticsearch,
    NotFoundError,
    helpers,
)

from cinedex import PIPELINE_VERSION
from cinedex.core.model import EVENT_FIELDS, Condition, Event, EventFields, SearchFilters
from cinedex.core.progress import Progress
from cinedex.index import cjk
# The embedded backend's weighting, so both backends rank alike.
from cinedex.index.embedded import FIELD_TIE_BREAKER, HIGHLIGHT_MAX_CHARS, PHRASE_BOOST, PHRASE_SLOP
from cinedex.index.protocol import EmbeddingModelMismatch, FailedDocument, LoadReport

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "elasticsearch_default"
DEFAULT_ALIAS = "cinedex-events"
DEFAULT_DIMS = 384
DEFAULT_PORT = 9200

EMBEDDING_FIELD = "embedding"
CJK_SUBFIELD = "cjk"
CJK_ANALYZER = "cjk_simplified"
EXACT_SUBFIELD = "keyword"

# Bounds the query's clauses (fields x terms) when someone pastes a page of text.
MAX_QUERY_CHARS = 200
MAX_KNN_CANDIDATES = 10_000  # Elasticsearch's own cap on num_candidates

# Statuses a server answers while overloaded (429) or while a node behind a proxy restarts (502-504).
TRANSIENT_STATUSES = (429, 502, 503, 504)
# 429 is left to streaming_bulk, which backs off; the transport would retry it at once.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_on_status": (502, 503, 504),
    "retry_on_timeout": True,
    "max_retries": 3,
    "retry_backoff_base": 0.5,
    "retry_backoff_cap": 4.0,
    "request_timeout": 30.0,
}

# The lock document a load that moves the alias holds alone; sharing loads hold one `load-<owner>` document each.
MIGRATION_LOCK_ID = "migration"
LOCKS_MAPPING: dict[str, Any] = {
    "settings": {"index": {"number_of_shards": 1}},
    "mappings": {"dynamic": False, "properties": {"owner": {"type": "keyword"}, "kind": {"type": "keyword"},
                                                  "expires_at": {"type": "double"}}},
}
# A waiting load polls the lock between these pauses (doubling, jittered).
LOCK_POLL_MIN_S = 0.05
LOCK_POLL_MAX_S = 2.0

T = TypeVar("T")


class ElasticsearchNotConfigured(LookupError):
    """No usable Airflow connection to Elasticsearch."""


class ElasticsearchUnavailable(ConnectionError):
    """The server could not be reached (or kept refusing work) after every retry."""


class AliasLocked(TimeoutError):
    """The alias's lock stayed held by other loads longer than `LoadOptions.lock_wait_s`."""


class LockLost(RuntimeError):
    """The load's hold on the alias's lock expired (it could not renew it in time) or was taken over: the load stops
    before writing more, or moving the alias, and fails to be retried."""


class _DocumentsRefused(Exception):
    """Some documents were still refused with a transient status after streaming_bulk's own retries."""


# --- mapping -------------------------------------------------------------------------------------------------


def _scalar_type(annotation: Any) -> type | None:
    """str, float or int behind a field's annotation (Literals of strings, `X | None` and `list[X]` unwrapped)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return str if all(isinstance(arg, str) for arg in args) else None
    if origin in (list, types.UnionType, typing.Union):
        inner = [arg for arg in args if arg is not type(None)]
        return _scalar_type(inner[0]) if len(inner) == 1 else None
    return annotation if annotation in (str, float, int) else None


def _field_mapping(name: str, annotation: Any, fields: EventFields, folded: bool = True) -> dict:
    """Free text in English (plus a CJK subfield: folded to simplified characters, or Elasticsearch's plain `cjk`
    analyzer for an index made before the folding), a name also filtered whole through its `.keyword` subfield,
    keywords and media times by their type, stored-only fields unindexed."""
    if name in fields.text:
        cjk_subfield = {"type": "text", "analyzer": f"{CJK_ANALYZER}_indexed", "search_analyzer": CJK_ANALYZER} \
            if folded else {"type": "text", "analyzer": "cjk"}
        subfields: dict[str, dict] = {CJK_SUBFIELD: cjk_subfield}
        if name in fields.names:
            subfields[EXACT_SUBFIELD] = {"type": "keyword"}
        return {"type": "text", "analyzer": "english", "fields": subfields}
    scalar = _scalar_type(annotation)
    kinds = {str: "keyword", float: "float", int: "integer"}
    if scalar not in kinds:
        raise TypeError(f"{fields.model.__name__}.{name} is {annotation!r}, a type the Elasticsearch mapping does "
                        "not know")
    mapping = {"type": kinds[scalar]}
    if name in fields.stored_only:
        mapping["index"] = False
    return mapping


def event_mapping(dims: int = DEFAULT_DIMS, fields: EventFields = EVENT_FIELDS, folded: bool = True) -> dict:
    """Settings and mappings of an event index, derived from the event model's field roles, plus the `dims`-wide
    embedding; `folded`: the CJK subfields fold traditional characters into simplified ones."""
    if EMBEDDING_FIELD in fields.roles:
        raise RuntimeError(f"{fields.model.__name__} has a field {EMBEDDING_FIELD!r}, which the mapping keeps for "
                           "the embedding")
    properties = {name: _field_mapping(name, field.annotation, fields, folded)
                  for name, field in fields.model.model_fields.items()}
    properties[EMBEDDING_FIELD] = {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}
    return {
        "settings": {"index": {"refresh_interval": "-1"}, "analysis": cjk_analysis()},
        # Not strict: documents carried over from an older version may hold fields this Event no longer has.
        "mappings": {"dynamic": False, "properties": properties},
    }


def cjk_analysis() -> dict:
    """The CJK subfields' analyzers: Elasticsearch's `cjk` analyzer (standard tokenizer, width folding, lower case,
    bigrams, its stop words) after a char filter that writes traditional characters as simplified ones, as the
    embedded index's `cjk.bigrams` does. Indexed with the single characters too (`cjk.characters`), searched by
    bigrams alone: a query of one character finds every line holding it, a longer one its bigrams."""
    def analyzer(bigram_filter: str) -> dict:
        return {"type": "custom", "tokenizer": "standard", "char_filter": ["traditional_to_simplified"],
                "filter": ["cjk_width", "lowercase", bigram_filter, "cjk_stop"]}

    return {
        "char_filter": {"traditional_to_simplified": {"type": "mapping", "mappings": cjk.folding_rules()}},
        "filter": {"cjk_stop": {"type": "stop", "stopwords": "_cjk_"},
                   "cjk_bigram_and_unigrams": {"type": "cjk_bigram", "output_unigrams": True}},
        "analyzer": {CJK_ANALYZER: analyzer("cjk_bigram"),
                     f"{CJK_ANALYZER}_indexed": analyzer("cjk_bigram_and_unigrams")},
    }


def versioned_index(alias: str, pipeline_version: str) -> str:
    return f"{alias}-v{pipeline_version}"


def filter_clause(condition: Condition, fields: EventFields = EVENT_FIELDS) -> dict:
    """One filter as an Elasticsearch filter clause: an exact term (a name through its keyword subfield), or a
    range."""
    if condition.op == "==":
        field = f"{condition.field}.{EXACT_SUBFIELD}" if condition.field in fields.names else condition.field
        return {"term": {field: condition.value}}
    return {"range": {condition.field: {"gt" if condition.op == ">" else "lt": condition.value}}}


def filter_clauses(filters: SearchFilters, fields: EventFields = EVENT_FIELDS) -> list[dict]:
    return [filter_clause(condition, fields) for condition in filters.conditions()]


def _boosted(names: tuple[str, ...], fields: EventFields) -> list[str]:
    """Each field and its CJK subfield, with the field's boost."""
    return [f"{field}^{fields.boosts[name]}" for name in names for field in (name, f"{name}.{CJK_SUBFIELD}")]


def highlight_request(fields: EventFields) -> dict:
    return {
        "pre_tags": ["<b>"],
        "post_tags": ["</b>"],
        "encoder": "html",  # the snippet is HTML: the event's own text is escaped
        "number_of_fragments": 1,
        "fragment_size": HIGHLIGHT_MAX_CHARS,
        "fields": {field: {} for name in fields.highlight_order for field in (name, f"{name}.{CJK_SUBFIELD}")},
    }


def _snippet(highlight: dict[str, list[str]], fields: EventFields) -> str:
    """The fragment of the first highlighted field, in highlight order."""
    for name in fields.highlight_order:
        for field in (name, f"{name}.{CJK_SUBFIELD}"):
            if highlight.get(field):
                return highlight[field][0]
    return ""


# --- connection ----------------------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    """Extras from a URI's query string arrive as text."""
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def connection_url(connection: Any) -> str:
    """scheme://host:port of an Airflow connection. The scheme comes from a URL in `host`, an http/https
    conn_type (`AIRFLOW_CONN_X=https://host:9200`), extra `use_ssl`, or a `schema` of http/https; else http."""
    host = connection.host or ""
    parsed = urlsplit(host if "://" in host else f"//{host}")
    if not parsed.hostname:
        raise ElasticsearchNotConfigured(f"Airflow connection {connection.conn_id!r} has no host")
    if parsed.scheme:
        scheme = parsed.scheme
    elif connection.conn_type in ("http", "https"):
        scheme = connection.conn_type
    elif _truthy(connection.extra_dejson.get("use_ssl", False)):
        scheme = "https"
    elif connection.schema in ("http", "https"):
        scheme = connection.schema
    else:
        scheme = "http"
    return f"{scheme}://{parsed.hostname}:{parsed.port or connection.port or DEFAULT_PORT}"


def client_options(connection: Any) -> dict[str, Any]:
    """Elasticsearch client arguments for a connection: retries, credentials, and TLS extras."""
    options = dict(CLIENT_OPTIONS)
    if connection.login:
        options["basic_auth"] = (connection.login, connection.password or "")
    extra = connection.extra_dejson
    if extra.get("api_key"):
        options["api_key"] = extra["api_key"]
    if extra.get("ca_certs"):
        options["ca_certs"] = extra["ca_certs"]
    if "verify_certs" in extra:
        options["verify_certs"] = _truthy(extra["verify_certs"])
    return options


def elasticsearch_client(conn_id: str = DEFAULT_CONN_ID) -> Elasticsearch:
    """A client for the Airflow connection `conn_id` (conn_type elasticsearch), made by the provider's hook.

    Outside Airflow the connection comes from AIRFLOW_CONN_<CONN_ID>: a URI (`elasticsearch://user:pass@host:9200`,
    `http://host:9200`) or JSON (`{"conn_type": "elasticsearch", "host": "es", "port": 9200, "extra": {"use_ssl":
    true}}`).
    """
    # Airflow's imports take seconds: only callers that ask for a connection pay for them.
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
    from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ElasticsearchNotConfigured(
            f"no Airflow connection {conn_id!r}: add it in Airflow, or set AIRFLOW_CONN_{conn_id.upper()} to a URI "
            f"such as elasticsearch://user:password@host:9200 (http) or https://host:9200, or to JSON "
            f'{{"conn_type": "elasticsearch", "host": ..., "port": ..., "extra": {{"use_ssl": true}}}}'
        ) from exc
    hook = ElasticsearchPythonHook(hosts=[connection_url(connection)], es_conn_args=client_options(connection))
    return hook.get_conn


# --- the index -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    """How a load sends its documents, and how long it waits out a server that is down or overloaded."""

    chunk_size: int = 500
    max_chunk_bytes: int = 10 * 1024 * 1024
    max_retries: int = 5  # per bulk chunk, on 429 (and 5xx) answers
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    outage_timeout_s: float = 60.0
    # The alias's lock: a holder renews it every quarter of its time to live, so a killed load blocks the others
    # for at most that long; it must exceed the clock skew between loading machines. A waiting load gives up after
    # lock_wait_s.
    lock_ttl_s: float = 120.0
    lock_wait_s: float = 1800.0


def _error_reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"
    return str(error)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code in TRANSIENT_STATUSES
    return isinstance(exc, (TransportConnectionError, ConnectionTimeout, _DocumentsRefused))


def _guarded(actions: Iterable[dict], lease: _Lease) -> Iterator[dict]:
    """The actions, each sent only while the load still holds its lock."""
    for action in actions:
        lease.ensure()
        yield action


def _version_key(version: str) -> tuple[int, ...]:
    """Numeric parts, so v10 counts as newer than v9."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _lock_owner() -> str:
    """Unique to one hold of the lock, and says where the holder runs."""
    return f"{socket.gethostname()}/{os.getpid()}/{threading.get_ident()}/{os.urandom(4).hex()}"


class _Lease:
    """One lock document this load holds in the alias's locks index: renewed by a daemon thread every quarter of
    its time to live (each write conditional on the last one, so a lease taken over is never renewed), deleted on
    release. `ensure` raises once the lease may have expired, so that a holder that lost it stops writing."""

    def __init__(self, index: ElasticIndex, doc_id: str, kind: str, owner: str, purpose: str, written: dict,
                 written_at: float) -> None:
        self.index = index
        self.client = index.client
        self.doc_id = doc_id
        self.kind = kind
        self.owner = owner
        self.purpose = purpose
        self.ttl_s = index.options.lock_ttl_s
        self._seq = (written["_seq_no"], written["_primary_term"])
        self._renewed_at = written_at  # monotonic time the last successful write was sent
        self._lost: str | None = None
        self._released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_released, daemon=True,
                                        name=f"lock-{index.alias}-{doc_id}")
        self._thread.start()

    def ensure(self) -> None:
        if self._lost:
            raise LockLost(f"lock {self.doc_id!r} of alias {self.index.alias!r} lost: {self._lost}")
        # A quarter of the time to live short of expiry: the others judge expiry by their own clocks.
        if time.monotonic() - self._renewed_at > 0.75 * self.ttl_s:
            raise LockLost(f"lock {self.doc_id!r} of alias {self.index.alias!r} not renewed for "
                           f"{time.monotonic() - self._renewed_at:.0f}s, near its {self.ttl_s:.0f}s time to live")

    def _still_mine(self) -> bool:
        """After a conditional write was refused: the document is still ours (our own retried request changed
        it), or taken over."""
        try:
            current = self.client.get(index=self.index.locks_index, id=self.doc_id)
        except NotFoundError:
            return False
        if current["_source"].get("owner") != self.owner:
            return False
        self._seq = (current["_seq_no"], current["_primary_term"])
        return True

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            sent_at = time.monotonic()
            try:
                written = self.client.index(index=self.index.locks_index, id=self.doc_id,
                                            document=self.index._lock_body(self.kind, self.owner, self.purpose),
                                            if_seq_no=self._seq[0], if_primary_term=self._seq[1])
            except (ConflictError, NotFoundError) as exc:
                if self._stop.is_set():
                    return
                try:
                    if self._still_mine():
                        continue
                except Exception as check_exc:  # noqa: BLE001 - retried at the next renewal
                    log.warning("lock %s of %s: cannot check the lock: %s", self.doc_id, self.index.alias, check_exc)
                    continue
                self._lost = f"taken over ({exc})"
                log.error("lock %s of %s taken over by another load", self.doc_id, self.index.alias)
                return
            except Exception as exc:  # noqa: BLE001 - an outage: retried at the next renewal, `ensure` judges
                log.warning("lock %s of %s not renewed: %s", self.doc_id, self.index.alias, exc)
                continue
            self._seq = (written["_seq_no"], written["_primary_term"])
            self._renewed_at = sent_at

    def release(self) -> None:
        """Deletes the lock document if it is still ours. Never raises: a lock left behind expires."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        self._thread.join(timeout=5)  # a renewal still in flight afterwards finds the document gone, and fails

        def delete() -> None:
            for _ in range(5):
                try:
                    self.client.delete(index=self.index.locks_index, id=self.doc_id,
                                       if_seq_no=self._seq[0], if_primary_term=self._seq[1])
                    return
                except NotFoundError:
                    return
                except ConflictError:
                    if not self._still_mine():
                        return

        try:
            self.index._retrying(delete)
        except Exception as exc:  # noqa: BLE001 - must not hide the load's own outcome
            log.warning("lock %s of %s not released (it expires within %.0fs): %s", self.doc_id, self.index.alias,
                        self.ttl_s, exc)


class ElasticIndex:
    """The Elasticsearch backend: events loaded a video at a time, searched by BM25 and kNN through `alias`."""

    name = "elasticsearch"

    def __init__(self, client: Elasticsearch, alias: str = DEFAULT_ALIAS, dims: int = DEFAULT_DIMS,
                 pipeline_version: str = PIPELINE_VERSION, options: LoadOptions = LoadOptions(),
                 fields: EventFields = EVENT_FIELDS) -> None:
        self.client = client
        self.fields = fields
        self.alias = alias
        self.dims = dims
        self.pipeline_version = pipeline_version
        self.options = options
        self.index = versioned_index(alias, pipeline_version)
        self.locks_index = f"{alias}-locks"
        self._locks_index_made = False

    @property
    def url(self) -> str:
        return ", ".join(node.base_url for node in self.client.transport.node_pool.all())

    # --- loading

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None = None,
                      progress: Progress | None = None, model: str = "") -> LoadReport:
        """Makes the index hold exactly `events` for the video; `vectors` row i is events[i]'s embedding, made by
        the embedding `model` (kept in the index mapping's `_meta`). The index is made on the first load, as wide
        as its vectors."""
        if vectors is not None and vectors.ndim == 2 and not self._retrying(
                lambda: self.client.indices.exists(index=self.index)):
            self.dims = int(vectors.shape[1])
        for event in events:
            if event.video_id != video_id:
                raise ValueError(f"event {event.id} belongs to video {event.video_id!r}, not {video_id!r}")
        if vectors is not None and vectors.shape != (len(events), self.dims):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(events)} events of {self.dims} dimensions")
        serving = self._retrying(self._serving_indices)
        # Alone when this load moves the alias (the alias serves anything but this index), else shared.
        exclusive = serving != [self.index]
        while True:
            with self._locked(exclusive, f"load {video_id} into {self.index}") as lease:
                serving = self._retrying(self._serving_indices)  # what it is now that the lock is held
                if not exclusive and serving != [self.index]:
                    exclusive = True  # the alias changed meanwhile: this load now moves it, so it goes alone
                    continue
                previous = self._previous_versions(serving)
                if self.index not in serving:
                    # Alone, and before the alias serves it: what the index holds is left by loads that failed
                    # before moving the alias (a video's new events beside the old ones this load carries over).
                    self._retrying(self._clear_unserved_index)
                self._retrying(self._create_index)
                if vectors is not None and model:
                    self._retrying(lambda: self._claim_model(model, video_id, [self.index, *previous]))
                carried_over = sum(self._retrying(lambda old=old: self._carry_over(old, video_id, lease))
                                   for old in previous)
                indexed, failed = self._load_documents(self.bulk_actions(events, vectors), lease, progress)
                keep = [event.id for event in events]
                lease.ensure()
                stale_deleted = self._retrying(lambda: self._delete_stale(video_id, keep))
                self._retrying(lambda: self.client.indices.refresh(index=self.index))
                if previous or self.index not in serving:
                    lease.ensure()
                    self._retrying(lambda: self._move_alias(previous))
                break
        report = LoadReport(index=self.index, indexed=indexed, failed=failed, stale_deleted=stale_deleted,
                            carried_over=carried_over)
        for item in failed:
            log.error("load: %s of %s refused (%d): %s", item.id, video_id, item.status, item.reason)
        log.info("load: %s -> %s: %d indexed, %d failed, %d stale deleted, %d carried over", video_id, self.index,
                 indexed, len(failed), stale_deleted, carried_over)
        return report

    def bulk_actions(self, events: list[Event], vectors: np.ndarray | None) -> list[dict]:
        """One index action per event; `_id` is the event's deterministic id, so a reload overwrites in place."""
        actions = []
        for row, event in enumerate(events):
            source = event.model_dump(mode="json")
            if vectors is not None:
                source[EMBEDDING_FIELD] = vectors[row].astype(np.float32).tolist()
            actions.append({"_index": self.index, "_id": event.id, "_source": source})
        return actions

    def delete_video(self, video_id: str) -> int:
        """Deletes the video's events from the index searches see; returns how many there were."""
        if not self._retrying(self._serving_indices):
            return 0
        # Shared, so no migration copies the video's events over meanwhile and brings them back.
        with self._locked(False, f"delete {video_id} from {self.alias}"):
            response = self._retrying(lambda: self.client.delete_by_query(
                index=self.alias, query={"term": {"video_id": video_id}}, refresh=True))
        return response["deleted"]

    # --- reading

    def count(self, video_id: str | None = None, pipeline_version: str | None = None) -> int:
        """Events searches see, of one video and/or one pipeline version when given."""
        terms = [{"term": {name: value}} for name, value in (("video_id", video_id),
                                                             ("pipeline_version", pipeline_version))
                 if value is not None]
        query = {"bool": {"filter": terms}} if terms else None
        response = self._retrying(
            lambda: self.client.count(index=self.alias, query=query, ignore_unavailable=True), patience_s=0)
        return response["count"]

    def video_events(self, video_id: str) -> list[Event]:
        """Every event of one video, in time order."""
        def read() -> list[Event]:
            hits = helpers.scan(self.client, index=self.alias, query={"query": {"term": {"video_id": video_id}}},
                                source_excludes=[EMBEDDING_FIELD], ignore_unavailable=True)
            return [self.fields.model.model_validate(hit["_source"]) for hit in hits]

        return sorted(self._retrying(read, patience_s=0), key=lambda e: (e.start_s, e.end_s, e.id))

    def bm25(self, query: str, filters: SearchFilters, limit: int) -> list[tuple[Event, str]]:
        """Events matching `query` (plain text, never query syntax), best first, with an HTML highlight each."""
        # Lone surrogates cannot be sent as JSON text; they carry no word anyway.
        text = query.encode("utf-8", "ignore").decode("utf-8").strip()[:MAX_QUERY_CHARS]
        if not text or limit < 1:
            return []
        bool_query = {
            "must": [{"multi_match": {"query": text, "type": "best_fields", "tie_breaker": FIELD_TIE_BREAKER,
                                      "fields": _boosted(self.fields.text, self.fields)}}],
            "should": [{"multi_match": {"query": text, "type": "phrase", "slop": PHRASE_SLOP,
                                        "fields": _boosted(self.fields.phrase, self.fields), "boost": PHRASE_BOOST}}],
            "filter": filter_clauses(filters, self.fields),
        }
        hits = self._search(query={"bool": bool_query}, highlight=highlight_request(self.fields), size=limit)
        return [(self.fields.model.model_validate(hit["_source"]), _snippet(hit.get("highlight", {}), self.fields))
                for hit in hits]

    def knn(self, vector: np.ndarray, filters: SearchFilters, limit: int,
            min_similarity: float = -1.0) -> list[tuple[Event, str]]:
        """The `limit` events nearest `vector` by cosine, at least `min_similarity` similar, passing the filters
        (applied during the search)."""
        if limit < 1:
            return []
        query_vector = np.asarray(vector, dtype=np.float32).tolist()
        knn: dict[str, Any] = {"field": EMBEDDING_FIELD, "query_vector": query_vector, "k": limit,
                               "num_candidates": min(MAX_KNN_CANDIDATES, max(100, 10 * limit))}
        if min_similarity > -1.0:
            knn["similarity"] = min_similarity  # for cosine vectors, Elasticsearch compares the cosine itself
        if clauses := filter_clauses(filters, self.fields):
            knn["filter"] = clauses
        return [(self.fields.model.model_validate(hit["_source"]), "") for hit in self._search(knn=knn, size=limit)]

    # --- steps

    def _search(self, **body: Any) -> list[dict]:
        response = self._retrying(lambda: self.client.search(
            index=self.alias, ignore_unavailable=True, source_excludes=[EMBEDDING_FIELD], **body), patience_s=0)
        return response["hits"]["hits"]

    def _serving_indices(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []

    def _previous_versions(self, serving: list[str]) -> list[str]:
        """The older versions' indices the alias serves; refuses to replace a newer version's or a foreign one."""
        prefix = f"{self.alias}-v"
        previous = [name for name in serving if name != self.index]
        for name in previous:
            if not name.startswith(prefix) or _version_key(name[len(prefix):]) > _version_key(self.pipeline_version):
                raise RuntimeError(f"alias {self.alias!r} serves {name!r}, not an older version of {self.index!r}: "
                                   "refusing to replace it")
        return previous

    def _create_index(self) -> None:
        if self.client.indices.exists(index=self.index):
            # The fields the event model gained since this version's index was made join its mapping (the mapping
            # is not dynamic: unmapped, they would be stored but never searched or filtered). Fields it has are left
            # as they are: a changed type needs a new pipeline version, and documents it refuses are reported.
            mapped = self.client.indices.get_mapping(index=self.index)[self.index]["mappings"].get("properties", {})
            analysis = self.client.indices.get_settings(index=self.index)[self.index]["settings"]["index"].get(
                "analysis", {})
            # An index made before the folding analyzers has Elasticsearch's own `cjk` for its new fields too.
            folded = CJK_ANALYZER in analysis.get("analyzer", {})
            derived = event_mapping(self.dims, self.fields, folded)["mappings"]["properties"]
            missing = {name: spec for name, spec in derived.items() if name not in mapped}
            if missing:
                log.info("load: adding %s to the mapping of %s", ", ".join(sorted(missing)), self.index)
                self.client.indices.put_mapping(index=self.index, properties=missing)
            return
        try:
            self.client.indices.create(index=self.index, **event_mapping(self.dims, self.fields))
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":  # else a concurrent load made it first
                raise

    def _claim_model(self, model: str, video_id: str, indices: list[str]) -> None:
        """Refuses vectors of `model` where an index holds other videos' vectors of another model; else records
        `model` as this index's."""
        for name in indices:
            held = self.client.indices.get_mapping(index=name)[name]["mappings"].get("_meta", {}).get(
                "embedding_model", "")
            others = {"bool": {"must_not": [{"term": {"video_id": video_id}}]}}
            if held and held != model and self.client.count(index=name, query=others)["count"]:
                raise EmbeddingModelMismatch(name, held, model)
        self.client.indices.put_mapping(index=self.index, meta={"embedding_model": model})

    def embedding_model(self) -> str:
        try:
            mappings = self._retrying(lambda: self.client.indices.get_mapping(index=self.alias).body)
        except NotFoundError:
            return ""
        held = {m.get("mappings", {}).get("_meta", {}).get("embedding_model", "") for m in mappings.values()} - {""}
        return next(iter(held)) if len(held) == 1 else ""

    def _clear_unserved_index(self) -> int:
        """Empties this version's index, which the alias does not serve yet (only under the exclusive lock)."""
        try:
            # Documents are found once refreshed; the alias does not serve the index, so no searcher sees it.
            self.client.indices.refresh(index=self.index)
        except NotFoundError:
            return 0
        deleted = self.client.delete_by_query(index=self.index, query={"match_all": {}},
                                              conflicts="proceed")["deleted"]
        if deleted:
            log.warning("load: %d documents left in %s by loads that did not finish deleted", deleted, self.index)
        return deleted

    def _carry_over(self, old_index: str, video_id: str, lease: _Lease) -> int:
        """Copies the other videos' documents from `old_index`; a document the new mapping refuses stops the load
        before the alias moves."""
        # scan + bulk rather than helpers.reindex, which first asks the data-stream API (absent from noida-db).
        hits = helpers.scan(self.client, index=old_index,
                            query={"query": {"bool": {"must_not": [{"term": {"video_id": video_id}}]}}})
        actions = ({"_index": self.index, "_id": hit["_id"], "_source": hit["_source"]} for hit in hits)
        copied, _ = helpers.bulk(self.client, _guarded(actions, lease), **self._bulk_options())
        return copied

    def _bulk_options(self) -> dict[str, Any]:
        return {
            "chunk_size": self.options.chunk_size,
            "max_chunk_bytes": self.options.max_chunk_bytes,
            "max_retries": self.options.max_retries,
            "initial_backoff": self.options.initial_backoff_s,
            "max_backoff": self.options.max_backoff_s,
            "retry_on_status": TRANSIENT_STATUSES,
        }

    def _load_documents(self, actions: list[dict], lease: _Lease,
                        progress: Progress | None = None) -> tuple[int, list[FailedDocument]]:
        """Sends the actions; those still refused as transient, or cut off by a lost connection, are sent again."""
        pending = {action["_id"]: action for action in actions}
        indexed = 0
        failed: list[FailedDocument] = []

        def send_pending() -> None:
            nonlocal indexed
            results = helpers.streaming_bulk(self.client, _guarded(list(pending.values()), lease),
                                             raise_on_error=False, raise_on_exception=False, **self._bulk_options())
            for ok, item in results:
                result = next(iter(item.values()))
                if not ok and result["status"] in TRANSIENT_STATUSES:
                    continue
                del pending[result["_id"]]
                if ok:
                    indexed += 1
                else:
                    failed.append(FailedDocument(id=result["_id"], status=result["status"],
                                                 reason=_error_reason(result["error"])))
                if progress:
                    progress.update(indexed + len(failed))
            if pending:
                raise _DocumentsRefused(f"{len(pending)} documents still refused with {TRANSIENT_STATUSES}")

        self._retrying(send_pending)
        return indexed, failed

    def _delete_stale(self, video_id: str, keep_ids: list[str]) -> int:
        query = {"bool": {"filter": [{"term": {"video_id": video_id}}], "must_not": [{"ids": {"values": keep_ids}}]}}
        return self.client.delete_by_query(index=self.index, query=query)["deleted"]

    def _move_alias(self, previous: list[str]) -> None:
        actions = [{"remove": {"index": old, "alias": self.alias}} for old in previous]
        self.client.indices.update_aliases(actions=[*actions, {"add": {"index": self.index, "alias": self.alias}}])
        if previous:
            self.client.indices.delete(index=previous, ignore_unavailable=True)
            log.info("alias %s moved from %s to %s; old index deleted", self.alias, previous, self.index)

    # --- the alias's lock

    @contextmanager
    def _locked(self, exclusive: bool, purpose: str) -> Iterator[_Lease]:
        """Holds the alias's lock, alone or shared with other loads, until the block ends.

        Why a lock, and why this one. The races it closes: a new version's first loads of two videos A and B, run
        together, each copy the other video's old documents into the new index, and may do so after the other
        video's load wrote its new events and deleted its stale ones (its delete, moreover, sees only refreshed
        documents): B ends with its old events beside its new ones. A load of the old version running meanwhile
        writes into an index the migration has already copied and then drops (a lost load). No rule over what the
        carry-over copies closes these without one: whether the new index holds a video can only be asked of its
        refreshed documents, and a copy in flight still lands after any such check. So:

        - A load that moves the alias (the alias serves anything but its own index: a new version's first load,
          or the alias's first load) creates the `migration` document, with `op_type=create`, which exactly one
          load can do at a time. It then waits for the sharing loads to finish (refreshing the locks index so
          that every acknowledged `load-*` document is found) before it reads the alias again, empties its
          unserved index of what failed loads left, carries over, loads, and moves the alias. The new index's
          only writer is then the one load that copies into it, and the old index takes no writes while it is
          copied.
        - Every other load (and `delete_video`) creates its own `load-<owner>` document, then reads `migration`
          in real time: if a migration holds it, it deletes its document and waits. Each side writes its own
          document before it looks for the other's, so at least one sees the other: a migration never runs
          beside a sharing load. A sharing load reads the alias again once it holds its share, so one that
          waited out a migration finds the alias moved (and refuses, if the new version is not its own, or goes
          alone, if it now has to move the alias). Loads of different videos within one version stay concurrent.
        - Every lock document has an owner and an expiry (`lock_ttl_s`), renewed by the holder's thread, so a
          killed load blocks the others for at most that long; a waiting migration deletes an expired
          `migration` document, conditionally on the version it read, and sharing loads ignore expired ones. A
          holder that could not renew in time stops, at its next document, before it moves the alias.
        """
        self._retrying(self._make_locks_index)
        owner = _lock_owner()
        deadline = time.monotonic() + self.options.lock_wait_s
        pause = LOCK_POLL_MIN_S
        if exclusive:
            while (lease := self._retrying(lambda: self._take_lock(MIGRATION_LOCK_ID, "migration", owner,
                                                                   purpose))) is None:
                holder = self._retrying(lambda: self._lock_holder(MIGRATION_LOCK_ID, take_over_expired=True))
                if holder:
                    pause = self._lock_pause(pause, deadline, holder)
            try:
                while holders := self._retrying(self._sharing_holders):
                    pause = self._lock_pause(pause, deadline, ", ".join(holders))
            except BaseException:
                lease.release()
                raise
        else:
            while True:
                if (lease := self._retrying(lambda: self._take_lock(f"load-{owner}", "load", owner,
                                                                    purpose))) is None:
                    continue  # the id is this hold's own: only a retried create that lost its answer gets here
                try:
                    holder = self._retrying(lambda: self._lock_holder(MIGRATION_LOCK_ID, take_over_expired=False))
                except BaseException:
                    lease.release()
                    raise
                if not holder:
                    break
                lease.release()  # else the migration would wait for this load, and this load for it
                pause = self._lock_pause(pause, deadline, holder)
        try:
            yield lease
        finally:
            lease.release()

    def _lock_body(self, kind: str, owner: str, purpose: str) -> dict:
        return {"owner": owner, "kind": kind, "purpose": purpose, "expires_at": time.time() + self.options.lock_ttl_s}

    def _make_locks_index(self) -> None:
        if self._locks_index_made:
            return
        if not self.client.indices.exists(index=self.locks_index):
            try:
                self.client.indices.create(index=self.locks_index, **LOCKS_MAPPING)
            except BadRequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise
        self._locks_index_made = True

    def _take_lock(self, doc_id: str, kind: str, owner: str, purpose: str) -> _Lease | None:
        """Creates the lock document; None when another load holds it."""
        sent_at = time.monotonic()
        try:
            written = self.client.index(index=self.locks_index, id=doc_id, op_type="create",
                                        document=self._lock_body(kind, owner, purpose))
        except ConflictError:
            try:
                current = self.client.get(index=self.locks_index, id=doc_id)
            except NotFoundError:
                return None  # released meanwhile: try again
            if current["_source"].get("owner") != owner:
                return None
            written = current  # our own create, sent again by a retry after its answer was lost
        return _Lease(self, doc_id, kind, owner, purpose, written, sent_at)

    def _lock_holder(self, doc_id: str, take_over_expired: bool) -> str | None:
        """Who holds the lock document (None: nobody, or an expired hold, deleted when `take_over_expired`)."""
        try:
            current = self.client.get(index=self.locks_index, id=doc_id)
        except NotFoundError:
            return None
        source = current["_source"]
        if source.get("expires_at", 0) >= time.time():
            return f"{source.get('owner')} ({source.get('purpose', '?')})"
        if take_over_expired:
            log.warning("lock %s of %s held by %s expired: taking it over", doc_id, self.alias, source.get("owner"))
            try:
                self.client.delete(index=self.locks_index, id=doc_id, if_seq_no=current["_seq_no"],
                                   if_primary_term=current["_primary_term"])
            except (ConflictError, NotFoundError):
                pass  # renewed, released or taken over meanwhile: read again
        return None

    def _sharing_holders(self) -> list[str]:
        """The loads sharing the lock now (unexpired `load-*` documents); expired ones are deleted."""
        self.client.indices.refresh(index=self.locks_index)
        now = time.time()
        self.client.delete_by_query(index=self.locks_index, conflicts="proceed", query={"bool": {"filter": [
            {"term": {"kind": "load"}}, {"range": {"expires_at": {"lt": now}}}]}})
        hits = self.client.search(index=self.locks_index, size=10, query={"bool": {"filter": [
            {"term": {"kind": "load"}}, {"range": {"expires_at": {"gte": now}}}]}})["hits"]["hits"]
        return [f"{hit['_source'].get('owner')} ({hit['_source'].get('purpose', '?')})" for hit in hits]

    def _lock_pause(self, pause: float, deadline: float, holder: str) -> float:
        """Waits `pause` (jittered) for `holder`; the next pause."""
        if time.monotonic() + pause > deadline:
            raise AliasLocked(f"alias {self.alias!r} still locked by {holder} after {self.options.lock_wait_s:.0f}s")
        log.debug("alias %s locked by %s; waiting %.2fs", self.alias, holder, pause)
        time.sleep(pause * random.uniform(0.5, 1.5))
        return min(pause * 2, LOCK_POLL_MAX_S)

    def _retrying(self, operation: Callable[[], T], patience_s: float | None = None) -> T:
        """Runs `operation`, waiting out an unreachable or overloaded server for up to `patience_s`
        (default: the load's outage timeout; 0 = only the client's own retries)."""
        patience_s = self.options.outage_timeout_s if patience_s is None else patience_s
        deadline = time.monotonic() + patience_s
        pause = self.options.initial_backoff_s
        while True:
            try:
                return operation()
            except (ApiError, TransportConnectionError, ConnectionTimeout, _DocumentsRefused) as exc:
                if not _transient(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ElasticsearchUnavailable(
                        f"Elasticsearch at {self.url} still failing after {patience_s:.0f}s of retries: {exc}"
                    ) from exc
                log.warning("Elasticsearch at %s: %s; retrying in %.1fs", self.url, exc, min(pause, left))
                time.sleep(min(pause, left))
                pause = min(pause * 2, self.options.max_backoff_s)
