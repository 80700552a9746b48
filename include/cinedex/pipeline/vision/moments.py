"""Moments to events: each window's answer read back into `Event`s (source "vision"), their times repaired where
that is unambiguous (swapped, a little outside the window, zero length), else the moment quarantined with the
reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cinedex.core.model import Event, WindowAnswer
from cinedex.pipeline.vision.schema import WindowResult
from cinedex.pipeline.windows import Window, load_plan

_CLAMP_S = 0.5  # a time this close outside the window is read as the window's edge


class QuarantinedMoment(BaseModel):
    window_index: int
    moment: dict[str, Any]
    reason: str


def repair_times(start: float, end: float, window: Window) -> tuple[float, float, str]:
    """(start, end, "") with the times made valid inside the window, or (start, end, reason) when they cannot be
    repaired without guessing."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return start, end, f"non-finite time ({start}, {end})"
    if start > end:
        start, end = end, start
    repaired = []
    for name, value in (("start_s", start), ("end_s", end)):
        if value < window.start_s:
            if window.start_s - value > _CLAMP_S:
                return start, end, (f"{name} {value:.3f} is {window.start_s - value:.3f} s before the window "
                                    f"[{window.start_s:.3f}, {window.end_s:.3f}]")
            value = window.start_s
        elif value > window.end_s:
            if value - window.end_s > _CLAMP_S:
                return start, end, (f"{name} {value:.3f} is {value - window.end_s:.3f} s after the window "
                                    f"[{window.start_s:.3f}, {window.end_s:.3f}]")
            value = window.end_s
        repaired.append(value)
    start, end = repaired
    if end <= start:
        later = [f.time_s for f in window.frames if start < f.time_s <= window.end_s]
        end = min(later) if later else min(start + 1.0, window.end_s)
        if end <= start:
            return start, end, f"zero-length moment at {start:.3f} s, the window's end: no later time to extend to"
    return start, end, ""


def _shot_at(time_s: float, shots) -> Any:
    for shot in shots:
        if shot.start_s <= time_s < shot.end_s:
            return shot
    return shots[-1] if shots and time_s >= shots[-1].start_s else None


def moments_to_events(video_id: str, window: Window, answer: WindowAnswer, shots: Sequence | None = None,
                      ) -> tuple[list[Event], list[QuarantinedMoment]]:
    """Events (source "vision") from a window's answer; moments whose times cannot be repaired, or that say
    nothing, are quarantined with the reason."""
    events: list[Event] = []
    quarantined: list[QuarantinedMoment] = []
    for moment in answer.moments:
        data = moment.model_dump()
        start, end, reason = repair_times(moment.start_s, moment.end_s, window)
        content = moment.event.strip() or moment.action.strip() or moment.dialogue_summary.strip()
        if not reason and not content:
            reason = "no description (event, action and dialogue_summary all empty)"
        if reason:
            quarantined.append(QuarantinedMoment(window_index=window.index, moment=data, reason=reason))
            continue
        extra: dict[str, Any] = {}
        shot = _shot_at((start + end) / 2, shots or [])
        if shot is not None:
            extra = {"shot_id": shot.shot_id, "thumbnail": shot.thumbnail}
        events.append(Event(**{**data, "start_s": start, "end_s": end}, video_id=video_id, content=content,
                            source="vision", **extra))
    return events, quarantined


def visual_events(video_id: str, vision_dir: Path, shots: Sequence) -> tuple[list[Event], list[dict]]:
    """Events from every window's answer, and the quarantined moments (or failed windows) with their reasons."""
    plan = load_plan(Path(vision_dir).parent)
    events: list[Event] = []
    quarantined: list[dict] = []
    for window in plan.windows:
        result = WindowResult.model_validate_json((Path(vision_dir) / f"window_{window.index:05d}.json").read_text())
        if result.answer is None:
            quarantined.append({"window_index": window.index, "reason": f"window failed: {result.error}"})
            continue
        window_events, window_quarantine = moments_to_events(video_id, window, result.answer, shots)
        events.extend(window_events)
        quarantined.extend(q.model_dump() for q in window_quarantine)
    # Two moments with the same time range get distinct ids (ids are made from the time range).
    seen: dict[str, int] = {}
    for event in events:
        count = seen.get(event.id, 0)
        seen[event.id] = count + 1
        if count:
            event.id = f"{event.id}-{count}"
    return events, quarantined
