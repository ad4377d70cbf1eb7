"""Writes for orders and payments: creation through the super app, and resolution of unknown outcomes.

Rules every function here keeps: statuses move only through ``_transition`` (row lock, transition table,
event); ids sent to the wallet are stored before the call; an unknown outcome is never a failure.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone
from ulid import ULID

from apps.core.errors import ApplicationError, ConflictError
from apps.core.money import Money
from apps.merchants import selectors as merchant_selectors
from apps.miniprograms.models import MiniProgram
from apps.miniprograms.selectors import mini_program_gate
from apps.superapps.client import messages
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.models import TradePayMode

from . import transitions
from .models import Order, OrderStatus, Payment, PaymentEvent, PaymentStatus, Refund, RefundStatus

logger = logging.getLogger(__name__)

DEFAULT_EXPIRY = datetime.timedelta(minutes=30)
MAX_EXPIRY = datetime.timedelta(days=1)
# An unknown outcome is asked about every 5 s at first (the wallets' advice), backing off to 10 min.
INQUIRY_FIRST_SECONDS, INQUIRY_MAX_SECONDS = 5, 600


@dataclasses.dataclass(frozen=True)
class CreatedOrder:
    order: Order
    trade_pay: dict[str, str]  # exactly what the mini program passes to my.tradePay


def _transition(*, model, instance, table: dict, to: str, source: str, reason: str = "", **changes):
    """Move ``instance`` to ``to`` under a row lock if the table allows it, and record the event.

    Being in ``to`` already is success. Returns the locked, updated row.
    """
    locked = model.objects.unscoped().select_for_update().get(pk=instance.pk)
    if locked.status == to:
        return locked
    if to not in table[locked.status]:
        raise ConflictError(
            "payments.invalid_transition",
            f"The {model._meta.verbose_name} is {locked.status} and cannot become {to}.",
        )
    order = locked if model is Order else locked.order
    PaymentEvent.objects.create(
        isv_id=locked.isv_id,
        merchant_id=locked.merchant_id,
        order=order,
        payment=locked if model is Payment else None,
        refund=locked if model is Refund else None,
        subject=model._meta.model_name,
        from_status=locked.status,
        to_status=to,
        source=source,
        reason=reason[:500],
    )
    locked.status = to
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", "updated_at", *changes])
    return locked


def order_create(
    *,
    mini_program: MiniProgram,
    amount: Money,
    description: str,
    reference: str | None = None,
    metadata: dict | None = None,
    expires_in: datetime.timedelta | None = None,
) -> CreatedOrder:
    """Create an order and hand back what ``my.tradePay`` needs.

    Gate first (license verified, mini program live, payment enabled): refused orders write nothing and
    call no wallet. For a ``payment_url`` mini program the order and its payment attempt — with its
    ``paymentRequestId`` — are committed before ``payments/pay`` is called. ``A`` leaves the order pending
    with the cashier URL; ``F`` fails it; an unknown outcome leaves it processing for the inquiry to settle.
    Raises ``payments.reference_taken``, ``payments.expiry_out_of_range`` and the gate's codes.
    """
    mini_program_gate(mini_program=mini_program)
    expires_in = expires_in or DEFAULT_EXPIRY
    if not datetime.timedelta(seconds=60) <= expires_in <= MAX_EXPIRY:
        raise ApplicationError(
            "payments.expiry_out_of_range", "expires_in must be between 60 and 86400 seconds.", attr="expires_in"
        )
    if mini_program.trade_pay_mode != TradePayMode.PAYMENT_URL:
        raise ApplicationError(
            "payments.mode_not_supported",
            "Orders for orderStr mini programs are not available yet; use a paymentUrl mini program.",
            attr="mini_program",
        )
    client = _client_for(mini_program)  # before any write: no credentials, no order
    now = timezone.now()
    try:
        with transaction.atomic():
            order = Order.objects.create(
                isv_id=mini_program.isv_id,
                merchant_id=mini_program.merchant_id,
                mini_program=mini_program,
                reference=reference,
                description=description,
                amount=amount.value,
                currency=amount.currency,
                metadata=metadata or {},
                expires_at=now + expires_in,
            )
            payment = Payment.objects.create(
                isv_id=order.isv_id,
                merchant_id=order.merchant_id,
                order=order,
                payment_request_id=f"pr_{str(ULID()).lower()}",
            )
    except IntegrityError:
        raise ConflictError(
            "payments.reference_taken", f"An order with reference {reference!r} exists already.", attr="reference"
        ) from None

    request = messages.PayRequest(
        payment_request_id=payment.payment_request_id,
        amount=amount,
        order_description=description,
        reference_order_id=order.public_id,
        notify_url=mini_program.super_app.payment_notify_url(),
        expiry_time=order.expires_at.isoformat(timespec="seconds"),
        merchant_display_name=mini_program.merchant.name,
    )
    try:
        response = client.pay(request, app_id=mini_program.app_id)
    except WalletBusinessFailure as failure:
        _payment_failed(
            payment=payment, code=failure.result_code, reason=failure.result_message, source="wallet_response"
        )
    except WalletUnknownOutcome as unknown:
        _payment_unknown(payment=payment, reason=unknown.reason, source="wallet_response")
    else:
        with transaction.atomic():
            _transition(
                model=Payment,
                instance=payment,
                table=transitions.PAYMENT,
                to=PaymentStatus.PENDING,
                source="wallet_response",
                wallet_payment_id=response.payment_id,
                payment_url=response.payment_url or "",
            )
    order.refresh_from_db()
    payment.refresh_from_db()
    return CreatedOrder(order=order, trade_pay={"paymentUrl": payment.payment_url} if payment.payment_url else {})


@transaction.atomic
def _payment_failed(*, payment: Payment, code: str, reason: str, source: str) -> None:
    _transition(
        model=Payment,
        instance=payment,
        table=transitions.PAYMENT,
        to=PaymentStatus.FAILED,
        source=source,
        reason=f"{code}: {reason}",
        failure_code=code[:64],
        next_inquiry_at=None,
    )
    _transition(
        model=Order, instance=payment.order, table=transitions.ORDER, to=OrderStatus.FAILED, source=source, reason=code
    )


@transaction.atomic
def _payment_unknown(*, payment: Payment, reason: str, source: str) -> None:
    _transition(
        model=Payment,
        instance=payment,
        table=transitions.PAYMENT,
        to=PaymentStatus.UNKNOWN,
        source=source,
        reason=reason,
        next_inquiry_at=timezone.now() + datetime.timedelta(seconds=INQUIRY_FIRST_SECONDS),
    )
    _transition(
        model=Order,
        instance=payment.order,
        table=transitions.ORDER,
        to=OrderStatus.PROCESSING,
        source=source,
        reason=reason,
    )


def order_refresh(*, order: Order, source: str = "wallet_inquiry") -> Order:
    """Ask the super app about the order's open payment attempt and apply the answer.

    ``SUCCESS`` → paid (after checking amount and currency); ``FAIL`` → failed; ``CANCELLED`` → closed;
    ``PROCESSING`` or an unknown answer changes nothing but the next inquiry time. Final orders are left
    as they are.
    """
    payment = (
        order.payments.exclude(status__in=[PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED])
        .order_by("-created_at")
        .first()
    )
    if payment is None or order.status not in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        return order
    client = _client_for(order.mini_program)
    try:
        inquiry = client.inquire_payment(payment_request_id=payment.payment_request_id)
    except WalletBusinessFailure as failure:
        if failure.result_code == "ORDER_NOT_EXIST" and payment.status == PaymentStatus.INITIATED:
            _payment_failed(payment=payment, code=failure.result_code, reason="never reached the wallet", source=source)
        return Order.objects.unscoped().get(pk=order.pk)
    except WalletUnknownOutcome as unknown:
        logger.info("inquiry of %s inconclusive: %s", payment.payment_request_id, unknown.reason)
        _schedule_next_inquiry(payment)
        return Order.objects.unscoped().get(pk=order.pk)
    _apply_payment_state(payment=payment, inquiry=inquiry, source=source)
    return Order.objects.unscoped().get(pk=order.pk)


def _schedule_next_inquiry(payment: Payment) -> None:
    waited = (timezone.now() - payment.created_at).total_seconds()
    delay = min(max(waited, INQUIRY_FIRST_SECONDS), INQUIRY_MAX_SECONDS)
    Payment.objects.unscoped().filter(pk=payment.pk).update(
        next_inquiry_at=timezone.now() + datetime.timedelta(seconds=delay)
    )


@transaction.atomic
def _apply_payment_state(*, payment: Payment, inquiry: messages.PaymentInquiry, source: str) -> None:
    order = payment.order
    if inquiry.status is messages.PaymentStatus.SUCCESS:
        expected = Money(order.amount, order.currency)
        if inquiry.amount is not None and inquiry.amount != expected:
            logger.error("payment %s: wallet amount %s != order %s", payment.public_id, inquiry.amount, expected)
            _payment_unknown(payment=payment, reason=f"amount mismatch: wallet {inquiry.amount}", source=source)
            return
        _transition(
            model=Payment,
            instance=payment,
            table=transitions.PAYMENT,
            to=PaymentStatus.SUCCEEDED,
            source=source,
            wallet_payment_id=inquiry.payment_id or payment.wallet_payment_id,
            next_inquiry_at=None,
        )
        _transition(
            model=Order,
            instance=order,
            table=transitions.ORDER,
            to=OrderStatus.PAID,
            source=source,
            paid_at=timezone.now(),
        )
    elif inquiry.status is messages.PaymentStatus.FAIL:
        _payment_failed(payment=payment, code="FAIL", reason=inquiry.fail_reason or "", source=source)
    elif inquiry.status is messages.PaymentStatus.CANCELLED:
        _transition(
            model=Payment,
            instance=payment,
            table=transitions.PAYMENT,
            to=PaymentStatus.CANCELLED,
            source=source,
            next_inquiry_at=None,
        )
        _transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source=source)
    else:
        _schedule_next_inquiry(payment)


# --- refunds and cancels -------------------------------------------------------------------------


def refund_request(*, order: Order, amount: int | None = None, reason: str = "") -> Refund:
    """Refund part or all of a paid order (``amount`` defaults to what is left).

    The sum of refunds that succeeded or are processing never exceeds the paid amount: checked under the
    order's row lock, so concurrent requests cannot both pass. The ``refundRequestId`` is committed before
    the wallet call. ``S`` → succeeded; ``F`` → failed; unknown → processing, for the inquiry to settle.
    Raises ``payments.order_not_refundable``, ``payments.refund_exceeds_paid``.
    """
    with transaction.atomic():
        locked = Order.objects.unscoped().select_for_update().get(pk=order.pk)
        if locked.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
            raise ConflictError(
                "payments.order_not_refundable", f"The order is {locked.status}; only paid orders refund."
            )
        committed = sum(
            locked.refunds.filter(status__in=[RefundStatus.PROCESSING, RefundStatus.SUCCEEDED]).values_list(
                "amount", flat=True
            )
        )
        remaining = locked.amount - committed
        amount = remaining if amount is None else amount
        if amount <= 0 or amount > remaining:
            raise ApplicationError(
                "payments.refund_exceeds_paid",
                f"At most {remaining} {locked.currency} (minor units) is left to refund.",
                attr="amount",
            )
        payment = locked.payments.get(status=PaymentStatus.SUCCEEDED)
        refund = Refund.objects.create(
            isv_id=locked.isv_id,
            merchant_id=locked.merchant_id,
            order=locked,
            payment=payment,
            refund_request_id=f"rr_{str(ULID()).lower()}",
            amount=amount,
            currency=locked.currency,
            reason=reason,
        )
    client = _client_for(locked.mini_program)
    try:
        response = client.refund(
            messages.RefundRequest(
                refund_request_id=refund.refund_request_id,
                payment_id=payment.wallet_payment_id,
                amount=Money(amount, locked.currency),
                reason=reason or None,
            )
        )
    except WalletBusinessFailure as failure:
        return _transition(
            model=Refund,
            instance=refund,
            table=transitions.REFUND,
            to=RefundStatus.FAILED,
            source="wallet_response",
            reason=f"{failure.result_code}: {failure.result_message}",
            failure_code=failure.result_code[:64],
        )
    except WalletUnknownOutcome as unknown:
        logger.warning("refund %s: outcome unknown (%s)", refund.refund_request_id, unknown.reason)
        return refund
    return _refund_succeeded(refund=refund, wallet_refund_id=response.refund_id, source="wallet_response")


@transaction.atomic
def _refund_succeeded(*, refund: Refund, wallet_refund_id: str, source: str) -> Refund:
    refund = _transition(
        model=Refund,
        instance=refund,
        table=transitions.REFUND,
        to=RefundStatus.SUCCEEDED,
        source=source,
        wallet_refund_id=wallet_refund_id,
    )
    order = Order.objects.unscoped().select_for_update().get(pk=refund.order_id)
    refunded = order.refunded_amount + refund.amount
    to = OrderStatus.REFUNDED if refunded == order.amount else OrderStatus.PARTIALLY_REFUNDED
    _transition(model=Order, instance=order, table=transitions.ORDER, to=to, source=source, refunded_amount=refunded)
    if to == OrderStatus.PARTIALLY_REFUNDED and order.status == OrderStatus.PARTIALLY_REFUNDED:
        Order.objects.unscoped().filter(pk=order.pk).update(refunded_amount=refunded)  # a further partial refund
    return refund


def order_cancel(*, order: Order) -> Order:
    """Close an unpaid order, cancelling its payment at the wallet when one exists there.

    A paid order is refused (``payments.order_already_paid``: refund it instead); a closed one is returned
    as it is. If the wallet says the payment succeeded meanwhile, the order becomes paid, not closed.
    """
    if order.status == OrderStatus.CLOSED:
        return order
    if order.status not in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        raise ConflictError("payments.order_already_paid", f"The order is {order.status}; refund it instead.")
    payment = order.payments.exclude(status__in=[PaymentStatus.FAILED, PaymentStatus.CANCELLED]).first()
    if payment is not None and payment.status != PaymentStatus.INITIATED:
        try:
            _client_for(order.mini_program).cancel(payment_request_id=payment.payment_request_id)
        except WalletBusinessFailure as failure:
            if failure.result_code != "ORDER_NOT_EXIST":
                refreshed = order_refresh(order=order)
                if refreshed.status == OrderStatus.PAID:
                    raise ConflictError("payments.order_already_paid", "The order was paid meanwhile.") from None
                raise ConflictError(
                    "payments.cancel_refused", f"The super app refused to cancel: {failure.result_code}."
                ) from None
        except WalletUnknownOutcome as unknown:
            raise ConflictError(
                "payments.cancel_outcome_unknown",
                f"The super app did not confirm the cancel ({unknown.reason}); retry.",
            ) from None
    with transaction.atomic():
        if payment is not None:
            _transition(
                model=Payment,
                instance=payment,
                table=transitions.PAYMENT,
                to=PaymentStatus.CANCELLED,
                source="api",
                next_inquiry_at=None,
            )
        return _transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source="api")


def _client_for(mini_program: MiniProgram):
    """The wallet client signing as the mini program's merchant (or its ISV) at its super app."""
    credential = merchant_selectors.wallet_credential_for(
        merchant=mini_program.merchant, super_app=mini_program.super_app
    )
    return merchant_selectors.wallet_client_for(credential=credential)
