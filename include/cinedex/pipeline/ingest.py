"""Ingest: confine the path, fingerprint the bytes, probe the streams, and reject bad input with a specific error."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import ffmpeg
from pydantic import BaseModel

from cinedex.core.artifacts import cached_stage
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# No probe or test decode of a sane file takes more than seconds, whatever its length (a ten-hour film probes in
# well under one); a file that keeps ffmpeg busy longer is damaged in some way, and must not stall the day's run.
PROBE_TIMEOUT_S = 60
# Transfer functions of HDR video (PQ and HLG): their frames are tone-mapped before sampling.
HDR_TRANSFERS = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
_INTERLACED_FIELD_ORDERS = {"tt": "top field first", "bb": "bottom field first", "tb": "top field first",
                            "bt": "bottom field first"}


class Container(NamedTuple):
    """A container cinedex reads: the extensions its files carry and the media types the page serves it as."""

    extensions: tuple[str, ...]  # the first is the one an upload gets when its own name says something else
    video_type: str = ""  # served for a film with a picture; "" = application/octet-stream
    audio_type: str = ""  # served for sound only; "" = as video_type


# The containers cinedex reads, by ffmpeg's demuxer name (the format_name ffprobe reports). ffmpeg picks a demuxer by
# the bytes, whatever the file's name, and some demuxers read other files: an HLS playlist or a concat list named
# `holiday.mp4` would make ffmpeg read whatever it names, anywhere on disk. So every ffprobe and ffmpeg call on a
# user's file allows these demuxers and no others, and the file protocol only (MEDIA_INPUT); none of them opens
# another file (the MP4 demuxer's external references, `enable_drefs`, are off by default).
CONTAINERS: dict[str, Container] = {
    "mov,mp4,m4a,3gp,3g2,mj2": Container((".mp4", ".mov", ".m4v", ".m4a", ".3gp", ".3g2", ".mj2"), "video/mp4",
                                         "audio/mp4"),
    "matroska,webm": Container((".mkv", ".webm", ".mka", ".mk3d"), "video/x-matroska", "audio/x-matroska"),
    "avi": Container((".avi",), "video/x-msvideo"),
    "mpegts": Container((".ts", ".m2ts", ".mts", ".m2t"), "video/mp2t"),
    "mpeg": Container((".mpg", ".mpeg", ".vob", ".m2p"), "video/mpeg", "audio/mpeg"),
    "flv": Container((".flv",), "video/x-flv"),
    "asf": Container((".wmv", ".asf", ".wma"), "video/x-ms-asf", "audio/x-ms-wma"),
    "mxf": Container((".mxf",)),
    "dv": Container((".dv",), "video/x-dv"),
    "nut": Container((".nut",)),
    "ogg": Container((".ogg", ".ogv", ".oga", ".opus"), "video/ogg", "audio/ogg"),
    "wav": Container((".wav",), "", "audio/wav"),
    "w64": Container((".w64",)),
    "flac": Container((".flac",), "", "audio/flac"),
    "mp3": Container((".mp3", ".mp2"), "", "audio/mpeg"),
    "aac": Container((".aac",), "", "audio/aac"),
    "ac3": Container((".ac3",), "", "audio/ac3"),
    "eac3": Container((".eac3", ".ec3"), "", "audio/eac3"),
    "aiff": Container((".aiff", ".aif", ".aifc"), "", "audio/aiff"),
    "caf": Container((".caf",), "", "audio/x-caf"),
    "wv": Container((".wv",), "", "audio/x-wavpack"),
    "amr": Container((".amr",), "", "audio/amr"),
}
MEDIA_FORMATS = ",".join(CONTAINERS)  # ffmpeg's -format_whitelist
# The input options of every ffmpeg call on a user's file (ffmpeg-python: `ffmpeg.input(path, **MEDIA_INPUT)`).
MEDIA_INPUT = {"format_whitelist": MEDIA_FORMATS, "protocol_whitelist": "file"}
_FFPROBE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", MEDIA_FORMATS]
# Lists that name other files or addresses: refused by the demuxer ffprobe picks (never opened, so no message can
# say what they point at), or by their first bytes.
_PLAYLIST_DEMUXERS = {"hls": "an HLS playlist (M3U8)", "concat": "an ffmpeg concat list", "dash": "a DASH manifest",
                      "webm_dash_manifest": "a WebM DASH manifest", "imf": "an IMF composition playlist",
                      "sdp": "an SDP session description"}
_PLAYLIST_SIGNATURES = {b"#EXTM3U": _PLAYLIST_DEMUXERS["hls"], b"ffconcat": _PLAYLIST_DEMUXERS["concat"]}
_REFUSED_DEMUXER = re.compile(rb"\[([\w,]+) @ (?:0x)?[0-9a-fA-F]+\] Format not on whitelist")


class IngestError(Exception):
    """A video that cannot be indexed; the message says which file and why."""


class PathNotAllowed(IngestError):
    pass


class MissingFile(IngestError):
    pass


class EmptyFile(IngestError):
    pass


class UnreadableFile(IngestError):
    pass


class NotMediaFile(IngestError):
    pass


class CorruptMedia(IngestError):
    """The container is truncated or damaged."""


class NoDecodableStream(IngestError):
    pass


class PlaylistNotAllowed(IngestError):
    """A playlist or list of other files (HLS, concat, DASH), not a media file: it would make ffmpeg read elsewhere."""


class TooLong(IngestError):
    """Longer than CINEDEX_MAX_DURATION_S."""


class MediaInfo(BaseModel):
    """What the probe found, in the units the rest of the pipeline uses."""

    duration_s: float
    size_bytes: int
    container: str
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    variable_frame_rate: bool = False
    rotation: int = 0
    interlaced: bool = False
    hdr: str = ""  # "PQ" or "HLG" for HDR video, else empty
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = 0
    audio_tracks: int = 0
    notes: list[str] = []  # how the pipeline handles what is unusual about this file, for the user


_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis", ""}


def media_type(info: MediaInfo) -> str:
    """The media type to serve the film as, from its probed container, never its name: a `video/*` or `audio/*`
    type of CONTAINERS, else application/octet-stream."""
    container = CONTAINERS.get(info.container)
    if container is None:
        return "application/octet-stream"
    if info.container == "matroska,webm" and {info.video_codec, info.audio_codec} <= _WEBM_CODECS:
        return "video/webm" if info.has_video else "audio/webm"
    found = container.video_type if info.has_video else container.audio_type or container.video_type
    return found if found.startswith(("video/", "audio/")) else "application/octet-stream"


class IngestedVideo(BaseModel):
    """A video accepted for indexing: what every later stage starts from (small enough for XCom)."""

    video_id: str
    path: str
    name: str
    info: MediaInfo

    @property
    def speech_only(self) -> bool:
        return not self.info.has_video


def confine(path: Path, settings: Settings) -> Path:
    """The real path of `path`, refused unless it lies inside a configured media root (symlinks resolved)."""
    real = Path(path).resolve()
    if not any(real.is_relative_to(root) for root in settings.allowed_roots):
        roots = ", ".join(str(r) for r in settings.allowed_roots)
        raise PathNotAllowed(f"{path}: outside the allowed media roots ({roots}); set CINEDEX_MEDIA_ROOTS")
    return real


def fingerprint(path: Path) -> str:
    """sha256 of the content, streamed, so the same film under any name or folder is the same video."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# Leading bytes of common containers: a file that starts like one but does not probe is damaged, not foreign.
