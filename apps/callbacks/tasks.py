from celery import shared_task

from apps.core.services import drain

from . import services


@shared_task(name="callbacks.process_notification", acks_late=True)
def process_notification(notification_id: int) -> None:
    """Apply one stored notification (idempotent: a processed row is left alone)."""
    services.notification_process(notification_id=notification_id)


@shared_task(name="callbacks.redrive", acks_late=True)
def redrive() -> int:
    """Process stored notifications no task has, and parked ones whose retry is due, batch after batch
    (idempotent)."""
    return drain(services.notifications_redrive)
