"""Speech: WhisperX's voice activity detection and batched Whisper decoding, word times, utterances, subtitles.

WhisperX's pyannote VAD finds the speech and groups it into chunks of at most 30 s (Whisper's window). The
chunks are decoded in batches by faster-whisper on the model WhisperX loaded, with word times from Whisper's
cross-attention in the same pass, so the encoder runs once per chunk. A wav2vec2 alignment model refines the word
times when one is configured or already on disk (who speaks is the speakers stage's, `speakers.py`). Segments that are not speech, or
not in the model's language, are dropped with their reason (`speech_checks`); the rest give words whose times are
repaired and cut into utterances (`utterances`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from typing import Literal

from pydantic import BaseModel, Field

from cinedex.core.artifacts import cached_stage
from cinedex.core.mediatime import MediaTime
from cinedex.core.progress import Progress
from cinedex.core.settings import Settings, bundled_asr_model
from cinedex.pipeline.characters import voice_name
from cinedex.pipeline import speech_checks
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.speech_checks import DroppedSpeech
from cinedex.pipeline.utterances import Utterance, Word, repaired_times, split_utterances

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
TRANSCRIPT_FILE, SRT_FILE, VTT_FILE = "transcript.json", "transcript.srt", "transcript.vtt"

# WhisperX's VAD defaults; chunks as long as Whisper's window, so each costs one encoder pass.
VAD_ONSET, VAD_OFFSET, VAD_CHUNK_S = 0.500, 0.363, 30
# pyannote slides its 5 s window by 0.5 s by default, reading every sample ten times; reading it once finds the
# same chunks in pyannote's sample conversation (edges within 0.1 s) for a tenth of the work, which matters
# because the VAD runs on the CPU whenever there is no GPU.
VAD_STEP_S = 5.0

class Transcript(BaseModel):
    language: str
    model: str
    utterances: list[Utterance] = Field(default_factory=list)
    speaker_note: str = Field("", description="Where the speaker labels come from, or why there are none (set "
                              "where the speakers stage's turns label the utterances).")
    dropped: list[DroppedSpeech] = Field(default_factory=list, description="Decoded text not made into utterances.")
    advice: str = Field("", description="What to change when speech was dropped for its language.")
    word_times: Literal["aligned", "whisper"] = Field(
        "whisper", description="Where the word times come from: a wav2vec2 alignment model (to a tenth of a second), "
        "or Whisper's cross-attention alone (a second or more off, in languages without an alignment model).")

    def dropped_seconds(self) -> dict[str, float]:
        return speech_checks.seconds_by_reason(self.dropped)


# --- models, loaded once per process ----------------------------------------------------------------------------

def resolved_device(settings: Settings) -> str:
    if settings.asr_device != "auto":
        return settings.asr_device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolved_compute_type(settings: Settings, device: str) -> str:
    return settings.asr_compute_type or ("float16" if device.startswith("cuda") else "int8")


@functools.cache
def load_speech_model(model: str, device: str, compute_type: str):
    """WhisperX's pipeline (Whisper model plus pyannote VAD); the language is chosen per call, not here."""
    import whisperx

    started = time.perf_counter()
    pipeline = whisperx.load_model(model, device, compute_type=compute_type, vad_method="pyannote",
                                   vad_options={"vad_onset": VAD_ONSET, "vad_offset": VAD_OFFSET},
                                   threads=os.cpu_count() or 4)
    pipeline.vad_model.vad_pipeline._segmentation.step = VAD_STEP_S
    log.info("asr: loaded %s on %s (%s) in %.1f s", model, device, compute_type, time.perf_counter() - started)
    return pipeline


@functools.cache
def load_alignment_model(name: str, language: str, device: str):
    import whisperx

    return whisperx.load_align_model(language, device, model_name=name)


def alignment_model(settings: Settings, language: str) -> str:
    """The configured wav2vec2 model, else WhisperX's default for `language` when it is already on this machine
    (never downloaded mid-run); "" for none."""
    if settings.asr_align_model:
        return settings.asr_align_model
    import nltk
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    try:  # WhisperX's alignment splits sentences with NLTK's punkt_tab and would download it if missing.
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        return ""
    if language in DEFAULT_ALIGN_MODELS_TORCH:
        import torch
        import torchaudio

        name = DEFAULT_ALIGN_MODELS_TORCH[language]
        # torchaudio keeps its downloads under torch hub's checkpoints, named after the URL's file.
        weights = Path(torch.hub.get_dir(), "checkpoints", Path(getattr(torchaudio.pipelines, name)._path).name)
        return name if weights.is_file() else ""
    if language in DEFAULT_ALIGN_MODELS_HF:
        from huggingface_hub import try_to_load_from_cache

        name = DEFAULT_ALIGN_MODELS_HF[language]
        return name if isinstance(try_to_load_from_cache(name, "config.json"), str) else ""
    return ""


