"""Audio extraction and speech recognition on real media: the bundled Whisper model on pyannote's sample call,
scored against its timed reference transcript."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import jiwer
import pytest

from cinedex.pipeline import asr, audio, ingest
from cinedex.pipeline.asr import Transcript, Utterance
from cinedex.pipeline.utterances import assign_speakers
from cinedex.core.mediatime import MediaTime
from cinedex.sample import read_stm
from cinedex.core.settings import Settings

MAX_WER = 0.25
BOUNDARY_TOLERANCE_S = 1.0
MIN_BOUNDARY_HIT_RATE = 0.8
# sample.rttm's labels for the speakers named in sample.stm (same turns, matched by their times).
RTTM_SPEAKERS = {"speaker90": "Diane", "speaker91": "Sheila"}


def _streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries",
                          "stream=codec_type,codec_name,sample_rate,channels", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"]


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def conversation_run(tmp_path_factory, conversation_wav) -> tuple[Settings, ingest.IngestedVideo, Path]:
    """The whole speech path once: ingest the call, extract its audio, transcribe it (the asr stage's folder)."""
    settings = Settings(home=tmp_path_factory.mktemp("asr") / "home", media_roots=str(conversation_wav.parent))
    video = ingest.ingest(conversation_wav, settings)
    return settings, video, asr.transcribe_video(video, audio.extract_audio(video, settings), settings)


@pytest.fixture(scope="module")
def transcript(conversation_run) -> Transcript:
    return asr.load_transcript(conversation_run[2])


# --- audio extraction -------------------------------------------------------------------------------------------

def test_audio_is_16k_mono_pcm_and_cached(settings, clip_with_audio):
    video = ingest.ingest(clip_with_audio, settings)
    wav = audio.extract_audio(video, settings)
    assert _streams(wav) == [{"codec_name": "pcm_s16le", "codec_type": "audio", "sample_rate": "16000", "channels": 1}]
    with wave.open(str(wav)) as pcm:
        assert (pcm.getframerate(), pcm.getnchannels(), pcm.getsampwidth()) == (16_000, 1, 2)
        assert pcm.getnframes() / 16_000 == pytest.approx(video.info.duration_s, abs=0.1)
    assert audio.extract_audio(video, settings) == wav


def test_video_without_audio_has_no_audio_and_an_empty_transcript(settings, clip_without_audio):
    assert [s["codec_type"] for s in _streams(clip_without_audio)] == ["video"]
    video = ingest.ingest(clip_without_audio, settings)
    assert audio.extract_audio(video, settings) is None
    folder = asr.transcribe_video(video, None, settings)
    assert asr.load_transcript(folder).utterances == []
    assert (folder / asr.SRT_FILE).read_text() == "" and (folder / asr.VTT_FILE).read_text().startswith("WEBVTT")


@pytest.mark.parametrize("name", ["with space.mp4", "quote's \"double\".mp4", "$(touch pwned).mp4", "电影 été.mp4"])
def test_awkward_file_names_reach_ffmpeg_verbatim(settings, tmp_path, clip_with_audio, name):
    copy = tmp_path / name
    shutil.copyfile(clip_with_audio, copy)
    assert audio.extract_audio(ingest.ingest(copy, settings), settings).is_file()
    assert not (tmp_path / "pwned").exists()


def test_ffmpeg_failure_names_the_file_and_ffmpegs_reason(settings, tmp_path, clip_with_audio):
    video = ingest.ingest(clip_with_audio, settings)
    garbage = tmp_path / "overwritten.mp4"
    garbage.write_bytes(b"not a video any more" * 100)
    broken = video.model_copy(update={"path": str(garbage), "name": garbage.name, "video_id": "0" * 64})
    with pytest.raises(audio.AudioExtractionError, match=r"overwritten\.mp4: .*Invalid data found"):
        audio.extract_audio(broken, settings)


# --- speech recognition on the real conversation ----------------------------------------------------------------

@pytest.mark.slow
def test_word_error_rate_against_the_reference(transcript, conversation_stm):
    reference = _normalised(" ".join(u.text for u in read_stm(conversation_stm)))
    hypothesis = _normalised(" ".join(u.text for u in transcript.utterances))
    wer = jiwer.wer(reference, hypothesis)
    print(f"WER {wer:.3f}")
    assert wer <= MAX_WER, f"WER {wer:.3f}: {hypothesis!r}"
    assert transcript.language == "en"


@pytest.mark.slow
def test_utterance_boundaries_match_the_reference(transcript, conversation_stm):
    reference = read_stm(conversation_stm)
    hits = [r for r in reference if any(abs(u.start_s - r.start_s) <= BOUNDARY_TOLERANCE_S
                                        and abs(u.end_s - r.end_s) <= BOUNDARY_TOLERANCE_S
                                        for u in transcript.utterances)]
    rate = len(hits) / len(reference)
    print(f"boundary hit rate {rate:.3f} ({len(hits)}/{len(reference)})")
    assert rate >= MIN_BOUNDARY_HIT_RATE, [(u.start_s, u.end_s, u.text) for u in transcript.utterances]


@pytest.mark.slow
def test_utterances_are_ordered_and_built_from_their_words(transcript):
    assert transcript.utterances
    for u in transcript.utterances:
        assert u.words and u.start_s == u.words[0].start_s and u.end_s == u.words[-1].end_s >= u.start_s
        assert u.text == " ".join(w.text for w in u.words)
    starts = [u.start_s for u in transcript.utterances]
    assert starts == sorted(starts)


@pytest.mark.slow
def test_stage_writes_parseable_subtitles_and_is_cached(conversation_run, transcript):
    settings, video, folder = conversation_run
    for name, separator, header in ((asr.SRT_FILE, ",", None), (asr.VTT_FILE, ".", "WEBVTT")):
        blocks = (folder / name).read_text(encoding="utf-8").strip().split("\n\n")
        if header:
            assert blocks.pop(0) == header
        assert len(blocks) == len(transcript.utterances)
        for number, (block, utterance) in enumerate(zip(blocks, transcript.utterances), 1):
            lines = block.split("\n")
            if separator == ",":
                assert lines.pop(0) == str(number)
            start, arrow, end = lines[0].split(" ")
            timecode = rf"\d\d:\d\d:\d\d{re.escape(separator)}\d{{3}}"
            assert arrow == "-->" and re.fullmatch(timecode, start) and re.fullmatch(timecode, end)
            assert MediaTime.parse(start).ms == MediaTime(utterance.start_s).ms
            assert MediaTime.parse(end).ms == MediaTime(utterance.end_s).ms
            assert lines[1:] == [utterance.text]
    # Who speaks is the speakers stage's, run beside this one: the transcript itself carries no labels.
    assert transcript.speaker_note == "" and all(u.speaker == "" for u in transcript.utterances)
    assert asr.transcribe_video(video, audio.extract_audio(video, settings), settings) == folder


@pytest.mark.slow
def test_silence_gives_an_empty_transcript(tmp_path):
    silence = tmp_path / "silence.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "5", str(silence)],
                   check=True)
    assert asr.transcribe(silence, Settings(home=tmp_path / "home")).utterances == []


