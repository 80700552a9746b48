"""Faults on real parts: the artifact disk filling up, and two runs of one video at once. (Elasticsearch outages and
429 storms are in test_elastic.py; quarantined model answers in test_validation.py and test_vision.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from cinedex.pipeline import frames, ingest
from cinedex.core.artifacts import ArtifactDiskFull, stage_artifacts
from cinedex.index.embedded import EmbeddedIndex, IndexWriteError
from cinedex.core.model import Event
from cinedex.sample import clip
from cinedex.core.settings import Settings


@pytest.fixture
def small_disk(tmp_path):
    """A real 24 MiB filesystem (tmpfs), so writes fail with ENOSPC as on a full disk."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the disk-full test mounts a tmpfs and must run as root in CI")
        pytest.skip("mounting a small filesystem needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fills the disk up to `leave_bytes` of free space; returns the filler file."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


def test_a_full_artifact_disk_fails_cleanly_and_leaves_the_index_whole(small_disk, tmp_path):
    settings = Settings(home=small_disk / "home", media_roots=str(clip("bikes.mp4").parent))
    video = ingest.ingest(clip("bikes.mp4"), settings)
    index = EmbeddedIndex(settings.index_dir)
    before = [Event(video_id=video.video_id, start_s=i, end_s=i + 1, content=f"moment {i}") for i in range(10)]
    index.replace_video(video.video_id, before)

    filler = fill(small_disk, leave_bytes=64 * 1024)  # room for a few frames, not for all 10 seconds of them
    wider = settings.model_copy(update={"frame_width": 1280})
    with pytest.raises(ArtifactDiskFull, match=r"no space left on the artifact disk .* the frames stage"):
        frames.sample_frames(video, wider)
    stage_root = settings.artifacts_dir / video.video_id
    assert not [p.name for p in stage_root.iterdir() if p.name.startswith("frames")]  # nothing half-written
    assert [e.id for e in EmbeddedIndex(settings.index_dir).video_events(video.video_id)] == [e.id for e in before]

    # A load into the full disk fails too, and the index keeps the events it had.
    after = [Event(video_id=video.video_id, start_s=i, end_s=i + 1, content="x" * 4000) for i in range(2000)]
    with pytest.raises(IndexWriteError, match="the index keeps its previous contents. .* MiB free there"):
        EmbeddedIndex(settings.index_dir).replace_video(video.video_id, after)
    assert [e.id for e in EmbeddedIndex(settings.index_dir).video_events(video.video_id)] == [e.id for e in before]

    filler.unlink()  # space freed: the same call now succeeds
    sampled = frames.load_sampling(frames.sample_frames(video, wider))
    assert sampled.frames and all(Path(f.path).is_file() for f in sampled.frames)


def test_two_writers_of_one_stage_at_once_leave_one_finished_output(tmp_path):
    artifacts = stage_artifacts(tmp_path, "v" * 64, "frames", width=448)
    barrier = threading.Barrier(2)
    errors = []

    def write(tag: str) -> None:
        try:
            with artifacts.writing() as folder:
                (folder / "frame.txt").write_text(tag)
                barrier.wait(10)  # both scratch folders exist before either is moved into place
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(tag,)) for tag in ("first", "second")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    assert artifacts.complete and (artifacts.path / "frame.txt").read_text() in ("first", "second")
    assert sorted(p.name for p in artifacts.path.parent.iterdir()) == [artifacts.path.name]  # no scratch left


def test_a_later_stage_reaches_an_earlier_stages_file_through_the_manifests(tmp_path):
    """The report and the page find the people the events stage listed from the validation folder they know."""
    from cinedex.core.artifacts import cached_stage, upstream_file

    def writes(name: str | None):
        return lambda folder: (folder / name).write_text("{}") if name else None

    events = cached_stage("events", "v", tmp_path, writes("people_shown.json"))
    film = cached_stage("film", "v", tmp_path, writes(None), upstream=[events])
    validation = cached_stage("validation", "v", tmp_path, writes(None), upstream=[film])
    assert upstream_file(validation, "people_shown.json") == events / "people_shown.json"
    assert upstream_file(validation, "nothing.json") is None
    # A manifest naming a folder outside the film's (written by hand: cached_stage names only folders of the
    # film) is not followed.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    forged = tmp_path / "v" / "forged-0"
    forged.mkdir()
    (forged / "manifest.json").write_text(json.dumps({"params": {"upstream": ["../elsewhere", str(outside)]}}))
    assert upstream_file(forged, "secret.json") is None