# --- transcription ----------------------------------------------------------------------------------------------

@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def speech_chunks(pipeline, audio: np.ndarray, device: str) -> list[dict]:
    """WhisperX's VAD: speech regions merged into chunks of at most VAD_CHUNK_S seconds ({start, end} in s)."""
    vad = pipeline.vad_model
    # On the CPU the VAD's LSTM runs on one thread: its many tiny steps make parallel threads spin-wait on each
    # other, which on a busy 2-core machine cost up to 8x the CPU time of one thread.
    with _torch_threads(1) if device == "cpu" else nullcontext():
        regions = vad({"waveform": vad.preprocess_audio(audio), "sample_rate": SAMPLE_RATE})
    # Each chunk keeps its speech regions ("segments"), so a chunk may be cut smaller where languages change.
    return [{"start": c["start"], "end": c["end"], "segments": c["segments"]}
            for c in vad.merge_chunks(regions, VAD_CHUNK_S, onset=VAD_ONSET, offset=VAD_OFFSET)]


# Whisper writes Chinese in simplified or traditional characters as it pleases (the same film, both): a prompt in
# simplified characters settles it, so the lines match the simplified queries people type and the seed's index.
SCRIPT_PROMPTS = {"zh": "以下是普通话的句子。"}


def _prompt(pipeline, audio: np.ndarray, chunks: list[dict], language: str) -> str | None:
    """The prompt for the stretch's language: the one given, else the one Whisper hears in its first chunk."""
    if not language and pipeline.model.model.is_multilingual:
        first = chunks[0]
        piece = audio[int(first["start"] * SAMPLE_RATE):int(first["end"] * SAMPLE_RATE)]
        language, _, _ = pipeline.model.detect_language(piece)
    return SCRIPT_PROMPTS.get(language)


def _decode(pipeline, audio: np.ndarray, chunks: list[dict], language: str, settings: Settings,
            progress: Progress):
    """faster-whisper's batched decoding of the VAD chunks with word times, in `language` ("" = detected);
    returns (segments, language)."""
    import faster_whisper

    segments, info = faster_whisper.BatchedInferencePipeline(pipeline.model).transcribe(
        audio, language=language or None, batch_size=settings.asr_batch_size, word_timestamps=True,
        clip_timestamps=[{"start": c["start"], "end": c["end"]} for c in chunks],
        initial_prompt=_prompt(pipeline, audio, chunks, language))
    decoded = []
    for segment in segments:  # a generator: decoding happens batch by batch while it is consumed
        decoded.append(segment)
        progress.update(segment.end)
    return decoded, info.language


# --- the language of each stretch ---------------------------------------------------------------------------------

# `auto` transcribes a film with the multilingual model when speech in other languages than English makes up this
# share of its speech, or this many seconds; less is left to tiny.en, which drops it with advice (speech_checks).
AUTO_FOREIGN_SHARE, AUTO_FOREIGN_S = 0.1, 60.0
# A piece takes the language the detector hears in it when it is this sure, else its chunk's or the film's (short
# or mumbled speech is often heard as a neighbouring language).
STRETCH_LANGUAGE_FLOOR = 0.5
# A chunk heard as one language this surely, between chunks of the same language, is that language whole; any
# other is cut into pieces of at most LANGUAGE_PIECE_S (its speech regions) and each piece is told apart: where
# a film changes language, the two often share a chunk.
SURE_LANGUAGE, LANGUAGE_PIECE_S = 0.8, 5.0


def _pieces(chunk: dict, max_s: float) -> list[dict]:
    """The chunk's speech regions merged into pieces of at most `max_s` (a longer region alone)."""
    pieces: list[dict] = []
    for start, end in chunk.get("segments") or [(chunk["start"], chunk["end"])]:
        if pieces and end - pieces[-1]["start"] <= max_s:
            pieces[-1]["end"] = end
            pieces[-1]["segments"].append((start, end))
        else:
            pieces.append({"start": start, "end": end, "segments": [(start, end)]})
    return pieces


