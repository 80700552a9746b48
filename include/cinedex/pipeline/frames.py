"""Frame sampling: shot boundaries and scene-aware adaptive frames, decoding as little of the film as possible.

No ffmpeg process per stretch: the file is read in-process with PyAV (FFmpeg's libraries), opened once per pass,
with the same demuxer and protocol allow-lists as every ffmpeg call on a user's file (`ingest.MEDIA_INPUT`). Every
picture goes through the same filters: deinterlaced (bwdif) when the video is interlaced, turned upright by its
display matrix, scaled to the output size, tone-mapped to SDR when it is HDR, as yuv420p. Each frame keeps its own
presentation time, so variable frame rate input keeps its true timing. No stretch of the film is held in memory:
frames stream through, and only a fraction of a second of them waits for the cut decisions.

Pass 1 reads every packet and decodes keyframes only: the anchors. Where keyframes follow each other with nothing
between (all-intra video, where every frame is a keyframe), one in every `1 / sample_max_fps` seconds is decoded
and the others stay random access points for pass 2.

Between two anchors, the stretch is then (`_plan`, from the anchors' analysis pictures, see `shots`):
- decoded in full ("boundary") when the anchors differ the way a shot boundary makes them differ: their histograms
  moved (by a third of `shot_threshold` and 1.5 times as much as in the calmer neighbouring stretch: motion moves
  histograms little, a cut or a transition a lot), a black or white picture came or went (a fade), the picture
  changed twice the threshold and 1.5 times the calmer neighbour (a cut between pictures of the same colours), or
  by the threshold next to a stretch whose histograms moved (short shots, where every stretch holds a cut and none
  stands out); where anchors are under a second apart, also when the histograms moved over two stretches (a long
  transition). Cuts land on the exact frame there, and fades and dissolves get their span;
- decoded from its start until the floor rate is met ("floor") when it is longer than the floor gap
  (1 / `sample_floor_fps`) and holds no boundary: the frames within the floor gap before the next anchor are left
  undecoded;
- not decoded, when neither: its anchors stand for it. A stretch in motion whose histograms hold still is not
  decoded for its motion alone: motion frames come from the frames decoded anyway.
Pass 2 runs alongside, a few anchors behind pass 1, with a second reader of the same file (also opened once): it
seeks to each stretch to decode, or goes on decoding when one begins where the last ended. So only the anchors a
plan looks at are held, however long the film. The detector (`shots`) sees
every frame of pass 2 and the anchors between, in time order; frames are kept (floor, cap, motion) a fraction of a
second behind it, once no cut can land on them any more.

`FrameSampling.decoded_fraction` is the share of the film's duration decoded frame by frame in pass 2; the log
says how much of it each reason took, and how long each pass ran. What decides it: the keyframe spacing (each
stretch longer than the floor gap is decoded up to its last floor frame: x264's default puts keyframes up to 10 s
apart, so a static film encoded that way is decoded about 80%, a film with a keyframe every 2 s or less, or every
frame, only where boundaries are), the number of shot boundaries (each costs the stretch it lies in), and pictures
whose colours keep changing between keyframes. A longer floor gap (a lower `sample_floor_fps`) decodes less of a
film with sparse keyframes.

sampling.json (`FrameSampling`): `shots` tile the film, each `Shot` from `start_s` to the next one's start. A shot
says how it begins: `transition` is "cut" (a hard cut, or the film's start), "fade" (out of or into a blank picture,
a flat black or white one; a fade out, the blank and a fade or cut in are one boundary) or
"dissolve" (one picture blended into the next). For a fade or dissolve, `transition_start_s` and
`transition_end_s` are the span: the last frame of the old picture and the first frame of the new one unblended;
`start_s` is the frame in the middle of that span (the first shot starts at the film's start, even when it opens
with a fade in). For a cut, the span is the cut frame itself. `confirmed_by` names the learned model when it
settled an ambiguous boundary. Frames kept are `SampledFrame`s: "cut" (the first frame after a cut, kept whatever
the cap), "floor" or "motion"; a shot that begins with a fade or dissolve gets its frames by the floor and motion
rules.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import av.filter
import cv2
import numpy as np
from pydantic import BaseModel

from cinedex.core.artifacts import cached_stage
from cinedex.core.mediatime import MediaTime
from cinedex.core.progress import Progress
from cinedex.core.settings import Settings
from cinedex.pipeline import shots
from cinedex.pipeline.ingest import MEDIA_INPUT, IngestedVideo
from cinedex.pipeline.shots import picture_change

log = logging.getLogger(__name__)

_MOTION_CHANGE = 0.1  # change from the last kept frame that earns another frame in moving pictures
# Part of the stage's cache key: a sampling made by an older detector is made again, not reused.
_DETECTOR_VERSION = 2
_LUT_SIZE = 33  # points per axis of the HDR tone-mapping table
_STANDS_OUT = 1.5  # a stretch whose picture changed this much more than the calmer neighbouring one's did
_PLAN_REACH = 4  # anchors a plan looks ahead (and behind, less one)


# Paths in these models are relative to the stage's artifact folder, which is renamed into place when complete.


class Shot(BaseModel):
    shot_id: int
    start_s: float
    end_s: float
    start_frame_time: str
    thumbnail: str
    # How the shot begins (see the module's docstring); the defaults read samplings written before these fields.
    transition: Literal["cut", "fade", "dissolve"] = "cut"
    transition_start_s: float | None = None
    transition_end_s: float | None = None
    confirmed_by: str = ""


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
    decoded_fraction: float  # share of the film's duration decoded frame by frame (pass 2)


def output_size(width: int, height: int, rotation: int, target_width: int) -> tuple[int, int]:
    """Display size after rotation, scaled to `target_width` (never upscaled), both even for yuv420p."""
    if rotation in (90, 270):
        width, height = height, width
    out_w = min(target_width, width) // 2 * 2
    out_h = max(2, round(out_w * height / width / 2) * 2)
    return out_w, out_h


# --- the decoder ---------------------------------------------------------------------------------------------------


def _pq_to_light(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (PQ) signal to linear light, 1.0 = 100 nits (SDR white)."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    power = np.power(np.clip(signal, 0, 1), 1 / m2)
    return np.power(np.maximum(power - c1, 0) / (c2 - c3 * power), 1 / m1) * 100


def _hlg_to_light(signal: np.ndarray) -> np.ndarray:
    """ARIB STD-B67 (HLG) signal to display light on a 1000-nit display (system gamma 1.2), 1.0 = 100 nits."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    signal = np.clip(signal, 0, 1)
    scene = np.where(signal <= 0.5, signal ** 2 / 3, (np.exp((signal - c) / a) + b) / 12)
    luminance = scene @ np.array([0.2627, 0.6780, 0.0593])
    return 10 * np.power(np.maximum(luminance, 1e-9), 0.2)[:, None] * scene


