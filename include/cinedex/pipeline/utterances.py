"""Utterances: word times made to make sense, and words grouped into the lines a viewer would call one utterance.

Whisper's cross-attention times often give short words no duration at all ("Hello." after a silence starts and
ends on the same instant); 7% of a 2.5-hour film's lines were lost to that. Every word here gets at least the
time it takes to say it, placed where the audio has speech when a voice activity detector says where that is.
Lines are cut at sentence ends and real pauses; an over-long line is cut where its clauses or pauses are, near
its middle, never one word at a time; fragments of one or two words join a neighbour unless a long pause sets them
apart. A short whole sentence ("Hello?") stays a line: in pyannote's two-person call such sentences are turns of
different speakers, and joining them lost 3 of the 13 reference utterance boundaries (13 of 13 found otherwise).
"""

from __future__ import annotations

import bisect
import unicodedata

from pydantic import BaseModel, Field

# Cuts: a sentence end, or a silence between words longer than PAUSE_S; no utterance longer than MAX_UTTERANCE_S,
# so a hit's time range places a clause, not a paragraph. On pyannote's sample conversation (tests/test_asr.py)
# sentence ends alone find the reference utterances and no pause threshold from 0.4 to 1 s changes that: turns
# there follow each other within 0.5 s. The pause cut is a guard for unpunctuated speech, long enough not to split
# a sentence at an ordinary hesitation.
PAUSE_S = 0.7
MAX_UTTERANCE_S = 8.0
# A fragment (no sentence end) of fewer words than this joins the nearer neighbour, unless silence longer than
# LONG_PAUSE_S sets it apart on both sides.
MIN_WORDS = 3
LONG_PAUSE_S = 1.5
SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
CLAUSE_END = (",", ";", ":", "，", "；", "：", "、", "—")
CLOSING_MARKS = "\"'”’)]}»」』"
# Abbreviations whose full stop does not end a sentence.
TITLES = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs."}
# Shortest time a word can be said: fast speech is about 15 characters a second in alphabetic scripts and about
# 6 characters a second in Chinese and Japanese; no word is shorter than a syllable.
SECONDS_PER_LETTER = 1 / 15
SECONDS_PER_HAN = 1 / 6
MIN_WORD_S = 0.12
MAX_WORD_S = 1.5


class Word(BaseModel):
    start_s: float
    end_s: float
    text: str


class Utterance(BaseModel):
    start_s: float
    end_s: float
    text: str
    speaker: str = ""
    words: list[Word] = Field(default_factory=list)
    language: str = Field("", description="The stretch's language where a film is in several; else the film's.")


def spoken_length(text: str) -> float:
    """The least time `text` takes to say, in seconds."""
    letters = han = 0
    for character in text:
        if unicodedata.category(character).startswith(("L", "N")):
            if unicodedata.east_asian_width(character) in ("W", "F"):
                han += 1
            else:
                letters += 1
    return min(max(letters * SECONDS_PER_LETTER + han * SECONDS_PER_HAN, MIN_WORD_S), MAX_WORD_S)


def _next_onset(speech: list[tuple[float, float]], starts: list[float], at_s: float) -> float | None:
    """Where speech is at `at_s` or next begins after it; None when no speech follows."""
    index = bisect.bisect_right(starts, at_s) - 1
    if index >= 0 and speech[index][1] > at_s:
        return at_s
    return speech[index + 1][0] if index + 1 < len(speech) else None


