"""Visual inference: a vision-language model describes each window's frames, constrained to `WindowAnswer` JSON.

This is the inference stage (`describe_batch`, one mapped task per batch of the windows stage's plan); its parts:

- `prompt`: the window's prompt (system prompt, dialogue, frames as one video or as images with film times);
- `schema`: the options, the answer schema each window's decoding is constrained to, and how an answer is read;
- `transformers_backend`: Qwen3-VL in this process, constrained with xgrammar;
- `http_backend`: the same prompt to an OpenAI-compatible server (vLLM, SGLang), with `vision_endpoint` set;
- `moments`: the answers back into events; what the schema cannot say (start before end) is repaired there when
  unambiguous, else the moment is quarantined.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cinedex.core.artifacts import settings_key
from cinedex.core.progress import Progress
from cinedex.core.settings import Settings
from cinedex.pipeline.vision.http_backend import OpenAIBackend
from cinedex.pipeline.vision.prompt import MIN_TOKENS_PER_PATCH
from cinedex.pipeline.vision.schema import VisionBackend, VisionOptions, parse_json
from cinedex.pipeline.vision.transformers_backend import TransformersBackend
from cinedex.pipeline.windows import PROMPT_TOKENS, load_plan

__all__ = ["PROMPT_TOKENS", "backend_for", "backend_key", "describe_batch", "options_from", "parse_json",
           "results_dir"]

log = logging.getLogger(__name__)


def options_from(settings: Settings) -> VisionOptions:
    # The context budget covers frames, prompt and answer; the frames get what the prompt and answer leave.
    visual = max(settings.vision_context_tokens - settings.vision_max_new_tokens - PROMPT_TOKENS, MIN_TOKENS_PER_PATCH)
    return VisionOptions(context_tokens=visual, max_new_tokens=settings.vision_max_new_tokens,
                         temperature=settings.vision_temperature,
                         timestamp_alignment=settings.vision_timestamp_alignment,
                         batch_size=settings.vision_batch_size, language=settings.event_language)


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
    progress = Progress(settings.home, len(plan.batches[batch]), "windows described", log,
                        name=f"vision: batch {batch}", part=batch, done=len(plan.batches[batch]) - len(todo))
    options = options_from(settings)
    if not options.language:  # events in the film's own language unless one is configured
        options = options.model_copy(update={"language": plan.language})
    backend = backend_for(settings)
    for start in range(0, len(todo), options.batch_size):
        chunk = todo[start:start + options.batch_size]
        for result in backend.describe(chunk, options):
            target = folder / f"window_{result.window_index:05d}.json"
            scratch = target.with_name(f".{target.stem}.{os.getpid()}.partial")  # two runs of a video may overlap
            scratch.write_text(result.model_dump_json())
            scratch.replace(target)
            progress.advance(1)
    progress.finish()
    return folder
