"""Reads for an order's admin page: the evidence timeline (everything that happened to the order, in time
order, from every place it is recorded) and what is left to refund.

Every source is read through ``visible_to(principal)``, in a fixed number of queries whatever the number of
events: a merchant's staff never see a row of another tenant, even one naming the order's ids.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Prefetch, Q, Sum
from django.urls import reverse

from apps.core.money import Money
from apps.core.tenancy import Principal
from apps.superapps.selectors import wallet_exchanges_about
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent

from .models import (
    Order,
    Payment,
    PaymentEvent,
    PreAuthorization,
    PreAuthorizationRelease,
    Refund,
    RefundStatus,
)

#: What each ``PaymentEvent.source`` means, in words a merchant's staff understand.
SOURCE_LABELS = {
    "api": "the API",
    "order_str": "orderStr handed to the mini program",
    "wallet_response": "the wallet's answer",
    "wallet_inquiry": "an inquiry at the wallet",
    "wallet_notification": "a notification from the wallet",
    "notification_anomaly": "a notification that contradicts the ledger",
    "client_result": "the result the mini program reported",
    "client_result_inquiry": "an inquiry after the mini program's result",
    "expiry": "expiry",
    "release": "a release",
    "staff": "staff in the admin",
}
#: Statuses that need a look: the entry is flagged.
WARN_STATUSES = frozenset({"failed", "unknown", "processing", "anomaly", "rejected", "unverified", "parked"})

#: More sources of the apps above payments (the callbacks inbox), added from their ``AppConfig.ready``:
#: each is called with ``principal``, ``order`` and ``subjects`` (the order's request ids).
_SOURCES: list[Callable[..., Iterable[TimelineEntry]]] = []


def timeline_source_add(source: Callable[..., Iterable[TimelineEntry]]) -> None:
    """Let an app payments must not import add its rows to every order's timeline."""
    if source not in _SOURCES:
        _SOURCES.append(source)


@dataclasses.dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime.datetime
    kind: str  # created, event, notification, webhook, wallet, staff
    title: str
    detail: str = ""
    warn: bool = False
    link: str = ""


def order_timeline(*, principal: Principal, order: Order) -> list[TimelineEntry]:
    """Everything that happened to ``order`` (which the caller read through ``visible_to(principal)``),
    oldest first; entries at the same instant keep the order of the sources (the creation first)."""
    subjects = _request_ids(principal=principal, order=order)
    entries = [
        _created(order),
        *_events(principal=principal, order=order),
        *(entry for source in _SOURCES for entry in source(principal=principal, order=order, subjects=subjects)),
        *_webhooks(principal=principal, order=order),
        *wallet_exchange_entries(principal=principal, subjects=subjects),
        *_staff_actions(order),
    ]
    return sorted(entries, key=lambda entry: entry.at)


