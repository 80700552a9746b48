"""The search index: one backend interface (`protocol.py`), its two implementations (`embedded.py` with
`vectors.py`, `elastic.py`), and hybrid search over either (`search.py`). `open_index(settings)` is the backend the
settings name."""

from __future__ import annotations

import os
from functools import lru_cache

from cinedex.core.settings import Settings
from cinedex.index.embedded import EmbeddedIndex
from cinedex.index.protocol import IndexBackend

BACKENDS = ("embedded", "elasticsearch")


def open_index(settings: Settings, backend: str | None = None) -> IndexBackend:
    """The index backend `backend` (default: CINEDEX_INDEX_BACKEND), opened once per process and configuration;
    the embedded one sees other processes' latest commits."""
    name = backend or settings.index_backend
    if name not in BACKENDS:
        raise ValueError(f"unknown index backend {name!r}: use {' or '.join(BACKENDS)}")
    if name == "elasticsearch":
        # The connection may be given by the environment: a changed one is a different backend.
        return _elastic(settings.elasticsearch_alias, os.environ.get("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", ""))
    index = _embedded(str(settings.index_dir))
    index.reload()
    return index


@lru_cache(maxsize=8)
def _embedded(path: str) -> EmbeddedIndex:
    return EmbeddedIndex(path)


@lru_cache(maxsize=8)
def _elastic(alias: str, connection: str) -> IndexBackend:
    # Here, not at the top: a process that only uses the embedded index never loads the Elasticsearch client.
    from cinedex.index.elastic import ElasticIndex, elasticsearch_client

    return ElasticIndex(elasticsearch_client(), alias=alias)
