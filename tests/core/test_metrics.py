"""/metrics: off without a token, refused without the right one, and after a payment flow against the sandbox
wallet it tells what happened — the API's answers by route, the wallet calls and their results, notifications
waiting and their lag, and the queues."""

from __future__ import annotations

import datetime

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.callbacks.models import InboundNotification, NotificationStatus
from tests.callbacks.inbox import drain_inbox
from tests.callbacks.test_exactly_once import _pending_payment, _settled, _signed
from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant ready to take payments
from tests.payments.test_orders import _order
from tests.sandbox.conftest import join_notifiers
from tests.superapps.test_client_against_sandbox import _pay_at_cashier
from tests.worker import METRICS_TOKEN as WORKER_TOKEN
from tests.worker import celery_worker, wait_for  # noqa: F401 - a real worker that serves its metrics

TOKEN = "scrape-7c1f0e"


def _scrape() -> dict[tuple[str, tuple], float]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return _samples(response.content.decode())


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_token(db, settings):
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "request.unknown_route")


@pytest.mark.parametrize("authorization", ["", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_scraper_without_the_token(db, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "metrics.invalid_token")
    assert b"isv_" not in response.content


def test_after_a_payment_the_metrics_tell_what_happened(world, api, shop, settings):  # noqa: F811
    settings.METRICS_TOKEN = TOKEN
    before = _scrape()

    created = _order(api, world)
    assert created.status_code == 201
    _pay_at_cashier(created.json()["trade_pay"]["paymentUrl"])
    join_notifiers()  # the sandbox's notification of the payment has arrived, not yet applied
    InboundNotification.objects.unscoped().filter(status=NotificationStatus.RECEIVED).update(
        received_at=timezone.now() - datetime.timedelta(seconds=90)
    )
    waiting = _scrape()
    drain_inbox()
    after = _scrape()

    orders_created = {"route": "api/v1/orders", "method": "POST", "status": "201"}
    assert (
        _value(after, "isv_http_requests_total", **orders_created)
        == _value(before, "isv_http_requests_total", **orders_created) + 1
    )
    assert _value(after, "isv_http_request_seconds_count", route="api/v1/orders") > 0
    accepted = {"operation": "payments/pay", "result_status": "A", "result_code": "ACCEPT"}  # the cashier's turn
    assert (
        _value(after, "isv_wallet_calls_total", **accepted) == _value(before, "isv_wallet_calls_total", **accepted) + 1
    )
    assert _value(after, "isv_wallet_call_seconds_count", operation="payments/pay") >= 1

    assert _value(waiting, "isv_notifications", status="received") == 1
    assert _value(waiting, "isv_notification_lag_seconds") >= 90
    assert _value(after, "isv_notifications", status="received") == 0
    assert _value(after, "isv_notification_lag_seconds") == 0
    assert ("isv_queue_depth", (("queue", "callbacks"),)) in after
    assert ("isv_webhook_deliveries", (("state", "failed"),)) in after


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_serves_the_counts_of_the_tasks_its_pool_processes_ran(
    world,
    api,
    shop,  # noqa: F811
    wallet,  # noqa: F811
    celery_worker,  # noqa: F811
):
    payment = _pending_payment(api, world)
    path, body, headers = _signed(wallet, payment, "S")
    assert httpx.post(f"{wallet.base_url}{path}", content=body, headers=headers).status_code == 200
    wait_for(_settled, what="the worker to process the notification")

    assert httpx.get(celery_worker.metrics_url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = httpx.get(celery_worker.metrics_url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"})

    assert scraped.status_code == 200
    processed = _value(
        _samples(scraped.text), "isv_celery_tasks_total", task="callbacks.process_notification", state="SUCCESS"
    )
    assert processed >= 1  # other test processes may feed the same queue
