"""Writes for orders and payments: creation through the super app, and resolution of unknown outcomes.

Rules every function here keeps: statuses move only through ``_transition`` (row lock, transition table,
event); ids sent to the wallet are stored before the call; an unknown outcome is never a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Iterator, Sequence

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from ulid import ULID

from apps.core.errors import ApplicationError, ConflictError, UpstreamUnavailableError
from apps.core.money import Money, currency_exponent
from apps.core.services import claim_due
from apps.core.tenancy import Principal
from apps.miniprograms.models import MAX_MINOR_UNITS, MiniProgram
from apps.miniprograms.selectors import mini_program_gate, product_list, wallet_client_of
from apps.superapps.client import messages
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.models import TradePayMode

from . import transitions
from .ledger import ask_again, record_event, refused, transition
from .models import (
    OPEN_PRE_AUTHORIZATION,
    Order,
    OrderKind,
    OrderStatus,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    RefundStatus,
)

logger = logging.getLogger(__name__)

DEFAULT_EXPIRY = datetime.timedelta(minutes=30)
MIN_EXPIRY, MAX_EXPIRY = datetime.timedelta(seconds=60), datetime.timedelta(days=1)
# An unknown outcome is asked about every 5 s at first (the wallets' advice), backing off to 10 min.
INQUIRY_FIRST_SECONDS, INQUIRY_MAX_SECONDS = 5, 600
# A payment no notification has settled is asked about after a minute (Antom's advice).
NOTIFICATION_GRACE = datetime.timedelta(seconds=60)
# "Never heard of it", from the OpenAPI and from the classic gateway.
NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "REFUND_NOT_EXIST", "ACQ.TRADE_NOT_EXIST"})
# alipay.trade.query's trade_status, read as inquiryPayment's paymentStatus.
CLASSIC_TRADE_STATUS = {
    "WAIT_BUYER_PAY": messages.PaymentStatus.PROCESSING,
    "TRADE_SUCCESS": messages.PaymentStatus.SUCCESS,
    "TRADE_FINISHED": messages.PaymentStatus.SUCCESS,
    "TRADE_CLOSED": messages.PaymentStatus.CANCELLED,
}


@dataclasses.dataclass(frozen=True)
class ItemRequest:
    sku: str
    quantity: int


def order_create(
    *,
    mini_program: MiniProgram,
    description: str,
    amount: Money | None = None,
    items: Sequence[ItemRequest] = (),
    currency: str | None = None,
    reference: str | None = None,
    metadata: dict | None = None,
    expires_in: datetime.timedelta | None = None,
    wallet_user_id: int | None = None,
) -> Order:
    """Create an order and hand back what ``my.tradePay`` needs.

    Priced by ``amount`` (a server's word) or by catalogue ``items`` (the only way for a user session;
    ``currency``, if given, must be theirs). Every check runs before anything is written or sent: the gate
    (license verified, mini program not suspended, payment enabled), expiry bounds, the super app's limit,
    credentials. The order and its payment attempt — with the id the wallet will know it by — are committed
    before the wallet hears of it. A ``payment_url`` mini program calls ``payments/pay``: ``A`` leaves the
    order pending with the cashier URL, ``F`` fails it, an unknown outcome leaves it processing for the
    inquiry to settle. An ``order_str`` mini program gets a signed orderStr and no wallet call.
    Raises ``payments.reference_taken`` (409), ``payments.expiry_out_of_range``, ``payments.unknown_sku``,
    ``payments.duplicate_sku``, ``payments.currency_mismatch``, ``payments.amount_above_limit``,
    ``payments.currency_not_supported`` and the gate's codes.
    """
    check_pricing(amount=amount, items=items, wallet_user_id=wallet_user_id)
    mini_program_gate(mini_program=mini_program)
    expires_in = expires_in or DEFAULT_EXPIRY
    if not MIN_EXPIRY <= expires_in <= MAX_EXPIRY:
        raise ApplicationError(
            "payments.expiry_out_of_range", "expires_in must be between 60 and 86400 seconds.", attr="expires_in"
        )
    amount, lines = priced(mini_program=mini_program, amount=amount, items=items, currency=currency)
    client = checked_wallet_client(mini_program)
    mode = mini_program.trade_pay_mode
    now = timezone.now()
    with new_order(
        mini_program=mini_program,
        wallet_user_id=wallet_user_id,
        reference=reference,
        description=description,
        amount=amount,
        metadata=metadata,
        items=lines,
        expires_at=now + expires_in,
    ) as order:
        payment = Payment.objects.create(
            isv_id=order.isv_id,
            merchant_id=order.merchant_id,
            order=order,
            payment_request_id=f"pr_{str(ULID()).lower()}",
            amount=order.amount,
            trade_pay_mode=mode,
            # A crash before the wallet's answer is stored still gets the payment asked about.
            next_inquiry_at=now + NOTIFICATION_GRACE,
        )
    if mode == TradePayMode.ORDER_STR:
        awaiting = _hand_out_order_str(client=client, payment=payment, order=order)
    else:
        awaiting = _send_pay(client=client, payment=payment, order=order)
    if awaiting is None:
        order.refresh_from_db()  # failed or processing: the transitions moved the order too
    # As ``selectors.order_list`` reads it, so the response needs no query of its own.
    order.pending_payments = [awaiting] if awaiting is not None else []
    return order


@contextlib.contextmanager
def new_order(
    *,
    mini_program: MiniProgram,
    amount: Money,
    metadata: dict | None,
    reference: str | None,
    kind: str = OrderKind.PAYMENT,
    **fields,
) -> Iterator[Order]:
    """A transaction that starts by creating the order, for the caller to add what goes with it; a
    reference the merchant used before is ``payments.reference_taken`` (409) and leaves nothing behind."""
    try:
        with transaction.atomic():
            yield Order.objects.create(
                isv_id=mini_program.isv_id,
                merchant_id=mini_program.merchant_id,
                mini_program=mini_program,
                kind=kind,
                reference=reference,
                amount=amount.value,
                currency=amount.currency,
                metadata=metadata or {},
                **fields,
            )
    except IntegrityError:
        raise ConflictError(
            "payments.reference_taken", f"An order with reference {reference!r} exists already.", attr="reference"
        ) from None


def check_pricing(*, amount: Money | None, items: Sequence[ItemRequest], wallet_user_id: int | None) -> None:
    if (amount is None) == (not items):
        raise ApplicationError("payments.amount_or_items", "Send either amount and currency, or items.", attr="items")
    if wallet_user_id is not None and amount is not None:
        raise ApplicationError(
            "payments.items_required",
            "With a user session, order catalogue items: the platform prices them.",
            attr="amount",
        )


def priced(
    *, mini_program: MiniProgram, amount: Money | None, items: Sequence[ItemRequest], currency: str | None
) -> tuple[Money, list[dict]]:
    """The amount to ask for (``amount``, or the catalogue ``items`` at today's prices, with their lines),
    checked against the super app's limits."""
    lines: list[dict] = []
    if items:
        amount, lines = _price(mini_program=mini_program, items=items, currency=currency)
    _check_amount(mini_program=mini_program, amount=amount)
    return amount, lines


def checked_wallet_client(mini_program: MiniProgram):
    """The wallet client of ``mini_program``, asked for before any write: no credentials, nothing stored."""
    client = wallet_client_of(mini_program)
    if mini_program.trade_pay_mode == TradePayMode.ORDER_STR and not client.config.classic_app_id:
        raise ApplicationError(
            "payments.order_str_not_configured",
            "The merchant's credentials at this super app have no classic app_id, which an orderStr needs.",
            attr="mini_program",
        )
    return client


def _price(*, mini_program: MiniProgram, items: Sequence[ItemRequest], currency: str | None) -> tuple[Money, list]:
    """The total of catalogue ``items`` at today's prices, and the lines as priced."""
    skus = [item.sku for item in items]
    if len(set(skus)) != len(skus):
        raise ApplicationError("payments.duplicate_sku", "List each SKU once, with its quantity.", attr="items")
    owner = Principal.system(isv_id=mini_program.isv_id, merchant_id=mini_program.merchant_id)
    products = {product.sku: product for product in product_list(principal=owner, active=True).filter(sku__in=skus)}
    missing = [sku for sku in skus if sku not in products]
    if missing:
        raise ApplicationError("payments.unknown_sku", f"No product on sale with SKU {missing[0]!r}.", attr="items")
    currencies = {product.currency for product in products.values()}
    if len(currencies) > 1 or (currency is not None and currency not in currencies):
        raise ApplicationError(
            "payments.currency_mismatch",
            f"The items are priced in {', '.join(sorted(currencies))}; one order takes one currency.",
            attr="items",
        )
    lines = [
        {
            "sku": item.sku,
            "name": products[item.sku].name,
            "quantity": item.quantity,
            "unit_price": products[item.sku].price,
        }
        for item in items
    ]
    total = sum(line["unit_price"] * line["quantity"] for line in lines)
    if total > MAX_MINOR_UNITS:
        raise ApplicationError("payments.amount_above_limit", "The order's total is too large.", attr="items")
    return Money(total, currencies.pop()), lines


def _check_amount(*, mini_program: MiniProgram, amount: Money) -> None:
    super_app = mini_program.super_app
    limit = super_app.payment_limits.get(amount.currency)
    if limit is not None and amount.value > limit:
        raise ApplicationError(
            "payments.amount_above_limit",
            f"{super_app.name} takes at most {limit} {amount.currency} (minor units) in one payment.",
            attr="amount",
        )
    if mini_program.trade_pay_mode == TradePayMode.ORDER_STR and currency_exponent(amount.currency) != 2:
        raise ApplicationError(
            "payments.currency_not_supported",
            f"orderStr payments are in currencies with two decimals; {amount.currency} has not.",
            attr="currency",
        )


def _send_pay(*, client, payment: Payment, order: Order) -> Payment | None:
    """Call ``payments/pay`` and apply the answer: the payment if it now awaits the user (the order then
    unchanged), else ``None``."""
    mini_program = order.mini_program
    request = messages.PayRequest(
        payment_request_id=payment.payment_request_id,
        amount=Money(order.amount, order.currency),
        order_description=order.description,
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
        return None
    except WalletUnknownOutcome as unknown:
        _payment_unknown(payment=payment, reason=unknown.reason, source="wallet_response")
        return None
    with transaction.atomic():
        return transition(
            model=Payment,
            instance=payment,
            table=transitions.PAYMENT,
            to=PaymentStatus.PENDING,
            source="wallet_response",
            expected=PaymentStatus.INITIATED,
            wallet_payment_id=response.payment_id,
            payment_url=response.payment_url or "",
        )


@transaction.atomic
def _hand_out_order_str(*, client, payment: Payment, order: Order) -> Payment:
    order_str = client.trade_pay_order_str(
        out_trade_no=payment.payment_request_id,
        amount=Money(order.amount, order.currency),
        subject=order.description,
        time_expire=order.expires_at,
        notify_url=order.mini_program.super_app.classic_notify_url(),
    )
    return transition(
        model=Payment,
        instance=payment,
        table=transitions.PAYMENT,
        to=PaymentStatus.PENDING,
        source="order_str",
        expected=PaymentStatus.INITIATED,
        order_str=order_str,
    )


@transaction.atomic
def _payment_failed(*, payment: Payment, code: str, reason: str, source: str) -> None:
    refused(
        model=Payment,
        instance=payment,
        table=transitions.PAYMENT,
        to=PaymentStatus.FAILED,
        code=code,
        reason=reason,
        source=source,
    )
    # A payment that fails once its order's time is up failed because it expired: the order is closed.
    expired = timezone.now() >= payment.order.expires_at
    transition(
        model=Order,
        instance=payment.order,
        table=transitions.ORDER,
        to=OrderStatus.CLOSED if expired else OrderStatus.FAILED,
        source=source,
        reason=code,
    )


@transaction.atomic
def _payment_unknown(*, payment: Payment, reason: str, source: str) -> None:
    transition(
        model=Payment,
        instance=payment,
        table=transitions.PAYMENT,
        to=PaymentStatus.UNKNOWN,
        source=source,
        reason=reason,
        next_inquiry_at=timezone.now() + datetime.timedelta(seconds=INQUIRY_FIRST_SECONDS),
    )
    transition(
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
    still processing or an inconclusive answer changes nothing but the next inquiry time.
    A payment the wallet never heard of fails only if it was never sent (an orderStr not yet opened is
    simply still pending). Final orders are left as they are.
    """
    if order.kind == OrderKind.PRE_AUTHORIZATION:
        from .preauthorizations import preauthorization_refresh  # a pre-authorization's order is asked about there

        preauthorization_refresh(pre_authorization=order.pre_authorization, source=source)
        return Order.objects.unscoped().get(pk=order.pk)
    payment = _open_payment(order)
    if payment is None or order.status not in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        return order
    _ask_about(payment, source=source)
    return Order.objects.unscoped().get(pk=order.pk)


def _ask_about(payment: Payment, *, source: str) -> messages.PaymentStatus | None:
    """Ask the wallet about ``payment`` and apply the answer. Returns the status it reported (``PROCESSING``
    for a payment it never heard of: nothing was paid), or ``None`` when it did not answer clearly."""
    client = wallet_client_of(payment.order.mini_program)
    try:
        inquiry = _inquire(client, payment)
    except WalletBusinessFailure as failure:
        if failure.result_code not in NOT_FOUND_CODES:
            _schedule_next_inquiry(payment)
            return None
        if payment.status == PaymentStatus.INITIATED:
            _payment_failed(payment=payment, code=failure.result_code, reason="never reached the wallet", source=source)
        else:
            _schedule_next_inquiry(payment)
        return messages.PaymentStatus.PROCESSING
    except WalletUnknownOutcome as unknown:
        logger.info(
            "inquiry of %s (%s) inconclusive: %s", payment.public_id, payment.payment_request_id, unknown.reason
        )
        _schedule_next_inquiry(payment)
        return None
    _apply_payment_state(payment=payment, inquiry=inquiry, source=source)
    return inquiry.status


def _open_payment(order: Order) -> Payment | None:
    return (
        order.payments.exclude(status__in=[PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED])
        .order_by("-created_at")
        .first()
    )


def _inquire(client, payment: Payment) -> messages.PaymentInquiry:
    """``inquiryPayment``, or for an orderStr payment ``alipay.trade.query`` read the same way."""
    if payment.trade_pay_mode != TradePayMode.ORDER_STR:
        return client.inquire_payment(payment_request_id=payment.payment_request_id)
    trade = client.trade_query(out_trade_no=payment.payment_request_id)
    return messages.PaymentInquiry(
        payment_id=trade.trade_no,
        payment_request_id=payment.payment_request_id,
        status=CLASSIC_TRADE_STATUS[trade.status],
        amount=trade.amount,
        payment_time=None,
        fail_reason=None,
    )


def _schedule_next_inquiry(payment: Payment) -> None:
    ask_again(payment, next_inquiry(payment.created_at))


#: An order that was paid is in one of these from then on.
PAID_OR_LATER = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


def next_inquiry(since: datetime.datetime) -> datetime.datetime:
    """Back off with the age of what is being asked about: every 5 s at first, at most every 10 min."""
    now = timezone.now()
    waited = (now - since).total_seconds()
    return now + datetime.timedelta(seconds=min(max(waited, INQUIRY_FIRST_SECONDS), INQUIRY_MAX_SECONDS))


@transaction.atomic
def _apply_payment_state(*, payment: Payment, inquiry: messages.PaymentInquiry, source: str) -> None:
    order = payment.order
    if inquiry.status is messages.PaymentStatus.SUCCESS:
        if payment.status == PaymentStatus.SUCCEEDED and order.status in PAID_OR_LATER:
            return  # the same news again, after refunds perhaps: what followed the payment stands
        expected = Money(order.amount, order.currency)
        if inquiry.amount is not None and inquiry.amount != expected:
            logger.error("payment %s: wallet amount %s != order %s", payment.public_id, inquiry.amount, expected)
            _payment_unknown(payment=payment, reason=f"amount mismatch: wallet {inquiry.amount}", source=source)
            return
        transition(
            model=Payment,
            instance=payment,
            table=transitions.PAYMENT,
            to=PaymentStatus.SUCCEEDED,
            source=source,
            expected=payment.status,  # the conditional UPDATE is the lock; a row that moved takes the long way
            wallet_payment_id=inquiry.payment_id or payment.wallet_payment_id,
            next_inquiry_at=None,
        )
        transition(
            model=Order,
            instance=order,
            table=transitions.ORDER,
            to=OrderStatus.PAID,
            source=source,
            expected=order.status,
            paid_at=timezone.now(),
            paid_amount=order.amount,
        )
    elif inquiry.status is messages.PaymentStatus.FAIL:
        _payment_failed(payment=payment, code="FAIL", reason=inquiry.fail_reason or "", source=source)
    elif inquiry.status is messages.PaymentStatus.CANCELLED:
        transition(
            model=Payment,
            instance=payment,
            table=transitions.PAYMENT,
            to=PaymentStatus.CANCELLED,
            source=source,
            next_inquiry_at=None,
        )
        transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source=source)
    else:  # still awaiting the user; a payment whose answer was lost stays processing, with no cashier to offer
        _schedule_next_inquiry(payment)


# --- notifications (applied by the callbacks inbox, exactly once per notification) ----------------


@dataclasses.dataclass(frozen=True)
class NotificationEffect:
    """What a notification did: ``anomaly`` when it contradicts what is known (nothing applied)."""

    anomaly: bool
    summary: str


def payment_notified(
    *, payment: Payment, succeeded: bool | None, amount: Money, wallet_payment_id: str, source: str
) -> NotificationEffect:
    """Apply what a notification says of ``payment`` (``succeeded`` ``None``: an unknown outcome, which is
    asked about at once). A capture goes to ``preauthorizations``. The amount and currency must be the
    payment's; a final state never moves back (a late ``FAIL`` after ``SUCCESS`` is an anomaly, recorded on
    the order, not applied); the same news twice changes nothing."""
    if payment.pre_authorization_id is not None:
        from .preauthorizations import capture_notified  # captures settle with their pre-authorization

        return capture_notified(
            capture=payment, succeeded=succeeded, amount=amount, wallet_payment_id=wallet_payment_id
        )
    order = payment.order
    expected = Money(payment.amount, order.currency)
    if amount != expected:
        return notification_anomaly(order=order, reason=f"{source}: amount {amount} is not the payment's {expected}")
    if succeeded is None:
        ask_again(payment, timezone.now())
        return NotificationEffect(anomaly=False, summary="outcome unknown: asked about at once")
    inquiry = messages.PaymentInquiry(
        payment_id=wallet_payment_id,
        payment_request_id=payment.payment_request_id,
        status=messages.PaymentStatus.SUCCESS if succeeded else messages.PaymentStatus.FAIL,
        amount=amount,
        payment_time=None,
        fail_reason="reported failed by the wallet" if not succeeded else None,
    )
    try:
        _apply_payment_state(payment=payment, inquiry=inquiry, source=source)
    except ConflictError as conflict:
        return notification_anomaly(order=order, reason=f"{source}: {conflict.message}")
    return NotificationEffect(anomaly=False, summary=f"payment {'succeeded' if succeeded else 'failed'}")


def refund_notified(*, refund: Refund, succeeded: bool, amount: Money, wallet_refund_id: str) -> NotificationEffect:
    """Apply ``notifyRefund``: the refund succeeded (counted once) or failed. The amount must be the
    refund's; a failure after success is an anomaly, not a regression."""
    if amount != Money(refund.amount, refund.currency):
        return notification_anomaly(order=refund.order, reason=f"refund of {amount}, not {refund.amount}")
    try:
        if succeeded:
            _refund_succeeded(refund=refund, wallet_refund_id=wallet_refund_id, source="wallet_notification")
        else:
            _refund_failed(refund=refund, code="FAIL", reason="reported failed by the wallet")
    except ConflictError as conflict:
        return notification_anomaly(order=refund.order, reason=f"wallet_notification: {conflict.message}")
    return NotificationEffect(anomaly=False, summary=f"refund {'succeeded' if succeeded else 'failed'}")


def notification_anomaly(*, order: Order, reason: str) -> NotificationEffect:
    """Record on ``order`` a notification that contradicts what is known; a person looks at it."""
    logger.error("order %s: notification not applied: %s", order.public_id, reason)
    record_event(
        model=Order,
        row=order,
        from_status=order.status,
        to=order.status,
        source="notification_anomaly",
        reason=reason,
    )
    return NotificationEffect(anomaly=True, summary=reason[:500])


CLIENT_RESULT_MEANINGS = {
    "9000": "paid",
    "8000": "processing",
    "4000": "failed",
    "6001": "cancelled by the user",
    "6002": "network error",
    "6004": "result unknown",
}
# What the client says is a hint: these make the platform ask the wallet; nothing is decided on it.
CLIENT_RESULTS_THAT_INQUIRE = frozenset({"9000", "8000", "6004", "6002"})


def order_client_result(*, order: Order, result_code: str) -> Order:
    """Record what ``my.tradePay`` returned in the mini program, and ask the wallet when it suggests news.

    Never changes a status by itself: a ``9000`` from a tampered client must not mark anything paid.
    """
    PaymentEvent.objects.create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        subject="order",
        from_status=order.status,
        to_status=order.status,
        source="client_result",
        reason=f"my.tradePay resultCode {result_code} ({CLIENT_RESULT_MEANINGS[result_code]})",
    )
    if result_code in CLIENT_RESULTS_THAT_INQUIRE:
        return order_refresh(order=order, source="client_result_inquiry")
    return order


# --- refunds and cancels -------------------------------------------------------------------------


def refund_request(
    *, order: Order, amount: int | None = None, reason: str = "", refunds_seen: int | None = None
) -> Refund:
    """Refund part or all of a paid order (``amount`` defaults to what is left of one payment).

    ``refunds_seen``: what the caller saw refunded or being refunded (minor units) when it decided; if the
    order's refunds differ by the time its lock is held, nothing is done (``payments.refunds_changed``), so a
    form sent twice, or two people at once, cannot refund twice.

    The sum of refunds that succeeded or are processing never exceeds what was paid, per payment: checked
    under the order's row lock, so concurrent requests cannot both pass. An order paid by several captures
    refunds from the earliest capture with room for the amount; one refund never spans two captures (the
    wallet refunds a trade at a time). A pre-authorization that can still be captured or released must be
    finished first. The refund's request id is committed before the wallet call. Success → succeeded; a
    refusal → failed; unknown → processing, for the inquiry to settle.
    Raises ``payments.order_not_refundable``, ``payments.pre_authorization_open``,
    ``payments.refund_exceeds_paid``.
    """
    with transaction.atomic():
        locked = Order.objects.unscoped().select_for_update().get(pk=order.pk)
        if locked.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
            raise ConflictError(
                "payments.order_not_refundable", f"The order is {locked.status}; only paid orders refund."
            )
        if locked.kind == OrderKind.PRE_AUTHORIZATION and locked.pre_authorization.status in OPEN_PRE_AUTHORIZATION:
            raise ConflictError(
                "payments.pre_authorization_open",
                "The order's pre-authorization still holds frozen funds: capture with final=true or release "
                "the rest, then refund.",
            )
        if refunds_seen is not None and _refunds_committed(locked) != refunds_seen:
            raise ConflictError(
                "payments.refunds_changed",
                "The order's refunds changed since you looked (another refund?); look again before refunding.",
            )
        payment, refundable = _payment_to_refund(locked, amount)
        amount = refundable if amount is None else amount
        if amount <= 0 or amount > refundable:
            raise ApplicationError(
                "payments.refund_exceeds_paid",
                f"At most {refundable} {locked.currency} (minor units) can be refunded in one refund.",
                attr="amount",
            )
        refund = Refund.objects.create(
            isv_id=locked.isv_id,
            merchant_id=locked.merchant_id,
            order=locked,
            payment=payment,
            refund_request_id=f"rr_{str(ULID()).lower()}",
            amount=amount,
            currency=locked.currency,
            reason=reason,
            next_inquiry_at=timezone.now() + NOTIFICATION_GRACE,
        )
    return _send_refund(refund)


def _refunds_committed(order: Order) -> int:
    """What is refunded or being refunded of ``order``, in minor units."""
    committed = order.refunds.filter(status__in=[RefundStatus.PROCESSING, RefundStatus.SUCCEEDED]).aggregate(
        total=Sum("amount")
    )["total"]
    return committed or 0


def _payment_to_refund(order: Order, amount: int | None) -> tuple[Payment | None, int]:
    """The first succeeded payment of ``order`` with room for ``amount`` (with ``None``: with room left),
    and that room; else the payment with the most room, for the error to name."""
    payments = list(
        order.payments.filter(status=PaymentStatus.SUCCEEDED)
        .annotate(
            committed=Coalesce(
                Sum("refunds__amount", filter=Q(refunds__status__in=[RefundStatus.PROCESSING, RefundStatus.SUCCEEDED])),
                0,
            )
        )
        .order_by("created_at")
    )
    rooms = [(payment, payment.amount - payment.committed) for payment in payments]
    for payment, room in rooms:
        if room > 0 and (amount is None or amount <= room):
            return payment, room
    return max(rooms, key=lambda pair: pair[1], default=(None, 0))  # none paid: nothing to refund


def _send_refund(refund: Refund) -> Refund:
    """Send (or send again: the request id makes it idempotent) a refund to the wallet and apply the answer."""
    payment, client = refund.payment, wallet_client_of(refund.order.mini_program)
    amount = Money(refund.amount, refund.currency)
    try:
        if payment.trade_pay_mode == TradePayMode.ORDER_STR:
            answer = client.trade_refund(
                out_trade_no=payment.payment_request_id,
                out_request_no=refund.refund_request_id,
                amount=amount,
                reason=refund.reason or None,
            )
            wallet_refund_id = answer.trade_no or ""
        else:
            request = messages.RefundRequest(
                refund_request_id=refund.refund_request_id,
                # A capture is refunded through its authorization payment (its own id is the captureId).
                payment_id=payment.pre_authorization.auth_no
                if payment.pre_authorization_id
                else payment.wallet_payment_id,
                amount=amount,
                reason=refund.reason or None,
                notify_url=refund.order.mini_program.super_app.refund_notify_url(),
            )
            wallet_refund_id = client.refund(request).refund_id
    except WalletBusinessFailure as failure:
        return _refund_failed(refund=refund, code=failure.result_code, reason=failure.result_message)
    except WalletUnknownOutcome as unknown:
        logger.warning(
            "refund %s (%s): outcome unknown (%s)", refund.public_id, refund.refund_request_id, unknown.reason
        )
        return _schedule_refund_inquiry(refund)
    return _refund_succeeded(refund=refund, wallet_refund_id=wallet_refund_id, source="wallet_response")


def refund_refresh(*, refund: Refund) -> Refund:
    """Ask the wallet about a refund still processing; one it never received is sent again."""
    if refund.status != RefundStatus.PROCESSING:
        return refund
    payment, client = refund.payment, wallet_client_of(refund.order.mini_program)
    try:
        if payment.trade_pay_mode == TradePayMode.ORDER_STR:
            found = client.trade_refund_query(
                out_trade_no=payment.payment_request_id, out_request_no=refund.refund_request_id
            )
            inquiry = (
                None
                if found is None
                else messages.RefundInquiry(
                    refund_id=found.trade_no,
                    refund_request_id=refund.refund_request_id,
                    status=messages.RefundStatus.SUCCESS,
                    amount=found.amount,
                    refund_time=None,
                )
            )
        else:
            inquiry = client.inquire_refund(refund_request_id=refund.refund_request_id)
    except WalletBusinessFailure as failure:
        inquiry = None
        if failure.result_code not in NOT_FOUND_CODES:
            return _schedule_refund_inquiry(refund)
    except WalletUnknownOutcome:
        return _schedule_refund_inquiry(refund)
    if inquiry is None:
        return _send_refund(refund)
    if inquiry.status is messages.RefundStatus.SUCCESS:
        return _refund_succeeded(refund=refund, wallet_refund_id=inquiry.refund_id or "", source="wallet_inquiry")
    if inquiry.status is messages.RefundStatus.FAIL:
        return _refund_failed(refund=refund, code="FAIL", reason="the wallet reports the refund failed")
    return _schedule_refund_inquiry(refund)


def _schedule_refund_inquiry(refund: Refund) -> Refund:
    return ask_again(refund, next_inquiry(refund.created_at))


def _refund_failed(*, refund: Refund, code: str, reason: str) -> Refund:
    return refused(
        model=Refund, instance=refund, table=transitions.REFUND, to=RefundStatus.FAILED, code=code, reason=reason
    )


@transaction.atomic
def _refund_succeeded(*, refund: Refund, wallet_refund_id: str, source: str) -> Refund:
    locked = Refund.objects.unscoped().select_for_update().get(pk=refund.pk)
    if locked.status == RefundStatus.SUCCEEDED:
        return locked  # counted once, however many answers say so
    refund = transition(
        model=Refund,
        instance=locked,
        table=transitions.REFUND,
        to=RefundStatus.SUCCEEDED,
        source=source,
        wallet_refund_id=wallet_refund_id,
        next_inquiry_at=None,
    )
    order = Order.objects.unscoped().select_for_update().get(pk=refund.order_id)
    refunded = order.refunded_amount + refund.amount
    to = OrderStatus.REFUNDED if refunded == order.paid_amount else OrderStatus.PARTIALLY_REFUNDED
    transition(model=Order, instance=order, table=transitions.ORDER, to=to, source=source, refunded_amount=refunded)
    if to == OrderStatus.PARTIALLY_REFUNDED and order.status == OrderStatus.PARTIALLY_REFUNDED:
        Order.objects.unscoped().filter(pk=order.pk).update(refunded_amount=refunded)  # a further partial refund
    return refund


def order_cancel(*, order: Order, source: str = "api") -> Order:
    """Close an unpaid order, cancelling its payment at the wallet when one exists there.

    A paid order is refused (``payments.order_already_paid``: refund it instead); a closed one is returned
    as it is. The wallet is asked about the payment just before it is asked to cancel it: if the user has
    paid meanwhile, the order becomes paid and the cancel is refused, since the wallet would take a cancel
    of a paid payment as a void. If a cancel still went through on a payment paid in between, the order
    becomes refunded. An orderStr the user has not opened cannot be closed at the wallet yet and stays
    payable until it expires: ``payments.order_str_not_opened``.
    Raises ``payments.cancel_refused`` and ``payments.cancel_outcome_unknown`` (503: retry).
    """
    order = (
        Order.objects.unscoped()
        .select_related("mini_program__super_app", "mini_program__merchant")
        .get(
            pk=order.pk  # as stored now, not as the caller read it
        )
    )
    if order.status == OrderStatus.CLOSED:
        return order
    if order.kind == OrderKind.PRE_AUTHORIZATION:
        raise ConflictError(
            "payments.order_is_pre_authorization",
            "This order is a pre-authorization: release it (POST /api/v1/preauthorizations/{id}/release).",
        )
    _refuse_unless_unpaid(order)
    payment = order.payments.exclude(status__in=[PaymentStatus.FAILED, PaymentStatus.CANCELLED]).first()
    if payment is not None and payment.status != PaymentStatus.INITIATED:
        # Asked first: the money of a payment the user has just made would otherwise go back (a void)
        # without the platform ever having seen it come in. Only a clear "not paid" lets the cancel go.
        said = _ask_about(payment, source="wallet_inquiry")
        order = Order.objects.unscoped().select_related("mini_program__super_app").get(pk=order.pk)
        if order.status == OrderStatus.CLOSED:
            return order
        _refuse_unless_unpaid(order)
        if said is not messages.PaymentStatus.PROCESSING:
            raise UpstreamUnavailableError(
                "payments.cancel_outcome_unknown",
                "The super app did not say whether the order was paid, so nothing was cancelled; retry.",
            )
        _cancel_at_wallet(order=order, payment=payment)
    with transaction.atomic():
        if payment is not None:
            locked = Payment.objects.unscoped().select_for_update().get(pk=payment.pk)
            if locked.status == PaymentStatus.SUCCEEDED:
                return _voided_after_payment(order=order, source=source)
            transition(
                model=Payment,
                instance=locked,
                table=transitions.PAYMENT,
                to=PaymentStatus.CANCELLED,
                source=source,
                next_inquiry_at=None,
            )
        return transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source=source)


