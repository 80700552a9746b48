"""Headless Chromium for the page's browser tests: where it is found, how it is started, where screenshots go."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from cinedex import cli

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]


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


@contextmanager
def headless_page(width: int = 1400, height: int = 1000):
    """A page of a fresh headless Chromium (no cookies from another test)."""
    try:
        from playwright import sync_api
    except ImportError:
        required("playwright is not installed")
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def screenshot_folder(config, name: str) -> Path:
    """A fresh folder for a test's screenshots, kept as test artifacts and named in the test output."""
    folder = Path(os.environ.get("CINEDEX_TEST_ARTIFACTS", cli.PROJECT_ROOT / ".test-artifacts")) / "browser" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # Past pytest's output capture, so the folder shows in every run's output, passed or not.
    with config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nbrowser test screenshots: {folder}")
    return folder


def follow_run(page, shot, timeout_s: float) -> list[float]:
    """The page's run progress bar, read every half second until the run ends: its values, with a screenshot (by
    `shot(step)`) when it first moves, when it first passes half way and when the run ends."""
    import time

    seen, deadline = [], time.monotonic() + timeout_s
    try:
        while not page.get_attribute("#run", "data-finished"):
            assert time.monotonic() < deadline, page.inner_text("#run")
            value = float(page.eval_on_selector("#run-progress", "bar => bar.value"))
            if value > 0 and not any(0 < v for v in seen):
                shot("04a-run-progress-moving")
            if value >= 0.5 and not any(v >= 0.5 for v in seen):
                shot("04b-run-progress-half-way")
            seen.append(value)
            time.sleep(0.5)
    finally:
        shot("05-run-finished")
    return seen
