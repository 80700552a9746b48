"""People: faces in the sampled frames become the film's people, and every event lists who is on screen.

Per shot, cheapest first:
- looked at: the shot's first sampled frame (its middle one when it begins with a fade or dissolve), and one more
  for every `_LOOK_EVERY_S` of its length, while the detection budget lasts (a token bucket, `_DETECTIONS_PER_MINUTE` on average over the film, bursts of
  `_DETECTION_BURST`): a shot over budget is left unknown, never guessed;
- detected: dlib's HOG face detector on the sampled frame scaled by `_DETECT_SCALE` (faces from about 55 px of a
  448-px frame; half the cost of dlib's own 2x upsampling, which finds little more), faces scored under
  `_MIN_DETECTION_SCORE` dropped;
- tracked within the shot: faces at about the same place in the shot's successive frames looked at are one track;
- embedded: each track once, at its largest face, by dlib's ResNet face embedder (128-d, aligned on 5 landmarks),
  the shot's largest faces first while the embedding budget lasts (`_EMBEDDINGS_PER_MINUTE`, bursts of
  `_EMBEDDING_BURST`); a face track not embedded is counted, not named.
Across the film the tracks' embeddings are clustered (average linkage, cut at `_SAME_PERSON`: dlib's embedder puts
one person's faces under 0.6 apart; measured on real photographs and the carphone clip, one person <= 0.49, two
people >= 0.70), so a lead seen in hundreds of shots is one person, whatever the order of the shots. People are
labelled PERSON_00, PERSON_01, ... in the order they first appear. A weak face (scored under `_SURE_FACE`) gets a
second look at another frame of its shot, and a "person" seen in one shot only, in one frame and weakly, is dropped:
HOG takes a cartoon's or a statue's face for one now and then, and seldom twice; the labels stay inside the pipeline, like voice
labels: events show a person's name where the speakers or the vision model give one (`name_people`), else
"Person 1", "Person 2", ...

A person is on screen over a shot from the frame before they were first seen in it to the frame after they were last
seen (to the shot's edges where every frame looked at shows them); an event lists the people on screen for at least
`_ON_SCREEN_SHARE` of it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel

from cinedex.core.artifacts import cached_stage
from cinedex.core.boxes import iou
from cinedex.core.model import Event
from cinedex.core.progress import Progress
from cinedex.core.settings import Settings
# A person takes a name by the votes a voice takes one by: lines or moments naming the same one person on screen.
from cinedex.pipeline.characters import (DIARIZATION_LABEL, MIN_SPEAKER_SHARE as MIN_NAME_SHARE,
                                         MIN_SPEAKER_VOTES as MIN_NAME_VOTES, VOICE_NAME)
from cinedex.pipeline.frames import FrameSampling, SampledFrame, Shot, load_sampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.packages import package_data

log = logging.getLogger(__name__)

PEOPLE_FILE = "people.json"
FACES_DIR = "faces"
_FINDER_VERSION = 1  # part of the cache key: people found by an older finder are found again

# The budget, beside on-screen text's (see its module): the frame sampler costs about 1 s of 2 cores per film-minute,
# and faces get about half of it. A detection (448-px frame, upsampled once) takes about 50 ms there, an embedding
# about 70 ms.
_DETECTIONS_PER_MINUTE = 16.0
_DETECTION_BURST = 32
_EMBEDDINGS_PER_MINUTE = 6.0
_EMBEDDING_BURST = 16
_LOOK_EVERY_S = 4.0  # a shot gets another frame looked at for every so many seconds of it
_DETECT_SCALE = 1.5
_MIN_DETECTION_SCORE = 0.15  # HOG's score; weaker "faces" are mostly texture
_SURE_FACE = 0.5
_SAME_TRACK_IOU = 0.3
_SAME_PERSON = 0.55
_ON_SCREEN_SHARE = 0.3
_THUMBNAIL_PX = 96


class Person(BaseModel):
    label: str
    thumbnail: str  # relative to the stage's folder
    appearances: list[tuple[float, float]]  # (start_s, end_s), in time order, not overlapping
    tracks: int  # shots' face tracks clustered into this person
    embedding: list[float]  # the mean of the tracks' embeddings, for naming people across films later

    @property
    def screen_time_s(self) -> float:
        return sum(end - start for start, end in self.appearances)


class FaceTrack(BaseModel):
    """One face over the frames looked at in one shot."""

    shot_id: int
    start_s: float
    end_s: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the picture, at its largest
    person: str = ""  # the label, once clustered; "" when not embedded (over budget)


@dataclass
class PeopleCounts:
    """What the finder did: the benchmark's "frames examined"."""

    shots: int = 0
    frames_looked_at: int = 0
    over_budget: int = 0  # shots left unknown
    faces: int = 0
    tracks: int = 0
    embedded: int = 0
    doubtful: int = 0  # one-shot "people" with a weak face, dropped
    people: int = 0


