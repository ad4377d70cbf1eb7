"""Merchant staff at work in a real browser: find an order, read its timeline, refund part of it, export.

With ``SCREENSHOTS=<folder>`` set (``make screenshots``) it also saves the pictures the README shows.
"""

import csv
import io
from pathlib import Path

import pytest

from apps.core.tenancy import Role
from apps.payments.models import Order, Refund
from tests.browser.conftest import picture, sign_in
from tests.conftest import STAFF_PASSWORD
from tests.factories import MembershipFactory, UserFactory
from tests.payments.test_orders import _order
from tests.superapps.test_client_against_sandbox import _pay_at_cashier

pytestmark = pytest.mark.django_db(transaction=True)


def _paid_order(api, world, reference: str) -> Order:
    created = _order(api, world, reference=reference, amount=1000, description="Two flat whites").json()
    _pay_at_cashier(created["trade_pay"]["paymentUrl"])
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    assert client.get(f"/api/v1/orders/{created['id']}?refresh=true").json()["status"] == "paid"
    return Order.objects.unscoped().get(public_id=created["id"])


def test_merchant_staff_find_an_order_read_its_timeline_refund_part_and_export_the_day(world, api, shop, page):
    _paid_order(api, world, "TABLE-7")
    order = _paid_order(api, world, "TABLE-12")
    MembershipFactory(
        user=UserFactory(username="shift-lead"),
        isv=world.a.isv,
        merchant=shop.merchant,
        role=Role.STAFF,
        may_refund=True,
    )

    sign_in(page, "shift-lead", STAFF_PASSWORD)
    picture(page, "admin-dashboard", "#content")

    page.goto("/admin/payments/order/")
    page.fill("#searchbar", "TABLE-12")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "TABLE-12" in rows.first.inner_text()
    picture(page, "admin-orders", "#content")

    rows.first.locator("th a").click()
    timeline = page.locator("#order-timeline")
    timeline.wait_for()
    assert "payments/pay" in timeline.inner_text()
    assert "signature verified" in timeline.inner_text()
    picture(page, "admin-order-timeline", "#content")

    page.click("a.refund-link")
    assert "10.00 USD" in page.locator("#refundable").inner_text()
    page.fill("input[name=amount]", "4.00")
    page.fill("[name=reason]", "one cup spilled")
    page.click("input[type=submit][value=Refund]")
    assert "of 4.00 USD: Succeeded" in page.locator(".messagelist").inner_text()
    assert "Staff action by shift-lead" in page.locator("#order-timeline").inner_text()
    refund = Refund.objects.unscoped().get(order=order)
    assert (refund.amount, refund.status) == (400, "succeeded")

    page.goto("/admin/payments/order/?status__exact=partially_refunded")
    with page.expect_download() as download:
        page.click("a.export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [row for row in rows if "TABLE-12" in row.values()]
    assert not [row for row in rows if "TABLE-7" in row.values()]  # the filter went with the export
    assert not [row for row in rows for value in row.values() if "canary-" in value]
