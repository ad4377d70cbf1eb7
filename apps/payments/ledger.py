"""The one way a status moves: under a row lock, by the tables in ``transitions``, with an event.

Every service of this app moves orders, payments, refunds, pre-authorizations and releases through
``transition``; ``record_event`` writes the append-only ``PaymentEvent`` of a move (or of a hint that moved
nothing). A move the merchant is told about (``WEBHOOK_TYPES``) also records its webhook event, in the
same transaction: the change and the news of it commit together.
"""

from django.db import transaction
from django.utils import timezone

from apps.core.errors import ConflictError
from apps.webhooks.services import webhook_event_record

from .models import Order, Payment, PaymentEvent, PreAuthorization, PreAuthorizationRelease, Refund


def transition(
    *, model, instance, table: dict, to: str, source: str, reason: str = "", expected: str | None = None, **changes
):
    """Move ``instance`` to ``to`` under a row lock if the table allows it, and record the event.

    Being in ``to`` already is success. Returns the locked, updated row. With ``expected`` (the status the
    caller believes the row is in) the lock is the conditional ``UPDATE`` itself, one statement fewer on
    hot paths; if the row has moved meanwhile, the general path decides.
    """
    if expected is not None and to in table[expected]:
        now = timezone.now()
        moved = (
            model.objects.unscoped()
            .filter(pk=instance.pk, status=expected)
            .update(status=to, updated_at=now, **changes)
        )
        if moved:
            record_event(model=model, row=instance, from_status=expected, to=to, source=source, reason=reason)
            instance.status, instance.updated_at = to, now
            for name, value in changes.items():
                setattr(instance, name, value)
            announce(model=model, row=instance)
            return instance
    locked = model.objects.unscoped().select_for_update().get(pk=instance.pk)
    if locked.status == to:
        return locked
    if to not in table[locked.status]:
        raise ConflictError(
            "payments.invalid_transition",
            f"The {model._meta.verbose_name} is {locked.status} and cannot become {to}.",
        )
    record_event(model=model, row=locked, from_status=locked.status, to=to, source=source, reason=reason)
    locked.status = to
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", "updated_at", *changes])
    announce(model=model, row=locked)
    return locked


def record_event(*, model, row, from_status: str, to: str, source: str, reason: str) -> None:
    if model is PreAuthorization:
        pre_authorization_id = row.pk
    elif model is PreAuthorizationRelease:
        pre_authorization_id = row.pre_authorization_id
    else:
        pre_authorization_id = getattr(row, "pre_authorization_id", None)  # a capture's
    PaymentEvent.objects.create(
        isv_id=row.isv_id,
        merchant_id=row.merchant_id,
        order_id=row.pk if model is Order else row.order_id,
        payment=row if model is Payment else None,
        refund=row if model is Refund else None,
        pre_authorization_id=pre_authorization_id,
        subject=model._meta.model_name,
        from_status=from_status,
        to_status=to,
        source=source,
        reason=reason[:500],
    )


@transaction.atomic
def refused(*, model, instance, table: dict, to: str, code: str, reason: str, source: str = "wallet_response"):
    """Move ``instance`` to its failed state ``to`` because the wallet refused it: the wallet's code is kept,
    and nothing more is asked about it."""
    return transition(
        model=model,
        instance=instance,
        table=table,
        to=to,
        source=source,
        reason=f"{code}: {reason}",
        failure_code=code[:64],
        next_inquiry_at=None,
    )


def ask_again(instance, due):
    """Set when ``instance`` (a payment, refund, pre-authorization or release) is next asked about."""
    type(instance).objects.unscoped().filter(pk=instance.pk).update(next_inquiry_at=due)
    instance.next_inquiry_at = due
    return instance


WEBHOOK_TYPES = {
    (Order, "paid"): "order.paid",
    (Order, "failed"): "order.failed",
    (Order, "closed"): "order.closed",
    (Refund, "succeeded"): "refund.succeeded",
    (Refund, "failed"): "refund.failed",
    (PreAuthorization, "authorized"): "preauthorization.authorized",
    (PreAuthorization, "partially_captured"): "preauthorization.captured",
    (PreAuthorization, "completed"): "preauthorization.completed",
    (PreAuthorization, "released"): "preauthorization.released",
    (PreAuthorization, "expired"): "preauthorization.expired",
    (PreAuthorization, "failed"): "preauthorization.failed",
}


def announce(*, model, row, type: str | None = None) -> None:
    """Record the webhook event of ``row``'s new state (or the given ``type``) if the merchant is told of
    it; the caller is in the transaction of the change."""
    type = type or WEBHOOK_TYPES.get((model, row.status))
    if type is None:
        return
    order = (
        row if model is Order else Order.objects.unscoped().only("mini_program_id", "public_id").get(pk=row.order_id)
    )
    webhook_event_record(
        isv_id=row.isv_id,
        merchant_id=row.merchant_id,
        mini_program_id=order.mini_program_id,
        type=type,
        data=_payload(model, row, order),
    )


def _payload(model, row, order: Order) -> dict:
    """The object as the merchant knows it from the API: ids, status and amounts in minor units."""
    if model is Order:
        return {
            "object": "order",
            "id": row.public_id,
            "kind": row.kind,
            "status": row.status,
            "amount": row.amount,
            "currency": row.currency,
            "paid_amount": row.paid_amount,
            "refunded_amount": row.refunded_amount,
            "reference": row.reference,
        }
    if model is Refund:
        return {
            "object": "refund",
            "id": row.public_id,
            "order": order.public_id,
            "status": row.status,
            "amount": row.amount,
            "currency": row.currency,
        }
    return {
        "object": "preauthorization",
        "id": row.public_id,
        "order": order.public_id,
        "status": row.status,
        "amount": row.amount,
        "currency": row.currency,
        "captured_amount": row.captured_amount,
        "released_amount": row.released_amount,
        "expires_at": row.expires_at.isoformat(timespec="seconds"),
    }
