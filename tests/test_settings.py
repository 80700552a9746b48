"""Settings come from the environment; a run's trigger-form values act on top of them."""

from __future__ import annotations

from pathlib import Path

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


def test_laptop_defaults_use_the_bundled_speech_model(monkeypatch):
    monkeypatch.delenv("CINEDEX_ASR_MODEL", raising=False)
    model = Path(Settings().resolved_asr_model)
    assert (model / "model.bin").is_file()
    assert Settings().vision_model == "Qwen/Qwen3-VL-4B-Instruct"


def test_trigger_form_values_override_and_empty_fields_keep_the_configured_value(monkeypatch):
    monkeypatch.setenv("CINEDEX_LANGUAGE", "de")
    run = Settings().for_run({"video": "/films/x.mp4", "language": "", "frame_width": 320, "shot_threshold": 0.3})
    assert run.language == "de" and run.frame_width == 320 and run.shot_threshold == 0.3


def test_media_roots_always_include_home_and_a_local_inbox(tmp_path):
    settings = Settings(home=tmp_path / "home", media_roots=f"/srv/films:{tmp_path}", inbox="/srv/inbox")
    assert settings.allowed_roots == [Path("/srv/films"), tmp_path.resolve(), (tmp_path / "home").resolve(),
                                      Path("/srv/inbox")]
