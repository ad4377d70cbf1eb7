from celery import shared_task

from . import services


@shared_task(name="sandbox.deliver_due_notifications")
def deliver_due_notifications() -> int:
    """Periodic sweep: due notification retries and registration reviews (idempotent; claims each row)."""
    return services.deliver_due_notifications()
