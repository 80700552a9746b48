"""The run report: one self-contained HTML page per film, written at the end of every run of the index DAG.

It holds a timeline picture (inline SVG: shots, chapters, who speaks when, visual events), the film's summary and
chapters, what the index holds, and the validation outcome with a link to the run's Great Expectations Data Docs
(a relative link, so it works from the artifact folder on disk and through the cinedex page alike).

Every text in it may come from a model or a transcript: all of it is escaped, and the page runs no script.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from cinedex import PIPELINE_VERSION
from cinedex.core.model import read_events
from cinedex.pipeline.validation import VALID_FILE
from cinedex.pipeline.frames import Shot, load_sampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.mediatime import MediaTime
from cinedex.core.model import SCENE_TYPES, Event
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TIMELINE_WIDTH = 1000
ROW_HEIGHT, LABEL_WIDTH = 18, 110
# Tableau 10, one colour per scene type in the model's order; a new scene type takes the next free colour.
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#9c755f", "#bab0ac", "#f28e2b", "#76b7b2",
           "#ff9da7")
SCENE_COLOURS = dict(zip(SCENE_TYPES, PALETTE))
OTHER_COLOUR = "#bab0ac"


def _x(seconds: float, duration_s: float) -> float:
    span = TIMELINE_WIDTH - LABEL_WIDTH
    return LABEL_WIDTH + span * min(max(seconds, 0.0), duration_s) / duration_s if duration_s > 0 else LABEL_WIDTH


def _bar(start_s: float, end_s: float, row: int, duration_s: float, colour: str, tip: str) -> str:
    x0, x1 = _x(start_s, duration_s), _x(end_s, duration_s)
    return (f'<rect x="{x0:.1f}" y="{row * ROW_HEIGHT + 2}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{ROW_HEIGHT - 4}" fill="{colour}"><title>{escape(tip)}</title></rect>')


def _span(start_s: float, end_s: float) -> str:
    return f"{MediaTime(start_s).hhmmss()}-{MediaTime(end_s).hhmmss()}"


def timeline_svg(duration_s: float, shots: list[Shot], events: list[Event]) -> str:
    """Rows of bars along the film: shots, chapters, one row per speaker, visual events coloured by scene type."""
    speakers = list(dict.fromkeys(e.speaker or "(unknown voice)" for e in events if e.source == "asr"))
    rows: list[tuple[str, list[str]]] = []
    rows.append(("shots", [_bar(s.start_s, s.end_s, len(rows), duration_s, ("#888", "#bbb")[s.shot_id % 2],
                                f"shot {s.shot_id} {_span(s.start_s, s.end_s)}") for s in shots]))
    chapters = [e for e in events if e.source == "chapter"]
    rows.append(("chapters", [_bar(e.start_s, e.end_s, len(rows), duration_s, ("#76b7b2", "#a0cbe8")[i % 2],
                                   f"{_span(e.start_s, e.end_s)} {e.event or e.content}")
                              for i, e in enumerate(chapters)]))
    for speaker in speakers:
        lines = [e for e in events if e.source == "asr" and (e.speaker or "(unknown voice)") == speaker]
        rows.append((speaker, [_bar(e.start_s, e.end_s, len(rows), duration_s, SCENE_COLOURS["dialogue"],
                                    f"{_span(e.start_s, e.end_s)} {speaker}: {e.content}") for e in lines]))
    visual = [e for e in events if e.source == "vision"]
    rows.append(("visual events", [_bar(e.start_s, e.end_s, len(rows), duration_s,
                                        SCENE_COLOURS.get(e.scene_type, OTHER_COLOUR),
                                        f"{_span(e.start_s, e.end_s)} [{e.scene_type}] {e.event or e.content}")
                                   for e in visual]))
    height = len(rows) * ROW_HEIGHT + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {TIMELINE_WIDTH} {height}" '
             f'width="100%" role="img" aria-label="timeline of the film">']
    for number, (label, bars) in enumerate(rows):
        parts.append(f'<text x="4" y="{number * ROW_HEIGHT + 13}" font-size="11">{escape(label[:18])}</text>')
        parts.extend(bars)
    ticks = 10
    for i in range(ticks + 1):
        seconds = duration_s * i / ticks
        x = _x(seconds, duration_s)
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" font-size="10" text-anchor="middle">'
                     f'{MediaTime(seconds).hhmmss()}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _list(values: list[str]) -> str:
    return ", ".join(escape(v) for v in values) or "none"


def render_report(video: IngestedVideo, events: list[Event], shots: list[Shot], validation: dict,
                  data_docs_href: str, run_id: str = "", written_at: datetime | None = None) -> str:
    """The report page as one HTML string; it loads nothing from anywhere."""
    written_at = written_at or datetime.now(timezone.utc)
    summary = next((e for e in events if e.source == "summary"), None)
    chapters = [e for e in events if e.source == "chapter"]
    by_source = Counter(e.source for e in events)
    by_scene = Counter(e.scene_type for e in events)
    speakers = sorted({e.speaker for e in events if e.speaker})
    languages = sorted({e.language for e in events if e.language})
    passed = not validation.get("systemic", False)
    dropped = validation.get("speech_dropped") or {}
    dropped_rows = "".join(f"<li>{escape(reason)}: {seconds:.1f} s</li>"
                           for reason, seconds in dropped.get("seconds", {}).items())
    reasons = "".join(f"<li>{escape(str(reason))}: {count}</li>" for reason, count in
                      list(validation.get("reasons", {}).items())[:10])
    chapter_rows = "".join(
        f"<tr><td>{_span(c.start_s, c.end_s)}</td><td>{escape(c.event)}</td><td>{escape(c.content)}</td></tr>"
        for c in chapters)
    info = video.info
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>cinedex report: {escape(video.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
vertical-align: top; }} .ok {{ color: #2a7d2a; }} .bad {{ color: #b22; }} code {{ font-size: 90%; }}
</style></head><body>
<h1>{escape(video.name)}</h1>
<p>video <code>{escape(video.video_id)}</code> &middot; {MediaTime(info.duration_s).timecode()} &middot;
{info.width}x{info.height} {escape(info.video_codec)} {info.fps:.3g} fps &middot; audio {escape(info.audio_codec or "none")}
&middot; pipeline version {escape(PIPELINE_VERSION)}{f" &middot; run <code>{escape(run_id)}</code>" if run_id else ""}
&middot; written {written_at.strftime("%Y-%m-%d %H:%M:%S UTC")}</p>
<h2>Timeline</h2>
{timeline_svg(info.duration_s, shots, events)}
<h2>Summary</h2>
<p>{escape(summary.content) if summary else "No summary: the film-level pass did not run (no vision model)."}</p>
<h2>Chapters</h2>
{f"<table><tr><th>time</th><th>chapter</th><th>what happens</th></tr>{chapter_rows}</table>" if chapters
 else "<p>No chapters.</p>"}
<h2>In the index</h2>
<table>
<tr><th>events</th><td>{len(events)}</td></tr>
<tr><th>by source</th><td>{_list([f"{k} {v}" for k, v in by_source.most_common()])}</td></tr>
<tr><th>by scene type</th><td>{_list([f"{k} {v}" for k, v in by_scene.most_common()])}</td></tr>
<tr><th>shots</th><td>{len(shots)}</td></tr>
<tr><th>speakers</th><td>{_list(speakers)}</td></tr>
<tr><th>languages</th><td>{_list(languages)}</td></tr>
</table>
<h2>Validation</h2>
<p class="{"ok" if passed else "bad"}">{"Passed" if passed else "Failed"}: {validation.get("valid", 0)} of
{validation.get("total", 0)} events valid and indexed, {validation.get("quarantined", 0)} quarantined
({validation.get("fraction_invalid", 0.0):.1%}, in stretches covering {validation.get("failed_spread", 0.0):.0%} of
the film; the run fails above {validation.get("max_invalid_fraction", 0.0):.1%} when the failures break the event
model or spread over most of the film).
<a href="{escape(data_docs_href)}">Great Expectations Data Docs</a></p>
{f"<ul>{reasons}</ul>" if reasons else ""}
<h2>Speech not indexed</h2>
{f"<ul>{dropped_rows}</ul>" if dropped_rows else "<p>None: every decoded stretch of speech became a line.</p>"}
{f'<p class="bad">{escape(dropped["advice"])}</p>' if dropped.get("advice") else ""}
</body></html>
"""


