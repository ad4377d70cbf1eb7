"""The demo mini programs clicked through in a real browser, as a newcomer does after ``make run``: the
pages reach the platform only through the my.* shim, and the sandbox wallet's cashier opens in the phone.

With ``SCREENSHOTS=<folder>`` set (``make screenshots``) it also saves the README's walk-through pictures.
"""

import pytest

from apps.demo.services import demo_seed
from apps.payments.models import (
    Order,
    OrderStatus,
    Payment,
    PaymentEvent,
    PreAuthorization,
    PreAuthorizationStatus,
    Refund,
)
from apps.sandbox.models import ClassicOrder
from tests.browser.conftest import picture, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "#phone"


@pytest.fixture
def demo(live_server, settings, transactional_db):
    """The demo data ``make run`` seeds, with the sandbox wallet at the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    return demo_seed()


def _cashier(page):
    return page.frame_locator("iframe.my-shim-frame")


def _last_order() -> Order:
    return Order.objects.unscoped().order_by("-created_at").first()


def test_buy_with_a_payment_url_pay_and_the_merchants_staff_see_it_paid_and_refund_it(demo, page):
    page.goto("/demo/")
    page.click("a.demo-link[href='/demo/demo-coffee-app/']")
    buy = page.locator("button.buy[data-sku=flat-white]")
    buy.wait_for()
    picture(page, "demo-shop", PHONE)

    buy.click()
    cashier = _cashier(page)
    cashier.locator("text=Pay to Demo Coffee").wait_for()
    assert "USD 4.50" in cashier.locator(".amount").inner_text()
    picture(page, "demo-cashier", PHONE)
    cashier.locator("button[value=pay]").click()
    page.locator("#result-status[data-status=paid]").wait_for()
    assert "resultCode 9000" in page.locator(PHONE).inner_text()
    picture(page, "demo-paid", PHONE)
    order = _last_order()
    assert (order.status, order.amount, order.mini_program.app_id) == (OrderStatus.PAID, 450, "demo-coffee-app")
    assert order.wallet_user_id is not None  # placed by the user's session, not by a key

    coffee = next(merchant for merchant in demo.merchants if merchant.name == "Demo Coffee")
    sign_in(page, coffee.staff.username, coffee.staff.password)
    page.goto("/admin/payments/order/")
    page.fill("#searchbar", order.public_id)
    page.press("#searchbar", "Enter")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert "Paid" in row.inner_text()
    row.locator("th a").click()
    page.click("a.refund-link")
    page.fill("input[name=amount]", "4.50")
    page.fill("[name=reason]", "customer changed their mind")
    page.click("input[type=submit][value=Refund]")
    assert "of 4.50 USD: Succeeded" in page.locator(".messagelist").inner_text()
    refund = Refund.objects.unscoped().get(order=order)
    assert (refund.amount, refund.status) == (450, "succeeded")
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED


def test_buy_with_an_order_str_cancel_at_the_cashier_then_pay_again(demo, page):
    page.goto("/demo/demo-rentals-app/")
    page.locator("button.buy[data-sku=bike-hour]").click()
    cashier = _cashier(page)
    cashier.locator("button[value=cancel]").click()
    page.locator("#pay-again").wait_for()
    assert page.locator("#result-status").get_attribute("data-status") == "pending"
    assert "resultCode 6001" in page.locator(PHONE).inner_text()
    picture(page, "demo-cancelled", PHONE)
    order = _last_order()
    assert order.status == OrderStatus.PENDING
    reported = PaymentEvent.objects.unscoped().filter(order=order, source="client_result")
    assert reported.filter(reason__contains="resultCode 6001").exists()

    page.click("#pay-again")
    _cashier(page).locator("button[value=pay]").click()
    page.locator("#result-status[data-status=paid]").wait_for()
    order.refresh_from_db()
    assert (order.status, order.paid_amount) == (OrderStatus.PAID, 800)
    # the same orderStr opened twice is one order at the wallet, paid once
    [payment] = Payment.objects.unscoped().filter(order=order)
    assert ClassicOrder.objects.filter(out_no=payment.payment_request_id).count() == 1


def test_rent_then_stop_captures_the_ride_and_gives_the_rest_of_the_deposit_back(demo, page):
    page.goto("/demo/demo-rentals-app/")
    page.locator("button.rent[data-sku=bike-hour]").click()
    cashier = _cashier(page)
    cashier.locator("text=Authorise a pre-authorisation").wait_for()
    cashier.locator("button[value=pay]").click()
    page.locator(".rental-status[data-status=authorized]").wait_for()
    rental = PreAuthorization.objects.unscoped().get()
    assert (rental.status, rental.amount) == (PreAuthorizationStatus.AUTHORIZED, 2400)

    page.click("button.stop-rental")
    page.locator(".rental-status[data-status=completed]").wait_for()
    assert page.locator(".rental-charged").inner_text() == "Charged 8.00 USD, released 16.00 USD"
    picture(page, "demo-rental-done", PHONE)
    rental.refresh_from_db()
    assert (rental.captured_amount, rental.released_amount) == (800, 1600)
    freeze = ClassicOrder.objects.get(out_no=rental.out_order_no)
    assert (freeze.captured, freeze.unfrozen) == (800, 1600)

    page.click("text=Back to the shop")
    page.locator("button.rent").first.wait_for()
    assert page.locator(".rental").count() == 0  # no ride is left running
