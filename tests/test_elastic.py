"""The Elasticsearch backend against a real Elasticsearch-API server: noida-db, started here, or the server at
CINEDEX_TEST_ES_URL (a real Elasticsearch 8 also needs AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH=8 for this 9.x client).

Scores differ between noida-db and Elasticsearch, so only rankings and sets of hits are asserted.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import types
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from elasticsearch import Elasticsearch

from cinedex import PIPELINE_VERSION
from cinedex.index import elastic, open_index
from cinedex.index.elastic import (
    CLIENT_OPTIONS,
    ElasticIndex,
    ElasticsearchNotConfigured,
    ElasticsearchUnavailable,
    LoadOptions,
    connection_url,
    elasticsearch_client,
    event_mapping,
)
from typing import Annotated

from cinedex.core.model import EVENT_FIELDS, Event, EventFields, Indexed, SearchFilters
from cinedex.core.settings import Settings
from elastic_server import BulkProxy, ElasticsearchServer, elasticsearch_server, free_port

EXTERNAL_URL = os.environ.get("CINEDEX_TEST_ES_URL")
DIMS = 384
# Short back-offs keep the retry tests quick; the outage patience stays well above their few seconds of downtime.
NEXT_VERSION = str(int(PIPELINE_VERSION) + 1)
QUICK = LoadOptions(initial_backoff_s=0.1, max_backoff_s=1.0, outage_timeout_s=30.0)

CASABLANCA = [
    dict(start_s=0.0, end_s=8.0, scene_type="establishing", source="vision", location="Casablanca",
         event="Rick's Café Américain at night, searchlights sweeping the street", objects_visible=["neon sign"]),
    dict(start_s=12.0, end_s=15.5, speaker="Rick", characters=["Rick"],
         content="Of all the gin joints in all the towns in all the world, she walks into mine."),
    dict(start_s=40.0, end_s=43.0, speaker="Ilsa", characters=["Ilsa", "Sam"], content="Play it, Sam. Play As Time Goes By."),
    dict(start_s=43.0, end_s=60.0, scene_type="montage", source="vision", characters=["Sam", "Ilsa"],
         event="Sam plays the piano while Ilsa listens", objects_visible=["piano"]),
    dict(start_s=60.0, end_s=66.0, speaker="Sam", characters=["Sam"], content="You must remember this, a kiss is just a kiss."),
    dict(start_s=95.25, end_s=98.0, speaker="Rick", characters=["Rick", "Ilsa"], content="Here's looking at you, kid."),
    dict(start_s=98.0, end_s=104.0, speaker="Captain Renault", characters=["Captain Renault", "Rick"],
         content="I'm shocked, shocked to find that gambling is going on in here!"),
    dict(start_s=104.0, end_s=112.0, scene_type="action", source="vision", characters=["Captain Renault"],
         event="Police raid the café at night and close the roulette tables", objects_visible=["roulette wheel"]),
    dict(start_s=120.0, end_s=126.0, speaker="Rick", characters=["Rick"], content="I stick my neck out for nobody."),
    dict(start_s=130.0, end_s=136.0, speaker="Ugarte", characters=["Ugarte", "Rick"], content="You despise me, don't you?"),
    dict(start_s=150.0, end_s=155.0, speaker="Ilsa", characters=["Ilsa", "Rick"],
         content="Kiss me. Kiss me as if it were the last time."),
    dict(start_s=170.0, end_s=176.0, speaker="Ilsa", characters=["Ilsa", "Rick"], language="zh", content="我们永远都会有巴黎。",
         event="Subtitled: Ilsa remembers their days together"),
    dict(start_s=176.0, end_s=182.0, speaker="Rick", characters=["Rick", "Ilsa"], content="We'll always have Paris."),
    dict(start_s=190.0, end_s=205.0, scene_type="action", source="vision", location="airfield",
         event="A plane takes off into the fog at night from the airfield", objects_visible=["plane"]),
    dict(start_s=205.0, end_s=211.0, speaker="Rick", characters=["Rick", "Captain Renault"],
         content="Louis, I think this is the beginning of a beautiful friendship."),
    dict(start_s=211.0, end_s=215.0, scene_type="title", source="vision", event="End title card", on_screen_text="THE END"),
]
ALIEN = [
    dict(start_s=0.0, end_s=10.0, scene_type="establishing", source="vision",
         event="The Nostromo drifts through space, its corridors empty", objects_visible=["spaceship"]),
    dict(start_s=30.0, end_s=34.0, speaker="Dallas", characters=["Dallas", "Ripley"],
         content="We're not home yet. This is a distress signal."),
    dict(start_s=60.0, end_s=66.0, scene_type="action", source="vision", characters=["Kane"],
         event="Kane descends into the egg chamber at night", objects_visible=["eggs", "helmet lamp"]),
    dict(start_s=100.0, end_s=104.0, speaker="Ash", characters=["Ash", "Ripley"],
         content="You still don't understand what you're dealing with, do you? A perfect organism."),
    dict(start_s=104.0, end_s=110.0, scene_type="action", source="vision", characters=["Kane", "Ripley", "Dallas"],
         event="The creature bursts from Kane's chest at dinner"),
    dict(start_s=120.0, end_s=128.0, speaker="Dallas", characters=["Dallas", "Ash"], content="Ash, any suggestions?"),
    dict(start_s=150.0, end_s=156.0, speaker="Ripley", characters=["Ripley"], content="Mother! I've turned the cooling unit back on."),
    dict(start_s=200.0, end_s=206.0, scene_type="action", source="vision", characters=["Ripley"],
         event="Ripley runs through the corridors at night as the self-destruct counts down"),
    dict(start_s=230.0, end_s=240.0, speaker="Ripley", characters=["Ripley"],
         content="Final report of the commercial starship Nostromo, third officer reporting."),
    dict(start_s=250.0, end_s=258.0, scene_type="transition", source="vision", event="Fade to black"),
]


def film_events(video_id: str, rows: list[dict], pipeline_version: str = "1") -> list[Event]:
    defaults = {"scene_type": "dialogue", "source": "asr", "language": "en"}
    return [Event(video_id=video_id, pipeline_version=pipeline_version, shot_id=shot,
                  thumbnail=f"/thumbs/{video_id}/{shot}.jpg", **{**defaults, **row})
            for shot, row in enumerate(rows)]


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def client(es_url) -> Elasticsearch:
    """Made the way the pipeline makes it: from the Airflow connection in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", es_url)
        return elasticsearch_client()