class PeopleFound(BaseModel):
    people: list[Person]
    tracks: list[FaceTrack]


# --- models --------------------------------------------------------------------------------------------------------


@functools.cache
def _models():
    import dlib  # imported when first used: the detector and embedder take a second to load

    folder = package_data("face_recognition_models", "models")
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")))


@dataclass
class _Face:
    box: tuple[float, float, float, float]  # fractions
    rect: object  # dlib.rectangle in pixels of `rgb`
    area: float
    score: float


def detect_faces(rgb: np.ndarray) -> list[_Face]:
    """Faces in a picture; their dlib rectangles are in pixels of the picture itself."""
    import dlib

    detector, _, _ = _models()
    h, w = rgb.shape[:2]
    scaled = cv2.resize(rgb, (round(w * _DETECT_SCALE), round(h * _DETECT_SCALE)), interpolation=cv2.INTER_LINEAR)
    rects, scores, _ = detector.run(scaled, 0, _MIN_DETECTION_SCORE)
    faces = []
    for rect, score in zip(rects, scores):
        x0, y0 = max(rect.left() / _DETECT_SCALE, 0), max(rect.top() / _DETECT_SCALE, 0)
        x1, y1 = min(rect.right() / _DETECT_SCALE, w), min(rect.bottom() / _DETECT_SCALE, h)
        if x1 > x0 and y1 > y0:
            faces.append(_Face((x0 / w, y0 / h, x1 / w, y1 / h),
                               dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), float((x1 - x0) * (y1 - y0)),
                               float(score)))
    return faces


def embed_face(rgb: np.ndarray, face: _Face) -> np.ndarray:
    _, landmarks, embedder = _models()
    return np.asarray(embedder.compute_face_descriptor(rgb, landmarks(rgb, face.rect)), dtype=np.float32)


# --- finding people ----------------------------------------------------------------------------------------------


def _frames_to_look_at(frames: list[SampledFrame], shot: Shot) -> list[SampledFrame]:
    """The shot's first frame (its middle one after a fade or dissolve, whose first frames are blended), then one
    nearest the middle of each further `_LOOK_EVERY_S` of it."""
    if not frames:
        return []
    length = shot.end_s - shot.start_s
    count = math.ceil(length / _LOOK_EVERY_S)
    targets = [shot.start_s + length * (i + 0.5) / count for i in range(count)]
    if shot.transition == "cut":
        targets[0] = shot.start_s
    chosen = {min(frames, key=lambda f: abs(f.time_s - t)).path: None for t in targets}
    return sorted((f for f in frames if f.path in chosen), key=lambda f: f.time_s)


@dataclass
class _Track:
    shot_id: int
    faces: list[_Face]
    seen: list[int]  # indexes of the shot's frames looked at that show it
    rgb: np.ndarray | None = None  # the frame of its largest face, until embedded

    @property
    def largest(self) -> _Face:
        return max(self.faces, key=lambda f: f.area)