def repaired_times(words: list[Word], end_limit_s: float,
                   speech: list[tuple[float, float]] | None = None) -> list[Word]:
    """`words` (in time order) with every word at least `spoken_length` long, none overlapping the one before,
    none ending after `end_limit_s`.

    A word shorter than it can be said grows forward into the silence after it; if it sits in a silence with speech
    starting before the next word, it moves to that speech first (`speech`: (start, end) regions in seconds, from
    a voice activity detector). Where there is no room forward it grows backward, and a run of words crowded onto
    one instant is spread out one after the other.
    """
    speech = sorted(speech or [])
    starts = [start for start, _ in speech]
    repaired: list[Word] = []
    for index, word in enumerate(words):
        earliest = repaired[-1].end_s if repaired else 0.0
        start, end = max(word.start_s, earliest), max(word.end_s, word.start_s)
        need = spoken_length(word.text)
        if end - start < need:
            following = words[index + 1].start_s if index + 1 < len(words) else end_limit_s
            if speech and end - start < MIN_WORD_S:
                onset = _next_onset(speech, starts, start)
                if onset is not None and onset < following:
                    start = onset
            end = min(max(start + need, end), end_limit_s)
            if end - start < need:
                start = max(earliest, end - need)
        if end - start < MIN_WORD_S / 2:  # words crowded against the film's end share its last instants
            start, end = min(start, end_limit_s - MIN_WORD_S), end_limit_s
        repaired.append(word.model_copy(update={"start_s": start, "end_s": end}))
    return repaired


def _ends_sentence(text: str) -> bool:
    text = text.strip().rstrip(CLOSING_MARKS)
    return text.endswith(SENTENCE_END) and text.lower() not in TITLES


def _ends_clause(text: str) -> bool:
    return text.strip().rstrip(CLOSING_MARKS).endswith(CLAUSE_END)


def _utterance(words: list[Word]) -> Utterance:
    # Words keep Whisper's own spacing until here, so languages written without spaces join correctly.
    return Utterance(start_s=words[0].start_s, end_s=words[-1].end_s, text="".join(w.text for w in words).strip(),
                     words=[w.model_copy(update={"text": w.text.strip()}) for w in words])


def _span(words: list[Word]) -> float:
    return words[-1].end_s - words[0].start_s


def _capped(words: list[Word], max_s: float) -> list[list[Word]]:
    """`words` cut until no piece is longer than `max_s`: each cut where a clause ends or the pause is longest,
    weighed against how near it is to the piece's middle, so equal pauses give halves, not a word peeled off."""
    if len(words) < 2 * MIN_WORDS or _span(words) <= max_s:
        return [words]
    gaps = [b.start_s - a.end_s for a, b in zip(words, words[1:])]
    longest = max(max(gaps), 1e-9)
    middle, half = (words[0].start_s + words[-1].end_s) / 2, _span(words) / 2

    def score(cut: int) -> float:
        at = (words[cut - 1].end_s + words[cut].start_s) / 2
        balance = 1 - abs(at - middle) / half
        return balance + max(gaps[cut - 1], 0.0) / longest + 0.5 * _ends_clause(words[cut - 1].text)

    cut = max(range(MIN_WORDS, len(words) - MIN_WORDS + 1), key=score)
    return _capped(words[:cut], max_s) + _capped(words[cut:], max_s)


def _joined_short(pieces: list[list[Word]], max_s: float) -> list[list[Word]]:
    """Fragments of fewer than MIN_WORDS words joined to the nearer neighbour within LONG_PAUSE_S."""
    pieces = [list(piece) for piece in pieces]
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        if len(piece) >= MIN_WORDS or len(pieces) == 1 or _ends_sentence(piece[-1].text):
            index += 1
            continue
        before = piece[0].start_s - pieces[index - 1][-1].end_s if index > 0 else None
        after = pieces[index + 1][0].start_s - piece[-1].end_s if index + 1 < len(pieces) else None
        choices = [(gap, side) for gap, side in ((before, -1), (after, 1))
                   if gap is not None and gap <= LONG_PAUSE_S
                   and _span(pieces[index + min(side, 0)][:1] + pieces[index + max(side, 0)][-1:]) <= max_s]
        if not choices:
            index += 1
            continue
        _, side = min(choices)
        if side < 0:
            pieces[index - 1].extend(piece)
            del pieces[index]
            index -= 1  # the joined piece may still be short
        else:
            pieces[index + 1][:0] = piece
            del pieces[index]
    return pieces