def _tone_map_table(hdr: str, path: Path) -> None:
    """A 3D table (.cube) from HDR R'G'B' (BT.2020) to SDR R'G'B' (BT.709), as `zscale` and `tonemap=mobius`
    compute it: linear light, BT.2020 to BT.709 primaries, the Möbius curve on the brightest component (highlights
    roll off, colours below 0.3 of SDR white stay as they are, peak 1000 nits), BT.1886 gamma. The PyAV build of
    FFmpeg has no zscale; its lut3d applies the table."""
    grid = np.linspace(0.0, 1.0, _LUT_SIZE)
    blue, green, red = np.meshgrid(grid, grid, grid, indexing="ij")  # red varies fastest in a .cube file
    signal = np.stack([red.ravel(), green.ravel(), blue.ravel()], axis=1)
    light = _pq_to_light(signal) if hdr == "PQ" else _hlg_to_light(signal)
    to_709 = np.array([[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]])
    light = np.maximum(light @ to_709.T, 0)
    knee, peak = 0.3, 10.0
    low = -knee * knee * (peak - 1) / (knee * knee - 2 * knee + peak)
    high = (knee * knee - 2 * knee * peak + peak) / (peak - 1)
    brightest = np.maximum(light.max(axis=1), 1e-6)
    scale = (high * high + 2 * high * knee + knee * knee) / (high - low)
    mapped = np.where(brightest <= knee, brightest, scale * (brightest + low) / (brightest + high))
    sdr = np.power(np.clip(light * (mapped / brightest)[:, None], 0, 1), 1 / 2.4)
    lines = [f"LUT_3D_SIZE {_LUT_SIZE}"] + [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in sdr]
    path.write_text("\n".join(lines) + "\n")


