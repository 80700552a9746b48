"""Visual inference through an OpenAI-compatible endpoint: the tiny Qwen3-VL served by tests/openai_server.py
(transformers + xgrammar behind FastAPI, in a subprocess), real windows of the sample film sent over loopback HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import pytest

from cinedex.pipeline import vision
from cinedex.pipeline.vision.http_backend import OpenAIBackend, VisionEndpointError
from cinedex.pipeline.vision.prompt import frame_images, system_prompt, user_text
from cinedex.pipeline.vision.schema import WindowResult, window_schema
from cinedex.pipeline.windows import WINDOWS_FILE, WindowPlan
from cinedex.core.model import WindowAnswer
from cinedex.core.settings import Settings
from test_vision import MARKER, OPTIONS

SERVER = Path(__file__).with_name("openai_server.py")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """tests/openai_server.py in a subprocess on a free loopback port; `url` is the OpenAI base URL."""

    def __init__(self, model: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with open(log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, str(SERVER), "--model", str(model), "--port",
                                             str(self.port), "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT,
                                            env=env)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not answer in time:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)

    def requests(self) -> list[dict]:
        return httpx.get(f"http://127.0.0.1:{self.port}/debug/requests", timeout=10).json()

    def fail_next(self, *statuses: int) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/debug/fail", json={"statuses": list(statuses)}, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(tiny_vision_model, tmp_path_factory):
    running = Server(tiny_vision_model, tmp_path_factory.mktemp("openai-server") / "server.log")
    yield running
    running.stop()


@pytest.fixture
def backend(server) -> OpenAIBackend:
    return OpenAIBackend(server.url, "tiny-qwen3vl", tries=3, backoff_s=0.05)


def test_answer_is_schema_valid_and_inside_the_window(backend, windows):
    window = windows[0]
    [result] = backend.describe([window], OPTIONS)
    assert result.window_index == 0 and not result.error, result.error
    assert isinstance(result.answer, WindowAnswer) and result.answer.moments
    _, schema = window_schema(window, OPTIONS)
    jsonschema.validate(json.loads(result.raw, strict=False), schema)
    bounds = schema["$defs"]["VisualMoment"]["properties"]["start_s"]
    assert (bounds["minimum"], bounds["maximum"]) == (window.start_s, window.end_s)
    for moment in result.answer.moments:
        assert window.start_s <= moment.start_s <= window.end_s
        assert window.start_s <= moment.end_s <= window.end_s


@pytest.mark.parametrize("aligned", [True, False])
def test_server_receives_frames_with_their_film_times(backend, server, windows, aligned):
    window = windows[0]
    options = OPTIONS.model_copy(update={"timestamp_alignment": aligned})
    [result] = backend.describe([window], options)
    assert result.answer is not None, result.error
    received = server.requests()[-1]
    system, user = received["messages"]
    assert system["content"] == system_prompt()
    before, after = user_text(window, aligned)
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": before} and parts[-1] == {"type": "text", "text": after}
    images = [i for i, p in enumerate(parts) if p["type"] == "image_url"]
    assert len(images) >= 4
    expected = [f"{round(t * window.source_fps) / window.source_fps:.1f}"
                for t, _ in frame_images(window, options)]
    if aligned:
        # Each image right after its marker, the frame's film time, inside the window.
        assert [MARKER.fullmatch(parts[i - 1]["text"]).group(1) for i in images] == expected
        assert all(window.start_s <= float(t) <= window.end_s for t in expected)
        assert MARKER.findall(received["prompt"]) == expected  # and so in the prompt the model was given
    else:
        assert MARKER.findall(received["prompt"]) == [] and images == list(range(1, len(parts) - 1))
    assert received["response_format"]["json_schema"]["schema"] == window_schema(window, options)[1]
    assert received["max_tokens"] == options.max_new_tokens and received["temperature"] == options.temperature


def test_transient_errors_are_retried(backend, server, windows):
    count = len(server.requests())
    server.fail_next(503, 429)
    [result] = backend.describe(windows[:1], OPTIONS)
    assert result.answer is not None, result.error
    assert len(server.requests()) == count + 1  # the third try reached the model


def test_persistent_errors_fail_clearly_after_retries(backend, server, windows):
    server.fail_next(500, 500, 500)
    with pytest.raises(VisionEndpointError, match=r"failed after 3 tries: HTTP 500"):
        backend.describe(windows[:1], OPTIONS)


def test_a_killed_server_fails_clearly_after_retries(tiny_vision_model, tmp_path, windows):
    doomed = Server(tiny_vision_model, tmp_path / "server.log")
    doomed.stop()
    backend = OpenAIBackend(doomed.url, "tiny-qwen3vl", tries=3, backoff_s=0.05)
    with pytest.raises(VisionEndpointError, match=r"failed after 3 tries: ConnectError"):
        backend.describe(windows[:1], OPTIONS)


def test_describe_batch_through_the_endpoint_writes_checkpoints(server, windows, tiny_vision_model, tmp_path):
    plan = WindowPlan(windows=windows, batches=[[0, 1]])
    results = {}
    for name, endpoint in (("http", server.url), ("local", "")):
        windows_dir = tmp_path / name
        windows_dir.mkdir()
        (windows_dir / WINDOWS_FILE).write_text(plan.model_dump_json())
        settings = Settings(home=tmp_path / "home", vision_model=str(tiny_vision_model), vision_endpoint=endpoint,
                            vision_context_tokens=2048, vision_max_new_tokens=256)
        count = len(server.requests())
        folder = vision.describe_batch(windows_dir, 0, settings)
        assert folder == vision.results_dir(windows_dir, settings)
        assert len(server.requests()) == count + (2 if endpoint else 0)
        results[name] = {p.name: WindowResult.model_validate_json(p.read_text())
                         for p in sorted(folder.glob("window_*.json"))}
        # A resumed task finds every window done and calls nothing.
        vision.describe_batch(windows_dir, 0, settings)
        assert len(server.requests()) == count + (2 if endpoint else 0)
    assert list(results["http"]) == list(results["local"]) == ["window_00000.json", "window_00001.json"]
    for result in results["http"].values():
        assert result.answer is not None or result.error


def test_film_summary_through_the_endpoint(backend, server, sample_film):
    """The film pass's text-only call: the same chat and schema reach the server, and its answer is valid."""
    from cinedex.pipeline.film import FilmSummary, summary_chat, summary_schema
    from cinedex.core.model import Event

    events = [Event(video_id="v", start_s=u.start_s, end_s=u.end_s, content=u.text, scene_type="dialogue")
              for u in sample_film.utterances]
    chat = summary_chat(events, sample_film.duration_s, 4096, 300)
    key, schema = summary_schema(sample_film.duration_s, 300)
    raw = backend.write_json(chat, key, schema, OPTIONS.model_copy(update={"max_new_tokens": 300}))
    jsonschema.validate(json.loads(raw, strict=False), schema)
    FilmSummary.model_validate(vision.parse_json(raw))
    received = server.requests()[-1]
    assert received["messages"] == chat
    assert received["response_format"]["json_schema"]["schema"] == schema
    assert "yankee" in received["prompt"].lower()  # the dialogue reached the model


