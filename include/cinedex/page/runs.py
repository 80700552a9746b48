"""Runs of `cinedex_index_video` as the cinedex page sees them, through Airflow's own models: the trigger form's
fields, triggering a run with them, a run's progress and its error, and each film's last run.

Only the Airflow API server imports this module (the plugin's app); the pipeline itself never needs it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from cinedex.core import progress as records
from cinedex.orchestration.dagspec import INDEX_DAG_ID as DAG_ID, INDEX_TASKS as STAGES, check_conf

ACTIVE = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "deferred", "restarting")
FINISHED = ("success", "skipped")
MAX_ERROR_LINES = 5


class DagNotReady(LookupError):
    """The DAG is not (yet) parsed into Airflow's database, or has import errors."""


class UnknownRun(LookupError):
    pass


class FormField(BaseModel):
    name: str
    value: object = None
    schema_: dict = Field(alias="schema", serialization_alias="schema")
    title: str
    description: str = ""


class TaskProgress(BaseModel):
    task_id: str
    state: str = Field(description="The task's state; for a mapped task, the least finished of its instances.")
    instances: int = 1
    try_number: int = 0
    start_date: str | None = None
    end_date: str | None = None
    done: float | None = Field(None, description="Work done so far, in `unit`s, as the stage last reported it.")
    total: float | None = Field(None, description="The stage's work in `unit`s (seconds of film, windows ...).")
    unit: str = ""
    fraction: float = Field(0.0, description="0 to 1: 1 once finished, in between as the stage reports.")
    seconds_left: float | None = Field(None, description="At the stage's rate so far; none until it can tell.")


class RunProgress(BaseModel):
    dag_id: str = DAG_ID
    run_id: str
    state: str
    stage: str = Field(description="The task the run is in now, or the one it ended at.")
    video: str = ""
    paused: bool = Field(False, description="The DAG is paused: the run waits until it is unpaused.")
    start_date: str | None = None
    end_date: str | None = None
    tasks: list[TaskProgress]
    fraction: float = Field(0.0, description="0 to 1: the share of the run's tasks done, each counted as far as "
                                             "it has gone.")
    error: str = Field("", description="Why the run failed: the failed tasks' error lines from their logs.")


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _latest_dag(session):
    from airflow.models import DagModel
    from airflow.models.dagbag import DBDagBag

    model = session.get(DagModel, DAG_ID)
    if model is None or model.is_stale:
        raise DagNotReady(f"the DAG {DAG_ID} is not in Airflow yet: is the dag-processor running?")
    if model.has_import_errors:
        raise DagNotReady(f"the DAG {DAG_ID} has import errors; see Airflow's DAG list")
    dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
    if dag is None:
        raise DagNotReady(f"the DAG {DAG_ID} is not serialized yet")
    return model, dag


def form_fields() -> list[FormField]:
    """The DAG's params, the fields of its trigger form in Airflow, with their defaults and JSON schemas."""
    from airflow.utils.session import create_session

    with create_session() as session:
        _, dag = _latest_dag(session)
        fields = []
        for name in dag.params:
            spec = dag.params.get_param(name).dump()
            fields.append(FormField(name=name, value=spec["value"], schema=spec["schema"],
                                    title=spec["schema"].get("title") or name, description=spec["description"] or ""))
        return fields


