"""Settings come from the environment; a run's trigger-form values act on top of them."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from cinedex.core.settings import Settings


def test_environment_sets_every_field(monkeypatch, tmp_path):
    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path))
    monkeypatch.setenv("CINEDEX_LANGUAGE", "en")
    monkeypatch.setenv("CINEDEX_VISION_MODEL", "none")
    monkeypatch.setenv("CINEDEX_SAMPLE_MAX_FPS", "4")
    settings = Settings()
    assert settings.home == tmp_path and settings.language == "en" and settings.sample_max_fps == 4.0
    assert not settings.vision_enabled
    assert settings.index_dir == tmp_path.resolve() / "index"


def test_laptop_defaults_use_the_bundled_speech_models(monkeypatch):
    from cinedex.pipeline.asr import speech_model_path

    monkeypatch.delenv("CINEDEX_ASR_MODEL", raising=False)
    # `auto`: the bundled tiny.en first, the multilingual base where other languages are heard (tests/test_asr.py).
    assert Settings().resolved_asr_model == Settings(asr_model="").resolved_asr_model == "auto"
    assert (Path(speech_model_path(Settings())) / "model.bin").is_file()
    assert Settings(asr_model="tiny.en").resolved_asr_model == speech_model_path(Settings())
    assert Settings().vision_model == "Qwen/Qwen3-VL-4B-Instruct"


def test_trigger_form_values_override_and_empty_fields_keep_the_configured_value(monkeypatch):
    monkeypatch.setenv("CINEDEX_LANGUAGE", "de")
    run = Settings().for_run({"video": "/films/x.mp4", "language": "", "frame_width": 320, "shot_threshold": 0.3})
    assert run.language == "de" and run.frame_width == 320 and run.shot_threshold == 0.3


def test_media_roots_always_include_home_and_a_local_inbox(tmp_path):
    settings = Settings(home=tmp_path / "home", media_roots=f"/srv/films:{tmp_path}", inbox="/srv/inbox")
    assert settings.allowed_roots == [Path("/srv/films"), tmp_path.resolve(), (tmp_path / "home").resolve(),
                                      Path("/srv/inbox")]


def test_the_bounds_of_the_trigger_form_hold_for_the_environment_too(monkeypatch):
    monkeypatch.setenv("CINEDEX_FRAME_WIDTH", "10")
    with pytest.raises(pydantic.ValidationError, match="frame_width"):
        Settings()


def test_a_run_can_choose_only_the_per_run_settings():
    """A run's conf (the trigger form, or any JSON a user sends) changes the per-run settings and nothing of the
    deployment's: roots, endpoints, keys and thresholds stay as configured."""
    configured = Settings(media_roots="/srv/films", vision_endpoint="", max_invalid_fraction=0.2)
    run = configured.for_run({"media_roots": "/", "vision_endpoint": "http://elsewhere/v1",
                              "max_invalid_fraction": 1.0, "vision_batch_size": 100000, "frame_width": 320})
    assert (run.media_roots, run.vision_endpoint, run.max_invalid_fraction) == ("/srv/films", "", 0.2)
    assert run.vision_batch_size == configured.vision_batch_size and run.frame_width == 320


def test_the_trigger_form_is_made_from_the_per_run_settings():
    from cinedex.orchestration.dagspec import index_params

    params = index_params(Settings(frame_width=512))
    assert list(params) == ["video", *Settings.per_run_fields()]
    schema = Settings.model_json_schema()["properties"]
    width = params["frame_width"]
    assert width.value == 512
    assert (width.schema["minimum"], width.schema["maximum"]) == (schema["frame_width"]["minimum"],
                                                                  schema["frame_width"]["maximum"])
    for name in Settings.per_run_fields():
        assert params[name].schema["title"] == schema[name]["title"] and params[name].description, name