@pytest.fixture
def index(client) -> Iterator[ElasticIndex]:
    """An index under an alias of its own, so tests share the server but not documents."""
    alias = f"test-{uuid.uuid4().hex[:8]}-events"
    yield ElasticIndex(client, alias=alias, dims=DIMS, options=QUICK)
    # By name: Elasticsearch refuses wildcard deletes by default (action.destructive_requires_name).
    client.indices.delete(index=[f"{alias}-v{PIPELINE_VERSION}", f"{alias}-v{NEXT_VERSION}", f"{alias}-locks"], ignore_unavailable=True)


@pytest.fixture
def casablanca() -> list[Event]:
    return film_events("casablanca", CASABLANCA)


@pytest.fixture
def alien() -> list[Event]:
    return film_events("alien", ALIEN)


@pytest.fixture
def loaded(index, casablanca, alien) -> ElasticIndex:
    index.replace_video("casablanca", casablanca, unit_vectors(len(casablanca), seed=1))
    index.replace_video("alien", alien, unit_vectors(len(alien), seed=2))
    return index


def ids(hits: list[tuple[Event, str]]) -> list[str]:
    return [event.id for event, _ in hits]


# --- mapping


def test_mapping_is_derived_from_every_event_field():
    mapping = event_mapping(DIMS)
    properties = mapping["mappings"]["properties"]
    assert set(properties) == set(Event.model_fields) | {"embedding"}
    assert properties["embedding"] == {"type": "dense_vector", "dims": DIMS, "index": True, "similarity": "cosine"}
    for name in EVENT_FIELDS.text:
        assert properties[name]["type"] == "text" and properties[name]["analyzer"] == "english"
        assert properties[name]["fields"]["cjk"] == {"type": "text", "analyzer": "cjk_simplified_indexed",
                                                     "search_analyzer": "cjk_simplified"}
    # The CJK analyzers fold traditional characters into simplified ones before cutting bigrams.
    analysis = mapping["settings"]["analysis"]
    assert "夢=>梦" in analysis["char_filter"]["traditional_to_simplified"]["mappings"]
    assert set(analysis["analyzer"]) == {"cjk_simplified", "cjk_simplified_indexed"}
    assert properties["speaker"]["fields"]["keyword"] == {"type": "keyword"}
    assert properties["characters"]["fields"]["keyword"] == {"type": "keyword"}
    for name in ("id", "video_id", "scene_type", "source", "language", "pipeline_version"):
        assert properties[name] == {"type": "keyword"}, name
    assert properties["start_s"] == properties["end_s"] == {"type": "float"}
    # Shown with a hit, never searched:
    for name in ("start_time", "end_time", "thumbnail"):
        assert properties[name] == {"type": "keyword", "index": False}, name
    assert properties["shot_id"] == {"type": "integer", "index": False}


