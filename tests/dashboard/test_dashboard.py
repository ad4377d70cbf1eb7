"""The admin index's dashboard: each role sees the figures of its own scope exactly, and nothing of others."""

from __future__ import annotations

import datetime
import itertools
import re
from html import unescape

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.selectors import principal_for_user
from apps.dashboard.charts import CHART_HEIGHT
from apps.dashboard.templatetags import dashboard as dashboard_tags
from apps.miniprograms.models import MiniProgram
from apps.payments.models import (
    Order,
    OrderKind,
    OrderStatus,
    Payment,
    PaymentStatus,
    PreAuthorization,
    PreAuthorizationStatus,
    Refund,
    RefundStatus,
)
from apps.superapps.models import TradePayMode
from tests.test_isolation import _assert_no_canary, _victims_of

#: Far from the day the world's canaries are written, so that only this module's orders fall in the period.
NOW = datetime.datetime(2030, 3, 15, 12, 0, tzinfo=datetime.UTC)
_serial = itertools.count()


@pytest.fixture
def frozen(world):
    with time_machine.travel(NOW, tick=False):
        yield


def _at(day: int, month: int = 3) -> datetime.datetime:
    return datetime.datetime(2030, month, day, 10, 0, tzinfo=datetime.UTC)


def _order(tenant, *, amount, status, created, currency="USD", paid=None, refunded=0, kind=OrderKind.PAYMENT):
    merchant = tenant.merchant
    order = Order.objects.unscoped().create(
        isv_id=merchant.isv_id,
        merchant=merchant,
        mini_program=MiniProgram.objects.unscoped().get(merchant=merchant),
        kind=kind,
        description="dashboard order",
        amount=amount,
        currency=currency,
        status=status,
        paid_amount=amount if paid else 0,
        refunded_amount=refunded,
        paid_at=paid,
        expires_at=created + datetime.timedelta(hours=1),
    )
    Order.objects.unscoped().filter(pk=order.pk).update(created_at=created)  # auto_now_add ignores a given one
    return order


def _refund(order, *, amount, status):
    tenant = {"isv_id": order.isv_id, "merchant_id": order.merchant_id}
    payment = Payment.objects.unscoped().create(
        **tenant,
        order=order,
        payment_request_id=f"dash-pay-{next(_serial)}",
        amount=order.amount,
        status=PaymentStatus.SUCCEEDED,
    )
    Refund.objects.unscoped().create(
        **tenant,
        order=order,
        payment=payment,
        refund_request_id=f"dash-ref-{next(_serial)}",
        amount=amount,
        currency=order.currency,
        status=status,
    )


def _pre_authorization(tenant, *, amount, expires_in: datetime.timedelta):
    order = _order(
        tenant, amount=amount, status=OrderStatus.AUTHORIZED, created=_at(14), kind=OrderKind.PRE_AUTHORIZATION
    )
    PreAuthorization.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        trade_pay_mode=TradePayMode.PAYMENT_URL,
        out_order_no=f"dash-pao-{next(_serial)}",
        out_request_no=f"dash-paf-{next(_serial)}",
        amount=amount,
        currency="USD",
        status=PreAuthorizationStatus.AUTHORIZED,
        expires_at=NOW + expires_in,
    )


@pytest.fixture
def sales(world, frozen):
    """a1: USD 30.00 (2 orders) on 10 March and 40.00 on 14 March (5.00 of it refunded), JPY 1500 on
    12 March, one failed, one closed, one pending, one paid before the period, two pre-authorizations about
    to expire (30.00, and 12.00 already past expiry) and one not yet. a2: 77.77 USD and a failed order.
    b1: 55.55 USD."""
    a1, a2, b1 = world.a.merchants[0], world.a.merchants[1], world.b.merchants[0]
    _order(a1, amount=1000, status=OrderStatus.PAID, created=_at(10), paid=_at(10))
    _order(a1, amount=2000, status=OrderStatus.PAID, created=_at(10), paid=_at(10))
    refunded = _order(
        a1, amount=4000, status=OrderStatus.PARTIALLY_REFUNDED, created=_at(14), paid=_at(14), refunded=500
    )
    _refund(refunded, amount=500, status=RefundStatus.SUCCEEDED)
    _refund(refunded, amount=700, status=RefundStatus.FAILED)
    _order(a1, amount=1500, currency="JPY", status=OrderStatus.PAID, created=_at(12), paid=_at(12))
    _order(a1, amount=900, status=OrderStatus.FAILED, created=_at(11))
    _order(a1, amount=800, status=OrderStatus.CLOSED, created=_at(13))
    _order(a1, amount=600, status=OrderStatus.PENDING, created=_at(15))
    _order(a1, amount=9999, status=OrderStatus.PAID, created=_at(1, month=2), paid=_at(1, month=2))
    _pre_authorization(a1, amount=3000, expires_in=datetime.timedelta(hours=2))
    _pre_authorization(a1, amount=3300, expires_in=datetime.timedelta(days=3))
    _pre_authorization(a1, amount=1200, expires_in=-datetime.timedelta(hours=1))  # past expiry, not yet ended
    _order(a2, amount=7777, status=OrderStatus.PAID, created=_at(11), paid=_at(11))
    _order(a2, amount=100, status=OrderStatus.FAILED, created=_at(11))
    _order(b1, amount=5555, status=OrderStatus.PAID, created=_at(12), paid=_at(12))


