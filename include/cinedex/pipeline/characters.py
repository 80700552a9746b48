"""Characters: one film-wide name per character, and voices attached to the characters the visual events name.

Windows are described one at a time, so one person may be "Cobb" in one window, "cobb" or "Mr. Cobb" in the
next and "Dom Cobb" in a third. The roster makes them one name film-wide. Diarization labels its voices
SPEAKER_00, SPEAKER_01, ...; where the vision model, shown those lines, names who speaks them, a label becomes that
character, and a voice nobody named is shown as "Speaker 1", "Speaker 2", ... (in the order first heard): raw
labels stay inside the pipeline, never on the page, in the index or in the exports.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from cinedex.core.model import Event

_TITLES = re.compile(r"^(mr|mrs|ms|miss|dr|prof|sir|madam|lady|lord|captain|capt|detective|officer)\.?\s+", re.I)


def _key(name: str) -> str:
    return _TITLES.sub("", " ".join(name.split())).casefold()


def build_roster(names: Iterable[str]) -> dict[str, str]:
    """Each spelling seen -> the film-wide name: spellings equal but for case, spacing and a title are one person,
    written as they were written most often; a lone first or last name joins the one full name that contains it,
    when exactly one does."""
    names = [n for n in names if n and n.strip()]
    seen = Counter(" ".join(n.split()) for n in names)
    by_key: dict[str, Counter] = {}
    for spelling, count in seen.items():
        by_key.setdefault(_key(spelling), Counter())[spelling] += count
    canonical = {key: max(spellings, key=lambda s: (spellings[s], len(s), s)) for key, spellings in by_key.items()}
    full_names = [key for key in canonical if " " in key]
    for key in [k for k in canonical if " " not in k]:
        containing = [full for full in full_names if key in full.split()]
        if len(containing) == 1:
            canonical[key] = canonical[containing[0]]
    return {name: canonical[_key(name)] for name in names}


def apply_roster(events: list[Event], roster: dict[str, str]) -> list[Event]:
    """The events with their characters and speakers renamed to the roster's names (duplicates dropped)."""
    renamed = []
    for event in events:
        characters = list(dict.fromkeys(roster.get(c, c) for c in event.characters if c.strip()))
        speaker = roster.get(event.speaker, event.speaker)
        renamed.append(event.model_copy(update={"characters": characters, "speaker": speaker}))
    return renamed


def roster_of(events: list[Event]) -> dict[str, str]:
    """The roster of the characters and speakers the events name (diarization labels are voices, not names)."""
    names = [*(c for e in events for c in e.characters), *(e.speaker for e in events)]
    return build_roster(n for n in names if not DIARIZATION_LABEL.match(n))


# --- speakers ----------------------------------------------------------------------------------------------------

DIARIZATION_LABEL = re.compile(r"^SPEAKER_\d+$")
MIN_SPEAKER_VOTES = 2  # utterances naming the same character before a voice label is trusted to be them
MIN_SPEAKER_SHARE = 2 / 3  # of the label's named utterances


def _overlap(a: Event, b: Event) -> float:
    return max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))


def _named_speakers(utterance: Event, visual: Sequence[Event]) -> set[str]:
    """Characters the vision model says speak during most of the utterance."""
    length = max(utterance.end_s - utterance.start_s, 1e-3)
    return {v.speaker.strip() for v in visual
            if v.speaker.strip() and not DIARIZATION_LABEL.match(v.speaker.strip())
            and _overlap(utterance, v) >= length / 2}


VOICE_NAME = re.compile(r"^Speaker \d+$")  # what `voice_name` shows for a voice nobody named


def voice_name(label: str) -> str:
    """How a voice nobody named is shown: SPEAKER_00 -> "Speaker 1"; any other speaker as it is."""
    return f"Speaker {int(label.rsplit('_', 1)[1]) + 1}" if DIARIZATION_LABEL.match(label) else label


def name_voices(events: list[Event], named: dict[str, str]) -> tuple[list[Event], dict[str, str]]:
    """The events with every diarization label left (a voice no one named) shown as `voice_name` of it, and no
    label among the characters (a voice is not a character until it has a name). Returns the events and every
    label -> the name shown for it, those in `named` (label -> character) included."""
    shown = dict(named)
    renamed = []
    for event in events:
        label = event.speaker if DIARIZATION_LABEL.match(event.speaker) else ""
        if label or any(DIARIZATION_LABEL.match(c) for c in event.characters):
            if label:
                shown.setdefault(label, voice_name(label))
            event = event.model_copy(update={
                "speaker": shown[label] if label else event.speaker,
                "characters": [c for c in event.characters if not DIARIZATION_LABEL.match(c)]})
        renamed.append(event)
    return renamed, dict(sorted(shown.items()))


def attach_speakers(events: list[Event]) -> tuple[list[Event], dict[str, str]]:
    """Dialogue events with their speaker set to a character where the visual events allow: a diarization label
    becomes the character that at least MIN_SPEAKER_VOTES of its utterances, and MIN_SPEAKER_SHARE of those the
    model named, are given to; an unlabelled utterance takes the one character named over it, if exactly one.
    Returns the events and the label -> character map."""
    visual = [e for e in events if e.source == "vision"]
    if not visual:
        return events, {}
    votes: dict[str, Counter] = defaultdict(Counter)
    named: dict[str, set[str]] = {}
    for event in events:
        if event.source != "asr":
            continue
        named[event.id] = names = _named_speakers(event, visual)
        if event.speaker and len(names) == 1:
            votes[event.speaker][next(iter(names))] += 1
    labels = {}
    for label, counter in votes.items():
        name, count = counter.most_common(1)[0]
        if count >= MIN_SPEAKER_VOTES and count >= MIN_SPEAKER_SHARE * sum(counter.values()):
            labels[label] = name
    attached = []
    for event in events:
        name = labels.get(event.speaker) if event.speaker else None
        if event.source == "asr" and not event.speaker and len(named.get(event.id, ())) == 1:
            name = next(iter(named[event.id]))
        if name:
            characters = list(dict.fromkeys([name, *(c for c in event.characters if c != event.speaker)]))
            event = event.model_copy(update={"speaker": name, "characters": characters})
        attached.append(event)
    return attached, labels

