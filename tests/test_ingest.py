"""Ingest on real media and on broken copies of it: every bad input gets its own specific error."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from cinedex.pipeline import ingest
from cinedex.sample import clip


def test_real_clip_is_probed_and_fingerprinted(settings, tmp_path):
    source = clip("bigbuckbunny.mp4")
    video = ingest.ingest(source, settings)
    assert video.video_id == hashlib.sha256(source.read_bytes()).hexdigest()
    info = video.info
    assert (info.width, info.height, info.fps) == (1280, 720, 25.0)
    assert info.has_video and info.has_audio and not info.variable_frame_rate
    assert info.duration_s == pytest.approx(5.3, abs=0.1)


@pytest.mark.parametrize("name", ["with space.mp4", "quote's \"double\".mp4", "$(touch pwned).mp4", "电影 été.mp4"])
def test_awkward_file_names_work_and_never_reach_a_shell(settings, tmp_path, name):
    copy = tmp_path / name
    shutil.copyfile(clip("bikes.mp4"), copy)
    video = ingest.ingest(copy, settings)
    assert video.name == name and video.info.has_video
    assert not (tmp_path / "pwned").exists()


def test_same_content_under_another_name_is_the_same_video(settings, tmp_path):
    copy = tmp_path / "renamed.mp4"
    shutil.copyfile(clip("bikes.mp4"), copy)
    assert ingest.ingest(copy, settings).video_id == ingest.ingest(clip("bikes.mp4"), settings).video_id


def test_audio_only_is_accepted_as_speech_only(settings, tmp_path):
    audio = tmp_path / "talk.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac",
                    str(audio)], check=True)
    video = ingest.ingest(audio, settings)
    assert video.speech_only and video.info.has_audio and not video.info.has_video


def _written(path, data):
    path.write_bytes(data)
    return path


def _truncated(tmp_path, fraction, faststart):
    whole = tmp_path / "whole.mp4"
    args = ["-movflags", "+faststart"] if faststart else []
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("bigbuckbunny.mp4")), "-c", "copy", *args, str(whole)],
                   check=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda d: d / "absent.mp4", ingest.MissingFile, "no such file"),
        (lambda d: _written(d / "zero.mp4", b""), ingest.EmptyFile, "empty"),
        (lambda d: _written(d / "notes.mp4", b"not a film\n"), ingest.NotMediaFile, "not a media file"),
        (lambda d: _truncated(d, 0.6, faststart=False), ingest.CorruptMedia, "truncated or corrupt"),
        (lambda d: _truncated(d, 0.5, faststart=True), ingest.CorruptMedia, "truncated or corrupt"),
    ],
    ids=["missing", "zero-bytes", "text-named-mp4", "truncated-moov-at-end", "truncated-moov-at-start"],
)
def test_bad_input_gets_its_specific_error(settings, tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        ingest.ingest(make(tmp_path), settings)


def test_unsupported_codec_has_no_decodable_stream(settings, tmp_path):
    # A real Matroska file whose codec id is renamed to one no decoder knows: it probes, nothing decodes.
    good = tmp_path / "good.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=2:size=320x240",
                    "-c:v", "mjpeg", str(good)], check=True)
    unknown = tmp_path / "unknown-codec.mkv"
    unknown.write_bytes(good.read_bytes().replace(b"V_MJPEG", b"V_QQQQQ"))
    with pytest.raises(ingest.NoDecodableStream, match="no decodable video or audio"):
        ingest.ingest(unknown, settings)


def test_paths_outside_the_media_roots_are_refused(settings, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "film.mp4"
    shutil.copyfile(clip("bikes.mp4"), outside)
    with pytest.raises(ingest.PathNotAllowed, match="outside the allowed media roots"):
        ingest.ingest(outside, settings)


def test_symlink_out_of_the_roots_is_refused(settings, tmp_path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "film.mp4"
    shutil.copyfile(clip("bikes.mp4"), outside)
    link = tmp_path / "link.mp4"
    link.symlink_to(outside)
    with pytest.raises(ingest.PathNotAllowed):
        ingest.ingest(link, settings)


def _outside_ts(folder):
    """A real MPEG-TS (picture and sound) in `folder`, outside every media root."""
    segment = folder / "private segment.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=2", "-f", "lavfi", "-i",
                    "sine=f=1500:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts",
                    str(segment)], check=True)
    return segment


@pytest.mark.parametrize(
    ("list_text", "kind"),
    [
        (lambda target: f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n", "HLS playlist"),
        (lambda target: f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nfile://{target}\n", "HLS playlist"),
        (lambda target: f"ffconcat version 1.0\nfile '{target}'\n", "concat list"),
    ],
    ids=["hls", "hls-file-url", "concat"],
)
def test_a_list_of_other_files_named_mp4_is_refused_without_saying_what_it_names(settings, tmp_path,
                                                                                  tmp_path_factory, list_text, kind):
    outside = tmp_path_factory.mktemp("elsewhere")
    playlist = tmp_path / "holiday.mp4"
    playlist.write_text(list_text(_outside_ts(outside)))
    with pytest.raises(ingest.PlaylistNotAllowed, match=kind) as refused:
        ingest.ingest(playlist, settings)
    message = str(refused.value)
    assert message.startswith("holiday.mp4: ") and "remux" in message
    assert str(outside) not in message and "private segment" not in message and ".ts" not in message
    assert not settings.artifacts_dir.exists() or not any(settings.artifacts_dir.iterdir())


def test_a_film_longer_than_the_limit_is_refused_before_decoding(settings, tmp_path):
    long_film = tmp_path / "long.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=gray:s=64x36:r=1/60:d=7200", "-c:v",
                    "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(long_film)], check=True)
    limited = settings.model_copy(update={"max_duration_s": 3600.0})
    with pytest.raises(ingest.TooLong) as refused:
        ingest.ingest(long_film, limited)
    assert str(refused.value) == ("long.mp4: too long: 2 h 00 min (7200 s), more than the limit of 1 h 00 min "
                                  "(3600 s) set by CINEDEX_MAX_DURATION_S; cut it into parts, or raise the limit")
    assert ingest.ingest(long_film, settings).info.duration_s == 7200  # the default limit is 12 hours


def test_the_max_duration_comes_from_the_environment(monkeypatch):
    from cinedex.core.settings import Settings

    assert Settings().max_duration_s == 12 * 3600
    monkeypatch.setenv("CINEDEX_MAX_DURATION_S", "90")
    assert Settings().max_duration_s == 90
    assert "max_duration_s" not in Settings.per_run_fields()  # a deployment's limit, not a run's
    monkeypatch.setenv("CINEDEX_MAX_DURATION_S", "0")
    with pytest.raises(ValueError):
        Settings()


def test_the_probed_container_is_recorded_and_typed(settings, tmp_path):
    mkv = tmp_path / "film.mp4"  # Matroska under an MP4 name
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=1", "-c:v", "libx264",
                    "-preset", "ultrafast", "-f", "matroska", str(mkv)], check=True)
    info = ingest.ingest(mkv, settings).info
    assert info.container == "matroska,webm" and ingest.media_type(info) == "video/x-matroska"
    bunny = ingest.ingest(clip("bigbuckbunny.mp4"), settings).info
    assert bunny.container == "mov,mp4,m4a,3gp,3g2,mj2" and ingest.media_type(bunny) == "video/mp4"
    assert ingest.media_type(bunny.model_copy(update={"has_video": False})) == "audio/mp4"
    assert ingest.media_type(bunny.model_copy(update={"container": "hls"})) == "application/octet-stream"
    assert set(ingest.MEDIA_FORMATS.split(",")) >= {"mov", "mp4", "matroska", "webm", "mpegts", "wav"}
    assert not set(ingest.MEDIA_FORMATS.split(",")) & {"hls", "concat", "dash", "image2", "imf", "sdp"}
