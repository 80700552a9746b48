"""Frame sampling: shot boundaries and scene-aware adaptive frames, decoding as little of the film as possible.

Pass 1 decodes keyframes only (cheap: a few percent of the film). A stretch between two keyframes whose pictures
barely differ holds no cut and no fast motion, so its keyframe stands for it. Only the stretches that changed (a
cut or fast action inside) or that are longer than the floor rate allows are decoded in full in pass 2, where
cuts are placed on the exact frame and frames are kept where the picture moves. Both passes stream frames from
ffmpeg at the output size; no stretch of the film is held in memory.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import shutil
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
from pydantic import BaseModel

from cinedex.core.artifacts import cached_stage
from cinedex.pipeline.ingest import MEDIA_INPUT, IngestedVideo
from cinedex.core.mediatime import MediaTime
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

# showinfo's integer pts and its input time base: pts_time is printed to 6 significant digits only, which past
# 10,000 s (2 h 47 min) would give neighbouring frames the same time.
_PTS = re.compile(r"\bn:\s*\d+\s+pts:\s*(-?\d+)\s")
_TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")
_ANALYSIS_STEP = 4  # analyse every 4th pixel of the luma plane: plenty for cut and motion scores
_RECENT_SCORES = 12  # frames of context for the adaptive cut rule
_CUT_OVER_RECENT = 3.0  # a cut stands this far above the recent frame-to-frame change
_MOTION_CHANGE = 0.1  # change from the last kept frame that earns another frame in moving pictures


# Paths in these models are relative to the stage's artifact folder, which is renamed into place when complete.


class Shot(BaseModel):
    shot_id: int
    start_s: float
    end_s: float
    start_frame_time: str
    thumbnail: str


class SampledFrame(BaseModel):
    time_s: float
    shot_id: int
    path: str
    reason: str  # "cut", "floor" or "motion"


class FrameSampling(BaseModel):
    width: int
    height: int
    shots: list[Shot]
    frames: list[SampledFrame]
    decoded_fraction: float  # share of the film's duration decoded in full (pass 2)


@dataclass
class _Keyframe:
    time_s: float
    luma: np.ndarray
    jpeg: Path
    decode_stretch: bool = True  # decode the stretch from here to the next keyframe in full?


def output_size(width: int, height: int, rotation: int, target_width: int) -> tuple[int, int]:
    """Display size after rotation, scaled to `target_width` (never upscaled), both even for yuv420p."""
    if rotation in (90, 270):
        width, height = height, width
    out_w = min(target_width, width) // 2 * 2
    out_h = max(2, round(out_w * height / width / 2) * 2)
    return out_w, out_h


def _pictures(video: IngestedVideo, size: tuple[int, int], input_args: dict):
    """The video stream as upright, progressive, SDR pictures at `size`, ready for showinfo.

    ffmpeg turns rotated video upright by itself (autorotate) before these filters.
    """
    width, height = size
    stream = ffmpeg.input(video.path, **MEDIA_INPUT, **input_args).video  # only the containers ingest accepts
    if video.info.interlaced:
        # Before scaling, while the two fields are still whole rows; frames flagged progressive pass untouched.
        stream = stream.filter("bwdif", mode="send_frame", deint="interlaced")
    # Area averaging: the right filter for large downscales, and a quarter cheaper than the default bicubic.
    stream = stream.filter("scale", width, height, flags="area")
    if video.info.hdr:
        # HDR (PQ, HLG) shown as SDR without tone mapping looks grey and flat; mobius keeps SDR-range colours
        # nearly as they are and rolls highlights off. After scaling, so it runs on few pixels.
        stream = (stream.filter("zscale", t="linear", npl=100).filter("format", "gbrpf32le")
                  .filter("zscale", p="bt709").filter("tonemap", tonemap="mobius", desat=0)
                  .filter("zscale", t="bt709", m="bt709", r="tv").filter("format", "yuv420p"))
    return stream


def _decode(video: IngestedVideo, size: tuple[int, int], *, keyframes_only: bool = False,
            start_s: float | None = None, duration_s: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yields (presentation time in seconds, yuv420p frame) for each decoded frame, in display order.

    Times come from ffmpeg's showinfo filter, per frame, so variable frame rate input keeps its true timing.
    """
    path = video.path
    width, height = size
    input_args: dict = {"skip_frame": "nokey"} if keyframes_only else {}
    if start_s is not None:
        input_args["ss"] = f"{start_s:.6f}"
    if duration_s is not None:
        input_args["t"] = f"{duration_s:.6f}"
    stream = _pictures(video, size, input_args).filter("showinfo", checksum=0)
    process = (
        ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="yuv420p", fps_mode="passthrough")
        .global_args("-hide_banner", "-nostats", "-copyts", "-loglevel", "info")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    times: queue.Queue[float | None] = queue.Queue()
    stderr_tail: deque[str] = deque(maxlen=20)

    def read_times() -> None:
        time_base = Fraction(0)
        for raw in process.stderr:
            line = raw.decode(errors="replace")
            if match := _PTS.search(line):
                times.put(float(int(match.group(1)) * time_base))
            elif match := _TIME_BASE.search(line):
                time_base = Fraction(int(match.group(1)), int(match.group(2)))
            else:
                stderr_tail.append(line.strip())
        times.put(None)

    reader = threading.Thread(target=read_times, daemon=True)
    reader.start()
    frame_bytes = width * height * 3 // 2
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            time_s = times.get(timeout=60)
            if time_s is None:
                break
            yield time_s, np.frombuffer(data, np.uint8).reshape(height * 3 // 2, width)
    finally:
        process.stdout.close()
        code = process.wait()
        reader.join(timeout=5)
    if code != 0:
        raise RuntimeError(f"ffmpeg could not decode {Path(path).name}: {' | '.join(list(stderr_tail)[-3:])}")


def _luma(frame: np.ndarray, height: int) -> np.ndarray:
    return frame[:height:_ANALYSIS_STEP, ::_ANALYSIS_STEP].astype(np.int16)


def picture_change(a: np.ndarray, b: np.ndarray) -> float:
    """0..1: how different two pictures are, from pixel change and luma-histogram change (robust to motion)."""
    pixels = float(np.abs(a - b).mean()) / 255.0
    bins_a = np.bincount((a >> 3).ravel(), minlength=32)
    bins_b = np.bincount((b >> 3).ravel(), minlength=32)
    histogram = float(np.abs(bins_a - bins_b).sum()) / (2 * a.size)
    return (pixels + histogram) / 2


def _write_jpeg(frame: np.ndarray, path: Path) -> None:
    bgr = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
    encoded, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not encoded:
        raise ValueError(f"could not encode a frame as JPEG for {path}")
    path.write_bytes(jpeg.tobytes())  # not cv2.imwrite: its False on a full disk loses the reason (ENOSPC)


class _Sweep:
    """Walks the film in time order, placing cuts and choosing which frames to keep."""

    def __init__(self, settings: Settings, frames_dir: Path, height: int):
        self.threshold = settings.shot_threshold
        self.floor_gap = 1.0 / settings.sample_floor_fps
        self.cap_gap = 1.0 / settings.sample_max_fps
        self.frames_dir = frames_dir
        self.height = height
        self.cuts: list[float] = [0.0]
        self.kept: list[SampledFrame] = []
        self.recent: deque[float] = deque(maxlen=_RECENT_SCORES)
        self.previous: np.ndarray | None = None
        self.last_kept = -math.inf
        self.last_kept_luma: np.ndarray | None = None

    def frame(self, time_s: float, luma: np.ndarray, write_jpeg, *, consecutive: bool) -> None:
        """`consecutive` is False when the previous frame seen is a keyframe a whole stretch earlier."""
        reason = None
        if self.previous is not None:
            score = picture_change(self.previous, luma)
            if consecutive:
                typical = sum(self.recent) / len(self.recent) if self.recent else 0.0
                if score > self.threshold and score > _CUT_OVER_RECENT * typical:
                    self.cuts.append(time_s)
                    reason = "cut"
                self.recent.append(score)
            else:
                self.recent.clear()
        if reason is None:
            gap = time_s - self.last_kept
            if gap >= self.floor_gap - 1e-6:
                reason = "floor"
            elif gap >= self.cap_gap - 1e-6 and picture_change(self.last_kept_luma, luma) >= _MOTION_CHANGE:
                reason = "motion"
        if reason:
            path = self.frames_dir / f"{MediaTime(time_s).ms:010d}.jpg"
            write_jpeg(path)
            self.kept.append(SampledFrame(time_s=time_s, shot_id=len(self.cuts) - 1,
                                          path=f"{path.parent.name}/{path.name}", reason=reason))
            self.last_kept, self.last_kept_luma = time_s, luma
        self.previous = luma


def _needs_decoding(keyframe: _Keyframe, next_time_s: float, next_luma: np.ndarray | None,
                    settings: Settings) -> bool:
    """Decode the stretch from `keyframe` to the next one (None: the film's end) in full?"""
    if next_luma is None:
        return next_time_s - keyframe.time_s > 1e-3
    # Half the cut threshold: a cut or fast action between two keyframes moves their difference well past it.
    return (next_time_s - keyframe.time_s > 1.0 / settings.sample_floor_fps + 1e-6
            or picture_change(keyframe.luma, next_luma) > settings.shot_threshold / 2)


def _keyframes(video: IngestedVideo, size: tuple[int, int], key_dir: Path, settings: Settings) -> list[_Keyframe]:
    """Pass 1: every keyframe with its analysis picture and whether the stretch it starts must be decoded.

    A keyframe's picture is kept as JPEG only where the sweep can use it: when its stretch is not decoded, or when
    it ends a decoded one; a decoded stretch yields its first keyframe again.
    """
    keyframes: list[_Keyframe] = []
    pending: np.ndarray | None = None

    def settle(index: int, picture: np.ndarray) -> None:
        if not keyframes[index].decode_stretch or (index > 0 and keyframes[index - 1].decode_stretch):
            _write_jpeg(picture, keyframes[index].jpeg)

    for time_s, frame in _decode(video, size, keyframes_only=True):
        luma = _luma(frame, size[1])
        if keyframes:
            keyframes[-1].decode_stretch = _needs_decoding(keyframes[-1], time_s, luma, settings)
            settle(len(keyframes) - 1, pending)
        keyframes.append(_Keyframe(time_s, luma, key_dir / f"{len(keyframes)}.jpg"))
        pending = frame
    if not keyframes:
        raise RuntimeError(f"{video.name}: no keyframe could be decoded")
    keyframes[-1].decode_stretch = _needs_decoding(keyframes[-1], video.info.duration_s, None, settings)
    settle(len(keyframes) - 1, pending)
    return keyframes


def sample(video: IngestedVideo, settings: Settings, out_dir: Path) -> FrameSampling:
    """Detect shots and sample frames of `video` into `out_dir` (frames/, thumbnails/, sampling.json)."""
    info = video.info
    size = output_size(info.width, info.height, info.rotation, settings.frame_width)
    frames_dir, thumbs_dir, key_dir = out_dir / "frames", out_dir / "thumbnails", out_dir / "keyframes"
    for folder in (frames_dir, thumbs_dir, key_dir):
        folder.mkdir(parents=True, exist_ok=True)

    keyframes = _keyframes(video, size, key_dir, settings)
    log.info("frames: pass 1 decoded %d keyframes of %s (%.1f s)", len(keyframes), video.name, info.duration_s)

    sweep = _Sweep(settings, frames_dir, size[1])
    decoded_s, i = 0.0, 0
    while i < len(keyframes):
        if not keyframes[i].decode_stretch:
            keyframe = keyframes[i]
            sweep.frame(keyframe.time_s, keyframe.luma, lambda path, k=keyframe: k.jpeg.rename(path),
                        consecutive=False)
            i += 1
            continue
        j = i
        while j < len(keyframes) and keyframes[j].decode_stretch:
            j += 1
        start = keyframes[i].time_s
        end = keyframes[j].time_s if j < len(keyframes) else info.duration_s + 1.0
        for time_s, frame in _decode(video, size, start_s=start, duration_s=end - start):
            if time_s < start - 1e-6 or time_s >= end - 1e-6:
                continue
            sweep.frame(time_s, _luma(frame, size[1]), lambda path, f=frame: _write_jpeg(f, path), consecutive=True)
        decoded_s += min(end, info.duration_s) - start
        if j < len(keyframes):
            # The keyframe that ends a decoded stretch is the very next frame: a cut may sit right on it.
            keyframe = keyframes[j]
            sweep.frame(keyframe.time_s, keyframe.luma, lambda path, k=keyframe: k.jpeg.rename(path),
                        consecutive=True)
        i = j + 1
    shutil.rmtree(key_dir)

    ends = [*sweep.cuts[1:], info.duration_s]
    shots = []
    for shot_id, (start_s, end_s) in enumerate(zip(sweep.cuts, ends)):
        in_shot = [f for f in sweep.kept if f.shot_id == shot_id]
        middle = (start_s + end_s) / 2
        nearest = min(in_shot, key=lambda f: abs(f.time_s - middle))
        thumbnail = thumbs_dir / f"shot_{shot_id:05d}.jpg"
        shutil.copyfile(out_dir / nearest.path, thumbnail)
        shots.append(Shot(shot_id=shot_id, start_s=start_s, end_s=end_s,
                          start_frame_time=MediaTime(start_s).timecode(),
                          thumbnail=f"{thumbs_dir.name}/{thumbnail.name}"))
    fraction = decoded_s / info.duration_s if info.duration_s else 0.0
    log.info("frames: %d shots, %d frames kept, %.0f%% of the film decoded in full", len(shots), len(sweep.kept),
             100 * fraction)
    return FrameSampling(width=size[0], height=size[1], shots=shots, frames=sweep.kept, decoded_fraction=fraction)


def sample_frames(video: IngestedVideo, settings: Settings) -> Path:
    """The cached frame-sampling stage; returns its artifact folder (sampling.json, frames/, thumbnails/)."""
    def write(folder: Path) -> None:
        if video.info.has_video:
            sampling = sample(video, settings, folder)
        else:
            log.info("frames: %s has no video track; indexed as speech only", video.name)
            sampling = FrameSampling(width=0, height=0, shots=[], frames=[], decoded_fraction=0.0)
        (folder / "sampling.json").write_text(sampling.model_dump_json(indent=1))

    return cached_stage("frames", video.video_id, settings.artifacts_dir, write, width=settings.frame_width,
                        floor_fps=settings.sample_floor_fps, max_fps=settings.sample_max_fps,
                        threshold=settings.shot_threshold)


def load_sampling(folder: Path) -> FrameSampling:
    """Reads a sampling written by `sample_frames`, with its paths made absolute."""
    sampling = FrameSampling.model_validate_json((Path(folder) / "sampling.json").read_text())
    for item in [*sampling.shots, *sampling.frames]:
        if isinstance(item, Shot):
            item.thumbnail = str(Path(folder) / item.thumbnail)
        else:
            item.path = str(Path(folder) / item.path)
    return sampling