def test_events_are_asked_for_in_the_films_language_or_the_configured_one(server, windows, tiny_vision_model,
                                                                          tmp_path):
    from cinedex.pipeline.film import summary_chat
    from cinedex.pipeline.vision.prompt import language_name

    assert (language_name("zh"), language_name("en"), language_name("pt-BR")) == ("Chinese", "English",
                                                                                 "Portuguese (Brazil)")
    assert language_name("qq") == "qq" and system_prompt("").endswith("Write nothing but the JSON.")
    # The plan knows the film's language (the transcript's); the model is asked to write in it.
    plan = WindowPlan(windows=windows, batches=[[0]], language="zh")
    for configured, expected in (("", "Chinese"), ("en", "English")):
        windows_dir = tmp_path / f"asked-{configured or 'film'}"
        windows_dir.mkdir()
        (windows_dir / WINDOWS_FILE).write_text(plan.model_dump_json())
        settings = Settings(home=tmp_path / "home", vision_model=str(tiny_vision_model), vision_endpoint=server.url,
                            vision_context_tokens=2048, vision_max_new_tokens=256, event_language=configured)
        vision.describe_batch(windows_dir, 0, settings)
        system, _ = server.requests()[-1]["messages"]
        assert system["content"].endswith(f"Write the text of every field in {expected}."), system["content"]
    chat = summary_chat([], 60.0, 4096, 300, "zh")
    assert "Write the summary and the chapters in Chinese." in chat[0]["content"]
