"""The demo merchant's server receives the platform's webhooks and checks their signatures, so that
``make run`` shows deliveries succeed."""

import io
import json

from django.core.management import call_command
from django.db import transaction
from django.test import Client

from apps.miniprograms.models import MiniProgram
from apps.webhooks.models import WebhookAttempt
from apps.webhooks.services import webhook_deliveries_due, webhook_event_record


def test_the_demo_merchant_accepts_signed_webhooks_and_refuses_forged_ones(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    call_command("seed_demo", "--json", stdout=io.StringIO())
    coffee = MiniProgram.objects.unscoped().get(app_id="demo-coffee-app")
    assert coffee.webhook_url == f"{live_server.url}/demo/merchant-webhooks/demo-coffee-app"
    with transaction.atomic():
        webhook_event_record(
            isv_id=coffee.isv_id,
            merchant_id=coffee.merchant_id,
            mini_program_id=coffee.pk,
            type="order.paid",
            data={"object": "order", "id": "ord_demo", "status": "paid"},
        )
    assert webhook_deliveries_due() >= 1
    attempt = WebhookAttempt.objects.unscoped().filter(delivery__mini_program=coffee).latest("started_at")
    assert attempt.status_code == 204

    forged = Client().post(
        "/demo/merchant-webhooks/demo-coffee-app",
        json.dumps({"type": "order.paid"}),
        content_type="application/json",
        HTTP_WEBHOOK_ID="whe_forged",
        HTTP_WEBHOOK_TIMESTAMP="1700000000",
        HTTP_WEBHOOK_SIGNATURE="v1,AAAA",
    )
    assert forged.status_code == 401