def _track_shot(pictures: list[tuple[SampledFrame, np.ndarray]]) -> list[_Track]:
    tracks: list[_Track] = []
    for index, (frame, rgb) in enumerate(pictures):
        open_tracks = [t for t in tracks if t.seen[-1] == index - 1]
        for face in sorted(detect_faces(rgb), key=lambda f: -f.area):
            match = max(open_tracks, key=lambda t: iou(t.faces[-1].box, face.box), default=None)
            if match is not None and iou(match.faces[-1].box, face.box) >= _SAME_TRACK_IOU:
                open_tracks.remove(match)
                match.faces.append(face)
                match.seen.append(index)
                if face is match.largest:
                    match.rgb = rgb
            else:
                tracks.append(_Track(frame.shot_id, [face], [index], rgb))
    return tracks


def _rgb(frame: SampledFrame) -> np.ndarray:
    bgr = cv2.imread(frame.path)
    if bgr is None:
        raise FileNotFoundError(f"{frame.path}: a sampled frame is missing; run the frame stage again")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _span(track: _Track, times: list[float], start_s: float, end_s: float) -> tuple[float, float]:
    first, last = track.seen[0], track.seen[-1]
    begin = start_s if first == 0 else (times[first - 1] + times[first]) / 2
    finish = end_s if last == len(times) - 1 else (times[last] + times[last + 1]) / 2
    return begin, finish


def cluster(embeddings: np.ndarray) -> list[int]:
    """Cluster numbers of the embeddings (average-linkage agglomerative, cut at `_SAME_PERSON`)."""
    if len(embeddings) == 0:
        return []
    if len(embeddings) == 1:
        return [0]
    from scipy.cluster.hierarchy import fcluster, linkage

    return [int(c) - 1 for c in fcluster(linkage(embeddings, method="average", metric="euclidean"),
                                         t=_SAME_PERSON, criterion="distance")]


