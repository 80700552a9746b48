"""The progress reporter: rate-limited log lines and records, figures that only grow within a try, a retried try
that replaces the old one's record, and nothing written outside a task."""

from __future__ import annotations

import json
import logging

import pytest

from cinedex.core import progress
from cinedex.core.progress import Progress

RUN_ID = "manual__2026-12-03T12:00:00+00:00"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def in_task(monkeypatch):
    """The environment Airflow's task runner sets in a task process."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", RUN_ID)
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "transcribe")
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", "1")


def _record(home, task="transcribe"):
    return progress.read_records(home, RUN_ID)[task][""]


def test_log_lines_and_records_are_rate_limited(tmp_path, in_task, caplog):
    clock = Clock()
    log = logging.getLogger("cinedex.test.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        reporter = Progress(tmp_path, 100, "s of audio decoded", log, name="asr: a.wav", clock=clock)
        assert _record(tmp_path)["done"] == 0  # the first record is written at once: the page sees the total
        for second in range(1, 31):  # one update a second for 30 s
            clock.now += 1
            reporter.update(second)
            if second == 1:
                assert _record(tmp_path)["done"] == 0  # 1 s after the last record: not yet written
            if second == 2:
                assert _record(tmp_path)["done"] == 2
        lines = [r.getMessage() for r in caplog.records]
        # One line when the first update comes, then every 10 s (at 11, 21): 3 in 30 s, not 30.
        assert len(lines) == 3, lines
        assert lines[0].startswith("asr: a.wav: 1 of 100 s of audio decoded (1%)")
        assert _record(tmp_path)["done"] == 30  # a record every 2 s: the last at 30
        reporter.finish()
    record = _record(tmp_path)
    assert record["done"] == record["total"] == 100 and progress.fraction(record) == 1.0
    assert "100 of 100 s of audio decoded (100%)" in caplog.records[-1].getMessage()


def test_figures_only_grow_within_a_try(tmp_path, in_task):
    clock = Clock()
    reporter = Progress(tmp_path, 50, "frames looked at", logging.getLogger(__name__), clock=clock,
                        record_every_s=0)
    reporter.update(30)
    reporter.update(10)  # a late, lower figure (e.g. a segment ending before the last one) is ignored
    assert reporter.done == 30 and _record(tmp_path)["done"] == 30
    reporter.update(80)  # more than the total is capped
    assert reporter.done == 50


def test_a_retried_task_starts_a_new_record_from_what_it_finds_done(tmp_path, in_task, monkeypatch):
    clock = Clock()
    log = logging.getLogger(__name__)
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "describe_windows")
    first = Progress(tmp_path, 10, "windows described", log, part=3, clock=clock, record_every_s=0)
    first.update(7)
    assert progress.read_records(tmp_path, RUN_ID)["describe_windows"]["3"]["done"] == 7
    # The first try was killed at 7 of 10 with 6 windows checkpointed; the retry resumes from those 6.
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", "2")
    clock.now += 60
    retry = Progress(tmp_path, 10, "windows described", log, part=3, done=6, clock=clock, record_every_s=0)
    record = progress.read_records(tmp_path, RUN_ID)["describe_windows"]["3"]
    assert record["try_number"] == 2 and record["done"] == 6 and record["resumed_at"] == 6
    clock.now += 10
    retry.advance(2)
    record = progress.read_records(tmp_path, RUN_ID)["describe_windows"]["3"]
    assert record["done"] == 8
    # The rate counts only this try's work: 2 windows in 10 s, 2 left, so about 10 s.
    assert progress.seconds_left(record) == pytest.approx(10.0)
    retry.finish()
    assert progress.seconds_left(progress.read_records(tmp_path, RUN_ID)["describe_windows"]["3"]) is None


def test_nothing_is_written_outside_a_task(tmp_path, monkeypatch, caplog):
    for name in ("AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID", "AIRFLOW_CTX_TRY_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    log = logging.getLogger("cinedex.test.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        reporter = Progress(tmp_path, 4, "events embedded", log)
        reporter.advance(4)
        reporter.finish()
    assert not (tmp_path / "progress").exists()
    assert caplog.records  # the log still says how far it got


def test_run_ids_cannot_climb_out_of_the_progress_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "../../escaped")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "../transcribe")
    Progress(tmp_path / "home", 1, "s", logging.getLogger(__name__)).finish()
    written = [p for p in tmp_path.rglob("*.json")]
    assert len(written) == 1 and (tmp_path / "home" / "progress") in written[0].parents
    assert json.loads(written[0].read_text())["done"] == 1


def test_an_unwritable_home_does_not_fail_the_work(tmp_path, in_task, caplog):
    home = tmp_path / "home"
    home.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING):
        reporter = Progress(home, 3, "s", logging.getLogger("cinedex.test.progress"))
        reporter.finish()
    assert reporter.done == 3 and "could not write" in caplog.text


def test_a_task_in_a_task_group_keeps_its_dotted_id(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", RUN_ID)
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "speech.transcribe")
    log = logging.getLogger(__name__)
    Progress(tmp_path, 2, "s", log).finish()
    Progress(tmp_path, 3, "windows described", log, part=1).finish()
    found = progress.read_records(tmp_path, RUN_ID)
    assert set(found) == {"speech.transcribe"} and set(found["speech.transcribe"]) == {"", "1"}
