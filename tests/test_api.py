"""The search API inside Airflow's real API server (the plugin mounted as Airflow mounts it), behind its login."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cinedex import PIPELINE_VERSION
from cinedex.core.model import EVENT_FIELDS, Event, read_events
from cinedex.index import open_index
from cinedex.index.embedder import encode

LINES = [
    (6.7, 7.2, "Diane", "Hello?"),
    (14.4, 17.8, "Sheila", "And I'm Sheila in Texas, originally from Chicago."),
    (24.1, 28.4, "Sheila", "At least you know, they all call me a Yankee down here, so what can I say?"),
]


@pytest.fixture
def indexed(tmp_path, monkeypatch):
    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path / "cinedex"))
    from cinedex.core.settings import Settings

    events = [Event(video_id="call", start_s=a, end_s=b, speaker=who, characters=[who], content=text,
                    scene_type="dialogue") for a, b, who, text in LINES]
    open_index(Settings()).replace_video(
        "call", events, encode([EVENT_FIELDS.passage(e) for e in events], "all-MiniLM-L6-v2"))
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


# --- the cinedex page's API over a really indexed film --------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module", params=["embedded", "elasticsearch"])
def film(request, tmp_path_factory, sample_film, airflow_home):
    """The sample film ingested and frame-sampled for real, its reference dialogue as events plus a visual event,
    a summary and a chapter whose texts are hostile markup, validated, embedded, loaded and reported on; in the
    embedded index, then in Elasticsearch (as the compose file deploys it), so every page test runs on both."""
    import json
    import uuid
    from pathlib import Path

    from cinedex.pipeline import events, frames, ingest, people, validation
    from cinedex.page import report
    from cinedex.pipeline.asr import Transcript, Utterance
    from cinedex.core.settings import Settings

    home = tmp_path_factory.mktemp("page") / "cinedex"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CINEDEX_HOME", str(home))
        patch.setenv("CINEDEX_MEDIA_ROOTS", str(Path(sample_film.path).parent))
        patch.setenv("CINEDEX_INDEX_BACKEND", request.param)
        if request.param == "elasticsearch":
            patch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", request.getfixturevalue("es_url"))
            patch.setenv("CINEDEX_ELASTICSEARCH_ALIAS", f"page-{uuid.uuid4().hex[:8]}")
        settings = Settings()
        video = ingest.ingest(sample_film.path, settings)
        frames_dir = frames.sample_frames(video, settings)
        transcript = Transcript(language="en", model="reference", utterances=[
            Utterance(start_s=u.start_s, end_s=u.end_s, text=u.text, speaker=u.speaker) for u in sample_film.utterances])
        said = events.dialogue_events(video, transcript, frames.load_sampling(frames_dir))
        # Who is on screen, found for real; the validation folder names the events folder it read, as the
        # pipeline's manifests do, and the page finds the people through it.
        found = people.load_people(people.find_people_stage(video, frames_dir, settings))
        said, shown = people.with_people(said, found)
        events_dir = settings.artifacts_dir / video.video_id / "events-test"
        events_dir.mkdir(parents=True)
        events.write_people_shown(events_dir / events.PEOPLE_SHOWN_FILE, found, shown)
        hostile = [
            Event(video_id=video.video_id, start_s=2.0, end_s=6.0, source="vision", scene_type="action",
                  event=f"A rabbit {HOSTILE}", content=f"shown {HOSTILE}", characters=[f"Bunny{HOSTILE}"],
                  speaker=f"Narrator{HOSTILE}", shot_id=said[0].shot_id, thumbnail=said[0].thumbnail),
            Event(video_id=video.video_id, start_s=0.0, end_s=sample_film.duration_s, source="summary",
                  scene_type="other", event="The film", content=f"A phone call. {HOSTILE}"),
            Event(video_id=video.video_id, start_s=0.0, end_s=sample_film.duration_s, source="chapter",
                  scene_type="other", event=f"Chapter {HOSTILE}", content="Everything."),
        ]
        validation_dir = settings.artifacts_dir / video.video_id / "validation-test"
        validation.validate_events([*said, *hostile], video.info.duration_s, validation_dir, 0.2)
        (validation_dir / "manifest.json").write_text(json.dumps({"params": {"upstream": [events_dir.name]}}))
        valid = sorted(read_events(validation_dir / "valid.jsonl"), key=lambda e: (e.start_s, e.end_s, e.id))
        open_index(settings).replace_video(
            video.video_id, valid, encode([EVENT_FIELDS.passage(e) for e in valid], "all-MiniLM-L6-v2"))
        report_file = report.write_report(video, validation_dir, settings, run_id="manual__page_test")
        yield {"settings": settings, "video": video, "events": valid, "report": report_file,
               "validation": json.loads((validation_dir / "report.json").read_text())}


@pytest.fixture
def auth(token) -> dict:
    return {"Authorization": f"Bearer {token}"}


def film_routes(video_id: str) -> list[str]:
    return ["/cinedex/", "/cinedex/static/app.js", "/cinedex/api/films", f"/cinedex/api/films/{video_id}",
            f"/cinedex/api/films/{video_id}/video", f"/cinedex/api/films/{video_id}/shots/0.jpg",
            f"/cinedex/api/films/{video_id}/files/validation-test/report.json",
            f"/cinedex/api/films/{video_id}/export/transcript.srt", "/cinedex/api/form", "/cinedex/api/runs/any",
            "/cinedex/docs", "/cinedex/openapi.json"]


def test_every_page_route_refuses_without_login(api_server, film):
    video = film["video"]
    for route in film_routes(video.video_id):
        reply = api_server.get(route)
        assert reply.status_code == 401, route
        assert video.name not in reply.text and "Yankee" not in reply.text and "cinedex-page" not in reply.text
    assert api_server.put("/cinedex/api/uploads", params={"name": "a.mp4"}, content=b"x").status_code == 401
    assert api_server.post("/cinedex/api/runs", json={"conf": {"video": video.path}}).status_code == 401
    # A browser is told where to log in; still a 401, still no data.
    page = api_server.get("/cinedex/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "log in" in page.text and "/auth/login" in page.text


def test_the_api_description_is_served_after_login(api_server, auth):
    description = api_server.get("/cinedex/openapi.json", headers=auth)
    assert description.status_code == 200 and "/api/search" in description.json()["paths"]
    docs = api_server.get("/cinedex/docs", headers=auth)
    assert docs.status_code == 200 and "'/cinedex/openapi.json'" in docs.text


def test_page_and_its_assets_are_served(api_server, auth, film):
    page = api_server.get("/cinedex/", headers=auth)
    assert page.status_code == 200 and 'src="static/app.js"' in page.text and "Content-Security-Policy" in page.text
    script = api_server.get("/cinedex/static/app.js", headers=auth)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert api_server.get("/cinedex/static/../api.py", headers=auth).status_code == 404


def test_library_lists_the_film_with_its_counts(api_server, auth, film):
    reply = api_server.get("/cinedex/api/films", headers=auth)
    assert reply.status_code == 200
    [listed] = reply.json()
    video, indexed = film["video"], film["events"]
    assert listed["video_id"] == video.video_id and listed["name"] == video.name
    assert listed["info"]["duration_s"] == pytest.approx(video.info.duration_s)
    assert listed["events"] == len(indexed)
    assert listed["events_by_source"]["asr"] == sum(e.source == "asr" for e in indexed)
    assert listed["events_by_source"]["vision"] == 1 and listed["events_by_scene_type"]["dialogue"] >= 8
    assert listed["languages"] == ["en"] and listed["pipeline_versions"] == [PIPELINE_VERSION]
    assert listed["report"].endswith("report.html")
    # No run yet, unless the trigger test ran first on the other backend (it runs the same file).
    assert listed["last_run"] is None or listed["last_run"]["run_id"].startswith("manual__")


def test_film_view_has_shots_timeline_and_validation(api_server, auth, film):
    reply = api_server.get(f"/cinedex/api/films/{film['video'].video_id}", headers=auth)
    assert reply.status_code == 200
    detail = reply.json()
    assert len(detail["shots"]) >= 5 and detail["shots"][0]["start_s"] == 0.0
    assert [e["id"] for e in detail["timeline"]] == [e.id for e in film["events"]]
    assert detail["validation"]["valid"] == len(film["events"]) and detail["validation"]["folder"] == "validation-test"
    assert api_server.get("/cinedex/api/films/0123abcd", headers=auth).status_code == 404
    assert api_server.get("/cinedex/api/films/..%2F..%2Fetc", headers=auth).status_code == 404


def test_film_view_lists_the_people_on_screen_with_their_faces(api_server, auth, film):
    """The sample film's one person (the carphone clip's man, 15.28-19.28 s): named "Person 1", with his face served
    from the film's artifacts and the lines said while he is on screen filtered by him."""
    video_id = film["video"].video_id
    detail = api_server.get(f"/cinedex/api/films/{video_id}", headers=auth).json()
    [person] = detail["people"]
    assert person["name"] == "Person 1" and person["appearances"] == [[15.28, 19.28]]
    face = api_server.get(f"/cinedex/api/films/{video_id}/files/{person['face']}", headers=auth)
    assert face.status_code == 200 and face.content[:2] == b"\xff\xd8"  # a JPEG
    on_screen = [e["start_s"] for e in detail["timeline"] if "Person 1" in e["people"]]
    assert on_screen and all(14.0 < start < 19.28 for start in on_screen)
    hits = api_server.get("/cinedex/api/search", params={"q": "Chicago", "person": "Person 1", "mode": "bm25"},
                          headers=auth).json()
    assert [h["start_s"] for h in hits] == [e["start_s"] for e in detail["timeline"]
                                            if "Person 1" in e["people"] and "Chicago" in e["content"]]


