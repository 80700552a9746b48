"""Qwen3-VL through transformers, in this process: the window's frames as one video (with film-time markers, or
untimed for the ablation), decoding constrained by xgrammar to the window's JSON schema."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cinedex.pipeline.vision.prompt import load_frames, messages
from cinedex.pipeline.vision.schema import VisionOptions, WindowResult, window_result, window_schema
from cinedex.pipeline.windows import PATCH_FACTOR, TEMPORAL_PATCH, Window

log = logging.getLogger(__name__)

VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class LoadedModel:
    processor: Any
    model: Any
    compiler: Any
    grammars: dict[tuple, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def grammar(self, schema_key: tuple, schema: dict):
        """Compiled grammars, cached by their schema's bounds (a few ms to compile, reused across windows)."""
        with self.lock:
            if schema_key not in self.grammars:
                self.grammars[schema_key] = self.compiler.compile_json_schema(json.dumps(schema),
                                                                              any_whitespace=False)
            return self.grammars[schema_key]


@functools.cache
def load_model(model: str, device: str, dtype: str) -> LoadedModel:
    """Processor, model and grammar compiler, loaded once per process for each (model, device, dtype)."""
    import torch
    import xgrammar
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    log.info("vision: loading %s on %s (%s)", model, device, dtype)
    processor = AutoProcessor.from_pretrained(model)
    processor.tokenizer.padding_side = "left"
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if device.startswith("cuda"):
        kwargs["attn_implementation"] = "sdpa"
    vlm = Qwen3VLForConditionalGeneration.from_pretrained(model, **kwargs).to(device).eval()
    info = xgrammar.TokenizerInfo.from_huggingface(processor.tokenizer, vocab_size=vlm.config.text_config.vocab_size)
    return LoadedModel(processor=processor, model=vlm, compiler=xgrammar.GrammarCompiler(info))


class TransformersBackend:
    """Qwen3-VL through transformers, in this process; bf16 + SDPA on CUDA, float32 on CPU."""

    def __init__(self, model: str, device: str = "auto"):
        self.model_id = model
        self.device = resolve_device(device)
        self.dtype = "bfloat16" if self.device.startswith("cuda") else "float32"

    @property
    def loaded(self) -> LoadedModel:
        return load_model(self.model_id, self.device, self.dtype)

    def prepare(self, windows: Sequence[Window], options: VisionOptions):
        """Model inputs for a batch of windows, and the prompts' texts before the processor expanded them."""
        processor = self.loaded.processor
        texts = [processor.apply_chat_template(messages(w, options), tokenize=False, add_generation_prompt=True)
                 for w in windows]
        videos, metadata = [], []
        for window in windows:
            frames, _, meta = load_frames(window, options)
            videos.append(frames)
            metadata.append(meta)
        # The video processor's pixel bounds count all of a video's frames: the token budget is per window.
        budget = options.context_tokens * PATCH_FACTOR * PATCH_FACTOR * TEMPORAL_PATCH
        size = {"shortest_edge": min(processor.video_processor.size["shortest_edge"], budget),
                "longest_edge": budget}
        if options.timestamp_alignment:
            inputs = processor(text=texts, videos=videos, video_metadata=metadata, do_sample_frames=False,
                               size=size, padding=True, return_tensors="pt")
        else:
            inputs = self._untimed_inputs(texts, videos, metadata, size)
        inputs.pop("video_metadata", None)
        return inputs, texts

    def _untimed_inputs(self, texts, videos, metadata, size):
        """As the processor does it, minus the `<t seconds>` markers: one vision block per temporal patch."""
        processor = self.loaded.processor
        video_inputs = processor.video_processor(videos=videos, video_metadata=metadata, do_sample_frames=False,
                                                 size=size, return_tensors="pt")
        video_inputs.pop("video_metadata", None)
        merge = processor.video_processor.merge_size ** 2
        expanded = []
        for text, grid in zip(texts, video_inputs["video_grid_thw"]):
            per_patch = int(grid[1] * grid[2]) // merge
            block = ("<|vision_start|>" + "<|video_pad|>" * per_patch + "<|vision_end|>") * int(grid[0])
            expanded.append(text.replace(VIDEO_PLACEHOLDER, block, 1))
        text_inputs = processor.tokenizer(expanded, padding=True, return_tensors="pt")
        from transformers import BatchFeature

        return BatchFeature(data={**text_inputs, **video_inputs})

    def describe(self, windows: list[Window], options: VisionOptions) -> list[WindowResult]:
        """One result per window, in order; a window without frames gets an error instead of a model call."""
        by_index: dict[int, WindowResult] = {
            id(w): WindowResult(window_index=w.index, error="window has no frames") for w in windows if not w.frames}
        pictured = [w for w in windows if w.frames]
        for start in range(0, len(pictured), options.batch_size):
            batch = pictured[start:start + options.batch_size]
            for window, result in zip(batch, self._describe_batch(batch, options)):
                by_index[id(window)] = result
        return [by_index[id(w)] for w in windows]

    def _describe_batch(self, windows: Sequence[Window], options: VisionOptions) -> list[WindowResult]:
        loaded = self.loaded
        inputs, _ = self.prepare(windows, options)
        inputs = inputs.to(self.device)
        if "pixel_values_videos" in inputs:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(loaded.model.dtype)
        grammars = [loaded.grammar(*window_schema(w, options)) for w in windows]
        raws = self._generate(inputs, grammars, options)
        return [window_result(window, raw, options) for window, raw in zip(windows, raws)]

    def write_json(self, chat: list[dict], schema_key: tuple, schema: dict, options: VisionOptions) -> str:
        loaded = self.loaded
        turns = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in chat]
        text = loaded.processor.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        inputs = loaded.processor(text=[text], return_tensors="pt").to(self.device)
        return self._generate(inputs, [loaded.grammar(schema_key, schema)], options)[0]

    def _generate(self, inputs, grammars: list, options: VisionOptions) -> list[str]:
        """Constrained generation, one grammar per prompt of the batch; the new text of each."""
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        sampling: dict[str, Any] = ({"do_sample": True, "temperature": options.temperature}
                                    if options.temperature > 0 else
                                    {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
        tokenizer = self.loaded.processor.tokenizer
        with torch.inference_mode():
            output = self.loaded.model.generate(
                **inputs, max_new_tokens=options.max_new_tokens, logits_processor=[LogitsProcessor(grammars)],
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **sampling)
        return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
