"""Resemblyzer's GE2E voice encoder (the `resemblyzer` package's bundled weights) run by ONNX Runtime.

The encoder is a 3-layer LSTM over 40-band mel frames, a linear layer, a ReLU and L2 normalisation: 256-d voice
embeddings. Running it through torch costs the diarization about 550 MB of memory and seconds of imports for one
small network, so it is exported once from the package's own weights (torch, once, into the user's model cache,
as the sentence embedder is) and run by ONNX Runtime, which the segmentation model needs anyway. The mel
spectrogram is Resemblyzer's own (`resemblyzer.audio.wav_to_mel_spectrogram`, whose module cannot be imported
without importing torch through the package), so the vectors are the package's.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path

import numpy as np

from cinedex.index.embedder import cache_dir

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# Resemblyzer's hparams: 25 ms windows every 10 ms, 40 mel bands; loudness raised to -30 dBFS, never lowered.
MEL_WINDOW_S, MEL_HOP_S, MEL_BANDS, TARGET_DBFS = 0.025, 0.01, 40, -30
EMBEDDING_SIZE = 256
_EXPORTING = threading.Lock()


def _weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")  # finds the package without importing it (and torch)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the voice encoder needs the `resemblyzer` package (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def onnx_file() -> Path:
    """The exported encoder, named after the weights it came from, so new weights export anew."""
    weights = _weights()
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "voices" / f"resemblyzer-{key}.onnx"


def _export(target: Path) -> None:
    import torch
    from resemblyzer import VoiceEncoder

    log.info("diarization: exporting Resemblyzer's voice encoder to ONNX (once) at %s", target)
    model = VoiceEncoder(device="cpu", verbose=False).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(2, 160, MEL_BANDS),), str(scratch), input_names=["mels"],
                          output_names=["embeddings"],
                          dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
                          opset_version=17, dynamo=False)
    scratch.replace(target)  # whole or not at all; two processes exporting at once write the same file


class VoiceEncoder:
    """Embeds batches of mel spectrograms (batch, frames, 40) as L2-normed 256-d voice vectors."""

    def __init__(self, model: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def embed(self, mels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"mels": np.ascontiguousarray(mels, dtype=np.float32)})[0]


@functools.cache
def load_voice_encoder() -> VoiceEncoder:
    model = onnx_file()
    with _EXPORTING:
        if not model.is_file():
            _export(model)
    return VoiceEncoder(model)


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram, 10 ms apart, of 16 kHz samples, with Resemblyzer's volume
    normalisation (`normalize_volume(wav, -30, increase_only=True)`) first but not its silence trimming, which
    would shift every time."""
    import librosa

    power = float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0
    if power > 0:
        change = TARGET_DBFS - 10 * np.log10(power)
        if change > 0:
            samples = samples * (10 ** (change / 20))
    frames = librosa.feature.melspectrogram(y=samples, sr=SAMPLE_RATE, n_fft=int(SAMPLE_RATE * MEL_WINDOW_S),
                                            hop_length=int(SAMPLE_RATE * MEL_HOP_S), n_mels=MEL_BANDS)
    return frames.astype(np.float32).T
