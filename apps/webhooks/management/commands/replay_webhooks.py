"""Send webhooks again: one event (``--event whe_…``) to the current webhook URLs, or every failed delivery
(``--failed``, optionally of one merchant: ``--merchant mer_…``) as a new delivery. An operator's tool, so it
looks rows up across tenants."""

from django.core.management.base import BaseCommand, CommandError

from apps.merchants.models import Merchant
from apps.webhooks import services
from apps.webhooks.models import WebhookEvent


class Command(BaseCommand):
    help = "Replay one webhook event, or retry every failed webhook delivery (of one merchant)."

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--event", metavar="whe_…", help="Send this event again.")
        what.add_argument("--failed", action="store_true", help="Retry every failed delivery not retried yet.")
        parser.add_argument("--merchant", metavar="mer_…", help="With --failed: only this merchant's.")

    def handle(self, *args, event=None, failed=False, merchant=None, **options):
        if merchant and not failed:
            raise CommandError("--merchant goes with --failed")
        if event:
            self._replay(event)
        else:
            self._retry_failed(merchant)

    def _replay(self, public_id: str) -> None:
        event = WebhookEvent.objects.unscoped().filter(public_id=public_id).first()
        if event is None:
            raise CommandError(f"No webhook event {public_id}")
        replays = services.webhook_replay(event=event)
        label = f"{event.public_id} ({event.type})"
        if not replays:
            self.stdout.write(f"{label}: no mini program has a webhook URL, nothing sent")
        for delivery in replays:
            self.stdout.write(f"{label}: queued {delivery.public_id} to {delivery.mini_program}")

    def _retry_failed(self, public_id: str | None) -> None:
        merchant = None
        if public_id:
            merchant = Merchant.objects.unscoped().filter(public_id=public_id).first()
            if merchant is None:
                raise CommandError(f"No merchant {public_id}")
        done = services.webhook_deliveries_retry_failed(merchant=merchant)
        for failed, retry in done:
            if retry is None:
                self.stdout.write(f"{failed.public_id}: skipped, {failed.mini_program} has no webhook URL now")
            else:
                self.stdout.write(f"{failed.public_id}: retried as {retry.public_id} ({failed.event.type})")
        retried = sum(retry is not None for _, retry in done)
        self.stdout.write(f"{retried} failed deliveries retried, {len(done) - retried} skipped")
