"""Vision throughput benchmark: the true Qwen3-VL-4B architecture, random weights, fed film windows on one GPU.

What runs: transformers' Qwen3VLForConditionalGeneration built from a Qwen3VLConfig with Qwen3-VL-4B-Instruct's
architecture (text: 36 layers, hidden 2560, MLP 9728, 32 query / 8 KV heads of 128, vocab 151936, tied embeddings,
rope_theta 5e6, interleaved M-RoPE [24, 20, 20], 262144 positions; vision: 24 blocks, hidden 1024, MLP 4096, 16
heads, patch 16, temporal patch 2, spatial merge 2, output 2560, deepstack after blocks 5, 11, 17; ~4.44 B
parameters, ~8.3 GiB in bf16), with RANDOM weights in bf16 (no checkpoint is needed, nor can one be downloaded on
the GPU machine). Throughput does not depend on the weights' values, only on shapes, so this measures what the real
model would cost per window; the output text is meaningless.

Each window is given as the processor would give it, without the processor: `pixel_values_videos` holding
window_s x fps frames (capped as the pipeline caps them, by cinedex.pipeline.windows.max_frames_for for --context-tokens
and Qwen3-VL's video pixel limit: 218 frames of 448x252 at the default 32768) of --width x --height (rounded to multiples of 32 as Qwen's processor does; odd frame counts
padded to a pair), `video_grid_thw` = [pairs, H/16, W/16], and input_ids laid out as Qwen3-VL's chat template and
processor lay them out: a system/user text prefix, then per pair of frames "<t seconds>" (6 random text tokens),
<|vision_start|>, (H/32)(W/32) <|video_pad|> tokens, <|vision_end|>, then the rest of the prompt (dialogue lines
and instructions; --prompt-tokens in all, random ids below the special tokens). The special-token ids are the real
ones (151652, 151653, 151656), so the model's M-RoPE index and the placement of the vision embeddings follow the
true code path. --batch windows of identical shape go in one generate call.

Generation has a FIXED length: min_new_tokens = max_new_tokens = --out-tokens, greedy. Timed per batch, after
--warmup untimed batches:
  prefill   generate with max_new_tokens=1 (vision encoder + prefill of the whole prompt + one token)
  full      generate with --out-tokens (prefill + decoding)
Reported: windows/s (batch / full), visual tokens/s in prefill (visual tokens in the batch / prefill time),
generated tokens/s in decoding (batch x (out-1) / (full - prefill)), peak GPU memory
(torch.cuda.max_memory_allocated), and the projected wall time of a --film-s film (default 2.5 h = 9000 s):
ceil(film_s / window_s) windows at the measured windows/s, plus ASR at --asr-rtf x film length. The ASR real-time
factor is an ASSUMPTION passed as a flag (default 0.02, i.e. large-v3 batched on an H100 at ~50x real time), not
measured here; the projection runs vision and ASR one after the other on the one GPU. Goal: <= 8 minutes (480 s)
for a 2.5-hour film on one H100.

Usage:
  .venv/bin/python benchmarks/bench_vision_gpu.py --tiny                      # CPU smoke test, 2-layer toy model
  .venv/bin/python benchmarks/bench_vision_gpu.py --window-s 120 --fps 1 --batch 4 --out-tokens 512
Results: a table and one JSON line on stdout; the run is appended to benchmarks/results/vision_gpu.json
(--tiny runs go to benchmarks/results/tmp/vision_gpu_tiny.json instead).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
VISION_START, VISION_END, VIDEO_PAD = 151652, 151653, 151656
ENDOFTEXT = 151643
TEXT_ID_LIMIT = 151000  # random prompt ids stay below the special tokens
TIMESTAMP_TOKENS = 6


def qwen3_vl_config(tiny: bool):
    from transformers import Qwen3VLConfig

    if tiny:
        text = dict(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=262144,
                    rope_theta=5_000_000.0, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True})
        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=16,
                      temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=64,
                      num_position_embeddings=2304, deepstack_visual_indexes=[0, 1])
    else:
        text = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
                    max_position_embeddings=262144, rms_norm_eps=1e-6, rope_theta=5_000_000.0,
                    tie_word_embeddings=True, attention_bias=False,
                    rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True})
        vision = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                      temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=2560, in_channels=3,
                      hidden_act="gelu_pytorch_tanh", num_position_embeddings=2304,
                      deepstack_visual_indexes=[5, 11, 17])
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=151655, video_token_id=VIDEO_PAD,
                         vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
                         tie_word_embeddings=True)


def build_model(config, device: str, dtype: torch.dtype, attn: str):
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):  # initialise straight on the GPU: 4.4 B random numbers on the CPU take minutes
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation=attn)
    model.eval()
    model.generation_config.pad_token_id = ENDOFTEXT
    model.generation_config.eos_token_id = None  # fixed length: never stop early
    return model


def window_inputs(batch: int, n_frames: int, width: int, height: int, prompt_tokens: int, config, device: str,
                  dtype: torch.dtype, seed: int = 0) -> tuple[dict, int]:
    """Model inputs for `batch` windows of `n_frames` frames each, as Qwen3-VL's processor would lay them out;
    returns (inputs, visual tokens per window)."""
    vision = config.vision_config
    factor = vision.patch_size * vision.spatial_merge_size
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    pairs = math.ceil(n_frames / vision.temporal_patch_size)
    grid_h, grid_w = h // vision.patch_size, w // vision.patch_size
    pads = (grid_h * grid_w) // vision.spatial_merge_size ** 2  # merged tokens per pair of frames
    generator = torch.Generator().manual_seed(seed)

    def text(n: int) -> list[int]:
        return torch.randint(0, TEXT_ID_LIMIT, (n,), generator=generator).tolist()

    head = max(8, prompt_tokens // 3)
    rows = []
    for _ in range(batch):
        ids = text(head)  # system prompt, "<|im_start|>user", instructions
        for _pair in range(pairs):
            ids += text(TIMESTAMP_TOKENS) + [VISION_START] + [VIDEO_PAD] * pads + [VISION_END]
        ids += text(max(8, prompt_tokens - head))  # dialogue lines of the window, the question, assistant turn
        rows.append(ids)
    input_ids = torch.tensor(rows, device=device)
    patch_dim = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    pixels = torch.randn(batch * pairs * grid_h * grid_w, patch_dim, generator=generator).to(device, dtype)
    grid = torch.tensor([[pairs, grid_h, grid_w]] * batch, device=device)
    inputs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values_videos=pixels,
                  video_grid_thw=grid)
    return inputs, pairs * pads


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_generate(model, inputs: dict, new_tokens: int, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, min_new_tokens=new_tokens, max_new_tokens=new_tokens, do_sample=False,
                             use_cache=True)
    _sync(device)
    elapsed = time.perf_counter() - started
    generated = out.shape[1] - inputs["input_ids"].shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"asked for {new_tokens} new tokens, got {generated}")
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer toy model of the same family, tiny frames: "
                        "a CPU smoke test (defaults below change to fit it)")
    parser.add_argument("--window-s", type=float, default=None, help="window length (default 120; tiny 4)")
    parser.add_argument("--fps", type=float, default=None, help="sampled frames per second (default 2, the "
                        "sampler's cap; tiny 1)")
    parser.add_argument("--width", type=int, default=None, help="frame width (default 448; tiny 64)")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 252; tiny 64)")
    parser.add_argument("--context-tokens", type=int, default=32768, help="context budget per window; frames "
                        "per window are capped by cinedex.pipeline.windows.max_frames_for as the pipeline caps them "
                        "(also by Qwen3-VL's video pixel limit); 0 = no cap")
    parser.add_argument("--batch", type=int, default=4, help="windows per generate call (default 4)")
    parser.add_argument("--prompt-tokens", type=int, default=300, help="text tokens per window besides frames")
    parser.add_argument("--out-tokens", type=int, default=None, help="generated tokens per window (default 512; "
                        "tiny 8)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--film-s", type=float, default=9000.0, help="film length for the projection (2.5 h)")
    parser.add_argument("--asr-rtf", type=float, default=0.02, help="ASSUMED ASR real-time factor (seconds of "
                        "compute per second of audio; default 0.02 = large-v3 on an H100), not measured here")
    parser.add_argument("--goal-s", type=float, default=480.0, help="goal for the whole film (default 8 min)")
    parser.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, flash_attention_2, eager)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", type=Path, default=None, help="results file (JSON lines, appended)")
    args = parser.parse_args(argv)

    tiny = args.tiny
    window_s = args.window_s or (4.0 if tiny else 120.0)
    fps = args.fps or (1.0 if tiny else 2.0)
    width, height = args.width or (64 if tiny else 448), args.height or (64 if tiny else 252)
    out_tokens = args.out_tokens or (8 if tiny else 512)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not tiny and not device.startswith("cuda"):
        sys.exit("the full model needs a GPU; use --tiny for the CPU smoke test")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    requested_frames = max(2, round(window_s * fps))
    n_frames = requested_frames
    if args.context_tokens:
        from cinedex.pipeline.windows import max_frames_for

        n_frames = min(n_frames, max_frames_for(args.context_tokens, width, height,
                                                prompt_tokens=args.prompt_tokens, max_new_tokens=out_tokens))

    config = qwen3_vl_config(tiny)
    started = time.perf_counter()
    model = build_model(config, device, dtype, args.attn)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    inputs, visual_per_window = window_inputs(args.batch, n_frames, width, height, args.prompt_tokens, config,
                                              device, dtype)
    prompt_len = inputs["input_ids"].shape[1]

    for _ in range(args.warmup):
        timed_generate(model, inputs, 1, device)
        timed_generate(model, inputs, out_tokens, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    prefill, full = [], []
    for _ in range(args.runs):
        prefill.append(timed_generate(model, inputs, 1, device))
        full.append(timed_generate(model, inputs, out_tokens, device))
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None

    prefill_s, full_s = statistics.median(prefill), statistics.median(full)
    decode_s = full_s - prefill_s  # <= 0 only when timing noise exceeds the decoding time (tiny runs)
    windows_per_s = args.batch / full_s
    windows_needed = math.ceil(args.film_s / window_s)
    vision_film_s = windows_needed / windows_per_s
    asr_film_s = args.film_s * args.asr_rtf
    total_s = vision_film_s + asr_film_s
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({platform.processor() or platform.machine()})"
    result = {
        "bench": "vision_gpu", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "tiny Qwen3-VL (2 layers, random)" if tiny else "Qwen3-VL-4B architecture, random weights",
        "device": gpu, "dtype": str(dtype).removeprefix("torch."), "attn": args.attn,
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "params": params, "build_s": round(build_s, 2),
        "window_s": window_s, "fps": fps, "frames_requested": requested_frames, "frames_per_window": n_frames,
        "context_tokens": args.context_tokens, "frame_size": [width, height],
        "visual_tokens_per_window": visual_per_window, "prompt_tokens_per_window": prompt_len,
        "batch": args.batch, "out_tokens": out_tokens, "warmup": args.warmup, "runs": args.runs,
        "prefill_s": round(prefill_s, 4), "generate_s": round(full_s, 4),
        "prefill_runs_s": [round(x, 4) for x in prefill], "generate_runs_s": [round(x, 4) for x in full],
        "windows_per_s": round(windows_per_s, 4),
        "visual_tokens_per_s_prefill": round(args.batch * visual_per_window / prefill_s, 1),
        "prompt_tokens_per_s_prefill": round(args.batch * prompt_len / prefill_s, 1),
        "generated_tokens_per_s": round(args.batch * (out_tokens - 1) / decode_s, 1) if decode_s > 0 else None,
        "peak_gpu_memory_gib": round(peak / 2**30, 2) if peak is not None else None,
        "film_s": args.film_s, "windows_per_film": windows_needed,
        "projected_vision_s": round(vision_film_s, 1),
        "asr_rtf_assumed": args.asr_rtf, "projected_asr_s": round(asr_film_s, 1),
        "projected_total_s": round(total_s, 1), "goal_s": args.goal_s, "meets_goal": total_s <= args.goal_s,
    }

    rows = [
        ("device", f"{gpu} ({result['dtype']}, {args.attn})"),
        ("model", f"{result['model']}, {params / 1e9:.3f} B params, built in {build_s:.1f} s"),
        ("window", f"{window_s:g} s x {fps:g} fps = {requested_frames} frames"
                   + (f", capped to {n_frames}" if n_frames < requested_frames else "") + f" of {width}x{height}; "
                   f"{visual_per_window} visual tokens; prompt {prompt_len} tokens"),
        ("batch / output", f"{args.batch} windows, {out_tokens} new tokens each (fixed)"),
        ("prefill (median)", f"{prefill_s:.3f} s -> {result['visual_tokens_per_s_prefill']:,.0f} visual tokens/s"),
        ("generate (median)", f"{full_s:.3f} s -> {windows_per_s:.3f} windows/s, "
                              + (f"{result['generated_tokens_per_s']:,.0f}" if decode_s > 0 else "n/a (noise)")
                              + " generated tokens/s"),
        ("peak GPU memory", "n/a (CPU)" if peak is None else f"{peak / 2**30:.2f} GiB"),
        (f"film {args.film_s / 3600:g} h", f"{windows_needed} windows -> vision {vision_film_s:.0f} s + ASR "
                                           f"{asr_film_s:.0f} s (assumed RTF {args.asr_rtf:g}) = {total_s:.0f} s"),
        ("goal", f"<= {args.goal_s:.0f} s: {'met' if result['meets_goal'] else 'MISSED'}"
                 + (" (toy model on CPU: not meaningful)" if tiny else "")),
    ]
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(json.dumps(result))
    out = args.out or (RESULTS / "tmp" / "vision_gpu_tiny.json" if tiny else RESULTS / "vision_gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