class _Film:
    """The film's one decoder: its container, opened once, and the filters that make its pictures."""

    def __init__(self, video: IngestedVideo, size: tuple[int, int], table: Path | None):
        self.video = video
        self.size = size
        self.table = table  # the HDR tone-mapping table, for HDR video
        # The allow-lists as AVFormatContext options: only the demuxers ingest accepts, the file protocol only.
        self.container = av.open(video.path, container_options=dict(MEDIA_INPUT))
        streams = [s for s in self.container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            self.container.close()
            raise RuntimeError(f"{video.name}: no video stream to decode")
        self.stream = streams[0]
        self.stream.thread_type = "AUTO"
        self.time_base = self.stream.time_base
        self.damaged = 0  # packets the decoder refused
        self._resume: tuple[float, np.ndarray] | None = None  # the frame a stretch stopped at, and what follows
        self._rest: Iterator[tuple[float, np.ndarray]] | None = None

    def close(self) -> None:
        self.container.close()

    def _graph(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                  time_base=self.time_base)]
        info = self.video.info
        if info.interlaced:
            # Before anything else, while the two fields are still whole rows; frames flagged progressive pass.
            chain.append(graph.add("bwdif", "mode=send_frame:deint=interlaced"))
        # ffmpeg's autorotate: the display matrix turns the stored picture by `rotation` degrees counterclockwise.
        turns = {90: ["transpose=cclock"], 180: ["hflip", "vflip"], 270: ["transpose=clock"]}.get(info.rotation, [])
        for turn in turns:
            name, _, args = turn.partition("=")
            chain.append(graph.add(name, f"dir={args}" if args else None))
        width, height = self.size
        # Area averaging: the right filter for large downscales, and a quarter cheaper than the default bicubic.
        if self.table is None:
            chain.append(graph.add("scale", f"{width}:{height}:flags=area"))
        else:
            # HDR (PQ, HLG) shown as SDR without tone mapping looks grey and flat. After scaling, on few pixels.
            chain += [graph.add("scale", f"{width}:{height}:flags=area:in_color_matrix=bt2020"),
                      graph.add("format", "gbrpf32le"),
                      graph.add("lut3d", file=str(self.table), interp="tetrahedral"),
                      graph.add("scale", "out_color_matrix=bt709:out_range=tv")]
        chain += [graph.add("format", "yuv420p"), graph.add("buffersink")]
        graph.link_nodes(*chain).configure()
        return graph

    def _filtered(self, frames: Iterator[av.VideoFrame]) -> Iterator[tuple[float, np.ndarray]]:
        """(presentation time, yuv420p array) of each decoded frame, through the filters."""
        graph, shape = None, None

        def drain() -> Iterator[tuple[float, np.ndarray]]:
            while True:
                try:
                    out = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                # The filters may change the time base (bwdif halves it), so each frame's own is used.
                yield float(out.pts * (out.time_base or self.time_base)), out.to_ndarray()

        for frame in frames:
            if frame.pts is None:
                continue  # a frame without a timestamp cannot be placed in the film
            if (frame.width, frame.height, frame.format.name) != shape:
                if graph is not None:  # the stream changed size or format mid-way: flush, then start anew
                    graph.push(None)
                    yield from drain()
                graph, shape = self._graph(frame), (frame.width, frame.height, frame.format.name)
            graph.push(frame)
            yield from drain()
        if graph is not None:
            graph.push(None)
            yield from drain()

    def keyframes(self, anchor_gap_s: float) -> Iterator[tuple[float, np.ndarray]]:
        """Pass 1: the anchors' pictures. Afterwards `between` maps each anchor's time to the number of frames
        read after it before the next anchor (0: the next anchor is the very next frame), and `frames` counts the
        film's frames."""
        codec = self.stream.codec_context
        codec.skip_frame = "NONKEY"
        self.between: dict[float, int] = {}
        self.frames = 0

        def decoded() -> Iterator[av.VideoFrame]:
            last_anchor, since_key = -math.inf, 0
            for packet in self.container.demux(self.stream):
                if packet.size == 0:
                    yield from self._decode(None)
                    continue
                if packet.pts is None:
                    continue
                self.frames += 1
                time_s = float(packet.pts * self.time_base)
                # Keyframes in a row with nothing between: every frame is one; a few per second are enough.
                if not packet.is_keyframe or since_key == 0 and time_s - last_anchor < anchor_gap_s - 1e-6:
                    since_key += not packet.is_keyframe
                    if last_anchor in self.between:
                        self.between[last_anchor] += 1
                    continue
                since_key, last_anchor = 0, time_s
                self.between[time_s] = 0
                yield from self._decode(packet)

        try:
            yield from self._filtered(decoded())
        finally:
            codec.skip_frame = "DEFAULT"

    def stretch(self, start_s: float, end_s: float, stop_s: float) -> Iterator[tuple[float, np.ndarray]]:
        """Pass 2: every frame from the keyframe at `start_s` up to `end_s` (excluded), or to the first after
        `stop_s`. A stretch that begins where the last one ended goes on decoding, without seeking."""
        if self._resume is not None and abs(self._resume[0] - start_s) < 1e-6:
            frames = itertools.chain([self._resume], self._rest)
        else:
            frames = self._seek(start_s)
        self._resume = self._rest = None
        for time_s, frame in frames:
            if time_s < start_s - 1e-6:
                continue  # before the stretch: leading frames of an open GOP, or a seek that landed early
            if time_s >= end_s - 1e-6 or time_s > stop_s + 1e-6:
                self._resume, self._rest = (time_s, frame), frames
                return
            yield time_s, frame

    def _seek(self, start_s: float) -> Iterator[tuple[float, np.ndarray]]:
        for attempt in range(4):
            # Seeking by time lands on the keyframe at or before it, but some containers (MPEG-TS) only
            # approximately: when it lands after, seek again from further back.
            target = round((start_s - (2 ** attempt - 1)) / self.time_base)
            self.container.seek(max(target, 0) if attempt else target, stream=self.stream, backward=True)
            frames = self._filtered(self._decoded())
            first = next(frames, None)
            if first is None:
                return iter(())
            if first[0] <= start_s + 1e-6 or target <= 0:
                break
        return itertools.chain([first], frames)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            yield from self._decode(packet if packet.size else None)

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        """The frames a packet completes. A damaged packet is skipped, as the ffmpeg command skips it: the frames
        that depend on it come out concealed, the rest of the film as it is."""
        try:
            return self.stream.codec_context.decode(packet)
        except av.error.InvalidDataError:
            self.damaged += 1
            if self.damaged == 1:
                log.warning("frames: %s has damaged video packets; they are skipped", self.video.name)
            return []