def test_mapping_refuses_a_field_type_it_does_not_know(monkeypatch):
    class RatedEvent(Event):
        ratings: Annotated[dict[str, float], Indexed("keyword")] = {}

    with pytest.raises(TypeError, match="RatedEvent.ratings"):
        event_mapping(DIMS, EventFields.of(RatedEvent))


# --- loading


def test_load_then_count_and_read_back(loaded, client, casablanca, alien):
    assert loaded.count("casablanca") == len(casablanca)
    assert loaded.count("alien") == len(alien)
    assert loaded.count() == len(casablanca) + len(alien)
    assert loaded.video_events("alien") == sorted(alien, key=lambda e: e.start_s)
    assert list(client.indices.get_alias(name=loaded.alias)) == [f"{loaded.alias}-v{PIPELINE_VERSION}"]
    served = client.indices.get_mapping(index=loaded.index)[loaded.index]["mappings"]["properties"]
    assert set(served) == set(Event.model_fields) | {"embedding"}


def test_reloading_the_same_events_keeps_their_count_and_ids(loaded, casablanca):
    before = {e.id for e in loaded.video_events("casablanca")}
    report = loaded.replace_video("casablanca", casablanca, unit_vectors(len(casablanca), seed=1))
    assert (report.indexed, report.failed, report.stale_deleted) == (len(casablanca), [], 0)
    assert {e.id for e in loaded.video_events("casablanca")} == before
    assert loaded.count("casablanca") == len(casablanca)


def test_reload_with_changes_removes_stale_events_and_leaves_other_videos_alone(loaded, casablanca, alien):
    changed = [e.model_copy(update={"content": "Of all the bars in the world, she walks into mine."})
               if e.content.startswith("Of all the gin joints") else e for e in casablanca]
    removed = changed[8:10]
    added = film_events("casablanca", [dict(start_s=300.0, end_s=304.0, speaker="Rick", content="Round up the usual suspects.")])
    new = [e for e in changed if e not in removed] + added
    report = loaded.replace_video("casablanca", new, unit_vectors(len(new), seed=3))
    assert report.stale_deleted == len(removed) and not report.failed
    stored = {e.id: e for e in loaded.video_events("casablanca")}
    assert set(stored) == {e.id for e in new}
    assert stored[changed[1].id].content == "Of all the bars in the world, she walks into mine."
    assert loaded.video_events("alien") == sorted(alien, key=lambda e: e.start_s)
    assert loaded.bm25("gin joints", SearchFilters(), 10) == []


def test_a_concurrent_searcher_sees_the_old_set_or_the_new_one(client, es_url, casablanca):
    alias = f"test-{uuid.uuid4().hex[:8]}-events"
    searcher = ElasticIndex(client, alias=alias)
    old = casablanca
    new = casablanca[3:] + film_events("casablanca", [dict(start_s=300.0 + i, end_s=301.0 + i, content=f"Line {i}")
                                                      for i in range(2)])
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(searcher.count("casablanca"))

    # Slowed to about a second a load (eight bulks of two), so the server's periodic refresh (1 s by default) would
    # fall inside it and show a partial set, or the union of old and new (18), were the index refreshed on a timer.
    with BulkProxy(es_url, bulk_delay_s=0.1) as proxy:
        loader = ElasticIndex(Elasticsearch(proxy.url, **CLIENT_OPTIONS), alias=alias, options=LoadOptions(chunk_size=2))
        loader.replace_video("casablanca", old)
        poller = threading.Thread(target=poll)
        poller.start()
        try:
            for events in (new, old, new):
                loader.replace_video("casablanca", events)
        finally:
            done.set()
            poller.join()
            client.indices.delete(index=[loader.index, loader.locks_index], ignore_unavailable=True)
    assert len(seen) > 20
    assert set(seen) <= {len(old), len(new)}, sorted(set(seen))


