"""The DAGs: integrity, and a real end-to-end `dag.test()` run of `cinedex_index_video` on the sample film."""

from __future__ import annotations

import json

import pytest

from cinedex import cli

KNOWN_POOLS = {"default_pool", "gpu"}


@pytest.fixture(scope="session")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags"), known_pools=KNOWN_POOLS)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "cinedex_index_video" in dagbag.dag_ids


def test_the_page_knows_every_task_of_the_index_dag_in_pipeline_order(dagbag):
    from cinedex.orchestration.dagspec import INDEX_TASKS

    dag = dagbag.dags["cinedex_index_video"]
    assert sorted(INDEX_TASKS) == sorted(dag.task_ids)
    for task_id in INDEX_TASKS:  # each task after all it depends on
        assert all(INDEX_TASKS.index(up) < INDEX_TASKS.index(task_id) for up in dag.get_task(task_id).upstream_task_ids)


def test_every_dag_is_tagged_retried_and_uses_known_pools(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries}"
            assert task.pool in KNOWN_POOLS, f"{dag_id}.{task.task_id} uses unknown pool {task.pool}"


def test_trigger_form_fields_all_have_titles_and_descriptions(dagbag):
    params = dagbag.get_dag("cinedex_index_video").params
    for name in params:
        assert params.get_param(name).schema.get("title") and params.get_param(name).description, name


@pytest.fixture
def indexed_sample(airflow_home, dagbag, sample_film, tmp_path, monkeypatch):
    """Runs the index DAG on the sample film, as `cinedex index` does; returns a function to run it again."""
    from pathlib import Path

    home = tmp_path / "cinedex"
    monkeypatch.setenv("CINEDEX_HOME", str(home))
    monkeypatch.setenv("CINEDEX_MEDIA_ROOTS", str(Path(sample_film.path).parent))
    monkeypatch.setenv("CINEDEX_SUMMARY_MAX_NEW_TOKENS", "300")  # the random model always writes the longest answer
    dag = dagbag.get_dag("cinedex_index_video")

    def run(**conf):
        return dag.test(run_conf={"video": sample_film.path, **conf})

    return run, home


@pytest.mark.slow
@pytest.mark.parametrize("vision_model", ["none", "tiny"])
def test_index_dag_end_to_end_is_searchable_and_idempotent(indexed_sample, sample_film, caplog, vision_model,
                                                           request):
    from cinedex.index.embedded import EmbeddedIndex
    from cinedex.index.search import search
    from cinedex.core.model import SearchFilters
    from cinedex.core.settings import Settings

    # Through the trigger form's field, as a user would choose it.
    model = str(request.getfixturevalue("tiny_vision_model")) if vision_model == "tiny" else "none"
    run, home = indexed_sample
    first = run(vision_model=model)
    assert str(first.state) == "success"
    states = {ti.task_id: str(ti.state) for ti in first.get_task_instances()}
    # Without a vision model the GPU tasks that would only pass their input on are skipped: no `gpu` slot taken.
    for gpu_task in ("describe_windows", "summarize_film"):
        assert states.pop(gpu_task) == ("skipped" if vision_model == "none" else "success"), gpu_task
    assert states == {task: "success" for task in ["ingest_video", "extract_audio", "sample_frames", "transcribe",
                                                   "diarize_speakers", "read_text", "find_people", "plan_windows", "build_events",
                                                   "plan_summary", "validate", "embed", "load", "write_report"]}

    settings = Settings()
    reference = next(u for u in sample_film.utterances if "Yankee" in u.text)
    hits = search("they all call me a Yankee down here", settings, limit=3)
    assert hits and "yankee" in hits[0].content.lower()
    assert abs(hits[0].start_s - reference.start_s) <= 1.0 and abs(hits[0].end_s - reference.end_s) <= 1.0
    assert hits[0].start_time == "00:00:" + f"{int(hits[0].start_s):02d}"

    # A paraphrase sharing no word with what is said is found by meaning.
    [greeting, *_] = search("greeting on the telephone", settings, limit=3)
    assert "hello" in greeting.content.lower() and greeting.matched_by == ["knn"]
    assert greeting.start_s < 12.0

    video_id = hits[0].video_id
    indexed = EmbeddedIndex(settings.index_dir).video_events(video_id)
    assert sum(event.source == "asr" for event in indexed) >= 8
    # Without a token the default indexes no speaker labels (issue 15: the bundled engine is opt-in for now).
    assert {event.speaker for event in indexed if event.source == "asr"} == {""}
    # Who is on screen: the carphone clip's man (15.28-19.28 s) is the film's one person, listed by the lines said
    # while he is on screen and by no line said over the cartoon or the bikes.
    carphone = (15.28, 19.28)
    lines = [e for e in indexed if e.source == "asr"]
    inside = [e for e in lines
              if min(e.end_s, carphone[1]) - max(e.start_s, carphone[0]) > 0.5 * (e.end_s - e.start_s)]
    outside = [e for e in lines if e.end_s <= carphone[0] or e.start_s >= carphone[1]]
    assert inside and all(e.people == ["Person 1"] for e in inside), [(e.start_s, e.people) for e in inside]
    assert outside and not any(e.people for e in outside), [(e.start_s, e.people) for e in outside if e.people]
    # Both "originally from Chicago" lines are found, but only Sheila's is said while he is on screen.
    chicago = [e.start_s for e in inside if "chicago" in e.content.lower()]
    assert chicago and [h.start_s for h in search("originally from Chicago", settings,
                                                  SearchFilters(person="Person 1"), limit=5, mode="bm25")] == chicago
    if vision_model == "tiny":
        # A random model writes nonsense, but schema-valid nonsense: every moment is indexed or quarantined.
        events_dir = next(settings.artifacts_dir.joinpath(video_id).glob("events-*"))
        quarantined = (events_dir / "vision_quarantine.jsonl").read_text().splitlines()
        visual = [event for event in indexed if event.source == "vision"]
        assert visual or quarantined
        assert all(0 <= event.start_s < event.end_s <= sample_film.duration_s for event in visual)
        cast = json.loads((events_dir / "roster.json").read_text())
        assert {c for event in visual for c in event.characters} <= set(cast)
        # The film pass: a summary over the whole film and chapters tiling it, indexed as their own documents.
        [summary] = [event for event in indexed if event.source == "summary"]
        assert (summary.start_s, summary.end_s) == (0.0, sample_film.duration_s) and summary.content
        chapters = [event for event in indexed if event.source == "chapter"]
        assert chapters and chapters[0].start_s == 0.0 and chapters[-1].end_s == sample_film.duration_s
    ids_before = [event.id for event in indexed]

    caplog.clear()
    with caplog.at_level("INFO"):
        second = run(vision_model=model)
    assert str(second.state) == "success"
    for stage in ("frames", "asr", "speakers", "on_screen_text", "people", "events", "validation", "embeddings"):
        assert f"{stage}: cached result for video {video_id[:12]}" in caplog.text
    if vision_model == "tiny":
        assert f"windows: cached result for video {video_id[:12]}" in caplog.text
        assert "vision: batch 0: 1 windows, 1 already done" in caplog.text
        assert f"film: cached result for video {video_id[:12]}" in caplog.text
    assert [event.id for event in EmbeddedIndex(settings.index_dir).video_events(video_id)] == ids_before
    # The report is every run's own, rewritten by the rerun with its run id.
    [report] = settings.artifacts_dir.joinpath(video_id).glob("report-*/report.html")
    assert second.run_id in report.read_text() and first.run_id not in report.read_text()
    assert "People on screen" in report.read_text() and 'alt="face of Person 1"' in report.read_text()