# --- sampling ------------------------------------------------------------------------------------------------------


def _write_jpeg(frame: np.ndarray, path: Path) -> None:
    bgr = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
    encoded, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not encoded:
        raise ValueError(f"could not encode a frame as JPEG for {path}")
    path.write_bytes(jpeg.tobytes())  # not cv2.imwrite: its False on a full disk loses the reason (ENOSPC)


@dataclass
class _Pending:
    time_s: float
    picture: shots.Picture
    keep: Callable[[Path], None]  # writes the frame's JPEG there


class _Sweep:
    """Walks the film in time order: feeds the shot detector, and chooses which frames to keep, a fraction of a
    second behind it, once no cut can land on them any more."""

    def __init__(self, settings: Settings, frames_dir: Path, learned: shots.LearnedShots | None):
        self.detector = shots.ShotDetector(settings.shot_threshold, learned=learned)
        self.thumbnails = learned is not None
        self.floor_gap = 1.0 / settings.sample_floor_fps
        self.cap_gap = 1.0 / settings.sample_max_fps
        self.frames_dir = frames_dir
        self.kept: list[SampledFrame] = []
        self.pending: deque[_Pending] = deque()
        self.last_kept = -math.inf
        self.last_kept_picture: shots.Picture | None = None

    def frame(self, time_s: float, picture: shots.Picture, keep: Callable[[Path], None], *,
              consecutive: bool) -> None:
        """`consecutive` is False when the previous frame seen is an anchor a whole stretch earlier."""
        self.detector.push(time_s, picture, consecutive)
        self.pending.append(_Pending(time_s, picture, keep))
        self._release(self.detector.settled_s)

    def finish(self) -> None:
        self.detector.finish()
        self._release(math.inf)

    def _release(self, until_s: float) -> None:
        # The frame after each released one must be known (the floor rule looks one frame ahead), but at the end.
        last = 0 if until_s == math.inf else 1
        while len(self.pending) > last and self.pending[0].time_s <= until_s:
            current = self.pending.popleft()
            following = self.pending[0].time_s if self.pending else math.inf
            self._choose(current, following)

    def _choose(self, current: _Pending, following_s: float) -> None:
        openings = self.detector.openings
        reason = None
        if openings and openings[0] <= current.time_s + 1e-6:
            while openings and openings[0] <= current.time_s + 1e-6:
                openings.popleft()
            reason = "cut"
        else:
            gap = current.time_s - self.last_kept
            # Kept at the floor gap, or before it when the next frame seen would come later than the floor allows.
            if gap >= self.cap_gap - 1e-6 and (gap >= self.floor_gap - 1e-6
                                                 or following_s - self.last_kept > self.floor_gap + 1e-6):
                reason = "floor"
            elif gap >= self.cap_gap - 1e-6 and picture_change(self.last_kept_picture, current.picture) >= \
                    _MOTION_CHANGE:
                reason = "motion"
        if reason:
            path = self.frames_dir / f"{MediaTime(current.time_s).ms:010d}.jpg"
            current.keep(path)
            self.kept.append(SampledFrame(time_s=current.time_s, shot_id=0, path=f"{path.parent.name}/{path.name}",
                                          reason=reason))
            self.last_kept, self.last_kept_picture = current.time_s, current.picture


