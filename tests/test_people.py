"""The people stage on real faces: the people film (the carphone clip's man, Grace Hopper and Eileen Collins in
interleaved shots framed differently each time, two of them side by side once, a cartoon shot of nobody) is
indexed as far as its frames, and the faces found must be the film's three people."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import pytest

from cinedex.core.model import Event
from cinedex.core.settings import Settings
from cinedex.pipeline import frames, ingest, people
from cinedex.pipeline.people import PEOPLE_FILE, PeopleFound, Person, load_people, name_people, with_people
from cinedex.sample import PeopleFilm, build_people_film

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> tuple[PeopleFilm, Settings, Path, Path]:
    home = tmp_path_factory.mktemp("people-home")
    answer = build_people_film(home / "films")
    settings = Settings(home=home)
    video = ingest.ingest(answer.path, settings)
    frames_dir = frames.sample_frames(video, settings)
    return answer, settings, frames_dir, people.find_people_stage(video, frames_dir, settings)


def truth_of(track, answer: PeopleFilm) -> str:
    """Who a face track is: the person of the shot it lies in, left to right by the face's place."""
    middle = (track.start_s + track.end_s) / 2
    shot = next(s for s in answer.shots if s.start_s <= middle < s.end_s)
    assert shot.people, f"a face found in a shot of nobody at {middle:.1f} s"
    if len(shot.people) == 1:
        return shot.people[0]
    return shot.people[0] if (track.box[0] + track.box[2]) / 2 < 0.5 else shot.people[1]


def test_the_same_face_across_shots_is_one_person_and_different_faces_are_different_people(film):
    answer, _, _, folder = film
    found = PeopleFound.model_validate_json((folder / PEOPLE_FILE).read_text())
    tracks = [t for t in found.tracks if t.person]
    pairs = [(t.person, truth_of(t, answer)) for t in tracks]
    # Purity: the share of tracks whose person's majority identity is theirs; coverage: the share of tracks whose
    # identity's majority person is theirs.
    by_person, by_truth = Counter(), Counter()
    for label in {p for p, _ in pairs}:
        by_person[label] = Counter(t for p, t in pairs if p == label).most_common(1)[0][1]
    for truth in {t for _, t in pairs}:
        by_truth[truth] = Counter(p for p, t in pairs if t == truth).most_common(1)[0][1]
    purity, coverage = sum(by_person.values()) / len(pairs), sum(by_truth.values()) / len(pairs)
    assert purity >= 0.9 and coverage >= 0.9, (purity, coverage, pairs)
    assert len(found.people) == 3
    # Every shot with someone in it had its faces found: each real appearance is covered.
    seen = {(truth_of(t, answer), round(t.start_s)) for t in tracks}
    expected = sum(len(s.people) for s in answer.shots)
    assert len(seen) >= expected - 1, seen  # the sampler may merge a cut (one shot then holds two people)
    # Labels in order of first appearance: the carphone man opens the film.
    first = min(found.people, key=lambda p: p.appearances[0][0])
    assert first.label == "PERSON_00" and first.appearances[0][0] == 0.0


def test_each_person_has_a_face_thumbnail_and_appearances_in_time_order(film):
    answer, _, _, folder = film
    for person in load_people(folder):
        picture = cv2.imread(person.thumbnail)
        assert picture is not None and picture.shape[:2] == (96, 96)
        spans = person.appearances
        assert all(start < end for start, end in spans) and spans == sorted(spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # merged: no two overlap
        assert 0 <= spans[0][0] and spans[-1][1] <= answer.duration_s + 1e-6
        assert len(person.embedding) == 128
    counts = json.loads((folder / "counts.json").read_text())
    assert counts["people"] == 3 and counts["frames_looked_at"] <= counts["shots"] * 2


def test_events_list_who_is_on_screen(film):
    """The reference conversation's lines as events: each lists exactly the people on screen for most of it."""
    answer, _, _, folder = film
    found = load_people(folder)
    lines = [Event(video_id="v", start_s=u.start_s, end_s=u.end_s, content=u.text, source="asr",
                   scene_type="dialogue") for u in answer.utterances]
    listed, shown = with_people(lines, found)
    assert set(shown.values()) == {"Person 1", "Person 2", "Person 3"}
    identity = {}  # "Person N" -> who, by the shots it is seen in
    for person in found:
        start, end = person.appearances[0]
        shot = next(s for s in answer.shots if s.start_s <= (start + end) / 2 < s.end_s)
        assert len(shot.people) == 1  # each first appears alone
        identity[shown[person.label]] = shot.people[0]
    checked = 0
    for event in listed:
        covering = [s for s in answer.shots if min(s.end_s, event.end_s) - max(s.start_s, event.start_s)
                    >= 0.6 * (event.end_s - event.start_s)]
        if not covering:
            continue  # a line across a cut: who counts as on screen is a matter of degree
        truth = set(covering[0].people)
        assert {identity[name] for name in event.people} == truth, (event.start_s, event.people, truth)
        checked += 1
    assert checked >= 3


def test_a_person_takes_the_name_the_speakers_give_while_they_alone_are_on_screen():
    anna = Person(label="PERSON_00", thumbnail="", appearances=[(0.0, 10.0), (20.0, 30.0)], tracks=2,
                  embedding=[0.0] * 128)
    ben = Person(label="PERSON_01", thumbnail="", appearances=[(10.0, 20.0), (25.0, 30.0)], tracks=2,
                 embedding=[0.0] * 128)
    said = [(1, 3, "Anna"), (5, 8, "Anna"), (12, 14, "Speaker 2"), (15, 17, "Speaker 2"), (26, 28, "Anna")]
    events = [Event(video_id="v", start_s=s, end_s=e, content="line", speaker=who, source="asr")
              for s, e, who in said]
    # Anna speaks twice while only PERSON_00 is on screen (the third line has both on screen: no vote); nobody
    # named the other voice, so PERSON_01 stays "Person 2".
    assert name_people(events, [anna, ben]) == {"PERSON_00": "Anna"}
    listed, shown = with_people(events, [anna, ben])
    assert shown == {"PERSON_00": "Anna", "PERSON_01": "Person 2"}
    assert [e.people for e in listed] == [["Anna"], ["Anna"], ["Person 2"], ["Person 2"], ["Anna", "Person 2"]]
    # One vote is not enough, and a visual moment naming one character counts like a named line.
    one = [events[0], Event(video_id="v", start_s=2, end_s=4, event="she waves", characters=["Anna"],
                            source="vision")]
    assert name_people(one, [anna, ben]) == {"PERSON_00": "Anna"}
    assert name_people(one[:1], [anna, ben]) == {}


def test_finding_people_turned_off_skips_the_stage(film):
    _, settings, frames_dir, _ = film
    video = ingest.ingest(film[0].path, settings)
    assert people.find_people_stage(video, frames_dir, settings.model_copy(update={"find_people": False})) is None