@pytest.mark.slow
def test_bad_input_fails_at_ingest_without_retries_and_loads_nothing(indexed_sample, tmp_path, monkeypatch):
    from cinedex.core.settings import Settings

    _, home = indexed_sample
    broken = tmp_path / "broken film.mp4"
    broken.write_text("not a film")
    monkeypatch.setenv("CINEDEX_MEDIA_ROOTS", str(tmp_path))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags")).get_dag("cinedex_index_video")
    run = dag.test(run_conf={"video": str(broken)})
    states = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert str(states["ingest_video"].state) == "failed" and states["ingest_video"].try_number == 1
    assert not (Settings().index_dir / "meta.json").exists()


@pytest.mark.slow
def test_index_dag_loads_elasticsearch_where_hybrid_search_finds_a_paraphrase(indexed_sample, es_url, monkeypatch,
                                                                             sample_film):
    import uuid

    from cinedex.index import open_index
    from cinedex.index.search import search
    from cinedex.core.settings import Settings

    monkeypatch.setenv("CINEDEX_INDEX_BACKEND", "elasticsearch")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", es_url)
    monkeypatch.setenv("CINEDEX_ELASTICSEARCH_ALIAS", f"test-{uuid.uuid4().hex[:8]}-events")
    run, _ = indexed_sample
    assert str(run(vision_model="none").state) == "success"

    settings = Settings()
    assert not (settings.index_dir / "meta.json").exists()  # loaded into Elasticsearch, not the embedded index
    [said, *_] = search("they all call me a Yankee down here", settings, limit=3)
    reference = next(u for u in sample_film.utterances if "Yankee" in u.text)
    assert "yankee" in said.content.lower() and abs(said.start_s - reference.start_s) <= 1.0
    assert "<b>" in said.highlight and "bm25" in said.matched_by
    [greeting, *_] = search("greeting on the telephone", settings, limit=3)
    assert "hello" in greeting.content.lower() and greeting.matched_by == ["knn"]

    ids_before = [e.id for e in open_index(settings).video_events(said.video_id)]
    assert str(run(vision_model="none").state) == "success"
    assert [e.id for e in open_index(settings).video_events(said.video_id)] == ids_before
