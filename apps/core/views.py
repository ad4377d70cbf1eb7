"""Liveness and readiness probes, for the process supervisor and load balancer."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def healthz(request) -> JsonResponse:
    """The process is alive and serving; checks nothing else, so it never flaps with a dependency."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.READINESS_TIMEOUT_SECONDS)


@require_GET
def readyz(request) -> JsonResponse:
    """The database and the Celery broker answer: safe to route traffic here."""
    checks = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
        else:
            checks[name] = "ok"
    ready = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)
