"""Daily ingestion: each day's inbox folder (`<inbox>/YYYY-MM-DD/`) is triaged, every new video is indexed by its
own `cinedex_index_video` run, and a per-file report says what was indexed, skipped, rejected or failed, and why.
Backfill reprocesses days: `airflow backfill create --dag-id cinedex_daily_ingest --from-date A --to-date B`."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.sdk.exceptions import AirflowFailException

from cinedex.orchestration import inbox
from cinedex.orchestration.dagspec import DAILY_DAG_ID, INDEX_DAG_ID
from cinedex.core.settings import Settings

DEFAULTS = Settings()


def run_day():
    """The inbox folder a run covers: the form's `day`, else the start of the run's data interval (a scheduled or
    backfilled run), else, for a manual run, the day it runs."""
    context = get_current_context()
    if context["params"].get("day"):
        return inbox.parse_day(context["params"]["day"])
    start = context.get("data_interval_start") or context["dag_run"].run_after
    return start.date()


@dag(
    dag_id=DAILY_DAG_ID,
    # A run's logical date is the day it covers (the interval [day, day + 1)), and it starts once that day is over:
    # `backfill --from-date A --to-date B` then means the inbox folders A to B.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.parse(DEFAULTS.daily_start_date, tz="UTC"),
    catchup=DEFAULTS.daily_catchup,
    tags=["cinedex"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={"day": Param("", type="string", title="Day", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                         description="Inbox folder to ingest (YYYY-MM-DD); empty = the run's own day.")},
)
def cinedex_daily_ingest():
    @task
    def triage() -> list[dict]:
        return [f.model_dump() for f in inbox.triage_day(run_day(), Settings())]

    @task
    def index_requests(files: list[dict]) -> list[dict]:
        return inbox.index_requests(files)

    files = triage()
    # Deferred while it waits, so waiting runs hold no worker slot; reset_dag_run reruns a day's failed run.
    index_runs = TriggerDagRunOperator.partial(
        task_id="index_video", trigger_dag_id=INDEX_DAG_ID, wait_for_completion=True, deferrable=True,
        poke_interval=10, reset_dag_run=True,
    ).expand_kwargs(index_requests(files))

    @task(trigger_rule="all_done")
    def report(files: list[dict]) -> dict:
        ti = get_current_context()["ti"]
        run_ids = [f["run_id"] for f in files if f["status"] == "new"]
        states = {run_id: ti.get_dagrun_state(INDEX_DAG_ID, run_id) for run_id in run_ids}
        task_states = ti.get_task_states(dag_id=INDEX_DAG_ID, run_ids=run_ids) if run_ids else {}
        try:
            return inbox.report_day(run_day(), files, states, task_states, Settings())
        except inbox.DayFailed as exc:  # a failed index run fails the day, so rerunning it retries them
            raise AirflowFailException(str(exc)) from exc

    index_runs >> report(files)


cinedex_daily_ingest()
