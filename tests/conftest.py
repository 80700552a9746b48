"""Shared fixtures: real media shipped inside installed packages, and settings confined to a test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cinedex.sample import SampleFilm, build_sample_film, clip, conversation
from cinedex.core.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def sample_film(tmp_path_factory) -> SampleFilm:
    return build_sample_film(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def conversation_wav() -> Path:
    """pyannote's sample: 30 s, 16 kHz mono, a two-person phone call."""
    return conversation()[0]


@pytest.fixture(scope="session")
def conversation_stm() -> Path:
    """The conversation's reference transcript: one timed utterance a line."""
    return conversation()[1]


@pytest.fixture(scope="session")
def clip_with_audio() -> Path:
    """bigbuckbunny.mp4: 5.3 s of H.264 with 6-channel 48 kHz AAC."""
    return clip("bigbuckbunny.mp4")


@pytest.fixture(scope="session")
def clip_without_audio() -> Path:
    """bikes.mp4: 10 s of H.264 and no audio stream."""
    return clip("bikes.mp4")


@pytest.fixture(scope="session")
def media_dirs(sample_film) -> list[Path]:
    """Folders holding real media: the sample film's and the packages' own."""
    return [Path(sample_film.path).parent, clip("bikes.mp4").parent, conversation()[0].parent]


@pytest.fixture
def settings(tmp_path, media_dirs) -> Settings:
    return Settings(home=tmp_path / "home", media_roots=os.pathsep.join(map(str, [tmp_path, *media_dirs])))


@pytest.fixture(scope="session")
def tiny_vision_model(tmp_path_factory) -> Path:
    """A tiny random Qwen3-VL checkpoint folder (model, tokenizer, processor, chat template), built once."""
    from tiny_qwen3vl import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny-qwen3vl"))


@pytest.fixture(scope="session")
def sampled_film(tmp_path_factory, sample_film, media_dirs):
    """The sample film ingested and frame-sampled once: (IngestedVideo, FrameSampling)."""
    from cinedex.pipeline import frames, ingest

    home = tmp_path_factory.mktemp("sampled")
    settings = Settings(home=home / "home", media_roots=os.pathsep.join(map(str, [home, *media_dirs])))
    video = ingest.ingest(sample_film.path, settings)
    return video, frames.load_sampling(frames.sample_frames(video, settings))


def _window(index, start_s, end_s, sampling, film):
    from cinedex.pipeline.windows import Window, WindowFrame, WindowLine

    chosen = [f for f in sampling.frames if start_s <= f.time_s < end_s]
    lines = [WindowLine(start_s=u.start_s, end_s=u.end_s, speaker=u.speaker, text=u.text)
             for u in film.utterances if u.start_s < end_s and u.end_s > start_s][:2]
    return Window(index=index, start_s=start_s, end_s=end_s, shot_ids=sorted({f.shot_id for f in chosen}),
                  frames=[WindowFrame(time_s=f.time_s, path=f.path, shot_id=f.shot_id) for f in chosen],
                  lines=lines, source_fps=film.fps)


@pytest.fixture(scope="session")
def windows(sampled_film, sample_film) -> list:
    """Two real windows of the sample film (8-13 s and 15-20 s) with their frames and reference dialogue."""
    _, sampling = sampled_film
    return [_window(0, 8.0, 13.0, sampling, sample_film), _window(1, 15.0, 20.0, sampling, sample_film)]


AIRFLOW_ADMIN = ("admin", "cinedex-test-password")
# One login per role of Airflow's simple auth manager, as a deployment's colleagues would have them.
AIRFLOW_USERS = {"admin": ("admin", AIRFLOW_ADMIN[1]), "user": ("ursula", "cinedex-user-password"),
                 "viewer": ("vera", "cinedex-viewer-password"),
                 # A login without any role: Airflow grants it nothing, not even reading the DAG's runs.
                 "": ("nora", "cinedex-no-role-password")}


def _private_airflow_environment() -> Path:
    """A private Airflow home (never one a live scheduler uses) with this project's DAGs and plugins and one login
    for the API server. Set when this file is imported: Airflow reads its configuration once, when it is first
    imported, and any test module may import it before a fixture would run."""
    import atexit
    import json
    import secrets
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="cinedex-test-airflow-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict(AIRFLOW_USERS.values())))
    project = Path(__file__).resolve().parent.parent
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for role, (name, _) in
                                                             AIRFLOW_USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        # Airflow writes a secret into airflow.cfg only when it creates that file; a module that imported Airflow
        # first may have read its configuration before, so the API server's token secret is given outright.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    })
    return home


AIRFLOW_HOME = _private_airflow_environment()


@pytest.fixture(scope="session")
def airflow_home():
    """The session's Airflow home, its database migrated on first use."""
    from cinedex import cli

    cli.airflow_environment(cli.Settings(home=AIRFLOW_HOME))
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def es_url(tmp_path_factory):
    """A real Elasticsearch-API server for the session: noida-db started here, or CINEDEX_TEST_ES_URL's server."""
    if os.environ.get("CINEDEX_TEST_ES_URL"):
        yield os.environ["CINEDEX_TEST_ES_URL"]
        return
    from elastic_server import elasticsearch_server

    with elasticsearch_server(tmp_path_factory.mktemp("elasticsearch")) as server:
        yield server.url


@pytest.fixture(scope="module")
def api_server(airflow_home):
    """Airflow's real API server app, in process, with the cinedex plugin mounted as Airflow mounts it."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture(scope="module")
def headers_of(api_server):
    """role -> the Authorization header of that role's user, logged in through Airflow's /auth/token."""
    def login(role: str) -> dict:
        name, password = AIRFLOW_USERS[role]
        reply = api_server.post("/auth/token", json={"username": name, "password": password})
        assert reply.status_code in (200, 201), reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    return login


@pytest.fixture(scope="module")
def token(headers_of) -> str:
    return headers_of("admin")["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def dag_in_airflow(airflow_home):
    """The index DAG serialized into the test database, as the dag-processor would put it there."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from cinedex import cli

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags")), "dags-folder", None)
