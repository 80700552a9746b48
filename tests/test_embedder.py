"""The embedder's ONNX path gives the vectors sentence-transformers gives for the same weights, so events embedded
one way and queries embedded the other still meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cinedex.index import embedder

SENTENCES = ["greeting on the telephone", "And I'm Sheila in Texas, originally from Chicago.", "你好，世界", "",
             " ".join(["a very long line"] * 200)]  # past the model's 256 tokens: truncated alike


@pytest.fixture(scope="module")
def onnx_encoder(tmp_path_factory):
    cache = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CINEDEX_MODEL_CACHE", str(cache))
        embedder.load_model.cache_clear()
        try:
            encoder = embedder.load_model("all-MiniLM-L6-v2")
        finally:
            embedder.load_model.cache_clear()
    return encoder, cache


def test_the_default_model_runs_through_onnx_runtime_with_the_same_vectors(onnx_encoder):
    encoder, cache = onnx_encoder
    assert isinstance(encoder, embedder.OnnxEncoder) and list(cache.rglob("*.onnx"))
    reference = embedder.SentenceTransformerEncoder("all-MiniLM-L6-v2").encode(SENTENCES, batch_size=2)
    vectors = encoder.encode(SENTENCES, batch_size=2)
    assert vectors.shape == reference.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert np.abs(vectors - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batches_do_not_change_a_vector(onnx_encoder):
    encoder, _ = onnx_encoder
    alone = np.stack([encoder.encode([s], batch_size=1)[0] for s in SENTENCES])
    assert np.abs(alone - encoder.encode(SENTENCES, batch_size=64)).max() < 1e-5


def test_a_model_the_onnx_path_cannot_reproduce_is_left_to_sentence_transformers(tmp_path):
    folder = tmp_path / "cls-pooled"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}, '
                                         '{"type": "sentence_transformers.models.Pooling"}]')
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert not embedder._exportable(folder)
    assert embedder._exportable(Path(embedder.model_path("all-MiniLM-L6-v2")))
