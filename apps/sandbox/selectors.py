"""What the sandbox reads: lookups scoped to the calling client, cashier figures, settlement rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q
from django.utils import timezone
from iso4217 import Currency

from . import conf
from .models import TEST_USERS, Balance, Capture, ClassicOrder, Payment, Refund, Registration, SandboxClient
from .protocol import iso


def client_get(client_id: str) -> SandboxClient | None:
    return SandboxClient.objects.filter(client_id=client_id).first()


def client_for_classic_app(app_id: str) -> SandboxClient | None:
    return SandboxClient.objects.filter(classic_app_id=app_id).first() if app_id else None


def payment_find(*, client: SandboxClient, payment_id: str, payment_request_id: str) -> Payment | None:
    """``paymentId`` wins when both are given (§4.3)."""
    lookup = {"payment_id": payment_id} if payment_id else {"payment_request_id": payment_request_id}
    return client.payments.filter(**lookup).first()


def refund_find(*, client: SandboxClient, refund_id: str, refund_request_id: str) -> Refund | None:
    lookup = {"refund_id": refund_id} if refund_id else {"refund_request_id": refund_request_id}
    return client.refunds.select_related("payment").filter(**lookup).first()


def registration_find(
    *, client: SandboxClient, registration_request_id: str, reference_merchant_id: str
) -> Registration | None:
    """By request id, or the latest registration of a merchant."""
    if registration_request_id:
        return client.registrations.filter(registration_request_id=registration_request_id).first()
    return client.registrations.filter(reference_merchant_id=reference_merchant_id).order_by("-pk").first()


def payment_get(payment_id: str) -> Payment | None:
    return Payment.objects.select_related("client").filter(payment_id=payment_id).first()


def classic_order_get(wallet_no: str) -> ClassicOrder | None:
    return ClassicOrder.objects.select_related("client").filter(wallet_no=wallet_no).first()


def classic_trade_find(*, client: SandboxClient, trade_no: str, out_trade_no: str) -> ClassicOrder | None:
    """An orderStr trade of the client; ``trade_no`` wins when both are given, as at the real gateway."""
    lookup = {"wallet_no": trade_no} if trade_no else {"out_no": out_trade_no}
    trades = client.classic_orders.select_related("payer").filter(kind=ClassicOrder.Kind.TRADE)
    return trades.filter(**lookup).first()


def classic_freeze_find(*, client: SandboxClient, auth_no: str, out_order_no: str = "") -> ClassicOrder | None:
    """A pre-authorisation of the client; ``auth_no`` wins when both are given, as at the real gateway."""
    lookup = {"wallet_no": auth_no} if auth_no else {"out_no": out_order_no}
    freezes = client.classic_orders.select_related("client", "payer").filter(kind=ClassicOrder.Kind.FREEZE)
    return freezes.filter(**lookup).first()


def format_amount(currency: str, minor_units: int) -> str:
    """``("KWD", 1500)`` -> ``"KWD 1.500"``: the currency's own exponent, from ISO 4217."""
    exponent = Currency(currency).exponent or 0
    return f"{currency} {Decimal(minor_units).scaleb(-exponent):,.{exponent}f}"


@dataclasses.dataclass(frozen=True)
class CashierUser:
    login: str
    display_name: str
    balance: str
    can_pay: bool


def cashier_users(*, currency: str, amount: int) -> list[CashierUser]:
    """The test users with their balance in ``currency`` (the opening balance if they never paid in it)."""
    held = dict(
        Balance.objects.filter(user__login__in=TEST_USERS, currency=currency).values_list("user__login", "amount")
    )
    users = []
    for seed in TEST_USERS.values():
        balance = held.get(seed.login, seed.opening_balance)
        users.append(CashierUser(seed.login, seed.display_name, format_amount(currency, balance), balance >= amount))
    return users


