"""Events: the transcript's utterances (and, later, the vision model's moments) as `Event`s placed in their shots."""

from __future__ import annotations

import bisect
import json
import logging
from pathlib import Path

from cinedex.core.artifacts import cached_stage
from cinedex.pipeline.asr import Transcript
from cinedex.pipeline.speakers import labelled_transcript
from cinedex.pipeline.characters import apply_roster, attach_speakers, name_voices, roster_of
from cinedex.pipeline.frames import FrameSampling, load_sampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.on_screen_text import attach_subtitles, load_texts
from cinedex.pipeline.people import Person, load_people, with_people
from cinedex.core.model import Event, write_events
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
PEOPLE_SHOWN_FILE = "people_shown.json"  # the film's people as events show them: name, face, appearances
# What the speech stage decoded and did not make into lines (not speech, another language), for the run report.
SPEECH_DROPPED_FILE = "speech_dropped.json"


def dialogue_events(video: IngestedVideo, transcript: Transcript, sampling: FrameSampling) -> list[Event]:
    """One dialogue event per utterance, tied to the shot its midpoint falls in."""
    shot_starts = [shot.start_s for shot in sampling.shots]
    events = []
    for utterance in transcript.utterances:
        shot = None
        if sampling.shots:
            middle = (utterance.start_s + utterance.end_s) / 2
            shot = sampling.shots[max(bisect.bisect_right(shot_starts, middle) - 1, 0)]
        events.append(Event(
            video_id=video.video_id,
            start_s=utterance.start_s,
            end_s=utterance.end_s,
            scene_type="dialogue",
            speaker=utterance.speaker,
            characters=[utterance.speaker] if utterance.speaker else [],
            content=utterance.text.strip(),
            shot_id=shot.shot_id if shot else None,
            thumbnail=shot.thumbnail if shot else "",
            source="asr",
            language=utterance.language or transcript.language,
        ))
    return events


def write_people_shown(path: Path, people: list[Person], shown: dict[str, str]) -> None:
    """The film's people as the events show them (`shown`: label -> name): what the page and the report list."""
    path.write_text(json.dumps(
        [{"label": p.label, "name": shown[p.label], "thumbnail": p.thumbnail, "appearances": p.appearances,
          "screen_time_s": round(p.screen_time_s, 3)} for p in people], indent=1, ensure_ascii=False))


def build_events(video: IngestedVideo, transcript_dir: Path, frames_dir: Path, settings: Settings,
                 vision_dir: Path | None = None, speakers_dir: Path | None = None,
                 texts_dir: Path | None = None, people_dir: Path | None = None) -> Path:
    """The cached events stage: dialogue events from the transcript and, when the vision stage ran, visual events
    from its answers, with one film-wide name per character (`roster.json`) and every voice's name (`speakers.json`:
    the character the visual events say speaks its lines, else "Speaker N") and the on-screen texts read (burned-in
    subtitles put on their line of dialogue, the rest as `ocr` events) and who is on screen during each (`people`,
    the people stage's people by the names the speakers and visual moments give them: `people_shown.json`), in
    `events.jsonl`; visual moments that cannot be placed go to `vision_quarantine.jsonl`, and what the speech stage
    dropped to `speech_dropped.json`."""
    def write(folder: Path) -> None:
        sampling = load_sampling(frames_dir)
        transcript = labelled_transcript(transcript_dir, speakers_dir)
        events = dialogue_events(video, transcript, sampling)
        texts = load_texts(texts_dir) if texts_dir else []
        if texts:  # burned-in subtitles go onto their line; other texts are events of their own
            events, texts = attach_subtitles(texts, events, retime=transcript.word_times == "whisper")
            events = sorted([*events, *texts], key=lambda e: (e.start_s, e.end_s, e.source))
        quarantined: list[dict] = []
        if vision_dir:
            from cinedex.pipeline.vision.moments import visual_events  # transformers and torch load only for vision work

            seen, quarantined = visual_events(video.video_id, Path(vision_dir), sampling.shots)
            events = sorted([*events, *seen], key=lambda e: (e.start_s, e.end_s, e.source))
        events, voices = attach_speakers(events)
        roster = roster_of(events)
        events = apply_roster(events, roster)
        events, voices = name_voices(events, {label: roster.get(name, name) for label, name in voices.items()})
        people = load_people(people_dir) if people_dir else []
        events, shown = with_people(events, people)
        write_events(events, folder / EVENTS_FILE)
        write_people_shown(folder / PEOPLE_SHOWN_FILE, people, shown)
        cast: dict[str, list[str]] = {}
        for spelling, name in sorted(roster.items()):
            cast.setdefault(name, []).append(spelling)
        (folder / "roster.json").write_text(json.dumps(cast, indent=1, ensure_ascii=False))
        (folder / "speakers.json").write_text(json.dumps(voices, indent=1, ensure_ascii=False))
        (folder / "vision_quarantine.jsonl").write_text("".join(json.dumps(q) + "\n" for q in quarantined))
        (folder / SPEECH_DROPPED_FILE).write_text(json.dumps({
            "seconds": transcript.dropped_seconds(), "advice": transcript.advice,
            "stretches": [d.model_dump() for d in transcript.dropped]}, indent=1, ensure_ascii=False))
        log.info("events: %d events for %s (%d dialogue, %d visual, %d on-screen texts; %d visual moments "
                 "quarantined; %d people)", len(events), video.name, sum(e.source == "asr" for e in events),
                 sum(e.source == "vision" for e in events), sum(e.source == "ocr" for e in events), len(quarantined),
                 len(people))

    return cached_stage("events", video.video_id, settings.artifacts_dir, write,
                        upstream=[transcript_dir, frames_dir, vision_dir, speakers_dir, texts_dir, people_dir])
