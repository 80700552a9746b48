"""The cinedex page as a person uses it, in headless Chromium against real Airflow components: log in, upload the
sample film, wait for its run, search for a spoken phrase, and play the film from the first hit.

Airflow runs as it does in a deployment: `api-server`, `scheduler` (LocalExecutor) and `dag-processor` as their
own processes, on a private PostgreSQL database created for the test and dropped after it. Screenshots of every
step are kept in the folder the test prints (CINEDEX_TEST_ARTIFACTS, default .test-artifacts/browser).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import AIRFLOW_ADMIN

from cinedex import cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]
RUN_TIMEOUT_S = 300
SPOKEN = "they all call me a Yankee down here"


def required(reason: str):
    """Skipped on a laptop without the browser; a failure where it must run (CI=true)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the browser test must run in CI: {reason}")
    pytest.skip(reason)


def chromium() -> str:
    path = os.environ.get("CINEDEX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        required("no chromium on PATH (apt-get install chromium, or set CINEDEX_CHROMIUM)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_database():
    """A private PostgreSQL database for Airflow (LocalExecutor needs more than SQLite), dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"cinedex_test_{secrets.token_hex(4)}"
    host = os.environ.get("CINEDEX_TEST_PGHOST", "/var/run/postgresql")
    try:
        admin = psycopg2.connect(dbname="postgres", host=host)
    except psycopg2.OperationalError as error:
        required(f"no PostgreSQL server at {host}: {error}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2:///{name}?host={host}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def wait_for(check, timeout_s: float, what: str, processes: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, (process, log) in (processes or {}).items():
            if process.poll() is not None:
                raise AssertionError(f"airflow {name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (OSError, httpx.TransportError):  # not listening yet
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def airflow_services(tmp_path_factory, postgres_database):
    """Airflow's api-server, scheduler and dag-processor, started as in a deployment; yields the base URL."""
    home = tmp_path_factory.mktemp("airflow-services")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_database,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(cli.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(cli.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__API__BASE_URL": base,
        "CINEDEX_HOME": str(home / "cinedex"),
        "CINEDEX_MEDIA_ROOTS": str(home / "cinedex"),
        # The cheap settings of the DAG test: no vision model, the bundled tiny speech model.
        "CINEDEX_VISION_MODEL": "none",
        "CINEDEX_ASR_MODEL": "",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    Path(env["AIRFLOW_HOME"]).mkdir()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # The gpu pool exists in a deployment (the compose file's init creates it); the GPU-queue tasks name it.
    subprocess.run([sys.executable, "-m", "airflow", "pools", "set", "gpu", "1", "GPU tasks"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    processes = {}
    for name, args in (("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
                       ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
        log = home / f"{name}.log"
        with open(log, "wb") as out:
            processes[name] = (subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, stdout=out,
                                                stderr=subprocess.STDOUT), log)
    try:
        wait_for(lambda: httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200, 120,
                 "the API server", processes)
        token = httpx.post(f"{base}/auth/token", json={"username": AIRFLOW_ADMIN[0], "password": AIRFLOW_ADMIN[1]},
                           timeout=10).json()["access_token"]
        wait_for(lambda: httpx.get(f"{base}/api/v2/dags/{cli.DAG_ID}", timeout=5,
                                   headers={"Authorization": f"Bearer {token}"}).status_code == 200, 120,
                 "the DAG to be parsed", processes)
        yield {"url": base, "home": home, "logs": {name: log for name, (_, log) in processes.items()}}
    finally:
        for process, _ in processes.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def screenshots(request) -> Path:
    folder = Path(os.environ.get("CINEDEX_TEST_ARTIFACTS", cli.PROJECT_ROOT / ".test-artifacts")) / "browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # Past pytest's output capture, so the folder shows in every run's output, passed or not.
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nbrowser test screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser_page():
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def test_upload_index_search_and_play_from_the_hit(airflow_services, browser_page, screenshots, sample_film):
    page, base = browser_page, airflow_services["url"]

    def shot(step: str) -> None:
        page.screenshot(path=str(screenshots / f"{step}.png"), full_page=True)

    # Without a login the page is refused and says where to log in.
    reply = page.goto(f"{base}/cinedex/")
    assert reply.status == 401
    shot("01-not-logged-in")
    page.click("text=log in")
    page.fill("input[name=username]", AIRFLOW_ADMIN[0])
    page.fill("input[name=password]", AIRFLOW_ADMIN[1])
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
    shot("04-run-started")
    try:
        page.wait_for_selector("#run[data-finished]", timeout=RUN_TIMEOUT_S * 1000)
    finally:
        shot("05-run-finished")
    state = page.get_attribute("#run", "data-finished")
    assert state == "success", page.inner_text("#run") + "\n" + airflow_services["logs"]["scheduler"].read_text()[-3000:]
    assert page.inner_text("#run-stage") == "write_report"
    assert page.locator("#run-tasks tr[data-task=load] .state").inner_text() == "success"

    # Search for a phrase said in the film; the first hit is where it is said.
    page.click("button[data-tab=search]")
    page.fill("#search-query", SPOKEN)
    page.click("#search-form button[type=submit]")
    first = page.locator("#hits .hit").first
    first.wait_for(timeout=30_000)
    assert "yankee" in first.inner_text().lower()
    assert first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    shot("06-search")
    start = float(first.get_attribute("data-start"))
    reference = next(u for u in sample_film.utterances if "Yankee" in u.text)
    assert abs(start - reference.start_s) <= 1.0

    first.click()
    # The player seeks to the hit's start and plays from there: its time is the start, give or take the play time.
    page.wait_for_function(
        """start => { const p = document.getElementById("search-player");
                      return p.readyState >= 1 && !p.seeking && p.currentTime >= start - 0.05
                             && p.currentTime < start + 1.5; }""", arg=start, timeout=30_000)
    played = page.evaluate("document.getElementById('search-player').currentTime")
    assert start - 0.05 <= played < start + 1.5
    shot("07-playing-from-hit")

    # The film view and its report come from the same run.
    page.click("button[data-tab=library]")
    page.locator("#library-table button.link").first.click()
    page.wait_for_selector("#timeline .bar.asr")
    assert "Yankee" in page.inner_text("#film-speakers")
    shot("08-film-view")

    # What a model writes is shown as text: a hostile visual event added to the film's indexed events.
    from cinedex.index import EmbeddedIndex
    from cinedex.model import Event

    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'
    index = EmbeddedIndex(airflow_services["home"] / "cinedex" / "index")
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
    shot("09-hostile-text-shown-as-text")
    assert page.evaluate("window.pwned") is None