def test_a_new_pipeline_version_gets_its_own_index_and_keeps_other_videos(loaded, client, casablanca, alien):
    old_index = loaded.index
    upgraded = ElasticIndex(client, alias=loaded.alias, dims=DIMS, pipeline_version=NEXT_VERSION, options=QUICK)
    reindexed = film_events("casablanca", CASABLANCA[:5], pipeline_version=NEXT_VERSION)
    report = upgraded.replace_video("casablanca", reindexed, unit_vectors(len(reindexed), seed=4))
    assert report.index == f"{loaded.alias}-v{NEXT_VERSION}" and report.carried_over == len(alien)
    assert list(client.indices.get_alias(name=loaded.alias)) == [f"{loaded.alias}-v{NEXT_VERSION}"]
    assert not client.indices.exists(index=old_index)
    assert [e.id for e in upgraded.video_events("casablanca")] == [e.id for e in reindexed]
    assert upgraded.video_events("alien") == sorted(alien, key=lambda e: e.start_s)
    # The carried-over vectors came along: kNN still finds an alien event by its own vector.
    assert ids(upgraded.knn(unit_vectors(len(alien), seed=2)[3], SearchFilters(video_id="alien"), 1)) == [alien[3].id]
    with pytest.raises(RuntimeError, match="not an older version"):
        loaded.replace_video("casablanca", casablanca)


def test_concurrent_loads_of_a_new_version_never_bring_back_old_events(es_url, client):
    """Loads of a new pipeline version started together, each with its own client (as tasks on different workers):
    every video ends with exactly its new set, a video no load touched with exactly its old one, and the older
    index is gone. Without a guard, one load's carry-over copies the other video's old events into the new index
    after that video's own load wrote its new set and deleted its stale events: the video shows both."""
    alias = f"test-{uuid.uuid4().hex[:8]}-events"
    reloaded = {"casablanca": CASABLANCA, "alien": ALIEN}
    untouched = film_events("nosferatu", ALIEN[:4])
    versions = (NEXT_VERSION, str(int(NEXT_VERSION) + 1))

    def new_set(video_id: str, version: str) -> list[Event]:
        rows = reloaded[video_id]
        return film_events(video_id, rows[:len(rows) - versions.index(version) - 2], pipeline_version=version)

    # Carry-overs and loads go in bulks of three, each held 30 ms: the loads overlap for a good part of a second,
    # longer than the lock's time to live, which the holder keeps renewing.
    with BulkProxy(es_url, bulk_delay_s=0.03) as proxy:
        def loader(version: str) -> ElasticIndex:
            return ElasticIndex(Elasticsearch(proxy.url, **CLIENT_OPTIONS), alias=alias, pipeline_version=version,
                                options=LoadOptions(chunk_size=3, initial_backoff_s=0.05, max_backoff_s=0.5,
                                                    outage_timeout_s=30.0, lock_ttl_s=2.0))

        first = ElasticIndex(client, alias=alias, options=QUICK)
        try:
            for video_id, rows in reloaded.items():
                first.replace_video(video_id, film_events(video_id, rows))
            first.replace_video("nosferatu", untouched)
            for version in versions:
                start = threading.Barrier(len(reloaded))
                errors: list[BaseException] = []

                def load(video_id: str, index: ElasticIndex) -> None:
                    try:
                        start.wait()
                        index.replace_video(video_id, new_set(video_id, version))
                    except BaseException as exc:  # noqa: BLE001 - reported below
                        errors.append(exc)

                threads = [threading.Thread(target=load, args=(video_id, loader(version))) for video_id in reloaded]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=120)
                reader = ElasticIndex(client, alias=alias, pipeline_version=version)
                for video_id in reloaded:
                    stored = [e.id for e in reader.video_events(video_id)]
                    expected = [e.id for e in new_set(video_id, version)]
                    assert sorted(stored) == sorted(expected), (
                        f"v{version}: {video_id} holds {len(stored)} events, {len(expected)} expected; versions "
                        f"{sorted({e.pipeline_version for e in reader.video_events(video_id)})}")
                assert reader.video_events("nosferatu") == untouched, f"v{version}: nosferatu"
                assert not errors, errors
                assert list(client.indices.get_alias(name=alias)) == [f"{alias}-v{version}"]
                assert not client.indices.exists(index=f"{alias}-v{int(version) - 1}")
        finally:
            client.indices.delete(index=[f"{alias}-v{version}" for version in (PIPELINE_VERSION, *versions)] + [f"{alias}-locks"],
                                  ignore_unavailable=True)


