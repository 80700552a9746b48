"""The film-level roster: one person, one name, film-wide."""

from __future__ import annotations

from cinedex.film import apply_roster, build_roster, roster_of
from cinedex.model import Event


def test_spellings_of_one_person_become_one_name():
    roster = build_roster(["Cobb", "cobb", "Mr. Cobb", "Dom Cobb", "Dom  Cobb", "Ariadne", "ariadne", "Ariadne"])
    assert {roster[n] for n in ["Cobb", "cobb", "Mr. Cobb", "Dom Cobb", "Dom  Cobb"]} == {"Dom Cobb"}
    assert roster["ariadne"] == "Ariadne"


def test_an_ambiguous_first_name_stays_as_it_is():
    roster = build_roster(["Arthur", "Arthur Dent", "Arthur Weasley"])
    assert roster["Arthur"] == "Arthur"
    assert roster["Arthur Dent"] == "Arthur Dent" and roster["Arthur Weasley"] == "Arthur Weasley"


def test_events_are_renamed_without_duplicate_characters():
    events = [
        Event(video_id="v", start_s=1, end_s=2, content="a", source="vision", characters=["Cobb", "Dom Cobb"]),
        Event(video_id="v", start_s=3, end_s=4, content="b", source="vision", characters=["ariadne"],
              speaker="Mr. Cobb"),
        Event(video_id="v", start_s=5, end_s=6, content="c", source="vision", characters=["Ariadne"]),
    ]
    renamed = apply_roster(events, roster_of(events))
    assert renamed[0].characters == ["Dom Cobb"]
    assert renamed[1].speaker == "Dom Cobb" and renamed[1].characters == renamed[2].characters
    assert [e.id for e in renamed] == [e.id for e in events]