@pytest.mark.slow
def test_speaker_turns_label_the_utterances(transcript, conversation_wav, conversation_stm):
    rttm = conversation_wav.with_suffix(".rttm").read_text().splitlines()
    turns = [(float(f[3]), float(f[3]) + float(f[4]), RTTM_SPEAKERS[f[7]]) for f in map(str.split, rttm)]
    labelled = assign_speakers(transcript.utterances, turns)
    reference = read_stm(conversation_stm)

    def true_speaker(u: Utterance) -> str:
        return max(reference, key=lambda r: min(r.end_s, u.end_s) - max(r.start_s, u.start_s)).speaker

    right = sum(u.speaker == true_speaker(u) for u in labelled)
    assert right / len(labelled) >= 0.8, [(u.text, u.speaker) for u in labelled]


# --- subtitle text ---------------------------------------------------------------------------------------------

def test_subtitles_escape_markup_and_name_speakers():
    transcript = Transcript(language="en", model="m", utterances=[
        Utterance(start_s=3661.5, end_s=3662.25, text="a <b> & c\n\nd", speaker="Ann")])
    assert asr.to_srt(transcript) == "1\n01:01:01,500 --> 01:01:02,250\nAnn: a <b> & c d\n"
    assert asr.to_vtt(transcript) == "WEBVTT\n\n01:01:01.500 --> 01:01:02.250\n<v Ann>a &lt;b&gt; &amp; c d\n"
    # A voice nobody named is shown as "Speaker N", never by its raw label.
    unnamed = Transcript(language="en", model="m", utterances=[Utterance(start_s=0, end_s=1, text="hi",
                                                                          speaker="SPEAKER_01")])
    assert asr.to_srt(unnamed).endswith("Speaker 2: hi\n") and "<v Speaker 2>hi" in asr.to_vtt(unnamed)