def chunk_languages(detector, audio: np.ndarray, chunks: list[dict]) -> list[tuple[dict, str]]:
    """The film's speech as (piece, language) in time order, by Whisper's language detection: whole chunks where
    the language is plain, smaller pieces where it changes or is unsure."""
    def heard(piece: dict) -> tuple[str, float]:
        language, probability, _ = detector.detect_language(
            audio[int(piece["start"] * SAMPLE_RATE):int(piece["end"] * SAMPLE_RATE)])
        return language, probability

    coarse = [heard(chunk) for chunk in chunks]
    seconds: Counter = Counter()
    for chunk, (language, probability) in zip(chunks, coarse):
        if probability >= STRETCH_LANGUAGE_FLOOR:
            seconds[language] += chunk["end"] - chunk["start"]
    film = seconds.most_common(1)[0][0] if seconds else coarse[0][0]
    found = []
    for i, (chunk, (language, probability)) in enumerate(zip(chunks, coarse)):
        fallback = language if probability >= STRETCH_LANGUAGE_FLOOR else film
        neighbours = {coarse[j][0] for j in (i - 1, i + 1) if 0 <= j < len(chunks)}
        if probability >= SURE_LANGUAGE and neighbours <= {language}:
            found.append((chunk, language))
            continue
        for piece in _pieces(chunk, LANGUAGE_PIECE_S):
            piece_language, piece_probability = heard(piece)
            found.append((piece, piece_language if piece_probability >= STRETCH_LANGUAGE_FLOOR else fallback))
    return found


def stretches(pieces: list[tuple[dict, str]]) -> list[tuple[str, list[dict]]]:
    """Consecutive pieces of one language together, merged back into chunks of at most VAD_CHUNK_S for decoding:
    (language, chunks), in time order."""
    grouped: list[tuple[str, list[dict]]] = []
    for piece, language in pieces:
        if not grouped or grouped[-1][0] != language:
            grouped.append((language, [dict(piece)]))
            continue
        chunks = grouped[-1][1]
        if piece["end"] - chunks[-1]["start"] <= VAD_CHUNK_S:
            chunks[-1] = {**chunks[-1], "end": piece["end"],
                          "segments": [*chunks[-1].get("segments", []), *piece.get("segments", [])]}
        else:
            chunks.append(dict(piece))
    return grouped


def auto_wants_multilingual(pieces: list[tuple[dict, str]]) -> bool:
    foreign = sum(p["end"] - p["start"] for p, language in pieces if language != "en")
    voiced = sum(p["end"] - p["start"] for p, _ in pieces)
    return foreign > 0 and (foreign >= AUTO_FOREIGN_SHARE * voiced or foreign >= AUTO_FOREIGN_S)


def _whisper_words(segment) -> list[Word]:
    return [Word(start_s=w.start, end_s=max(w.end, w.start), text=w.word) for w in segment.words or []]


def _aligned_words(segment, audio: np.ndarray, model, metadata: dict, device: str) -> list[Word]:
    """The segment's words with wav2vec2 times, or with Whisper's own times when alignment does not give exactly
    one timed word for each of Whisper's words."""
    import whisperx

    words = _whisper_words(segment)
    aligned = whisperx.align([{"start": segment.start, "end": segment.end, "text": segment.text}], model, metadata,
                             audio, device)["word_segments"]
    if len(aligned) != len(words) or not all("start" in a and "end" in a for a in aligned):
        return words
    return [w.model_copy(update={"start_s": float(a["start"]), "end_s": float(max(a["end"], a["start"]))})
            for w, a in zip(words, aligned)]


def model_language(pipeline, settings: Settings) -> str:
    """The language the speech model transcribes in this run: "en" for an English-only model, else the configured
    language; "" when a multilingual model tells it itself."""
    return settings.language if pipeline.model.model.is_multilingual else "en"


def language_detector(pipeline, settings: Settings, device: str):
    """The model that tells which language a stretch is in: the speech model itself when it is multilingual, else
    the bundled multilingual Whisper base."""
    if pipeline.model.model.is_multilingual:
        return pipeline.model
    path = speech_checks.bundled_language_model(settings.home.resolve() / "models")
    return speech_checks.load_language_model(str(path), device, resolved_compute_type(settings, device))


