"""Attacks a review made on the running API server, replayed against Airflow's real API server with its real
login and the three roles of its simple auth manager (admin, user, viewer): each reached past its bounds before
the fix; each must now be refused, and nothing outside the bounds read or sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cinedex.core.model import EVENT_FIELDS, Event
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.index.embedder import encode
from cinedex.pipeline import frames, ingest

pytestmark = pytest.mark.slow


class Recorder(BaseHTTPRequestHandler):
    """An attacker's server: records every request (and its Authorization header) it gets."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        Recorder.seen.append({"path": self.path, "authorization": self.headers.get("authorization"),
                              "bytes": len(body)})
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def attacker():
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", Recorder.seen
    server.shutdown()


@pytest.fixture
def deployment(tmp_path, monkeypatch, sample_film):
    """A deployment whose media root holds the sample film, with a vision key that must never leave it; a file
    outside every media root."""
    media = tmp_path / "media"
    media.mkdir()
    film = media / "film.mp4"
    shutil.copyfile(sample_film.path, film)
    outside = tmp_path / "private" / "secret.mp4"
    outside.parent.mkdir()
    shutil.copyfile(sample_film.path, outside)
    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path / "cinedex"))
    monkeypatch.setenv("CINEDEX_MEDIA_ROOTS", str(media))
    monkeypatch.setenv("CINEDEX_VISION_API_KEY", "deployment-secret-key")
    return {"film": film, "outside": outside, "home": tmp_path / "cinedex"}


HOSTILE_CONF = ("media_roots", "vision_endpoint", "max_invalid_fraction", "vision_batch_size")


def hostile_conf(video: Path, endpoint: str) -> dict:
    return {"video": str(video), "media_roots": "/", "vision_endpoint": endpoint, "max_invalid_fraction": 1.0,
            "vision_batch_size": 100000, "vision_model": "Qwen/Qwen3-VL-4B-Instruct"}


def test_a_run_cannot_override_the_deployment_settings_from_the_page(api_server, headers_of, dag_in_airflow,
                                                                     deployment, attacker):
    endpoint, seen = attacker
    for role in ("user", "admin"):
        reply = api_server.post("/cinedex/api/runs", headers=headers_of(role),
                                json={"conf": hostile_conf(deployment["outside"], endpoint)})
        assert reply.status_code == 400, reply.text
        assert all(name in reply.json()["detail"] for name in HOSTILE_CONF)
    assert seen == []


def test_a_run_triggered_around_the_page_is_refused_by_the_dag(airflow_home, deployment, attacker):
    """`airflow dags trigger -c` or the REST API reach the DAG without the page: the DAG checks the conf itself."""
    from airflow.dag_processing.dagbag import DagBag

    from cinedex import cli

    endpoint, seen = attacker
    dag = DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags")).get_dag("cinedex_index_video")
    run = dag.test(run_conf=hostile_conf(deployment["outside"], endpoint))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["ingest_video"] == "failed"
    assert not any(state == "success" for state in states.values())
    assert seen == []  # no window was posted anywhere, and the key never left
    assert not list(deployment["home"].glob("artifacts/*/ingest-*"))  # the outside file was not even read


def test_the_outside_file_is_refused_even_with_only_declared_fields(api_server, headers_of, dag_in_airflow,
                                                                    deployment):
    reply = api_server.post("/cinedex/api/runs", headers=headers_of("user"),
                            json={"conf": {"video": str(deployment["outside"]), "vision_model": "none"}})
    assert reply.status_code == 201  # a declared field: accepted here, refused by ingest (test_ingest)
    with pytest.raises(ingest.PathNotAllowed):
        ingest.ingest(deployment["outside"], Settings())


def test_a_viewer_reads_but_cannot_upload_or_trigger(api_server, headers_of, dag_in_airflow, deployment,
                                                     clip_with_audio):
    viewer = headers_of("viewer")
    assert api_server.get("/cinedex/api/films", headers=viewer).status_code == 200
    assert api_server.get("/cinedex/api/search", params={"q": "x"}, headers=viewer).status_code == 200
    upload = api_server.put("/cinedex/api/uploads", params={"name": "bunny.mp4"}, headers=viewer,
                            content=clip_with_audio.read_bytes())
    assert upload.status_code == 403
    assert not list(Path(deployment["home"]).glob("inbox/*/*"))
    trigger = api_server.post("/cinedex/api/runs", headers=viewer, json={"conf": {"video": str(deployment["film"])}})
    assert trigger.status_code == 403
    for role in ("user", "admin"):
        assert api_server.get("/cinedex/api/form", headers=headers_of(role)).status_code == 200


