"""The `cinedex` command as a script uses it: `search --json` prints JSON and nothing else on standard output, on
both backends; everything logged goes to standard error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cinedex.core.model import EVENT_FIELDS, Event
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.index.embedder import encode

LINES = [(14.4, 17.8, "Sheila", "And I'm Sheila in Texas, originally from Chicago."),
         (24.1, 28.4, "Sheila", "They all call me a Yankee down here.")]


def cli_environment(backend: str, home: Path, request) -> dict[str, str]:
    """The environment of a `cinedex` process searching `backend`; on Elasticsearch, an alias of its own."""
    env = {**os.environ, "CINEDEX_HOME": str(home), "CINEDEX_INDEX_BACKEND": backend}
    if backend == "elasticsearch":
        env |= {"AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": request.getfixturevalue("es_url"),
                "CINEDEX_ELASTICSEARCH_ALIAS": f"cli-{uuid.uuid4().hex[:8]}"}
    return env


@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
def test_search_json_is_clean_on_stdout(backend, tmp_path, request):
    env = cli_environment(backend, tmp_path / "home", request)
    settings = Settings(home=tmp_path / "home", index_backend=backend,
                        elasticsearch_alias=env.get("CINEDEX_ELASTICSEARCH_ALIAS", "cinedex-events"))
    if backend == "elasticsearch":
        os.environ["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"] = env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"]
    try:
        events = [Event(video_id="call", start_s=a, end_s=b, speaker=who, content=text, scene_type="dialogue",
                        people=["Person 1"] if a < 20 else []) for a, b, who, text in LINES]
        open_index(settings).replace_video("call", events, encode([EVENT_FIELDS.passage(e) for e in events],
                                                                  "all-MiniLM-L6-v2"))
    finally:
        if backend == "elasticsearch":
            del os.environ["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"]

    done = subprocess.run([sys.executable, "-m", "cinedex.cli", "search", "originally from Chicago", "--json",
                           "--limit", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)  # nothing but the JSON
    assert hits[0]["content"] == LINES[0][3] and hits[0]["start_s"] == 14.4
    assert {"video_id", "event_id", "start_time", "end_time", "score", "speaker", "matched_by"} <= set(hits[0])
    # Narrowed to the lines said while a person is on screen.
    done = subprocess.run([sys.executable, "-m", "cinedex.cli", "search", "Chicago Yankee", "--json", "--mode", "bm25",
                           "--person", "Person 1"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [(hit["start_s"], hit["people"]) for hit in json.loads(done.stdout)] == [(14.4, ["Person 1"])]


@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
def test_search_of_an_empty_or_missing_index_says_so_on_stderr(backend, tmp_path, request):
    env = cli_environment(backend, tmp_path / "home", request)  # nothing loaded: a missing folder, a new alias
    done = subprocess.run([sys.executable, "-m", "cinedex.cli", "search", "anything", "--json"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    state = "missing" if backend == "embedded" else "empty"
    assert f"the {backend} index" in done.stderr and f"is {state}" in done.stderr, done.stderr
    assert "index a video first" in done.stderr


def test_a_search_imports_neither_airflow_nor_torch_nor_the_pipeline(tmp_path, request):
    """What makes a cold `cinedex search` take about a second instead of 15: it loads the index and the ONNX
    query embedder, nothing else heavy."""
    env = cli_environment("embedded", tmp_path / "home", request)
    events = [Event(video_id="call", start_s=a, end_s=b, speaker=who, content=text, scene_type="dialogue")
              for a, b, who, text in LINES]
    open_index(Settings(home=tmp_path / "home")).replace_video(
        "call", events, encode([EVENT_FIELDS.passage(e) for e in events], "all-MiniLM-L6-v2"))
    script = ("import json, sys; from cinedex.cli import main; code = main(['search', 'originally from Chicago', "
              "'--json']); heavy = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
              "('airflow', 'torch', 'transformers', 'sentence_transformers', 'whisperx', 'great_expectations')} "
              "| {m for m in sys.modules if m.startswith('cinedex.pipeline') or m.startswith('cinedex.orchestration.')"
              " and m != 'cinedex.orchestration.dagspec'}); sys.stderr.write('HEAVY ' + json.dumps(heavy)); "
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["content"] == LINES[0][3]
    assert done.stderr.rsplit("HEAVY ", 1)[1] == "[]"
