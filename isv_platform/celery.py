"""The Celery application: configured from Django settings (``CELERY_*``), tasks found in every app."""

import os

from celery import Celery
from celery.signals import task_postrun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "isv_platform.settings")

app = Celery("isv_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _serve_metrics(**_kwargs) -> None:
    from django.conf import settings

    from apps.core import metrics

    if settings.WORKER_METRICS_PORT:
        metrics.serve_worker_metrics()


@task_postrun.connect
def _count_task(task=None, state=None, **_kwargs) -> None:
    from apps.core import metrics

    metrics.task_finished(task=task.name, state=state or "UNKNOWN")
