"""The figures of the admin dashboard, each for what one principal may see.

Every figure reads through ``visible_to(principal)`` and is one aggregate query in the database (grouped by
day, currency, reason or tenant), so the page costs the same number of queries whatever the number of orders,
days or merchants. Amounts are summed per currency and returned as ``Money``: currencies are never mixed.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.core.money import Money
from apps.core.tenancy import Principal
from apps.merchants.models import Isv, Merchant, Registration, RegistrationStatus
from apps.payments.models import OPEN_PRE_AUTHORIZATION, Order, OrderStatus, PreAuthorization, Refund, RefundStatus
from apps.reconciliation.models import Discrepancy, DiscrepancyStatus, Reason

PERIOD_DAYS = 30

#: Orders whose outcome is settled; the first three were paid (a refund later does not undo the sale).
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
FINAL_STATUSES = (*PAID_STATUSES, OrderStatus.FAILED, OrderStatus.CLOSED)

#: Registrations that still wait: for the merchant's submission, or for the super app's decision.
PENDING_REGISTRATION = (RegistrationStatus.DRAFT, RegistrationStatus.SUBMITTED, RegistrationStatus.UNDER_REVIEW)


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the current time zone, ``first_day`` to ``last_day`` included."""

    first_day: datetime.date
    last_day: datetime.date

    @classmethod
    def last_days(cls, days: int = PERIOD_DAYS) -> Period:
        today = timezone.localdate()
        return cls(first_day=today - datetime.timedelta(days=days - 1), last_day=today)

    @property
    def start(self) -> datetime.datetime:
        return day_start(self.first_day)

    @property
    def end(self) -> datetime.datetime:
        return day_start(self.last_day + datetime.timedelta(days=1))

    def days(self) -> list[datetime.date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + datetime.timedelta(days=offset) for offset in range(count)]


def day_start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


@dataclasses.dataclass(frozen=True, slots=True)
class DayFigure:
    day: datetime.date
    count: int
    volume: Money


@dataclasses.dataclass(frozen=True, slots=True)
class DailySeries:
    """Paid orders of one currency, one figure for every day of the period (zero on quiet days)."""

    currency: str
    days: list[DayFigure]

    @property
    def count(self) -> int:
        return sum(figure.count for figure in self.days)

    @property
    def volume(self) -> Money:
        return Money(value=sum(figure.volume.value for figure in self.days), currency=self.currency)


@dataclasses.dataclass(frozen=True, slots=True)
class CurrencyTotal:
    count: int
    amount: Money


@dataclasses.dataclass(frozen=True, slots=True)
class SuccessRate:
    """Paid orders among those that reached a final state."""

    paid: int
    final: int

    @property
    def percent(self) -> Decimal | None:
        """One decimal; ``None`` when no order reached a final state (no rate, rather than 0 %)."""
        if not self.final:
            return None
        return (Decimal(100 * self.paid) / self.final).quantize(Decimal("0.1"))


@dataclasses.dataclass(frozen=True, slots=True)
class ChoiceCount:
    """How many rows have one value of a choice field (a reason, a status)."""

    value: str
    label: str
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class TenantFigures:
    """One merchant's (for ISV staff) or one ISV's (for operators) line of the breakdown table."""

    pk: int
    public_id: str
    name: str
    paid: list[CurrencyTotal]
    success_rate: SuccessRate


def dashboard_scope_name(*, principal: Principal) -> str:
    """What the dashboard is about: the merchant, the ISV, or every ISV for an operator."""
    if principal.is_operator:
        return "All ISVs"
    if principal.acts_for_merchant:
        names = Merchant.objects.visible_to(principal).filter(pk=principal.merchant_id)
    else:
        names = Isv.objects.visible_to(principal)
    return names.values_list("name", flat=True).first() or ""


def _paid_in(principal: Principal, period: Period) -> QuerySet[Order]:
    return Order.objects.visible_to(principal).filter(paid_at__gte=period.start, paid_at__lt=period.end)


def _settled_in(principal: Principal, period: Period) -> QuerySet[Order]:
    """Orders created in the period that reached a final state (the success rate's denominator)."""
    return Order.objects.visible_to(principal).filter(
        created_at__gte=period.start, created_at__lt=period.end, status__in=FINAL_STATUSES
    )


_OUTCOMES = {"final": Count("pk"), "paid": Count("pk", filter=Q(status__in=PAID_STATUSES))}