def test_a_load_of_the_old_version_during_a_migration_waits_and_then_refuses(es_url, client, casablanca, alien):
    """A load of the old version that starts while a new version's first load copies the old index waits for it,
    instead of writing into an index already copied and about to be dropped, and then refuses: the new version
    serves."""
    alias = f"test-{uuid.uuid4().hex[:8]}-events"
    ElasticIndex(client, alias=alias, options=QUICK).replace_video("alien", alien)
    ElasticIndex(client, alias=alias, options=QUICK).replace_video("casablanca", casablanca)
    outcome: dict = {}
    try:
        with BulkProxy(es_url, bulk_delay_s=0.1) as proxy:
            migration = ElasticIndex(Elasticsearch(proxy.url, **CLIENT_OPTIONS), alias=alias, pipeline_version=NEXT_VERSION,
                                     options=LoadOptions(chunk_size=2))
            upgraded = film_events("alien", ALIEN[:3], pipeline_version=NEXT_VERSION)
            migrating = threading.Thread(
                target=lambda: outcome.update(report=migration.replace_video("alien", upgraded)))
            migrating.start()
            try:
                deadline = time.monotonic() + 10
                while not client.exists(index=f"{alias}-locks", id="migration"):
                    assert time.monotonic() < deadline, "the migration never took the lock"
                    time.sleep(0.01)
                old = ElasticIndex(client, alias=alias, options=QUICK)
                with pytest.raises(RuntimeError, match="not an older version"):
                    old.replace_video("casablanca", casablanca[:4])
            finally:
                migrating.join(timeout=60)  # before the proxy closes
        assert outcome["report"].carried_over == len(casablanca)
        reader = ElasticIndex(client, alias=alias, pipeline_version=NEXT_VERSION)
        assert reader.video_events("casablanca") == sorted(casablanca, key=lambda e: e.start_s)
        assert [e.id for e in reader.video_events("alien")] == [e.id for e in upgraded]
    finally:
        client.indices.delete(index=[f"{alias}-v{PIPELINE_VERSION}", f"{alias}-v{NEXT_VERSION}", f"{alias}-locks"], ignore_unavailable=True)


def test_a_lock_left_by_a_killed_load_expires(index, client, casablanca):
    """The lock documents of loads killed while holding the lock (never released, never renewed again) stop
    blocking the others once they expire."""
    client.indices.create(index=index.locks_index, **elastic.LOCKS_MAPPING)
    for doc_id, kind in (("migration", "migration"), ("load-killed", "load")):
        client.index(index=index.locks_index, id=doc_id, refresh=True,
                     document={"owner": "killed", "kind": kind, "expires_at": time.time() + 1.5})
    started = time.monotonic()
    index.replace_video("casablanca", casablanca)  # the alias's first load: it goes alone
    assert time.monotonic() - started >= 1.0
    assert index.count("casablanca") == len(casablanca)
    client.indices.refresh(index=index.locks_index)
    assert client.count(index=index.locks_index)["count"] == 0


def test_bad_documents_are_reported_and_the_good_ones_indexed(index, casablanca):
    class CorruptingIndex(ElasticIndex):
        def bulk_actions(self, events, vectors):
            actions = super().bulk_actions(events, vectors)
            actions[2]["_source"]["start_s"] = "after the song"
            actions[5]["_source"]["embedding"] = [0.5, 0.5]
            return actions

    corrupting = CorruptingIndex(index.client, alias=index.alias, dims=DIMS, options=QUICK)
    report = corrupting.replace_video("casablanca", casablanca, unit_vectors(len(casablanca), seed=1))
    reasons = {item.id: item.reason for item in report.failed}
    assert set(reasons) == {casablanca[2].id, casablanca[5].id}
    assert "start_s" in reasons[casablanca[2].id]
    assert "dimension" in reasons[casablanca[5].id]
    assert {item.status for item in report.failed} == {400}
    assert report.indexed == index.count("casablanca") == len(casablanca) - 2


