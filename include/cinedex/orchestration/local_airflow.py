"""Airflow on this machine, for the cinedex page: what `cinedex ui` (and `make ui`) starts.

Airflow's API server, scheduler, DAG processor and triggerer, each its own process as in a deployment, with the
LocalExecutor on the SQLite database `cinedex index` already uses (`$CINEDEX_HOME/airflow`), so a film indexed
from the shell is in the page's library too. One login, `admin`, with a password made on the first start and kept
in `$CINEDEX_HOME/airflow/passwords.json`; the secrets that sign tokens are kept beside it, so a restart keeps
logins. Everything stops together on Ctrl-C (or SIGTERM), the task processes included.

For a team, use the Docker stack (`docker-compose.yaml`: CeleryExecutor, PostgreSQL, the GPU worker pool).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import requests

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"
START_TIMEOUT_S, STOP_TIMEOUT_S = 300.0, 30.0


def _secrets(folder: Path) -> dict[str, str]:
    """The admin's password and the signing secrets, made once and kept (readable by this user only)."""
    path = folder / "ui-secrets.json"
    if path.is_file():
        return json.loads(path.read_text())
    made = {"admin_password": secrets.token_urlsafe(12), "jwt_secret": secrets.token_urlsafe(32),
            "api_secret_key": secrets.token_urlsafe(32)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(made))
    return made


def ui_environment(airflow_home: Path, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the Airflow processes: `base` (default: this process's environment) with the
    LocalExecutor, Airflow's simple login with one admin, and the API server on 127.0.0.1:`port` set over it."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    kept = _secrets(airflow_home)
    passwords = airflow_home / "passwords.json"
    passwords.touch(mode=0o600)
    passwords.write_text(json.dumps({ADMIN: kept["admin_password"]}))
    url = f"http://127.0.0.1:{port}"
    ours = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": kept["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": kept["api_secret_key"],
        "TOKENIZERS_PARALLELISM": "false",
    }
    # The caller's own choices of executor, login or port would not match what is printed: ours win there.
    return {**(os.environ if base is None else base), **ours}


@dataclass
class LocalAirflow:
    """The running components; `stop()` ends them and every process they started."""

    airflow_home: Path
    env: dict[str, str]
    port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_folder(self) -> Path:
        return self.airflow_home / "logs" / "ui"

    @property
    def admin_password(self) -> str:
        return _secrets(self.airflow_home)["admin_password"]

    def start(self) -> None:
        self.log_folder.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            with (self.log_folder / f"{name}.log").open("ab") as log:
                # Each in a session of its own, so stopping it reaches the processes it forks (task processes).
                self.processes[name] = subprocess.Popen([sys.executable, "-m", "airflow", name], env=self.env,
                                                        stdout=log, stderr=subprocess.STDOUT,
                                                        start_new_session=True, cwd=self.airflow_home)

    def dead(self) -> str | None:
        """The first component that exited, with the end of its log; None while all run."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.log_folder / f"{name}.log").read_text(errors="replace")[-2500:]
                return f"{name} exited {process.returncode}; the end of {self.log_folder / name}.log:\n{tail}"
        return None

    def wait_until_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (problem := self.dead()) is not None:
                raise RuntimeError(problem)
            with contextlib.suppress(requests.RequestException):
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                if health.ok and health.json().get("scheduler", {}).get("status") == "healthy":
                    return
            time.sleep(1)
        raise TimeoutError(f"Airflow did not report healthy within {timeout_s:.0f} s; logs in {self.log_folder}")

    def stop(self) -> None:
        """SIGTERM to each component's process group, SIGKILL to whatever of them is left after STOP_TIMEOUT_S."""
        import psutil

        family = []
        for process in self.processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                family += psutil.Process(process.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # A process that left its component's group (a task process in a session of its own) goes too.
        _, alive = psutil.wait_procs(family, timeout=5)
        for straggler in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()


def serve(airflow_home: Path, port: int, open_browser: bool, out: TextIO) -> int:
    """Starts Airflow, says where the page is and how to log in, and runs until Ctrl-C or SIGTERM (0), or until a
    component dies (1, with the end of its log)."""
    airflow = LocalAirflow(airflow_home, ui_environment(airflow_home, port), port)

    def interrupted(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    print(f"Starting Airflow (api-server, scheduler, dag-processor, triggerer); logs in {airflow.log_folder}",
          file=out, flush=True)
    airflow.start()
    try:
        try:
            airflow.wait_until_healthy()
        except (RuntimeError, TimeoutError) as problem:
            print(f"Airflow did not start: {problem}", file=out, flush=True)
            return 1
        page = f"{airflow.url}/cinedex/"
        print(f"\ncinedex page: {page}\nAirflow:      {airflow.url}/\nlogin:        {ADMIN} / "
              f"{airflow.admin_password}\nCtrl-C stops Airflow.\n", file=out, flush=True)
        if open_browser:
            webbrowser.open(page)
        while (problem := airflow.dead()) is None:
            time.sleep(1)
        print(problem, file=out, flush=True)
        return 1
    except KeyboardInterrupt:
        print("Stopping Airflow ...", file=out, flush=True)
        return 0
    finally:
        airflow.stop()
