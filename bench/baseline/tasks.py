"""The notification baseline's Celery task: one UPDATE by primary key, on the platform's ``callbacks`` queue, so
it goes through the same broker and the same worker as ``callbacks.process_notification``."""

from celery import shared_task
from django.utils import timezone

from .models import BaselineNotification


@shared_task(name="bench.baseline_notification_done", queue="callbacks", acks_late=True)
def notification_done(notification_id: int) -> None:
    BaselineNotification.objects.filter(pk=notification_id).update(processed_at=timezone.now())
