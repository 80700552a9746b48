"""Vision windows on the real sample film (15 shots, 34.56 s) and on a synthetic 3-hour sampling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cinedex.core.settings import Settings
from cinedex.pipeline.asr import TRANSCRIPT_FILE, Transcript, Utterance
from cinedex.pipeline.frames import FrameSampling, SampledFrame, Shot
from cinedex.pipeline.windows import (AIRFLOW_MAX_MAP_LENGTH, PROMPT_TOKENS, QWEN3_VL_VIDEO_MAX_PIXELS, Window, batches,
                                      build_windows, load_plan, max_frames_for, plan_windows, tokens_per_frame_pair,
                                      visual_tokens, windows_per_batch)

TARGET_S, MAX_S = 8.0, 12.0


@pytest.fixture(scope="module")
def film(sampled_film):
    return sampled_film


def _transcript(*spans: tuple[float, float]) -> Transcript:
    return Transcript(language="en", model="hand-made",
                      utterances=[Utterance(start_s=a, end_s=b, text=f"line {i}", speaker=f"S{i % 2}")
                                  for i, (a, b) in enumerate(spans)])


def _assert_tiles(windows: list[Window], sampling: FrameSampling, max_s: float) -> None:
    assert windows[0].start_s == sampling.shots[0].start_s
    assert windows[-1].end_s == pytest.approx(sampling.shots[-1].end_s)
    assert [w.index for w in windows] == list(range(len(windows)))
    for a, b in zip(windows, windows[1:]):
        assert a.end_s == b.start_s  # no gap, no overlap
    assert all(0 < w.duration_s <= max_s + 1e-9 for w in windows)


def _assert_each_frame_once(windows: list[Window], sampling: FrameSampling) -> None:
    owned = [(f.time_s, f.shot_id) for w in windows for f in w.frames]
    assert sorted(owned) == sorted((f.time_s, f.shot_id) for f in sampling.frames)
    for window in windows:
        assert all(window.start_s <= f.time_s < window.end_s for f in window.frames)


def test_windows_tile_the_film_on_shot_boundaries(film):
    video, sampling = film
    assert len(sampling.shots) == 15 and video.info.duration_s == pytest.approx(34.56)
    windows = build_windows(sampling, None, video.info.fps, TARGET_S, MAX_S, max_frames=1000)
    _assert_tiles(windows, sampling, MAX_S)
    _assert_each_frame_once(windows, sampling)
    shot_starts = {s.start_s for s in sampling.shots}
    shot_ends = {s.end_s for s in sampling.shots}
    for window in windows:
        # No shot here is longer than MAX_S, so every window is whole shots.
        assert window.start_s in shot_starts and window.end_s in shot_ends
        shots = [s for s in sampling.shots if s.shot_id in window.shot_ids]
        assert shots[0].start_s == window.start_s and shots[-1].end_s == window.end_s
        assert window.shot_ids == list(range(window.shot_ids[0], window.shot_ids[-1] + 1))
        assert window.source_fps == 25.0 and window.frames_dropped == 0
    # Every window but the last is about the target: closed with or before the shot that crosses it.
    for window in windows[:-1]:
        assert TARGET_S / 2 <= window.duration_s <= MAX_S
    assert sorted(s for w in windows for s in w.shot_ids) == list(range(15))
    # The sample film's shots: 0-5.28, 5.28-6.48, 6.48-8.32, 8.32-10.76, ... ; the first window is shots 0-2.
    assert windows[0].shot_ids == [0, 1, 2] and windows[0].end_s == pytest.approx(8.32)


def test_a_shot_longer_than_max_is_split_on_sampled_frames(film):
    video, sampling = film
    # Shot 0 is 5.28 s and shot 8 is 5.28 s: with max 3 s each is split into two pieces.
    windows = build_windows(sampling, None, video.info.fps, 2.0, 3.0, max_frames=1000)
    _assert_tiles(windows, sampling, 3.0)
    _assert_each_frame_once(windows, sampling)
    frame_times = {f.time_s for f in sampling.frames}
    shot_bounds = {s.start_s for s in sampling.shots} | {s.end_s for s in sampling.shots}
    inside = [w.start_s for w in windows if w.start_s not in shot_bounds]
    assert inside, "expected a split inside a long shot"
    for start in inside:
        assert start in frame_times  # cut on a sampled frame, which starts the next piece
    for shot in sampling.shots:
        pieces = [w for w in windows if shot.shot_id in w.shot_ids]
        if shot.end_s - shot.start_s > 3.0:
            assert len(pieces) >= 2
        # Each piece of a split shot holds at least one of its frames.
        assert all(any(f.shot_id == shot.shot_id for f in w.frames) for w in pieces)


def test_each_utterance_goes_to_the_window_holding_its_midpoint(film):
    video, sampling = film
    spans = [(0.5, 2.0), (7.9, 9.0), (8.0, 10.0), (16.0, 17.5), (33.0, 36.0), (-0.5, 0.2)]
    windows = build_windows(sampling, _transcript(*spans), video.info.fps, TARGET_S, MAX_S, max_frames=1000)
    lines = [(line.start_s, line.end_s) for w in windows for line in w.lines]
    assert sorted(lines) == sorted(spans)  # each exactly once
    for window in windows:
        for line in window.lines:
            middle = (line.start_s + line.end_s) / 2
            assert window.start_s <= middle < window.end_s or window.index in (0, len(windows) - 1)
    # (7.9, 9.0): midpoint 8.45 lies after the first window's end (8.32) though it starts inside it.
    assert (7.9, 9.0) in [(l.start_s, l.end_s) for l in windows[1].lines]
    assert windows[-1].lines[-1].text == "line 4" and windows[0].lines[0].start_s == -0.5


def test_too_many_frames_keep_an_even_subset_with_every_shots_first_frame(film, caplog):
    video, sampling = film
    full = build_windows(sampling, None, video.info.fps, TARGET_S, MAX_S, max_frames=1000)
    with caplog.at_level("INFO", logger="cinedex.pipeline.windows"):
        capped = build_windows(sampling, None, video.info.fps, TARGET_S, MAX_S, max_frames=5)
    assert [(w.start_s, w.end_s) for w in capped] == [(w.start_s, w.end_s) for w in full]
    assert "keeps" in caplog.text
    for whole, kept in zip(full, capped):
        assert len(kept.frames) == min(5, len(whole.frames))
        assert kept.frames_dropped == len(whole.frames) - len(kept.frames)
        assert [f.time_s for f in kept.frames] == sorted(f.time_s for f in kept.frames)
        assert {f.time_s for f in kept.frames} <= {f.time_s for f in whole.frames}
        firsts = {min(f.time_s for f in whole.frames if f.shot_id == s) for s in whole.shot_ids}
        if len(firsts) <= 5:
            assert firsts <= {f.time_s for f in kept.frames}
    assert any(w.frames_dropped for w in capped)
    # Fewer slots than shots: an even spread of the shots' first frames.
    one = build_windows(sampling, None, video.info.fps, 40.0, 40.0, max_frames=3)
    assert len(one) == 1 and len(one[0].frames) == 3 and one[0].frames_dropped == len(sampling.frames) - 3
    assert all(f.reason == "cut" or f.time_s == 0.0
               for f in sampling.frames if f.time_s in {k.time_s for k in one[0].frames})


def test_visual_token_math_matches_qwen3_vl():
    # 448x252 rounds to 448x256: 14 x 8 merged patches per pair of frames, plus ~8 marker tokens.
    assert tokens_per_frame_pair(448, 252, markers=False) == 112
    assert visual_tokens(3, 448, 252, markers=False) == 224  # odd counts pad to a pair
    per_hour = visual_tokens(2 * 3600, 448, 252)
    assert 400_000 <= per_hour <= 480_000  # the documented ~440K tokens an hour at 2 fps
    frames_32k = max_frames_for(32768, 448, 252, prompt_tokens=600, max_new_tokens=1024, max_video_pixels=None)
    assert frames_32k % 2 == 0 and visual_tokens(frames_32k, 448, 252) + 600 + 1024 <= 32768
    assert visual_tokens(frames_32k + 2, 448, 252) + 600 + 1024 > 32768
    assert frames_32k == 518
    # Qwen3-VL's video processor shrinks frames past 25,165,824 pixels a video: 218 frames of 448x256.
    assert max_frames_for(32768, 448, 252) == 218
    assert max_frames_for(8192, 448, 252) == 2 * ((8192 - 600 - 1024) // 120)  # the context binds first
    assert max_frames_for(100, 448, 252) == 2  # never below one pair
    qwen = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl")
    full_size = dict(factor=32, min_pixels=4096, max_pixels=QWEN3_VL_VIDEO_MAX_PIXELS)
    assert qwen.smart_resize(218, 252, 448, **full_size) == (256, 448)
    assert qwen.smart_resize(220, 252, 448, **full_size) != (256, 448)


def _synthetic_sampling(hours: float, seed: int = 7) -> FrameSampling:
    rng = random.Random(seed)
    total, shots, frames_, t = hours * 3600, [], [], 0.0
    while t < total:
        length = min(total - t, rng.choice([rng.uniform(0.5, 8), rng.uniform(2, 20), rng.uniform(30, 400)]
                                           if rng.random() < 0.03 else [rng.uniform(0.5, 12)]))
        shot_id = len(shots)
        shots.append(Shot(shot_id=shot_id, start_s=t, end_s=t + length, start_frame_time="", thumbnail=""))
        fps, time_s = rng.uniform(0.5, 2.0), t
        while time_s < t + length:
            frames_.append(SampledFrame(time_s=time_s, shot_id=shot_id, path=f"{time_s:.3f}.jpg", reason="floor"))
            time_s += 1 / fps
        t += length
    return FrameSampling(width=448, height=252, shots=shots, frames=frames_, decoded_fraction=0.3)


def test_a_three_hour_film_makes_few_enough_mapped_tasks():
    sampling = _synthetic_sampling(3.0)
    assert len(sampling.shots) > 1000
    max_frames = max_frames_for(32768, 448, 252)
    utterances = [(t, t + 2.5) for t in range(0, 3 * 3600, 7)]
    windows = build_windows(sampling, _transcript(*utterances), 24.0, 120.0, 240.0, max_frames)
    _assert_tiles(windows, sampling, 240.0)
    assert all(len(w.frames) <= max_frames for w in windows)
    assert sum(len(w.frames) + w.frames_dropped for w in windows) == len(sampling.frames)
    assert sum(len(w.lines) for w in windows) == len(utterances)
    assert 60 <= len(windows) <= 110  # ~90 at 120 s
    groups = batches(windows, 4)
    assert len(groups) < AIRFLOW_MAX_MAP_LENGTH and len(groups) == -(-len(windows) // 4)
    assert [w for g in groups for w in g] == windows
    assert windows_per_batch(len(windows), 4) == 4
    assert windows_per_batch(10_000, 1, max_tasks=256) == 40


def test_bad_arguments_and_empty_films():
    empty = FrameSampling(width=0, height=0, shots=[], frames=[], decoded_fraction=0.0)
    assert build_windows(empty, _transcript((1, 2)), 25.0, 120, 240, 100) == []
    with pytest.raises(ValueError):
        build_windows(empty, None, 25.0, 240, 120, 100)
    with pytest.raises(ValueError):
        batches([], 0)


# --- the windows stage --------------------------------------------------------------------------------------------


def test_the_windows_stage_is_cached_and_keyed_by_its_inputs_and_settings(film, tmp_path, caplog):
    video, sampling = film
    frames_dir = Path(sampling.frames[0].path).parents[1]  # the frames stage's folder: sampling.json, frames/
    transcript = _transcript((1.0, 3.0), (9.0, 10.0), (20.0, 22.0))
    transcript_dir = tmp_path / "transcript-aaaa"
    transcript_dir.mkdir()
    (transcript_dir / TRANSCRIPT_FILE).write_text(transcript.model_dump_json())
    settings = Settings(home=tmp_path / "home", window_target_s=TARGET_S, window_max_s=MAX_S, vision_batch_size=2)

    folder = plan_windows(video, frames_dir, transcript_dir, settings)
    plan = load_plan(folder)
    max_frames = max_frames_for(settings.vision_context_tokens, sampling.width, sampling.height,
                                prompt_tokens=PROMPT_TOKENS, max_new_tokens=settings.vision_max_new_tokens)
    assert plan.windows == build_windows(sampling, transcript, video.info.fps, TARGET_S, MAX_S, max_frames)
    assert plan.batches == [[w.index for w in b] for b in batches(plan.windows, 2)] and len(plan.batches) >= 2
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["upstream"] == [frames_dir.name, transcript_dir.name]
    assert manifest["params"]["target_s"] == TARGET_S and manifest["params"]["windows_per_task"] == 2

    with caplog.at_level("INFO", logger="cinedex.core.artifacts"):
        assert plan_windows(video, frames_dir, transcript_dir, settings) == folder
    assert "cached result" in caplog.text
    # Another transcript, or other settings, make another folder.
    other = tmp_path / "transcript-bbbb"
    other.mkdir()
    (other / TRANSCRIPT_FILE).write_text(transcript.model_dump_json())
    assert plan_windows(video, frames_dir, other, settings) != folder
    wider = settings.model_copy(update={"vision_batch_size": 3})
    assert plan_windows(video, frames_dir, transcript_dir, wider) != folder


def test_on_screen_text_reaches_the_windows_it_is_seen_in_and_their_prompt(film, tmp_path):
    from cinedex.core.model import Event, write_events
    from cinedex.pipeline.on_screen_text import TEXT_FILE
    from cinedex.pipeline.vision.prompt import user_text

    video, sampling = film
    frames_dir = Path(sampling.frames[0].path).parents[1]
    transcript_dir = tmp_path / "transcript-aaaa"
    transcript_dir.mkdir()
    (transcript_dir / TRANSCRIPT_FILE).write_text(_transcript((1.0, 3.0)).model_dump_json())
    settings = Settings(home=tmp_path / "home", window_target_s=TARGET_S, window_max_s=MAX_S)
    plain = load_plan(plan_windows(video, frames_dir, transcript_dir, settings)).windows
    assert len(plain) >= 2 and not any(w.texts for w in plain)
    # A sign inside the first window, a title held across the first cut between windows.
    first, second = plain[0], plain[1]
    sign = Event(video_id=video.video_id, start_s=first.start_s + 0.1, end_s=first.start_s + 0.9,
                 on_screen_text="RUE DES ROSIERS", spatial_description="sign, top left", source="ocr")
    title = Event(video_id=video.video_id, start_s=first.end_s - 0.5, end_s=second.start_s + 0.5,
                  on_screen_text="PARIS, 1962", spatial_description="title card, centre", source="ocr")
    texts_dir = tmp_path / "on_screen_text-cccc"
    texts_dir.mkdir()
    write_events([sign, title], texts_dir / TEXT_FILE)

    folder = plan_windows(video, frames_dir, transcript_dir, settings, texts_dir=texts_dir)
    assert json.loads((folder / "manifest.json").read_text())["params"]["upstream"][-1] == texts_dir.name
    windows = load_plan(folder).windows
    assert [t.text for t in windows[0].texts] == ["RUE DES ROSIERS", "PARIS, 1962"]
    assert [t.text for t in windows[1].texts] == ["PARIS, 1962"]
    assert windows[0].texts[0].where == "sign, top left"
    _, after = user_text(windows[0], timestamp_alignment=True)
    assert "On-screen text (OCR):" in after and "(sign, top left) RUE DES ROSIERS" in after
    assert f"[{sign.start_s:.1f}-{sign.end_s:.1f} s]" in after
    assert "On-screen text" not in user_text(plain[0], timestamp_alignment=True)[1]
