"""The Django project package (named so as not to shadow the standard library's ``platform``)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
