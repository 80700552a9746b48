"""The run report: one self-contained HTML page per film, written at the end of every run of the index DAG.

It holds a timeline picture (inline SVG: a strip of shot thumbnails, shots, chapters, who speaks when, on-screen
text, visual events), the film's summary and chapters, what the index holds, the run's long stages with their work
and times (from their progress records), and the validation outcome with a link to the run's Great Expectations Data
Docs (a relative link, so it works from the artifact folder on disk and through the cinedex page alike).

Every text in it may come from a model or a transcript: all of it is escaped, and the page runs no script.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections import Counter
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import cv2

from cinedex import PIPELINE_VERSION
from cinedex.core import progress
from cinedex.core.artifacts import upstream_file
from cinedex.core.model import read_events
from cinedex.pipeline.events import PEOPLE_SHOWN_FILE
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
# The strip of shot thumbnails: at most this many (spread over the film; the picture is 890 px wide), each shrunk
# and inlined, so a film of a thousand shots still makes a report of a few hundred KB.
STRIP_HEIGHT, STRIP_THUMBNAILS = 40, 150
# Tableau 10, one colour per scene type in the model's order; a new scene type takes the next free colour.
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#9c755f", "#bab0ac", "#f28e2b", "#76b7b2",
           "#ff9da7")
SCENE_COLOURS = dict(zip(SCENE_TYPES, PALETTE))
OTHER_COLOUR = "#bab0ac"


def _x(seconds: float, duration_s: float) -> float:
    span = TIMELINE_WIDTH - LABEL_WIDTH
    return LABEL_WIDTH + span * min(max(seconds, 0.0), duration_s) / duration_s if duration_s > 0 else LABEL_WIDTH


def _row_y(row: int) -> int:
    return STRIP_HEIGHT + 4 + row * ROW_HEIGHT


def _bar(start_s: float, end_s: float, row: int, duration_s: float, colour: str, tip: str) -> str:
    x0, x1 = _x(start_s, duration_s), _x(end_s, duration_s)
    return (f'<rect x="{x0:.1f}" y="{_row_y(row) + 2}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{ROW_HEIGHT - 4}" fill="{colour}"><title>{escape(tip)}</title></rect>')


def _inline_jpeg(path: str, height: int) -> str | None:
    """The picture shrunk to twice `height` (sharp on a high-density screen) as a data: URL, or None if unreadable."""
    picture = cv2.imread(path) if path else None
    if picture is None:
        return None
    h, w = picture.shape[:2]
    small = cv2.resize(picture, (max(1, round(w * 2 * height / h)), 2 * height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return f"data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode()}" if ok else None


def _strip(duration_s: float, shots: list[Shot]) -> list[str]:
    """Shot thumbnails along the film; with more shots than fit, evenly spread ones, each until the next shown."""
    if not shots:
        return []
    step = max(1, -(-len(shots) // STRIP_THUMBNAILS))
    shown = shots[::step]
    parts = []
    for shot, after in zip(shown, [*shown[1:], None]):
        image = _inline_jpeg(shot.thumbnail, STRIP_HEIGHT)
        if image is None:
            continue
        x0, x1 = _x(shot.start_s, duration_s), _x(after.start_s if after else shot.end_s, duration_s)
        parts.append(f'<image href="{image}" x="{x0:.1f}" y="0" width="{max(x1 - x0, 1.0):.1f}" '
                     f'height="{STRIP_HEIGHT}" preserveAspectRatio="xMidYMid slice">'
                     f"<title>shot {shot.shot_id} {_span(shot.start_s, shot.end_s)}</title></image>")
    return parts


def _span(start_s: float, end_s: float) -> str:
    return f"{MediaTime(start_s).hhmmss()}-{MediaTime(end_s).hhmmss()}"


def timeline_svg(duration_s: float, shots: list[Shot], events: list[Event], people: list[dict] = ()) -> str:
    """Rows of bars along the film under a strip of its shots' thumbnails: shots, chapters, one row per speaker,
    one per person on screen (`people`: the events stage's people_shown.json), on-screen text, visual events
    coloured by scene type."""
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
    for person in people:
        rows.append((person["name"], [_bar(start, end, len(rows), duration_s, PALETTE[2],
                                           f"{_span(start, end)} {person['name']} on screen")
                                      for start, end in person["appearances"]]))
    texts = [e for e in events if e.source == "ocr"]
    if texts:
        rows.append(("on-screen text", [_bar(e.start_s, e.end_s, len(rows), duration_s, PALETTE[4],
                                             f"{_span(e.start_s, e.end_s)} {e.content}") for e in texts]))
    visual = [e for e in events if e.source == "vision"]
    rows.append(("visual events", [_bar(e.start_s, e.end_s, len(rows), duration_s,
                                        SCENE_COLOURS.get(e.scene_type, OTHER_COLOUR),
                                        f"{_span(e.start_s, e.end_s)} [{e.scene_type}] {e.event or e.content}")
                                   for e in visual]))
    height = _row_y(len(rows)) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {TIMELINE_WIDTH} {height}" '
             f'width="100%" role="img" aria-label="timeline of the film">',
             f'<text x="4" y="{STRIP_HEIGHT // 2 + 4}" font-size="11">thumbnails</text>', *_strip(duration_s, shots)]
    for number, (label, bars) in enumerate(rows):
        parts.append(f'<text x="4" y="{_row_y(number) + 13}" font-size="11">{escape(label[:18])}</text>')
        parts.extend(bars)
    ticks = 10
    for i in range(ticks + 1):
        seconds = duration_s * i / ticks
        x = _x(seconds, duration_s)
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" font-size="10" text-anchor="middle">'
                     f'{MediaTime(seconds).hhmmss()}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _face(person: dict) -> str:
    url = _inline_jpeg(person.get("thumbnail", ""), 24)
    return f'<img src="{url}" alt="face of {escape(person["name"])}" height="48" width="48">' if url else ""


def _list(values: list[str]) -> str:
    return ", ".join(escape(v) for v in values) or "none"


def stage_figures(records: dict[str, dict[str, dict]]) -> list[dict]:
    """The run's long stages from their progress records (see cinedex.core.progress), in the order they started:
    work done, of what, in how many task-seconds (a mapped task's parts summed), and the last try."""
    rows = [{"task": task_id, **progress.combined(parts)} for task_id, parts in records.items()]
    return sorted(rows, key=lambda row: row["started"])


def render_report(video: IngestedVideo, events: list[Event], shots: list[Shot], validation: dict,
                  data_docs_href: str, run_id: str = "", written_at: datetime | None = None,
                  stages: list[dict] | None = None, people: list[dict] = ()) -> str:
    """The report page as one HTML string; it loads nothing from anywhere. `stages`: `stage_figures` of the run;
    `people`: the events stage's people_shown.json."""
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
    stage_rows = "".join(
        f"<tr><td>{escape(row['task'])}</td><td>{row['done']:,.0f} of {row['total']:,.0f} {escape(row['unit'])}</td>"
        f"<td>{row['seconds']:,.1f} s</td><td>{row['try_number']}</td></tr>" for row in stages or [])
    people_rows = "".join(
        f"<tr><td>{_face(person)}</td><td>{escape(person['name'])}</td><td>{person['screen_time_s']:.1f} s</td>"
        f"<td>{len(person['appearances'])}</td><td>{_span(*person['appearances'][0])}</td></tr>"
        for person in people if person["appearances"])
    texts = [e for e in events if e.source == "ocr"]
    text_rows = "".join(f"<tr><td>{_span(e.start_s, e.end_s)}</td><td>{escape(e.spatial_description)}</td>"
                        f"<td lang=\"{escape(e.language)}\">{escape(e.content)}</td></tr>" for e in texts[:200])
    info = video.info
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>cinedex report: {escape(video.name)}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
vertical-align: top; }} .ok {{ color: #2a7d2a; }} .bad {{ color: #b22; }} code {{ font-size: 90%; }}
</style></head><body>
<h1>{escape(video.name)}</h1>
<p>video <code>{escape(video.video_id)}</code> &middot; {MediaTime(info.duration_s).timecode()} &middot;
{info.width}x{info.height} {escape(info.video_codec)} {info.fps:.3g} fps &middot; audio {escape(info.audio_codec or "none")}
&middot; pipeline version {escape(PIPELINE_VERSION)}{f" &middot; run <code>{escape(run_id)}</code>" if run_id else ""}
&middot; written {written_at.strftime("%Y-%m-%d %H:%M:%S UTC")}</p>
<h2>Timeline</h2>
{timeline_svg(info.duration_s, shots, events, people)}
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
<h2>People on screen</h2>
{f"<table><tr><th>face</th><th>who</th><th>on screen</th><th>appearances</th><th>first</th></tr>{people_rows}</table>"
 if people_rows else "<p>No people: no faces were found, or finding people was off for the run.</p>"}
<h2>Text seen on screen</h2>
{f"<table><tr><th>time</th><th>where</th><th>text</th></tr>{text_rows}</table>" if text_rows else
 "<p>No on-screen text (other than subtitles of the dialogue), or reading text was off for the run.</p>"}
<h2>The run's long stages</h2>
{f"<table><tr><th>task</th><th>work</th><th>time</th><th>try</th></tr>{stage_rows}</table>" if stage_rows else
 "<p>No stage of this run recorded its progress (it ran outside Airflow, or every stage was reused from cache).</p>"}
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
    stages = stage_figures(progress.read_records(settings.home, run_id)) if run_id else []
    shown = upstream_file(validation_dir, PEOPLE_SHOWN_FILE)
    people = json.loads(shown.read_text()) if shown else []
    scratch.write_text(render_report(video, events, shots, validation, data_docs, run_id, stages=stages,
                                     people=people), encoding="utf-8")
    scratch.replace(target)
    log.info("report: %s written to %s", video.name, target)
    return target
