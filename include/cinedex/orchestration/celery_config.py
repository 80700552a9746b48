"""The Celery configuration of a cinedex deployment: Airflow's own, plus the worker preload.

Named by `[celery] celery_config_options` (AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=
cinedex.orchestration.celery_config.CELERY_CONFIG). The scheduler imports this module too (to publish tasks), so
it stays light: the heavy imports of `cinedex.orchestration.worker_preload` happen only when Celery's
`import_modules` signal fires, which only a starting worker sends, in its main process before it forks its pool
(the same signal Airflow's Celery provider preloads its own modules on).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@import_modules.connect(weak=False)
def preload_in_worker(*args, **kwargs) -> None:
    from cinedex.orchestration.worker_preload import preload

    preload()