@pytest.mark.skipif(bool(EXTERNAL_URL), reason="needs a server the test can stop and start")
def test_a_load_waits_out_a_server_outage(tmp_path, casablanca):
    with ElasticsearchServer(tmp_path / "outage") as server:
        index = ElasticIndex(Elasticsearch(server.url, **CLIENT_OPTIONS), alias="outage-events", options=QUICK)
        index.replace_video("casablanca", casablanca[:4])
        server.stop()
        outcome: dict = {}
        started = time.monotonic()
        loader = threading.Thread(target=lambda: outcome.update(
            report=index.replace_video("casablanca", casablanca, unit_vectors(len(casablanca), seed=1))))
        loader.start()
        time.sleep(3.0)
        assert loader.is_alive()
        server.start()
        loader.join(timeout=60)
        assert not loader.is_alive()
        assert time.monotonic() - started >= 3.0
        assert outcome["report"].indexed == len(casablanca) and not outcome["report"].failed
        assert index.count("casablanca") == len(casablanca)


def test_an_unreachable_server_is_reported_with_its_url(casablanca):
    url = f"http://127.0.0.1:{free_port()}"
    index = ElasticIndex(Elasticsearch(url, **{**CLIENT_OPTIONS, "max_retries": 0}),
                         options=LoadOptions(initial_backoff_s=0.1, outage_timeout_s=0.5))
    with pytest.raises(ElasticsearchUnavailable, match=url):
        index.count()
    with pytest.raises(ElasticsearchUnavailable, match=url):
        index.replace_video("casablanca", casablanca)


def test_bulk_rejections_are_backed_off_until_accepted(es_url, casablanca):
    # Four 429s: streaming_bulk's own two retries take three, the load's outer retry the last one.
    with BulkProxy(es_url, reject_bulk=4) as proxy:
        client = Elasticsearch(proxy.url, **CLIENT_OPTIONS)
        index = ElasticIndex(client, alias=f"test-{uuid.uuid4().hex[:8]}-events",
                             options=LoadOptions(max_retries=2, initial_backoff_s=0.05, outage_timeout_s=10))
        try:
            report = index.replace_video("casablanca", casablanca, unit_vectors(len(casablanca), seed=1))
            assert report.indexed == index.count("casablanca") == len(casablanca) and not report.failed
            assert proxy.rejected == 4 and proxy.forwarded_bulk >= 1
        finally:
            client.indices.delete(index=[index.index, index.locks_index], ignore_unavailable=True)


def test_deleting_a_video_leaves_the_others(loaded, alien):
    assert loaded.delete_video("casablanca") == len(CASABLANCA)
    assert loaded.count("casablanca") == 0 and loaded.count("alien") == len(alien)


def test_an_index_not_loaded_yet_is_empty(index):
    assert index.count() == 0
    assert index.video_events("casablanca") == []
    assert index.bm25("night", SearchFilters(), 10) == []
    assert index.delete_video("casablanca") == 0


# --- search


def night_ids(casablanca: list[Event], alien: list[Event], keep=lambda e: True) -> set[str]:
    """Events whose text says "night", the word the filter tests search for, that `keep` keeps."""
    return {e.id for e in casablanca + alien if " night" in f"{e.event} {e.content}" and keep(e)}


def test_bm25_ranks_the_quoted_line_first_with_a_highlight(loaded, casablanca):
    hits = loaded.bm25("gin joints", SearchFilters(), 5)
    assert hits[0][0].id == casablanca[1].id
    # Adjacent matches may share one tag (noida-db) or get one each (Elasticsearch).
    assert re.search(r"<b>[^<]*gin[^<]*</b>", hits[0][1]) and re.search(r"<b>[^<]*joints</b>", hits[0][1])
    assert hits[0][0] == casablanca[1]


def test_bm25_phrase_bonus_puts_the_phrase_first(loaded, casablanca):
    hits = loaded.bm25("always have Paris", SearchFilters(), 5)
    assert hits[0][0].id == casablanca[12].id


