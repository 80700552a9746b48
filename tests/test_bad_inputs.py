"""One day's inbox of bad and odd files: each gets its specific error or the right handling, the good ones index.

The inbox (tests/bad_media.py) is built and run once for the module: ingest, frame sampling and audio extraction
for every file, as the index DAG runs them. The tests then check each file's outcome, and that the committed
outcomes table (docs/bad-inputs.md) says what really happened.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_media import (INBOX_NAMES, LIST_TARGETS, SDR_PATTERN, TABLE, TEN_HOURS_S, day_settings, make_bad_inbox,
                       outcomes_table, run_day)
from cinedex.pipeline import frames, ingest
from cinedex.core.settings import Settings


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """(root folder, inputs, settings, outcomes) of the day, built and run once."""
    root = tmp_path_factory.mktemp("day")
    started = time.monotonic()
    inputs = make_bad_inbox(root / "inbox", root / "outside")
    built_s = time.monotonic() - started
    assert built_s < 60, f"the inbox took {built_s:.0f} s to build"
    settings = day_settings(root)
    return root, {case.name: case for case in inputs}, settings, run_day(inputs, settings)


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16_000, 1)
        return wav.getnframes() / wav.getframerate()


def _luma(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=float)


@pytest.mark.slow
def test_the_inbox_has_at_least_25_bad_or_odd_files(day):
    _, inputs, _, _ = day
    odd = [case for case in inputs.values() if not case.name.startswith("good ")]
    assert len(odd) >= 25
    assert sorted(inputs) == sorted(INBOX_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", INBOX_NAMES)
def test_each_file_gets_its_specific_error_or_handling(day, name):
    _, inputs, _, outcomes = day
    case, outcome = inputs[name], outcomes[name]
    if case.error is not None:
        assert (outcome.stage, outcome.error) == ("ingest", case.error.__name__), outcome.message
        assert case.expect in outcome.message
        # A sentence for a person, naming the file: no traceback, no ffmpeg banner or stream dump.
        assert name in outcome.message and "\n" not in outcome.message.replace(name, "")
        assert "Traceback" not in outcome.message and len(outcome.message) < 400
        return
    assert not outcome.error, f"{outcome.stage}: {outcome.error}: {outcome.message}"
    assert case.expect in outcome.message
    video, sampling = outcome.video, outcome.sampling
    assert video.name == name
    if video.info.has_video:
        times = [f.time_s for f in sampling.frames]
        assert times and times == sorted(times) and len(set(times)) == len(times)
        assert 0 <= times[0] and times[-1] <= video.info.duration_s
        assert sampling.shots[0].start_s == 0 and sampling.shots[-1].end_s == pytest.approx(video.info.duration_s)
        assert sampling.width % 2 == 0 and sampling.height % 2 == 0
        assert all(Path(f.path).stat().st_size > 0 for f in sampling.frames)
    else:
        assert video.speech_only and not sampling.frames and not sampling.shots
    if video.info.has_audio:
        assert _wav_seconds(outcome.audio) == pytest.approx(video.info.duration_s, abs=0.1)
    else:
        assert outcome.audio is None


@pytest.mark.slow
def test_the_good_files_of_the_day_still_index(day):
    _, inputs, _, outcomes = day
    good = [name for name in inputs if name.startswith("good ")]
    assert len(good) == 3
    assert all(outcomes[name].video and outcomes[name].sampling.frames for name in good)
    assert outcomes["good film.mp4"].audio is not None


@pytest.mark.slow
def test_copies_and_links_of_one_film_are_one_video(day):
    _, _, _, outcomes = day
    ids = {outcomes[name].video.video_id for name in ("good film.mp4", "good film (copy).mp4", "link to good film.mp4")}
    assert len(ids) == 1


@pytest.mark.slow
def test_names_never_reach_a_shell(day):
    root, _, _, outcomes = day
    assert outcomes["$(touch pwned).mp4"].video is not None
    for folder in (root, root / "inbox", root / "home", Path.cwd()):
        assert not (folder / "pwned").exists()


@pytest.mark.slow
def test_a_named_pipe_is_refused_without_being_opened(day):
    root, _, settings, _ = day
    result: list = []
    # Opening a pipe nobody writes to blocks forever; a thread lets the test fail instead of hanging.
    worker = threading.Thread(target=lambda: result.append(_raised(root / "inbox" / "named pipe.mp4", settings)),
                              daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "ingest blocked on the named pipe"
    assert isinstance(result[0], ingest.NotMediaFile)


def _raised(path: Path, settings: Settings) -> Exception | None:
    try:
        ingest.ingest(path, settings)
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        return exc
    return None


@pytest.mark.slow
def test_rotated_video_is_sampled_upright(day):
    _, _, _, outcomes = day
    outcome = outcomes["rotated portrait.mp4"]
    assert outcome.video.info.rotation == 90
    assert (outcome.video.info.width, outcome.video.info.height) == (320, 180)  # as stored
    assert (outcome.sampling.width, outcome.sampling.height) == (180, 320)  # as shown
    picture = _luma(outcome.sampling.frames[0].path)
    assert picture.shape == (320, 180)
    # The portrait picture is white above and black below, as it was filmed.
    assert picture[:150].mean() > 200 and picture[170:].mean() < 50


@pytest.mark.slow
def test_variable_frame_rate_keeps_each_frame_s_own_time(day):
    root, _, settings, outcomes = day
    video = outcomes["variable frame rate.mp4"].video
    assert video.info.variable_frame_rate
    # Every frame kept (floor rate above the frame rate), so the sampled times must be exactly the file's own.
    every_frame = settings.model_copy(update={"home": root / "every-frame", "sample_floor_fps": 30.0,
                                              "sample_max_fps": 30.0})
    sampling = frames.load_sampling(frames.sample_frames(video, every_frame))
    probed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time",
                             "-of", "csv=p=0", video.path], capture_output=True, text=True, check=True)
    truth = [float(line.strip(",")) for line in probed.stdout.split()]
    times = [f.time_s for f in sampling.frames]
    assert times == pytest.approx(truth, abs=1e-6)
    gaps = {round(b - a, 3) for a, b in zip(times, times[1:])}
    assert gaps == {0.04, 0.08}


@pytest.mark.slow
def test_8k_is_downscaled_to_the_frame_width(day):
    _, _, settings, outcomes = day
    outcome = outcomes["8k.mp4"]
    assert (outcome.video.info.width, outcome.video.info.height) == (7680, 4320)
    assert (outcome.sampling.width, outcome.sampling.height) == (settings.frame_width, 252)
    assert _luma(outcome.sampling.frames[0].path).shape == (252, settings.frame_width)


@pytest.mark.slow
def test_a_ten_hour_film_is_probed_in_seconds_and_sampled_at_the_floor_rate(day):
    _, _, settings, outcomes = day
    outcome = outcomes["ten hours silent.mp4"]
    assert outcome.video.info.duration_s == TEN_HOURS_S
    assert outcome.ingest_s < 5
    # One frame a minute, each further than the floor gap from the last: every one of them is kept, no more.
    assert len(outcome.sampling.frames) == TEN_HOURS_S // 60
    assert len(outcome.sampling.frames) <= TEN_HOURS_S * settings.sample_floor_fps + len(outcome.sampling.shots)
    assert outcome.audio is None


@pytest.mark.slow
def test_hdr_frames_are_tone_mapped_to_sdr(day, tmp_path):
    _, _, _, outcomes = day
    outcome = outcomes["hdr 10-bit.mp4"]
    assert outcome.video.info.hdr == "PQ"
    first = outcome.sampling.frames[0]
    assert first.time_s == 0.0

    def first_frame(*args: str) -> np.ndarray:
        target = tmp_path / f"{len(list(tmp_path.iterdir()))}.png"
        subprocess.run(["ffmpeg", "-v", "error", *args, "-frames:v", "1", str(target)], check=True)
        return _luma(str(target))

    pattern = first_frame("-f", "lavfi", "-i", SDR_PATTERN)
    untouched = first_frame("-i", outcome.video.path)  # the PQ signal shown as if it were SDR
    sampled = _luma(first.path)
    # Tone-mapped, the picture is close to the SDR pattern it was made from; shown as is, it is far off.
    assert np.abs(sampled - pattern).mean() < 0.5 * np.abs(untouched - pattern).mean()


def _comb(picture: np.ndarray) -> float:
    """How far each row is from the mean of its neighbours: high where two fields of a moving picture are woven."""
    return float(np.abs(2 * picture[1:-1] - picture[:-2] - picture[2:]).mean())


@pytest.mark.slow
def test_interlaced_frames_are_deinterlaced(day, tmp_path):
    _, _, _, outcomes = day
    outcome = outcomes["interlaced.mp4"]
    assert outcome.video.info.interlaced
    woven = tmp_path / "woven.png"
    subprocess.run(["ffmpeg", "-v", "error", "-i", outcome.video.path, "-frames:v", "1", str(woven)], check=True)
    assert _comb(_luma(str(woven))) > 100
    assert all(_comb(_luma(f.path)) < 10 for f in outcome.sampling.frames)


@pytest.mark.slow
def test_odd_dimensions_become_even(day):
    _, _, _, outcomes = day
    outcome = outcomes["odd dimensions.mkv"]
    assert (outcome.video.info.width, outcome.video.info.height) == (321, 241)
    assert (outcome.sampling.width, outcome.sampling.height) == (320, 240)


@pytest.mark.slow
def test_of_many_audio_tracks_the_first_is_extracted(day):
    _, _, _, outcomes = day
    outcome = outcomes["sixteen audio tracks.mkv"]
    assert outcome.video.info.audio_tracks == 16
    with wave.open(str(outcome.audio)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / 16_000)[spectrum.argmax()] == pytest.approx(200, abs=2)  # track 1


@pytest.mark.slow
def test_undecodable_sound_leaves_the_picture_indexed(day):
    _, _, _, outcomes = day
    outcome = outcomes["undecodable audio.mkv"]
    assert outcome.video.info.audio_tracks == 1 and not outcome.video.info.has_audio
    assert outcome.sampling.frames and outcome.audio is None


@pytest.mark.slow
def test_the_outcomes_table_matches_the_real_outcomes(day):
    root, inputs, _, outcomes = day
    expected = outcomes_table(list(inputs.values()), outcomes, root)
    assert TABLE.read_text() == expected, "docs/bad-inputs.md is stale: run `python tests/bad_media.py --write-table`"


def _distinct_chunks(data: bytes, size: int = 64) -> list[bytes]:
    """Stretches of `data` with many different byte values (compressed samples, not padding): any one of them
    found in another file is a copy of this one, not chance."""
    chunks = (data[i:i + size] for i in range(0, len(data) - size, size))
    return [chunk for chunk in chunks if len(set(chunk)) > size // 2]


def _peak_hz(path: Path) -> float:
    with wave.open(str(path)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(float)
    return float(np.fft.rfftfreq(len(samples), 1 / 16_000)[np.abs(np.fft.rfft(samples)).argmax()])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIST_TARGETS))
def test_nothing_a_list_of_other_files_names_reaches_an_artifact(day, name):
    root, _, settings, outcomes = day
    outcome = outcomes[name]
    assert outcome.video is None and outcome.sampling is None and outcome.audio is None
    target = root / "outside" / LIST_TARGETS[name]
    # The message says what the list is, never what it names.
    assert target.name not in outcome.message and "outside" not in outcome.message and target.suffix not in \
        outcome.message.removeprefix(name)
    secret = target.read_bytes()
    chunks = _distinct_chunks(secret)
    assert len(chunks) > 50
    listed = hashlib.sha256((root / "inbox" / name).read_bytes()).hexdigest()
    ids = {listed, hashlib.sha256(secret).hexdigest()}
    files = [p for p in settings.home.rglob("*") if p.is_file()]
    assert files  # the good films of the day left their artifacts
    for path in files:
        assert not ids & set(path.relative_to(settings.home).parts), path  # no stage ran for the list
        data = path.read_bytes()
        assert target.name.encode() not in data and str(target.parent).encode() not in data, path
        assert not any(chunk in data for chunk in chunks), f"{path} holds bytes of {target}"
        if path.suffix == ".wav":  # the sound the list names (1870 or 1930 Hz) was never decoded into audio
            assert _peak_hz(path) < 1800, path


@pytest.mark.slow
def test_a_lower_duration_limit_refuses_the_ten_hour_film(day, monkeypatch):
    root, inputs, _, _ = day
    monkeypatch.setenv("CINEDEX_MAX_DURATION_S", str(9 * 3600))
    limited = Settings(home=root / "limited", media_roots=str(root / "inbox"))
    started = time.monotonic()
    with pytest.raises(ingest.TooLong) as refused:
        ingest.ingest(inputs["ten hours silent.mp4"].path, limited)
    assert time.monotonic() - started < 5  # refused from the probe, before any decoding
    assert str(refused.value).startswith("ten hours silent.mp4: too long: 10 h 00 min (36000 s), more than the "
                                         "limit of 9 h 00 min (32400 s) set by CINEDEX_MAX_DURATION_S")
    assert not (root / "limited").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, so an unreadable file cannot be made")
def test_an_unreadable_file_is_refused(settings, tmp_path):
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(b"\x00" * 64)
    locked.chmod(0)
    with pytest.raises(ingest.UnreadableFile, match="permission denied"):
        ingest.ingest(locked, settings)