def write_report(video: IngestedVideo, validation_dir: Path, settings: Settings, run_id: str = "") -> Path:
    """Writes the film's report for the events this run loaded (the valid events of `validation_dir`); returns
    the report file. Written anew by every run, into a folder keyed by the validation it reports on."""
    validation_dir = Path(validation_dir)
    events = read_events(validation_dir / VALID_FILE)
    validation = json.loads((validation_dir / "report.json").read_text())
    frames_dir = next((Path(e.thumbnail).parent.parent for e in events if e.thumbnail), None)
    shots = load_sampling(frames_dir).shots if frames_dir and (frames_dir / "sampling.json").is_file() else []
    # Not a cached stage: every run writes its own report (its run id, its time) over the last one, whole or not
    # at all. Beside the validation folder it reports on, so the relative Data Docs link holds on disk and when
    # the cinedex page serves it.
    folder = Path(settings.artifacts_dir) / video.video_id / f"report-{validation_dir.name}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / REPORT_FILE
    scratch = folder / f".{REPORT_FILE}.{os.getpid()}.{threading.get_ident()}"
    data_docs = f"../{validation_dir.name}/data_docs/index.html"
    scratch.write_text(render_report(video, events, shots, validation, data_docs, run_id), encoding="utf-8")
    scratch.replace(target)
    log.info("report: %s written to %s", video.name, target)
    return target
