from celery import shared_task

from . import services


@shared_task(name="sandbox.deliver_due_notifications")
def deliver_due_notifications() -> int:
    """Periodic sweep: due notification retries, registration reviews and expired authorizations (idempotent)."""
    return services.deliver_due_notifications()
