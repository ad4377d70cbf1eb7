from django.test import Client
from django.urls import reverse

from apps.core.tenancy import Role
from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import webhook_deliver
from tests.factories import MembershipFactory, UserFactory
from tests.miniprograms.conftest import rows
from tests.webhooks.conftest import Answer


def owner_client(world) -> Client:
    client = Client()
    client.force_login(world.a.merchants[0].staff)
    return client


def test_an_event_page_shows_its_deliveries_and_every_attempt(world, hooked, endpoint):
    endpoint.script.append(Answer(500, b"database is down <b>"))
    event = hooked.record()
    delivery = hooked.delivery(event)
    webhook_deliver(delivery_id=delivery.pk)
    page = owner_client(world).get(reverse("admin:webhooks_webhookevent_change", args=[event.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert delivery.public_id in body
    assert "database is down &lt;b&gt;" in body  # the merchant's answer, escaped
    assert '<input type="submit" value="Save"' not in body  # read-only


def test_replay_in_the_admin_sends_the_event_again(world, hooked, endpoint):
    event = hooked.record()
    response = owner_client(world).post(
        reverse("admin:webhooks_webhookevent_changelist"), {"action": "replay", "_selected_action": [event.pk]}
    )
    assert response.status_code == 302
    assert WebhookDelivery.objects.unscoped().filter(event=event).count() == 2


def test_retry_now_in_the_admin_retries_a_failed_delivery_and_says_why_it_does_not_retry_others(world, hooked):
    failed = hooked.failed_delivery()
    pending = hooked.delivery(hooked.record())
    response = owner_client(world).post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "retry_now", "_selected_action": [failed.pk, pending.pk]},
        follow=True,
    )
    retry = WebhookDelivery.objects.unscoped().get(replay_of=failed)
    assert retry.status == DeliveryStatus.PENDING
    shown = [str(message) for message in response.context["messages"]]
    assert f"{failed.public_id}: retried as {retry.public_id}" in shown
    assert f"{pending.public_id}: Delivery {pending.public_id} is pending; only failed ones are retried." in shown


def test_a_viewer_sees_webhooks_but_cannot_send_them_again(world, hooked):
    failed = hooked.failed_delivery()
    viewer = MembershipFactory(
        user=UserFactory(username="merchant-a1-viewer"),
        isv=world.a.isv,
        merchant=world.a.merchants[0].merchant,
        role=Role.VIEWER,
    ).user
    client = Client()
    client.force_login(viewer)
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    assert failed.public_id in client.get(changelist).content.decode()
    before = rows(WebhookDelivery)
    client.post(changelist, {"action": "retry_now", "_selected_action": [failed.pk]})
    client.post(
        reverse("admin:webhooks_webhookevent_changelist"),
        {"action": "replay", "_selected_action": [failed.event_id]},
    )
    assert rows(WebhookDelivery) == before
