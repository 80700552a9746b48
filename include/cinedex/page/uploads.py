"""Videos uploaded through the cinedex page: streamed into the inbox, size-limited while they arrive, and kept only
when the ingest stage's own probe accepts them (the bytes decide, never the file name's extension)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from cinedex.pipeline.ingest import CONTAINERS, IngestError, MediaInfo, probe
from cinedex.core.settings import Settings

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+")


class UploadTooLarge(Exception):
    pass


class NotAVideo(Exception):
    """The uploaded bytes are not a video the pipeline can index; the message says why."""


class UploadedVideo(BaseModel):
    path: str
    name: str
    size_bytes: int
    info: MediaInfo


def safe_name(name: str) -> str:
    """The file name alone (no folders), with only ordinary characters, never hidden or empty."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    return cleaned[:200] or "video"


def typed_name(name: str, info: MediaInfo) -> str:
    """`name` with the extension of what the probe found in it: its own when that is one of the container's, else
    the container's usual one (`poly.html` holding an MP4 becomes `poly.mp4`), so no name passes for another type."""
    container = CONTAINERS.get(info.container)
    if container is None:  # cannot happen: the probe reads no other container
        raise NotAVideo(f"not a video cinedex can index: {name}: container '{info.container}' is not one it reads")
    path = Path(name)
    if path.suffix.lower() in container.extensions:
        return name
    return f"{path.stem if path.suffix else name}{container.extensions[0]}"


def _free_path(folder: Path, name: str) -> Path:
    """`name` in `folder`, or `stem (2).ext`, ... when taken: an upload never overwrites a film being indexed."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem} ({number}){suffix}"
        number += 1
    return candidate


async def receive(chunks: AsyncIterator[bytes], name: str, settings: Settings,
                  declared_size: int | None = None) -> UploadedVideo:
    """Writes the streamed bytes to the inbox and keeps them if they probe as a video (or audio) file.

    Raises UploadTooLarge as soon as more than `settings.upload_max_bytes` arrive (or are declared), NotAVideo when
    the probe refuses the file; neither leaves anything behind.
    """
    # Today's folder of a local inbox, where the daily ingest would also find it (and skip it once indexed); with
    # an object-storage inbox, a local uploads folder under CINEDEX_HOME.
    root = settings.local_inbox or settings.home.resolve() / "uploads"
    left = settings.inbox_quota_bytes - sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) \
        if root.is_dir() else settings.inbox_quota_bytes
    limit, what = ((settings.upload_max_bytes, "the upload limit (CINEDEX_UPLOAD_MAX_BYTES)")
                   if settings.upload_max_bytes <= left else
                   (max(left, 0), f"what the inbox quota (CINEDEX_INBOX_QUOTA_BYTES) leaves free in {root}"))
    if declared_size is not None and declared_size > limit:
        raise UploadTooLarge(f"{declared_size} bytes is more than {what}: {limit} bytes")
    today = f"{datetime.now(timezone.utc):%Y-%m-%d}"
    inbox = root / today
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".upload-{uuid.uuid4().hex}.partial"
    size = 0
    try:
        with open(partial, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the upload exceeds {what}: {limit} bytes")
                f.write(chunk)
        try:
            # The same probe, and the same length limit, as ingest: what the page keeps, a run accepts.
            info = await asyncio.to_thread(probe, partial, settings.max_duration_s)
        except IngestError as error:
            # The probe names the scratch file; the person uploading knows it by its own name.
            raise NotAVideo(f"not a video cinedex can index: {str(error).replace(partial.name, safe_name(name))}") \
                from None
        # The name's stem, the extension of what the bytes are (the bytes decide, never the name).
        target = _free_path(inbox, typed_name(safe_name(name), info))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return UploadedVideo(path=str(target), name=target.name, size_bytes=size, info=info)
