"""Airflow set-up against a real, migrated metadata database: the gpu pool, the Elasticsearch connection, the
admin's password, and a DAG whose GPU work uses exactly the pool and queue that set-up provides."""

from __future__ import annotations

import json
import uuid

import pytest

from cinedex.orchestration import airflow_setup
from cinedex import cli
from cinedex.core.settings import Settings

GPU_TASKS = {"transcribe", "describe_windows", "summarize_film"}


def pools() -> dict[str, int]:
    from airflow.models.pool import Pool

    return {pool.pool: pool.slots for pool in Pool.get_pools()}


def stored_connections(conn_id: str) -> int:
    from sqlalchemy import func, select

    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(Connection).where(Connection.conn_id == conn_id))


def test_setup_run_twice_leaves_one_gpu_pool_with_one_slot_per_gpu(airflow_home, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", "http://elasticsearch:9200")
    monkeypatch.setenv("CINEDEX_GPU_SLOTS", "3")
    assert cli.main(["airflow-setup"]) == 0
    assert cli.main(["airflow-setup"]) == 0
    assert pools()["gpu"] == 3 and "default_pool" in pools()
    printed = capsys.readouterr().out.splitlines()
    assert printed.count("pool gpu: 3 slot(s)") == 2
    assert printed.count("connection elasticsearch_default: already given, left as it is") == 2
    assert stored_connections("elasticsearch_default") == 0  # the environment's connection is not copied

    monkeypatch.setenv("CINEDEX_GPU_SLOTS", "1")  # a GPU fewer: rerunning set-up shrinks the pool in place
    assert cli.main(["airflow-setup"]) == 0
    assert pools()["gpu"] == 1 and list(pools()).count("gpu") == 1


def test_the_cli_airflow_gets_the_gpu_pool_back_when_it_is_missing(airflow_home):
    from airflow.models.pool import Pool

    airflow_setup.ensure_pools(Settings())
    Pool.delete_pool("gpu")
    cli.airflow_environment(Settings(home=airflow_home))
    assert pools()["gpu"] == Settings().gpu_slots


def test_elasticsearch_connection_is_stored_once_and_only_when_nothing_gives_it(airflow_home, monkeypatch):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = f"cinedex_test_es_{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    try:
        url = "elasticsearch://search-host:9201"
        assert airflow_setup.ensure_elasticsearch_connection(url, conn_id) == f"connection {conn_id}: created ({url})"
        assert airflow_setup.ensure_elasticsearch_connection("elasticsearch://elsewhere:9200", conn_id).endswith(
            "already given, left as it is")
        assert stored_connections(conn_id) == 1
        stored = Connection.get_connection_from_secrets(conn_id)
        assert (stored.conn_type, stored.host, stored.port) == ("elasticsearch", "search-host", 9201)
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", "http://given-by-env:9200")
    assert airflow_setup.ensure_elasticsearch_connection(conn_id=conn_id).endswith("already given, left as it is")
    assert stored_connections(conn_id) == 0


def test_admin_password_goes_to_the_admins_and_leaves_other_users_theirs(airflow_home, monkeypatch, tmp_path):
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    passwords = tmp_path / "auth" / "passwords.json"
    passwords.parent.mkdir()
    passwords.write_text(json.dumps({"viewer": "viewer-password", "admin": "old"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer")
    assert airflow_setup.set_admin_password("s3cret") == ["admin"]
    assert SimpleAuthManager.get_passwords() == {"admin": "s3cret", "viewer": "viewer-password"}
    assert passwords.stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.fixture(scope="module")
def dagbag_with_setup_pools(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    airflow_setup.ensure_pools(Settings())
    return DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags"), known_pools=set(pools()))


def test_dags_name_no_pool_that_setup_does_not_create(dagbag_with_setup_pools):
    from airflow.dag_processing.dagbag import DagBag

    assert dagbag_with_setup_pools.import_errors == {}
    assert dagbag_with_setup_pools.dag_warnings == set()
    # The same check does see a missing pool: without `gpu`, the DAG is reported.
    without_gpu = DagBag(dag_folder=str(cli.PROJECT_ROOT / "dags"), known_pools={"default_pool"})
    assert any("gpu" in warning.message for warning in without_gpu.dag_warnings)


def test_exactly_speech_vision_and_summary_run_on_the_gpu_queue_and_pool(dagbag_with_setup_pools):
    from airflow.configuration import conf

    dag = dagbag_with_setup_pools.get_dag("cinedex_index_video")
    assert {task.task_id for task in dag.tasks if task.queue == airflow_setup.GPU_QUEUE} == GPU_TASKS
    assert {task.task_id for task in dag.tasks if task.pool == airflow_setup.GPU_POOL} == GPU_TASKS
    for task in dag.tasks:
        if task.task_id not in GPU_TASKS:
            assert (task.queue, task.pool) == (conf.get("operators", "default_queue"), "default_pool"), task.task_id
