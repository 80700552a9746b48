"""What the vision model is asked to write and how its answer is read: the stage's options, each window's answer
schema (`WindowAnswer`, its times bounded to the window and its free text and lists capped so a runaway decode
still ends), the lenient parse of the model's JSON, and the `VisionBackend` protocol the backends implement."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from pydantic import BaseModel, Field

from cinedex.core.model import MAX_MOMENTS_PER_WINDOW, WindowAnswer, vision_json_schema
from cinedex.pipeline.windows import PATCH_FACTOR, Window

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    language: str = Field("", description="Language code the moments are written in (`zh`, `en`, ...); empty = "
                                          "whatever the model chooses.")


class WindowResult(BaseModel):
    window_index: int
    answer: WindowAnswer | None = None
    raw: str = ""
    error: str = Field("", description="Why `answer` is missing (unparseable or truncated output).")


class VisionBackend(Protocol):
    def describe(self, windows: list[Window], options: VisionOptions) -> list[WindowResult]: ...

    def write_json(self, chat: list[dict], schema_key: tuple, schema: dict, options: VisionOptions) -> str:
        """A text-only answer to `chat` (role/content-string messages), constrained to `schema`."""


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


def window_result(window: Window, raw: str, options: VisionOptions) -> WindowResult:
    """The parsed answer, or the reason it could not be read (kept with the raw text)."""
    try:
        return WindowResult(window_index=window.index, raw=raw, answer=parse_answer(raw))
    except ValueError as error:
        reason = f"unparseable answer ({len(raw)} chars; max_new_tokens={options.max_new_tokens}): " \
                 f"{' '.join(str(error).splitlines()[:2])}"
        log.warning("vision: window %d: %s", window.index, reason)
        return WindowResult(window_index=window.index, raw=raw, error=reason)
