"""Index one video: ingest, frames and audio, speech, visual events and the film's summary on the GPU pool,
validation, embeddings, load into the configured index (embedded or Elasticsearch)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk import Asset, Param, dag, get_current_context, task

from cinedex.pipeline import asr, audio, embeddings, events, film, frames, ingest, validation, vision
from cinedex.index import embedded as index
from cinedex.page import report
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.settings import Settings

SEARCH_INDEX = Asset("cinedex://index/events")
DEFAULTS = Settings()  # the form's defaults are the deployment's configured settings


def run_settings() -> Settings:
    return Settings().for_run(get_current_context()["params"])


def video_of(ingested: dict) -> IngestedVideo:
    return IngestedVideo.model_validate(ingested)


@dag(
    dag_id="cinedex_index_video",
    schedule=None,
    catchup=False,
    tags=["cinedex"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    params={
        "video": Param("", type="string", minLength=1, title="Video",
                       description="Path of the video file, inside one of the configured media roots."),
        "language": Param("", type="string", title="Spoken language",
                          description="Language code such as `en` or `zh`; empty detects it."),
        "asr_model": Param("", type="string", title="Speech model",
                           description="WhisperX/faster-whisper model name or local directory; empty uses the configured one."),
        "frame_width": Param(DEFAULTS.frame_width, type="integer", minimum=64, maximum=3840, title="Frame width",
                             description="Width in pixels of sampled frames; height follows the aspect ratio."),
        "sample_floor_fps": Param(DEFAULTS.sample_floor_fps, type="number", exclusiveMinimum=0, maximum=30, title="Floor rate (frames/s)",
                                  description="Fewest frames per second kept, also in static shots."),
        "sample_max_fps": Param(DEFAULTS.sample_max_fps, type="number", exclusiveMinimum=0, maximum=30, title="Cap (frames/s)",
                                description="Most frames per second kept, also in fast action."),
        "vision_model": Param(DEFAULTS.vision_model, type="string", title="Vision model",
                              description="Qwen3-VL model id or local folder; `none` indexes speech and shots only."),
        "vision_context_tokens": Param(DEFAULTS.vision_context_tokens, type="integer", minimum=2048, maximum=262144,
                                       title="Context length (tokens)",
                                       description="Tokens one window may use: its frames, the prompt and the answer."),
        "vision_max_new_tokens": Param(DEFAULTS.vision_max_new_tokens, type="integer", minimum=64, maximum=32768,
                                       title="Max output tokens", description="Most tokens the model writes per window."),
        "vision_temperature": Param(DEFAULTS.vision_temperature, type="number", minimum=0, maximum=2,
                                    title="Temperature", description="0 decodes greedily (reproducible)."),
        "vision_timestamp_alignment": Param(DEFAULTS.vision_timestamp_alignment, type="boolean",
                                            title="Timestamp alignment",
                                            description="Give the model each frame's film time (`<t seconds>` markers)."),
        "shot_threshold": Param(DEFAULTS.shot_threshold, type="number", minimum=0.01, maximum=1, title="Cut sensitivity",
                                description="Picture change (0-1) between consecutive frames that counts as a cut; lower finds more cuts."),
    },
    doc_md=__doc__,
)
def cinedex_index_video():
    @task
    def ingest_video() -> dict:
        try:
            return ingest.ingest(get_current_context()["params"]["video"], run_settings()).model_dump()
        except ingest.IngestError as exc:
            raise AirflowFailException(str(exc)) from exc  # bad input stays bad: fail now, no retries

    @task
    def sample_frames(ingested: dict) -> str:
        return str(frames.sample_frames(video_of(ingested), run_settings()))

    @task
    def extract_audio(ingested: dict) -> str:
        path = audio.extract_audio(video_of(ingested), run_settings())
        return str(path) if path else ""  # "" = no audio track (a None return would push no XCom)

    @task(queue="gpu", pool="gpu")
    def transcribe(ingested: dict, audio_path: str) -> str:
        return str(asr.transcribe_video(video_of(ingested), Path(audio_path) if audio_path else None, run_settings()))

    @task
    def plan_windows(ingested: dict, frames_dir: str, transcript_dir: str) -> list[dict]:
        settings, video = run_settings(), video_of(ingested)
        if not settings.vision_enabled or not video.info.has_video:
            return []
        windows_dir = vision.plan_windows(video, Path(frames_dir), Path(transcript_dir), settings)
        return [{"windows_dir": str(windows_dir), "batch": i} for i in range(len(vision.load_plan(windows_dir).batches))]

    @task(queue="gpu", pool="gpu")
    def describe_windows(work: dict) -> str:
        return str(vision.describe_batch(Path(work["windows_dir"]), work["batch"], run_settings()))

    @task(trigger_rule="none_failed")  # runs when there was no vision work and the mapped task was skipped
    def build_events(ingested: dict, transcript_dir: str, frames_dir: str, vision_dirs: list[str]) -> str:
        vision_dir = Path(next(iter(vision_dirs))) if vision_dirs else None
        return str(events.build_events(video_of(ingested), Path(transcript_dir), Path(frames_dir), run_settings(),
                                       vision_dir))

    @task(queue="gpu", pool="gpu")
    def summarize_film(ingested: dict, events_dir: str) -> str:
        return str(film.summarize_film(video_of(ingested), Path(events_dir), run_settings()))

    @task
    def validate(ingested: dict, events_dir: str) -> str:
        return str(validation.validate_video_events(video_of(ingested), Path(events_dir), run_settings()))

    @task
    def embed(ingested: dict, validation_dir: str) -> str:
        return str(embeddings.embed_events(video_of(ingested), Path(validation_dir), run_settings()))

    @task(outlets=[SEARCH_INDEX])
    def load(ingested: dict, validation_dir: str, embeddings_dir: str) -> dict:
        return index.load_video(video_of(ingested), Path(validation_dir), run_settings(), Path(embeddings_dir))

    @task
    def write_report(ingested: dict, validation_dir: str, loaded: dict) -> str:  # `loaded`: runs after load
        run_id = get_current_context()["run_id"]
        return str(report.write_report(video_of(ingested), Path(validation_dir), run_settings(), run_id))

    ingested = ingest_video()
    audio_path = extract_audio(ingested)
    frames_dir = sample_frames(ingested)
    transcript_dir = transcribe(ingested, audio_path)
    vision_dirs = describe_windows.expand(work=plan_windows(ingested, frames_dir, transcript_dir))
    events_dir = build_events(ingested, transcript_dir, frames_dir, vision_dirs)
    validation_dir = validate(ingested, summarize_film(ingested, events_dir))
    write_report(ingested, validation_dir, load(ingested, validation_dir, embed(ingested, validation_dir)))


cinedex_index_video()
