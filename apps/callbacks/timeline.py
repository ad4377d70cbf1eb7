"""The inbox's part of an order's evidence timeline: the notifications the wallet sent about it."""

from __future__ import annotations

from django.urls import reverse

from apps.core.tenancy import Principal
from apps.payments.models import Order
from apps.payments.timeline import TimelineEntry, joined

from .models import InboundNotification

#: Notification statuses that are good news (verified and applied, or a harmless repeat).
GOOD_NOTIFICATIONS = frozenset({"received", "processed", "duplicate"})


def notification_entries(*, principal: Principal, order: Order, subjects: list[str]) -> list[TimelineEntry]:
    """The inbox's notifications about the order's request ids; none can predate the order, which bounds
    the scan of the merchant's inbox (newest first) to what came since."""
    if not subjects:
        return []
    notifications = InboundNotification.objects.visible_to(principal).filter(
        subject__in=subjects, received_at__gte=order.created_at
    )
    return [
        TimelineEntry(
            at=notification.received_at,
            kind="notification",
            title=f"Notification received: {notification.get_kind_display()} about {notification.subject}",
            detail=joined(notification.get_status_display(), notification.outcome),
            warn=notification.status not in GOOD_NOTIFICATIONS,
            link=reverse("admin:callbacks_inboundnotification_change", args=[notification.pk]),
        )
        for notification in notifications.defer("body", "headers").order_by("received_at", "pk")
    ]