@dataclass
class _Anchor:
    time_s: float
    picture: shots.Picture | None  # let go once no plan and no sweep needs it any more
    jpeg: Path
    plan: str = "skip"  # the stretch from here to the next anchor: "skip", "boundary" or "floor"
    frames_between: int = 0  # frames of the film strictly between this anchor and the next
    end_s: float = 0.0  # the next anchor's time, or the film's end
    last: bool = False


def _changed(anchors: list[_Anchor], i: int, threshold: float) -> tuple[bool, bool, bool]:
    """(histograms, jump, large): how anchors[i] and the next one differ.

    histograms: their histograms moved more than in the calmer neighbouring stretch (motion moves them little,
    a cut or a transition a lot), a blank picture came or went (a fade), or, where anchors are under a second
    apart, the histograms moved over two stretches in a row (a transition longer than a stretch).
    jump: the picture changed twice as much as at a cut, and more than in the calmer neighbouring stretch.
    large: the picture changed as much as at a cut, which motion can do too."""
    anchor, following = anchors[i], anchors[i + 1]
    score, distribution = shots.changes(anchor.picture, following.picture)
    # The neighbouring stretches at most two away that last at least half as long (a stretch of a few frames
    # changes little whatever the picture does).
    duration = following.time_s - anchor.time_s
    neighbours = [shots.changes(anchors[j].picture, anchors[j + 1].picture)
                  for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j and j + 1 < len(anchors)
                  and anchors[j + 1].time_s - anchors[j].time_s >= duration / 2]
    calm_score = min((n[0] for n in neighbours), default=math.inf)
    calm_distribution = min((n[1] for n in neighbours), default=0.0)
    # Standing out from the calmer neighbour: colours that keep changing (animated gradients, a slow pan over
    # varied ground) change every stretch alike.
    histograms = (distribution > threshold / 3 and distribution > _STANDS_OUT * calm_distribution
                  or anchor.picture.blank != following.picture.blank)
    if not histograms and following.time_s - anchor.time_s < 1.0 and distribution > threshold / 6:
        two_steps = [shots.distribution_change(anchors[a].picture, anchors[b].picture)
                     for a, b in ((i - 1, i + 1), (i, i + 2)) if 0 <= a and b < len(anchors)]
        histograms = max(two_steps, default=0.0) > max(threshold / 2, 2 * _STANDS_OUT * calm_distribution)
    large = score > threshold
    # A jump needs twice the threshold: pictures that keep changing (animated gradients) change a stretch's
    # worth of cut-sized change, but a cut whose histograms barely move (same colours) changes its structure.
    return histograms, score > 2 * threshold and score > _STANDS_OUT * calm_score, large


