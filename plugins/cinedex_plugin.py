"""The cinedex page inside Airflow: the app mounted in Airflow's API server at /cinedex, behind Airflow's login and
DAG permissions, and linked from Airflow's navigation."""

from __future__ import annotations

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag, requires_authenticated
from airflow.plugins_manager import AirflowPlugin

from cinedex.page.api import create_app
from cinedex.orchestration.dagspec import INDEX_DAG_ID


def run_access(method: str):
    return requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=INDEX_DAG_ID)


def login_url(next_url: str) -> str:
    return get_auth_manager().get_url_login(next_url=next_url)


class CinedexPlugin(AirflowPlugin):
    name = "cinedex"
    fastapi_apps = [{"app": create_app(auth=requires_authenticated(), access=run_access, user=get_user,
                                       login_url=login_url),
                     "url_prefix": "/cinedex", "name": "cinedex"}]
    # Shown inside Airflow's UI (its navigation bar, an iframe at /plugin/cinedex): the same origin and login.
    external_views = [{"name": "cinedex", "href": "/cinedex/", "url_route": "cinedex", "destination": "nav"}]