def _face_crop(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The face with a margin, square, `_THUMBNAIL_PX` wide: a person's thumbnail."""
    h, w = rgb.shape[:2]
    cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
    half = max((box[2] - box[0]) * w, (box[3] - box[1]) * h) * 0.8
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
    return cv2.resize(rgb[y0:y1, x0:x1], (_THUMBNAIL_PX, _THUMBNAIL_PX), interpolation=cv2.INTER_AREA)


@dataclass
class _Embedded:
    """A track that was embedded: its embedding, span and the crop of its largest face."""

    index: int  # in the film's tracks
    embedding: np.ndarray
    span: tuple[float, float]
    area: float
    sure: bool  # seen in two frames looked at, or scored `_SURE_FACE` once
    crop: np.ndarray


def find_people(video: IngestedVideo, sampling: FrameSampling, out_dir: Path,
                home: Path | None = None) -> tuple[PeopleFound, PeopleCounts]:
    """The film's people from its sampled frames (paths absolute, as `load_sampling` gives them); face thumbnails go
    to `out_dir / FACES_DIR`. `home`: where a running task's progress record goes. Memory is bounded by the shot
    being looked at and a small crop per embedded face."""
    counts = PeopleCounts(shots=len(sampling.shots))
    by_shot: dict[int, list[SampledFrame]] = defaultdict(list)
    for frame in sampling.frames:
        by_shot[frame.shot_id].append(frame)
    detections, embeddings_left, refilled_s = float(_DETECTION_BURST), float(_EMBEDDING_BURST), 0.0
    tracks: list[FaceTrack] = []
    embedded: list[_Embedded] = []
    progress = Progress(home, len(sampling.shots), "shots looked at", log, name=f"people: {video.name}")
    for number, shot in enumerate(sampling.shots):
        progress.update(number)
        elapsed_min = (shot.start_s - refilled_s) / 60
        detections = min(_DETECTION_BURST, detections + elapsed_min * _DETECTIONS_PER_MINUTE)
        embeddings_left = min(_EMBEDDING_BURST, embeddings_left + elapsed_min * _EMBEDDINGS_PER_MINUTE)
        refilled_s = shot.start_s
        chosen = _frames_to_look_at(by_shot.get(shot.shot_id, []), shot)
        if not chosen:
            continue
        if detections < 1:
            counts.over_budget += 1
            continue
        pictures = [(frame, _rgb(frame)) for frame in chosen[:int(detections)]]
        shot_tracks = _track_shot(pictures)
        # A weak face gets a second look, at the frame of the shot farthest from those looked at: a real face scores
        # well in one frame or another, texture that looked like one seldom twice.
        others = [f for f in by_shot[shot.shot_id] if f not in chosen]
        if others and detections >= len(pictures) + 1 and any(max(f.score for f in t.faces) < _SURE_FACE
                                                               for t in shot_tracks):
            extra = max(others, key=lambda f: min(abs(f.time_s - p.time_s) for p, _ in pictures))
            pictures = sorted([*pictures, (extra, _rgb(extra))], key=lambda item: item[0].time_s)
            shot_tracks = _track_shot(pictures)
        detections -= len(pictures)
        counts.frames_looked_at += len(pictures)
        times = [frame.time_s for frame, _ in pictures]
        # The largest faces of the shot first: close-ups embed best and are of the people who matter most.
        for track in sorted(shot_tracks, key=lambda t: -t.largest.area):
            counts.faces += len(track.faces)
            span = _span(track, times, shot.start_s, shot.end_s)
            if embeddings_left >= 1:
                embeddings_left -= 1
                embedded.append(_Embedded(len(tracks), embed_face(track.rgb, track.largest), span, track.largest.area,
                                          len(track.seen) > 1 or max(f.score for f in track.faces) >= _SURE_FACE,
                                          _face_crop(track.rgb, track.largest.box)))
            tracks.append(FaceTrack(shot_id=shot.shot_id, start_s=round(span[0], 3), end_s=round(span[1], 3),
                                    box=tuple(round(v, 4) for v in track.largest.box)))
    progress.finish()
    counts.tracks, counts.embedded = len(tracks), len(embedded)
    clusters = cluster(np.stack([e.embedding for e in embedded])) if embedded else []
    sizes = Counter(clusters)
    doubtful = {c for face, c in zip(embedded, clusters) if sizes[c] == 1 and not face.sure}
    kept = [(face, c) for face, c in zip(embedded, clusters) if c not in doubtful]
    counts.doubtful = len(doubtful)

    # Labels in the order people first appear.
    first_seen: dict[int, float] = {}
    for face, c in kept:
        first_seen[c] = min(first_seen.get(c, math.inf), face.span[0])
    label_of = {c: f"PERSON_{n:02d}" for n, c in enumerate(sorted(first_seen, key=lambda c: (first_seen[c], c)))}
    faces_dir = out_dir / FACES_DIR
    faces_dir.mkdir(parents=True, exist_ok=True)
    people = []
    for c, label in sorted(label_of.items(), key=lambda item: item[1]):
        members = [face for face, k in kept if k == c]
        for face in members:
            tracks[face.index].person = label
        best = max(members, key=lambda face: face.area)
        cv2.imwrite(str(faces_dir / f"{label}.jpg"), cv2.cvtColor(best.crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])
        centroid = np.mean([face.embedding for face in members], axis=0)
        people.append(Person(label=label, thumbnail=f"{FACES_DIR}/{label}.jpg", tracks=len(members),
                             appearances=_merged([face.span for face in members]),
                             embedding=[round(float(x), 5) for x in centroid]))
    counts.people = len(people)
    log.info("people: %d people in %s; %d shots, %d frames looked at (%d shots over budget), %d faces in %d tracks, "
             "%d embedded", len(people), video.name, counts.shots, counts.frames_looked_at, counts.over_budget,
             counts.faces, counts.tracks, counts.embedded)
    return PeopleFound(people=people, tracks=tracks), counts


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1e-6:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in merged]


