"""The film-level pass: the film's summary and chapters. (Names and voices: test_characters.py.)"""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from cinedex.pipeline.events import EVENTS_FILE
from cinedex.core.model import read_events, write_events
from cinedex.pipeline.film import Chapter, outline, summarize_film, summary_schema, tile_chapters
from cinedex.core.model import Event
from cinedex.core.settings import Settings


def _said(start_s, end_s, speaker="", text="words"):
    return Event(video_id="v", start_s=start_s, end_s=end_s, content=text, speaker=speaker,
                 characters=[speaker] if speaker else [], scene_type="dialogue")


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