def payments_awaiting_user(*, limit: int = 20) -> list[Payment]:
    """The newest payments still open at the cashier, for the sandbox's home page."""
    now = timezone.now()
    awaiting = Payment.objects.select_related("client").filter(status=Payment.Status.PROCESSING)
    awaiting = awaiting.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    return list(awaiting.order_by("-created_at")[:limit])


def user_balances() -> dict[str, list[str]]:
    """Each test user's balances in the currencies they have used (all others are the opening balance)."""
    held: dict[str, list[str]] = {login: [] for login in TEST_USERS}
    rows = Balance.objects.filter(user__login__in=TEST_USERS).order_by("currency")
    for login, currency, amount in rows.values_list("user__login", "currency", "amount"):
        held[login].append(format_amount(currency, amount))
    return held


SETTLEMENT_COLUMNS = (
    "record_type",
    "payment_id",
    "payment_request_id",
    "refund_id",
    "refund_request_id",
    "currency",
    "amount",
    "fee",
    "net",
    "transaction_time",
    "settlement_date",
)


def settlement_rows(*, client: SandboxClient, day: dt.date) -> list[dict]:
    """One client's money movements that settle on ``day`` (UTC): payments on the day they were paid, refunds
    and voids (cancellations of paid payments, as REFUND rows without a refund id) on the day they happened.
    An authorization settles by its captures, each on its own day and under its own ids (``payment_id`` its
    ``captureId``, ``payment_request_id`` its ``captureRequestId``), as a real wallet settles a capture as a
    movement of its own. A refund names the payment it was asked of: for captured money that is the
    authorization (a refund request names no capture). Payments carry the fee; refunds are negative and carry
    none."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    end = start + dt.timedelta(days=1)
    rows = []
    payments = client.payments.filter(authorization=False)
    for payment in payments.filter(paid_at__gte=start, paid_at__lt=end):
        rows.append(_payment_row(payment, day))
    for capture in client.captures.filter(captured_at__gte=start, captured_at__lt=end):
        rows.append(_capture_row(capture, day))
    voided = payments.filter(cancelled_at__gte=start, cancelled_at__lt=end, paid_at__isnull=False)
    for payment in voided:
        rows.append(_refund_row(payment, None, payment.amount, payment.cancelled_at, day))
    refunds = client.refunds.select_related("payment").filter(
        status=Refund.Status.SUCCESS, refunded_at__gte=start, refunded_at__lt=end
    )
    for refund in refunds:
        rows.append(_refund_row(refund.payment, refund, refund.amount, refund.refunded_at, day))
    return sorted(rows, key=lambda row: row["transaction_time"])


def _fee(amount: int) -> int:
    """``SANDBOX_FEE_BPS`` basis points of the amount, rounded half up to a whole minor unit."""
    return int((Decimal(amount) * conf.get("FEE_BPS") / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _payment_row(payment: Payment, day: dt.date) -> dict:
    ids = (payment.payment_id, payment.payment_request_id)
    return _row("PAYMENT", *ids, None, payment.currency, payment.amount, payment.paid_at, day)


def _capture_row(capture: Capture, day: dt.date) -> dict:
    ids = (capture.capture_id, capture.capture_request_id)
    return _row("PAYMENT", *ids, None, capture.currency, capture.amount, capture.captured_at, day)


def _refund_row(payment: Payment, refund: Refund | None, amount: int, moment: dt.datetime, day: dt.date) -> dict:
    ids = (payment.payment_id, payment.payment_request_id)
    return _row("REFUND", *ids, refund, payment.currency, -amount, moment, day)


def _row(record_type, payment_id, payment_request_id, refund, currency, amount, moment, day) -> dict:
    """Payments carry the fee; refunds (negative) carry none."""
    fee = _fee(amount) if record_type == "PAYMENT" else 0
    return {
        "record_type": record_type,
        "payment_id": payment_id,
        "payment_request_id": payment_request_id,
        "refund_id": refund.refund_id if refund else "",
        "refund_request_id": refund.refund_request_id if refund else "",
        "currency": currency,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "transaction_time": iso(moment),
        "settlement_date": day.isoformat(),
    }
