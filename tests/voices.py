"""Multi-speaker recordings with speaker turns known by construction, for diarization tests and benchmarks.

No installed package ships real speech of more than the two people of pyannote's sample call, so recordings of
three and four speakers are assembled from what there is: the call's two real voices (cut where the reference
says only one of them speaks) and espeak-ng voices (synthetic: different formant variants, pitches and accents).
Every turn goes through one telephone band and one noise floor, so no speaker stands out by the channel alone.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import butter, resample_poly, sosfilt

from cinedex.sample import conversation

SAMPLE_RATE = 16_000
SENTENCES = [
    "I told you the train leaves at six, not at seven.", "Well, nobody here has seen the letter since Tuesday.",
    "Could you pass me the map? I think we missed the turn.", "That is not what your brother said last night.",
    "We should wait until the rain stops before we go out.", "The museum closes early on Sundays, remember?",
    "I never liked that house, it was always far too cold.", "Have you called the doctor about your knee yet?",
    "Three people asked me about the car this morning.", "If we leave now we can still make the second show.",
    "My grandmother kept bees in the garden behind the shop.", "Nobody knows where the old key went, honestly.",
    "Let me finish this chapter and then we can talk.", "The harbour looked different in the winter light.",
    "You promised to bring the photographs to the meeting.", "I think the engine is making that noise again.",
]
# espeak-ng voices: (voice+variant, pitch 0-99, words per minute).
SYNTHETIC = {"Alex": ("en-us+m3", 35, 165), "Bea": ("en-gb+f2", 60, 175), "Cal": ("en-gb-scotland+m7", 20, 150),
             "Dot": ("en-us+f4", 75, 185)}
# The call's reference turns (sample.rttm) where one person speaks alone: (start, end) in seconds.
REAL = {"Diane": [(6.69, 7.12), (8.32, 9.92), (11.03, 14.49), (18.59, 21.49), (28.5, 30.0)],
        "Sheila": [(7.55, 8.32), (10.02, 10.57), (14.7, 17.92), (21.78, 27.85)]}


def _telephone(samples: np.ndarray) -> np.ndarray:
    return sosfilt(butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos"), samples)


def _level(samples: np.ndarray, dbfs: float = -24.0) -> np.ndarray:
    rms = np.sqrt(np.mean(samples**2)) or 1.0
    return samples * (10 ** (dbfs / 20) / rms)


def _spoken(samples: np.ndarray) -> np.ndarray:
    """`samples` without the silence espeak puts around a sentence."""
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    return samples[loud[0]:loud[-1] + 1]


def _synthetic(voice: str, pitch: int, speed: int, text: str, folder: Path) -> np.ndarray:
    path = folder / "line.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True)
    samples, rate = soundfile.read(str(path), dtype="float64")
    return _spoken(resample_poly(samples, SAMPLE_RATE, rate))


def _real_lines(speaker: str) -> list[np.ndarray]:
    call, rate = soundfile.read(str(conversation()[0]), dtype="float64")
    assert rate == SAMPLE_RATE
    return [call[int(a * rate):int(b * rate)] for a, b in REAL[speaker] if b - a >= 0.5]


def build_recording(path: Path, speakers: list[str], turns: int, seed: int = 0,
                    overlap_every: int = 6) -> list[tuple[float, float, str]]:
    """Writes a 16 kHz mono WAV of `turns` turns among `speakers` (names from SYNTHETIC or REAL) and returns its
    reference turns (start, end, speaker). Pauses of 0.2 to 0.9 s between turns; every `overlap_every`-th turn
    starts 0.4 s before the previous one ends."""
    rng = random.Random(seed)
    lines: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in speakers:
            if name in REAL:
                lines[name] = _real_lines(name)
            else:
                voice, pitch, speed = SYNTHETIC[name]
                lines[name] = [_synthetic(voice, pitch, speed, text, Path(scratch)) for text in SENTENCES]
    order, previous = [], None
    for _ in range(turns):
        previous = rng.choice([s for s in speakers if s != previous] if len(speakers) > 1 else speakers)
        order.append(previous)
    pieces, reference, at = [], [], 0.5
    for index, name in enumerate(order):
        line = _level(rng.choice(lines[name]))
        overlapped = index and index % overlap_every == 0
        start = at - 0.4 if overlapped else at + rng.uniform(0.2, 0.9)
        pieces.append((start, line))
        reference.append((round(start, 3), round(start + len(line) / SAMPLE_RATE, 3), name))
        at = start + len(line) / SAMPLE_RATE
    mix = np.zeros(int((at + 0.5) * SAMPLE_RATE))
    for start, line in pieces:
        begin = int(start * SAMPLE_RATE)
        mix[begin:begin + len(line)] += line
    noise = np.random.default_rng(seed).normal(0, 10 ** (-50 / 20), len(mix))
    mix = _telephone(mix) + noise
    soundfile.write(str(path), (mix / max(1.0, np.abs(mix).max())).astype(np.float32), SAMPLE_RATE,
                    subtype="PCM_16")
    return reference


# --- scoring --------------------------------------------------------------------------------------------------------

# pyannote.metrics counts a collar as the whole width around each reference boundary: 0.5 = 0.25 s either side.
COLLAR_025 = 0.5


def _annotation(turns):
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for index, (start, end, speaker) in enumerate(turns):
        annotation[Segment(start, end), index] = speaker
    return annotation


def der(reference: list[tuple[float, float, str]], found: list[tuple[float, float, str]], collar: float) -> float:
    """pyannote.metrics' diarization error rate of `found` turns against `reference` turns (start, end, speaker)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem was approximated": the whole recording is scored, as meant
        return DiarizationErrorRate(collar=collar)(_annotation(reference), _annotation(found))


def sample_call_reference() -> list[tuple[float, float, str]]:
    """pyannote's reference turns of its sample call (sample.rttm)."""
    rttm = conversation()[0].with_suffix(".rttm").read_text().splitlines()
    return [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in (line.split() for line in rttm)]
