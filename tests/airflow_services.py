"""A real Airflow deployment for tests and benchmarks: its own PostgreSQL database, the api-server, scheduler,
dag-processor and triggerer, and either LocalExecutor or CeleryExecutor on Redis with a default-queue worker and a
`gpu`-queue worker, each a separate process as in production. Talks to it through the REST API and the CLI."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("CINEDEX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("CINEDEX_TEST_REDIS", "redis://127.0.0.1:6379")
ADMIN = ("admin", "cinedex-services-password")
WORKER_NAME_VARIABLE = "CINEDEX_TEST_WORKER_NAME"


def worker_hostname() -> str:
    """Airflow's hostname callable for the test workers: both run on one machine, and the name each task instance
    records must still say which worker ran it."""
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def services_available(redis: bool = True) -> str | None:
    """Why the services cannot be reached, or None when PostgreSQL (and Redis, for Celery) answer."""
    for name, url in (("PostgreSQL", POSTGRES), ("Redis", REDIS))[:2 if redis else 1]:
        host_port = url.split("@")[-1].split("://")[-1].split("/")[0]
        host, port = host_port.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as exc:
            return f"{name} at {host_port}: {exc}"
    return None


@contextlib.contextmanager
def private_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    import psycopg2

    name = f"cinedex_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{POSTGRES}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg2://')}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kill(self) -> None:
        """kill -9 of the component and everything it started (a worker's running tasks too)."""
        self.stop(signal.SIGKILL)


@dataclass
class AirflowStack:
    root: Path
    env: dict[str, str]
    port: int
    executor: str
    components: dict[str, Component] = field(default_factory=dict)
    _token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- processes

    def start(self, name: str, *command: str, extra_env: dict[str, str] | None = None) -> Component:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "airflow", *command], env={**self.env, **(extra_env or {})},
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        component = self.components[name] = Component(name, process, log)
        return component

    def start_worker(self, name: str, queues: str, concurrency: int = 2) -> Component:
        return self.start(name, "celery", "worker", "--queues", queues, "--celery-hostname", f"{name}@%h",
                          "--concurrency", str(concurrency), "--skip-serve-logs",
                          extra_env={WORKER_NAME_VARIABLE: name,
                                     "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})

    def airflow(self, *command: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        """An `airflow` CLI command against this deployment; raises with its output when it fails."""
        done = subprocess.run([sys.executable, "-m", "airflow", *command], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=timeout_s)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def check_alive(self) -> None:
        for component in self.components.values():
            if component.process.poll() is not None:
                tail = component.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{component.name} exited {component.process.returncode}:\n{tail}")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each component's process tree has used so far: its live processes and the
        children they have reaped (a Celery worker's task processes, through its pool processes)."""
        import psutil

        used = {}
        for name, component in self.components.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(component.process.pid)
                total = 0.0
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        t = process.cpu_times()
                        total += t.user + t.system + t.children_user + t.children_system
                used[name] = round(total, 1)
        return used

    # --- REST API

    def api(self, method: str, path: str, **kwargs) -> dict:
        if not self._token:
            reply = requests.post(f"{self.url}/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]},
                                  timeout=30)
            reply.raise_for_status()
            self._token = reply.json()["access_token"]
        reply = requests.request(method, f"{self.url}/api/v2/{path.lstrip('/')}", timeout=60,
                                 headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
        if reply.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:2000]}")
        return reply.json() if reply.content else {}

    def wait_for_dags(self, *dag_ids: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            with contextlib.suppress(RuntimeError, requests.RequestException):
                known = {d["dag_id"] for d in self.api("GET", "dags", params={"limit": 100})["dags"]}
                if set(dag_ids) <= known:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs {dag_ids} not parsed after {timeout_s:.0f} s")
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> str:
        run = self.api("POST", f"dags/{dag_id}/dagRuns",
                       json={"logical_date": None, "conf": conf, **({"dag_run_id": run_id} if run_id else {})})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while (state := self.run_state(dag_id, run_id)) not in ("success", "failed"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout_s:.0f} s\n{self.describe(dag_id, run_id)}")
            time.sleep(2)
        return state

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                        params={"limit": 1000})["task_instances"]

    def describe(self, dag_id: str, run_id: str) -> str:
        """The run's task instances, a line each: for a failing test's message."""
        with contextlib.suppress(Exception):
            return "\n".join(f"  {t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']} "
                             f"on {t.get('hostname')}" for t in self.task_instances(dag_id, run_id))
        return "  (task instances unavailable)"


@contextlib.contextmanager
def airflow_stack(root: Path, executor: str = "CeleryExecutor", extra_env: dict[str, str] | None = None,
                  worker_preload: bool = True, default_worker_concurrency: int = 2) -> Iterator[AirflowStack]:
    """Starts the deployment in `root` (Airflow home, logs) on a private database; stops and drops it after.
    `worker_preload`: Celery workers import the tasks' heavy libraries before forking, as docker-compose.yaml's do
    (off only for the benchmark's baseline). `default_worker_concurrency`: task slots of the default-queue worker
    (the gpu-queue worker has 2)."""
    root.mkdir(parents=True, exist_ok=True)
    passwords = root / "passwords.json"
    passwords.write_text(f'{{"{ADMIN[0]}": "{ADMIN[1]}"}}')
    port = free_port()
    with private_database() as database:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_services.worker_hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{1 + int(uuid.uuid4().int % 15)}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            # Test-sized timings: parse new DAG files and notice a dead worker's task within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "PYTHONPATH": os.pathsep.join([str(PROJECT / "tests"), str(PROJECT / "include"),
                                           os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **({"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "cinedex.orchestration.celery_config.CELERY_CONFIG"}
               if worker_preload else {}),
            **(extra_env or {}),
        }
        stack = AirflowStack(root=root, env=env, port=port, executor=executor)
        try:
            stack.airflow("db", "migrate", timeout_s=600)
            done = subprocess.run([sys.executable, "-m", "cinedex.cli", "airflow-setup"], env=env, cwd=root,
                                  capture_output=True, text=True, timeout=300)  # pools, as the compose init does
            if done.returncode:
                raise RuntimeError(f"cinedex airflow-setup exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
            stack.start("api-server", "api-server", "--port", str(port))
            stack.start("scheduler", "scheduler")
            stack.start("dag-processor", "dag-processor")
            stack.start("triggerer", "triggerer")
            if executor == "CeleryExecutor":
                stack.start_worker("default-worker", "default", default_worker_concurrency)
                stack.start_worker("gpu-worker", "gpu")
            deadline = time.monotonic() + 120
            while True:
                stack.check_alive()
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{stack.url}/api/v2/monitor/health", timeout=5).ok:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("the api-server did not answer within 120 s")
                time.sleep(1)
            yield stack
        finally:
            for component in reversed(list(stack.components.values())):
                component.stop()


@contextlib.contextmanager
def cinedex_ui(cinedex_home: Path, extra_env: dict[str, str]) -> Iterator[dict]:
    """`cinedex ui` (what `make ui` runs) started as a person starts it, with its own SQLite database under
    `cinedex_home`: yields its page's URL, the login it printed and its components' log folder once the index DAG
    is parsed; Ctrl-C (SIGINT) stops it after."""
    import queue
    import threading

    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update({"CINEDEX_HOME": str(cinedex_home), **extra_env})
    ui = subprocess.Popen([sys.executable, "-m", "cinedex.cli", "ui", "--port", str(port), "--no-browser"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cinedex_home.parent)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in ui.stdout], daemon=True).start()
    seen: list[str] = []

    def line_starting(prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            if seen[-1].startswith(prefix):
                return seen[-1]
        raise AssertionError(f"`cinedex ui` printed no {prefix!r} within {timeout_s:.0f} s:\n{''.join(seen)}")

    try:
        page = line_starting("cinedex page:", 300).split(": ", 1)[1].strip()
        user, password = (part.strip() for part in line_starting("login:", 10).split(":", 1)[1].split("/"))
        token = requests.post(f"http://127.0.0.1:{port}/auth/token", json={"username": user, "password": password},
                              timeout=30).json()["access_token"]
        deadline = time.monotonic() + 180  # the DAG processor parses the DAG files first
        while requests.get(f"{page}api/form", headers={"Authorization": f"Bearer {token}"},
                           timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the index DAG was not parsed within 180 s"
            time.sleep(2)
        yield {"url": f"http://127.0.0.1:{port}", "page": page, "login": (user, password),
               "logs": cinedex_home / "airflow" / "logs" / "ui"}
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(90)
        except subprocess.TimeoutExpired:
            ui.kill()
