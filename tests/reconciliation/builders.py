"""Ledger rows written in bulk and settlement files written as the sandbox writes them, for reconciliation tests."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from pathlib import Path

from django.utils import timezone

from apps.payments.models import Order, OrderStatus, Payment, PaymentStatus, Refund, RefundStatus
from apps.reconciliation.parsing import COLUMNS

DAY = dt.date(2026, 11, 21)
FEE_BPS = 150


def fee_of(amount: int) -> int:
    return (amount * FEE_BPS + 5_000) // 10_000


def at(day: dt.date, seconds: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(seconds=seconds)


@dataclasses.dataclass
class Ledger:
    mini_program: object
    orders: list = dataclasses.field(default_factory=list)

    def payments(
        self,
        prefix: str,
        count: int,
        *,
        paid_at: dt.datetime,
        status: str = PaymentStatus.SUCCEEDED,
        currency: str = "USD",
        amount: int | None = None,
    ) -> list[Payment]:
        """``count`` orders with one payment each, written directly (no wallet), paid at ``paid_at`` if succeeded."""
        mp, succeeded = self.mini_program, status == PaymentStatus.SUCCEEDED
        orders = Order.objects.bulk_create(
            Order(
                isv_id=mp.isv_id,
                merchant_id=mp.merchant_id,
                mini_program=mp,
                description=f"{prefix} {index}",
                amount=amount or 1000 + index,
                currency=currency,
                status=OrderStatus.PAID if succeeded else OrderStatus.PROCESSING,
                paid_amount=(amount or 1000 + index) if succeeded else 0,
                paid_at=paid_at if succeeded else None,
                expires_at=timezone.now() + dt.timedelta(hours=1),
            )
            for index in range(count)
        )
        return Payment.objects.bulk_create(
            Payment(
                isv_id=mp.isv_id,
                merchant_id=mp.merchant_id,
                order=order,
                payment_request_id=f"{prefix}-{index}",
                wallet_payment_id=f"W-{prefix}-{index}",
                amount=order.amount,
                status=status,
            )
            for index, order in enumerate(orders)
        )

    def refunds(self, prefix: str, payments: list[Payment], *, amount: int = 100) -> list[Refund]:
        orders = {order.pk: order for order in Order.objects.unscoped().filter(pk__in=[p.order_id for p in payments])}
        return Refund.objects.bulk_create(
            Refund(
                isv_id=payment.isv_id,
                merchant_id=payment.merchant_id,
                order_id=payment.order_id,
                payment=payment,
                refund_request_id=f"{prefix}-{index}",
                wallet_refund_id=f"WR-{prefix}-{index}",
                amount=amount,
                currency=orders[payment.order_id].currency,
                status=RefundStatus.SUCCEEDED,
            )
            for index, payment in enumerate(payments)
        )


def payment_line(payment: Payment, *, day: dt.date = DAY, currency: str = "USD", **changes) -> dict:
    amount = changes.pop("amount", payment.amount)
    fee = changes.pop("fee", fee_of(amount))
    line = {
        "record_type": "PAYMENT",
        "payment_id": payment.wallet_payment_id,
        "payment_request_id": payment.payment_request_id,
        "refund_id": "",
        "refund_request_id": "",
        "currency": currency,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "transaction_time": at(day, 3600).isoformat().replace("+00:00", "Z"),
        "settlement_date": day.isoformat(),
    }
    return line | changes


def refund_line(refund: Refund, payment: Payment, *, day: dt.date = DAY, **changes) -> dict:
    amount = changes.pop("amount", -refund.amount)
    line = {
        "record_type": "REFUND",
        "payment_id": payment.wallet_payment_id,
        "payment_request_id": payment.payment_request_id,
        "refund_id": refund.wallet_refund_id,
        "refund_request_id": refund.refund_request_id,
        "currency": refund.currency,
        "amount": amount,
        "fee": 0,
        "net": amount,
        "transaction_time": at(day, 7200).isoformat().replace("+00:00", "Z"),
        "settlement_date": day.isoformat(),
    }
    return line | changes


def write_file(path: Path, lines: list[dict]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    return path