@pytest.mark.parametrize(("filters", "keep"), [
    (SearchFilters(), lambda e: True),
    (SearchFilters(video_id="alien"), lambda e: e.video_id == "alien"),
    (SearchFilters(scene_type="establishing"), lambda e: e.scene_type == "establishing"),
    (SearchFilters(character="Captain Renault"), lambda e: "Captain Renault" in e.characters),
    (SearchFilters(character="Renault"), lambda e: False),
    (SearchFilters(start_s=100.0, end_s=200.0), lambda e: e.end_s > 100.0 and e.start_s < 200.0),
    (SearchFilters(video_id="casablanca", start_s=100.0), lambda e: e.video_id == "casablanca" and e.end_s > 100.0),
])
def test_bm25_filters(loaded, casablanca, alien, filters, keep):
    expected = night_ids(casablanca, alien, keep)
    hits = loaded.bm25("night", filters, 50)
    assert set(ids(hits)) == expected
    assert all("<b>night</b>" in highlight for _, highlight in hits)


def test_bm25_speaker_filter_is_exact(loaded, casablanca):
    assert ids(loaded.bm25("kiss", SearchFilters(speaker="Sam"), 10)) == [casablanca[4].id]
    assert ids(loaded.bm25("shocked gambling", SearchFilters(speaker="Captain Renault"), 10)) == [casablanca[6].id]
    assert loaded.bm25("shocked gambling", SearchFilters(speaker="Renault"), 10) == []


def test_bm25_highlight_prefers_content_then_event(loaded, casablanca):
    by_id = {event.id: highlight for event, highlight in loaded.bm25("Ilsa remembers Paris", SearchFilters(), 10)}
    assert "<b>Paris</b>" in by_id[casablanca[12].id]  # content matched
    assert "<b>remembers</b>" in by_id[casablanca[11].id]  # content did not match: the event's summary did


@pytest.mark.parametrize("query", ['gin AND "joints', "content:(night OR", "-night", "*", "\\", "<b>", "a" * 5000])
def test_any_text_is_a_plain_text_query(loaded, query):
    loaded.bm25(query, SearchFilters(), 5)


def test_bm25_matches_cjk_text(loaded, casablanca):
    (event, highlight), *_ = loaded.bm25("巴黎", SearchFilters(), 5)
    assert event.id == casablanca[11].id and "<b>" in highlight


def test_knn_finds_the_nearest_event_and_applies_filters(loaded, casablanca, alien):
    vectors = unit_vectors(len(casablanca), seed=1)
    noisy = vectors[6] + 0.05 * unit_vectors(1, seed=9)[0]
    hits = loaded.knn(noisy, SearchFilters(), 5)
    assert hits[0][0].id == casablanca[6].id and all(highlight == "" for _, highlight in hits)
    assert len(hits) == 5
    in_alien = loaded.knn(noisy, SearchFilters(video_id="alien"), 5)
    assert len(in_alien) == 5 and {e.video_id for e, _ in in_alien} == {"alien"}
    late = loaded.knn(noisy, SearchFilters(video_id="casablanca", start_s=150.0), 20)
    assert set(ids(late)) == {e.id for e in casablanca if e.end_s > 150.0}
    renault = loaded.knn(noisy, SearchFilters(character="Captain Renault"), 20)
    assert set(ids(renault)) == {e.id for e in casablanca if "Captain Renault" in e.characters}
    # Unrelated (random) vectors are about orthogonal: a similarity floor leaves only the near one.
    assert ids(loaded.knn(noisy, SearchFilters(), 5, min_similarity=0.5)) == [casablanca[6].id]


# --- connection


@pytest.mark.parametrize("form", ["uri", "uri-with-login", "http-uri", "json"])
def test_client_from_the_airflow_connection_in_the_environment(monkeypatch, es_url, form):
    scheme, address = es_url.split("://")
    host, port = address.rstrip("/").rsplit(":", 1)
    value = {
        "uri": f"elasticsearch://{host}:{port}",
        "uri-with-login": f"elasticsearch://elastic:changeme@{host}:{port}",
        "http-uri": es_url,
        "json": json.dumps({"conn_type": "elasticsearch", "host": host, "port": int(port)}),
    }[form]
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", value)
    client = elasticsearch_client()
    assert client.ping()
    assert [node.base_url for node in client.transport.node_pool.all()] == [f"http://{host}:{port}"]


