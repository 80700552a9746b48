"""The search API inside Airflow's real API server (the plugin mounted as Airflow mounts it), behind its login."""

from __future__ import annotations

import pytest
from conftest import AIRFLOW_ADMIN

from cinedex.embeddings import encode, event_text
from cinedex.index import EmbeddedIndex
from cinedex.model import Event

LINES = [
    (6.7, 7.2, "Diane", "Hello?"),
    (14.4, 17.8, "Sheila", "And I'm Sheila in Texas, originally from Chicago."),
    (24.1, 28.4, "Sheila", "At least you know, they all call me a Yankee down here, so what can I say?"),
]


@pytest.fixture(scope="module")
def api_server(airflow_home):
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture(scope="module")
def token(api_server) -> str:
    reply = api_server.post("/auth/token", json={"username": AIRFLOW_ADMIN[0], "password": AIRFLOW_ADMIN[1]})
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["access_token"]


@pytest.fixture
def indexed(tmp_path, monkeypatch):
    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path / "cinedex"))
    from cinedex.settings import Settings

    events = [Event(video_id="call", start_s=a, end_s=b, speaker=who, characters=[who], content=text,
                    scene_type="dialogue") for a, b, who, text in LINES]
    EmbeddedIndex(Settings().index_dir).replace_video(
        "call", events, encode([event_text(e) for e in events], "all-MiniLM-L6-v2"))
    return events


def test_search_without_login_is_refused(api_server, indexed):
    reply = api_server.get("/cinedex/api/search", params={"q": "Chicago"})
    assert reply.status_code == 401 and "Chicago" not in reply.text
    forged = api_server.get("/cinedex/api/search", params={"q": "Chicago"},
                            headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code in (401, 403) and "Chicago" not in forged.text


def test_search_with_login_returns_time_ranges(api_server, token, indexed):
    auth = {"Authorization": f"Bearer {token}"}
    reply = api_server.get("/cinedex/api/search", params={"q": "originally from Chicago", "limit": 2}, headers=auth)
    assert reply.status_code == 200, reply.text
    [best, *_] = reply.json()
    assert (best["start_s"], best["end_s"], best["speaker"]) == (14.4, 17.8, "Sheila")
    assert "<b>chicago</b>" in best["highlight"].lower() and "bm25" in best["matched_by"]

    # By meaning, filtered: a paraphrase, only what Diane says.
    reply = api_server.get("/cinedex/api/search", headers=auth,
                           params={"q": "greeting on the telephone", "speaker": "Diane"})
    assert [hit["content"] for hit in reply.json()] == ["Hello?"]
    # Filters by time: nothing of Sheila's after 20 s but the Yankee line.
    reply = api_server.get("/cinedex/api/search", headers=auth,
                           params={"q": "Sheila says", "from": 20, "speaker": "Sheila", "mode": "bm25"})
    assert [hit["start_s"] for hit in reply.json()] in ([], [24.1])


def test_bad_parameters_get_a_clear_422(api_server, token, indexed):
    auth = {"Authorization": f"Bearer {token}"}
    for params in ({"q": ""}, {"q": "x", "limit": 0}, {"q": "x", "backend": "solr"}, {"q": "x", "from": "soon"}):
        reply = api_server.get("/cinedex/api/search", params=params, headers=auth)
        assert reply.status_code == 422, (params, reply.text)