def _dashboard_of(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    body = response.content.decode()
    start = body.index('<section id="platform-dashboard"')
    return body[start : body.index("</section>", start)]


def _panel(html: str, name: str) -> str:
    start = html.index(f'id="dashboard-{name}"')
    return html[start : html.find('<div class="dashboard-panel"', start + 1)]


def _bars(html: str, currency: str) -> dict[str, str]:
    chart = html[html.index(f'id="chart-{currency}"') :]
    chart = chart[: chart.index("</svg>")]
    return dict(re.findall(r'<rect class="dashboard-bar" data-day="([\d-]+)"[^>]* height="([\d.]+)"', chart))


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").split())


def test_merchant_staff_see_their_merchants_figures_exactly(world, sales):
    html = _dashboard_of(world.a.merchants[0].staff)
    assert "canary-merchant-a1: the last 30 days" in _text(html)
    payments = _text(_panel(html, "payments"))
    assert "USD: 70.00 USD from 3 paid orders" in payments
    assert "JPY: 1500 JPY from 1 paid order" in payments
    assert "2030-03-10 2 30.00 USD" in payments
    assert "2030-03-14 1 40.00 USD" in payments
    assert "2030-03-11 0 0.00 USD" in payments
    assert "99.99" not in html  # paid before the period
    assert "66.7 % paid: 4 of 6 orders that reached a final state" in _text(_panel(html, "success-rate"))
    assert "USD 1 5.00 USD" in _text(_panel(html, "refunds"))  # the failed refund does not count
    assert "USD 2 42.00 USD" in _text(_panel(html, "expiring"))  # the one expiring in three days does not
    assert "None open." in _panel(html, "discrepancies")
    assert "None pending." in _panel(html, "registrations")
    assert 'id="dashboard-breakdown"' not in html


def test_merchant_staff_see_nothing_of_other_merchants(world, sales):
    html = _dashboard_of(world.a.merchants[0].staff)
    for others in ("canary-merchant-a2", "canary-isv-b", "77.77", "55.55", "Amounts differ", "Submitted"):
        assert others not in html


@pytest.mark.parametrize("staff", ["a", "b", "a1", "a2", "b1", "b2"])
def test_no_dashboard_shows_another_tenants_canaries(world, sales, staff):
    isv = getattr(world, staff[0])
    user = isv.merchants[int(staff[1]) - 1].staff if len(staff) == 2 else isv.staff
    victims = _victims_of(principal_for_user(user))
    assert victims.canaries
    _assert_no_canary(_dashboard_of(user), victims, f"the dashboard of {staff}")


def test_isv_staff_see_their_merchants_with_a_line_each(world, sales):
    html = _dashboard_of(world.a.staff)
    assert "canary-isv-a: the last 30 days" in _text(html)
    assert "USD: 147.77 USD from 4 paid orders" in _text(_panel(html, "payments"))
    assert "62.5 % paid: 5 of 8 orders" in _text(_panel(html, "success-rate"))
    assert "Amounts differ: 1" in _text(_panel(html, "discrepancies"))  # the world's canary at a2
    assert "Submitted: 1" in _text(_panel(html, "registrations"))
    a1, a2 = (tenant.merchant for tenant in world.a.merchants)
    assert _text(_row(html, a1.public_id)) == "canary-merchant-a1 1 3 1500 JPY 70.00 USD 66.7 %"
    assert _text(_row(html, a2.public_id)) == "canary-merchant-a2 1 77.77 USD 50.0 %"
    assert "55.55" not in html


def _row(html: str, public_id: str) -> str:
    start = html.index(f'<tr id="tenant-{public_id}">')
    return html[start : html.index("</tr>", start)]


def test_operators_see_every_isv(world, sales):
    html = _dashboard_of(world.operator)
    assert "All ISVs: the last 30 days" in _text(html)
    assert "USD: 203.32 USD from 5 paid orders" in _text(_panel(html, "payments"))
    assert "Amounts differ: 2" in _text(_panel(html, "discrepancies"))
    assert _text(_row(html, world.a.isv.public_id)) == "canary-isv-a 1 4 1500 JPY 147.77 USD 62.5 %"
    assert _text(_row(html, world.b.isv.public_id)) == "canary-isv-b 1 55.55 USD 100.0 %"


def test_the_chart_has_one_bar_per_day_as_high_as_its_volume(world, sales):
    html = _dashboard_of(world.a.merchants[0].staff)
    bars = _bars(html, "USD")
    assert len(bars) == 30
    assert (min(bars), max(bars)) == ("2030-02-14", "2030-03-15")
    assert bars["2030-03-14"] == f"{CHART_HEIGHT:.2f}"  # the busiest day fills the chart
    assert bars["2030-03-10"] == f"{CHART_HEIGHT * 3000 / 4000:.2f}"
    assert {day: height for day, height in bars.items() if float(height)} == {
        "2030-03-10": "90.00",
        "2030-03-14": "120.00",
    }
    assert set(_bars(html, "JPY").values()) == {"0.00", "120.00"}


def test_a_merchant_without_orders_sees_an_empty_dashboard(world, frozen):
    html = _dashboard_of(world.b.merchants[0].staff)
    assert "No payments in this period." in html
    assert "No order reached a final state in this period." in html
    assert "No refunds in this period." in html
    assert "None about to expire." in html
    assert "<svg" not in html


def _page_queries(user) -> int:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


@pytest.mark.parametrize("staff", ["merchant", "isv", "operator"])
def test_the_page_costs_the_same_queries_whatever_the_number_of_orders(world, frozen, staff):
    a1 = world.a.merchants[0]
    user = {"merchant": a1.staff, "isv": world.a.staff, "operator": world.operator}[staff]
    counts = []
    for total in (5, 50):
        while Order.objects.unscoped().filter(merchant=a1.merchant).count() < total:
            index = next(_serial)
            day = _at(1 + index % 15)
            currency = ("USD", "JPY")[index % 2]
            _order(a1, amount=100 + index, currency=currency, status=OrderStatus.PAID, created=day, paid=day)
        counts.append(_page_queries(user))
    assert counts[0] == counts[1], counts


def _links(html: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'<a href="([^"]+)"', html)]


