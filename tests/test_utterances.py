"""Word times that make sense and lines cut where a viewer would cut them: the failures measured on real films, one
test each (the same functions run on real speech in tests/test_asr.py and tests/test_speech_checks.py)."""

from __future__ import annotations

import pytest

from cinedex.pipeline.utterances import (LONG_PAUSE_S, MAX_UTTERANCE_S, MIN_WORDS, Word, repaired_times,
                                         spoken_length, split_utterances)


def _words(*timed: tuple[float, float, str]) -> list[Word]:
    return [Word(start_s=s, end_s=e, text=" " + t) for s, e, t in timed]


def _texts(words: list[Word]) -> list[str]:
    return [u.text for u in split_utterances(words)]


def test_cuts_at_sentence_ends_and_pauses_but_not_after_titles():
    words = _words((0.0, 0.4, "Ask"), (0.5, 0.8, "Mr."), (0.9, 1.3, "Smith."), (1.4, 1.8, "He"),
                   (1.9, 2.2, "really"), (2.3, 2.6, "knows"), (3.5, 3.9, "what"), (4.0, 4.2, "to"), (4.3, 4.6, "do"))
    assert _texts(words) == ["Ask Mr. Smith.", "He really knows", "what to do"]


def test_a_short_sentence_stays_a_line_of_its_own():
    words = _words((0.0, 0.4, "Hello?"), (0.6, 1.0, "Hello."), (1.0, 1.3, "Oh,"), (1.4, 1.7, "hello."), (1.8, 2.0, "I"),
                   (2.1, 2.4, "didn't"), (2.5, 2.8, "know"), (2.9, 3.1, "you"), (3.2, 3.5, "were"),
                   (3.6, 4.0, "there."))
    assert _texts(words) == ["Hello?", "Hello.", "Oh, hello.", "I didn't know you were there."]


def test_a_short_fragment_joins_its_nearer_neighbour():
    # A pause of 0.8 s cuts "We went" off; alone it says nothing, so it joins the line it belongs to.
    words = _words((0.0, 0.3, "We"), (0.4, 0.7, "went"), (1.5, 1.8, "home"), (1.9, 2.1, "and"), (2.2, 2.6, "slept."),
                   (2.8, 3.0, "Then"), (3.1, 3.4, "morning"), (3.5, 3.8, "came."))
    assert _texts(words) == ["We went home and slept.", "Then morning came."]


def test_a_short_fragment_set_apart_by_long_pauses_stands_alone():
    gap = LONG_PAUSE_S + 0.5
    words = _words((0.0, 0.3, "We"), (0.4, 0.7, "wait"), (0.8, 1.2, "here."), (1.2 + gap, 1.6 + gap, "fire"),
                   (1.6 + 2 * gap, 2.0 + 2 * gap, "Run"), (2.1 + 2 * gap, 2.4 + 2 * gap, "for"),
                   (2.5 + 2 * gap, 2.9 + 2 * gap, "it."))
    assert _texts(words) == ["We wait here.", "fire", "Run for it."]


def test_equal_gaps_cut_a_long_line_in_even_parts_not_word_by_word():
    # 40 evenly spaced words over 20 s, no punctuation: the measured splitter made 17 lines, 16 of one word.
    words = _words(*[(i * 0.5, i * 0.5 + 0.3, "la") for i in range(40)])
    utterances = split_utterances(words)
    assert [len(u.words) for u in utterances] == [10, 10, 10, 10]
    assert all(u.end_s - u.start_s <= MAX_UTTERANCE_S for u in utterances)


def test_a_long_line_is_cut_at_its_longest_silence_and_clause_ends():
    # 24 words over 12 s; one pause of 0.45 s after word 8 and a comma after word 16.
    timed = []
    for i in range(24):
        start = i * 0.5 + (0.45 if i >= 8 else 0.0)
        timed.append((start, start + 0.4, "word," if i == 15 else "word"))
    parts = [len(u.words) for u in split_utterances(_words(*timed))]
    assert parts in ([8, 16], [8, 8, 8]) and all(n >= MIN_WORDS for n in parts)


def test_zero_length_words_get_the_time_they_take_to_say():
    words = _words((1.0, 1.0, "Hello."), (3.0, 3.0, "I"), (3.0, 3.0, "need"), (3.0, 3.3, "to"), (3.4, 3.9, "go."))
    repaired = repaired_times(words, end_limit_s=10.0)
    assert all(w.end_s - w.start_s >= spoken_length(w.text) - 1e-9 for w in repaired)
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(repaired, repaired[1:]))
    assert repaired[0].start_s == 1.0 and repaired[-1].end_s == pytest.approx(3.9 + 0.25, abs=0.3)
    assert [w.text for w in repaired] == [w.text for w in words]


def test_a_word_placed_in_a_silence_moves_to_the_speech_after_it():
    # Whisper put "Hello." on the instant 5.0, in the middle of a silence; the voice starts at 6.2.
    words = _words((5.0, 5.0, "Hello."), (7.0, 7.4, "Anyone"), (7.5, 7.9, "here?"))
    repaired = repaired_times(words, end_limit_s=10.0, speech=[(0.5, 2.0), (6.2, 8.0)])
    assert repaired[0].start_s == pytest.approx(6.2)
    assert repaired[0].end_s == pytest.approx(6.2 + spoken_length("Hello."))


def test_words_crowded_at_the_end_of_the_film_stay_inside_it():
    words = _words((9.9, 9.9, "the"), (9.95, 9.95, "end"), (10.0, 10.0, "."))
    repaired = repaired_times(words, end_limit_s=10.0)
    assert all(0.0 <= w.start_s < w.end_s <= 10.0 for w in repaired)


def test_no_dialogue_line_is_zero_length():
    words = _words(*[(2.0, 2.0, w) for w in ("Hey.", "You.", "Stop.")])
    utterances = split_utterances(repaired_times(words, end_limit_s=5.0))
    assert utterances and all(u.end_s > u.start_s for u in utterances)
    assert " ".join(u.text for u in utterances) == "Hey. You. Stop."


def test_spoken_length_counts_letters_and_han_characters():
    assert spoken_length(" I") == pytest.approx(0.12)
    assert spoken_length("originally") == pytest.approx(10 / 15)
    assert spoken_length("你好吗") == pytest.approx(0.5)
    assert spoken_length("...") == pytest.approx(0.12)
