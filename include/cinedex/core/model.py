"""The event: the one data model of an indexed moment.

The Great Expectations suite, the JSON schema for constrained decoding and the search mappings are all derived
from this class; nothing else spells out its fields.
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

from pydantic import BaseModel, Field, create_model, model_validator

from cinedex import PIPELINE_VERSION
from cinedex.core.mediatime import MediaTime

SceneType = Literal["dialogue", "action", "establishing", "montage", "title", "transition", "other"]
SCENE_TYPES: tuple[str, ...] = get_args(SceneType)
# "summary" and "chapter" are the film-level pass's documents: the whole film, and its parts.
EventSource = Literal["asr", "vision", "summary", "chapter"]


def event_id(video_id: str, source: str, start_s: float, end_s: float, pipeline_version: str = PIPELINE_VERSION) -> str:
    """Deterministic, so indexing the same video again replaces its documents instead of adding copies."""
    key = f"{video_id}|{source}|{MediaTime(start_s).ms}|{MediaTime(end_s).ms}|{pipeline_version}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Event(BaseModel):
    """A timestamped moment of a film: what is said, what happens, who, where, and what is on screen."""

    id: str = ""
    video_id: str
    start_s: float = Field(description="Start, seconds from the beginning of the film.")
    end_s: float = Field(description="End, seconds from the beginning of the film.")
    start_time: str = Field("", description="Start as HH:MM:SS.")
    end_time: str = Field("", description="End as HH:MM:SS.")
    scene_type: SceneType = "other"
    event: str = Field("", description="One-sentence summary of what happens.")
    characters: list[str] = Field(default_factory=list)
    speaker: str = Field("", description="Who speaks; empty when unknown.")
    content: str = Field("", description="What is said (dialogue) or shown (visual events).")
    dialogue_summary: str = ""
    location: str = ""
    action: str = ""
    emotion: str = ""
    objects_visible: list[str] = Field(default_factory=list)
    spatial_description: str = ""
    on_screen_text: str = ""
    shot_id: int | None = None
    thumbnail: str = Field("", description="Path of the shot's thumbnail image.")
    source: EventSource = "asr"
    language: str = ""
    pipeline_version: str = PIPELINE_VERSION

    @model_validator(mode="after")
    def _derive_times_and_id(self) -> Event:
        # Derived, never supplied by hand (or by a model), so they cannot disagree with start_s/end_s.
        self.start_time = MediaTime(max(self.start_s, 0.0)).hhmmss()
        self.end_time = MediaTime(max(self.end_s, 0.0)).hhmmss()
        if not self.id:
            self.id = event_id(self.video_id, self.source, self.start_s, self.end_s, self.pipeline_version)
        return self

    @classmethod
    def required_fields(cls) -> list[str]:
        return [name for name, field in cls.model_fields.items() if field.is_required()] + ["id", "content"]

    @classmethod
    def text_fields(cls) -> list[str]:
        """Fields holding free text (or lists of it), the ones a search matches against."""
        return [
            name
            for name, field in cls.model_fields.items()
            if field.annotation in (str, list[str])
            and name not in ("id", "video_id", "start_time", "end_time", "thumbnail", "pipeline_version", "language")
        ]


# What the vision model writes: a named subset of Event's fields, their types and descriptions taken from Event so
# the two cannot drift apart. Derived and bookkeeping fields (ids, HH:MM:SS, source, shot, thumbnail) are filled in
# by the pipeline, never by a model.
VISUAL_MOMENT_FIELDS: tuple[str, ...] = (
    "start_s", "end_s", "scene_type", "event", "characters", "speaker", "dialogue_summary", "location", "action",
    "emotion", "objects_visible", "spatial_description", "on_screen_text",
)
MAX_MOMENTS_PER_WINDOW = 8


def _visual_moment_model() -> type[BaseModel]:
    fields = {}
    for name in VISUAL_MOMENT_FIELDS:
        field = Event.model_fields[name]
        # Every field required in the answer: a constrained decoder then writes them all, in a fixed order.
        fields[name] = (field.annotation, Field(description=field.description))
    return create_model("VisualMoment", __doc__="One moment the vision model saw inside a window.", **fields)


VisualMoment = _visual_moment_model()


class WindowAnswer(BaseModel):
    """The vision model's whole answer for one window."""

    moments: list[VisualMoment] = Field(max_length=MAX_MOMENTS_PER_WINDOW)  # type: ignore[valid-type]


def vision_json_schema(window_start: float, window_end: float) -> dict:
    """WindowAnswer's JSON schema with start_s/end_s bounded to the window, for constrained decoding."""
    schema = WindowAnswer.model_json_schema()
    moment = schema["$defs"]["VisualMoment"]["properties"]
    for name in ("start_s", "end_s"):
        moment[name]["minimum"] = float(window_start)
        moment[name]["maximum"] = float(window_end)
    return schema


class SearchFilters(BaseModel):
    """What a search may be narrowed to; every backend applies the same filters. A time range keeps events that
    overlap it."""

    video_id: str | None = None
    start_s: float | None = Field(None, description="Keep events ending after this time.")
    end_s: float | None = Field(None, description="Keep events starting before this time.")
    scene_type: str | None = None
    speaker: str | None = None
    character: str | None = None
