"""Shot detection and adaptive sampling on a film concatenated from real clips, with its cuts known."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cinedex.pipeline import frames, ingest
from cinedex.core.mediatime import MediaTime


def _reencode(source: str, target: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-i", source, "-an", "-c:v", "libx264", "-preset", "veryfast", *args,
                    str(target)], check=True)
    return target


def _assert_cuts_found(found: list[float], truth: list[float], tolerance_s: float) -> None:
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for expected, got in zip(truth, found):
        assert abs(got - expected) <= tolerance_s + 1e-6, f"cut at {expected} found at {got}"


def _sampled(settings, path):
    video = ingest.ingest(path, settings)
    return video, frames.load_sampling(frames.sample_frames(video, settings))


def test_cuts_are_frame_exact_on_the_sample_film(settings, sample_film):
    video, sampling = _sampled(settings, sample_film.path)
    starts = [shot.start_s for shot in sampling.shots]
    assert starts[0] == 0.0
    _assert_cuts_found(starts[1:], sample_film.cuts_s, tolerance_s=1 / sample_film.fps)
    # Shots tile the film without gaps or overlaps.
    assert all(a.end_s == b.start_s for a, b in zip(sampling.shots, sampling.shots[1:]))
    assert sampling.shots[-1].end_s == pytest.approx(video.info.duration_s)


def test_cuts_inside_fixed_gops_are_found(settings, sample_film, tmp_path):
    # Keyframes every 48 frames regardless of content: most cuts fall between keyframes.
    fixed = _reencode(sample_film.path, tmp_path / "fixed-gop.mp4", "-x264-params", "keyint=48:min-keyint=48:scenecut=0")
    _, sampling = _sampled(settings, fixed)
    _assert_cuts_found([s.start_s for s in sampling.shots][1:], sample_film.cuts_s, tolerance_s=1 / sample_film.fps)


def test_variable_frame_rate_keeps_true_times(settings, sample_film, tmp_path):
    # Every other frame dropped in the first 17 s: timestamps are irregular there; a cut on a dropped frame moves
    # to the next frame shown, which is where a viewer sees it.
    vfr = _reencode(sample_film.path, tmp_path / "vfr.mp4", "-vf", r"select=gte(t\,17)+not(mod(n\,2))",
                    "-fps_mode", "vfr")
    video, sampling = _sampled(settings, vfr)
    assert video.info.variable_frame_rate
    _assert_cuts_found([s.start_s for s in sampling.shots][1:], sample_film.cuts_s, tolerance_s=1 / sample_film.fps)


def test_frames_respect_floor_and_cap_and_cover_every_shot(settings, sample_film):
    _, sampling = _sampled(settings, sample_film.path)
    times = [f.time_s for f in sampling.frames]
    assert times == sorted(times)
    floor_gap, cap_gap = 1 / settings.sample_floor_fps, 1 / settings.sample_max_fps
    for previous, current in zip(sampling.frames, sampling.frames[1:]):
        gap = current.time_s - previous.time_s
        assert gap <= floor_gap + 1 / sample_film.fps + 1e-6
        if current.reason != "cut":
            assert gap >= cap_gap - 1e-6
    for shot in sampling.shots:
        in_shot = [f for f in sampling.frames if f.shot_id == shot.shot_id]
        assert in_shot and all(shot.start_s <= f.time_s < shot.end_s for f in in_shot)
        assert Path(shot.thumbnail).is_file()
    # Moving pictures earn more frames than the floor alone would give.
    assert any(f.reason == "motion" for f in sampling.frames)


def test_sampled_frames_are_the_pictures_at_their_timestamps(settings, sample_film):
    _, sampling = _sampled(settings, sample_film.path)
    frame = sampling.frames[len(sampling.frames) // 2]
    image = Image.open(frame.path)
    assert image.size == (sampling.width, sampling.height) == (448, 252)
    # Decode the same moment independently with ffmpeg's exact seek and compare pictures.
    reference = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{frame.time_s:.3f}", "-i", sample_film.path, "-frames:v", "1",
         "-vf", "scale=448:252", "-f", "rawvideo", "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
    expected = np.frombuffer(reference, np.uint8).reshape(252, 448).astype(float)
    got = np.asarray(image.convert("L"), dtype=float)
    assert np.abs(got - expected).mean() < 6


def test_rerun_reuses_the_cached_stage(settings, sample_film, caplog):
    video = ingest.ingest(sample_film.path, settings)
    first = frames.sample_frames(video, settings)
    with caplog.at_level("INFO"):
        second = frames.sample_frames(video, settings)
    assert first == second and "cached result" in caplog.text


def test_audio_only_has_no_shots(settings, tmp_path):
    audio = tmp_path / "talk.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=2", str(audio)], check=True)
    sampling = frames.load_sampling(frames.sample_frames(ingest.ingest(audio, settings), settings))
    assert sampling.shots == [] and sampling.frames == []


def test_output_size_follows_rotation_and_never_upscales():
    assert frames.output_size(1920, 1080, 0, 448) == (448, 252)
    assert frames.output_size(1920, 1080, 90, 448) == (448, 796)
    assert frames.output_size(320, 240, 0, 448) == (320, 240)


def test_media_time_formats():
    t = MediaTime.parse("01:02:03.5")
    assert t.seconds == 3723.5 and t.hhmmss() == "01:02:03" and t.timecode(",") == "01:02:03,500"
    assert MediaTime.from_frame(1001, 24).frame(24) == 1001