def _refuse_unless_unpaid(order: Order) -> None:
    if order.status not in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        raise ConflictError("payments.order_already_paid", f"The order is {order.status}; refund it instead.")


def _cancel_at_wallet(*, order: Order, payment: Payment) -> None:
    client = wallet_client_of(order.mini_program)
    is_order_str = payment.trade_pay_mode == TradePayMode.ORDER_STR
    try:
        if is_order_str:
            client.trade_close(out_trade_no=payment.payment_request_id)
        else:
            client.cancel(payment_request_id=payment.payment_request_id)
    except WalletBusinessFailure as failure:
        if failure.result_code in NOT_FOUND_CODES:
            # The wallet has nothing to cancel. For an orderStr that only means the user has not opened it yet:
            # the signed string stays payable until it expires.
            if is_order_str and timezone.now() < order.expires_at:
                raise ConflictError(
                    "payments.order_str_not_opened",
                    f"The user has not opened this orderStr, so the super app cannot close it yet; it can be paid "
                    f"until {order.expires_at.isoformat(timespec='seconds')} and closes by itself then.",
                ) from None
            return
        refreshed = order_refresh(order=order)
        if refreshed.status == OrderStatus.PAID:
            raise ConflictError("payments.order_already_paid", "The order was paid meanwhile.") from None
        raise ConflictError(
            "payments.cancel_refused", f"The super app refused to cancel: {failure.result_code}."
        ) from None
    except WalletUnknownOutcome as unknown:
        raise UpstreamUnavailableError(
            "payments.cancel_outcome_unknown",
            f"The super app did not confirm the cancel ({unknown.reason}); retry.",
        ) from None


