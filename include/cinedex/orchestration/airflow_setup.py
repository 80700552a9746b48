"""What an Airflow deployment of cinedex needs before its first run, set up idempotently through Airflow's models.

- The pool `gpu`: speech and vision tasks take it (`pool="gpu"`) and go to the Celery queue `gpu`, which only GPU
  workers serve; one slot per GPU, so no two tasks share a card. A task naming a pool that does not exist waits
  forever with a single scheduler log line, hence pools are created here and never by hand.
- The connection `elasticsearch_default`, unless something already gives it (`AIRFLOW_CONN_ELASTICSEARCH_DEFAULT`,
  a secrets backend, or the database).
- The admin's password for Airflow's simple auth manager, when one is given; otherwise Airflow makes one up and
  prints it in the API server's log.

cinedex reads its settings from CINEDEX_* environment variables, so it needs no Airflow Variables.

Run it after `airflow db migrate`: `cinedex airflow-setup` (the compose file's init service does).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cinedex.index.elastic import DEFAULT_CONN_ID
from cinedex.core.settings import Settings
from cinedex.orchestration.dagspec import GPU_POOL, GPU_QUEUE

log = logging.getLogger(__name__)

DEFAULT_ELASTICSEARCH_URL = "elasticsearch://localhost:9200"


def ensure_pools(settings: Settings) -> dict[str, int]:
    """Creates the `gpu` pool, or sets its slots to `settings.gpu_slots`; returns each pool's slots."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        pool = Pool.create_or_update_pool(
            GPU_POOL, slots=settings.gpu_slots, include_deferred=False, session=session,
            description=f"Speech and vision inference (Celery queue `{GPU_QUEUE}`): one slot per GPU")
        return {pool.pool: pool.slots}


def ensure_elasticsearch_connection(url: str = DEFAULT_ELASTICSEARCH_URL, conn_id: str = DEFAULT_CONN_ID) -> str:
    """Stores the connection `conn_id` as `url` unless the environment, a secrets backend or the database already
    gives it; says which happened."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        with create_session() as session:
            session.add(Connection(conn_id=conn_id, uri=url))
        return f"connection {conn_id}: created ({url})"
    return f"connection {conn_id}: already given, left as it is"


def set_admin_password(password: str) -> list[str]:
    """Writes `password` for every admin user of the simple auth manager (`[core] simple_auth_manager_users`)
    into the passwords file the API server reads; other users keep theirs. Returns the admins' names."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    admins = [user.username for user in SimpleAuthManager.get_users() if (user.role or "").upper() == "ADMIN"]
    path = Path(SimpleAuthManager.get_generated_password_file())
    text = path.read_text() if path.exists() else ""
    passwords = json.loads(text) if text.strip() else {}
    passwords.update(dict.fromkeys(admins, password))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords) + "\n")
    path.chmod(0o600)
    return admins


def set_up_airflow(settings: Settings, elasticsearch_url: str = DEFAULT_ELASTICSEARCH_URL,
                   admin_password: str = "") -> list[str]:
    """Everything above, in a database `airflow db migrate` has prepared; returns one line per thing done."""
    done = [f"pool {name}: {slots} slot(s)" for name, slots in ensure_pools(settings).items()]
    done.append(ensure_elasticsearch_connection(elasticsearch_url))
    if admin_password:
        done.append(f"admin password set for {', '.join(set_admin_password(admin_password)) or 'no admin user'}")
    return done