def checked_segments(segments: list, audio: np.ndarray, regions: list[tuple[float, float]], expected: str,
                     detector) -> tuple[list, list[DroppedSpeech]]:
    """The segments worth indexing, and the others with their reason. `detector()` gives the language model; it
    is only loaded when a doubtful segment needs its language told."""
    kept, dropped = [], []
    for segment in segments:
        text = segment.text.strip()
        reason = speech_checks.segment_problem(
            text, segment.avg_logprob, segment.no_speech_prob, segment.compression_ratio,
            speech_checks.speech_share(segment.start, segment.end, regions))
        language = ""
        if reason is None and expected and speech_checks.doubtful(segment.avg_logprob, segment.no_speech_prob):
            language = speech_checks.foreign_language(detector(), audio, segment.start, segment.end, expected) or ""
            reason = "other language" if language else None
        if reason:
            dropped.append(DroppedSpeech(start_s=segment.start, end_s=segment.end, text=text, reason=reason,
                                         language=language))
        else:
            kept.append(segment)
    return kept, dropped


def _advice(dropped: list[DroppedSpeech], model_name: str, expected: str, settings: Settings) -> str:
    foreign = [d for d in dropped if d.reason == "other language"]
    if not foreign:
        return ""
    seconds = sum(d.end_s - d.start_s for d in foreign)
    heard = ", ".join(sorted({d.language for d in foreign}))
    model = "the bundled tiny.en" if model_name == bundled_asr_model() else Path(model_name).name
    return (f"{seconds:.0f} s of speech in {heard} not transcribed: the speech model ({model}) "
            f"transcribes {expected} only. Set CINEDEX_ASR_MODEL to a multilingual Whisper model (such as large-v3, "
            f"or the bundled base: {speech_checks.BUNDLED_LANGUAGE_MODEL}) and leave CINEDEX_LANGUAGE empty.")


def speech_model_path(settings: Settings) -> str:
    """The model to load first: the configured one; the bundled tiny.en for `tiny.en` and for `auto` (which may
    turn to the multilingual base once it has heard the film); the bundled multilingual Whisper base (joined once
    from its two packages under $CINEDEX_HOME/models) for `whisper-base-multilingual`."""
    if settings.asr_model == speech_checks.BUNDLED_LANGUAGE_MODEL:
        return str(speech_checks.bundled_language_model(settings.home.resolve() / "models"))
    return bundled_asr_model() if settings.resolved_asr_model == "auto" else settings.resolved_asr_model


def transcribe(audio_path: Path, settings: Settings) -> Transcript:
    """Utterance-level transcript of a 16 kHz mono audio file (any format ffmpeg reads works)."""
    import whisperx

    name = Path(audio_path).name
    device = resolved_device(settings)
    compute_type = resolved_compute_type(settings, device)
    model_name = speech_model_path(settings)
    pipeline = load_speech_model(model_name, device, compute_type)
    audio = whisperx.load_audio(str(audio_path))
    duration = len(audio) / SAMPLE_RATE
    started = time.perf_counter()

    chunks = speech_chunks(pipeline, audio, device)
    voiced = sum(c["end"] - c["start"] for c in chunks)
    log.info("asr: %s: %d speech chunks, %.0f of %.0f s, found in %.1f s", name, len(chunks), voiced, duration,
             time.perf_counter() - started)
    # The language of each stretch, where no language is configured and a multilingual model may transcribe it.
    languages: list[tuple[dict, str]] = []
    if chunks and not settings.language and (settings.resolved_asr_model == "auto"
                                             or pipeline.model.model.is_multilingual):
        languages = chunk_languages(language_detector(pipeline, settings, device), audio, chunks)
        heard = ", ".join(f"{language} {sum(c['end'] - c['start'] for c in group):.0f} s"
                          for language, group in stretches(languages))
        log.info("asr: %s: languages heard: %s", name, heard)
        if settings.resolved_asr_model == "auto":
            if auto_wants_multilingual(languages):
                model_name = str(speech_checks.bundled_language_model(settings.home.resolve() / "models"))
                pipeline = load_speech_model(model_name, device, compute_type)
                log.info("asr: %s: auto: speech in other languages than English, transcribed by the multilingual "
                         "Whisper base", name)
            else:
                languages = []  # English (tiny.en): what little else is heard is dropped with advice
    progress = Progress(settings.home, duration, "s of audio decoded", log, name=f"asr: {name}")
    segments, language, spans = [], settings.language, []
    plan = stretches(languages) if languages else [(settings.language, chunks)] if chunks else []
    for stretch_language, group in plan:
        decoded, heard_language = _decode(pipeline, audio, group, stretch_language, settings, progress)
        segments += decoded
        spans.append((group[0]["start"], group[-1]["end"], stretch_language or heard_language))
    progress.finish()
    if spans:
        by_seconds: Counter = Counter()
        for start, end, stretch_language in spans:
            by_seconds[stretch_language] += end - start
        language = by_seconds.most_common(1)[0][0]

    expected = model_language(pipeline, settings)
    regions = speech_checks.speech_regions(audio) if segments else []
    segments, dropped = checked_segments(segments, audio, regions, expected,
                                         lambda: language_detector(pipeline, settings, device))
    advice = _advice(dropped, model_name, expected, settings)
    if dropped:
        seconds = ", ".join(f"{reason} {total:.1f} s" for reason, total in
                            speech_checks.seconds_by_reason(dropped).items())
        log.warning("asr: %s: %d decoded segments dropped (%s)", name, len(dropped), seconds)
    if advice:
        log.warning("asr: %s: %s", name, advice)

    # One alignment model per film: a film in several languages keeps Whisper's own word times.
    align_name = alignment_model(settings, language) if segments and len({s[2] for s in spans}) == 1 else ""
    if align_name:
        align_model, metadata = load_alignment_model(align_name, language, device)
        words = [w for s in segments for w in _aligned_words(s, audio, align_model, metadata, device)]
    else:
        words = [w for s in segments for w in _whisper_words(s)]
        if segments:
            log.info("asr: %s: word times from Whisper's cross-attention (no wav2vec2 alignment model on this "
                     "machine for %r; set CINEDEX_ASR_ALIGN_MODEL to refine them)", name, language)
    utterances = split_utterances(repaired_times(words, duration, regions))
    if len({s[2] for s in spans}) > 1:  # each line in the language of its stretch
        utterances = [u.model_copy(update={"language": next((lang for start, end, lang in spans
                                                             if start - 0.5 <= (u.start_s + u.end_s) / 2 <= end + 0.5),
                                                            language)}) for u in utterances]

    elapsed = time.perf_counter() - started
    log.info("asr: %s: %d utterances from %d segments, %.1f s of audio in %.1f s (real-time factor %.3f)",
             name, len(utterances), len(segments), duration, elapsed, elapsed / duration if duration else 0.0)
    return Transcript(language=language or "", model=model_name, utterances=utterances, dropped=dropped,
                      advice=advice, word_times="aligned" if align_name else "whisper")


