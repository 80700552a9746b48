"""Validation runs the real Great Expectations suite; these tests check what lands where, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cinedex.core.model import Event
from cinedex.pipeline.validation import SUITE_NAME, ValidationFailed, ValidationReport, validate_events

DURATION = 100.0
WINDOW = "[0, 100.5]"  # duration plus the default 0.5 s tolerance


def event(content: str, start_s: float, end_s: float, **fields) -> Event:
    return Event(video_id="film", start_s=start_s, end_s=end_s, content=content, **fields)


def good_events() -> list[Event]:
    return [
        event("Hello there.", 0.0, 2.5, scene_type="dialogue"),
        event("A car explodes.", 10.0, 12.0, scene_type="action", source="vision"),
        event("Within tolerance.", 99.0, 100.4),
    ]


def bad_events() -> dict[str, tuple[Event, list[str]]]:
    """Each bad event by its (unique) content, with the reasons it must be quarantined for."""
    wrong_scene = event("wrong scene", 50.0, 51.0)
    wrong_scene.scene_type = "car chase"  # the Literal rejects it at construction, not on assignment
    return {
        "inverted": (event("inverted", 20.0, 18.0), ["end_s <= start_s"]),
        "zero length": (event("zero length", 30.0, 30.0), ["end_s <= start_s"]),
        "past end": (event("past end", 99.0, 101.0), [f"end_s outside {WINDOW}"]),
        "negative start": (event("negative start", -1.0, 1.0), [f"start_s outside {WINDOW}"]),
        # One id given to two events (two copies of one document, told apart here by their content only).
        "dup one": (event("dup one", 40.0, 41.0, id="twice"), ["duplicate id"]),
        "dup two": (event("dup two", 40.0, 41.0, id="twice"), ["duplicate id"]),
        "": (event("", 60.0, 61.0), ["empty content"]),
        " \n\t ": (event(" \n\t ", 62.0, 63.0), ["empty content"]),
        "wrong scene": (wrong_scene, ["scene_type 'car chase' not allowed"]),
        "wrong source": (
            Event.model_construct(id="s1", video_id="film", start_s=70.0, end_s=71.0, content="wrong source",
                                  source="radio"),
            ["source 'radio' not allowed"],
        ),
        "nan start": (
            Event.model_construct(id="n1", video_id="film", start_s=float("nan"), end_s=72.0, content="nan start"),
            ["start_s missing"],
        ),
        "everything": (
            event("everything", 120.0, 110.0),
            [f"start_s outside {WINDOW}", f"end_s outside {WINDOW}", "end_s <= start_s"],
        ),
    }


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory) -> tuple[ValidationReport, Path, list[Event], dict]:
    bad = bad_events()
    good = good_events()
    wrong = [e for e, _ in bad.values()]
    # Interleaved, so that a row's position has to be mapped back to its event.
    events = [good[0], *wrong[:6], good[1], *wrong[6:], good[2]]
    out = tmp_path_factory.mktemp("mixed")
    report = validate_events(events, DURATION, out, max_invalid_fraction=1.0)
    return report, out, good, bad


def test_each_bad_event_is_quarantined_with_its_reasons(mixed_run):
    report, out, good, bad = mixed_run
    quarantined = read_jsonl(out / "quarantine.jsonl")
    assert {q["event"]["content"]: sorted(q["reasons"]) for q in quarantined} == {
        content: sorted(reasons) for content, (_, reasons) in bad.items()
    }
    assert report.quarantined == len(bad) == 12
    assert report.quarantine_path == out / "quarantine.jsonl"
    # The quarantined event is the event as it was, wrong value included.
    wrong = next(q["event"] for q in quarantined if q["event"]["content"] == "wrong scene")
    assert wrong["scene_type"] == "car chase"
    assert wrong["start_s"] == 50.0


def test_valid_events_are_written_whole(mixed_run):
    report, out, good, _ = mixed_run
    valid = [Event.model_validate_json(line) for line in (out / "valid.jsonl").read_text().splitlines()]
    assert valid == good
    assert report.valid == 3
    assert report.total == 15
    assert report.fraction_invalid == pytest.approx(12 / 15)


def test_report_json_records_counts_and_each_expectation(mixed_run):
    _, out, _, _ = mixed_run
    written = json.loads((out / "report.json").read_text())
    assert (written["total"], written["valid"], written["quarantined"]) == (15, 3, 12)
    assert written["suite"] == SUITE_NAME
    assert written["suite_success"] is False
    by_check = {
        (x["expectation"], x["kwargs"].get("column", x["kwargs"].get("column_A"))): x for x in written["expectations"]
    }
    assert by_check[("expect_column_values_to_be_unique", "id")]["unexpected_count"] == 2
    assert by_check[("expect_column_pair_values_a_to_be_greater_than_b", "end_s")]["unexpected_count"] == 3
    assert by_check[("expect_column_values_to_be_in_set", "scene_type")]["success"] is False
    assert by_check[("expect_column_values_to_not_be_null", "video_id")]["success"] is True
    # Derived from the model: every required field is checked for nulls.
    not_null = {column for kind, column in by_check if kind == "expect_column_values_to_not_be_null"}
    assert not_null == set(Event.required_fields())
    assert written["reasons"]["duplicate id"] == 2


def test_data_docs_are_built_for_the_run(mixed_run):
    report, out, _, _ = mixed_run
    assert report.data_docs == out / "data_docs" / "index.html"
    assert SUITE_NAME in report.data_docs.read_text()
    [page] = (out / "data_docs" / "validations").rglob("*.html")
    assert "car chase" in page.read_text()


def test_failures_spread_over_the_film_raise_after_writing(tmp_path):
    # 5 of 8 fail, every 20 s from 10 s to 90 s: one stretch over 81% of the film.
    bad = [event("inverted", t, t - 1.0) if i % 2 else event("", t, t + 1.0) for i, t in enumerate(range(10, 91, 20))]
    events = [*good_events(), *bad]

    with pytest.raises(ValidationFailed) as failed:
        validate_events(events, DURATION, tmp_path, max_invalid_fraction=0.39)

    message = str(failed.value)
    assert "5 of 8 events" in message and "cover 81% of the film" in message
    assert "end_s <= start_s" in message and "empty content" in message
    assert failed.value.report.systemic and failed.value.report.failed_spread == pytest.approx(0.81)
    assert len(read_jsonl(tmp_path / "quarantine.jsonl")) == 5
    assert len((tmp_path / "valid.jsonl").read_text().splitlines()) == 3
    assert (tmp_path / "report.json").is_file()
    assert (tmp_path / "data_docs" / "index.html").is_file()


def test_a_bad_stretch_is_quarantined_and_the_rest_of_the_film_indexed(tmp_path):
    """A reel of another language or a burst of bad times: more than the threshold fails, all of it in 40-60 s."""
    good = [event(f"line {i}", t, t + 2.0) for i, t in enumerate(range(0, 100, 10))]
    bad = [event(f"bad {i}", 40.0 + i, 40.0 + i) for i in range(12)]

    report = validate_events([*good, *bad], DURATION, tmp_path, max_invalid_fraction=0.2)

    assert (report.valid, report.quarantined, report.systemic) == (10, 12, False)
    assert report.fraction_invalid == pytest.approx(12 / 22) and report.failed_spread == pytest.approx(0.11)
    assert [Event.model_validate_json(line) for line in (tmp_path / "valid.jsonl").read_text().splitlines()] == good
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["systemic"] is False and written["reasons"] == {"end_s <= start_s": 12}


def test_most_events_breaking_the_model_fail_even_in_one_stretch(tmp_path):
    wrong = [Event.model_construct(id=f"r{i}", video_id="film", start_s=70.0 + i, end_s=70.5 + i, content="x",
                                   source="radio") for i in range(4)]

    with pytest.raises(ValidationFailed, match="most break the event model"):
        validate_events([*good_events(), *wrong], DURATION, tmp_path, max_invalid_fraction=0.2)


def test_failures_at_the_threshold_pass(tmp_path):
    events = [*good_events(), event("inverted", 20.0, 18.0), event("", 60.0, 61.0)]

    report = validate_events(events, DURATION, tmp_path, max_invalid_fraction=0.4)

    assert (report.valid, report.quarantined) == (3, 2)


def test_a_rerun_replaces_the_previous_data_docs(tmp_path):
    validate_events(good_events(), DURATION, tmp_path, max_invalid_fraction=0.0)
    validate_events(good_events(), DURATION, tmp_path, max_invalid_fraction=0.0)

    assert len(list((tmp_path / "data_docs" / "validations").rglob("*.html"))) == 1


def test_no_events_is_valid(tmp_path):
    report = validate_events([], DURATION, tmp_path, max_invalid_fraction=0.0)

    assert (report.total, report.valid, report.quarantined, report.fraction_invalid) == (0, 0, 0, 0.0)
    assert (tmp_path / "valid.jsonl").read_text() == ""
    assert (tmp_path / "quarantine.jsonl").read_text() == ""
    assert json.loads((tmp_path / "report.json").read_text())["total"] == 0
    assert report.data_docs.is_file()


def test_the_stage_report_points_at_files_of_its_own_folder(tmp_path, clip_without_audio):
    """The stage writes aside and renames into place: the paths in its report.json hold after the rename."""
    from cinedex.core.settings import Settings
    from cinedex.pipeline import ingest
    from cinedex.pipeline.events import EVENTS_FILE
    from cinedex.core.model import write_events
    from cinedex.pipeline.validation import validate_video_events

    settings = Settings(home=tmp_path / "home", media_roots=str(clip_without_audio.parent))
    video = ingest.ingest(clip_without_audio, settings)
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    write_events([e.model_copy(update={"video_id": video.video_id}) for e in good_events()[:1]],
                 events_dir / EVENTS_FILE)
    folder = validate_video_events(video, events_dir, settings)
    report = json.loads((folder / "report.json").read_text())
    for name in ("data_docs", "valid_path", "quarantine_path"):
        assert (folder / report[name]).is_file(), name
