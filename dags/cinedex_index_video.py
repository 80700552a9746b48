"""Index one video: ingest, frames and audio, speech, events, validation, load into the search index."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk import Asset, Param, dag, get_current_context, task

from cinedex import asr, audio, events, frames, index, ingest, validation
from cinedex.ingest import IngestedVideo
from cinedex.settings import Settings

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

    @task
    def transcribe(ingested: dict, audio_path: str) -> str:
        return str(asr.transcribe_video(video_of(ingested), Path(audio_path) if audio_path else None, run_settings()))

    @task
    def build_events(ingested: dict, transcript_dir: str, frames_dir: str) -> str:
        return str(events.build_events(video_of(ingested), Path(transcript_dir), Path(frames_dir), run_settings()))

    @task
    def validate(ingested: dict, events_dir: str) -> str:
        return str(validation.validate_video_events(video_of(ingested), Path(events_dir), run_settings()))

    @task(outlets=[SEARCH_INDEX])
    def load(ingested: dict, validation_dir: str) -> dict:
        return index.load_video(video_of(ingested), Path(validation_dir), run_settings())

    ingested = ingest_video()
    audio_path = extract_audio(ingested)
    frames_dir = sample_frames(ingested)
    transcript_dir = transcribe(ingested, audio_path)
    events_dir = build_events(ingested, transcript_dir, frames_dir)
    load(ingested, validate(ingested, events_dir))


cinedex_index_video()