def _plan(anchors: list[_Anchor], i: int, end_s: float, settings: Settings, threshold: float) -> str:
    """Decode the stretch from anchors[i] to the next one (`end_s`: its time, or the film's end) in full, up to
    its last floor frame, or not at all? See the module's docstring. `threshold`: the smallest jump that may be
    a cut (half the setting where a learned model looks at the weak ones)."""
    anchor = anchors[i]
    if i + 1 >= len(anchors):
        return "boundary" if end_s - anchor.time_s > 1e-3 else "skip"
    if anchor.frames_between == 0:
        return "skip"  # nothing between: the two anchors are consecutive frames
    histograms, jump, large = _changed(anchors, i, threshold)
    # A change as large as a cut, next to a stretch whose histograms say it holds a boundary: short shots,
    # where every stretch holds one and none stands out from its neighbours.
    near = large and any(_changed(anchors, j, threshold)[0] for j in (i - 1, i + 1) if 0 <= j and j + 1 < len(anchors))
    if histograms or jump or near:
        return "boundary"
    if end_s - anchor.time_s > 1.0 / settings.sample_floor_fps + 1e-6:
        return "floor"
    return "skip"


def _pass_one(film: _Film, key_dir: Path, settings: Settings, threshold: float) -> Iterator[_Anchor]:
    """Pass 1: every anchor with its plan, in time order, each as soon as its plan is settled (a plan looks a few
    anchors ahead). Only the anchors near the one settled now are held.

    An anchor's JPEG is written only where the sweep may keep it from pass 1: when its stretch is not decoded (a
    decoded stretch yields its first anchor again in pass 2)."""
    anchors: list[_Anchor] = []
    frames: deque[np.ndarray] = deque()  # the full pictures of the anchors whose plan is not settled yet
    height = film.size[1]

    def settle(i: int) -> _Anchor:
        anchor = anchors[i]
        # Packets come in decoding order, which reorders within a few frames: by now all of this stretch's
        # frames have been counted.
        for j in range(i, min(i + 2, len(anchors))):
            anchors[j].frames_between = film.between.get(anchors[j].time_s, 1)
        anchor.last = i + 1 >= len(anchors)
        anchor.end_s = film.video.info.duration_s if anchor.last else anchors[i + 1].time_s
        anchor.plan = _plan(anchors, i, anchor.end_s, settings, threshold)
        frame = frames.popleft()
        if anchor.plan == "skip":
            _write_jpeg(frame, anchor.jpeg)
        if i >= _PLAN_REACH + 2:
            anchors[i - _PLAN_REACH - 2].picture = None  # behind every plan still to make, and already swept
        return anchor

    settled = 0  # anchors[:settled] have their plan and JPEG
    for time_s, frame in film.keyframes(1.0 / settings.sample_max_fps):
        if anchors and time_s <= anchors[-1].time_s:
            continue  # a keyframe repeated at the same time (a broken timestamp): the first stands
        anchors.append(_Anchor(time_s, shots.analyse(frame, height), key_dir / f"{len(anchors)}.jpg"))
        frames.append(frame)
        # A plan looks _PLAN_REACH anchors ahead (the next stretch's own neighbours, changes over two stretches).
        while settled + _PLAN_REACH < len(anchors):
            yield settle(settled)
            settled += 1
    if not anchors:
        raise RuntimeError(f"{film.video.name}: no keyframe could be decoded")
    for i in range(settled, len(anchors)):
        yield settle(i)


