"""Visual inference: a vision-language model describes each window's frames, constrained to `WindowAnswer` JSON.

One prompt per window: a system prompt naming the task and the fields (taken from `VisualMoment`), then the
window's sampled frames as one video and its dialogue lines with their film times. Qwen3-VL writes a time marker
before each temporal patch of a video (`<12.5 seconds>`, the mean time of the two frames it fuses); with
`timestamp_alignment` on, the frames carry their true film times (source fps and absolute frame indices), so the
markers are film time and the model can answer in film time. With it off the frames go in as an untimed video:
the same vision tokens, no markers, and the prompt gives only the window's bounds, so the model must place moments
from the frame order alone (the ablation baseline).

Decoding is constrained with xgrammar to the window's JSON schema, with start_s/end_s bounded to the window; what
the schema cannot say (start before end) is repaired here when unambiguous, else the moment is quarantined.

With `vision_endpoint` set, the same prompt goes to an OpenAI-compatible server (vLLM, SGLang) instead: the frames as
images, each after its `<t seconds>` film-time text, and the schema as `response_format` for the server to enforce.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from cinedex.core.artifacts import settings_key, stage_artifacts
from cinedex.pipeline.asr import load_transcript
from cinedex.pipeline.frames import load_sampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.model import MAX_MOMENTS_PER_WINDOW, VISUAL_MOMENT_FIELDS, Event, VisualMoment, WindowAnswer, vision_json_schema
from cinedex.core.settings import Settings
from cinedex.pipeline.windows import (PATCH_FACTOR, TEMPORAL_PATCH, Window, batches, build_windows, max_frames_for,
                             windows_per_batch)

log = logging.getLogger(__name__)

VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
_MIN_TOKENS_PER_PATCH = 16  # fewer frames rather than pictures smaller than about 128x128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CLAMP_S = 0.5  # a time this close outside the window is read as the window's edge
PROMPT_TOKENS = 600  # system prompt, field list and a window's dialogue, about


class VisionOptions(BaseModel):
    context_tokens: int = Field(1280, ge=1, description="Visual token budget per window (all its frames).")
    max_new_tokens: int = Field(1536, ge=1)
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy.")
    timestamp_alignment: bool = Field(True, description="Frames carry film-time markers (`<t seconds>`).")
    pixels_per_frame: int = Field(448 * 448, ge=PATCH_FACTOR * PATCH_FACTOR, description="Upper bound on each frame's size.")
    batch_size: int = Field(4, ge=1, description="Windows per generate call.")
    max_text_chars: int = Field(240, ge=0, description="Longest free-text value the grammar allows; 0 = no cap "
                                "(cheaper grammars: each capped string is unrolled into that many rules).")
    max_list_items: int = Field(12, ge=1, description="Longest list (characters, objects) the grammar allows.")
    max_moments: int = Field(MAX_MOMENTS_PER_WINDOW, ge=1, le=MAX_MOMENTS_PER_WINDOW,
                             description="Most moments the grammar allows per window.")


class WindowResult(BaseModel):
    window_index: int
    answer: WindowAnswer | None = None
    raw: str = ""
    error: str = Field("", description="Why `answer` is missing (unparseable or truncated output).")


class QuarantinedMoment(BaseModel):
    window_index: int
    moment: dict[str, Any]
    reason: str


class VisionBackend(Protocol):
    def describe(self, windows: list[Window], options: VisionOptions) -> list[WindowResult]: ...

    def write_json(self, chat: list[dict], schema_key: tuple, schema: dict, options: VisionOptions) -> str:
        """A text-only answer to `chat` (role/content-string messages), constrained to `schema`."""


# --- prompt ------------------------------------------------------------------------------------------------------


def system_prompt() -> str:
    lines = []
    for name in VISUAL_MOMENT_FIELDS:
        description = VisualMoment.model_fields[name].description
        lines.append(f"- {name}: {description}" if description else f"- {name}")
    return (
        "You index films. You are shown a stretch of a film (a window) as video frames, with the dialogue spoken "
        "in it. List the distinct moments you see, in time order, as JSON: {\"moments\": [...]}, each moment with "
        "these fields:\n" + "\n".join(lines) + "\n"
        "Times are seconds from the beginning of the film and lie inside the window; end_s is after start_s. "
        "The dialogue lines are labelled by voice (SPEAKER_00, ...): where you see who speaks a line, give that "
        "character's name as speaker. "
        "Use empty strings and lists for what you cannot tell. Write nothing but the JSON."
    )


def user_text(window: Window, timestamp_alignment: bool) -> tuple[str, str]:
    """The text before and after the video in the user turn."""
    if timestamp_alignment:
        before = (f"Window: {window.start_s:.1f} to {window.end_s:.1f} seconds of the film. Each frame is preceded "
                  "by its time in the film.\n")
    else:
        before = (f"Window: {window.start_s:.1f} to {window.end_s:.1f} seconds of the film. The frames are in time "
                  "order.\n")
    if window.lines:
        dialogue = "\n".join(f"[{line.start_s:.1f}-{line.end_s:.1f} s] {line.speaker or 'SPEAKER'}: {line.text}"
                             for line in window.lines)
        after = f"\nDialogue:\n{dialogue}\n"
    else:
        after = "\nNo dialogue.\n"
    return before, after + "Describe the moments as JSON."


def messages(window: Window, options: VisionOptions) -> list[dict]:
    before, after = user_text(window, options.timestamp_alignment)
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt()}]},
        {"role": "user", "content": [{"type": "text", "text": before}, {"type": "video"},
                                     {"type": "text", "text": after}]},
    ]


# --- frames ------------------------------------------------------------------------------------------------------


def fit_frame_times(times: Sequence[float], context_tokens: int) -> list[int]:
    """Indices of the frames to send: all of them if the budget allows each temporal patch a useful size, else
    evenly spaced ones (first and last kept); always at least two (Qwen3-VL fuses frames in pairs)."""
    most = max(TEMPORAL_PATCH, (context_tokens // _MIN_TOKENS_PER_PATCH) * TEMPORAL_PATCH)
    n = len(times)
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def load_frames(window: Window, options: VisionOptions):
    """(frames as a T x H x W x 3 uint8 array, their film times, video metadata for the processor)."""
    import numpy as np
    from PIL import Image

    chosen = [window.frames[i] for i in fit_frame_times([f.time_s for f in window.frames], options.context_tokens)]
    if not chosen:
        raise ValueError(f"window {window.index} has no frames")
    if len(chosen) == 1:
        chosen = chosen * 2  # one picture: a still video of two identical frames at the same time
    pictures, size = [], None
    for frame in chosen:
        with Image.open(frame.path) as image:
            image = image.convert("RGB")
            if size is None:
                scale = min(1.0, math.sqrt(options.pixels_per_frame / (image.width * image.height)))
                size = (max(PATCH_FACTOR, round(image.width * scale)), max(PATCH_FACTOR, round(image.height * scale)))
            if image.size != size:
                image = image.resize(size, Image.Resampling.BICUBIC)
            pictures.append(np.asarray(image))
    times = [f.time_s for f in chosen]
    metadata = {"total_num_frames": len(pictures), "fps": window.source_fps,
                "frames_indices": [round(t * window.source_fps) for t in times],
                "width": size[0], "height": size[1]}
    return np.stack(pictures), times, metadata


def marker_times(times: Sequence[float], source_fps: float) -> list[float]:
    """The times Qwen3-VL's processor writes for these frames: one per pair, the mean of the pair's frame times
    (rounded to the source frame), the last frame repeated when their number is odd."""
    stamps = [round(t * source_fps) / source_fps for t in times]
    if len(stamps) % TEMPORAL_PATCH:
        stamps.append(stamps[-1])
    return [(stamps[i] + stamps[i + 1]) / 2 for i in range(0, len(stamps), TEMPORAL_PATCH)]


# --- model -------------------------------------------------------------------------------------------------------


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


def window_schema(window: Window, options: VisionOptions) -> tuple[tuple, dict]:
    """The window's answer schema, with text and list lengths capped so a runaway decode still ends."""
    schema = vision_json_schema(window.start_s, window.end_s)
    for spec in schema["$defs"]["VisualMoment"]["properties"].values():
        if spec.get("type") == "string" and "enum" not in spec and options.max_text_chars:
            spec["maxLength"] = options.max_text_chars
        elif spec.get("type") == "array":
            spec["maxItems"] = options.max_list_items
            if options.max_text_chars:
                spec["items"]["maxLength"] = options.max_text_chars
    schema["properties"]["moments"]["maxItems"] = options.max_moments
    key = (window.start_s, window.end_s, options.max_text_chars, options.max_list_items, options.max_moments)
    return key, schema


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