def order_refundable(*, principal: Principal, order: Order) -> Money:
    """What is still refundable: paid, less refunds that succeeded or are still being processed."""
    committed = (
        Refund.objects.visible_to(principal)
        .filter(order=order, status__in=[RefundStatus.PROCESSING, RefundStatus.SUCCEEDED])
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return Money(value=max(order.paid_amount - committed, 0), currency=order.currency)


def wallet_exchange_entries(*, principal: Principal, subjects: list[str]) -> list[TimelineEntry]:
    """The calls to the wallet about the order's request ids: the operation, how it ended, and whether the
    answer's signature verified (✓), did not (✗), or no answer came."""
    if not subjects:
        return []
    return [
        TimelineEntry(
            at=exchange.created_at,
            kind="wallet",
            title=f"Wallet call {exchange.operation} about {exchange.subject}",
            detail=joined(
                _wallet_result(exchange),
                {True: "signature verified ✓", False: "signature NOT verified ✗"}.get(exchange.signature_verified, ""),
                f"{exchange.duration_ms} ms",
                exchange.error,
            ),
            warn=exchange.signature_verified is False
            or exchange.http_status is None
            or exchange.result_status in ("F", "U"),
        )
        for exchange in wallet_exchanges_about(principal=principal, subjects=subjects)
    ]


def _wallet_result(exchange) -> str:
    if exchange.http_status is None:
        return "no answer"
    result = " ".join(part for part in (exchange.result_status, exchange.result_code) if part)
    return f"HTTP {exchange.http_status}" + (f", {result}" if result else "")


def _request_ids(*, principal: Principal, order: Order) -> list[str]:
    """The ids the wallet knows the order's money by: what notifications and wallet calls name."""
    payments = Payment.objects.visible_to(principal).filter(order=order)
    refunds = Refund.objects.visible_to(principal).filter(order=order)
    authorizations = PreAuthorization.objects.visible_to(principal).filter(order=order)
    releases = PreAuthorizationRelease.objects.visible_to(principal).filter(order=order)
    ids = (
        payments.values_list("payment_request_id")
        .union(refunds.values_list("refund_request_id"), all=True)
        .union(authorizations.values_list("out_order_no"), all=True)
        .union(authorizations.values_list("out_request_no"), all=True)
        .union(releases.values_list("out_request_no"), all=True)
    )
    return [request_id for (request_id,) in ids]


def _created(order: Order) -> TimelineEntry:
    by = "a user session in the mini program" if order.wallet_user_id else "the API (a server key)"
    amount = Money(value=order.amount, currency=order.currency)
    reference = f", reference {order.reference}" if order.reference else ""
    return TimelineEntry(
        at=order.created_at,
        kind="created",
        title=f"Order created through {by}",
        detail=f"{order.get_kind_display()} of {amount}{reference}",
    )


def _events(*, principal: Principal, order: Order) -> list[TimelineEntry]:
    events = (
        PaymentEvent.objects.visible_to(principal)
        .filter(order=order)
        .select_related("payment", "refund", "pre_authorization")
        .order_by("created_at", "pk")
    )
    return [
        TimelineEntry(
            at=event.created_at,
            kind="event",
            title=f"{_subject(event)}: {event.from_status} → {event.to_status}",
            detail=joined(f"by {SOURCE_LABELS.get(event.source, event.source)}", event.reason),
            warn=event.to_status in WARN_STATUSES or event.source == "notification_anomaly",
        )
        for event in events
    ]


def joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _subject(event: PaymentEvent) -> str:
    if event.refund_id:
        return f"Refund {event.refund.public_id} ({Money(event.refund.amount, event.refund.currency)})"
    if event.payment_id:
        label = "Capture" if event.payment.pre_authorization_id else "Payment"
        return f"{label} {event.payment.payment_request_id}"
    if event.pre_authorization_id and event.subject != "order":
        return f"Pre-authorization {event.pre_authorization.public_id}"
    return "Order"


def _webhooks(*, principal: Principal, order: Order) -> list[TimelineEntry]:
    """The webhook events about the order (``data.id`` of an order event, ``data.order`` of a refund's or a
    pre-authorization's) and every attempt to deliver them."""
    attempts = WebhookAttempt.objects.visible_to(principal).order_by("started_at", "pk")
    deliveries = (
        WebhookDelivery.objects.visible_to(principal)
        .order_by("pk")
        .prefetch_related(Prefetch("attempts", queryset=attempts, to_attr="visible_attempts"))
    )
    events = (
        WebhookEvent.objects.visible_to(principal)
        .filter(merchant_id=order.merchant_id, created_at__gte=order.created_at)
        .filter(Q(data__id=order.public_id) | Q(data__order=order.public_id))  # indexed (WebhookEvent.Meta)
        .prefetch_related(Prefetch("deliveries", queryset=deliveries, to_attr="visible_deliveries"))
        .order_by("created_at", "pk")
    )
    entries = []
    for event in events:
        sent_to = (
            f"{delivery.public_id} to {delivery.url}: {delivery.get_status_display()}"
            for delivery in event.visible_deliveries
        )
        entries.append(
            TimelineEntry(
                at=event.created_at,
                kind="webhook",
                title=f"Webhook event {event.type} recorded",
                detail=", ".join(sent_to) or "no webhook URL: nothing to send",
                link=reverse("admin:webhooks_webhookevent_change", args=[event.pk]),
            )
        )
        for delivery in event.visible_deliveries:
            entries.extend(_attempt_entry(event, delivery, attempt) for attempt in delivery.visible_attempts)
    return entries


def _attempt_entry(event: WebhookEvent, delivery: WebhookDelivery, attempt: WebhookAttempt) -> TimelineEntry:
    answered = attempt.status_code is not None and 200 <= attempt.status_code < 300
    if attempt.status_code is not None:
        outcome = f"HTTP {attempt.status_code}"
    else:
        outcome = attempt.error or "no answer recorded"
    took = f" in {attempt.duration_ms} ms" if attempt.duration_ms is not None else ""
    return TimelineEntry(
        at=attempt.started_at,
        kind="webhook",
        title=f"Webhook {event.type} sent to {delivery.url}",
        detail=f"{outcome}{took}",
        warn=not answered,
        link=reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
    )


def _staff_actions(order: Order) -> list[TimelineEntry]:
    """The admin's history of the order: the order itself was read through the viewer's scope, and its
    history is the order's own (as the admin's history page shows it)."""
    entries = (
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Order), object_id=str(order.pk))
        .select_related("user")
        .order_by("action_time", "pk")
    )
    return [
        TimelineEntry(
            at=entry.action_time,
            kind="staff",
            title=f"Staff action by {entry.user.get_username()}",
            detail=entry.get_change_message() or entry.object_repr,
        )
        for entry in entries
    ]
