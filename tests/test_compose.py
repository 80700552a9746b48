"""docker-compose.yaml: the services of the CeleryExecutor stack, the GPU worker's queue and device, the init
service's set-up, the volumes; every Airflow command parsed by Airflow's own CLI parser; no secret with a default and
no port but the API server's open beyond 127.0.0.1; and the whole file checked by `docker compose config` where a
compose binary is installed: it refuses to start without each secret, and renders the README's generated .env."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
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
# The secrets the file requires (`${VAR:?message}`, no default), and where each must end up once rendered.
SECRETS = {"CINEDEX_ADMIN_PASSWORD", "CINEDEX_JWT_SECRET", "CINEDEX_API_SECRET_KEY", "CINEDEX_FERNET_KEY",
           "CINEDEX_POSTGRES_PASSWORD", "CINEDEX_REDIS_PASSWORD"}
# Public defaults the file once had (or Airflow's compose file has): none may be in the file or what it renders.
PUBLIC_DEFAULTS = ["change-me", "airflow:airflow@", "redis://:@", "POSTGRES_PASSWORD: airflow",
                   'AIRFLOW__CORE__FERNET_KEY: ""', "CINEDEX_ADMIN_PASSWORD:-"]
# Published on 127.0.0.1 only: Elasticsearch runs without security, Kibana and Flower have no login of their own.
LOCAL_ONLY_PORTS = {"elasticsearch": "9200", "kibana": "5601", "flower": "5555"}
# The one service reachable from other machines: the UI and API, behind the login and signed tokens.
PUBLIC_PORTS = {"airflow-apiserver": "8080"}
README = cli.PROJECT_ROOT / "README.md"


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


def required_variables(text: str) -> dict[str, list[str]]:
    """Each `${VAR:?message}` in text: VAR -> its messages."""
    found: dict[str, list[str]] = {}
    for name, message in re.findall(r"\$\{([A-Z0-9_]+):\?([^}]*)\}", text):
        found.setdefault(name, []).append(message)
    return found


def test_every_secret_is_required_with_a_message_that_says_how_to_make_one(compose):
    text = COMPOSE_FILE.read_text()
    required = required_variables(text)
    assert set(required) == SECRETS
    for name in SECRETS:
        # Every use of a secret is required (none falls back to a default, none is a bare ${VAR} that renders empty).
        uses = re.findall(r"\$\{?" + name + r"\b(:?[-?+]?)", text)
        assert uses and set(uses) == {":?"}, (name, uses)
        for message in required[name]:
            assert f"set {name} in .env" in message and "generate it with: python3 -c '" in message, message
    for default in PUBLIC_DEFAULTS:
        assert default not in text, default
    # Whatever looks like a secret, in any service, comes from a required variable; so does any password in a URL.
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"(PASSWORD|SECRET|_KEY|_AUTH)$", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, key, value)
            for password in re.findall(r"://[^:/@\s]*:([^@]*)@", str(value)):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", password), (name, key, value)
    # SimpleAuthManager's users are user:role: the admin's login may default, its password may not.
    users = compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert users == "${CINEDEX_ADMIN_USER:-admin}:admin"
    assert compose["services"]["redis"]["command"][:2] == ["redis-server", "--requirepass"]


def test_only_the_api_server_is_published_beyond_localhost(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            if name in PUBLIC_PORTS:
                assert port == f"{PUBLIC_PORTS[name]}:{PUBLIC_PORTS[name]}", (name, port)
            else:
                assert port == f"127.0.0.1:{LOCAL_ONLY_PORTS[name]}:{LOCAL_ONLY_PORTS[name]}", (name, port)
    assert {name for name, service in services.items() if service.get("ports")} == set(LOCAL_ONLY_PORTS) | set(PUBLIC_PORTS)


def check_secret(name: str, value: str) -> None:
    """A value as the README's and the error messages' commands make it: long, random, URL-safe."""
    if name == "CINEDEX_FERNET_KEY":
        from cryptography.fernet import Fernet

        Fernet(value.encode())  # raises unless 32 bytes in URL-safe base64
    else:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", value), (name, value)


def readme_env_block() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    [block] = [block for block in blocks if "cat > .env" in block]
    return block


def python3_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing but a PATH whose python3 is this Python (the commands need only its stdlib)."""
    bin_dir = tmp_path / "bin"
    if not (bin_dir / "python3").exists():
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "python3").symlink_to(sys.executable)
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/")}


@pytest.fixture(scope="module")
def readme_env(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The .env the README's command writes, and what it holds."""
    tmp_path = tmp_path_factory.mktemp("readme-env")
    workdir = tmp_path / "deploy"
    workdir.mkdir()
    env = python3_on_path(tmp_path)
    block = readme_env_block()
    subprocess.run(["bash", "-euc", block], cwd=workdir, env=env, check=True)
    dotenv = workdir / ".env"
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines() if line)
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600  # readable by its owner only
    # Run again, it keeps the .env it wrote (new secrets would lock the database's volume out).
    again = subprocess.run(["bash", "-euc", block], cwd=workdir, env=env, capture_output=True, text=True)
    assert again.returncode != 0 and dict(line.split("=", 1) for line in dotenv.read_text().splitlines() if line) == values
    return dotenv, values


