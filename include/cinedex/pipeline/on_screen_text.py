"""On-screen text: captions, signs and title cards read from the sampled frames, one event per text and its span.

Each sampled frame (the frame stage's ~448-px JPEGs, in time order) is, cheapest first:
- inherited: its picture did not change since the last frame looked at (no cell of a coarse grid moved), so the
  same texts are still there;
- passed over: no strong-edged, line-shaped blob in it (`_could_hold_text`, a few milliseconds): nothing to read;
- left unknown: the detection budget is spent (a token bucket, `_DETECTIONS_PER_MINUTE` on average over the film,
  bursts of `_DETECTION_BURST`), so text that is there in a busy stretch is still found at its next frame looked at;
- detected: PP-OCRv4's detector (RapidOCR, ONNX) on the sampled frame; only where it finds lines does recognition
  run, on crops of those lines: from the sampled frame when its text is tall enough to read (`_LEGIBLE_PX`), else
  from the same moment of the source, decoded at full resolution (at most `_SOURCE_MAX_WIDTH` wide).
Lines next to each other in one script (Han or Latin) make one block: a two-line caption is one text, a Chinese
line over an English one (bilingual subtitles) two, each with its language. A block seen again at about the same
place with about the same words continues its text; the text ends at the first frame looked at without it. Its
start and end are then refined between the frames that bracket them by bisection on the source (a crop read at
the middle time, `_SPAN_PRECISION_S`), so a caption's span is right to a fraction of a second whatever the
sampling rate.

Where a text sits: "caption band" (bottom quarter, centred), "title card" (on a flat picture), else "sign" (text
in the scene). Captions whose words are those of a line of dialogue at the same time are burned-in subtitles:
`match_subtitles` finds them, `attach_subtitles` puts their text on the dialogue event instead of indexing it twice.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import json
import logging
import math
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from cinedex.core.artifacts import cached_stage
from cinedex.core.boxes import iou
from cinedex.core.model import Event, read_events, write_events
from cinedex.core.progress import Progress
from cinedex.core.settings import Settings
from cinedex.pipeline.frames import FrameSampling, load_sampling, output_size
from cinedex.pipeline.ingest import MEDIA_INPUT, IngestedVideo

log = logging.getLogger(__name__)

TEXT_FILE = "on_screen_text.jsonl"
COUNTS_FILE = "counts.json"
_READER_VERSION = 2  # part of the cache key: texts read by an older reader are read again

# The budget. The frame sampler costs about 1 s of 2 cores per film-minute (benchmarks/README.md); OCR gets about
# half of that, faces the other half. One detection of a 448-px frame takes 60-100 ms there: 8 a minute, ~0.7 s.
_DETECTIONS_PER_MINUTE = 8.0
_DETECTION_BURST = 24  # a stretch full of text is read densely until this many are spent
_THREADS = 2  # ONNX Runtime threads: the 2-core budget

_LEGIBLE_PX = 28  # lines shorter than this in the sampled frame are read from the source (PP-OCR reads at 48 px)
_SOURCE_MAX_WIDTH = 1920  # a 4K source is read at this width: captions are legible long before
_MIN_SCORE = 0.6  # recognition confidence below which a reading is dropped
_SAME_TEXT = 0.6  # similarity of two readings of one text (OCR noise, a frame mid-fade)
# Bisection stops once a span's edge is bracketed this closely: the middle is then within 0.25 s of it. A source
# frame costs 0.1-0.4 s (ffmpeg decodes from the keyframe before it), so a 2-s gap takes two.
_SPAN_PRECISION_S = 0.5
# A text seen again this soon after it went, in the same place, never left: a caption over a cut is missed on the
# cut's frame (a frame of neither shot) and would otherwise be cut in two.
_REJOIN_GAP_S = 1.0
_SAME_CROP = 10.0  # mean grey-level change of a line's crop below which its earlier reading is kept
_UNCHANGED = 3.0  # the largest mean grey-level change of a grid cell between two frames that show the same picture
_SUBTITLE_SLACK_S = 1.0  # a caption and its line of dialogue may be timed this far apart
_SUBTITLE_OVERLAP = 0.7  # share of the shorter text's characters found, in order, in the other


@dataclass
class TextCounts:
    """What the reader did with the film's frames: the benchmark's "frames examined"."""

    frames: int = 0
    inherited: int = 0
    passed_over: int = 0
    over_budget: int = 0
    detected: int = 0  # frames the text detector ran on
    recognised: int = 0  # of those, frames with lines that had to be read (not kept from the frame before)
    from_source: int = 0  # full-resolution frames decoded from the source (recognition and bisection)
    texts: int = 0


@dataclass
class _Line:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the picture
    text: str
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class _Block:
    box: tuple[float, float, float, float]
    text: str
    score: float
    flat: bool  # on a flat picture (a title card)


@dataclass
class _Track:
    """One text over the frames it was seen in."""

    box: tuple[float, float, float, float]
    absent_before_s: float  # the last time it was known not to be there (the film's start when never)
    first_s: float
    last_s: float
    absent_after_s: float = math.inf
    readings: Counter = field(default_factory=Counter)  # text -> summed confidence
    flat_votes: int = 0
    seen: int = 0

    @property
    def text(self) -> str:
        return self.readings.most_common(1)[0][0]


# --- text -------------------------------------------------------------------------------------------------------


def _normal(text: str) -> str:
    """For comparing readings: NFKC, lower case, letters and digits only (CJK has no spaces, OCR adds some)."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).lower() if c.isalnum())


