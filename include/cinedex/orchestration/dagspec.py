"""What the DAG files, the page, the CLI and the daily ingest agree on: the DAGs' ids, the index DAG's tasks in
pipeline order, the GPU pool and queue, and the index DAG's trigger form, made from the per-run settings' own
types, bounds, titles and descriptions (never typed twice)."""

from __future__ import annotations

from typing import Any

from cinedex.core.settings import Settings

INDEX_DAG_ID = "cinedex_index_video"
DAILY_DAG_ID = "cinedex_daily_ingest"
# The index DAG's tasks in pipeline order (the page names the stage a run is in by them).
INDEX_TASKS = ("ingest_video", "extract_audio", "sample_frames", "transcribe", "diarize_speakers", "read_text",
               "find_people", "plan_windows", "describe_windows", "build_events", "plan_summary", "summarize_film",
               "validate", "embed", "load", "write_report")
# Speech and vision inference go to the Celery queue only GPU workers serve, one task per slot of the pool.
GPU_POOL = "gpu"
GPU_QUEUE = "gpu"
# JSON-schema keys an Airflow Param takes from a setting's schema.
_PARAM_KEYS = ("type", "title", "description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "minLength", "maxLength", "pattern", "enum")


class UnknownRunField(ValueError):
    """A run's conf named something the index DAG's form does not have."""


def index_param_names() -> list[str]:
    return ["video", *Settings.per_run_fields()]


def check_conf(conf: dict) -> None:
    """Refuses a run's conf that names anything but the form's fields: the deployment's settings (roots,
    endpoints, keys, thresholds) never come from a run, however it was triggered."""
    unknown = sorted(set(conf) - set(index_param_names()))
    if unknown:
        raise UnknownRunField(f"a run of {INDEX_DAG_ID} may set only {', '.join(index_param_names())}; "
                              f"refused: {', '.join(unknown)}")


def settings_for_run(conf: dict, params: dict) -> Settings:
    """The settings one run of the index DAG works with: the deployment's, with the run's form fields on top."""
    check_conf(conf)
    return Settings().for_run(params)


def index_params(settings: Settings) -> dict[str, Any]:
    """The index DAG's params: the video, then every per-run setting with the deployment's value as default."""
    from airflow.sdk import Param

    params = {"video": Param("", type="string", minLength=1, title="Video",
                             description="Path of the video file, inside one of the configured media roots.")}
    schema = Settings.model_json_schema()["properties"]
    for name in Settings.per_run_fields():
        spec = {key: schema[name][key] for key in _PARAM_KEYS if key in schema[name]}
        params[name] = Param(getattr(settings, name), **spec)
    return params
