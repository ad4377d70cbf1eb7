from celery import shared_task

from apps.core.services import drain

from . import services


@shared_task(name="webhooks.deliver", acks_late=True, time_limit=60, soft_time_limit=50)
def deliver(delivery_id: int) -> bool:
    """The next attempt of one delivery, if it is still pending and due (idempotent: a duplicate message, or
    one for a delivery the sweeper has taken, does nothing)."""
    return services.webhook_deliver(delivery_id=delivery_id) is not None


@shared_task(name="webhooks.deliver_due", acks_late=True)
def deliver_due() -> int:
    """Attempts whose retry is due, and first attempts whose queued task was lost, batch after batch
    (idempotent)."""
    return drain(services.webhook_deliveries_due)
