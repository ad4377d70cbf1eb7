import datetime
import itertools

import httpx
import pytest
import time_machine
from django.utils import timezone

from apps.miniprograms.services import mini_program_rotate_webhook_secret
from apps.webhooks import sender
from apps.webhooks.models import DeliveryStatus, WebhookAttempt
from apps.webhooks.services import (
    CLAIM_LEASE,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    webhook_deliver,
    webhook_deliveries_due,
)
from tests.webhooks.conftest import HANG, Answer, documented_verify


def attempts_of(delivery) -> list[WebhookAttempt]:
    return list(WebhookAttempt.objects.unscoped().filter(delivery=delivery).order_by("started_at", "pk"))


def test_a_delivery_is_signed_so_that_the_documented_snippet_verifies_it(hooked, endpoint):
    verify = documented_verify()
    event = hooked.record(data={"id": "ord_x", "note": "café ☕"})
    attempt = webhook_deliver(delivery_id=hooked.delivery(event).pk)
    [request] = endpoint.received
    assert request.json == {
        "id": event.public_id,
        "type": "order.paid",
        "created_at": request.json["created_at"],
        "data": {"id": "ord_x", "note": "café ☕"},
    }
    assert datetime.datetime.fromisoformat(request.json["created_at"]) == event.created_at.replace(
        microsecond=event.created_at.microsecond // 1000 * 1000
    )
    assert request.headers["webhook-id"] == event.public_id
    assert int(request.headers["webhook-timestamp"]) == int(attempt.started_at.timestamp())
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{endpoint.port}"
    assert verify(hooked.secret, request.headers, request.body)
    sent_at = int(request.headers["webhook-timestamp"])
    assert verify(hooked.secret, request.headers, request.body, now=sent_at + 300)
    assert not verify(hooked.secret, request.headers, request.body, now=sent_at + 301)  # a replay, too late
    assert not verify(hooked.secret, request.headers, request.body.replace(b"ord_x", b"ord_y"))
    assert not verify(hooked.secret, {**request.headers, "webhook-id": "whe_other"}, request.body)
    assert not verify(hooked.secret, {**request.headers, "webhook-timestamp": str(sent_at + 1)}, request.body)
    other_secret = mini_program_rotate_webhook_secret(mini_program=hooked.mini_program).webhook_secret
    assert not verify(other_secret, request.headers, request.body)
    assert not verify(hooked.secret, {}, request.body)


def test_a_rotated_secret_signs_the_next_attempt(hooked, endpoint):
    verify = documented_verify()
    endpoint.script.append(500)
    event = hooked.record()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        webhook_deliver(delivery_id=hooked.delivery(event).pk)
        new_secret = mini_program_rotate_webhook_secret(mini_program=hooked.mini_program).webhook_secret
        clock.shift(RETRY_DELAYS[0])
        assert webhook_deliveries_due() == 1
    first, retry = endpoint.received
    assert verify(hooked.secret, first.headers, first.body, now=int(first.headers["webhook-timestamp"]))
    assert verify(new_secret, retry.headers, retry.body, now=int(retry.headers["webhook-timestamp"]))
    assert not verify(hooked.secret, retry.headers, retry.body, now=int(retry.headers["webhook-timestamp"]))


def test_a_500_is_retried_on_the_documented_schedule_until_a_2xx_delivers(hooked, endpoint):
    endpoint.script.extend([500, 503, Answer(404, b"no such hook")])
    event = hooked.record()
    delivery = hooked.delivery(event)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert webhook_deliver(delivery_id=delivery.pk).status_code == 500
        for delay in RETRY_DELAYS[:3]:
            delivery.refresh_from_db()
            assert delivery.next_attempt_at == timezone.now() + datetime.timedelta(seconds=delay)
            clock.shift(delay - 1)
            assert webhook_deliveries_due() == 0  # not due a second early
            clock.shift(1)
            assert webhook_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 4, 200)
    assert delivery.next_attempt_at is None
    assert delivery.delivered_at is not None
    logged = attempts_of(delivery)
    assert [(attempt.status_code, attempt.error) for attempt in logged] == [(500, ""), (503, ""), (404, ""), (200, "")]
    assert logged[2].response_excerpt == "no such hook"
    assert all(attempt.duration_ms is not None for attempt in logged)
    assert [request.headers["webhook-id"] for request in endpoint.received] == [event.public_id] * 4
    timestamps = [int(request.headers["webhook-timestamp"]) for request in endpoint.received]
    assert [later - earlier for earlier, later in itertools.pairwise(timestamps)] == [5, 30, 120]


