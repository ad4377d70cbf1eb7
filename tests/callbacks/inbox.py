"""What the Celery worker does with the inbox, for tests that run without one."""

from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.callbacks.services import notification_process


def drain_inbox() -> int:
    """Process every notification waiting in the inbox (once); returns how many there were."""
    waiting = list(
        InboundNotification.objects.unscoped()
        .filter(status__in=[NotificationStatus.RECEIVED, NotificationStatus.PARKED])
        .order_by("received_at", "pk")  # as they arrived, like the worker's queue
        .values_list("pk", flat=True)
    )
    for pk in waiting:
        notification_process(notification_id=pk)
    return len(waiting)


def arrived():
    """What reached the inbox during the test (the world's canary rows aside)."""
    return InboundNotification.objects.unscoped().exclude(subject__startswith="canary-")
