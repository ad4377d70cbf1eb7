import io

import pytest
from django.core.management import CommandError, call_command

from apps.webhooks.models import DeliveryStatus, WebhookDelivery


def test_the_command_replays_an_event(hooked, endpoint):
    event = hooked.record()
    out = io.StringIO()
    call_command("replay_webhooks", "--event", event.public_id, stdout=out)
    replay = WebhookDelivery.objects.unscoped().filter(event=event).latest("pk")
    assert out.getvalue() == f"{event.public_id} (order.paid): queued {replay.public_id} to canary-mp-a1\n"


def test_the_command_retries_every_failed_delivery_and_says_which_it_skipped(hooked, world):
    failed = hooked.failed_delivery()
    canaries = WebhookDelivery.objects.unscoped().filter(status=DeliveryStatus.FAILED).exclude(pk=failed.pk)
    out = io.StringIO()
    call_command("replay_webhooks", "--failed", stdout=out)
    retry = WebhookDelivery.objects.unscoped().get(replay_of=failed)
    lines = out.getvalue().splitlines()
    assert f"{failed.public_id}: retried as {retry.public_id} (order.paid)" in lines
    for canary in canaries:  # the canaries' mini programs have no webhook URL
        assert f"{canary.public_id}: skipped, {canary.mini_program} has no webhook URL now" in lines
    assert lines[-1] == f"1 failed deliveries retried, {len(canaries)} skipped"


def test_the_command_retries_the_failed_deliveries_of_one_merchant(hooked, world):
    failed = hooked.failed_delivery()
    out = io.StringIO()
    call_command("replay_webhooks", "--failed", "--merchant", failed.merchant.public_id, stdout=out)
    assert out.getvalue().splitlines()[-1] == "1 failed deliveries retried, 0 skipped"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--event", "whe_00000000000000000000000000"], "No webhook event whe_00000000000000000000000000"),
        (["--failed", "--merchant", "mer_00000000000000000000000000"], "No merchant mer_00000000000000000000000000"),
        (["--event", "whe_00000000000000000000000000", "--merchant", "mer_x"], "--merchant goes with --failed"),
    ],
)
def test_the_command_refuses_what_it_cannot_find(db, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("replay_webhooks", *arguments)
