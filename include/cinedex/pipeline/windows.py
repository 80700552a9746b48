"""Windows: the film cut into stretches aligned to shot boundaries, each with its frames and its dialogue.

A 2.5-hour film at a useful frame rate is about a million visual tokens, far more than one prompt holds; the
vision model sees one window at a time, and a film-level pass joins what it wrote.

The windows stage (`plan_windows`) writes the windows and their batches (one mapped inference task each) to
`windows.json`; the vision stage reads them back with `load_plan`.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from cinedex.core.artifacts import cached_stage
from cinedex.core.model import Event
from cinedex.core.settings import Settings
from cinedex.pipeline.asr import Transcript, Utterance
from cinedex.pipeline.speakers import labelled_transcript
from cinedex.pipeline.frames import FrameSampling, SampledFrame, Shot, load_sampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.on_screen_text import load_texts
from cinedex.pipeline.people import Person, load_people, person_name

log = logging.getLogger(__name__)


class WindowFrame(BaseModel):
    time_s: float
    path: str
    shot_id: int


class WindowLine(BaseModel):
    """A transcript utterance that falls inside the window, given to the model as context."""

    start_s: float
    end_s: float
    speaker: str = ""
    text: str


class WindowText(BaseModel):
    """Text read on screen (the on-screen text stage's OCR) during the window, given to the model as context."""

    start_s: float
    end_s: float
    text: str
    where: str = Field("", description="caption band, title card or sign, and where in the picture")


class WindowPerson(BaseModel):
    """A person the people stage saw on screen during the window (by face), given to the model as context."""

    name: str  # "Person N": one name for one face across the film
    spans: list[tuple[float, float]]  # when, within the window


# A window's prompt has room for about PROMPT_TOKENS of text beside its frames: so many on-screen texts at most, the
# longest first cut.
MAX_TEXTS_PER_WINDOW, MAX_TEXT_CHARS = 12, 160


class Window(BaseModel):
    index: int
    start_s: float
    end_s: float
    shot_ids: list[int]
    frames: list[WindowFrame]
    lines: list[WindowLine] = Field(default_factory=list)
    texts: list[WindowText] = Field(default_factory=list)
    people: list[WindowPerson] = Field(default_factory=list)
    source_fps: float = Field(description="The film's frame rate, so frame indices map back to film time.")
    frames_dropped: int = Field(0, description="Sampled frames of the window left out to stay within max_frames "
                                "(an evenly spread subset is kept, always with each shot's first frame).")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# --- visual token budget (Qwen3-VL) -------------------------------------------------------------------------------
#
# Qwen3-VL cuts a video into 16x16 patches, two frames deep (temporal patch 2), and merges 2x2 patches into one
# token: frames are resized to multiples of 32 and each PAIR of frames costs (H/32)(W/32) tokens. The processor puts
# "<t seconds>" (about 6 text tokens) plus <|vision_start|> and <|vision_end|> before and after each pair.
# 448x252 frames round to 448x256: 112 tokens a pair, 120 with the markers; at 2 fps an hour is 3,600 pairs, about
# 432K tokens: the ~440K an hour a film costs at the sampler's cap.

PATCH_FACTOR = 32  # patch 16 x spatial merge 2
TEMPORAL_PATCH = 2
TIMESTAMP_TOKENS = 6  # "<12.5 seconds>" in Qwen's tokenizer
VISION_MARKER_TOKENS = 2  # <|vision_start|>, <|vision_end|>
PROMPT_TOKENS = 600  # a window's prompt without its frames: system prompt, field list and dialogue, about


def _round_to_factor(value: int) -> int:
    return max(PATCH_FACTOR, round(value / PATCH_FACTOR) * PATCH_FACTOR)


def tokens_per_frame_pair(width: int, height: int, *, markers: bool = True) -> int:
    """Tokens one temporal patch (two frames) of `width` x `height` costs, with its timestamp markers by default."""
    grid = (_round_to_factor(height) // PATCH_FACTOR) * (_round_to_factor(width) // PATCH_FACTOR)
    return grid + (TIMESTAMP_TOKENS + VISION_MARKER_TOKENS if markers else 0)


def visual_tokens(n_frames: int, width: int, height: int, *, markers: bool = True) -> int:
    """Tokens `n_frames` frames cost as one video (an odd count is padded with its last frame, as Qwen does)."""
    pairs = math.ceil(n_frames / TEMPORAL_PATCH)
    return pairs * tokens_per_frame_pair(width, height, markers=markers)


# Qwen3-VL's video processor (video_preprocessor_config.json of the released checkpoints: size.longest_edge) shrinks
# the frames of a video whose frames x height x width (after rounding) pass this many pixels: 218 frames of 448x256.
QWEN3_VL_VIDEO_MAX_PIXELS = 25_165_824


def max_frames_for(context_tokens: int, width: int, height: int, *, prompt_tokens: int = 600,
                   max_new_tokens: int = 1024, max_video_pixels: int | None = QWEN3_VL_VIDEO_MAX_PIXELS) -> int:
    """The most frames (even, >= 2) one window may hold so that frames, prompt and answer fit `context_tokens`,
    and (unless `max_video_pixels` is None) the video processor keeps the frames at full size."""
    room = context_tokens - prompt_tokens - max_new_tokens
    pairs = max(1, room // tokens_per_frame_pair(width, height))
    if max_video_pixels is not None:
        frame_pixels = _round_to_factor(width) * _round_to_factor(height)
        pairs = max(1, min(pairs, max_video_pixels // (frame_pixels * TEMPORAL_PATCH)))
    return pairs * TEMPORAL_PATCH


def film_visual_tokens(sampling: FrameSampling) -> int:
    return visual_tokens(len(sampling.frames), sampling.width, sampling.height)


# --- windows ------------------------------------------------------------------------------------------------------

@dataclass
class _Piece:
    """A whole shot, or one piece of a shot longer than max_s."""

    shot_id: int
    start_s: float
    end_s: float
    frames: list[SampledFrame]


def _split_shot(shot: Shot, frames: list[SampledFrame], max_s: float) -> list[_Piece]:
    """`shot` cut into pieces of at most `max_s`, each cut on a sampled frame (which starts the next piece) where a
    frame lies in the second half of the allowed span, else exactly at max_s."""
    cuts = [shot.start_s]
    while shot.end_s - cuts[-1] > max_s + 1e-9:
        start, limit = cuts[-1], cuts[-1] + max_s
        on_frames = [f.time_s for f in frames if start + max_s / 2 <= f.time_s <= limit]
        cuts.append(on_frames[-1] if on_frames else limit)
    bounds = [*cuts, shot.end_s]
    pieces = [_Piece(shot.shot_id, a, b, []) for a, b in zip(bounds, bounds[1:])]
    for frame in frames:
        index = max(0, bisect.bisect_right(cuts, frame.time_s + 1e-9) - 1)
        pieces[index].frames.append(frame)
    return pieces


def _spread(items: list, count: int) -> list:
    """`count` items of `items`, evenly spread, order kept."""
    if count >= len(items):
        return list(items)
    if count <= 0:
        return []
    return [items[math.floor((i + 0.5) * len(items) / count)] for i in range(count)]


def _subset(pieces: list[_Piece], max_frames: int) -> tuple[list[SampledFrame], int]:
    """The frames kept for a window: all when they fit, else each piece's first frame plus an even spread of the
    others (when even the first frames are too many, an even spread of them)."""
    frames = [f for piece in pieces for f in piece.frames]
    if len(frames) <= max_frames:
        return frames, 0
    firsts = [piece.frames[0] for piece in pieces if piece.frames]
    if len(firsts) >= max_frames:
        kept = _spread(firsts, max_frames)
    else:
        first_ids = {id(f) for f in firsts}
        others = [f for f in frames if id(f) not in first_ids]
        chosen = {id(f) for f in [*firsts, *_spread(others, max_frames - len(firsts))]}
        kept = [f for f in frames if id(f) in chosen]
    return kept, len(frames) - len(kept)


def build_windows(sampling: FrameSampling, transcript: Transcript | None, source_fps: float, target_s: float,
                  max_s: float, max_frames: int, texts: list[Event] = ()) -> list[Window]:
    """The film cut into windows of whole consecutive shots, about `target_s` long and never over `max_s`.

    Shots are taken in order; when the next one would carry the window past `target_s`, the window is closed
    either with it or before it, whichever lands nearer `target_s` (with it only if that stays within `max_s`). A
    shot longer than `max_s` is split into pieces of at most `max_s`, on sampled frames where possible. A last
    window shorter than half the target joins the one before when the two fit `max_s`. Windows tile the film
    (shot 0's start to the last shot's end) without gaps; every sampled frame belongs to exactly one window, but a
    window with more than `max_frames` keeps an evenly spread subset that includes each shot's (piece's) first
    frame, and records how many it left out in `frames_dropped`. Each utterance goes to the one window holding its
    midpoint; each on-screen text (`texts`, the OCR stage's events) to every window its span overlaps.
    """
    if target_s <= 0 or max_s < target_s:
        raise ValueError(f"need 0 < target_s <= max_s, got target {target_s}, max {max_s}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if not sampling.shots:
        return []
    by_shot: dict[int, list[SampledFrame]] = {}
    for frame in sorted(sampling.frames, key=lambda f: f.time_s):
        by_shot.setdefault(frame.shot_id, []).append(frame)
    unknown = set(by_shot) - {shot.shot_id for shot in sampling.shots}
    if unknown:
        raise ValueError(f"sampled frames name shots that do not exist: {sorted(unknown)[:5]}")
    pieces = [piece for shot in sorted(sampling.shots, key=lambda s: s.start_s)
              for piece in _split_shot(shot, by_shot.get(shot.shot_id, []), max_s)]

    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    for piece in pieces:
        if current:
            start = current[0].start_s
            now, with_it = piece.start_s - start, piece.end_s - start
            if with_it > target_s:
                if with_it <= max_s and with_it - target_s <= target_s - now:
                    current.append(piece)
                    groups.append(current)
                    current = []
                    continue
                groups.append(current)
                current = []
        current.append(piece)
        if current[-1].end_s - current[0].start_s >= target_s:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    if (len(groups) > 1 and groups[-1][-1].end_s - groups[-1][0].start_s < target_s / 2
            and groups[-1][-1].end_s - groups[-2][0].start_s <= max_s):
        groups[-2].extend(groups.pop())

    windows = []
    for index, group in enumerate(groups):
        kept, dropped = _subset(group, max_frames)
        if dropped:
            log.info("windows: window %d (%.1f-%.1f s) keeps %d of %d frames (max_frames %d)", index,
                     group[0].start_s, group[-1].end_s, len(kept), len(kept) + dropped, max_frames)
        windows.append(Window(
            index=index, start_s=group[0].start_s, end_s=group[-1].end_s,
            shot_ids=list(dict.fromkeys(piece.shot_id for piece in group)),
            frames=[WindowFrame(time_s=f.time_s, path=f.path, shot_id=f.shot_id) for f in kept],
            source_fps=source_fps, frames_dropped=dropped))
    if transcript is not None:
        _assign_lines(windows, transcript.utterances)
    _assign_texts(windows, texts)
    return windows


def _assign_lines(windows: list[Window], utterances: list[Utterance]) -> None:
    """Each utterance to the window holding its midpoint (clamped into the film), in time order."""
    starts = [w.start_s for w in windows]
    for utterance in sorted(utterances, key=lambda u: (u.start_s, u.end_s)):
        middle = (utterance.start_s + utterance.end_s) / 2
        index = min(len(windows) - 1, max(0, bisect.bisect_right(starts, middle) - 1))
        windows[index].lines.append(WindowLine(start_s=utterance.start_s, end_s=utterance.end_s,
                                               speaker=utterance.speaker, text=utterance.text))


def _assign_texts(windows: list[Window], texts: list[Event]) -> None:
    """Each on-screen text to every window its span overlaps (a title held across a cut is in both), in time
    order, at most MAX_TEXTS_PER_WINDOW a window (the longest-shown kept)."""
    for window in windows:
        seen = [t for t in texts if t.start_s < window.end_s and t.end_s > window.start_s and t.on_screen_text]
        kept = sorted(seen, key=lambda t: t.end_s - t.start_s, reverse=True)[:MAX_TEXTS_PER_WINDOW]
        window.texts = [WindowText(start_s=t.start_s, end_s=t.end_s, text=t.on_screen_text[:MAX_TEXT_CHARS],
                                   where=t.spatial_description)
                        for t in sorted(kept, key=lambda t: (t.start_s, t.end_s))]


def _assign_people(windows: list[Window], people: list[Person]) -> None:
    """Each person to the windows they are on screen in, with their spans clipped to the window."""
    for window in windows:
        window.people = []
        for person in people:
            spans = [(max(start, window.start_s), min(end, window.end_s)) for start, end in person.appearances
                     if start < window.end_s and end > window.start_s]
            if spans:
                window.people.append(WindowPerson(name=person_name(person.label), spans=spans))


# --- film-level sizing: windows to mapped tasks --------------------------------------------------------------------

AIRFLOW_MAX_MAP_LENGTH = 1024  # Airflow's default [core] max_map_length


def batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive windows in groups of `batch_size` (the last may be shorter): one mapped task each."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [windows[i:i + batch_size] for i in range(0, len(windows), batch_size)]


def windows_per_batch(n_windows: int, preferred: int, max_tasks: int = AIRFLOW_MAX_MAP_LENGTH // 4) -> int:
    """`preferred`, grown where needed so `n_windows` make at most `max_tasks` batches (by default a quarter of
    Airflow's max_map_length, leaving room for other mapped stages)."""
    return max(preferred, 1, math.ceil(n_windows / max(1, max_tasks)))


# --- the windows stage --------------------------------------------------------------------------------------------

WINDOWS_FILE = "windows.json"


class WindowPlan(BaseModel):
    windows: list[Window]
    batches: list[list[int]] = Field(description="Window indexes per mapped inference task.")
    language: str = Field("", description="The film's spoken language as the transcript tells it (a code).")


def plan_windows(video: IngestedVideo, frames_dir: Path, transcript_dir: Path, settings: Settings,
                 speakers_dir: Path | None = None, texts_dir: Path | None = None,
                 people_dir: Path | None = None) -> Path:
    """The cached windows stage: `windows.json` (the windows and their batches) in its artifact folder; the
    windows' lines carry their voice labels when the speakers stage found any, the windows the text read on
    screen during them when the on-screen text stage ran, and the people on screen when the people stage ran."""
    def write(folder: Path) -> None:
        sampling = load_sampling(frames_dir)
        max_frames = max_frames_for(settings.vision_context_tokens, sampling.width, sampling.height,
                                    prompt_tokens=PROMPT_TOKENS, max_new_tokens=settings.vision_max_new_tokens)
        transcript = labelled_transcript(transcript_dir, speakers_dir)
        windows = build_windows(sampling, transcript, video.info.fps, settings.window_target_s,
                                settings.window_max_s, max_frames, load_texts(texts_dir) if texts_dir else [])
        _assign_people(windows, load_people(people_dir) if people_dir else [])
        # One generate call per mapped task: a 3-hour film at 120 s windows and batches of 4 makes about 23 tasks.
        size = windows_per_batch(len(windows), settings.vision_batch_size)
        plan = WindowPlan(windows=windows, batches=[[w.index for w in batch] for batch in batches(windows, size)],
                          language=(transcript.language if transcript else "") or settings.language)
        (folder / WINDOWS_FILE).write_text(plan.model_dump_json())
        log.info("windows: %s cut into %d windows, %d inference tasks", video.name, len(windows), len(plan.batches))

    return cached_stage("windows", video.video_id, settings.artifacts_dir, write,
                        upstream=[frames_dir, transcript_dir, speakers_dir, texts_dir, people_dir],
                        target_s=settings.window_target_s,
                        max_s=settings.window_max_s, context_tokens=settings.vision_context_tokens,
                        max_new_tokens=settings.vision_max_new_tokens, windows_per_task=settings.vision_batch_size)


def load_plan(windows_dir: Path) -> WindowPlan:
    return WindowPlan.model_validate_json((Path(windows_dir) / WINDOWS_FILE).read_text())


def plan_batches(video: IngestedVideo, frames_dir: Path, transcript_dir: Path, settings: Settings,
                 speakers_dir: Path | None = None, texts_dir: Path | None = None,
                 people_dir: Path | None = None) -> list[dict]:
    """The vision work of a film, one item per inference task (`windows_dir`, `batch`); none without a vision
    model or without a picture, so the DAG skips inference."""
    if not settings.vision_enabled or not video.info.has_video:
        return []
    windows_dir = plan_windows(video, frames_dir, transcript_dir, settings, speakers_dir, texts_dir, people_dir)
    return [{"windows_dir": str(windows_dir), "batch": i} for i in range(len(load_plan(windows_dir).batches))]