def test_video_is_served_with_range_requests(api_server, auth, film):
    from pathlib import Path

    url = f"/cinedex/api/films/{film['video'].video_id}/video"
    data = Path(film["video"].path).read_bytes()
    whole = api_server.get(url, headers=auth)
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = api_server.get(url, headers={**auth, "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = api_server.get(url, headers={**auth, "Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert tail.headers["content-range"] == f"bytes {len(data) - 500}-{len(data) - 1}/{len(data)}"
    beyond = api_server.get(url, headers={**auth, "Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416


def test_video_outside_the_media_roots_is_refused(api_server, auth, film, tmp_path, monkeypatch):
    monkeypatch.setenv("CINEDEX_MEDIA_ROOTS", str(tmp_path))  # the film's folder is no media root any more
    reply = api_server.get(f"/cinedex/api/films/{film['video'].video_id}/video", headers={**auth, "Range": "bytes=0-99"})
    assert reply.status_code == 403 and "media roots" in reply.json()["detail"]
    assert len(reply.content) < 200  # an error message, not the film


def test_shot_thumbnails(api_server, auth, film):
    video_id = film["video"].video_id
    reply = api_server.get(f"/cinedex/api/films/{video_id}/shots/0.jpg", headers=auth)
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    assert reply.content[:3] == b"\xff\xd8\xff"
    assert api_server.get(f"/cinedex/api/films/{video_id}/shots/9999.jpg", headers=auth).status_code == 404


def test_downloads_transcripts_events_and_bulk_file(api_server, auth, film, sample_film):
    import json

    video_id, indexed = film["video"].video_id, film["events"]
    base = f"/cinedex/api/films/{video_id}/export"
    srt = api_server.get(f"{base}/transcript.srt", headers=auth)
    assert srt.status_code == 200 and "attachment" in srt.headers["content-disposition"]
    assert srt.text.startswith("1\n00:00:") and " --> " in srt.text
    assert any(u.text.split()[0] in srt.text for u in sample_film.utterances)
    vtt = api_server.get(f"{base}/transcript.vtt", headers=auth).text
    assert vtt.startswith("WEBVTT") and "<script>" not in vtt
    as_json = api_server.get(f"{base}/events.json", headers=auth).json()
    assert [e["id"] for e in as_json] == [e.id for e in indexed]
    bulk = api_server.get(f"{base}/bulk.ndjson", headers=auth)
    lines = [json.loads(line) for line in bulk.text.splitlines()]
    assert bulk.headers["content-type"].startswith("application/x-ndjson") and len(lines) == 2 * len(indexed)
    assert [a["index"]["_id"] for a in lines[::2]] == [e.id for e in indexed]
    alias = film["settings"].elasticsearch_alias  # the configured one: cinedex-events unless set
    assert lines[0]["index"]["_index"] == f"{alias}-v{PIPELINE_VERSION}" and lines[1]["id"] == indexed[0].id
    assert api_server.get(f"{base}/film.exe", headers=auth).status_code == 404


def test_report_escapes_model_output_and_links_data_docs(api_server, auth, film):
    html = film["report"].read_text()
    assert "<script>" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in html and "A phone call." in html and "<svg" in html
    assert "Passed" in html and f"{film['validation']['valid']} of" in html
    video_id = film["video"].video_id
    relative = film["report"].relative_to(film["settings"].artifacts_dir / video_id)
    served = api_server.get(f"/cinedex/api/films/{video_id}/files/{relative}", headers=auth)
    assert served.status_code == 200 and served.text == html
    assert served.headers["content-security-policy"].startswith("sandbox")
    data_docs = relative.parent / "../validation-test/data_docs/index.html"
    assert 'href="../validation-test/data_docs/index.html"' in html
    docs = api_server.get(f"/cinedex/api/films/{video_id}/files/{data_docs}", headers=auth)
    assert docs.status_code == 200 and "Expectations" in docs.text
    outside = api_server.get(f"/cinedex/api/films/{video_id}/files/..%2F..%2F..%2Fpasswords.json", headers=auth)
    assert outside.status_code == 404


def test_search_hits_escape_model_output(api_server, auth, film):
    reply = api_server.get("/cinedex/api/search", params={"q": "rabbit shown", "mode": "bm25"}, headers=auth)
    [hit, *_] = reply.json()
    assert hit["source"] == "vision" and "<script>" not in hit["highlight"] and "<img" not in hit["highlight"]
    assert "<b>" in hit["highlight"]


def test_upload_that_is_not_a_video_is_refused_with_a_clear_message(api_server, auth, film, tmp_path, monkeypatch):
    monkeypatch.setenv("CINEDEX_INBOX", str(tmp_path / "inbox"))
    reply = api_server.put("/cinedex/api/uploads", params={"name": "holiday.mp4"}, headers=auth,
                           content=b"These are my notes, not a film.\n" * 100)
    assert reply.status_code == 415
    assert reply.json()["detail"].startswith("not a video cinedex can index: holiday.mp4: not a media file")
    assert [p for p in (tmp_path / "inbox").rglob("*") if p.is_file()] == []


def test_upload_over_the_size_limit_is_refused(api_server, auth, film, tmp_path, monkeypatch, clip_with_audio):
    monkeypatch.setenv("CINEDEX_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("CINEDEX_UPLOAD_MAX_BYTES", "10000")
    reply = api_server.put("/cinedex/api/uploads", params={"name": "bunny.mp4"}, headers=auth,
                           content=clip_with_audio.read_bytes())
    assert reply.status_code == 413 and "CINEDEX_UPLOAD_MAX_BYTES" in reply.json()["detail"]
    # Without a declared length the limit holds while the bytes arrive.
    chunks = iter([clip_with_audio.read_bytes()[i:i + 4096] for i in range(0, 40960, 4096)])
    reply = api_server.put("/cinedex/api/uploads", params={"name": "bunny.mp4"}, headers=auth, content=chunks)
    assert reply.status_code == 413
    assert [p for p in (tmp_path / "inbox").rglob("*") if p.is_file()] == []


def test_upload_of_a_video_lands_in_todays_inbox_folder(api_server, auth, film, tmp_path, monkeypatch,
                                                        clip_with_audio):
    monkeypatch.setenv("CINEDEX_INBOX", str(tmp_path / "inbox"))
    today = tmp_path / "inbox" / f"{datetime.now(timezone.utc):%Y-%m-%d}"
    for expected in ("bunny.mp4", "bunny (2).mp4"):
        reply = api_server.put("/cinedex/api/uploads", params={"name": "../clips/bunny.mp4"}, headers=auth,
                               content=clip_with_audio.read_bytes())
        assert reply.status_code == 201, reply.text
        uploaded = reply.json()
        assert uploaded["name"] == expected and uploaded["path"] == str(today / expected)
        assert uploaded["info"]["has_video"] and uploaded["size_bytes"] == clip_with_audio.stat().st_size
    assert sorted(p.name for p in today.iterdir()) == ["bunny (2).mp4", "bunny.mp4"]


def test_trigger_form_run_and_progress(api_server, auth, film, dag_in_airflow):
    form = api_server.get("/cinedex/api/form", headers=auth)
    assert form.status_code == 200
    fields = {field["name"]: field for field in form.json()}
    assert fields["video"]["schema"]["minLength"] == 1 and fields["frame_width"]["title"] == "Frame width"

    refused = api_server.post("/cinedex/api/runs", headers=auth, json={"conf": {"video": "x.mp4", "frame_width": 10}})
    assert refused.status_code == 400 and "10" in refused.json()["detail"], refused.text

    video = film["video"]
    started = api_server.post("/cinedex/api/runs", headers=auth,
                              json={"conf": {"video": video.path, "vision_model": "none"}})
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["state"] == "queued" and run["video"] == video.path and run["error"] == ""
    progress = api_server.get(f"/cinedex/api/runs/{run['run_id']}", headers=auth).json()
    assert progress["run_id"] == run["run_id"] and {t["task_id"] for t in progress["tasks"]} >= {"ingest_video", "load",
                                                                                                 "write_report"}
    assert [t["task_id"] for t in progress["tasks"]][0] == "ingest_video"
    listed = api_server.get("/cinedex/api/films", headers=auth).json()
    assert listed[0]["last_run"]["run_id"] == run["run_id"] and listed[0]["last_run"]["state"] == "queued"
    assert api_server.get("/cinedex/api/runs/no-such-run", headers=auth).status_code == 404


# --- the query embedder's warm-up: in the API server only -----------------------------------------------------------

WARM_UP_THREAD = "cinedex-embedder-warm-up"


def test_the_query_embedder_warms_up_when_the_server_starts_not_when_the_app_is_built(tmp_path, monkeypatch):
    import threading

    from fastapi.testclient import TestClient

    from cinedex.index import embedder
    from cinedex.page.api import create_app

    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path / "cinedex"))
    embedder.load_model.cache_clear()
    app = create_app()
    assert WARM_UP_THREAD not in {thread.name for thread in threading.enumerate()}
    assert embedder.load_model.cache_info().currsize == 0
    with TestClient(app):  # runs the app's lifespan, as Airflow's API server does for the apps it mounts
        for thread in threading.enumerate():
            if thread.name == WARM_UP_THREAD:
                thread.join(120)
    assert embedder.load_model.cache_info().currsize == 1


def test_a_process_that_loads_the_plugin_starts_no_model_and_exits_cleanly():
    """Every task process and Airflow command loads the plugins; a model loading in a thread of a process that then
    exits aborted `airflow backfill create` ("terminate called without an active exception")."""
    import subprocess
    import sys
    from pathlib import Path

    plugins = Path(__file__).parents[1] / "plugins"
    check = ("import sys, threading; sys.path.insert(0, sys.argv[1]); import cinedex_plugin; "
             f"assert {WARM_UP_THREAD!r} not in {{t.name for t in threading.enumerate()}}; "
             "assert 'onnxruntime' not in sys.modules, 'the embedder was loaded'")
    done = subprocess.run([sys.executable, "-c", check, str(plugins)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_report_strip_inlines_a_bounded_number_of_thumbnails_and_lists_the_stages(film):
    from cinedex.page import report
    from cinedex.pipeline.frames import load_sampling

    sampling = load_sampling(next(film["settings"].artifacts_dir.glob(f"{film['video'].video_id}/frames-*")))
    # A film of a thousand shots (the sample's shots repeated along 10 hours): the strip keeps at most
    # STRIP_THUMBNAILS of them, so the report stays small.
    many = [shot.model_copy(update={"shot_id": i, "start_s": 36.0 * i, "end_s": 36.0 * (i + 1)})
            for i, shot in enumerate(sampling.shots * (1000 // len(sampling.shots) + 1))][:1000]
    records = {"transcribe": {"": {"done": 34.6, "total": 34.6, "unit": "s of audio decoded", "try_number": 2,
                                   "elapsed_s": 12.5, "written_at": 1000.0}},
               "describe_windows": {"0": {"done": 3, "total": 3, "unit": "windows described", "try_number": 1,
                                          "elapsed_s": 40.0, "written_at": 2000.0},
                                    "1": {"done": 2, "total": 2, "unit": "windows described", "try_number": 1,
                                          "elapsed_s": 30.0, "written_at": 2000.0}}}
    stages = report.stage_figures(records)
    assert [s["task"] for s in stages] == ["transcribe", "describe_windows"]
    html = report.render_report(film["video"], [], many, {"valid": 0, "total": 0}, "docs.html", "run-1",
                                stages=stages)
    images = html.count('<image href="data:image/jpeg;base64,')
    assert 100 <= images <= report.STRIP_THUMBNAILS
    assert len(html) < 1_500_000
    assert "<td>describe_windows</td><td>5 of 5 windows described</td><td>70.0 s</td><td>1</td>" in html
    assert "<td>transcribe</td><td>35 of 35 s of audio decoded</td><td>12.5 s</td><td>2</td>" in html
