import pytest

from apps.core.errors import ApplicationError
from apps.miniprograms.services import mini_program_update
from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import (
    webhook_deliver,
    webhook_deliveries_due,
    webhook_deliveries_retry_failed,
    webhook_delivery_retry,
    webhook_replay,
)
from tests.miniprograms.conftest import rows


def test_a_replay_sends_the_event_again_with_its_own_id_as_a_new_delivery(hooked, endpoint):
    event = hooked.record()
    first = hooked.delivery(event)
    webhook_deliver(delivery_id=first.pk)
    before = rows(WebhookDelivery)
    [replay] = webhook_replay(event=event)
    assert (replay.status, replay.attempt_count, replay.replay_of_id) == (DeliveryStatus.PENDING, 0, first.pk)
    assert [row for row in rows(WebhookDelivery) if row["id"] != replay.pk] == before  # history as it was
    assert webhook_deliveries_due() == 1
    original, again = endpoint.received
    assert again.body == original.body
    assert again.headers["webhook-id"] == original.headers["webhook-id"] == event.public_id


def test_a_replay_goes_to_the_webhook_url_the_mini_program_has_now(hooked, endpoint):
    event = hooked.record()
    assert hooked.delivery(event).url == endpoint.url()
    mini_program_update(mini_program=hooked.mini_program, webhook_url=endpoint.url("/fixed"))
    [replay] = webhook_replay(event=event)
    assert replay.url == endpoint.url("/fixed")


def test_replaying_an_event_whose_mini_program_has_no_webhook_url_now_sends_nothing(hooked, endpoint):
    event = hooked.record()
    mini_program_update(mini_program=hooked.mini_program, webhook_url="")
    assert webhook_replay(event=event) == []


def test_retry_now_makes_a_new_delivery_of_a_failed_one_once(hooked, endpoint):
    failed = hooked.failed_delivery()
    retry = webhook_delivery_retry(delivery=failed)
    assert (retry.status, retry.replay_of_id, retry.event_id) == (DeliveryStatus.PENDING, failed.pk, failed.event_id)
    assert webhook_delivery_retry(delivery=failed) == retry  # retried already: the same retry, nothing new
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.FAILED
    assert webhook_deliveries_due() == 1
    assert len(endpoint.received) == 1


def test_retry_now_refuses_a_delivery_that_has_not_failed(hooked):
    pending = hooked.delivery(hooked.record())
    before = rows(WebhookDelivery)
    with pytest.raises(ApplicationError) as error:
        webhook_delivery_retry(delivery=pending)
    assert error.value.code == "webhooks.delivery_not_failed"
    assert rows(WebhookDelivery) == before


def test_retry_now_refuses_when_the_mini_program_has_no_webhook_url_now(hooked):
    failed = hooked.failed_delivery()
    mini_program_update(mini_program=hooked.mini_program, webhook_url="")
    before = rows(WebhookDelivery)
    with pytest.raises(ApplicationError) as error:
        webhook_delivery_retry(delivery=failed)
    assert error.value.code == "webhooks.no_webhook_url"
    assert rows(WebhookDelivery) == before


def test_retrying_the_failed_deliveries_of_a_merchant_leaves_other_merchants_alone(hooked, world):
    failed = hooked.failed_delivery()
    others = {row["id"]: row for row in rows(WebhookDelivery) if row["merchant_id"] != failed.merchant_id}
    assert others  # the world's canaries: failed deliveries of other merchants
    [(retried, retry)] = webhook_deliveries_retry_failed(merchant=failed.merchant)
    assert (retried, retry.replay_of_id) == (failed, failed.pk)
    assert {row["id"]: row for row in rows(WebhookDelivery) if row["merchant_id"] != failed.merchant_id} == others
    assert webhook_deliveries_retry_failed(merchant=failed.merchant) == []  # nothing left to retry
