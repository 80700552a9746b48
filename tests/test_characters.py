"""Characters: one name per person film-wide, and voices attached to the characters seen speaking."""

from __future__ import annotations

from cinedex.pipeline.characters import apply_roster, attach_speakers, build_roster, name_voices, roster_of
from cinedex.core.model import Event


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


# --- speakers ----------------------------------------------------------------------------------------------------


def _said(start_s, end_s, speaker="", text="words"):
    return Event(video_id="v", start_s=start_s, end_s=end_s, content=text, speaker=speaker,
                 characters=[speaker] if speaker else [], scene_type="dialogue")


def _seen(start_s, end_s, speaker="", characters=()):
    return Event(video_id="v", start_s=start_s, end_s=end_s, content="seen", source="vision", speaker=speaker,
                 characters=list(characters))


def test_a_voice_label_becomes_the_character_seen_speaking_it():
    events = [_said(0, 2, "SPEAKER_00"), _said(3, 5, "SPEAKER_00"), _said(6, 8, "SPEAKER_00"),
              _said(9, 11, "SPEAKER_01"),
              _seen(0, 2.5, "Cobb"), _seen(2.9, 5.1, "Cobb"), _seen(5.5, 8.5, "SPEAKER_00"),
              _seen(9, 11, "Ariadne")]
    attached, voices = attach_speakers(events)
    # SPEAKER_01 was named once only: not evidence enough for a film-wide label.
    assert voices == {"SPEAKER_00": "Cobb"}
    dialogue = [e for e in attached if e.source == "asr"]
    assert [e.speaker for e in dialogue] == ["Cobb", "Cobb", "Cobb", "SPEAKER_01"]
    assert dialogue[2].characters == ["Cobb"]
    assert [e.id for e in attached] == [e.id for e in events]


def test_a_voice_named_two_ways_keeps_its_label():
    events = [_said(0, 2, "SPEAKER_00"), _said(3, 5, "SPEAKER_00"), _said(6, 8, "SPEAKER_00"),
              _seen(0, 2, "Cobb"), _seen(3, 5, "Arthur"), _seen(6, 8, "Cobb")]
    assert attach_speakers(events)[1] == {"SPEAKER_00": "Cobb"}  # two of three named utterances
    events += [_said(9, 11, "SPEAKER_00"), _seen(9, 11, "Arthur")]
    attached, voices = attach_speakers(events)
    assert voices == {}  # two and two: no telling
    assert {e.speaker for e in attached if e.source == "asr"} == {"SPEAKER_00"}


def test_an_unlabelled_line_takes_the_one_character_seen_speaking():
    events = [_said(0, 2), _said(3, 5), _seen(0, 2, "Cobb"), _seen(3, 5, "Cobb"), _seen(3, 5, "Arthur")]
    attached, voices = attach_speakers(events)
    assert voices == {}
    assert [e.speaker for e in attached if e.source == "asr"] == ["Cobb", ""]  # the second is ambiguous


def test_every_voice_is_shown_by_name_or_as_speaker_n_never_as_its_label():
    events = [_said(0, 2, "SPEAKER_00"), _said(3, 5, "SPEAKER_00"), _said(6, 8, "SPEAKER_01"),
              _said(9, 11, "SPEAKER_02"), _said(12, 13), _seen(0, 2, "Cobb"), _seen(3, 5, "Cobb")]
    attached, named = attach_speakers(events)
    assert "SPEAKER_00" not in roster_of(attached) and "SPEAKER_01" not in roster_of(attached)
    shown, voices = name_voices(attached, named)
    assert voices == {"SPEAKER_00": "Cobb", "SPEAKER_01": "Speaker 2", "SPEAKER_02": "Speaker 3"}
    dialogue = [e for e in shown if e.source == "asr"]
    assert [e.speaker for e in dialogue] == ["Cobb", "Cobb", "Speaker 2", "Speaker 3", ""]
    # An unnamed voice is no character: filtering by character finds the named ones only.
    assert [e.characters for e in dialogue] == [["Cobb"], ["Cobb"], [], [], []]