def test_a_login_without_rights_on_the_dag_reads_nothing(api_server, headers_of, dag_in_airflow, indexed_film):
    nobody = headers_of("")
    video_id = indexed_film.video_id
    for path in ("/cinedex/", "/cinedex/api/films", f"/cinedex/api/films/{video_id}", f"/cinedex/api/films/{video_id}/video",
                 f"/cinedex/api/films/{video_id}/events", f"/cinedex/api/films/{video_id}/shots/0.jpg",
                 f"/cinedex/api/films/{video_id}/export/events.json", "/cinedex/api/search?q=line"):
        reply = api_server.get(path, headers=nobody)
        assert reply.status_code == 403 and "line 0" not in reply.text, path
    assert api_server.get(f"/cinedex/api/films/{video_id}/export/events.json",
                          headers=headers_of("viewer")).status_code == 200


def test_every_route_needs_a_login(api_server):
    for path in ("/cinedex/", "/cinedex/api/films", "/cinedex/api/films/abc/events", "/cinedex/api/films/abc/shots",
                 "/cinedex/api/films/abc/export/events.json", "/cinedex/api/search?q=x"):
        assert api_server.get(path).status_code == 401, path


@pytest.fixture
def indexed_film(deployment):
    """The sample film, as `映画.mp4`, ingested and frame-sampled for real, its lines indexed."""
    named = deployment["film"].with_name("映画.mp4")
    deployment["film"].rename(named)
    settings = Settings()
    video = ingest.ingest(named, settings)
    sampling = frames.load_sampling(frames.sample_frames(video, settings))
    shot = sampling.shots[0]
    events = [Event(video_id=video.video_id, start_s=1.0 + i, end_s=2.0 + i, content=f"line {i}",
                    scene_type="dialogue", shot_id=shot.shot_id, thumbnail=shot.thumbnail) for i in range(3)]
    open_index(settings).replace_video(video.video_id, events,
                                       encode([EVENT_FIELDS.passage(e) for e in events], "all-MiniLM-L6-v2"))
    return video


def test_bad_ids_and_names_get_clean_4xx_answers(api_server, headers_of, indexed_film, monkeypatch):
    admin = headers_of("admin")
    video_id = indexed_film.video_id
    assert api_server.get(f"/cinedex/api/films/{video_id}/files/%00", headers=admin).status_code == 404
    assert api_server.get(f"/cinedex/api/films/{video_id}/files/{'a/' * 400}x", headers=admin).status_code == 404
    assert api_server.get(f"/cinedex/api/films/{'f' * 5000}", headers=admin).status_code == 404
    assert api_server.get(f"/cinedex/api/films/{'f' * 5000}/shots/1.jpg", headers=admin).status_code == 404
    assert api_server.get(f"/cinedex/api/films/{video_id}/export/{'x' * 5000}", headers=admin).status_code == 404
    monkeypatch.setenv("CINEDEX_INDEX_BACKEND", "elasticsearch")
    monkeypatch.delenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", raising=False)
    missing = api_server.get("/cinedex/api/search", params={"q": "line"}, headers=admin)
    assert missing.status_code == 503 and "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT" in missing.text


def test_exports_of_a_film_with_a_non_latin1_name(api_server, headers_of, indexed_film):
    admin = headers_of("admin")
    for kind in ("transcript.srt", "events.json", "bulk.ndjson"):
        reply = api_server.get(f"/cinedex/api/films/{indexed_film.video_id}/export/{kind}", headers=admin)
        assert reply.status_code == 200, reply.text
        assert f"filename*=UTF-8''%E6%98%A0%E7%94%BB.{kind}" in reply.headers["content-disposition"]


