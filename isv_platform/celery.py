"""The Celery application: configured from Django settings (``CELERY_*``), tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "isv_platform.settings")

app = Celery("isv_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
