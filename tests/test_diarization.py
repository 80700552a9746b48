"""Speaker turns without a token: the local diarization engine on pyannote's sample call (reference sample.rttm) and
on recordings of three and four voices whose turns are known by construction (tests/voices.py), scored with
pyannote.metrics' diarization error rate; and how its turns label the utterances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cinedex.core.settings import Settings
from cinedex.pipeline import asr, speakers
from cinedex.pipeline.diarization import diarize
from cinedex.pipeline.utterances import Utterance, Word, assign_speakers
from cinedex.sample import conversation

from voices import COLLAR_025, build_recording, der, sample_call_reference


def _der(reference, found, collar: float) -> float:
    return der(reference, [(t.start_s, t.end_s, t.speaker) for t in found.turns], collar)


@pytest.mark.slow
def test_two_real_voices_of_the_sample_call():
    found = diarize(conversation()[0])
    assert found.speakers == ["SPEAKER_00", "SPEAKER_01"]
    # Issue 15's goals are 12 % without a collar and 8 % with one; 0.197 and 0.058 are what the engine reaches.
    assert _der(sample_call_reference(), found, COLLAR_025) <= 0.08
    assert _der(sample_call_reference(), found, 0.0) <= 0.21
    assert all(np.isclose(np.linalg.norm(v), 1) and v.shape == (256,) for v in found.centroids.values())


@pytest.mark.slow
def test_three_voices_counted_and_followed(tmp_path):
    reference = build_recording(tmp_path / "three.wav", ["Alex", "Bea", "Cal"], 30, seed=1)
    found = diarize(tmp_path / "three.wav")
    assert len(found.speakers) == 3
    assert _der(reference, found, 0.0) <= 0.20
    assert all(found.speech_s[s] > 10 for s in found.speakers)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 15 open: 3 voices found of 4 (the two real voices set apart from the "
                   "two synthetic ones dominate the affinity's spectrum); DER 29.7 %")
def test_four_voices_counted(tmp_path):
    reference = build_recording(tmp_path / "four.wav", ["Diane", "Sheila", "Bea", "Cal"], 40, seed=2)
    found = diarize(tmp_path / "four.wav")
    assert len(found.speakers) == 4 and _der(reference, found, 0.0) <= 0.20


@pytest.mark.slow
def test_max_speakers_bounds_the_count(tmp_path):
    build_recording(tmp_path / "three.wav", ["Alex", "Bea", "Cal"], 30, seed=1)
    assert len(diarize(tmp_path / "three.wav", max_speakers=2).speakers) <= 2


def _words(*spans: tuple[float, float, str]) -> list[Word]:
    return [Word(start_s=a, end_s=b, text=t) for a, b, t in spans]


def test_an_utterance_across_a_change_of_speaker_is_split_there():
    words = _words((0.0, 0.4, "Where"), (0.4, 0.8, "were"), (0.8, 1.2, "you?"), (1.5, 1.9, "At"), (1.9, 2.4, "home."))
    utterance = Utterance(start_s=0.0, end_s=2.4, text="Where were you? At home.", words=words)
    turns = [(0.0, 1.3, "SPEAKER_00"), (1.4, 2.5, "SPEAKER_01")]
    first, second = assign_speakers([utterance], turns)
    assert (first.text, first.speaker, first.end_s) == ("Where were you?", "SPEAKER_00", 1.2)
    assert (second.text, second.speaker, second.start_s) == ("At home.", "SPEAKER_01", 1.5)


def test_a_turn_edge_a_word_off_does_not_split_and_the_majority_speaks():
    words = _words((0.0, 0.5, "I"), (0.5, 1.0, "told"), (1.0, 1.5, "you"), (1.5, 1.8, "so."))
    utterance = Utterance(start_s=0.0, end_s=1.8, text="I told you so.", words=words)
    [labelled] = assign_speakers([utterance], [(0.0, 1.55, "SPEAKER_01"), (1.55, 2.0, "SPEAKER_00")])
    assert (labelled.text, labelled.speaker) == ("I told you so.", "SPEAKER_01")
    [unheard] = assign_speakers([utterance], [(5.0, 6.0, "SPEAKER_00")])
    assert unheard.speaker == ""


def test_which_engine_labels_the_speakers(tmp_path):
    assert speakers.diarization_engine(Settings(hf_token="")) == ""  # auto, no token: none until local meets its goals
    assert speakers.diarization_engine(Settings(hf_token="hf_x")) == "pyannote"
    assert speakers.diarization_engine(Settings(diarization="local")) == "local"
    assert speakers.diarization_engine(Settings(diarization="off", hf_token="hf_x")) == ""
    assert speakers.diarization_engine(Settings(diarization="pyannote", hf_token="")) == ""
    assert speakers.diarization_engine(Settings(diarization="pyannote", diarization_model=str(tmp_path))) == "pyannote"
    run = Settings().for_run({"diarization": "local", "max_speakers": 3})
    assert (run.diarization, run.max_speakers) == ("local", 3)


@pytest.mark.slow
def test_the_speakers_stage_labels_the_lines_locally_and_keeps_their_voices(tmp_path, conversation_wav, conversation_stm):
    from cinedex.pipeline import audio, ingest
    from cinedex.sample import read_stm

    settings = Settings(home=tmp_path / "home", media_roots=str(conversation_wav.parent), diarization="local")
    video = ingest.ingest(conversation_wav, settings)
    wav = audio.extract_audio(video, settings)
    folder = speakers.diarize_video(video, wav, settings)
    transcript = speakers.labelled_transcript(asr.transcribe_video(video, wav, settings), folder)
    assert transcript.speaker_note == "speakers from the local diarization (2 voices)"
    voices = json.loads((folder / speakers.VOICES_FILE).read_text())
    assert sorted(voices) == ["SPEAKER_00", "SPEAKER_01"] and all(len(v) == 256 for v in voices.values())
    # The labels are arbitrary: score them under the best mapping onto the reference's two callers.
    reference = read_stm(conversation_stm)

    def true_speaker(u: Utterance) -> str:
        return max(reference, key=lambda r: min(r.end_s, u.end_s) - max(r.start_s, u.start_s)).speaker

    pairs = [(u.speaker, true_speaker(u)) for u in transcript.utterances]
    callers = sorted({truth for _, truth in pairs})
    right = max(sum((found == "SPEAKER_00") == (truth == first) for found, truth in pairs) for first in callers)
    assert right / len(pairs) >= 0.8, pairs
