"""The event: the one data model of an indexed moment.

The Great Expectations suite, the JSON schema for constrained decoding and the search mappings are all derived
from this class; nothing else spells out its fields.
"""

from __future__ import annotations

import functools
import hashlib
import typing
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, Field, create_model, model_validator

from cinedex import PIPELINE_VERSION
from cinedex.core.mediatime import MediaTime

SceneType = Literal["dialogue", "action", "establishing", "montage", "title", "transition", "other"]
SCENE_TYPES: tuple[str, ...] = get_args(SceneType)
# "summary" and "chapter" are the film-level pass's documents: the whole film, and its parts; "ocr" is text read
# on screen (captions, signs, title cards).
EventSource = Literal["asr", "vision", "summary", "chapter", "ocr"]


def event_id(video_id: str, source: str, start_s: float, end_s: float, text: str = "",
             pipeline_version: str = PIPELINE_VERSION) -> str:
    """Deterministic, so indexing the same video again replaces its documents instead of adding copies; the text
    is part of it, so two different events at the same times (two lines Whisper timed alike) keep apart."""
    key = f"{video_id}|{source}|{MediaTime(start_s).ms}|{MediaTime(end_s).ms}|{pipeline_version}|{text}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Indexed:
    """How an `Event` field is indexed and searched, declared once on the field (`Annotated[str, Indexed(...)]`).
    The tantivy schema, the Elasticsearch mapping, the BM25 fields with their boosts, phrase fields and highlight
    order, the embedded passage, the kNN filter columns and the validation suite's media-time checks are all read
    from these declarations (see `EventFields`).

    role: `text` free text (analysed, searched, highlighted); `name` free text that is also filtered whole (who
    speaks, who is on screen); `keyword` matched whole only (ids, enumerations); `range` a number searched by range
    (media times); `stored` shown with a hit, never searched.
    """

    role: Literal["text", "name", "keyword", "range", "stored"]
    boost: float = 1.0  # BM25 weight of a text or name field
    phrase: bool = False  # also matched as a phrase, a bonus where the query's words come in order
    embed: int = 0  # place in the passage that is embedded for kNN, 1 first; 0 = not embedded
    filter: bool = False  # narrowed by a search filter: a column of the embedded kNN filters as well


class Event(BaseModel):
    """A timestamped moment of a film: what is said, what happens, who, where, and what is on screen."""

    id: Annotated[str, Indexed("keyword")] = ""
    video_id: Annotated[str, Indexed("keyword", filter=True)]
    start_s: Annotated[float, Indexed("range", filter=True)] = Field(
        description="Start, seconds from the beginning of the film.")
    end_s: Annotated[float, Indexed("range", filter=True)] = Field(
        description="End, seconds from the beginning of the film.")
    start_time: Annotated[str, Indexed("stored")] = Field("", description="Start as HH:MM:SS.")
    end_time: Annotated[str, Indexed("stored")] = Field("", description="End as HH:MM:SS.")
    scene_type: Annotated[SceneType, Indexed("keyword", filter=True)] = "other"
    event: Annotated[str, Indexed("text", boost=2.0, phrase=True, embed=1)] = Field(
        "", description="One-sentence summary of what happens.")
    characters: Annotated[list[str], Indexed("name", filter=True, embed=7)] = Field(default_factory=list)
    speaker: Annotated[str, Indexed("name", filter=True)] = Field("", description="Who speaks; empty when unknown.")
    content: Annotated[str, Indexed("text", boost=2.0, phrase=True, embed=2)] = Field(
        "", description="What is said (dialogue) or shown (visual events).")
    dialogue_summary: Annotated[str, Indexed("text", embed=3)] = ""
    location: Annotated[str, Indexed("text", embed=5)] = ""
    action: Annotated[str, Indexed("text", embed=4)] = ""
    emotion: Annotated[str, Indexed("text", embed=6)] = ""
    objects_visible: Annotated[list[str], Indexed("text", embed=8)] = Field(default_factory=list)
    spatial_description: Annotated[str, Indexed("text", embed=9)] = ""
    on_screen_text: Annotated[str, Indexed("text", embed=10)] = ""
    people: Annotated[list[str], Indexed("name", filter=True)] = Field(
        default_factory=list, description="Who is on screen, recognised by their faces: a name where one is known, "
        "else Person 1, Person 2, ...")
    shot_id: Annotated[int | None, Indexed("stored")] = None
    thumbnail: Annotated[str, Indexed("stored")] = Field("", description="Path of the shot's thumbnail image.")
    source: Annotated[EventSource, Indexed("keyword")] = "asr"
    language: Annotated[str, Indexed("keyword")] = ""
    pipeline_version: Annotated[str, Indexed("keyword")] = PIPELINE_VERSION

    @model_validator(mode="after")
    def _derive_times_and_id(self) -> Event:
        # Derived, never supplied by hand (or by a model), so they cannot disagree with start_s/end_s.
        self.start_time = MediaTime(max(self.start_s, 0.0)).hhmmss()
        self.end_time = MediaTime(max(self.end_s, 0.0)).hhmmss()
        if not self.id:
            self.id = event_id(self.video_id, self.source, self.start_s, self.end_s,
                               f"{self.event}\n{self.content}", self.pipeline_version)
        return self

    @classmethod
    def required_fields(cls) -> list[str]:
        return [name for name, field in cls.model_fields.items() if field.is_required()] + ["id", "content"]