# --- events ----------------------------------------------------------------------------------------------------


def on_screen(event: Event, people: list[Person]) -> list[str]:
    """Labels of the people on screen for at least `_ON_SCREEN_SHARE` of the event (at its instant, for an event
    without length)."""
    length = event.end_s - event.start_s
    present = []
    for person in people:
        if length <= 0:
            shown = any(start <= event.start_s < end for start, end in person.appearances)
        else:
            covered = sum(max(0.0, min(end, event.end_s) - max(start, event.start_s))
                          for start, end in person.appearances)
            shown = covered >= _ON_SCREEN_SHARE * length
        if shown:
            present.append(person.label)
    return present


def person_name(label: str) -> str:
    """How a person nobody named is shown: PERSON_00 -> "Person 1"."""
    return f"Person {int(label.rsplit('_', 1)[1]) + 1}"


def name_people(events: list[Event], people: list[Person]) -> dict[str, str]:
    """label -> name, for the people a name is given to: where the events' named speakers (a voice the vision model
    named, see `characters.attach_speakers`) speak, or the one character a visual moment names is, while that one
    person is on screen, at least MIN_NAME_VOTES times and MIN_NAME_SHARE of the names given to them."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for event in events:
        present = on_screen(event, people)
        if len(present) != 1:
            continue
        if event.source == "asr":
            name = event.speaker.strip()
            if not name or DIARIZATION_LABEL.match(name) or VOICE_NAME.match(name):
                continue
        elif event.source == "vision" and len(event.characters) == 1:
            name = event.characters[0].strip()
        else:
            continue
        votes[present[0]][name] += 1
    named = {}
    for label, counter in votes.items():
        name, count = counter.most_common(1)[0]
        if count >= MIN_NAME_VOTES and count >= MIN_NAME_SHARE * sum(counter.values()):
            named[label] = name
    return named


def with_people(events: list[Event], people: list[Person]) -> tuple[list[Event], dict[str, str]]:
    """The events with `people` set to who is on screen during each (names where given, else "Person N"), and
    label -> name shown for every person."""
    shown = {person.label: person_name(person.label) for person in people} | name_people(events, people)
    listed = []
    for event in events:
        if event.source in ("summary", "chapter"):
            listed.append(event)
            continue
        names = list(dict.fromkeys(shown[label] for label in on_screen(event, people)))
        listed.append(event.model_copy(update={"people": names}) if names else event)
    return listed, shown


# --- the stage -------------------------------------------------------------------------------------------------


def find_people_stage(video: IngestedVideo, frames_dir: Path, settings: Settings) -> Path | None:
    """The cached people stage; returns its folder (people.json with the people and the face tracks, counts.json,
    faces/<label>.jpg), or None when finding people is off for the run or the video has no picture."""
    if not settings.find_people or not video.info.has_video:
        return None

    def write(folder: Path) -> None:
        sampling = load_sampling(frames_dir)
        found, counts = find_people(video, sampling, folder, settings.home)
        (folder / PEOPLE_FILE).write_text(found.model_dump_json(indent=1))
        (folder / "counts.json").write_text(json.dumps(asdict(counts), indent=1))

    return cached_stage("people", video.video_id, settings.artifacts_dir, write, upstream=[frames_dir],
                        detections_per_minute=_DETECTIONS_PER_MINUTE, embeddings_per_minute=_EMBEDDINGS_PER_MINUTE,
                        same_person=_SAME_PERSON, finder=_FINDER_VERSION)


def load_people(folder: Path) -> list[Person]:
    """The people the stage found, their thumbnails as absolute paths."""
    found = PeopleFound.model_validate_json((Path(folder) / PEOPLE_FILE).read_text())
    return [p.model_copy(update={"thumbnail": str(Path(folder) / p.thumbnail)}) for p in found.people]
