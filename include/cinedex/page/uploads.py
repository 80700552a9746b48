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

from cinedex.pipeline.ingest import IngestError, MediaInfo, probe
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
    limit = settings.upload_max_bytes
    if declared_size is not None and declared_size > limit:
        raise UploadTooLarge(f"{declared_size} bytes is more than the upload limit of {limit} bytes "
                             "(CINEDEX_UPLOAD_MAX_BYTES)")
    # Today's folder of a local inbox, where the daily ingest would also find it (and skip it once indexed); with
    # an object-storage inbox, a local uploads folder under CINEDEX_HOME.
    today = f"{datetime.now(timezone.utc):%Y-%m-%d}"
    inbox = (settings.local_inbox or settings.home.resolve() / "uploads") / today
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".upload-{uuid.uuid4().hex}.partial"
    size = 0
    try:
        with open(partial, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the upload exceeds the limit of {limit} bytes (CINEDEX_UPLOAD_MAX_BYTES)")
                f.write(chunk)
        try:
            info = await asyncio.to_thread(probe, partial)
        except IngestError as error:
            # The probe names the scratch file; the person uploading knows it by its own name.
            raise NotAVideo(f"not a video cinedex can index: {str(error).replace(partial.name, safe_name(name))}") \
                from None
        target = _free_path(inbox, safe_name(name))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return UploadedVideo(path=str(target), name=target.name, size_bytes=size, info=info)