def _sweep_film(film: _Film, anchors: Iterator[_Anchor], sweep: _Sweep, settings: Settings,
                duration_s: float) -> dict[str, float]:
    """Pass 2, in time order, as pass 1 settles the anchors: the stretches to decode, and the anchors of the
    others. Returns the seconds decoded for each reason."""
    decoded = {"boundary": 0.0, "floor": 0.0}
    height = film.size[1]
    floor_gap = 1.0 / settings.sample_floor_fps
    consecutive = False
    for anchor in anchors:
        if anchor.plan == "skip":
            sweep.frame(anchor.time_s, anchor.picture, lambda path, a=anchor: a.jpeg.rename(path),
                        consecutive=consecutive)
            consecutive = anchor.frames_between == 0
            continue
        end = math.inf if anchor.last else anchor.end_s
        # A floor stretch stops once the floor is met up to the next anchor.
        stop_at = end - floor_gap if anchor.plan == "floor" else end
        reached = None
        for time_s, frame in film.stretch(anchor.time_s, end, stop_at):
            sweep.frame(time_s, shots.analyse(frame, height, thumbnail=sweep.thumbnails),
                        lambda path, f=frame: _write_jpeg(f, path), consecutive=consecutive)
            consecutive, reached = True, time_s
        # The anchor after a stretch decoded to its end is the very next frame: a cut may sit right on it.
        consecutive = stop_at == end and reached is not None
        finish = anchor.end_s if consecutive else (reached if reached is not None else anchor.time_s)
        decoded[anchor.plan] += max(0.0, min(anchor.end_s, duration_s, finish) - anchor.time_s)
    return decoded


