"""Index one video: ingest, frames and audio; speech, who speaks, on-screen text and people side by side; visual events
and the film's summary on the GPU pool; validation, embeddings, load into the configured index (embedded or
Elasticsearch), and the run's report."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from cinedex.core.settings import Settings
from cinedex.orchestration.dagspec import (GPU_POOL, GPU_QUEUE, INDEX_DAG_ID, UnknownRunField, index_params,
                                           settings_for_run)
from cinedex.page import report
from cinedex.pipeline import (asr, audio, embeddings, events, film, frames, ingest, load as loading,
                              on_screen_text, people, speakers, validation, vision, windows)
from cinedex.pipeline.ingest import IngestedVideo

SEARCH_INDEX = Asset("cinedex://index/events")


def run_settings() -> Settings:
    context = get_current_context()
    try:
        return settings_for_run(context["dag_run"].conf or {}, context["params"])
    except UnknownRunField as exc:  # `airflow dags trigger -c` or the REST API, with fields the form lacks
        raise AirflowFailException(str(exc)) from exc


def video_of(ingested: dict) -> IngestedVideo:
    return IngestedVideo.model_validate(ingested)


@dag(
    dag_id=INDEX_DAG_ID,
    schedule=None,
    catchup=False,
    tags=["cinedex"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    params=index_params(Settings()),  # the form's defaults are the deployment's configured settings
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

    @task(queue=GPU_QUEUE, pool=GPU_POOL)
    def transcribe(ingested: dict, audio_path: str) -> str:
        return str(asr.transcribe_video(video_of(ingested), Path(audio_path) if audio_path else None, run_settings()))

    @task  # beside transcribe: the bundled engine needs no GPU, and neither stage waits for the other
    def diarize_speakers(ingested: dict, audio_path: str) -> str:
        return str(speakers.diarize_video(video_of(ingested), Path(audio_path) if audio_path else None,
                                          run_settings()))

    @task  # beside speech: "" when reading text is off for the run or the video has no picture
    def read_text(ingested: dict, frames_dir: str) -> str:
        folder = on_screen_text.read_on_screen_text(video_of(ingested), Path(frames_dir), run_settings())
        return str(folder) if folder else ""

    @task  # beside speech: "" when finding people is off for the run or the video has no picture
    def find_people(ingested: dict, frames_dir: str) -> str:
        folder = people.find_people_stage(video_of(ingested), Path(frames_dir), run_settings())
        return str(folder) if folder else ""

    @task  # no vision work (vision off, or no picture): an empty list, and describe_windows is skipped
    def plan_windows(ingested: dict, frames_dir: str, transcript_dir: str, speakers_dir: str, texts_dir: str,
                     people_dir: str) -> list[dict]:
        return windows.plan_batches(video_of(ingested), Path(frames_dir), Path(transcript_dir), run_settings(),
                                    Path(speakers_dir), Path(texts_dir) if texts_dir else None,
                                    Path(people_dir) if people_dir else None)

    @task(queue=GPU_QUEUE, pool=GPU_POOL)
    def describe_windows(work: dict) -> str:
        return str(vision.describe_batch(Path(work["windows_dir"]), work["batch"], run_settings()))

    @task(trigger_rule="none_failed")  # runs when there was no vision work and the mapped task was skipped
    def build_events(ingested: dict, transcript_dir: str, speakers_dir: str, frames_dir: str, texts_dir: str,
                     people_dir: str, vision_dirs: list[str]) -> str:
        vision_dir = Path(next(iter(vision_dirs))) if vision_dirs else None
        return str(events.build_events(video_of(ingested), Path(transcript_dir), Path(frames_dir), run_settings(),
                                       vision_dir, Path(speakers_dir), Path(texts_dir) if texts_dir else None,
                                       Path(people_dir) if people_dir else None))

    @task  # without a vision model: an empty list, and summarize_film is skipped without taking a GPU slot
    def plan_summary(events_dir: str) -> list[str]:
        return film.summary_work(Path(events_dir), run_settings())

    @task(queue=GPU_QUEUE, pool=GPU_POOL)
    def summarize_film(ingested: dict, events_dir: str) -> str:
        return str(film.summarize_film(video_of(ingested), Path(events_dir), run_settings()))

    @task(trigger_rule="none_failed")  # the summarized events when summarize_film ran, else build_events' own
    def validate(ingested: dict, events_dir: str, summarized: list[str]) -> str:
        chosen = Path(next(iter(summarized))) if summarized else Path(events_dir)
        return str(validation.validate_video_events(video_of(ingested), chosen, run_settings()))

    @task
    def embed(ingested: dict, validation_dir: str) -> str:
        return str(embeddings.embed_events(video_of(ingested), Path(validation_dir), run_settings()))

    @task(outlets=[SEARCH_INDEX])
    def load(ingested: dict, validation_dir: str, embeddings_dir: str) -> dict:
        return loading.load_video(video_of(ingested), Path(validation_dir), Path(embeddings_dir), run_settings())

    @task
    def write_report(ingested: dict, validation_dir: str, loaded: dict) -> str:  # `loaded`: runs after load
        run_id = get_current_context()["run_id"]
        return str(report.write_report(video_of(ingested), Path(validation_dir), run_settings(), run_id))

    ingested = ingest_video()
    audio_path = extract_audio(ingested)
    frames_dir = sample_frames(ingested)
    transcript_dir = transcribe(ingested, audio_path)
    speakers_dir = diarize_speakers(ingested, audio_path)
    texts_dir = read_text(ingested, frames_dir)
    people_dir = find_people(ingested, frames_dir)
    vision_dirs = describe_windows.expand(work=plan_windows(ingested, frames_dir, transcript_dir, speakers_dir,
                                                            texts_dir, people_dir))
    events_dir = build_events(ingested, transcript_dir, speakers_dir, frames_dir, texts_dir, people_dir,
                              vision_dirs)
    summarized = summarize_film.partial(ingested=ingested).expand(events_dir=plan_summary(events_dir))
    validation_dir = validate(ingested, events_dir, summarized)
    write_report(ingested, validation_dir, load(ingested, validation_dir, embed(ingested, validation_dir)))


cinedex_index_video()
