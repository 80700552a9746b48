"""The prompt for one window: a system prompt naming the task and the fields (taken from `VisualMoment`), then the
window's sampled frames and its dialogue lines with their film times.

For the in-process model the frames go in as one video (`messages`, `load_frames`). Qwen3-VL writes a time marker
before each temporal patch of a video (`<12.5 seconds>`, the mean time of the two frames it fuses, `marker_times`);
with `timestamp_alignment` on, the frames carry their true film times (source fps and absolute frame indices), so
the markers are film time and the model can answer in film time. With it off the frames go in as an untimed video:
the same vision tokens, no markers, and the prompt gives only the window's bounds, so the model must place moments
from the frame order alone (the ablation baseline). For an OpenAI-compatible server the frames go as images, each
after its `<t seconds>` film-time text (`chat_messages`, `frame_images`).

Both forms choose their frames within the window's token budget and open and scale them with the same helpers
(`choose_frames`, `open_frames`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cinedex.core.mediatime import MediaTime
from cinedex.core.model import VISUAL_MOMENT_FIELDS, VisualMoment
from cinedex.pipeline.vision.schema import VisionOptions
from cinedex.pipeline.windows import PATCH_FACTOR, TEMPORAL_PATCH, Window, WindowFrame

MIN_TOKENS_PER_PATCH = 16  # fewer frames rather than pictures smaller than about 128x128


# --- text --------------------------------------------------------------------------------------------------------


def language_name(code: str) -> str:
    """"zh" -> "Chinese", in English (the prompt's language); an unknown code stays as it is."""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(code.replace("-", "_")).get_display_name("en") or code
    except (ValueError, UnknownLocaleError):
        return code


def system_prompt(language: str = "") -> str:
    """The task and the fields; with `language`, the instruction to write every text in it (the film's language,
    or the one configured), so a Chinese film's events are written in Chinese as the seed's index is."""
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
        "Text read on screen by OCR, where there was any, is listed with its times and place: copy what belongs to "
        "a moment into its on_screen_text (correcting misreadings you can see), and use it to tell places and "
        "people. "
        "Use empty strings and lists for what you cannot tell. Write nothing but the JSON."
        + (f" Write the text of every field in {language_name(language)}." if language else "")
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
    if window.texts:
        read = "\n".join(f"[{text.start_s:.1f}-{text.end_s:.1f} s] ({text.where or 'on screen'}) {text.text}"
                         for text in window.texts)
        after += f"On-screen text (OCR):\n{read}\n"
    if window.people:
        seen = "\n".join(f"{person.name}: " + ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in person.spans)
                         for person in window.people)
        after += (f"People on screen (face recognition; one label is one person across the whole film, name them "
                  f"in characters when you know who they are):\n{seen}\n")
    return before, after + "Describe the moments as JSON."


def messages(window: Window, options: VisionOptions) -> list[dict]:
    before, after = user_text(window, options.timestamp_alignment)
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(options.language)}]},
        {"role": "user", "content": [{"type": "text", "text": before}, {"type": "video"},
                                     {"type": "text", "text": after}]},
    ]


# --- frames ------------------------------------------------------------------------------------------------------


def fit_frame_times(times: Sequence[float], context_tokens: int) -> list[int]:
    """Indices of the frames to send: all of them if the budget allows each temporal patch a useful size, else
    evenly spaced ones (first and last kept); always at least two (Qwen3-VL fuses frames in pairs)."""
    most = max(TEMPORAL_PATCH, (context_tokens // MIN_TOKENS_PER_PATCH) * TEMPORAL_PATCH)
    n = len(times)
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def choose_frames(window: Window, context_tokens: int) -> list[WindowFrame]:
    """The window's frames to send within `context_tokens` (`fit_frame_times`)."""
    return [window.frames[i] for i in fit_frame_times([f.time_s for f in window.frames], context_tokens)]


def open_frames(frames: Sequence[WindowFrame], pixels: int, *,
                one_size: bool = False) -> Iterator[tuple[WindowFrame, Any]]:
    """(frame, picture) for each frame, its file open while the caller holds it. A picture of more than `pixels`
    is converted to RGB and scaled down (bicubic) to about `pixels`, each side at least PATCH_FACTOR (a side under
    that is enlarged to it); any other is the file as opened (its `format` kept, so an untouched JPEG can be sent
    as it is). With `one_size` every frame takes the first one's size, as a video's frames must."""
    from PIL import Image

    fit = None
    for frame in frames:
        with Image.open(frame.path) as image:
            if fit is None or not one_size:
                scale = min(1.0, math.sqrt(pixels / (image.width * image.height)))
                size = (max(PATCH_FACTOR, round(image.width * scale)), max(PATCH_FACTOR, round(image.height * scale)))
                fit = size, scale < 1
            size, shrink = fit
            if shrink or image.size != size:
                image = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
            yield frame, image


def load_frames(window: Window, options: VisionOptions):
    """(frames as a T x H x W x 3 uint8 array, their film times, video metadata for the processor)."""
    import numpy as np

    chosen = choose_frames(window, options.context_tokens)
    if not chosen:
        raise ValueError(f"window {window.index} has no frames")
    if len(chosen) == 1:
        chosen = chosen * 2  # one picture: a still video of two identical frames at the same time
    pictures = [np.asarray(image.convert("RGB"))
                for _, image in open_frames(chosen, options.pixels_per_frame, one_size=True)]
    height, width = pictures[0].shape[:2]
    times = [f.time_s for f in chosen]
    metadata = {"total_num_frames": len(pictures), "fps": window.source_fps,
                "frames_indices": [MediaTime(t).frame(window.source_fps) for t in times],
                "width": width, "height": height}
    return np.stack(pictures), times, metadata


def marker_times(times: Sequence[float], source_fps: float) -> list[float]:
    """The times Qwen3-VL's processor writes for these frames: one per pair, the mean of the pair's frame times
    (rounded to the source frame), the last frame repeated when their number is odd."""
    stamps = [MediaTime(t).snapped(source_fps).seconds for t in times]
    if len(stamps) % TEMPORAL_PATCH:
        stamps.append(stamps[-1])
    return [(stamps[i] + stamps[i + 1]) / 2 for i in range(0, len(stamps), TEMPORAL_PATCH)]


def frame_images(window: Window, options: VisionOptions) -> list[tuple[float, bytes]]:
    """(film time, JPEG bytes) of the frames to send as separate images, within the window's token budget."""
    import io

    # A lone image is one temporal patch, so it costs what a pair of video frames does: half as many frames.
    chosen = choose_frames(window, max(1, options.context_tokens // TEMPORAL_PATCH))
    pixels = min(options.pixels_per_frame, options.context_tokens * PATCH_FACTOR * PATCH_FACTOR // max(1, len(chosen)))
    images = []
    for frame, image in open_frames(chosen, pixels):
        if image.format == "JPEG":  # untouched: the file as it is
            data = Path(frame.path).read_bytes()
        else:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=90)
            data = buffer.getvalue()
        # Rounded to the source frame, as the processor's video markers are.
        images.append((MediaTime(frame.time_s).snapped(window.source_fps).seconds, data))
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
    return [{"role": "system", "content": system_prompt(options.language)}, {"role": "user", "content": content}]