def sample(video: IngestedVideo, settings: Settings, out_dir: Path) -> FrameSampling:
    """Detect shots and sample frames of `video` into `out_dir` (frames/, thumbnails/, sampling.json)."""
    info = video.info
    size = output_size(info.width, info.height, info.rotation, settings.frame_width)
    frames_dir, thumbs_dir, key_dir = out_dir / "frames", out_dir / "thumbnails", out_dir / "keyframes"
    for folder in (frames_dir, thumbs_dir, key_dir):
        folder.mkdir(parents=True, exist_ok=True)
    learned = shots.learned_shots(settings.shot_model)

    with tempfile.TemporaryDirectory(prefix="cinedex-frames-") as scratch:
        table = None
        if info.hdr:
            table = Path(scratch) / "tone-map.cube"
            _tone_map_table(info.hdr, table)
        # Two readers of the one file, one per pass, each opened once: pass 1 reads on ahead as pass 2 needs it.
        keyframes, stretches = _Film(video, size, table), _Film(video, size, table)
        try:
            plans = {"boundary": 0, "floor": 0, "skip": 0}
            pass_one_s = 0.0
            progress = Progress(settings.home, info.duration_s, "s of film swept", log, name=f"frames: {video.name}")

            def anchors() -> Iterator[_Anchor]:
                nonlocal pass_one_s
                # A learned model may call a jump of half the threshold a cut: such stretches are decoded too.
                planned = _pass_one(keyframes, key_dir, settings,
                                    settings.shot_threshold / 2 if learned else settings.shot_threshold)
                while True:
                    started = time.perf_counter()
                    anchor = next(planned, None)
                    pass_one_s += time.perf_counter() - started
                    if anchor is None:
                        return
                    plans[anchor.plan] += 1
                    progress.update(anchor.time_s)  # pass 2 has swept the film up to this anchor
                    yield anchor

            started = time.perf_counter()
            sweep = _Sweep(settings, frames_dir, learned)
            decoded = _sweep_film(stretches, anchors(), sweep, settings, info.duration_s)
            sweep.finish()
            progress.finish()
            pass_two_s = time.perf_counter() - started - pass_one_s
            log.info("frames: pass 1 decoded %d anchors of %s (%d frames, %.1f s) in %.1f s; stretches to decode: %d "
                     "for boundaries, %d for the floor rate, %d not", sum(plans.values()), video.name,
                     keyframes.frames, info.duration_s, pass_one_s, plans["boundary"], plans["floor"], plans["skip"])
        finally:
            keyframes.close()
            stretches.close()
    shutil.rmtree(key_dir)

    detector = sweep.detector
    boundaries = detector.boundaries
    starts = [0.0, *[b.start_s for b in boundaries]]
    ends = [*starts[1:], info.duration_s]
    for frame in sweep.kept:
        frame.shot_id = bisect.bisect_right(starts, frame.time_s + 1e-9) - 1
    shot_list = []
    for shot_id, (start_s, end_s) in enumerate(zip(starts, ends)):
        middle = (start_s + end_s) / 2
        # A shot shorter than the floor gap between two transitions may have no frame of its own: the nearest.
        in_shot = [f for f in sweep.kept if f.shot_id == shot_id] or sweep.kept
        nearest = min(in_shot, key=lambda f: abs(f.time_s - middle))
        thumbnail = thumbs_dir / f"shot_{shot_id:05d}.jpg"
        shutil.copyfile(out_dir / nearest.path, thumbnail)
        opening = (detector.opening if shot_id == 0 else boundaries[shot_id - 1])
        shot_list.append(Shot(shot_id=shot_id, start_s=start_s, end_s=end_s,
                              start_frame_time=MediaTime(start_s).timecode(),
                              thumbnail=f"{thumbs_dir.name}/{thumbnail.name}",
                              transition=opening.kind if opening else "cut",
                              transition_start_s=opening.span_start_s if opening else start_s,
                              transition_end_s=opening.span_end_s if opening else start_s,
                              confirmed_by=opening.confirmed_by if opening else ""))
    duration = info.duration_s or 1.0
    fraction = min(1.0, sum(decoded.values()) / duration) if info.duration_s else 0.0
    kinds = {kind: sum(1 for s in shot_list[1:] if s.transition == kind) for kind in ("cut", "fade", "dissolve")}
    log.info("frames: pass 2 in %.1f s: %d shots (%d cuts, %d fades, %d dissolves%s), %d frames kept; %.1f%% of the "
             "film decoded in full (%.1f%% for shot boundaries, %.1f%% for the floor rate)", pass_two_s, len(shot_list),
             kinds["cut"],
             kinds["fade"], kinds["dissolve"],
             f", {detector.confirmations} asked of TransNetV2" if learned else "", len(sweep.kept), 100 * fraction,
             100 * decoded["boundary"] / duration, 100 * decoded["floor"] / duration)
    return FrameSampling(width=size[0], height=size[1], shots=shot_list, frames=sweep.kept, decoded_fraction=fraction)


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
                        threshold=settings.shot_threshold, shot_model=settings.shot_model,
                        detector=_DETECTOR_VERSION)


def load_sampling(folder: Path) -> FrameSampling:
    """Reads a sampling written by `sample_frames`, with its paths made absolute."""
    sampling = FrameSampling.model_validate_json((Path(folder) / "sampling.json").read_text())
    for item in [*sampling.shots, *sampling.frames]:
        if isinstance(item, Shot):
            item.thumbnail = str(Path(folder) / item.thumbnail)
        else:
            item.path = str(Path(folder) / item.path)
    return sampling
