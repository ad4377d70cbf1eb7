"""``{% load dashboard %}{% dashboard %}``: the signed-in staff member's dashboard, for the admin index.

The figures come from ``apps.dashboard.selectors`` for the request's principal; this tag only adds the
charts and the links to the admin changelists filtered to what each figure counts. A changelist that is not
registered (yet) leaves its figure as plain text.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.core.admin import request_principal
from apps.dashboard import selectors
from apps.dashboard.charts import volume_chart
from apps.payments.models import OPEN_PRE_AUTHORIZATION
from apps.reconciliation.models import DiscrepancyStatus

register = template.Library()

ORDERS = "admin:payments_order_changelist"


def changelist_url(name: str, **filters: object) -> str | None:
    """The changelist ``name`` filtered by ``filters`` (admin lookups), or ``None`` if it is not registered."""
    try:
        url = reverse(name)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(filters)}" if filters else url


def _between(field: str, start: datetime.datetime, end: datetime.datetime) -> dict[str, str]:
    return {f"{field}__gte": start.isoformat(), f"{field}__lt": end.isoformat()}


def _linked(items: list, url_of) -> list[tuple[object, str | None]]:
    return [(item, url_of(item)) for item in items]


@register.inclusion_tag("dashboard/dashboard.html", takes_context=True)
def dashboard(context) -> dict:
    principal = request_principal(context["request"])
    period = selectors.Period.last_days()
    now = timezone.now()
    created = _between("created_at", period.start, period.end)
    paid = _between("paid_at", period.start, period.end)
    tenant_field = "isv" if principal.is_operator else "merchant"

    def day_url(day: datetime.date, currency: str) -> str | None:
        next_day = day + datetime.timedelta(days=1)
        paid_that_day = _between("paid_at", selectors.day_start(day), selectors.day_start(next_day))
        return changelist_url(ORDERS, currency=currency, **paid_that_day)

    charts = [
        (chart, [(bar, day_url(bar.figure.day, chart.series.currency)) for bar in chart.bars])
        for chart in map(volume_chart, selectors.payments_per_day(principal=principal, period=period))
    ]
    return {
        "scope_name": selectors.dashboard_scope_name(principal=principal),
        "period": period,
        "breakdown_title": "ISVs" if principal.is_operator else "Merchants",
        "breakdown_row": "ISV" if principal.is_operator else "merchant",
        "charts": charts,
        "success_rate": selectors.success_rate(principal=principal, period=period),
        "settled_orders_url": changelist_url(ORDERS, status__in=",".join(selectors.FINAL_STATUSES), **created),
        "refunds": _linked(
            selectors.refund_totals(principal=principal, period=period),
            lambda total: changelist_url(
                "admin:payments_refund_changelist", status="succeeded", currency=total.amount.currency, **created
            ),
        ),
        "discrepancies": _linked(
            selectors.open_discrepancies(principal=principal),
            lambda reason: changelist_url(
                "admin:reconciliation_discrepancy_changelist",
                status__exact=DiscrepancyStatus.OPEN,
                reason__exact=reason.value,
            ),
        ),
        "registrations": _linked(
            selectors.pending_registrations(principal=principal),
            lambda status: changelist_url("admin:merchants_registration_changelist", status__exact=status.value),
        ),
        "expiring": _linked(
            selectors.expiring_preauthorizations(principal=principal, now=now),
            lambda total: changelist_url(
                "admin:payments_preauthorization_changelist",
                status__in=",".join(OPEN_PRE_AUTHORIZATION),
                expires_at__lt=selectors.expiry_warning_deadline(now=now).isoformat(),
                currency=total.amount.currency,
            ),
        ),
        "breakdown": _linked(
            selectors.tenant_breakdown(principal=principal, period=period),
            lambda tenant: changelist_url(ORDERS, **{tenant_field: tenant.pk}, **paid),
        ),
    }