def trigger(conf: dict, user_name: str | None = None) -> RunProgress:
    """Starts a run with `conf` checked against the DAG's params, as Airflow's trigger form does (ValueError
    when a field is invalid)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    check_conf(conf)  # UnknownRunField, a ValueError: fields the form does not have
    with create_session() as session:
        _latest_dag(session)
        # Params are validated by create_dagrun; a bad field raises ParamValidationError, a ValueError.
        run = trigger_dag(DAG_ID, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user_name, conf=conf,
                          session=session)
        run_id = run.run_id
    return progress(run_id)


def _stage_order(task_id: str) -> int:
    return STAGES.index(task_id) if task_id in STAGES else len(STAGES)


def _error_lines(task_instance) -> list[str]:
    """The error records of the task's last try, from its log, through Airflow's own log reader."""
    from airflow.utils.log.log_reader import TaskLogReader

    try:
        stream, _ = TaskLogReader().read_log_chunks(task_instance, task_instance.try_number, {"download_logs": True})
    except Exception as error:  # a log that cannot be read must not hide the run's state
        return [f"(the task log could not be read: {error})"]
    lines = []
    for record in stream:
        fields = record.model_dump() if hasattr(record, "model_dump") else dict(record)
        if str(fields.get("level", "")).lower() not in ("error", "critical"):
            continue
        details = fields.get("error_detail") or []
        described = [f"{d.get('exc_type')}: {d.get('exc_value')}" for d in details if isinstance(d, dict)]
        lines.extend(described[-1:] or [str(fields.get("event", ""))])
    return list(dict.fromkeys(line for line in lines if line))[-MAX_ERROR_LINES:]


def _task_progress(task: TaskProgress, instances: list, parts: dict[str, dict]) -> TaskProgress:
    """The task's figures from its progress records (`parts`: part -> record; a mapped task's parts are its map
    indices, each an instance), its fraction counting every finished instance as whole."""
    fractions = []
    for ti in instances:
        part = "" if (ti.map_index is None or ti.map_index < 0) else str(ti.map_index)
        record = parts.get(part)
        if str(ti.state) in FINISHED:
            fractions.append(1.0)
        elif record is not None and str(ti.state) != "none":
            fractions.append(records.fraction(record))
        else:
            fractions.append(0.0)
    task.fraction = round(sum(fractions) / len(fractions), 4) if fractions else 0.0
    if parts:
        figures = records.combined(parts)
        task.done, task.total, task.unit = figures["done"], figures["total"], figures["unit"]
        if task.state not in FINISHED and len(parts) == 1:
            task.seconds_left = records.seconds_left(next(iter(parts.values())))
    return task


def progress(run_id: str, home: Path | None = None) -> RunProgress:
    """The run's state, its tasks' states in pipeline order, the stage it is in, and its error if it failed.
    `home`: the deployment's CINEDEX_HOME, where running stages write their progress records."""
    from airflow.models import DagModel, DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = DagRun.find(dag_id=DAG_ID, run_id=run_id, session=session)
        if not run:
            raise UnknownRun(run_id)
        run = run[0]
        by_task: dict[str, list] = {}
        for ti in run.get_task_instances(session=session):
            by_task.setdefault(ti.task_id, []).append(ti)
        found = records.read_records(home, run.run_id) if home is not None else {}
        tasks = []
        for task_id in sorted(by_task, key=_stage_order):
            instances = by_task[task_id]
            states = [str(ti.state) if ti.state else "none" for ti in instances]
            state = next((s for s in ("failed", "upstream_failed", *ACTIVE, "none") if s in states), states[0])
            task = TaskProgress(task_id=task_id, state=state, instances=len(instances),
                                try_number=max(ti.try_number or 0 for ti in instances),
                                start_date=_iso(min((ti.start_date for ti in instances if ti.start_date),
                                                    default=None)),
                                end_date=_iso(max((ti.end_date for ti in instances if ti.end_date), default=None)))
            tasks.append(_task_progress(task, instances, found.get(task_id, {})))
        stage = next((t.task_id for t in tasks if t.state in ACTIVE), "")
        if not stage:
            stage = next((t.task_id for t in tasks if t.state == "failed"), "")
        if not stage:
            done = [t.task_id for t in tasks if t.state not in ("none", "upstream_failed")]
            stage = done[-1] if done else ""
        error = ""
        if str(run.state) == "failed":
            failed = [ti for task_id in sorted(by_task, key=_stage_order) for ti in by_task[task_id]
                      if str(ti.state) == "failed"]
            error = "\n".join(f"{ti.task_id}: {line}" for ti in failed for line in _error_lines(ti)) or \
                "the run failed; see its task logs in Airflow"
        dag_model = session.get(DagModel, DAG_ID)
        return RunProgress(run_id=run.run_id, state=str(run.state), stage=stage,
                           video=str((run.conf or {}).get("video", "")),
                           paused=bool(dag_model and dag_model.is_paused and str(run.state) == "queued"),
                           start_date=_iso(run.start_date), end_date=_iso(run.end_date), tasks=tasks,
                           fraction=1.0 if str(run.state) == "success" else
                           round(sum(t.fraction for t in tasks) / len(tasks), 4) if tasks else 0.0, error=error)


class LastRun(BaseModel):
    run_id: str
    state: str
    run_after: str | None = None
    end_date: str | None = None


def last_runs(paths: dict[str, str], limit: int = 500) -> dict[str, LastRun]:
    """The newest run of each film (video id -> path as ingested), matched on the run's `video` field."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    by_path = {str(Path(path).resolve()): video_id for video_id, path in paths.items()}
    found: dict[str, LastRun] = {}
    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)
                               .order_by(DagRun.run_after.desc()).limit(limit))
        for run in runs:
            given = str((run.conf or {}).get("video", ""))
            video_id = by_path.get(str(Path(given).resolve())) if given else None
            if video_id and video_id not in found:
                found[video_id] = LastRun(run_id=run.run_id, state=str(run.state), run_after=_iso(run.run_after),
                                          end_date=_iso(run.end_date))
    return found