def test_a_delivered_delivery_is_never_sent_again(hooked, endpoint):
    event = hooked.record()
    delivery = hooked.delivery(event)
    assert webhook_deliver(delivery_id=delivery.pk).status_code == 200
    assert webhook_deliver(delivery_id=delivery.pk) is None
    with time_machine.travel(timezone.now() + datetime.timedelta(days=10)):
        assert webhook_deliveries_due() == 0
    assert len(endpoint.received) == 1
    assert webhook_deliver(delivery_id=0) is None  # a task for a row that is gone does nothing


def test_a_timeout_is_a_failed_attempt_that_is_retried(hooked, endpoint, monkeypatch):
    monkeypatch.setattr(sender, "TIMEOUT", httpx.Timeout(connect=1.0, read=0.2, write=1.0, pool=1.0))
    endpoint.script.append(HANG)
    event = hooked.record()
    delivery = hooked.delivery(event)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        timed_out = webhook_deliver(delivery_id=delivery.pk)
        assert (timed_out.status_code, timed_out.error.split(":")[0]) == (None, "ReadTimeout")
        delivery.refresh_from_db()
        assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, None)
        clock.shift(RETRY_DELAYS[0])
        assert webhook_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.DELIVERED, 2)


def test_a_delivery_gives_up_after_its_last_attempt_about_three_days_on(hooked, endpoint):
    assert sum(RETRY_DELAYS) < 3 * 24 * 3600 < sum(RETRY_DELAYS) + 24 * 3600
    endpoint.script.extend([500] * MAX_ATTEMPTS)
    event = hooked.record()
    delivery = hooked.delivery(event)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        webhook_deliver(delivery_id=delivery.pk)
        for delay in RETRY_DELAYS:
            clock.shift(delay)
            assert webhook_deliveries_due() == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (
            DeliveryStatus.FAILED,
            MAX_ATTEMPTS,
            None,
        )
        clock.shift(datetime.timedelta(days=30))
        assert webhook_deliveries_due() == 0
        assert webhook_deliver(delivery_id=delivery.pk) is None
    assert len(endpoint.received) == len(attempts_of(delivery)) == MAX_ATTEMPTS == 12


def test_the_retry_schedule_is_compressed_by_the_scale_setting(hooked, endpoint, settings):
    settings.WEBHOOK_RETRY_SCALE = 0.001
    endpoint.script.append(500)
    event = hooked.record()
    delivery = hooked.delivery(event)
    with time_machine.travel(timezone.now(), tick=False):
        webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.next_attempt_at - timezone.now() == datetime.timedelta(milliseconds=5)


def test_a_redirect_is_an_answer_that_is_not_followed(hooked, endpoint):
    endpoint.script.append(Answer(302, headers={"Location": endpoint.url("/elsewhere")}))
    event = hooked.record()
    delivery = hooked.delivery(event)
    assert webhook_deliver(delivery_id=delivery.pk).status_code == 302
    assert [request.path for request in endpoint.received] == ["/hooks"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 302)


def test_only_the_start_of_a_long_answer_is_read_and_kept(hooked, endpoint):
    endpoint.script.append(Answer(500, b"x" * 5_000_000))
    event = hooked.record()
    attempt = webhook_deliver(delivery_id=hooked.delivery(event).pk)
    assert (attempt.status_code, attempt.response_excerpt) == (500, "x" * sender.EXCERPT_LENGTH)


def test_an_attempt_whose_worker_died_is_taken_again_once_its_claim_runs_out(hooked, endpoint):
    event = hooked.record()
    delivery = hooked.delivery(event)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        # What a worker leaves when it dies mid-request: the claim, the count, an attempt with no outcome.
        delivery.next_attempt_at, delivery.attempt_count = timezone.now() + CLAIM_LEASE, 1
        delivery.save(update_fields=["next_attempt_at", "attempt_count"])
        WebhookAttempt.objects.create(
            isv_id=delivery.isv_id, merchant_id=delivery.merchant_id, delivery=delivery, started_at=timezone.now()
        )
        assert webhook_deliver(delivery_id=delivery.pk) is None
        clock.shift(CLAIM_LEASE - datetime.timedelta(seconds=1))
        assert webhook_deliveries_due() == 0
        clock.shift(datetime.timedelta(seconds=1))
        assert webhook_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.DELIVERED, 2)
    assert [attempt.status_code for attempt in attempts_of(delivery)] == [None, 200]
    assert len(endpoint.received) == 1


def test_a_delivery_whose_last_attempt_was_interrupted_gives_up_without_sending(hooked, endpoint):
    event = hooked.record()
    delivery = hooked.delivery(event)
    delivery.attempt_count = MAX_ATTEMPTS
    delivery.save(update_fields=["attempt_count"])
    assert webhook_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.FAILED, None)
    assert endpoint.received == []


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_delivers(hooked, endpoint, status):
    endpoint.script.append(status)
    event = hooked.record()
    assert webhook_deliveries_due() == 1
    assert hooked.delivery(event).status == DeliveryStatus.DELIVERED
