"""The event model owns every field list: a field added to `Event` (here in a subclass, with nothing else edited)
appears in the tantivy schema, the Elasticsearch mapping, the validation suite, the embedded passage and search
hits."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest

from cinedex.core.model import EVENT_FIELDS, Event, EventFields, Indexed, SearchFilters
from cinedex.index.elastic import event_mapping
from cinedex.index.embedded import EmbeddedIndex
from cinedex.index.search import fuse, hit_model


class GradedEvent(Event):
    """A deployment's own event: one line per new field."""

    narration: Annotated[str, Indexed("text", embed=11)] = ""
    colour_grade: Annotated[Literal["", "warm", "cold"], Indexed("keyword")] = ""


GRADED = EventFields.of(GradedEvent)


def graded(start_s: float, narration: str, grade: str = "warm") -> GradedEvent:
    return GradedEvent(video_id="reel", start_s=start_s, end_s=start_s + 2, content="(no dialogue)",
                       narration=narration, colour_grade=grade)


def test_every_event_field_declares_its_role_once():
    assert set(EVENT_FIELDS.roles) == set(Event.model_fields)

    class Undeclared(Event):
        mood: str = ""

    with pytest.raises(TypeError, match="Undeclared.mood must declare its index role"):
        EventFields.of(Undeclared)


def test_field_lists_are_read_from_the_roles():
    assert EVENT_FIELDS.phrase == ("event", "content")
    assert EVENT_FIELDS.boosts["content"] == EVENT_FIELDS.boosts["event"] == 2.0
    assert EVENT_FIELDS.names == ("characters", "speaker", "people")
    assert EVENT_FIELDS.ranges == ("start_s", "end_s")
    assert "thumbnail" in EVENT_FIELDS.stored_only and "thumbnail" not in EVENT_FIELDS.text
    assert set(EVENT_FIELDS.filterable) == {c.field for c in SearchFilters(
        video_id="v", start_s=1, end_s=2, scene_type="dialogue", speaker="s", character="c", person="p").conditions()}
    # Every free-text field is part of the embedded passage (spatial_description was once left out by hand); who
    # speaks and who is on screen are filtered and matched as words, not embedded ("Person 2" means nothing).
    assert set(EVENT_FIELDS.embedded) == set(EVENT_FIELDS.text) - {"speaker", "people"}


def test_the_embedded_passage_holds_every_embedded_field_once():
    event = Event(video_id="v", start_s=0, end_s=1, event="A door opens", content="A door opens",
                  spatial_description="left of frame", characters=["Ana", "Ben"], objects_visible=["door"])
    assert EVENT_FIELDS.passage(event) == "A door opens. Ana, Ben. door. left of frame"


def test_a_new_field_reaches_the_mapping_the_suite_the_passage_and_hits(tmp_path):
    from cinedex.pipeline.validation import suite_checks, validate_events

    properties = event_mapping(384, GRADED)["mappings"]["properties"]
    assert properties["narration"]["analyzer"] == "english" and "cjk" in properties["narration"]["fields"]
    assert properties["colour_grade"] == {"type": "keyword"}

    in_set = [c.expectation for c in suite_checks(10.0, fields=GRADED)
              if getattr(c.expectation, "column", None) == "colour_grade"]
    assert [sorted(e.value_set) for e in in_set] == [["", "cold", "warm"]]
    bad = graded(4.0, "dusk").model_copy(update={"colour_grade": "purple"})
    report = validate_events([graded(0.0, "dawn"), bad], 10.0, tmp_path / "validation", 1.0, fields=GRADED)
    assert report.quarantined == 1
    assert "colour_grade 'purple' not allowed" in (tmp_path / "validation" / "quarantine.jsonl").read_text()

    assert GRADED.passage(graded(0.0, "the lighthouse beam sweeps the bay")).endswith(
        "the lighthouse beam sweeps the bay")

    index = EmbeddedIndex(tmp_path / "index", fields=GRADED)  # its tantivy schema holds the new fields
    index.replace_video("reel", [graded(0.0, "the lighthouse beam sweeps the bay", "cold"), graded(5.0, "a kettle")])
    ranking = index.bm25("lighthouse", SearchFilters(), 10)
    [hit] = fuse({"bm25": ranking}, 10, GRADED)
    assert isinstance(hit, hit_model(GRADED))
    assert (hit.narration, hit.colour_grade, hit.start_s) == ("the lighthouse beam sweeps the bay", "cold", 0.0)
    assert "<b>lighthouse</b>" in hit.highlight
