"""Media that is not what its name says: only the allowed demuxers ever read a user's file, lists of other files
are never followed, an upload is named and served by what its bytes are, and the page serves a film as media only.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cinedex.core.settings import Settings
from cinedex.page import uploads
from cinedex.pipeline import audio, frames, ingest
from cinedex.sample import clip

SCRIPT = "<script>alert(document.cookie)</script>"


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture
def polyglot(tmp_path) -> Path:
    """A real MP4 named `poly.html`, with a script in its metadata: what a browser would run if served as HTML."""
    path = tmp_path / "poly.html"
    _ffmpeg("-i", clip("bikes.mp4"), "-t", "2", "-c", "copy", "-metadata", f"title={SCRIPT}", "-f", "mp4", path)
    assert SCRIPT.encode() in path.read_bytes()
    return path


# --- every ffmpeg and ffprobe call on a user's file allows the media demuxers and the file protocol only ----------


def test_every_ffmpeg_and_ffprobe_call_has_the_allow_lists(settings, monkeypatch):
    calls: list[list[str]] = []
    real_popen = subprocess.Popen

    class Recording(real_popen):
        def __init__(self, args, *rest, **options):
            calls.append([str(a) for a in args])
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    video = ingest.ingest(clip("bigbuckbunny.mp4"), settings)
    frames.sample_frames(video, settings)
    assert audio.extract_audio(video, settings) is not None
    media_calls = [c for c in calls if Path(c[0]).name in ("ffmpeg", "ffprobe")]
    assert {Path(c[0]).name for c in media_calls} == {"ffmpeg", "ffprobe"} and len(media_calls) >= 5
    for args in media_calls:
        inputs = [i for i, a in enumerate(args) if a == video.path]
        assert inputs, args
        for at in inputs:  # the options go before the file they apply to
            before = args[:at]
            assert before[before.index("-format_whitelist") + 1] == ingest.MEDIA_FORMATS, args
            assert before[before.index("-protocol_whitelist") + 1] == "file", args


@pytest.mark.parametrize("name", ["good film.mp4", "audio only.m4a", "matroska named.mp4", "clip.ts", "sound.wav",
                                  "sound.flac", "sound.ogg", "sound.mp3", "clip.avi", "clip.webm"])
def test_common_containers_still_ingest(settings, tmp_path, name):
    path = tmp_path / name
    picture = ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=1"]
    sound = ["-f", "lavfi", "-i", "sine=f=440:d=1"]
    by_name = {
        "good film.mp4": [*picture, *sound, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
        "audio only.m4a": [*sound, "-c:a", "aac"],
        "matroska named.mp4": [*picture, *sound, "-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska"],
        "clip.ts": [*picture, *sound, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
        "clip.avi": [*picture, *sound, "-c:v", "mjpeg", "-c:a", "pcm_s16le"],
        "clip.webm": [*picture, *sound, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"],
    }
    _ffmpeg(*by_name.get(name, sound), path)
    info = ingest.ingest(path, settings).info
    assert info.container in ingest.CONTAINERS and info.has_audio
    assert ingest.media_type(info).startswith("audio/" if not info.has_video else "video/")


def test_an_image_sequence_pattern_is_not_followed(settings, tmp_path):
    # The image2 demuxer reads every file a `%d` pattern matches; it is not allowed, so a name is only a name.
    for number in (1, 2):
        _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x36", "-frames:v", "1", tmp_path / f"shot{number}.png")
    pattern = tmp_path / "shot%d.png"
    pattern.write_bytes((tmp_path / "shot1.png").read_bytes())
    with pytest.raises(ingest.NotMediaFile, match="a still image"):
        ingest.ingest(pattern, settings)


# --- lists of other files are refused, and what they name is never opened ------------------------------------------


def _watch_for_readers(fifo: Path, stop: threading.Event, opened: list) -> None:
    """Records whether anyone opens `fifo` for reading (a writer's non-blocking open succeeds only then)."""
    while not stop.is_set():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            stop.wait(0.001)
            continue
        opened.append(True)
        os.close(fd)  # the reader gets end of file


@pytest.mark.parametrize("listing", ["#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n",
                                     "ffconcat version 1.0\nfile '{target}'\n"], ids=["hls", "concat"])
def test_what_a_list_names_is_never_opened(settings, tmp_path, tmp_path_factory, listing):
    target = tmp_path_factory.mktemp("elsewhere") / "secret.ts"
    os.mkfifo(target)
    playlist = tmp_path / "holiday.mp4"
    playlist.write_text(listing.format(target=target))
    stop, opened = threading.Event(), []
    watcher = threading.Thread(target=_watch_for_readers, args=(target, stop, opened), daemon=True)
    watcher.start()
    try:
        with pytest.raises(ingest.PlaylistNotAllowed) as refused:
            ingest.ingest(playlist, settings)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert not opened, "ffmpeg opened the file the list names"
    assert str(target.parent) not in str(refused.value) and "secret" not in str(refused.value)


def test_the_frame_sampler_s_own_decoder_has_the_allow_lists(tmp_path, tmp_path_factory):
    # The sampler decodes in-process with PyAV, not through an ffmpeg command, so the test above cannot see its
    # options: it is handed a playlist directly, past ingest, as if a check before it had failed.
    import av

    target = tmp_path_factory.mktemp("elsewhere") / "secret.ts"
    os.mkfifo(target)
    playlist = tmp_path / "holiday.m3u8"  # the name FFmpeg's HLS demuxer wants, so only the allow-list refuses it
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n")
    video = ingest.IngestedVideo(video_id="list", path=str(playlist), name=playlist.name, info=ingest.MediaInfo(
        duration_s=2.0, size_bytes=playlist.stat().st_size, container="hls", has_video=True, has_audio=False,
        width=320, height=180))

    def opens_target(open_it) -> bool:
        stop, opened = threading.Event(), []
        watcher = threading.Thread(target=_watch_for_readers, args=(target, stop, opened), daemon=True)
        watcher.start()
        try:
            open_it()
        except (av.FFmpegError, OSError):
            pass
        finally:
            stop.set()
            watcher.join(timeout=5)
        return bool(opened)

    with pytest.raises(av.FFmpegError):
        frames._Film(video, (320, 180), tmp_path)
    assert not opens_target(lambda: frames._Film(video, (320, 180), tmp_path))

    def without_allow_lists():
        with av.open(str(playlist)) as container:
            next(container.demux(container.streams.video[0]), None)

    assert opens_target(without_allow_lists), "the same file opened without the allow-lists reads the target"


def test_a_playlist_with_a_byte_order_mark_or_unknown_to_ffmpeg_is_still_a_playlist(settings, tmp_path):
    for text in ("\ufeff#EXTM3U\n#EXTINF:2.0,\n/etc/hostname\n", "#EXTM3U\n/etc/hostname\n"):
        playlist = tmp_path / "holiday.mp4"
        playlist.write_text(text)
        with pytest.raises(ingest.PlaylistNotAllowed, match="HLS playlist") as refused:
            ingest.ingest(playlist, settings)
        assert "/etc" not in str(refused.value) and "hostname" not in str(refused.value)


# --- uploads: named by their bytes, limited in length ---------------------------------------------------------------


async def _chunks(path: Path):
    yield path.read_bytes()


def _receive(path: Path, name: str, settings: Settings) -> uploads.UploadedVideo:
    return asyncio.run(uploads.receive(_chunks(path), name, settings))


@pytest.fixture
def upload_settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", media_roots=str(tmp_path), inbox=str(tmp_path / "inbox"))


def test_an_upload_gets_the_extension_of_what_it_is(upload_settings, polyglot, tmp_path):
    uploaded = _receive(polyglot, "poly.html", upload_settings)
    today = tmp_path / "inbox" / f"{datetime.now(timezone.utc):%Y-%m-%d}"
    assert uploaded.name == "poly.mp4" and Path(uploaded.path) == today / "poly.mp4"
    assert uploaded.info.container == "mov,mp4,m4a,3gp,3g2,mj2"
    # Its own extension is kept when it is one of the container's, in any case; else the container's.
    assert _receive(polyglot, "holiday.MOV", upload_settings).name == "holiday.MOV"
    assert _receive(polyglot, "holiday", upload_settings).name == "holiday.mp4"
    assert _receive(polyglot, "holiday.mkv", upload_settings).name == "holiday (2).mp4"  # never overwrites
    mkv = tmp_path / "film.bin"
    _ffmpeg("-i", polyglot, "-c", "copy", "-f", "matroska", mkv)
    assert _receive(mkv, "film.mp4", upload_settings).name == "film.mkv"
    assert _receive(mkv, "film.webm", upload_settings).name == "film.webm"
    assert sorted(p.name for p in today.iterdir()) == sorted(
        ["poly.mp4", "holiday.MOV", "holiday.mp4", "holiday (2).mp4", "film.mkv", "film.webm"])


def test_an_upload_longer_than_the_limit_is_refused(upload_settings, polyglot, tmp_path):
    limited = upload_settings.model_copy(update={"max_duration_s": 1.0})
    with pytest.raises(uploads.NotAVideo, match="too long.*CINEDEX_MAX_DURATION_S") as refused:
        _receive(polyglot, "poly.html", limited)
    assert str(refused.value).startswith("not a video cinedex can index: poly.html: too long")
    assert [p for p in (tmp_path / "inbox").rglob("*") if p.is_file()] == []


def test_an_uploaded_playlist_is_refused_without_saying_what_it_names(upload_settings, tmp_path):
    playlist = tmp_path / "notes.txt"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n/etc/ssl/private/segment.ts\n")
    with pytest.raises(uploads.NotAVideo, match="holiday.mp4: an HLS playlist") as refused:
        _receive(playlist, "holiday.mp4", upload_settings)
    assert "/etc" not in str(refused.value) and "segment" not in str(refused.value)
    assert [p for p in (tmp_path / "inbox").rglob("*") if p.is_file()] == []


# --- the page serves a film as media, never as a page ---------------------------------------------------------------


@pytest.fixture
def library(tmp_path, monkeypatch, polyglot):
    """CINEDEX_* pointing at a library holding `poly.html` ingested as it is (an MP4 under an HTML name)."""
    monkeypatch.setenv("CINEDEX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CINEDEX_MEDIA_ROOTS", str(tmp_path))
    monkeypatch.setenv("CINEDEX_INBOX", str(tmp_path / "inbox"))
    return ingest.ingest(polyglot, Settings())


def _is_served_as_media(reply, data: bytes) -> None:
    assert reply.status_code == 200 and reply.content == data
    assert reply.headers["content-type"] == "video/mp4"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert "attachment" not in reply.headers.get("content-disposition", "")  # plays in the page


def test_a_film_named_html_is_served_as_video_with_nosniff_and_a_sandbox(library, polyglot):
    from fastapi.testclient import TestClient

    from cinedex.page.api import create_app

    with TestClient(create_app()) as client:
        _is_served_as_media(client.get(f"/api/films/{library.video_id}/video"), polyglot.read_bytes())
        part = client.get(f"/api/films/{library.video_id}/video", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.headers["content-type"] == "video/mp4"
        assert part.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_container_is_served_as_octet_stream(library, tmp_path):
    from fastapi.testclient import TestClient

    from cinedex.page import catalog
    from cinedex.page.api import create_app

    record = next(catalog.film_dir(Settings(), library.video_id).glob("ingest-*/video.json"))
    forged = library.model_copy(update={"info": library.info.model_copy(update={"container": "html"})})
    record.write_text(forged.model_dump_json())  # a record from elsewhere, or from before the allow-list
    with TestClient(create_app()) as client:
        reply = client.get(f"/api/films/{library.video_id}/video")
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_an_upload_named_html_is_stored_and_served_as_mp4_inside_airflow(api_server, token, library, polyglot,
                                                                          tmp_path):
    auth = {"Authorization": f"Bearer {token}"}
    reply = api_server.put("/cinedex/api/uploads", params={"name": "poly.html"}, headers=auth,
                           content=polyglot.read_bytes())
    assert reply.status_code == 201, reply.text
    uploaded = reply.json()
    assert uploaded["name"] == "poly.mp4" and uploaded["path"].endswith("/poly.mp4")
    assert ingest.ingest(uploaded["path"], Settings()).video_id == library.video_id  # the same bytes
    _is_served_as_media(api_server.get(f"/cinedex/api/films/{library.video_id}/video", headers=auth),
                        polyglot.read_bytes())
