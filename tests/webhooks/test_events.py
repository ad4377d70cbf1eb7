import pytest
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.miniprograms.models import MiniProgram
from apps.miniprograms.services import mini_program_create, mini_program_update
from apps.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from apps.webhooks.services import webhook_deliveries_due, webhook_event_record
from tests.miniprograms.conftest import rows


def test_an_event_is_recorded_with_a_delivery_due_at_once_to_its_mini_programs_webhook_url(hooked, endpoint):
    event = hooked.record(data={"id": "ord_x", "amount": 1250, "currency": "USD"})
    stored = WebhookEvent.objects.unscoped().get(pk=event.pk)
    assert (stored.public_id[:4], stored.type, stored.data) == (
        "whe_",
        "order.paid",
        {"id": "ord_x", "amount": 1250, "currency": "USD"},
    )
    assert (stored.isv_id, stored.merchant_id, stored.mini_program_id) == (
        hooked.mini_program.isv_id,
        hooked.mini_program.merchant_id,
        hooked.mini_program.pk,
    )
    delivery = hooked.delivery(event)
    assert (delivery.url, delivery.status, delivery.attempt_count) == (endpoint.url(), DeliveryStatus.PENDING, 0)
    assert delivery.next_attempt_at <= timezone.now()


def test_the_event_commits_with_the_change_it_reports_and_its_first_attempt_is_queued_on_commit(
    hooked, endpoint, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as queued, transaction.atomic():
        mini_program_update(mini_program=hooked.mini_program, name="Renamed")
        event = hooked.record()
        assert endpoint.received == []  # nothing leaves before the commit
    assert len(queued) == 1
    assert [request.json["id"] for request in endpoint.received] == [event.public_id]
    assert hooked.delivery(event).status == DeliveryStatus.DELIVERED


def test_the_event_rolls_back_with_the_change_it_reports(hooked, endpoint, django_capture_on_commit_callbacks):
    def change_that_fails_after_recording_its_event():
        with transaction.atomic():
            mini_program_update(mini_program=hooked.mini_program, name="Renamed")
            hooked.record()
            raise RuntimeError("the change failed after its event was recorded")

    before = rows(WebhookEvent), rows(WebhookDelivery)
    with django_capture_on_commit_callbacks() as queued, pytest.raises(RuntimeError):
        change_that_fails_after_recording_its_event()
    assert (rows(WebhookEvent), rows(WebhookDelivery)) == before
    assert MiniProgram.objects.unscoped().get(pk=hooked.mini_program.pk).name == "canary-mp-a1"
    assert queued == []
    assert webhook_deliveries_due() == 0
    assert endpoint.received == []


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused():
    with pytest.raises(TransactionManagementError):
        webhook_event_record(isv_id=1, merchant_id=1, type="order.paid", data={})


def test_an_unknown_event_type_is_refused_and_nothing_is_recorded(hooked):
    before = rows(WebhookEvent), rows(WebhookDelivery)
    with pytest.raises(ApplicationError) as error:
        hooked.record(type="order.teleported")
    assert (error.value.code, error.value.attr) == ("webhooks.unknown_event_type", "type")
    assert (rows(WebhookEvent), rows(WebhookDelivery)) == before


def test_a_mini_program_of_another_merchant_is_not_found_and_nothing_is_recorded(world):
    merchant = world.a.merchants[0].merchant
    sibling_mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a2")
    before = rows(WebhookEvent), rows(WebhookDelivery)
    with pytest.raises(ApplicationError) as error, transaction.atomic():
        webhook_event_record(
            isv_id=merchant.isv_id,
            merchant_id=merchant.pk,
            mini_program_id=sibling_mini_program.pk,
            type="order.paid",
            data={},
        )
    assert (error.value.status_code, error.value.code) == (404, "webhooks.mini_program_not_found")
    assert (rows(WebhookEvent), rows(WebhookDelivery)) == before


def test_an_event_is_recorded_even_when_no_webhook_url_is_set(world):
    merchant = world.a.merchants[0].merchant
    with transaction.atomic():
        event = webhook_event_record(
            isv_id=merchant.isv_id, merchant_id=merchant.pk, type="registration.verified", data={"status": "verified"}
        )
    assert WebhookEvent.objects.unscoped().filter(pk=event.pk).exists()
    assert not WebhookDelivery.objects.unscoped().filter(event=event).exists()


def test_a_merchant_wide_event_goes_to_each_of_its_mini_programs_that_has_a_webhook_url(hooked, endpoint):
    merchant = hooked.mini_program.merchant

    def another_mini_program(app_id: str, webhook_url: str = ""):
        return mini_program_create(
            merchant=merchant,
            super_app=hooked.mini_program.super_app,
            app_id=app_id,
            name=app_id,
            trade_pay_mode=hooked.mini_program.trade_pay_mode,
            default_currency="USD",
            webhook_url=webhook_url,
        ).mini_program

    second = another_mini_program("second-app", webhook_url=endpoint.url("/second"))
    another_mini_program("third-app")  # no webhook URL: nothing goes there
    with transaction.atomic():
        event = webhook_event_record(
            isv_id=merchant.isv_id, merchant_id=merchant.pk, type="registration.verified", data={"status": "verified"}
        )
    deliveries = WebhookDelivery.objects.unscoped().filter(event=event).order_by("pk")
    assert [(delivery.mini_program_id, delivery.url) for delivery in deliveries] == [
        (hooked.mini_program.pk, endpoint.url()),
        (second.pk, endpoint.url("/second")),
    ]
    assert webhook_deliveries_due() == 2
    assert sorted(request.path for request in endpoint.received) == ["/hooks", "/second"]