def payments_per_day(*, principal: Principal, period: Period) -> list[DailySeries]:
    """Paid orders (count and sum of paid amounts) per day of payment, one series per currency."""
    rows = (
        _paid_in(principal, period)
        .annotate(day=TruncDate("paid_at"))
        .values("currency", "day")
        .annotate(count=Count("pk"), volume=Sum("paid_amount"))
        .order_by("currency", "day")
    )
    by_currency: dict[str, dict[datetime.date, tuple[int, int]]] = {}
    for row in rows:
        by_currency.setdefault(row["currency"], {})[row["day"]] = (row["count"], row["volume"])
    return [
        DailySeries(
            currency=currency,
            days=[
                DayFigure(day=day, count=count, volume=Money(value=volume, currency=currency))
                for day in period.days()
                for count, volume in [figures.get(day, (0, 0))]
            ],
        )
        for currency, figures in by_currency.items()
    ]


def success_rate(*, principal: Principal, period: Period) -> SuccessRate:
    """Of the orders created in the period that reached a final state, how many were paid."""
    return SuccessRate(**_settled_in(principal, period).aggregate(**_OUTCOMES))


def refund_totals(*, principal: Principal, period: Period) -> list[CurrencyTotal]:
    """Succeeded refunds asked for in the period: how many and how much, per currency."""
    rows = (
        Refund.objects.visible_to(principal)
        .filter(status=RefundStatus.SUCCEEDED, created_at__gte=period.start, created_at__lt=period.end)
        .values("currency")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by("currency")
    )
    return [_currency_total(row, "amount") for row in rows]


def open_discrepancies(*, principal: Principal) -> list[ChoiceCount]:
    """Open reconciliation discrepancies by reason, the most frequent first."""
    rows = (
        Discrepancy.objects.visible_to(principal)
        .filter(status=DiscrepancyStatus.OPEN)
        .values("reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "reason")
    )
    return [ChoiceCount(value=row["reason"], label=Reason(row["reason"]).label, count=row["count"]) for row in rows]


def pending_registrations(*, principal: Principal) -> list[ChoiceCount]:
    """Registrations not yet decided, by status in the order they move."""
    counts = dict(
        Registration.objects.visible_to(principal)
        .filter(status__in=PENDING_REGISTRATION)
        .values("status")
        .annotate(count=Count("pk"))
        .values_list("status", "count")
    )
    return [
        ChoiceCount(value=status.value, label=status.label, count=counts[status])
        for status in PENDING_REGISTRATION
        if status in counts
    ]


def expiry_warning_deadline(*, now: datetime.datetime) -> datetime.datetime:
    """An open pre-authorization expiring before this is about to expire: less than
    ``PREAUTHORIZATION_EXPIRY_WARNING_SECONDS`` left, or past expiry and not yet ended (as its admin badge says)."""
    return now + datetime.timedelta(seconds=settings.PREAUTHORIZATION_EXPIRY_WARNING_SECONDS)


def expiring_preauthorizations(*, principal: Principal, now: datetime.datetime) -> list[CurrencyTotal]:
    """Pre-authorizations about to expire: how many, and how much is still frozen, per currency."""
    rows = (
        PreAuthorization.objects.visible_to(principal)
        .filter(status__in=OPEN_PRE_AUTHORIZATION, expires_at__lt=expiry_warning_deadline(now=now))
        .values("currency")
        .annotate(count=Count("pk"), frozen=Sum(F("amount") - F("captured_amount") - F("released_amount")))
        .order_by("currency")
    )
    return [_currency_total(row, "frozen") for row in rows]


def tenant_breakdown(*, principal: Principal, period: Period) -> list[TenantFigures]:
    """One line per merchant for ISV staff, per ISV for operators, none for a merchant's own staff: paid
    orders per currency and the success rate, every tenant listed (quiet ones too), by name."""
    if principal.acts_for_merchant:
        return []
    group, tenants = ("isv_id", Isv) if principal.is_operator else ("merchant_id", Merchant)
    paid_rows = (
        _paid_in(principal, period)
        .values(group, "currency")
        .annotate(count=Count("pk"), volume=Sum("paid_amount"))
        .order_by(group, "currency")
    )
    paid: dict[int, list[CurrencyTotal]] = {}
    for row in paid_rows:
        paid.setdefault(row[group], []).append(_currency_total(row, "volume"))
    outcomes = {row.pop(group): row for row in _settled_in(principal, period).values(group).annotate(**_OUTCOMES)}
    return [
        TenantFigures(
            pk=pk,
            public_id=public_id,
            name=name,
            paid=paid.get(pk, []),
            success_rate=SuccessRate(**outcomes.get(pk, {"final": 0, "paid": 0})),
        )
        for pk, public_id, name in tenants.objects.visible_to(principal)
        .order_by("name")
        .values_list("pk", "public_id", "name")
    ]


def _currency_total(row: dict, amount_key: str) -> CurrencyTotal:
    return CurrencyTotal(count=row["count"], amount=Money(value=row[amount_key], currency=row["currency"]))