# --- subtitles and the cached stage -----------------------------------------------------------------------------

def _one_line(text: str) -> str:
    # A blank line would end a subtitle cue early.
    return " ".join(text.split())


def to_srt(transcript: Transcript) -> str:
    cues = []
    for number, u in enumerate(transcript.utterances, 1):
        text = _one_line(f"{voice_name(u.speaker)}: {u.text}" if u.speaker else u.text)
        cues.append(f"{number}\n{MediaTime(u.start_s).timecode(',')} --> {MediaTime(u.end_s).timecode(',')}\n{text}\n")
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    cues = ["WEBVTT\n"]
    for u in transcript.utterances:
        text = _one_line(u.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        voice = f"<v {_one_line(voice_name(u.speaker)).replace('>', '')}>" if u.speaker else ""
        cues.append(f"{MediaTime(u.start_s).timecode()} --> {MediaTime(u.end_s).timecode()}\n{voice}{text}\n")
    return "\n".join(cues)


def load_transcript(folder: Path) -> Transcript:
    return Transcript.model_validate_json((Path(folder) / TRANSCRIPT_FILE).read_text(encoding="utf-8"))


def transcribe_video(video: IngestedVideo, audio_path: Path | None, settings: Settings) -> Path:
    """The cached asr stage: `transcript.json`, `.srt` and `.vtt`; an empty transcript for a silent video."""
    def write(folder: Path) -> None:
        if audio_path is None:
            transcript = Transcript(language=settings.language, model=speech_model_path(settings))
        else:
            transcript = transcribe(audio_path, settings)
        (folder / TRANSCRIPT_FILE).write_text(transcript.model_dump_json(indent=1), encoding="utf-8")
        (folder / SRT_FILE).write_text(to_srt(transcript), encoding="utf-8")
        (folder / VTT_FILE).write_text(to_vtt(transcript), encoding="utf-8")
        log.info("asr: %s -> %d utterances (%s)", video.name, len(transcript.utterances), transcript.language or "-")

    return cached_stage(
        "asr", video.video_id, settings.artifacts_dir, write, upstream=[audio_path],
        model=settings.resolved_asr_model, language=settings.language, batch_size=settings.asr_batch_size,
        align_model=settings.asr_align_model)