@dataclass(frozen=True, eq=False)  # one per model (`of` is cached): compared and hashed by identity
class EventFields:
    """The field lists of an event model, all read from its `Indexed` declarations: `EventFields.of(Event)`."""

    model: type[Event]
    roles: dict[str, Indexed]

    @classmethod
    @functools.cache
    def of(cls, model: type[Event]) -> EventFields:
        roles = {}
        for name, field in model.model_fields.items():
            declared = [m for m in field.metadata if isinstance(m, Indexed)]
            if len(declared) != 1:
                raise TypeError(f"{model.__name__}.{name} must declare its index role once: "
                                f"Annotated[..., Indexed(role)]")
            roles[name] = declared[0]
        return cls(model, roles)

    def _with(self, *roles: str) -> tuple[str, ...]:
        return tuple(name for name, spec in self.roles.items() if spec.role in roles)

    @property
    def text(self) -> tuple[str, ...]:
        """Searched as words: free text and names."""
        return self._with("text", "name")

    @property
    def names(self) -> tuple[str, ...]:
        """Searched as words and filtered whole."""
        return self._with("name")

    @property
    def exact(self) -> tuple[str, ...]:
        """Matched whole: keywords and names."""
        return self._with("keyword", "name")

    @property
    def lists(self) -> tuple[str, ...]:
        """Fields holding lists: a filter on one keeps the events whose list holds the value."""
        return tuple(name for name, field in self.model.model_fields.items()
                     if typing.get_origin(field.annotation) is list)

    @property
    def ranges(self) -> tuple[str, ...]:
        return self._with("range")

    @property
    def stored_only(self) -> tuple[str, ...]:
        return self._with("stored")

    @property
    def phrase(self) -> tuple[str, ...]:
        return tuple(name for name in self.text if self.roles[name].phrase)

    @property
    def boosts(self) -> dict[str, float]:
        return {name: self.roles[name].boost for name in self.text}

    @property
    def highlight_order(self) -> tuple[str, ...]:
        """The text fields a hit's snippet is taken from, the most weighted first."""
        return tuple(sorted(self.text, key=lambda name: -self.roles[name].boost))

    @property
    def embedded(self) -> tuple[str, ...]:
        """The fields of the passage embedded for kNN, in passage order."""
        return tuple(sorted((n for n, spec in self.roles.items() if spec.embed), key=lambda n: self.roles[n].embed))

    @property
    def filterable(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.roles.items() if spec.filter)

    def passage(self, event: Event) -> str:
        """What an event means, in one passage: what happens and what is said first, then who, where and what is
        seen; each distinct text once."""
        seen: dict[str, None] = {}
        for name in self.embedded:
            value = getattr(event, name)
            for part in ([", ".join(value)] if isinstance(value, list) else [value]):
                if part and part.strip():
                    seen.setdefault(" ".join(part.split()), None)
        return ". ".join(seen)


EVENT_FIELDS = EventFields.of(Event)


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


@dataclass(frozen=True)
class Narrows:
    """What a search filter keeps: events whose `field` equals the filter's value (holds it, for a list), or is
    greater or less than it. Each backend translates these conditions, and only these, once."""

    field: str
    op: Literal["==", ">", "<"] = "=="


@dataclass(frozen=True)
class Condition:
    field: str
    op: Literal["==", ">", "<"]
    value: str | float


class SearchFilters(BaseModel):
    """What a search may be narrowed to; every backend applies the same filters. A time range keeps events that
    overlap it."""

    video_id: Annotated[str | None, Narrows("video_id")] = None
    start_s: Annotated[float | None, Narrows("end_s", ">")] = Field(None, description="Keep events ending after "
                                                                     "this time.")
    end_s: Annotated[float | None, Narrows("start_s", "<")] = Field(None, description="Keep events starting "
                                                                     "before this time.")
    scene_type: Annotated[str | None, Narrows("scene_type")] = None
    speaker: Annotated[str | None, Narrows("speaker")] = None
    character: Annotated[str | None, Narrows("characters")] = None
    person: Annotated[str | None, Narrows("people")] = Field(None, description="Keep events where this person is "
                                                              "on screen.")

    def conditions(self) -> list[Condition]:
        """The filters that are set, as conditions on Event fields."""
        found = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None:
                narrows = next(m for m in field.metadata if isinstance(m, Narrows))
                found.append(Condition(narrows.field, narrows.op, value))
        return found


def _check_filters() -> None:
    for name, field in SearchFilters.model_fields.items():
        narrows = [m for m in field.metadata if isinstance(m, Narrows)]
        if len(narrows) != 1 or narrows[0].field not in EVENT_FIELDS.filterable:
            raise TypeError(f"SearchFilters.{name} must narrow one filterable Event field")


_check_filters()


# --- event files: one JSON object per line ----------------------------------------------------------------------

def write_events(events: list[Event], path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for event in events:
            f.write(event.model_dump_json() + "\n")


def read_events(path) -> list[Event]:
    with open(path, encoding="utf-8") as f:
        return [Event.model_validate_json(line) for line in f if line.strip()]