def split_utterances(words: list[Word], pause_s: float = PAUSE_S, max_s: float = MAX_UTTERANCE_S) -> list[Utterance]:
    """Cut time-ordered words into utterances at sentence ends and at pauses longer than `pause_s`; a piece still
    longer than `max_s` is cut near its middle at a clause end or pause; fragments of one or two words join a
    neighbour unless a long pause sets them apart."""
    pieces, current = [], []
    for word in words:
        if current and word.start_s - current[-1].end_s > pause_s:
            pieces.append(current)
            current = []
        current.append(word)
        if _ends_sentence(word.text):
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    capped = [part for piece in pieces for part in _capped(piece, max_s)]
    return [_utterance(piece) for piece in _joined_short(capped, max_s)]


class _Turns:
    """Speaker turns sorted by start, for the seconds each speaker talks within a span."""

    def __init__(self, turns: list[tuple[float, float, str]]):
        self.turns = sorted(turns)
        self.starts = [t[0] for t in self.turns]
        self.longest = max((end - start for start, end, _ in self.turns), default=0.0)

    def talk(self, start_s: float, end_s: float) -> dict[str, float]:
        overlap: dict[str, float] = {}
        first = bisect.bisect_left(self.starts, start_s - self.longest)
        for start, end, speaker in self.turns[first:bisect.bisect_right(self.starts, end_s)]:
            shared = min(end, end_s) - max(start, start_s)
            if shared > 0:
                overlap[speaker] = overlap.get(speaker, 0.0) + shared
        return overlap

    def speaker(self, start_s: float, end_s: float) -> str:
        overlap = self.talk(start_s, end_s)
        return max(overlap, key=overlap.get) if overlap else ""


# An utterance is split where its words change speaker only when each side is at least this long: a shorter run
# is more likely a turn edge a little off than a line of its own.
MIN_SPLIT_S = 0.6


def _speaker_runs(words: list[Word], turns: _Turns) -> list[list[Word]]:
    """`words` in runs of one speaker each (by who talks most of each word), runs under MIN_SPLIT_S merged into
    their neighbour."""
    labels = [turns.speaker(w.start_s, w.end_s) for w in words]
    for i in range(1, len(labels)):  # a word nobody is heard in goes with the word before it...
        labels[i] = labels[i] or labels[i - 1]
    for i in range(len(labels) - 2, -1, -1):  # ...or, at the start, with the word after it
        labels[i] = labels[i] or labels[i + 1]
    runs: list[list[Word]] = []
    for word, label, previous in zip(words, labels, [None, *labels]):
        if runs and label == previous:
            runs[-1].append(word)
        else:
            runs.append([word])
    while len(runs) > 1:
        short = min(range(len(runs)), key=lambda i: _span(runs[i]))
        if _span(runs[short]) >= MIN_SPLIT_S:
            break
        into = short - 1 if short else 1
        runs[min(short, into)] = runs[min(short, into)] + runs[max(short, into)]
        del runs[max(short, into)]
    return runs


def assign_speakers(utterances: list[Utterance], turns: list[tuple[float, float, str]]) -> list[Utterance]:
    """Each utterance gets the speaker who talks most of its span ("" where nobody does); one whose words change
    speaker is split where they change."""
    indexed = _Turns(turns)
    labelled = []
    for utterance in utterances:
        runs = _speaker_runs(utterance.words, indexed) if len(utterance.words) > 1 else []
        if len(runs) < 2:
            speaker = indexed.speaker(utterance.start_s, utterance.end_s)
            labelled.append(utterance.model_copy(update={"speaker": speaker}))
            continue
        separator = " " if " " in utterance.text else ""  # words were stripped; languages without spaces join bare
        for run in runs:
            labelled.append(Utterance(start_s=run[0].start_s, end_s=run[-1].end_s, words=run,
                                      text=separator.join(w.text for w in run),
                                      speaker=indexed.speaker(run[0].start_s, run[-1].end_s)))
    return labelled
