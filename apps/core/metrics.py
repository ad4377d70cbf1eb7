"""Prometheus metrics, served at ``/metrics`` to a scraper that holds ``METRICS_TOKEN``.

Two kinds. Counted where they happen: HTTP answers by route template (never the raw path, which holds ids)
and wallet calls by operation and result, with their latency. Read when scraped, from the database and the
broker, so that every web process tells the same story whichever process did the work: notifications waiting
and how long the oldest has waited (the notification lag), webhook deliveries retrying and given up,
reconciliation discrepancies still open, and the depth of each Celery queue.

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, an empty directory per host) so that the counters add up across them. A Celery worker on any host
serves its own counters (tasks finished, wallet calls made) when ``WORKER_METRICS_PORT`` is set, its pool
processes' included through the same multiprocess directory (README, "Metrics").
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

HTTP_REQUESTS = Counter(
    "isv_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram("isv_http_request_seconds", "Time to answer an HTTP request, by route template.", ["route"])
WALLET_CALLS = Counter(
    "isv_wallet_calls_total",
    "Calls to a super app's OpenAPI, by operation, result status (S, F, U; 'error' when the outcome is "
    "unknown) and result code.",
    ["operation", "result_status", "result_code"],
)
WALLET_SECONDS = Histogram(
    "isv_wallet_call_seconds",
    "Duration of a call to a super app's OpenAPI, by operation.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)

CELERY_TASKS = Counter(
    "isv_celery_tasks_total",
    "Celery tasks that finished, by task and state (SUCCESS, FAILURE, RETRY, …).",
    ["task", "state"],
)

#: The queues workers consume (``Procfile``, deploy/): their depth is read from the broker when scraped.
QUEUES = ("default", "callbacks", "wallet", "webhooks", "reconciliation")

logger = logging.getLogger(__name__)


def request_answered(*, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route).observe(seconds)


def task_finished(*, task: str, state: str) -> None:
    CELERY_TASKS.labels(task, state).inc()


def wallet_call_made(*, operation: str, result_status: str, result_code: str, error: bool, seconds: float) -> None:
    status = "error" if error else result_status or "none"
    WALLET_CALLS.labels(operation, status, result_code or "none").inc()
    WALLET_SECONDS.labels(operation).observe(seconds)


class PlatformState:
    """What the database and the broker say now (a prometheus_client custom collector)."""

    def collect(self):
        from apps.callbacks.models import InboundNotification, NotificationStatus
        from apps.reconciliation.models import Discrepancy, DiscrepancyStatus
        from apps.webhooks.models import DeliveryStatus, WebhookDelivery

        waiting_statuses = [NotificationStatus.RECEIVED, NotificationStatus.PARKED]
        notifications = GaugeMetricFamily(
            "isv_notifications",
            "Notifications from super apps by state, where a person may need to act.",
            labels=["status"],
        )
        counted = dict(
            InboundNotification.objects.unscoped()
            .filter(status__in=[*waiting_statuses, NotificationStatus.ANOMALY, NotificationStatus.FAILED])
            .values_list("status")
            .annotate(count=Count("pk"))
        )
        for status in (*waiting_statuses, NotificationStatus.ANOMALY, NotificationStatus.FAILED):
            notifications.add_metric([status], counted.get(status, 0))
        yield notifications

        oldest = (
            InboundNotification.objects.unscoped()
            .filter(status__in=waiting_statuses)
            .aggregate(oldest=Min("received_at"))["oldest"]
        )
        lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "isv_notification_lag_seconds",
            "How long the oldest notification still to be applied has waited.",
            value=lag,
        )

        deliveries = GaugeMetricFamily(
            "isv_webhook_deliveries",
            "Webhook deliveries not delivered: retrying after a failure, or given up.",
            labels=["state"],
        )
        pending = WebhookDelivery.objects.unscoped().filter(status=DeliveryStatus.PENDING)
        deliveries.add_metric(["retrying"], pending.filter(attempt_count__gt=0).count())
        deliveries.add_metric(
            ["failed"], WebhookDelivery.objects.unscoped().filter(status=DeliveryStatus.FAILED).count()
        )
        yield deliveries

        discrepancies = GaugeMetricFamily(
            "isv_reconciliation_discrepancies_open",
            "Reconciliation discrepancies nobody has resolved, by reason.",
            labels=["reason"],
        )
        for reason, count in (
            Discrepancy.objects.unscoped()
            .filter(status=DiscrepancyStatus.OPEN)
            .values_list("reason")
            .annotate(count=Count("pk"))
            .order_by("reason")
        ):
            discrepancies.add_metric([reason], count)
        yield discrepancies

        depths = queue_depths()
        if depths is not None:
            queues = GaugeMetricFamily("isv_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
            for queue, depth in depths.items():
                queues.add_metric([queue], depth)
            yield queues


def queue_depths() -> dict[str, int] | None:
    """Messages waiting per queue on a Redis or file-system broker; ``None`` for another broker, whose own
    exporter knows better (RabbitMQ's ``rabbitmq_prometheus``)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    pipe.llen(queue)
                return dict(zip(QUEUES, pipe.execute(), strict=True))
        except redis.RedisError as error:  # the scrape still answers; /readyz reports the broker
            logger.warning("queue depths unreadable: %s", type(error).__name__)
            return None
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        names = [path.name for path in folder.glob("*.msg")]
        return {queue: sum(name.endswith(f".{queue}.msg") for name in names) for queue in QUEUES}
    return None


_state = CollectorRegistry(auto_describe=False)
_state.register(PlatformState())


def counted_exposition() -> bytes:
    """This process's counters or, in multiprocess mode, all the processes' of the directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        from prometheus_client import REGISTRY as counted
    return generate_latest(counted)


def exposition() -> bytes:
    """The text exposition of every metric: the counters, then the platform's state."""
    return counted_exposition() + generate_latest(_state)


def token_accepted(authorization: str) -> bool:
    """Whether an Authorization header carries ``METRICS_TOKEN`` (which must be set)."""
    token = settings.METRICS_TOKEN
    return bool(token) and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


def serve_worker_metrics() -> None:
    """Serve a Celery worker's counters at ``/metrics`` from a thread of its main process (the platform's
    state is the web's to tell). Its pool processes count into ``PROMETHEUS_MULTIPROC_DIR``, which the
    entry point sets for a worker that serves metrics."""

    def application(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: the metrics are at /metrics.\n"]
        if not token_accepted(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"Send Authorization: Bearer <METRICS_TOKEN>.\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [counted_exposition()]

    if not settings.METRICS_TOKEN:
        logger.warning("WORKER_METRICS_PORT is set but METRICS_TOKEN is not: the worker serves no metrics")
        return
    server = make_server(
        settings.WORKER_METRICS_HOST, settings.WORKER_METRICS_PORT, application, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("worker metrics at port %s", settings.WORKER_METRICS_PORT)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Scrapes are not worth a log line each."""
