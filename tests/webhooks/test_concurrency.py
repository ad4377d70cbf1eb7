import threading

import pytest
from django.db import connection
from django.utils import timezone

from apps.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent
from apps.webhooks.services import webhook_deliver, webhook_deliveries_due

WORKERS = 8


def due_delivery(hooked) -> WebhookDelivery:
    """Written directly: recording would queue a task on commit, and these tests are the workers."""
    tenant = {"isv_id": hooked.mini_program.isv_id, "merchant_id": hooked.mini_program.merchant_id}
    event = WebhookEvent.objects.create(**tenant, mini_program=hooked.mini_program, type="order.paid", data={})
    return WebhookDelivery.objects.create(
        **tenant,
        event=event,
        mini_program=hooked.mini_program,
        url=hooked.mini_program.webhook_url,
        next_attempt_at=timezone.now(),
    )


def at_once(work) -> list:
    """``work(worker_number)`` in WORKERS threads released together; what they returned."""
    barrier = threading.Barrier(WORKERS)
    results, errors = [], []

    def run(number: int):
        barrier.wait()
        try:
            results.append(work(number))
        except Exception as error:  # any failure is the finding
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(number,)) for number in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.postgres  # SQLite serialises writers anyway; the row lock is what PostgreSQL needs
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliver_calls_for_one_delivery_send_it_once(hooked, endpoint):
    delivery = due_delivery(hooked)
    results = at_once(lambda _number: webhook_deliver(delivery_id=delivery.pk))
    assert sum(result is not None for result in results) == 1
    assert len(endpoint.received) == 1
    assert WebhookAttempt.objects.unscoped().filter(delivery=delivery).count() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.DELIVERED, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_sweepers_and_a_queued_task_send_each_delivery_once(hooked, endpoint):
    deliveries = [due_delivery(hooked) for _ in range(3)]

    def sweep_or_deliver(number: int):
        if number % 2:
            return webhook_deliver(delivery_id=deliveries[number % len(deliveries)].pk)
        return webhook_deliveries_due()

    at_once(sweep_or_deliver)
    assert sorted(request.json["id"] for request in endpoint.received) == sorted(
        delivery.event.public_id for delivery in deliveries
    )
    assert WebhookAttempt.objects.unscoped().filter(delivery__in=deliveries).count() == 3
