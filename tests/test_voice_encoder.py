"""The voice encoder through ONNX Runtime gives Resemblyzer's own vectors, on real speech, without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile

from cinedex.pipeline import voice_encoder


def test_onnx_vectors_are_resemblyzers_on_the_sample_call(conversation_wav):
    import torch
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    samples, rate = soundfile.read(str(conversation_wav), dtype="float32")
    assert rate == voice_encoder.SAMPLE_RATE
    mel = voice_encoder.mel_frames(samples)
    np.testing.assert_allclose(mel, wav_to_mel_spectrogram(normalize_volume(samples, -30, increase_only=True)),
                               rtol=1e-4, atol=1e-5)
    pieces = np.stack([mel[i:i + 160] for i in range(0, len(mel) - 160, 200)])
    ours = voice_encoder.load_voice_encoder().embed(pieces)
    with torch.inference_mode():
        theirs = VoiceEncoder(device="cpu", verbose=False)(torch.from_numpy(pieces)).numpy()
    assert ours.shape == (len(pieces), voice_encoder.EMBEDDING_SIZE)
    assert np.abs(ours - theirs).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embedding_voices_imports_no_torch(conversation_wav):
    voice_encoder.load_voice_encoder()  # exported (once) in this process if it was not yet
    script = ("import sys, numpy as np, soundfile; from cinedex.pipeline import voice_encoder as v; "
              f"s, _ = soundfile.read({str(conversation_wav)!r}, dtype='float32'); "
              "v.load_voice_encoder().embed(v.mel_frames(s)[None, :160]); "
              "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
