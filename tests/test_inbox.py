"""The daily inbox on real files: triage (new, skipped, rejected), the per-file report, and the day a run covers."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest

from cinedex import PIPELINE_VERSION
from cinedex.pipeline import frames, ingest
from cinedex.orchestration import inbox
from cinedex.index import open_index
from cinedex.index.embedded import EmbeddedIndex
from cinedex.core.model import Event
from cinedex.sample import clip
from cinedex.core.settings import Settings

DAY = date(2026, 11, 20)


@pytest.fixture
def day_settings(tmp_path, tmp_path_factory) -> Settings:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mp4").write_bytes(clip("bikes.mp4").read_bytes())
    folder = tmp_path / "inbox" / "2026-11-20"
    folder.mkdir(parents=True)
    shutil.copyfile(clip("bikes.mp4"), folder / "bikes.mp4")
    shutil.copyfile(clip("bikes.mp4"), folder / "bikes again.mp4")  # same content, another name
    shutil.copyfile(clip("bigbuckbunny.mp4"), folder / "bunny $(touch pwned).mp4")
    (folder / "notes.mp4").write_text("not a video at all\n")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "escape.mp4").symlink_to(outside / "secret.mp4")
    (folder / ".upload-in-progress.mp4").write_bytes(b"\x00" * 10)
    # Only the home and the inbox are media roots: the symlink's target is outside both.
    return Settings(home=tmp_path / "home", inbox=str(tmp_path / "inbox"), media_roots=str(tmp_path / "home"))


def by_name(files: list[inbox.InboxFile]) -> dict[str, inbox.InboxFile]:
    return {f.name: f for f in files}


def test_a_day_is_triaged_file_by_file(day_settings, tmp_path):
    files = by_name(inbox.triage_day(DAY, day_settings))
    assert sorted(files) == ["bikes again.mp4", "bikes.mp4", "bunny $(touch pwned).mp4", "empty.mp4", "escape.mp4",
                             "notes.mp4"]  # the hidden upload is left alone
    assert files["bikes again.mp4"].status == "new"  # name order: it comes first
    assert files["bikes.mp4"].status == "skipped" and files["bikes.mp4"].reason == "same content as bikes again.mp4"
    assert files["bunny $(touch pwned).mp4"].status == "new"
    assert not (tmp_path / "pwned").exists()
    assert files["empty.mp4"].status == "rejected" and "empty" in files["empty.mp4"].reason
    assert files["notes.mp4"].status == "rejected" and "not a media file" in files["notes.mp4"].reason
    assert files["escape.mp4"].status == "rejected" and "outside the allowed media roots" in files["escape.mp4"].reason
    new = [f for f in files.values() if f.status == "new"]
    assert all(f.run_id == inbox.run_id_for(DAY, f.video_id) and f.path for f in new)
    assert len({f.run_id for f in new}) == 2


def test_a_video_already_indexed_by_this_pipeline_version_is_skipped(day_settings):
    bikes = ingest.ingest(clip("bikes.mp4"), Settings(home=day_settings.home))
    EmbeddedIndex(day_settings.index_dir).replace_video(bikes.video_id, [
        Event(video_id=bikes.video_id, start_s=0, end_s=5, content="two riders"),
        Event(video_id=bikes.video_id, start_s=5, end_s=10, content="a bend in the road")])
    assert open_index(day_settings).count(bikes.video_id, PIPELINE_VERSION) == 2
    assert open_index(day_settings).count(bikes.video_id, PIPELINE_VERSION + "-next") == 0

    files = by_name(inbox.triage_day(DAY, day_settings))
    assert files["bikes again.mp4"].status == files["bikes.mp4"].status == "skipped"
    assert files["bikes again.mp4"].reason == f"already indexed by pipeline version {PIPELINE_VERSION} (2 events)"
    assert files["bunny $(touch pwned).mp4"].status == "new"


def test_triage_is_the_same_on_a_rerun(day_settings):
    assert inbox.triage_day(DAY, day_settings) == inbox.triage_day(DAY, day_settings)


def test_a_day_without_a_folder_has_no_files(day_settings):
    assert inbox.triage_day(date(2026, 11, 21), day_settings) == []


def test_settled_report_says_what_became_of_every_file(day_settings):
    files = inbox.triage_day(DAY, day_settings)
    new = [f for f in files if f.status == "new"]
    indexed_id = new[0].video_id
    EmbeddedIndex(day_settings.index_dir).replace_video(
        indexed_id, [Event(video_id=indexed_id, start_s=0, end_s=1, content="x")])
    frames.sample_frames(ingest.ingest(new[0].path, day_settings), day_settings)  # a stage of its run, for real
    states = {new[0].run_id: "success", new[1].run_id: "failed"}
    settled = by_name(inbox.settle(files, states, {new[1].run_id: ["transcribe"]}, day_settings))
    assert settled[new[0].name].status == "indexed" and settled[new[0].name].events == 1
    # Each stage's own work time, from its artifacts, in the order the stages finished.
    assert list(settled[new[0].name].stage_s) == ["ingest", "frames"]
    assert all(seconds > 0 for seconds in settled[new[0].name].stage_s.values())
    assert settled[new[1].name].status == "failed"
    assert settled[new[1].name].reason == f"run {new[1].run_id} ended failed; failed tasks: transcribe"

    report = json.loads(inbox.write_report(DAY, list(settled.values()), day_settings).read_text())
    assert report["day"] == "2026-11-20" and report["pipeline_version"] == PIPELINE_VERSION
    assert report["counts"] == {"indexed": 1, "skipped": 1, "rejected": 3, "failed": 1}
    table = (day_settings.home / "reports" / "daily" / "2026-11-20.md").read_text()
    assert "| bunny $(touch pwned).mp4 |" in table and table.count("\n| ") == 2 + 6  # header, rule, one row a file
    assert "stage seconds" in table and ": ingest " in table and ", frames " in table


def test_days_are_written_as_iso_dates():
    assert inbox.parse_day("2026-02-28") == date(2026, 2, 28)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        inbox.parse_day("28/02/2026")


def test_a_local_inbox_is_a_media_root_and_object_storage_is_not(tmp_path):
    local = Settings(home=tmp_path / "home", inbox=str(tmp_path / "in"), media_roots=str(tmp_path / "media"))
    assert (tmp_path / "in").resolve() in local.allowed_roots
    assert Settings(inbox=f"file://{tmp_path}/in").local_inbox == (tmp_path / "in").resolve()
    remote = Settings(home=tmp_path / "home", inbox="s3://films/inbox", media_roots=str(tmp_path / "media"))
    assert remote.local_inbox is None and len(remote.allowed_roots) == 2