_MEDIA_SIGNATURES = (b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"ID3", b"fLaC", b"\x00\x00\x01\xba", b"FLV")


def _looks_like_media(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head.startswith(_MEDIA_SIGNATURES)


def _rotation(stream: dict) -> int:
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(side_data["rotation"]) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _run(args: list[str], path: Path, doing: str) -> subprocess.CompletedProcess:
    """Runs ffmpeg or ffprobe (an argument list, no shell) with a time limit."""
    try:
        return subprocess.run(args, capture_output=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CorruptMedia(f"{path.name}: truncated or corrupt: {doing} took longer than {PROBE_TIMEOUT_S} s; "
                           "check the file plays, and copy or export it again") from None


def _last_error(stderr: bytes, path: Path) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1].replace(str(path), path.name) if lines else "no message from ffprobe"


def _codec(stream: dict) -> str:
    """The codec's name, else the file's four-character code for it, for messages."""
    tag = stream.get("codec_tag_string", "")
    return stream.get("codec_name") or (f"unknown codec '{tag}'" if tag.isalnum() else "unknown codec")


def _decodes(path: Path, stream: dict, seek_s: float = 0.0) -> bool:
    """True when ffmpeg gets a picture (or half a second of sound) out of `stream`, starting at `seek_s`.

    Decoding errors inside the stretch are tolerated: decoders conceal a few damaged frames, and a film with some
    bit rot is still worth indexing. What counts is that something comes out.
    """
    source = ffmpeg.input(str(path), ss=seek_s, **MEDIA_INPUT) if seek_s else ffmpeg.input(str(path), **MEDIA_INPUT)
    selected = source[str(stream["index"])]
    if stream["codec_type"] == "video":
        expected = 16 * 16
        out = ffmpeg.output(selected.filter("scale", 16, 16), "pipe:", format="rawvideo", pix_fmt="gray",
                            **{"frames:v": 1})
    else:
        expected = 1
        out = ffmpeg.output(selected, "pipe:", format="s16le", ac=1, ar=8000, t=0.5)
    args = out.global_args("-nostdin", "-v", "error").compile()
    result = _run(args, path, "a test decode")
    return result.returncode == 0 and len(result.stdout) >= expected


def _playlist_kind(path: Path, demuxer: str) -> str:
    """What kind of list of other files `path` is ("" for none), by the demuxer ffprobe picked or its first bytes."""
    if demuxer in _PLAYLIST_DEMUXERS:
        return _PLAYLIST_DEMUXERS[demuxer]
    with open(path, "rb") as f:
        head = f.read(16).lstrip(b"\xef\xbb\xbf \t\r\n")
    return next((kind for signature, kind in _PLAYLIST_SIGNATURES.items() if head.startswith(signature)), "")


def _refused(path: Path, demuxer: str) -> IngestError:
    """The error for a file whose demuxer is not one of CONTAINERS: the file was never opened, so nothing it names
    can be in the message."""
    playlist = _playlist_kind(path, demuxer)
    if playlist:
        return PlaylistNotAllowed(f"{path.name}: {playlist}, a list of other media files, not a media file itself; "
                                  "cinedex reads single files only: export or remux the film to one media file "
                                  "(MP4 or Matroska) and add that")
    if demuxer in ("image2", "image2pipe") or demuxer.endswith("_pipe"):
        codec = demuxer.removesuffix("_pipe")
        kind = f"a still image ({codec})" if codec not in ("image2", "image2pipe") else "a still image"
        return NotMediaFile(f"{path.name}: {kind}, not a video; cinedex indexes video and audio files")
    return NotMediaFile(f"{path.name}: not a media file cinedex reads (ffmpeg reads it as '{demuxer}', not one of "
                        "the containers cinedex accepts); remux or convert it to MP4 or Matroska")


def _ffprobe(path: Path) -> dict:
    args = ["ffprobe", "-v", "error", *_FFPROBE_INPUT, "-show_format", "-show_streams", "-of", "json", str(path)]
    result = _run(args, path, "probing")
    if result.returncode == 0:
        return json.loads(result.stdout)
    refused = _REFUSED_DEMUXER.search(result.stderr)
    if refused or _playlist_kind(path, ""):
        raise _refused(path, refused.group(1).decode() if refused else "")
    if not _looks_like_media(path):
        raise NotMediaFile(f"{path.name}: not a media file (ffmpeg recognises no video or audio format in it); "
                           "cinedex indexes video and audio files")
    if b"moov atom not found" in result.stderr:
        raise CorruptMedia(f"{path.name}: truncated or corrupt: the MP4 has no index (moov box), so it is "
                           "unfinished: still being written, or its copy or recording stopped early; wait until "
                           "it is complete, or copy it again")
    detail = _last_error(result.stderr, path)
    raise CorruptMedia(f"{path.name}: truncated or corrupt container ({detail}); copy or export it again")


def _length(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min ({seconds:.0f} s)"


def check_duration(name: str, duration_s: float, max_duration_s: float) -> None:
    """Raises TooLong when the film is longer than the limit (CINEDEX_MAX_DURATION_S)."""
    if duration_s > max_duration_s:
        raise TooLong(f"{name}: too long: {_length(duration_s)}, more than the limit of {_length(max_duration_s)} "
                      "set by CINEDEX_MAX_DURATION_S; cut it into parts, or raise the limit")


def probe(path: Path, max_duration_s: float | None = None) -> MediaInfo:
    """Probe with ffprobe and a test decode at both ends; raises the specific IngestError.

    Only the demuxers of CONTAINERS are allowed; a film longer than `max_duration_s` is refused before any decode.
    """
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{path.name}: the file is empty (0 bytes); its copy failed or has not started, copy it "
                        "again")
    meta = _ffprobe(path)
    fmt = meta.get("format", {})
    streams = meta.get("streams", [])
    container = fmt.get("format_name", "")
    if container == "image2" or container.endswith("_pipe"):
        codec = next((s.get("codec_name") for s in streams), "") or container.removesuffix("_pipe")
        raise NotMediaFile(f"{path.name}: a still image ({codec}), not a video; cinedex indexes video and audio "
                           "files")
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    audio = audios[0] if audios else None
    if video is None and audio is None:
        if not streams and _looks_like_media(path):
            raise CorruptMedia(f"{path.name}: truncated or corrupt: the container's index is damaged, no stream "
                               "can be read from it; copy or export the file again")
        kinds = sorted({s.get("codec_type", "unknown") for s in streams})
        if kinds == ["subtitle"]:
            raise NotMediaFile(f"{path.name}: only subtitle streams, no video or audio stream to index; add the "
                               "film itself (subtitles inside a film's file are fine)")
        raise NotMediaFile(f"{path.name}: no video or audio stream" + (f" (only {', '.join(kinds)})" if kinds else ""))
    duration = float(fmt.get("duration") or (video or audio or {}).get("duration") or 0)
    if duration <= 0:
        raise CorruptMedia(f"{path.name}: the container declares no duration (truncated or corrupt); copy or "
                           "export it again")
    if max_duration_s is not None:
        check_duration(path.name, duration, max_duration_s)

    has_video = video is not None and _decodes(path, video)
    has_audio = audio is not None and _decodes(path, audio)
    if not has_video and not has_audio:
        found = " or ".join(f"{s['codec_type']} ({_codec(s)})" for s in (video, audio) if s)
        raise NoDecodableStream(f"{path.name}: no decodable video or audio: no decoder for its {found}; convert it "
                                "to a common codec (H.264, HEVC or ProRes; AAC, PCM) and add it again")
    # A container cut short still probes; decoding near its declared end finds out. "Near" spans two frames at
    # least: a film of one frame a minute has no frame in its last second.
    fps = _rate(video.get("avg_frame_rate")) if has_video else 0.0
    tail = max(duration - max(1.0, 2.0 / fps if fps else 0.0), 0.0)
    if tail > 0 and not _decodes(path, video if has_video else audio, seek_s=tail):
        raise CorruptMedia(f"{path.name}: truncated or corrupt: nothing decodes near the declared end "
                           f"({duration:.1f} s), so the file was probably cut short; copy it again")

    info = MediaInfo(duration_s=duration, size_bytes=size, container=container, has_video=has_video,
                     has_audio=has_audio, audio_tracks=len(audios))
    if has_video:
        avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
        info.width, info.height = int(video.get("width", 0)), int(video.get("height", 0))
        info.fps = avg or real
        # r_frame_rate is the finest timebase that represents all timestamps; a gap to the average means VFR.
        info.variable_frame_rate = bool(avg and real and abs(avg - real) / real > 0.01)
        info.rotation = _rotation(video)
        info.interlaced = video.get("field_order") in _INTERLACED_FIELD_ORDERS
        info.hdr = HDR_TRANSFERS.get(video.get("color_transfer", ""), "")
        info.video_codec = video.get("codec_name", "")
    if has_audio:
        info.audio_codec = audio.get("codec_name", "")
        info.audio_sample_rate = int(audio.get("sample_rate", 0))
    cover = any(s.get("disposition", {}).get("attached_pic") for s in streams)
    info.notes = _handling_notes(info, video, audio, cover)
    return info


def _handling_notes(info: MediaInfo, video: dict | None, audio: dict | None, cover: bool) -> list[str]:
    """What is unusual about the file and what the pipeline does about it, in the user's words."""
    notes = []
    if not info.has_video:
        notes.append(f"audio only{' (a cover picture, not video)' if cover else ''}: indexed as speech only")
    elif audio is None:
        notes.append("no audio stream: indexed from the picture only, no transcript")
    elif not info.has_audio:
        notes.append(f"the audio track ({_codec(audio)}) cannot be decoded: indexed "
                     "from the picture only; convert the sound to a common codec to get a transcript")
    if info.has_audio and info.audio_tracks > 1:
        notes.append(f"{info.audio_tracks} audio tracks: only the first is transcribed")
    if info.variable_frame_rate:
        notes.append("variable frame rate: each frame is timed by its own timestamp")
    if info.rotation:
        notes.append(f"rotated {info.rotation}° by its display matrix: frames are sampled upright")
    if info.interlaced:
        notes.append(f"interlaced ({_INTERLACED_FIELD_ORDERS[video['field_order']]}): frames are deinterlaced")
    if info.hdr:
        notes.append(f"HDR ({info.hdr}, {video.get('pix_fmt', '')}): frames are tone-mapped to SDR")
    return notes


def _not_a_file(kind: int) -> str:
    if stat.S_ISDIR(kind):
        return "a folder, not a file; add the video files themselves"
    what = ("a named pipe" if stat.S_ISFIFO(kind) else "a socket" if stat.S_ISSOCK(kind)
            else "a device" if stat.S_ISCHR(kind) or stat.S_ISBLK(kind) else "a special file")
    # Never opened: reading a pipe or device could block forever or never end.
    return f"not a regular file ({what}); only regular files are indexed"


def ingest(path: str | Path, settings: Settings) -> IngestedVideo:
    """Accept one video for indexing, or raise an IngestError that says exactly what is wrong with it."""
    given = Path(path)
    if not given.exists() and not given.is_symlink():
        raise MissingFile(f"{given}: no such file")
    real = confine(given, settings)
    if not real.exists():
        raise MissingFile(f"{given}: no such file (a link to {real}, which does not exist: the original was "
                          "moved or deleted)")
    kind = real.stat().st_mode
    if not stat.S_ISREG(kind):
        raise NotMediaFile(f"{given}: {_not_a_file(kind)}")
    if not os.access(real, os.R_OK):
        raise UnreadableFile(f"{given}: cannot be read (permission denied); make it readable by the user that runs "
                             "cinedex")
    started = time.perf_counter()
    info = probe(real, settings.max_duration_s)
    video_id = fingerprint(real)
    video = IngestedVideo(video_id=video_id, path=str(real), name=given.name, info=info)

    def write(folder: Path) -> None:
        (folder / "video.json").write_text(video.model_dump_json(indent=2))

    # Probing and fingerprinting come first (the fingerprint is the folder's name): they are the stage's work.
    cached_stage("ingest", video_id, settings.artifacts_dir, write, prior_work_s=time.perf_counter() - started)
    kind_text = ("video with audio" if info.has_video and info.has_audio else "video without audio"
                 if info.has_video else "audio only")
    log.info("ingest: %s -> video %s (%.1f s, %s)", given.name, video_id[:12], info.duration_s, kind_text)
    for note in info.notes:
        log.info("ingest: %s: %s", given.name, note)
    return video
