"""`cinedex ui` (what `make ui` runs): Airflow started here with the embedded defaults, a login it prints, the sample
film uploaded and indexed through the cinedex page in headless Chromium, a search that finds it, and Ctrl-C that stops every
process it started."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from airflow_services import free_port
from browser import follow_run, headless_page, screenshot_folder


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _wait_for(lines: queue.Queue, prefix: str, timeout_s: float, seen: list[str]) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r} within {timeout_s:.0f} s:\n{''.join(seen)}")


@pytest.mark.slow
def test_cinedex_ui_serves_the_page_indexes_an_upload_and_stops_cleanly(request, tmp_path, sample_film):
    shots = screenshot_folder(request.config, "cinedex-ui")
    home, inbox, port = tmp_path / "home", tmp_path / "inbox", free_port()
    env = {**os.environ, "CINEDEX_HOME": str(home), "CINEDEX_INBOX": str(inbox), "CINEDEX_VISION_MODEL": "none"}
    for name in [n for n in env if n.startswith("AIRFLOW")]:  # nothing from the test session's own Airflow
        env.pop(name)
    ui = subprocess.Popen([sys.executable, "-m", "cinedex.cli", "ui", "--port", str(port), "--no-browser"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(ui.stdout, lines), daemon=True).start()
    seen: list[str] = []
    started = []
    try:
        page = _wait_for(lines, "cinedex page:", 300, seen).split(": ", 1)[1].strip()
        login = _wait_for(lines, "login:", 10, seen)
        user, password = (part.strip() for part in login.split(":", 1)[1].split("/"))
        assert page == f"http://127.0.0.1:{port}/cinedex/" and user == "admin"
        assert len(psutil.Process(ui.pid).children()) == 4  # api-server, scheduler, dag-processor, triggerer

        assert requests.get(f"{page}api/films", timeout=30).status_code == 401  # nothing without the login
        reply = requests.post(f"http://127.0.0.1:{port}/auth/token", json={"username": user, "password": password},
                              timeout=30)
        assert reply.status_code in (200, 201), reply.text
        auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        assert requests.get(page, headers=auth, timeout=30).status_code == 200

        deadline = time.monotonic() + 180  # the DAG processor parses the DAG files first
        while (form := requests.get(f"{page}api/form", headers=auth, timeout=30)).status_code == 503:
            assert time.monotonic() < deadline, form.text
            time.sleep(2)
        assert form.status_code == 200, form.text

        # As a person does it: log in through Airflow's form from the page, upload the film, watch its run.
        with headless_page() as browser:
            assert browser.goto(page).status == 401
            browser.click("text=log in")
            browser.fill("input[name=username]", user)
            browser.fill("input[name=password]", password)
            browser.click("button[type=submit]")
            browser.wait_for_url(page, timeout=60_000)
            browser.click("button[data-tab=upload]")
            browser.set_input_files("#upload-file", sample_film.path)
            browser.click("#upload-button")
            browser.wait_for_selector("#run-state", state="visible", timeout=120_000)
            # The upload's bar is full once the run starts; the run's bar then advances through the stages.
            assert float(browser.eval_on_selector("#upload-progress", "bar => bar.value")) == 1.0
            browser.screenshot(path=str(shots / "04-run-started.png"), full_page=True)
            seen = follow_run(browser, lambda step: browser.screenshot(path=str(shots / f"{step}.png"),
                                                                         full_page=True), 900)
            assert browser.get_attribute("#run", "data-finished") == "success", browser.inner_text("#run")
            assert browser.inner_text("#run-percent") == "100%"
            assert len(sorted({v for v in seen if 0 < v < 1})) >= 3 and seen == sorted(seen), seen
            run_id = browser.inner_text("#run-id").strip()
        progress = requests.get(f"{page}api/runs/{run_id}", headers=auth, timeout=30).json()
        assert progress["state"] == "success", progress
        # The stages reported their work as they went, in their own units, and the run counts as all done.
        assert progress["fraction"] == 1.0
        by_task = {t["task_id"]: t for t in progress["tasks"]}
        assert all(t["fraction"] == 1.0 for t in progress["tasks"]), progress["tasks"]
        transcribed = by_task["transcribe"]
        assert transcribed["unit"] == "s of audio decoded"
        assert transcribed["done"] == transcribed["total"] == pytest.approx(sample_film.duration_s, abs=0.5)
        assert by_task["sample_frames"]["total"] == pytest.approx(sample_film.duration_s, abs=0.5)
        assert by_task["read_text"]["unit"] == "frames looked at" and by_task["read_text"]["total"] > 10
        assert by_task["embed"]["done"] == by_task["embed"]["total"] > 0
        # The run's report shows the film's shots as pictures and the long stages' work and times.
        [film] = requests.get(f"{page}api/films", headers=auth, timeout=30).json()
        report = requests.get(f"{page}api/films/{film['video_id']}/files/{film['report']}", headers=auth,
                              timeout=30).text
        assert report.count('<image href="data:image/jpeg;base64,') == len(
            requests.get(f"{page}api/films/{film['video_id']}", headers=auth, timeout=30).json()["shots"])
        assert "<td>transcribe</td><td>35 of 35 s of audio decoded</td>" in report
        [hit] = requests.get(f"{page}api/search", headers=auth, params={"q": "originally from Chicago", "limit": 1},
                             timeout=60).json()
        reference = next(u for u in sample_film.utterances if "originally from Chicago" in u.text)
        assert hit["start_s"] < reference.end_s and hit["end_s"] > reference.start_s, hit
        started = psutil.Process(ui.pid).children(recursive=True)
    finally:
        ui.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            returncode = ui.wait(90)
        finally:
            if ui.poll() is None:
                ui.kill()
    _, alive = psutil.wait_procs(started, timeout=10)
    assert returncode == 0, "".join(seen)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
