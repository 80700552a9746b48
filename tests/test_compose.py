"""docker-compose.yaml: the services of the CeleryExecutor stack, the GPU worker's queue and device, the init
service's set-up, the volumes; every Airflow command parsed by Airflow's own CLI parser; and the whole file checked
by `docker compose config` where a compose binary is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cinedex import cli

COMPOSE_FILE = cli.PROJECT_ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu"}
LONG_RUNNING = AIRFLOW_SERVICES - {"airflow-init"} | {"postgres", "redis", "elasticsearch"}
# Where docker looks for CLI plugins; the compose plugin binary also runs on its own as `docker-compose`.
COMPOSE_PLUGINS = [Path.home() / ".docker/cli-plugins/docker-compose",
                   Path("/usr/local/lib/docker/cli-plugins/docker-compose"),
                   Path("/usr/lib/docker/cli-plugins/docker-compose")]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def test_the_stack_has_every_service_on_one_image(services):
    assert AIRFLOW_SERVICES | {"postgres", "redis", "elasticsearch", "kibana"} <= set(services)
    assert {services[name]["image"] for name in AIRFLOW_SERVICES} == {"cinedex:latest"}
    assert all(services[name]["build"] == "." for name in AIRFLOW_SERVICES)
    assert (cli.PROJECT_ROOT / "Dockerfile").is_file()
    assert services["elasticsearch"]["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:${ELASTIC_VERSION:-9.")


def test_airflow_runs_the_celery_executor_on_redis_and_postgres_and_loads_elasticsearch(services):
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["CINEDEX_INDEX_BACKEND"] == "elasticsearch"
        assert env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"] == "elasticsearch://elasticsearch:9200"
        assert env["CINEDEX_GPU_SLOTS"] == "${CINEDEX_GPU_SLOTS:-1}"


def test_gpu_work_has_its_own_worker_with_an_nvidia_gpu_and_the_rest_the_default_queue(services):
    from airflow.configuration import conf

    gpu_worker = command_of(services["airflow-worker-gpu"])
    assert gpu_worker[:3] == ["airflow", "celery", "worker"]
    assert gpu_worker[gpu_worker.index("--queues") + 1] == "gpu"
    [device] = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == 1
    # The CPU worker takes Airflow's default queue, which is not the GPU queue.
    assert command_of(services["airflow-worker"]) == ["airflow", "celery", "worker"]
    assert conf.get("operators", "default_queue") != "gpu"
    assert "deploy" not in services["airflow-worker"]


def test_the_init_service_migrates_the_database_then_runs_cinedex_setup(services, capsys):
    script = command_of(services["airflow-init"])[-1].splitlines()
    assert script.index("airflow db migrate") < script.index("cinedex airflow-setup")
    assert "set -e" in script  # a failed migration must fail the init service, and so hold the others back
    assert services["airflow-init"]["environment"]["CINEDEX_ADMIN_PASSWORD"]
    with pytest.raises(SystemExit) as exit_info:  # the subcommand the init service runs exists
        cli.main(["airflow-setup", "--help"])
    assert exit_info.value.code == 0 and "usage: cinedex airflow-setup" in capsys.readouterr().out
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name


def test_every_airflow_command_parses_with_this_airflow(services):
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for name, service in services.items():
        if service.get("image") != "cinedex:latest" or name == "airflow-init":
            continue
        command = command_of(service)
        assert command[0] == "airflow", name
        parser.parse_args(command[1:])  # exits on an unknown command or option


def test_long_running_services_have_healthchecks_and_data_lives_in_volumes(compose, services):
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
    for name in AIRFLOW_SERVICES:
        env, volumes = services[name]["environment"], services[name]["volumes"]
        assert f"./inbox:{env['CINEDEX_MEDIA_ROOTS']}" in volumes  # videos dropped in ./inbox may be indexed
        assert f"cinedex:{env['CINEDEX_HOME']}" in volumes  # artifacts and models outlive the containers
        assert "airflow-logs:/opt/airflow/logs" in volumes
        auth_volume = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent
        assert f"airflow-auth:{auth_volume}" in volumes  # the password init writes is the one the API server reads
    assert {"postgres", "elasticsearch", "cinedex", "airflow-logs", "airflow-auth"} <= set(compose["volumes"])
    assert (cli.PROJECT_ROOT / "inbox").is_dir()


def compose_binary() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    for plugin in COMPOSE_PLUGINS:
        if plugin.is_file():
            return [str(plugin)]
    return [found] if (found := shutil.which("docker-compose")) else None


def test_docker_compose_accepts_the_file_with_every_profile():
    command = compose_binary()
    if command is None:
        pytest.skip("no docker compose binary here (scripts/check-system.sh installs one when run as root)")
    result = subprocess.run([*command, "-f", str(COMPOSE_FILE), "--profile", "no-gpu", "--profile", "flower",
                             "config", "--quiet"], capture_output=True, text=True, cwd=cli.PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