def similarity(a: str, b: str) -> float:
    a, b = _normal(a), _normal(b)
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _is_han(c: str) -> bool:
    return "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff"


def script(text: str) -> str:
    """"han" when Chinese characters make up the text (one counts for a word's worth of Latin letters), else
    "latin"."""
    han = sum(map(_is_han, text))
    latin = sum(c.isascii() and c.isalpha() for c in text)
    return "han" if han and han * 3 >= latin else "latin"


def language(text: str) -> str:
    """ISO 639-1 code of the text: Chinese or English (the two the bundled PP-OCRv4 model reads)."""
    return "zh" if script(text) == "han" else "en"


# --- looking at frames --------------------------------------------------------------------------------------------


def _grid(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


def _could_hold_text(gray: np.ndarray) -> bool:
    """Strong edges that close into a line-shaped blob: how rendered text looks to a morphological filter. Cheap
    (a few ms), so the detector runs only on frames that pass."""
    edges = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 80
    closed = cv2.morphologyEx(edges.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 9), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    height = gray.shape[0]
    for x, y, w, h, area in stats[1:count]:
        if 6 <= h <= height * 0.3 and w >= 2 * h and area >= 0.3 * w * h:
            return True
    return False


def _flat_around(gray: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> bool:
    """The picture outside the text is flat: a title card, not text in a scene."""
    mask = np.ones(gray.shape, bool)
    h, w = gray.shape
    for x0, y0, x1, y1 in boxes:
        mask[int(y0 * h):int(math.ceil(y1 * h)), int(x0 * w):int(math.ceil(x1 * w))] = False
    rest = gray[mask]
    return rest.size > 0 and float(rest.std()) < 12.0


def _blocks(lines: list[_Line], flat: bool) -> list[_Block]:
    """Lines one under the other, of about one height and one script, become one block."""
    blocks: list[list[_Line]] = []
    for line in sorted(lines, key=lambda l: l.box[1]):
        for block in blocks:
            last = block[-1]
            overlap = min(last.box[2], line.box[2]) - max(last.box[0], line.box[0])
            if (overlap > 0 and line.box[1] - last.box[3] < 0.8 * last.height
                    and 1 / 1.6 < line.height / last.height < 1.6 and script(line.text) == script(last.text)):
                block.append(line)
                break
        else:
            blocks.append([line])
    found = []
    for block in blocks:
        text = " ".join(l.text for l in block) if script(block[0].text) == "latin" else "".join(l.text for l in block)
        box = (min(l.box[0] for l in block), min(l.box[1] for l in block), max(l.box[2] for l in block),
               max(l.box[3] for l in block))
        found.append(_Block(box, text, min(l.score for l in block), flat))
    return found


def position(box: tuple[float, float, float, float], flat: bool) -> str:
    x0, y0, x1, y1 = box
    if flat:
        return "title card"
    if y0 >= 0.72 and abs((x0 + x1) / 2 - 0.5) < 0.15:
        return "caption band"
    return "sign"


def _where(box: tuple[float, float, float, float]) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    return f"{row} {column}"


def on_gpu() -> bool:
    """ONNX Runtime can run on a CUDA GPU here (onnxruntime-gpu on a GPU worker)."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@functools.cache
def _engine():
    from rapidocr_onnxruntime import RapidOCR  # imported when first read: ONNX sessions take a second to load

    cuda = on_gpu()
    # Detection at the sampled frame's own size ("max": never upscaled to the default 736-px short side).
    return RapidOCR(det_limit_side_len=960, det_limit_type="max", intra_op_num_threads=_THREADS,
                    inter_op_num_threads=1, det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)


class _Source:
    """Full-resolution frames of the source, one at a time, through ffmpeg with the allow-listed input options."""

    def __init__(self, video: IngestedVideo, counts: TextCounts):
        info = video.info
        self.path = video.path
        self.size = output_size(info.width, info.height, info.rotation, _SOURCE_MAX_WIDTH)
        self.counts = counts

    def frame(self, time_s: float) -> np.ndarray | None:
        width, height = self.size
        try:
            raw, _ = (ffmpeg.input(self.path, ss=f"{max(time_s, 0.0):.3f}", **MEDIA_INPUT).video
                      .filter("scale", width, height)
                      .output("pipe:", vframes=1, format="rawvideo", pix_fmt="bgr24")
                      .global_args("-hide_banner", "-loglevel", "error", "-nostdin")
                      .run(capture_stdout=True, capture_stderr=True))
        except ffmpeg.Error as exc:
            log.warning("on-screen text: no source frame at %.2f s of %s: %s", time_s, self.path,
                        exc.stderr.decode(errors="replace").strip()[-200:])
            return None
        self.counts.from_source += 1
        if len(raw) < width * height * 3:
            return None  # past the last frame
        return np.frombuffer(raw, np.uint8, width * height * 3).reshape(height, width, 3)


def _crop(picture: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    # No margin: the detector's boxes are already grown around the glyphs, and more background misreads letters.
    h, w = picture.shape[:2]
    x0, y0, x1, y1 = box
    return picture[max(0, int(y0 * h)):max(int(y0 * h) + 1, min(h, math.ceil(y1 * h))),
                   max(0, int(x0 * w)):max(int(x0 * w) + 1, min(w, math.ceil(x1 * w)))]


def _signature(gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return cv2.resize(_crop(gray, box), (64, 12), interpolation=cv2.INTER_AREA).astype(np.float32)


def _recognise(crops: list[np.ndarray]) -> list[tuple[str, float]]:
    if not crops:
        return []
    readings, _ = _engine().text_rec(crops)
    return [(text.strip(), float(score)) for text, score, *_ in readings]


@dataclass
class _Read:
    """A line read earlier: kept for the next frames while the same pixels stay at the same place."""

    box: tuple[float, float, float, float]
    signature: np.ndarray
    text: str
    score: float


def _read_frame(bgr: np.ndarray, gray: np.ndarray, time_s: float, source: _Source, earlier: list[_Read],
                counts: TextCounts) -> tuple[list[_Line], list[_Read]]:
    """Detection on the sampled frame; recognition of the lines not read already (same place, same pixels in the
    frame before), from the source where the text is small. Returns the lines and what was read, for the next."""
    boxes, _ = _engine().text_det(bgr)
    counts.detected += 1
    if boxes is None or len(boxes) == 0:
        return [], []
    h, w = bgr.shape[:2]
    rects = [(float(b[:, 0].min()) / w, float(b[:, 1].min()) / h, float(b[:, 0].max()) / w, float(b[:, 1].max()) / h)
             for b in np.asarray(boxes)]
    reads: list[_Read | None] = []
    for rect in rects:
        signature = _signature(gray, rect)
        same = [r for r in earlier if iou(r.box, rect) > 0.7 and float(np.abs(r.signature - signature).mean())
                < _SAME_CROP]
        reads.append(_Read(rect, signature, same[0].text, same[0].score) if same else None)
    unread = [i for i, read in enumerate(reads) if read is None]
    if unread:
        picture = bgr
        if min(rects[i][3] - rects[i][1] for i in unread) * h < _LEGIBLE_PX and source.size[0] > w:
            picture = source.frame(time_s)
            if picture is None:
                picture = bgr
        counts.recognised += 1
        for i, (text, score) in zip(unread, _recognise([_crop(picture, rects[i]) for i in unread])):
            reads[i] = _Read(rects[i], _signature(gray, rects[i]), text, score)
    lines = [_Line(r.box, r.text, r.score) for r in reads if r.score >= _MIN_SCORE and _normal(r.text)]
    return lines, reads


class _Tracker:
    def __init__(self) -> None:
        self.active: list[_Track] = []
        self.done: list[_Track] = []
        self.last_known_s = 0.0  # the last frame whose texts are known

    def observe(self, time_s: float, blocks: list[_Block]) -> None:
        unmatched = list(blocks)
        still = []
        for track in self.active:
            match = max(unmatched, key=lambda b: similarity(b.text, track.text) + iou(b.box, track.box), default=None)
            # The same words at about the same place (a caption that moved or grew a line is another text).
            if match is not None and similarity(match.text, track.text) >= _SAME_TEXT \
                    and iou(match.box, track.box) > 0.2:
                unmatched.remove(match)
                self._add(track, time_s, match)
                still.append(track)
            else:
                track.absent_after_s = time_s
                self.done.append(track)
        for block in unmatched:
            track = _Track(block.box, absent_before_s=self.last_known_s, first_s=time_s, last_s=time_s)
            self._add(track, time_s, block)
            still.append(track)
        self.active = still
        self.last_known_s = time_s

    @staticmethod
    def _add(track: _Track, time_s: float, block: _Block) -> None:
        track.readings[block.text] += block.score
        track.last_s, track.box = time_s, block.box
        track.flat_votes += block.flat
        track.seen += 1

    def finish(self, duration_s: float) -> list[_Track]:
        for track in self.active:
            track.absent_after_s = duration_s
        self.done += self.active
        self.active = []
        return sorted(self.done, key=lambda t: t.first_s)


def _edge(track: _Track, absent_s: float, present_s: float, source: _Source) -> float:
    """Where the text comes or goes between a time it is absent and one it is there: the middle of the bracket,
    narrowed by reading the text's place in source frames between."""
    while abs(present_s - absent_s) > _SPAN_PRECISION_S:
        middle = (absent_s + present_s) / 2
        picture = source.frame(middle)
        there = False
        if picture is not None:
            reading = _recognise([_crop(picture, track.box)])
            there = bool(reading) and reading[0][1] >= _MIN_SCORE / 2 and \
                similarity(reading[0][0], track.text) >= _SAME_TEXT
        if there:
            present_s = middle
        else:
            absent_s = middle
    return (absent_s + present_s) / 2


@dataclass
class TextReading:
    events: list[Event]
    counts: TextCounts


def read_text(video: IngestedVideo, sampling: FrameSampling, home: Path | None = None) -> TextReading:
    """The film's on-screen texts as events (source "ocr"), from its sampled frames (paths absolute, as
    `load_sampling` gives them) and the source. `home`: where a running task's progress record goes."""
    counts = TextCounts(frames=len(sampling.frames))
    source = _Source(video, counts)
    tracker = _Tracker()
    tokens, refilled_s = float(_DETECTION_BURST), 0.0
    last_grid, last_blocks, earlier = None, [], []
    progress = Progress(home, len(sampling.frames), "frames looked at", log, name=f"on-screen text: {video.name}")
    for number, frame in enumerate(sampling.frames):
        progress.update(number)
        tokens = min(_DETECTION_BURST, tokens + (frame.time_s - refilled_s) * _DETECTIONS_PER_MINUTE / 60)
        refilled_s = frame.time_s
        bgr = cv2.imread(frame.path)
        if bgr is None:
            raise FileNotFoundError(f"{frame.path}: a sampled frame is missing; run the frame stage again")
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        grid = _grid(gray)
        if last_grid is not None and float(np.abs(grid - last_grid).max()) < _UNCHANGED:
            counts.inherited += 1
            blocks = last_blocks
        elif not _could_hold_text(gray):
            counts.passed_over += 1
            blocks = []
        elif tokens < 1:
            counts.over_budget += 1
            continue  # unknown: the texts on screen carry on until a frame is looked at again
        else:
            tokens -= 1
            lines, earlier = _read_frame(bgr, gray, frame.time_s, source, earlier, counts)
            flat = _flat_around(gray, [line.box for line in lines]) if lines else False
            blocks = _blocks(lines, flat)
        tracker.observe(frame.time_s, blocks)
        last_grid, last_blocks = grid, blocks
    progress.finish()

    shots = sampling.shots
    starts = [shot.start_s for shot in shots]
    events = []
    for track in tracker.finish(video.info.duration_s):
        start_s = _edge(track, track.absent_before_s, track.first_s, source) if track.absent_before_s < \
            track.first_s else track.first_s
        end_s = _edge(track, track.absent_after_s, track.last_s, source)
        if track.absent_before_s <= 0 and start_s <= _SPAN_PRECISION_S:
            start_s = 0.0
        if track.absent_after_s >= video.info.duration_s and end_s >= video.info.duration_s - _SPAN_PRECISION_S:
            end_s = video.info.duration_s
        text, flat = track.text, track.flat_votes * 2 > track.seen
        where = position(track.box, flat)
        shot = shots[max(bisect.bisect_right(starts, start_s + 1e-6) - 1, 0)] if shots else None
        events.append(Event(
            video_id=video.video_id, start_s=round(start_s, 3), end_s=round(max(end_s, start_s), 3),
            scene_type="title" if where == "title card" else "other",
            event=f'{where.capitalize()}: "{text}"', content=text, on_screen_text=text,
            spatial_description=f"{where}, {_where(track.box)}", source="ocr", language=language(text),
            shot_id=shot.shot_id if shot else None, thumbnail=shot.thumbnail if shot else ""))
    events = _rejoined(events)
    counts.texts = len(events)
    log.info("on-screen text: %d texts in %s; of %d frames, %d inherited, %d passed over, %d over budget, %d "
             "detected (%d with lines read), %d source frames decoded", len(events), video.name, counts.frames,
             counts.inherited, counts.passed_over, counts.over_budget, counts.detected, counts.recognised,
             counts.from_source)
    return TextReading(events, counts)


def _rejoined(events: list[Event]) -> list[Event]:
    """Events of the same text at the same place less than _REJOIN_GAP_S apart, as one event over both spans."""
    joined: list[Event] = []
    for event in sorted(events, key=lambda e: e.start_s):
        earlier = next((e for e in reversed(joined) if e.spatial_description == event.spatial_description
                        and similarity(e.content, event.content) >= _SAME_TEXT
                        and event.start_s - e.end_s <= _REJOIN_GAP_S), None)
        if earlier is None:
            joined.append(event)
        else:
            # Validated anew: the end's time code and the event's id derive from its span.
            joined[joined.index(earlier)] = Event.model_validate(
                {**earlier.model_dump(exclude={"id"}), "end_s": max(earlier.end_s, event.end_s)})
    return joined


# --- burned-in subtitles -----------------------------------------------------------------------------------------


def _shared(a: str, b: str) -> int:
    """Characters of `a` found in order in `b`."""
    return sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())


def match_subtitles(texts: list[Event], dialogue: list[Event]) -> dict[str, str]:
    """Which on-screen texts are burned-in subtitles: caption-band texts whose words are those of a line of
    dialogue at the same time (either may hold part of the other: a caption splits a long line, a line spans two
    captions). Returns {text event id: dialogue event id}. A translated subtitle matches nothing and stays a text."""
    matched = {}
    for text in texts:
        if not text.spatial_description.startswith("caption band"):
            continue
        caption = _normal(text.content)
        best, best_share = None, 0.0
        for line in dialogue:
            if line.end_s < text.start_s - _SUBTITLE_SLACK_S or line.start_s > text.end_s + _SUBTITLE_SLACK_S:
                continue
            said = _normal(line.content)
            shorter = min(len(caption), len(said))
            if shorter < 2:
                continue
            share = _shared(caption, said) / shorter
            if share > best_share:
                best, best_share = line, share
        if best is not None and best_share >= _SUBTITLE_OVERLAP:
            matched[text.id] = best.id
    return matched


def attach_subtitles(texts: list[Event], dialogue: list[Event],
                     retime: bool = False) -> tuple[list[Event], list[Event]]:
    """(dialogue, texts): each burned-in subtitle's text put on the line of dialogue it shows (`on_screen_text`),
    and the on-screen texts that are not subtitles, to index on their own. With `retime` (the transcript's word
    times are Whisper's own, a second or more off), a line whose subtitles show just it takes their span: read off
    the picture to a fraction of a second, it times the line better."""
    matched = match_subtitles(texts, dialogue)
    shown: dict[str, list[Event]] = {}
    for text in texts:
        if text.id in matched:
            shown.setdefault(matched[text.id], []).append(text)
    lines = []
    for line in dialogue:
        captions = sorted(shown.get(line.id, []), key=lambda c: c.start_s)
        if not captions:
            lines.append(line)
            continue
        update: dict = {"on_screen_text": " ".join([line.on_screen_text, *(c.content for c in captions)]).strip()}
        said, read = _normal(line.content), _normal("".join(c.content for c in captions))
        if retime and len(read) <= 1.5 * len(said) and len(said) <= 1.5 * len(read):  # the subtitles are this line
            update |= {"start_s": captions[0].start_s, "end_s": captions[-1].end_s}
            # Validated anew: the times and the id derive from the span.
            line = Event.model_validate({**line.model_dump(exclude={"id", "start_time", "end_time"}), **update})
        else:
            line = line.model_copy(update=update)
        lines.append(line)
    return lines, [text for text in texts if text.id not in matched]


# --- the stage ---------------------------------------------------------------------------------------------------


def read_on_screen_text(video: IngestedVideo, frames_dir: Path, settings: Settings) -> Path | None:
    """The cached on-screen text stage; returns its folder (on_screen_text.jsonl, counts.json), or None when
    reading text is off for the run or the video has no picture."""
    if not settings.read_on_screen_text or not video.info.has_video:
        return None

    def write(folder: Path) -> None:
        sampling = load_sampling(frames_dir)
        reading = read_text(video, sampling, settings.home) if sampling.frames else TextReading([], TextCounts())
        write_events(reading.events, folder / TEXT_FILE)
        (folder / COUNTS_FILE).write_text(json.dumps(asdict(reading.counts), indent=1))

    return cached_stage("on_screen_text", video.video_id, settings.artifacts_dir, write, upstream=[frames_dir],
                        detections_per_minute=_DETECTIONS_PER_MINUTE, burst=_DETECTION_BURST,
                        legible_px=_LEGIBLE_PX, precision_s=_SPAN_PRECISION_S, reader=_READER_VERSION)


def load_texts(folder: Path) -> list[Event]:
    return read_events(Path(folder) / TEXT_FILE)