def test_the_film_view_answers_a_page_and_the_rest_comes_a_page_at_a_time(api_server, headers_of, indexed_film,
                                                                          monkeypatch):
    from cinedex.page import catalog

    monkeypatch.setattr(catalog, "PAGE_LIMIT", 2)  # a film longer than one page, at the size of this one
    admin = headers_of("admin")
    detail = api_server.get(f"/cinedex/api/films/{indexed_film.video_id}", headers=admin).json()
    assert [e["content"] for e in detail["timeline"]] == ["line 0", "line 1"] and detail["events"] == 3
    assert len(detail["shots"]) == 2 and detail["shots_total"] > 2
    page = api_server.get(f"/cinedex/api/films/{indexed_film.video_id}/events", params={"offset": 2, "limit": 2},
                          headers=admin).json()
    assert page["total"] == 3 and [e["content"] for e in page["events"]] == ["line 2"]
    shots = api_server.get(f"/cinedex/api/films/{indexed_film.video_id}/shots", params={"offset": 2, "limit": 1},
                           headers=admin).json()
    assert shots["total"] == detail["shots_total"] and [s["shot_id"] for s in shots["shots"]] == [2]


def test_a_thumbnail_of_a_film_of_100k_shots_costs_one_file(api_server, headers_of, deployment, clip_without_audio):
    """A ten-hour film with 100,000 shots: after the film's first look, a thumbnail reads its own file only."""
    settings = Settings(media_roots=str(clip_without_audio.parent))
    video = ingest.ingest(clip_without_audio, settings)
    real = frames.sample_frames(video, settings)
    folder = real.with_name(real.name + "-long")  # the same layout as a real stage folder, 100,000 shots long
    (folder / "thumbnails").mkdir(parents=True)
    picture = next((real / "thumbnails").iterdir()).read_bytes()
    sampling = frames.FrameSampling.model_validate_json((real / "sampling.json").read_text())
    shots = [frames.Shot(shot_id=i, start_s=i * 0.36, end_s=(i + 1) * 0.36, start_frame_time=f"{i * 0.36:.2f}",
                         thumbnail=f"thumbnails/shot_{i:05d}.jpg") for i in range(100_000)]
    (folder / "sampling.json").write_text(sampling.model_copy(update={"shots": shots, "frames": []}).model_dump_json())
    for i in (0, 99_999):
        (folder / "thumbnails" / f"shot_{i:05d}.jpg").write_bytes(picture)
    events = [Event(video_id=video.video_id, start_s=s.start_s, end_s=s.end_s, content=f"shot {s.shot_id}",
                    shot_id=s.shot_id, thumbnail=str(folder / s.thumbnail)) for s in shots]
    open_index(settings).replace_video(video.video_id, events)
    admin = headers_of("admin")
    url = f"/cinedex/api/films/{video.video_id}/shots/99999.jpg"
    assert api_server.get(url, headers=admin).content == picture  # the first look reads the film once
    tracemalloc.start()
    started = time.perf_counter()
    for _ in range(20):
        reply = api_server.get(url, headers=admin)
    elapsed = (time.perf_counter() - started) / 20
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reply.status_code == 200 and reply.content == picture
    assert elapsed < 0.25, f"{elapsed:.3f} s per thumbnail"
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_two_fresh_cli_processes_migrate_one_database_in_turn(tmp_path):
    env = {**os.environ, "CINEDEX_HOME": str(tmp_path / "home"), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    code = "from cinedex import cli; cli.airflow_environment(cli.Settings()); print('ready')"
    started = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outcomes = [process.communicate(timeout=600) for process in started]
    assert [process.returncode for process in started] == [0, 0], [err[-2000:] for _, err in outcomes]
    assert [out.strip() for out, _ in outcomes] == ["ready", "ready"]
    assert sum("Preparing the Airflow database" in err for _, err in outcomes) == 1


def test_uploads_stop_at_the_inbox_quota(api_server, headers_of, deployment, monkeypatch, tmp_path, clip_with_audio):
    data = clip_with_audio.read_bytes()
    monkeypatch.setenv("CINEDEX_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("CINEDEX_INBOX_QUOTA_BYTES", str(int(len(data) * 1.5)))
    user = headers_of("user")
    first = api_server.put("/cinedex/api/uploads", params={"name": "bunny.mp4"}, headers=user, content=data)
    assert first.status_code == 201, first.text
    second = api_server.put("/cinedex/api/uploads", params={"name": "bunny.mp4"}, headers=user, content=data)
    assert second.status_code == 413 and "CINEDEX_INBOX_QUOTA_BYTES" in second.json()["detail"]
    assert [p.name for p in (tmp_path / "inbox").rglob("*") if p.is_file()] == ["bunny.mp4"]
