"""The platform's settings plus the baseline app, so platform and baseline share one gunicorn and one stack."""

from isv_platform.settings import *  # noqa: F403
from isv_platform.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline"]
ROOT_URLCONF = "bench.urls"
