"""Exactly-once effects over at-least-once, unordered delivery (T-REL-1, T-REL-2, T-REL-5): with a real
Celery worker on Redis and PostgreSQL where that is what the behaviour depends on."""

import itertools
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from django.test import Client

from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.payments.models import Order, Payment, PaymentEvent
from apps.sandbox.services import WALLET_KEY_VERSION, wallet_private_key
from apps.superapps.client import signing
from apps.webhooks.models import WebhookEvent
from tests.callbacks.inbox import arrived, drain_inbox
from tests.payments.test_orders import _order
from tests.worker import _database_url, wait_for

pytestmark = pytest.mark.reliability

TERMINAL = {"paid", "failed", "closed", "refunded", "partially_refunded"}


def _signed(wallet, payment: Payment, status: str) -> tuple[str, bytes, dict]:
    """One notifyPayment delivery (path, body, headers) as the wallet signs it."""
    path = f"/callbacks/{wallet.super_app.callback_token}/payments/notify"
    body = json.dumps(
        {
            "paymentRequestId": payment.payment_request_id,
            "paymentId": "2026112200000042",
            "paymentResult": {"resultCode": "SUCCESS" if status == "S" else "FAILED", "resultStatus": status},
            "paymentAmount": {"currency": "USD", "value": str(payment.amount)},
        }
    ).encode()
    request_time = signing.now_timestamp()
    header = signing.sign(
        wallet_private_key(),
        path=path,
        client_id="client-shop-app",
        timestamp=request_time,
        body=body,
        key_version=str(WALLET_KEY_VERSION),
    )
    headers = {
        "Content-Type": "application/json",
        "Client-Id": "client-shop-app",
        "Request-Time": request_time,
        "Signature": header,
    }
    return path, body, headers


def _pending_payment(api, world) -> Payment:
    order_id = _order(api, world).json()["id"]
    return Payment.objects.unscoped().select_related("order").get(order__public_id=order_id)


def _transitions(order: Order) -> list[tuple[str, str]]:
    return list(
        PaymentEvent.objects.unscoped()
        .filter(order=order, source="wallet_notification")
        .values_list("subject", "to_status")
        .order_by("created_at")
    )


def _settled() -> bool:
    open_rows = arrived().filter(status__in=[NotificationStatus.RECEIVED, NotificationStatus.PARKED])
    return not open_rows.exists()


@pytest.mark.postgres
@pytest.mark.redis
def test_fifty_identical_notifications_at_once_make_one_transition(world, api, shop, wallet, celery_worker, figures):
    payment = _pending_payment(api, world)
    path, body, headers = _signed(wallet, payment, "S")

    def deliver(_):
        with httpx.Client(base_url=wallet.base_url, timeout=30) as http:
            return http.post(path, content=body, headers=headers)

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(deliver, range(50)))
    assert {(answer.status_code, answer.json()["result"]["resultStatus"]) for answer in answers} == {(200, "S")}
    wait_for(_settled, what="the worker to process the inbox")

    assert Order.objects.unscoped().get(pk=payment.order_id).status == "paid"
    assert _transitions(payment.order) == [("payment", "succeeded"), ("order", "paid")]
    statuses = list(arrived().values_list("status", flat=True))
    assert (statuses.count("processed"), statuses.count("duplicate"), len(statuses)) == (1, 49, 50)
    told = WebhookEvent.objects.unscoped().filter(merchant_id=payment.merchant_id, type="order.paid")
    assert told.count() == 1  # one webhook event, so one delivery per endpoint
    figures.record(
        "T-REL-1",
        f"{len(answers)} identical notifications at once (real worker, PostgreSQL, Redis): "
        f"{statuses.count('processed')} processed, {statuses.count('duplicate')} duplicates, "
        f"{len(_transitions(payment.order))} transitions (payment, order), {told.count()} webhook event",
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_a_task_whose_worker_process_is_killed_is_done_again_once(world, api, shop, wallet, celery_worker, figures):
    payment = _pending_payment(api, world)
    path, body, headers = _signed(wallet, payment, "S")
    with psycopg.connect(_database_url().replace("postgres://", "postgresql://")) as blocker:
        # Hold the payment's row so the worker's transition waits on it, mid-task.
        blocker.execute("SELECT id FROM payments_payment WHERE id = %s FOR UPDATE", [payment.pk])
        with httpx.Client(base_url=wallet.base_url, timeout=30) as http:
            assert http.post(path, content=body, headers=headers).status_code == 200
        stored = arrived().get(subject=payment.payment_request_id)
        wait_for(lambda: _attempts(stored) == 1, what="the first attempt to start")
        celery_worker.kill_child()
        blocker.rollback()
    wait_for(_settled, what="the task to be redelivered and finished")
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("processed", 2)
    assert _transitions(payment.order) == [("payment", "succeeded"), ("order", "paid")]
    figures.record(
        "T-REL-5",
        f"worker child killed mid-task: the task ran again ({stored.attempts} attempts), "
        f"{len(_transitions(payment.order))} transitions, the notification {stored.status} once",
    )


def _attempts(stored: InboundNotification) -> int:
    return arrived().get(pk=stored.pk).attempts


@pytest.mark.parametrize("sequence", list(itertools.permutations(["S", "F", "S", "U"], 4))[:12])
def test_duplicate_late_and_out_of_order_news_never_moves_a_final_state(world, api, shop, wallet, sequence, figures):
    """Whatever comes first and is final stays final; what contradicts it later is an anomaly."""
    payment = _pending_payment(api, world)
    seen = []
    for status in sequence:
        path, body, headers = _signed(wallet, payment, status)
        response = Client().post(
            path,
            body,
            content_type="application/json",
            HTTP_CLIENT_ID=headers["Client-Id"],
            HTTP_REQUEST_TIME=headers["Request-Time"],
            HTTP_SIGNATURE=headers["Signature"],
        )
        assert response.status_code == 200
        drain_inbox()
        seen.append(Order.objects.unscoped().get(pk=payment.order_id).status)
    first_final = next(index for index, status in enumerate(seen) if status in TERMINAL)
    assert len(set(seen[first_final:])) == 1, seen
    moves = [to for subject, to in _transitions(payment.order) if subject == "order"]
    assert len(moves) == 1, moves
    figures.record(
        "T-REL-2",
        f"{','.join(sequence)} delivered in turn: {seen[first_final]} after {first_final + 1}, "
        f"never moved again, {len(moves)} order transition",
    )
