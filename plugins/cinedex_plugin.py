"""Mounts the cinedex search API in Airflow's API server at /cinedex, behind Airflow's login."""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin

from cinedex.api import create_app


class CinedexPlugin(AirflowPlugin):
    name = "cinedex"
    fastapi_apps = [{"app": create_app(auth=requires_authenticated()), "url_prefix": "/cinedex",
                     "name": "cinedex search"}]
