"""The film-level pass: one name per person film-wide, voices attached to characters, summary and chapters."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from cinedex.pipeline.events import EVENTS_FILE, read_events, write_events
from cinedex.pipeline.film import (Chapter, apply_roster, attach_speakers, build_roster, outline, roster_of, summarize_film,
                          summary_schema, tile_chapters)
from cinedex.core.model import Event
from cinedex.core.settings import Settings


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


# --- summary and chapters ----------------------------------------------------------------------------------------


def test_chapters_are_tiled_over_the_film():
    chapters = [Chapter(start_s=50, end_s=40, title="Second", summary="b"),
                Chapter(start_s=3, end_s=20, title="First", summary="a"),
                Chapter(start_s=50, end_s=90, title="Same start", summary="dropped"),
                Chapter(start_s=70, end_s=80, title="", summary=""),
                Chapter(start_s=120, end_s=130, title="Past the end", summary="dropped")]
    tiled = tile_chapters(chapters, 100.0)
    assert [(c.title, c.start_s, c.end_s) for c in tiled] == [("First", 0.0, 50.0), ("Second", 50.0, 100.0)]
    assert tile_chapters([], 100.0) == []


def test_the_outline_is_thinned_to_fit_and_keeps_both_ends():
    events = [_said(i, i + 1, "SPEAKER_00", f"line number {i}") for i in range(500)]
    full = outline(events, 10**9)
    assert len(full.splitlines()) == 500
    thin = outline(events, 5000)
    assert len(thin) <= 5000 and len(thin.splitlines()) > 50
    lines = thin.splitlines()
    assert "line number 0" in lines[0] and "line number 499" in lines[-1]
    assert lines[0].startswith("00:00:00-00:00:01 dialogue: SPEAKER_00: ")


@pytest.mark.parametrize("duration_s, max_new_tokens", [(34.56, 300), (9000.0, 1024), (9000.0, 4096)])
def test_the_summary_grammar_always_fits_its_token_budget(duration_s, max_new_tokens):
    _, schema = summary_schema(duration_s, max_new_tokens)
    chapter = schema["$defs"]["Chapter"]["properties"]
    chapters = schema["properties"]["chapters"]["maxItems"]
    longest = (schema["properties"]["summary"]["maxLength"] + 40
               + chapters * (chapter["title"]["maxLength"] + chapter["summary"]["maxLength"] + 40))
    assert longest <= max_new_tokens
    assert 1 <= chapters <= max(1, duration_s // 60)
    assert chapter["start_s"]["maximum"] == duration_s


def test_film_summary_with_the_real_model_path(tiny_vision_model, sampled_film, sample_film, tmp_path, media_dirs):
    """The tiny model's text-only answer, constrained by the grammar: schema-valid, times in the film, cached."""
    video, _ = sampled_film
    settings = Settings(home=tmp_path / "home", vision_model=str(tiny_vision_model), summary_max_new_tokens=300,
                        media_roots=os.pathsep.join(map(str, [tmp_path, *media_dirs])))
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    said = [Event(video_id=video.video_id, start_s=u.start_s, end_s=u.end_s, content=u.text, scene_type="dialogue")
            for u in sample_film.utterances]
    write_events(said, events_dir / EVENTS_FILE)

    film_dir = summarize_film(video, events_dir, settings)
    answer = json.loads((film_dir / "summary.json").read_text())
    _, schema = summary_schema(video.info.duration_s, 300)
    jsonschema.validate(json.loads(answer["raw"], strict=False), schema)
    indexed = read_events(film_dir / EVENTS_FILE)
    assert [e.id for e in indexed[:len(said)]] == [e.id for e in said]
    documents = indexed[len(said):]
    assert {e.source for e in documents} <= {"summary", "chapter"} and documents
    chapters = [e for e in documents if e.source == "chapter"]
    assert chapters[0].start_s == 0.0 and chapters[-1].end_s == video.info.duration_s
    assert all(e.content for e in documents)
    assert summarize_film(video, events_dir, settings) == film_dir  # cached: no second model call
    # Without a vision model the film pass changes nothing.
    assert summarize_film(video, events_dir, settings.model_copy(update={"vision_model": "none"})) == events_dir
