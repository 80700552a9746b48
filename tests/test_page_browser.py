"""The cinedex page as a person uses it, in headless Chromium against real Airflow components: log in, upload the
sample film, wait for its run, search for a spoken phrase, play the film from the first hit, and open the film from
the library.

Airflow runs as it does in a deployment: `api-server`, `scheduler`, `dag-processor` and `triggerer` as their own
processes, in two configurations, so every step runs on each:

- `make-ui-embedded`: what `make ui` starts on a laptop (`cinedex ui`: LocalExecutor on its own SQLite database under
  CINEDEX_HOME) and the embedded index;
- `compose-elasticsearch`: what docker-compose.yaml deploys: CeleryExecutor on Redis with a default-queue worker and
  a `gpu`-queue worker, and the Elasticsearch index (the test session's Elasticsearch-API server), on a private
  PostgreSQL database created for the test and dropped after it (tests/airflow_services.py).

Screenshots of every step are kept in the folder the test prints (CINEDEX_TEST_ARTIFACTS, default
.test-artifacts/browser), a subfolder per configuration.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from airflow_services import ADMIN, airflow_stack, cinedex_ui, services_available
from browser import follow_run, headless_page, required, screenshot_folder

from cinedex.orchestration.dagspec import INDEX_DAG_ID

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_TIMEOUT_S = 300
SPOKEN = "they all call me a Yankee down here"
CONFIGURATIONS = ("make-ui-embedded", "compose-elasticsearch")
GPU_TASKS = {"transcribe", "describe_windows", "summarize_film"}


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def airflow_services(request, tmp_path_factory):
    """Airflow's api-server, scheduler, dag-processor and triggerer, started as in a deployment: with LocalExecutor
    and the embedded index, or as the compose file deploys it (CeleryExecutor with a default and a `gpu` worker,
    Elasticsearch)."""
    configuration = request.param
    compose = configuration == "compose-elasticsearch"
    if compose and (reason := services_available(redis=True)):
        required(reason)
    root = tmp_path_factory.mktemp(f"airflow-services-{configuration}")
    env = {
        "CINEDEX_HOME": str(root / "cinedex"),
        "CINEDEX_MEDIA_ROOTS": str(root / "cinedex"),
        # The cheap settings of the DAG test: no vision model, the bundled tiny speech model.
        "CINEDEX_VISION_MODEL": "none",
        "CINEDEX_ASR_MODEL": "",
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    started = time.monotonic()
    if not compose:
        env["CINEDEX_INDEX_BACKEND"] = "embedded"
        del env["AIRFLOW__CORE__PARALLELISM"]  # as `make ui` runs, with Airflow's defaults
        with cinedex_ui(root / "cinedex", env) as ui:
            yield {"configuration": configuration, "stack": None, "url": ui["url"], "home": root, "env": env,
                   "login": ui["login"], "logs": {name: ui["logs"] / f"{name}.log" for name in ("scheduler",)}}
    else:
        env.update({
            "CINEDEX_INDEX_BACKEND": "elasticsearch",
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": request.getfixturevalue("es_url"),
            "CINEDEX_ELASTICSEARCH_ALIAS": f"browser-{uuid.uuid4().hex[:8]}",
        })
        # airflow_stack runs `cinedex airflow-setup` (the `gpu` pool) and starts both Celery workers.
        with airflow_stack(root / "airflow", executor="CeleryExecutor", extra_env=env) as stack:
            stack.wait_for_dags(INDEX_DAG_ID)
            yield {"configuration": configuration, "stack": stack, "url": stack.url, "home": root, "env": env,
                   "login": ADMIN, "logs": {name: c.log for name, c in stack.components.items()}}
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nbrowser test, {configuration}: {time.monotonic() - started:.0f} s with Airflow's start and stop")


def indexed(services):
    """The index the deployment's load task wrote, opened here as the page's backend opens it."""
    if services["env"]["CINEDEX_INDEX_BACKEND"] == "elasticsearch":
        from elasticsearch import Elasticsearch

        from cinedex.index.elastic import ElasticIndex

        return ElasticIndex(Elasticsearch(services["env"]["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"]),
                            alias=services["env"]["CINEDEX_ELASTICSEARCH_ALIAS"])
    from cinedex.index.embedded import EmbeddedIndex

    return EmbeddedIndex(services["home"] / "cinedex" / "index")


@pytest.fixture(scope="module")
def screenshots(request, airflow_services) -> Path:
    return screenshot_folder(request.config, airflow_services["configuration"])


@pytest.fixture(scope="module")
def browser_page(airflow_services):
    """A fresh browser for each configuration: no login cookie carried over (cookies ignore the port)."""
    with headless_page() as page:
        yield page


def test_upload_index_search_and_play_from_the_hit(airflow_services, browser_page, screenshots, sample_film):
    page, base = browser_page, airflow_services["url"]

    def shot(step: str) -> None:
        page.screenshot(path=str(screenshots / f"{step}.png"), full_page=True)

    # Without a login the page is refused and says where to log in.
    reply = page.goto(f"{base}/cinedex/")
    assert reply.status == 401
    shot("01-not-logged-in")
    page.click("text=log in")
    page.fill("input[name=username]", airflow_services["login"][0])
    page.fill("input[name=password]", airflow_services["login"][1])
    shot("02-airflow-login")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/cinedex/", timeout=30_000)
    page.wait_for_selector("#form-fields input[name=vision_model]", state="attached")
    assert page.input_value("#form-fields input[name=vision_model]") == "none"
    shot("03-library")

    # Upload the sample film with the trigger form's fields and follow its run to the end.
    page.click("button[data-tab=upload]")
    page.set_input_files("#upload-file", sample_film.path)
    page.click("#upload-button")
    page.wait_for_selector("#run-state", state="visible", timeout=60_000)
    # The upload's bar is full once the run starts, and says how much was sent.
    assert float(page.eval_on_selector("#upload-progress", "bar => bar.value")) == 1.0
    megabytes = f"{Path(sample_film.path).stat().st_size / 1e6:.1f}"
    assert page.inner_text("#upload-bytes") == f"{megabytes} of {megabytes} MB sent"
    shot("04-run-started")
    # The run's progress bar moves as its stages go: read it until the run ends, a screenshot when it first moves
    # and when it first passes half way.
    seen = follow_run(page, shot, RUN_TIMEOUT_S)
    state = page.get_attribute("#run", "data-finished")
    assert state == "success", page.inner_text("#run") + "\n" + airflow_services["logs"]["scheduler"].read_text()[-3000:]
    assert page.inner_text("#run-stage") == "write_report"
    assert float(page.eval_on_selector("#run-progress", "bar => bar.value")) == 1.0
    assert page.inner_text("#run-percent") == "100%"
    between = sorted({v for v in seen if 0 < v < 1})
    assert len(between) >= 3, seen  # it advanced through stages, not from nothing to done
    assert seen == sorted(seen), seen  # and never went back
    # Each stage's own bar is full once it is done, and the stage's figures were recorded as it went.
    assert page.eval_on_selector("#run-tasks tr[data-task=transcribe] progress", "bar => bar.value") == 1
    assert page.locator("#run-tasks tr[data-task=load] .state").inner_text() == "success"
    if airflow_services["configuration"] == "compose-elasticsearch":
        # As deployed: speech (and vision) on the `gpu` worker through the `gpu` pool, the rest on the default one.
        stack = airflow_services["stack"]
        run_id = page.inner_text("#run-id").strip()
        ran = [t for t in stack.task_instances(INDEX_DAG_ID, run_id) if t["state"] == "success"]
        assert "transcribe" in {t["task_id"] for t in ran}, stack.describe(INDEX_DAG_ID, run_id)
        for ti in ran:
            on_gpu = ti["task_id"] in GPU_TASKS
            assert (ti["queue"], ti["pool"]) == (("gpu", "gpu") if on_gpu else ("default", "default_pool")), ti
            assert ti["hostname"] == ("gpu-worker" if on_gpu else "default-worker"), ti

    # Search for a phrase said in the film; the first hit is where it is said.
    page.click("button[data-tab=search]")
    page.fill("#search-query", SPOKEN)
    # Where each hit sits the moment the list is filled in, before any thumbnail has loaded.
    page.evaluate("""() => { const hits = document.getElementById("hits");
        new MutationObserver((changes, observer) => {
            if (!hits.children.length) return;
            window.hitPlaces = [...hits.children].map((h) => { const r = h.getBoundingClientRect();
                                                               return [r.top, r.height]; });
            observer.disconnect();
        }).observe(hits, { childList: true }); }""")
    page.click("#search-form button[type=submit]")
    first = page.locator("#hits .hit").first
    # The API server loads the query embedder as it starts (ONNX Runtime, about a second), so even its first search
    # answers at once.
    first.wait_for(timeout=30_000)
    assert "yankee" in first.inner_text().lower()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=first.locator("img").element_handle(), timeout=30_000)
    shot("06-search")
    # No layout shift while results load: once every thumbnail is in, every hit is where it first appeared.
    page.wait_for_function("[...document.querySelectorAll('#hits img')].every((img) => img.complete)",
                           timeout=30_000)
    placed = page.evaluate("[...document.getElementById('hits').children].map((h) => {"
                           " const r = h.getBoundingClientRect(); return [r.top, r.height]; })")
    first_placed = page.evaluate("window.hitPlaces")
    assert first_placed and len(first_placed) == len(placed)
    assert all(abs(a - b) < 0.5 for was, now in zip(first_placed, placed) for a, b in zip(was, now)), \
        (first_placed, placed)
    start = float(first.get_attribute("data-start"))
    reference = next(u for u in sample_film.utterances if "Yankee" in u.text)
    assert abs(start - reference.start_s) <= 1.0

    # From the keyboard: down to the next hit, back up, Enter plays the one in focus.
    first.focus()
    if page.locator("#hits .hit").count() > 1:
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement === document.querySelectorAll('#hits .hit')[1]")
        page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement === document.querySelector('#hits .hit')")
    page.keyboard.press("Enter")
    # The player seeks to the hit's start and plays from there: its time is the start, give or take the play time.
    page.wait_for_function(
        """start => { const p = document.getElementById("search-player");
                      return p.readyState >= 1 && !p.seeking && p.currentTime >= start - 0.05
                             && p.currentTime < start + 1.5; }""", arg=start, timeout=30_000)
    played = page.evaluate("document.getElementById('search-player').currentTime")
    assert start - 0.05 <= played < start + 1.5
    shot("07-playing-from-hit")

    # The library lists the film, and its film view (timeline, speakers, events) comes from the same run and index.
    page.click("button[data-tab=library]")
    page.locator("#library-table button.link").first.wait_for(timeout=30_000)
    assert page.locator("#library-table tbody tr").count() == 1
    shot("08-library-with-the-film")
    page.locator("#library-table button.link").first.click()
    page.wait_for_selector("#timeline .bar.asr", timeout=30_000)
    assert "Yankee" in page.inner_text("#film-speakers")
    events_shown = page.locator("#event-table tbody tr")
    assert events_shown.count() > 0 and "Yankee" in page.inner_text("#event-table")
    # Each line carries its language, so the browser picks the font and line breaking for it (CJK text above all).
    assert events_shown.first.get_attribute("lang") == "en"
    shot("09-film-view")

    # The film at a glance: a strip of every shot's thumbnail, a row per speaker (shown as names or "Speaker N",
    # never raw labels), the search's hits placed where they are, zoom down to a minute, and a click plays.
    shots_shown = page.locator("#timeline .lane.thumbs .bar img")
    film = page.evaluate("currentFilm")
    assert shots_shown.count() == len(film["shots"]) > 1
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shots_shown.first.element_handle(),
                           timeout=30_000)
    labels = page.locator("#timeline .lane-label.asr").all_inner_texts()
    assert labels and not [label for label in labels if label.startswith("SPEAKER_")], labels
    assert len(labels) == len({e["speaker"] for e in film["timeline"] if e["source"] == "asr"})
    # Who is on screen: the carphone clip's man, with his face and a row of his appearances; the event table narrows
    # to the events while he is on screen.
    assert page.locator("#timeline .lane-label.person").all_inner_texts() == ["Person 1"]
    assert page.locator("#timeline .lane.person .bar").count() == 1
    face = page.locator("#film-people img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=face.first.element_handle(),
                           timeout=30_000)
    assert "Person 1" in page.inner_text("#film-people")
    every = events_shown.count()
    page.select_option("#filter-person", "Person 1")
    narrowed = page.locator("#event-table tbody tr").all_inner_texts()
    assert 0 < len(narrowed) < every and all("Person 1" in row for row in narrowed)
    page.select_option("#filter-person", "")
    hit_bars = page.locator("#timeline .lane.hit .bar")
    assert hit_bars.count() >= 1 and abs(float(hit_bars.first.get_attribute("data-start")) - start) < 0.01
    # Zoomed in to 10 seconds across the view (the sample film is shorter than a minute: a film's longest zoom is
    # the whole film, its shortest 10 s).
    assert page.locator("#timeline-zoom option").all_inner_texts()[0] == "whole film"
    page.select_option("#timeline-zoom", "10")
    widths = page.evaluate("""() => [document.querySelector('#timeline .timeline-track').clientWidth,
                                     document.querySelector('#timeline .timeline-scroll').clientWidth]""")
    assert widths[0] == pytest.approx(widths[1] * sample_film.duration_s / 10, rel=0.05)
    line = page.locator("#timeline .lane.asr .bar").nth(1)
    line.scroll_into_view_if_needed()
    line_start = float(line.get_attribute("data-start"))
    line.focus()
    page.keyboard.press("Enter")  # the timeline works from the keyboard too
    page.wait_for_function(
        """start => { const p = document.getElementById("film-player");
                      return p.readyState >= 1 && !p.seeking && Math.abs(p.currentTime - start) < 1.5; }""",
        arg=line_start, timeout=30_000)
    playhead = page.evaluate("parseFloat(document.querySelector('#timeline .playhead').style.left)")
    assert abs(playhead / 100 * sample_film.duration_s - line_start) < 2.0
    shot("09a-film-timeline-zoomed")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    too_wide = page.evaluate("""() => {
        const scrolls = (e) => { for (let a = e.parentElement; a; a = a.parentElement)
                                   if (getComputedStyle(a).overflowX !== "visible") return true; return false; };
        return [...document.querySelectorAll("body *")].filter((e) => e.getClientRects().length
            && e.getBoundingClientRect().right > window.innerWidth + 1 && !scrolls(e))
          .map((e) => `${e.tagName}#${e.id}.${e.className}`); }""")
    assert not too_wide and page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), too_wide
    shot("09b-film-view-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # What a model writes is shown as text: a hostile visual event added to the film's indexed events.
    from cinedex.core.model import Event

    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'
    index = indexed(airflow_services)
    video_id = first.get_attribute("data-video")
    said = index.video_events(video_id)
    index.replace_video(video_id, [*said, Event(video_id=video_id, start_s=3.0, end_s=5.0, source="vision",
                                                scene_type="action", event=f"A rabbit wakes {hostile}",
                                                content=f"rabbit {hostile}", characters=[f"Bunny {hostile}"],
                                                speaker=f"Bunny {hostile}")])
    page.click("button[data-tab=search]")
    page.fill("#search-query", "rabbit wakes")
    page.click("#search-form button[type=submit]")
    page.locator("#hits .hit", has_text="rabbit").first.wait_for(timeout=30_000)
    page.click("button[data-tab=library]")
    page.locator("#library-table button.link").first.click()
    page.wait_for_selector("#timeline .bar.vision")
    page.select_option("#filter-source", "vision")
    row = page.locator("#event-table tbody tr").first
    assert "<script>window.pwned=1</script>" in row.inner_text() and row.locator("img, script").count() == 0
    shot("10-hostile-text-shown-as-text")
    assert page.evaluate("window.pwned") is None