def test_each_figure_links_to_the_rows_it_counts(world, sales):
    client = Client()
    client.force_login(world.a.merchants[0].staff)
    (expiring,) = _links(_panel(_dashboard_of(world.a.merchants[0].staff), "expiring"))
    listed = client.get(expiring).content.decode()
    overdue, soon, later = (
        PreAuthorization.objects.unscoped().filter(merchant=world.a.merchants[0].merchant).order_by("amount")
    )
    assert overdue.public_id in listed
    assert soon.public_id in listed
    assert later.public_id not in listed
    client.force_login(world.a.staff)
    html = _dashboard_of(world.a.staff)
    (discrepancies,) = _links(_panel(html, "discrepancies"))
    (registrations,) = _links(_panel(html, "registrations"))
    assert _listed_count(client.get(discrepancies).content.decode()) == "1 discrepancy"
    assert _listed_count(client.get(registrations).content.decode()) == "1 registration"


def _listed_count(changelist: str) -> str:
    return " ".join(re.search(r'<p class="paginator">(.*?)</p>', changelist, re.S).group(1).split())


def test_a_changelist_that_is_not_there_leaves_its_figure_as_text(world, sales, monkeypatch):
    monkeypatch.setattr(dashboard_tags, "ORDERS", "admin:payments_nowhere_changelist")
    html = _dashboard_of(world.a.staff)
    assert "payments/order" not in html
    assert "62.5 % paid: 5 of 8 orders" in _text(_panel(html, "success-rate"))
    assert "canary-merchant-a1 1 3 1500 JPY 70.00 USD 66.7 %" in _text(html)
