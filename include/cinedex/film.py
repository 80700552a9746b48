"""The film-level pass: what no single window can know, settled over the whole film.

Windows are described one at a time, so one person may be "Cobb" in one window, "cobb" or "Mr. Cobb" in the
next and "Dom Cobb" in a third. The roster makes them one name film-wide.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from cinedex.model import Event

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
    return build_roster([*(c for e in events for c in e.characters), *(e.speaker for e in events)])