def test_the_readme_writes_every_secret_with_a_good_value(readme_env):
    _, values = readme_env
    assert set(values) == SECRETS | {"CINEDEX_ADMIN_USER"}
    for name in SECRETS:
        check_secret(name, values[name])
    assert len(set(values[name] for name in SECRETS)) == len(SECRETS)  # each one made on its own


def compose_binary() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    for plugin in COMPOSE_PLUGINS:
        if plugin.is_file():
            return [str(plugin)]
    return [found] if (found := shutil.which("docker-compose")) else None


@pytest.fixture(scope="module")
def compose_command() -> list[str]:
    command = compose_binary()
    if command is None:
        pytest.skip("no docker compose binary here (scripts/check-system.sh installs one when run as root)")
    return command


def compose_config(command: list[str], env_file: Path, *args: str) -> subprocess.CompletedProcess:
    """`docker compose config` with every profile, the variables from env_file only: not this shell's, nor a .env
    a developer keeps beside the compose file."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "--profile", "no-gpu",
                           "--profile", "flower", "config", *args], capture_output=True, text=True,
                          cwd=cli.PROJECT_ROOT, env=env)


def test_docker_compose_accepts_the_file_with_every_profile(compose_command, readme_env):
    dotenv, _ = readme_env
    result = compose_config(compose_command, dotenv, "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_docker_compose_refuses_to_start_without_each_secret(compose_command, readme_env, tmp_path, missing, how):
    _, values = readme_env
    given = {name: value for name, value in values.items() if name != missing}
    if how == "empty":
        given[missing] = ""
    env_file = tmp_path / "partial.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in given.items()))
    result = compose_config(compose_command, env_file, "--quiet")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "required variable" in line]
    assert errors and all(f"required variable {missing} is missing a value: set {missing} in .env" in line
                          for line in errors), result.stderr
    # The command the message gives makes a good value.
    [generate] = set(re.findall(r"generate it with: (python3 -c '[^']*')", result.stderr))
    made = subprocess.run(generate, shell=True, capture_output=True, text=True, check=True,
                          env=python3_on_path(tmp_path)).stdout.strip()
    check_secret(missing, made)


def test_the_rendered_stack_has_the_given_secrets_and_no_public_default(compose_command, readme_env):
    dotenv, values = readme_env
    result = compose_config(compose_command, dotenv, "--format", "json")
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    services = rendered["services"]
    for name in AIRFLOW_SERVICES | {"airflow-worker-gpu-queue-on-cpu", "flower"}:
        env = services[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == values["CINEDEX_JWT_SECRET"], name
        assert env["AIRFLOW__API__SECRET_KEY"] == values["CINEDEX_API_SECRET_KEY"], name
        assert env["AIRFLOW__CORE__FERNET_KEY"] == values["CINEDEX_FERNET_KEY"], name
        password = values["CINEDEX_POSTGRES_PASSWORD"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://airflow:{password}@postgres/airflow"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql://airflow:{password}@postgres/airflow"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{values['CINEDEX_REDIS_PASSWORD']}@redis:6379/0"
        # user:role, the user the README's .env names; its password is the generated one.
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{values['CINEDEX_ADMIN_USER']}:admin"
    assert services["airflow-init"]["environment"]["CINEDEX_ADMIN_PASSWORD"] == values["CINEDEX_ADMIN_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == values["CINEDEX_POSTGRES_PASSWORD"]
    assert services["redis"]["command"] == ["redis-server", "--requirepass", values["CINEDEX_REDIS_PASSWORD"]]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == values["CINEDEX_REDIS_PASSWORD"]
    text = json.dumps(rendered)
    for default in ["change-me", "airflow:airflow@", "redis://:@", '"AIRFLOW__CORE__FERNET_KEY": ""',
                    '"POSTGRES_PASSWORD": "airflow"', '"CINEDEX_ADMIN_PASSWORD": "admin"']:
        assert default not in text, default
    # Ports as published: Elasticsearch, Kibana and Flower on 127.0.0.1 only, the API server everywhere.
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert set(published) == set(LOCAL_ONLY_PORTS) | set(PUBLIC_PORTS)
    for name, port in LOCAL_ONLY_PORTS.items():
        assert [(p.get("host_ip"), p["published"], p["target"]) for p in published[name]] == [("127.0.0.1", port, int(port))]
    for name, port in PUBLIC_PORTS.items():
        assert [(p.get("host_ip"), p["published"], p["target"]) for p in published[name]] == [(None, port, int(port))]