def window_result(window: Window, raw: str, options: VisionOptions) -> WindowResult:
    """The parsed answer, or the reason it could not be read (kept with the raw text)."""
    try:
        return WindowResult(window_index=window.index, raw=raw, answer=parse_answer(raw))
    except ValueError as error:
        reason = f"unparseable answer ({len(raw)} chars; max_new_tokens={options.max_new_tokens}): " \
                 f"{' '.join(str(error).splitlines()[:2])}"
        log.warning("vision: window %d: %s", window.index, reason)
        return WindowResult(window_index=window.index, raw=raw, error=reason)


class VisionEndpointError(RuntimeError):
    """The endpoint could not be reached or refused the request: the task fails (and is retried) rather than
    checkpointing a window as failed."""


def frame_images(window: Window, options: VisionOptions) -> list[tuple[float, bytes]]:
    """(film time, JPEG bytes) of the frames to send as separate images, within the window's token budget."""
    import io

    from PIL import Image

    # A lone image is one temporal patch, so it costs what a pair of video frames does: half as many frames.
    times = [f.time_s for f in window.frames]
    chosen = [window.frames[i] for i in fit_frame_times(times, max(1, options.context_tokens // TEMPORAL_PATCH))]
    pixels = min(options.pixels_per_frame, options.context_tokens * PATCH_FACTOR * PATCH_FACTOR // max(1, len(chosen)))
    images = []
    for frame in chosen:
        with Image.open(frame.path) as image:
            scale = math.sqrt(pixels / (image.width * image.height))
            if scale >= 1 and image.format == "JPEG":
                data = Path(frame.path).read_bytes()
            else:
                image = image.convert("RGB")
                if scale < 1:
                    size = (max(PATCH_FACTOR, round(image.width * scale)), max(PATCH_FACTOR, round(image.height * scale)))
                    image = image.resize(size, Image.Resampling.BICUBIC)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                data = buffer.getvalue()
        # Rounded to the source frame, as the processor's video markers are.
        images.append((round(frame.time_s * window.source_fps) / window.source_fps, data))
    return images


def chat_messages(window: Window, options: VisionOptions) -> list[dict]:
    """The window's prompt in the OpenAI chat format: the frames as images, each after its `<t seconds>` marker
    when timestamps are aligned, so the model reads film time as it does from Qwen's video markers."""
    import base64

    before, after = user_text(window, options.timestamp_alignment)
    content: list[dict] = [{"type": "text", "text": before}]
    for time_s, data in frame_images(window, options):
        if options.timestamp_alignment:
            content.append({"type": "text", "text": f"<{time_s:.1f} seconds>"})
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        content.append({"type": "image_url", "image_url": {"url": url}})
    content.append({"type": "text", "text": after})
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": content}]


class OpenAIBackend:
    """A Qwen3-VL (or other vision model) behind an OpenAI-compatible endpoint (vLLM, SGLang): one chat completion
    per window, constrained to the window's JSON schema by the server; up to `batch_size` requests in flight."""

    retryable_status = frozenset({408, 429, 500, 502, 503, 504})

    def __init__(self, base_url: str, model: str, api_key: str = "", *, tries: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 600.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self.timeout = timeout_s

    def request(self, window: Window, options: VisionOptions) -> dict:
        _, schema = window_schema(window, options)
        return self._body(chat_messages(window, options), "window_answer", schema, options)

    def _body(self, chat: list[dict], name: str, schema: dict, options: VisionOptions) -> dict:
        return {
            "model": self.model,
            "messages": chat,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        }

    def write_json(self, chat: list[dict], schema_key: tuple, schema: dict, options: VisionOptions) -> str:
        import httpx

        with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=10.0)) as client:
            reply = self._post(client, self._body(chat, str(schema_key[0]), schema, options))
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise VisionEndpointError(f"vision endpoint {self.url}: not a chat completion ({error!r})") from error

    def _post(self, client, body: dict) -> dict:
        import time

        import httpx

        problem = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = client.post(self.url, json=body, headers=self.headers)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise VisionEndpointError(f"vision endpoint {self.url}: not JSON ({error})") from error
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in self.retryable_status:
                    raise VisionEndpointError(f"vision endpoint {self.url} refused the request: {problem}")
            log.warning("vision: %s (try %d of %d): %s", self.url, attempt + 1, self.tries, problem)
        raise VisionEndpointError(f"vision endpoint {self.url} failed after {self.tries} tries: {problem}")

    def _describe_one(self, client, window: Window, options: VisionOptions) -> WindowResult:
        if not window.frames:
            return WindowResult(window_index=window.index, error="window has no frames")
        reply = self._post(client, self.request(window, options))
        try:
            choice = reply["choices"][0]
            raw = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise VisionEndpointError(f"vision endpoint {self.url}: not a chat completion ({error!r})") from error
        result = window_result(window, raw, options)
        if result.error and choice.get("finish_reason") == "length":
            result.error = "truncated (finish_reason=length); " + result.error
        return result

    def describe(self, windows: list[Window], options: VisionOptions) -> list[WindowResult]:
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        timeout = httpx.Timeout(self.timeout, connect=10.0)
        with httpx.Client(timeout=timeout) as client, \
                ThreadPoolExecutor(max_workers=max(1, min(options.batch_size, len(windows)))) as pool:
            return list(pool.map(lambda w: self._describe_one(client, w, options), windows))


def _strip_controls(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(" ", value).strip()
    if isinstance(value, list):
        return [_strip_controls(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_controls(v) for k, v in value.items()}
    return value


def parse_json(raw: str) -> Any:
    """A model's JSON, read leniently: xgrammar's length-capped strings admit raw control characters, which strict
    JSON rejects; they are read and replaced by spaces."""
    return _strip_controls(json.loads(raw, strict=False))


def parse_answer(raw: str) -> WindowAnswer:
    return WindowAnswer.model_validate(parse_json(raw))


# --- moments to events -------------------------------------------------------------------------------------------


def repair_times(start: float, end: float, window: Window) -> tuple[float, float, str]:
    """(start, end, "") with the times made valid inside the window, or (start, end, reason) when they cannot be
    repaired without guessing."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return start, end, f"non-finite time ({start}, {end})"
    if start > end:
        start, end = end, start
    repaired = []
    for name, value in (("start_s", start), ("end_s", end)):
        if value < window.start_s:
            if window.start_s - value > _CLAMP_S:
                return start, end, (f"{name} {value:.3f} is {window.start_s - value:.3f} s before the window "
                                    f"[{window.start_s:.3f}, {window.end_s:.3f}]")
            value = window.start_s
        elif value > window.end_s:
            if value - window.end_s > _CLAMP_S:
                return start, end, (f"{name} {value:.3f} is {value - window.end_s:.3f} s after the window "
                                    f"[{window.start_s:.3f}, {window.end_s:.3f}]")
            value = window.end_s
        repaired.append(value)
    start, end = repaired
    if end <= start:
        later = [f.time_s for f in window.frames if start < f.time_s <= window.end_s]
        end = min(later) if later else min(start + 1.0, window.end_s)
        if end <= start:
            return start, end, f"zero-length moment at {start:.3f} s, the window's end: no later time to extend to"
    return start, end, ""


def _shot_at(time_s: float, shots) -> Any:
    for shot in shots:
        if shot.start_s <= time_s < shot.end_s:
            return shot
    return shots[-1] if shots and time_s >= shots[-1].start_s else None


def moments_to_events(video_id: str, window: Window, answer: WindowAnswer, shots: Sequence | None = None,
                      ) -> tuple[list[Event], list[QuarantinedMoment]]:
    """Events (source "vision") from a window's answer; moments whose times cannot be repaired, or that say
    nothing, are quarantined with the reason."""
    events: list[Event] = []
    quarantined: list[QuarantinedMoment] = []
    for moment in answer.moments:
        data = moment.model_dump()
        start, end, reason = repair_times(moment.start_s, moment.end_s, window)
        content = moment.event.strip() or moment.action.strip() or moment.dialogue_summary.strip()
        if not reason and not content:
            reason = "no description (event, action and dialogue_summary all empty)"
        if reason:
            quarantined.append(QuarantinedMoment(window_index=window.index, moment=data, reason=reason))
            continue
        extra: dict[str, Any] = {}
        shot = _shot_at((start + end) / 2, shots or [])
        if shot is not None:
            extra = {"shot_id": shot.shot_id, "thumbnail": shot.thumbnail}
        events.append(Event(**{**data, "start_s": start, "end_s": end}, video_id=video_id, content=content,
                            source="vision", **extra))
    return events, quarantined


# --- the pipeline stages ------------------------------------------------------------------------------------------

WINDOWS_FILE = "windows.json"


class WindowPlan(BaseModel):
    windows: list[Window]
    batches: list[list[int]] = Field(description="Window indexes per mapped inference task.")


def options_from(settings: Settings) -> VisionOptions:
    # The context budget covers frames, prompt and answer; the frames get what the prompt and answer leave.
    visual = max(settings.vision_context_tokens - settings.vision_max_new_tokens - PROMPT_TOKENS, _MIN_TOKENS_PER_PATCH)
    return VisionOptions(context_tokens=visual, max_new_tokens=settings.vision_max_new_tokens,
                         temperature=settings.vision_temperature,
                         timestamp_alignment=settings.vision_timestamp_alignment,
                         batch_size=settings.vision_batch_size)


def plan_windows(video: IngestedVideo, frames_dir: Path, transcript_dir: Path, settings: Settings) -> Path:
    """The cached windows stage: `windows.json` (the windows and their batches) in its artifact folder."""
    artifacts = stage_artifacts(settings.artifacts_dir, video.video_id, "windows", frames=Path(frames_dir).name,
                                transcript=Path(transcript_dir).name, target_s=settings.window_target_s,
                                max_s=settings.window_max_s, context_tokens=settings.vision_context_tokens,
                                max_new_tokens=settings.vision_max_new_tokens,
                                windows_per_task=settings.vision_batch_size)
    if artifacts.complete:
        artifacts.log_cached()
        return artifacts.path
    sampling = load_sampling(frames_dir)
    max_frames = max_frames_for(settings.vision_context_tokens, sampling.width, sampling.height,
                                prompt_tokens=PROMPT_TOKENS, max_new_tokens=settings.vision_max_new_tokens)
    windows = build_windows(sampling, load_transcript(transcript_dir), video.info.fps, settings.window_target_s,
                            settings.window_max_s, max_frames)
    # One generate call per mapped task: a 3-hour film at 120 s windows and batches of 4 makes about 23 tasks.
    size = windows_per_batch(len(windows), settings.vision_batch_size)
    plan = WindowPlan(windows=windows, batches=[[w.index for w in batch] for batch in batches(windows, size)])
    with artifacts.writing() as folder:
        (folder / WINDOWS_FILE).write_text(plan.model_dump_json())
    log.info("vision: %s cut into %d windows, %d inference tasks", video.name, len(windows), len(plan.batches))
    return artifacts.path


def load_plan(windows_dir: Path) -> WindowPlan:
    return WindowPlan.model_validate_json((Path(windows_dir) / WINDOWS_FILE).read_text())


def backend_for(settings: Settings) -> VisionBackend:
    if settings.vision_endpoint:
        return OpenAIBackend(settings.vision_endpoint, settings.vision_model, settings.vision_api_key)
    return TransformersBackend(settings.vision_model)


def backend_key(settings: Settings) -> dict:
    """What decides a model's answers: the model, its settings, and how frames reach it (the HTTP backend sends
    them as images, the in-process one as a video), but not which server of a pool answered."""
    return {"model": settings.vision_model, "backend": "openai" if settings.vision_endpoint else "transformers",
            **options_from(settings).model_dump()}


def results_dir(windows_dir: Path, settings: Settings) -> Path:
    """Where each window's answer is checkpointed, inside the (finished, immutable) windows folder."""
    return Path(windows_dir) / f"vision-{settings_key(backend_key(settings))}"


def describe_batch(windows_dir: Path, batch: int, settings: Settings) -> Path:
    """The inference stage for one batch of windows; every window's result is written as soon as it exists, so a
    retried or resumed task redoes only the windows it had not finished."""
    plan = load_plan(windows_dir)
    folder = results_dir(windows_dir, settings)
    folder.mkdir(exist_ok=True)
    todo = [plan.windows[i] for i in plan.batches[batch] if not (folder / f"window_{i:05d}.json").exists()]
    log.info("vision: batch %d: %d windows, %d already done", batch, len(plan.batches[batch]),
             len(plan.batches[batch]) - len(todo))
    options = options_from(settings)
    backend = backend_for(settings)
    for start in range(0, len(todo), options.batch_size):
        chunk = todo[start:start + options.batch_size]
        for result in backend.describe(chunk, options):
            target = folder / f"window_{result.window_index:05d}.json"
            scratch = target.with_name(f".{target.stem}.{os.getpid()}.partial")  # two runs of a video may overlap
            scratch.write_text(result.model_dump_json())
            scratch.replace(target)
        log.info("vision: batch %d: %d of %d windows described", batch, start + len(chunk), len(todo))
    return folder


def visual_events(video_id: str, vision_dir: Path, shots: Sequence) -> tuple[list[Event], list[dict]]:
    """Events from every window's answer, and the quarantined moments (or failed windows) with their reasons."""
    plan = load_plan(Path(vision_dir).parent)
    events: list[Event] = []
    quarantined: list[dict] = []
    for window in plan.windows:
        result = WindowResult.model_validate_json((Path(vision_dir) / f"window_{window.index:05d}.json").read_text())
        if result.answer is None:
            quarantined.append({"window_index": window.index, "reason": f"window failed: {result.error}"})
            continue
        window_events, window_quarantine = moments_to_events(video_id, window, result.answer, shots)
        events.extend(window_events)
        quarantined.extend(q.model_dump() for q in window_quarantine)
    # Two moments with the same time range get distinct ids (ids are made from the time range).
    seen: dict[str, int] = {}
    for event in events:
        count = seen.get(event.id, 0)
        seen[event.id] = count + 1
        if count:
            event.id = f"{event.id}-{count}"
    return events, quarantined