def _voided_after_payment(*, order: Order, source: str) -> Order:
    """A cancel the wallet confirmed for a payment recorded as paid meanwhile: the wallet gave the money back."""
    order = Order.objects.unscoped().select_for_update().get(pk=order.pk)
    logger.error("order %s: cancelled at the wallet after it was paid; the money went back to the user", order)
    return transition(
        model=Order,
        instance=order,
        table=transitions.ORDER,
        to=OrderStatus.REFUNDED,
        source=source,
        reason="cancelled at the wallet after it was paid: the money went back to the user",
        paid_amount=order.amount,
        refunded_amount=order.amount,
    )


# --- periodic resolution ---------------------------------------------------------------------------


def payments_resolve_due(*, limit: int = 100) -> int:
    """Ask the wallets about payments and refunds whose next inquiry is due: outcomes left unknown (captures
    included), payments no notification has settled yet, and refunds still processing. One row's trouble
    never stops the others. Returns how many were asked about."""
    now = timezone.now()
    payments = claim_due(
        Payment.objects.unscoped()  # batch work across tenants: each row is then handled on its own
        .filter(status__in=[PaymentStatus.INITIATED, PaymentStatus.PENDING, PaymentStatus.UNKNOWN])
        .select_related("order__mini_program__merchant", "order__mini_program__super_app"),
        field="next_inquiry_at",
        now=now,
        limit=limit,
        next_at=lambda payment: next_inquiry(payment.created_at),
    )
    refunds = claim_due(
        Refund.objects.unscoped()
        .filter(status=RefundStatus.PROCESSING)
        .select_related("payment", "order__mini_program__merchant", "order__mini_program__super_app"),
        field="next_inquiry_at",
        now=now,
        limit=limit,
        next_at=lambda refund: next_inquiry(refund.created_at),
    )
    for payment in payments:
        resolve_quietly(order_refresh, order=payment.order, source="wallet_inquiry")
    for refund in refunds:
        resolve_quietly(refund_refresh, refund=refund)
    return len(payments) + len(refunds)


def orders_expire(*, limit: int = 100) -> int:
    """Close orders whose time ran out: asked about first (a late payment makes them paid), then cancelled at
    the wallet. An order whose cancel the wallet does not confirm stays open for the next run."""
    expired = list(
        Order.objects.unscoped()  # batch work across tenants
        .filter(
            kind=OrderKind.PAYMENT,  # a pre-authorization expires by its own rules (``preauthorizations``)
            status__in=[OrderStatus.PENDING, OrderStatus.PROCESSING],
            expires_at__lte=timezone.now(),
        )
        .select_related("mini_program__merchant", "mini_program__super_app")
        .order_by("expires_at")[:limit]
    )
    for order in expired:
        resolve_quietly(_order_expire, order=order)
    return len(expired)


def _order_expire(*, order: Order) -> None:
    order = order_refresh(order=order, source="expiry")
    if order.status in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        order_cancel(order=order, source="expiry")


def resolve_quietly(resolve, **kwargs) -> None:
    """Run one row's resolution in a batch; what it cannot settle now is logged and left for the next run."""
    try:
        resolve(**kwargs)
    except (ApplicationError, WalletUnknownOutcome) as problem:
        logger.warning("%s %s: inconclusive (%s)", resolve.__name__, kwargs, problem)