def test_https_comes_from_use_ssl_or_the_schema():
    from airflow.sdk import Connection

    def url(**fields) -> str:
        return connection_url(Connection(conn_id="es", **{"conn_type": "elasticsearch", **fields}))

    assert url(host="es.example", port=9243, extra=json.dumps({"use_ssl": True})) == "https://es.example:9243"
    assert url(host="es.example", extra=json.dumps({"use_ssl": "true"})) == "https://es.example:9200"
    assert url(host="es.example", schema="https") == "https://es.example:9200"
    assert url(host="https://es.example:9243") == "https://es.example:9243"
    assert url(host="es.example", port=9201) == "http://es.example:9201"


def test_a_missing_connection_names_the_variable_to_set(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", raising=False)
    with pytest.raises(ElasticsearchNotConfigured, match="AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"):
        elasticsearch_client()


def stage_files(folder, events: list[Event], vectors: np.ndarray):
    """What the validation and embedding stages leave for the load stage."""
    from cinedex.pipeline.embeddings import IDS_FILE, VECTORS_FILE
    from cinedex.core.model import write_events
    from cinedex.pipeline.validation import VALID_FILE

    folder.mkdir(parents=True)
    write_events(events, folder / VALID_FILE)
    np.save(folder / VECTORS_FILE, vectors)
    (folder / IDS_FILE).write_text(json.dumps([e.id for e in events]))
    return folder


def test_the_load_stage_loads_and_searches_through_the_configured_alias(monkeypatch, es_url, client, tmp_path,
                                                                        alien):
    from cinedex.pipeline.load import DocumentsRefused, load_video

    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", es_url)
    settings = Settings(home=tmp_path / "home", index_backend="elasticsearch",
                        elasticsearch_alias=f"test-{uuid.uuid4().hex[:8]}-events")
    video = types.SimpleNamespace(video_id="alien", name="alien.mkv")
    try:
        files = stage_files(tmp_path / "good", alien, unit_vectors(len(alien), seed=2))
        loaded = load_video(video, files, files, settings)
        assert loaded == {"video_id": "alien", "events": len(alien), "backend": "elasticsearch",
                          "index": f"{settings.elasticsearch_alias}-v{PIPELINE_VERSION}", "stale_deleted": 0, "carried_over": 0}
        assert ids(open_index(settings).bm25("distress signal", SearchFilters(), 3))[0] == alien[1].id
        # An index whose mapping refuses one field's values (made by hand, or by another tool): the good events
        # go in, and the stage fails saying which were refused, so the task is retried, not silently partial.
        other = Settings(home=tmp_path / "home", index_backend="elasticsearch",
                         elasticsearch_alias=f"test-{uuid.uuid4().hex[:8]}-events")
        strict = event_mapping(DIMS)
        strict["mappings"]["properties"]["language"] = {"type": "integer"}
        client.indices.create(index=f"{other.elasticsearch_alias}-v{PIPELINE_VERSION}", **strict)
        mixed = [alien[0].model_copy(update={"language": "7"}), alien[1].model_copy(update={"language": "en"})]
        files = stage_files(tmp_path / "mixed", mixed, unit_vectors(2, seed=3))
        with pytest.raises(DocumentsRefused, match="1 of 2 events of alien.mkv were refused.*language"):
            load_video(video, files, files, other)
        assert open_index(other).count("alien") == 1
    finally:
        client.indices.delete(index=[f"{settings.elasticsearch_alias}-v{PIPELINE_VERSION}", f"{settings.elasticsearch_alias}-locks"],
                              ignore_unavailable=True)


def test_a_field_the_event_gained_joins_an_existing_index_and_is_filtered(index, client, casablanca):
    """An index made before `people` existed (its mapping lacks the field): the next load adds it, so the people on
    screen are filtered and searched there too, not merely stored."""
    older = event_mapping(DIMS)
    del older["mappings"]["properties"]["people"]
    client.indices.create(index=index.index, **older)
    seen = [e.model_copy(update={"people": ["Person 1"]}) if e.start_s < 100 else e for e in casablanca]
    index.replace_video("casablanca", seen, unit_vectors(len(seen), seed=1))
    assert "people" in client.indices.get_mapping(index=index.index)[index.index]["mappings"]["properties"]
    kept = index.bm25("night", SearchFilters(person="Person 1"), 50)
    assert kept and all(event.start_s < 100 for event, _ in kept)
