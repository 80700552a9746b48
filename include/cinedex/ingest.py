"""Ingest: confine the path, fingerprint the bytes, probe the streams, and reject bad input with a specific error."""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path

import ffmpeg
from pydantic import BaseModel

from cinedex.artifacts import stage_artifacts
from cinedex.settings import Settings

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class IngestError(Exception):
    """A video that cannot be indexed; the message says which file and why."""


class PathNotAllowed(IngestError):
    pass


class MissingFile(IngestError):
    pass


class EmptyFile(IngestError):
    pass


class NotMediaFile(IngestError):
    pass


class CorruptMedia(IngestError):
    """The container is truncated or damaged."""


class NoDecodableStream(IngestError):
    pass


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
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = 0


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


def _decodes(path: Path, stream: str, seek_s: float = 0.0) -> bool:
    """True when ffmpeg can decode a little of `stream` ("v" or "a") starting at `seek_s` without an error."""
    out = ffmpeg.input(str(path), ss=seek_s) if seek_s else ffmpeg.input(str(path))
    media = out.video if stream == "v" else out.audio
    limit = {"frames:v": 1} if stream == "v" else {"t": 0.5}
    try:
        _, err = (
            ffmpeg.output(media, "-", format="null", **limit)
            .global_args("-v", "error", "-xerror")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error:
        return False
    return True


def probe(path: Path) -> MediaInfo:
    """Probe with ffprobe and a test decode at both ends; raises the specific IngestError."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{path.name}: the file is empty (0 bytes)")
    try:
        meta = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        stderr = exc.stderr.decode(errors="replace")
        detail = stderr.strip().splitlines()[-1].replace(str(path), path.name) if stderr.strip() else "ffprobe failed"
        if _looks_like_media(path):
            raise CorruptMedia(f"{path.name}: truncated or corrupt container ({detail})") from None
        raise NotMediaFile(f"{path.name}: not a media file ({detail})") from None

    streams = meta.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise NotMediaFile(f"{path.name}: no video or audio stream")
    fmt = meta.get("format", {})
    duration = float(fmt.get("duration") or (video or audio or {}).get("duration") or 0)
    if duration <= 0:
        raise CorruptMedia(f"{path.name}: the container declares no duration (truncated or corrupt)")

    has_video = video is not None and _decodes(path, "v")
    has_audio = audio is not None and _decodes(path, "a")
    if not has_video and not has_audio:
        found = [f"{s['codec_type']} codec {s.get('codec_name') or 'unknown'}" for s in (video, audio) if s]
        raise NoDecodableStream(f"{path.name}: no decodable video or audio ({', '.join(found)})")
    # A container cut short still probes; decoding near its declared end finds out.
    tail = max(duration - 1.0, 0.0)
    if tail > 0 and not _decodes(path, "v" if has_video else "a", seek_s=tail):
        raise CorruptMedia(f"{path.name}: truncated or corrupt: nothing decodes near the declared end ({duration:.1f} s)")

    info = MediaInfo(duration_s=duration, size_bytes=size, container=fmt.get("format_name", ""),
                     has_video=has_video, has_audio=has_audio)
    if has_video:
        avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
        info.width, info.height = int(video.get("width", 0)), int(video.get("height", 0))
        info.fps = avg or real
        # r_frame_rate is the finest timebase that represents all timestamps; a gap to the average means VFR.
        info.variable_frame_rate = bool(avg and real and abs(avg - real) / real > 0.01)
        info.rotation = _rotation(video)
        info.video_codec = video.get("codec_name", "")
    if has_audio:
        info.audio_codec = audio.get("codec_name", "")
        info.audio_sample_rate = int(audio.get("sample_rate", 0))
    return info


def ingest(path: str | Path, settings: Settings) -> IngestedVideo:
    """Accept one video for indexing, or raise an IngestError that says exactly what is wrong with it."""
    given = Path(path)
    if not given.exists() and not given.is_symlink():
        raise MissingFile(f"{given}: no such file")
    real = confine(given, settings)
    if not real.exists():
        raise MissingFile(f"{given}: no such file (a link to {real}, which does not exist)")
    if not real.is_file():
        raise NotMediaFile(f"{given}: not a regular file")
    info = probe(real)
    video_id = fingerprint(real)
    video = IngestedVideo(video_id=video_id, path=str(real), name=given.name, info=info)

    artifacts = stage_artifacts(settings.artifacts_dir, video_id, "ingest")
    with artifacts.writing() as folder:
        (folder / "video.json").write_text(video.model_dump_json(indent=2))
    kind = "video with audio" if info.has_video and info.has_audio else "video without audio" if info.has_video else "audio only: indexed as speech only"
    log.info("ingest: %s -> video %s (%.1f s, %s%s)", given.name, video_id[:12], info.duration_s, kind,
             ", variable frame rate" if info.variable_frame_rate else "")
    return video
