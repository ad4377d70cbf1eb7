"""Liveness and readiness probes, for the process supervisor and load balancer."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core import metrics
from apps.core.api.errors import json_not_found
from apps.core.errors import error_body

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


@require_GET
def metrics_view(request) -> HttpResponse:
    """Prometheus metrics for a scraper that sends ``Authorization: Bearer <METRICS_TOKEN>``; without a token
    configured the endpoint does not exist (404)."""
    if not settings.METRICS_TOKEN:
        return json_not_found("Metrics are off: set METRICS_TOKEN to serve them.")
    if not metrics.token_accepted(request.headers.get("Authorization", "")):
        body = error_body(
            type="authentication_error",
            code="metrics.invalid_token",
            message="Send Authorization: Bearer <METRICS_TOKEN>.",
        )
        return JsonResponse(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
