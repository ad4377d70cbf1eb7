"""Orders for orderStr mini programs: a signed string for my.tradePay, no wallet call at creation, and the
classic gateway for everything after — against the sandbox over real HTTP."""

import httpx
import pytest

from apps.payments.models import Order, Payment
from apps.sandbox.models import ClassicOrder
from apps.superapps.models import TradePayMode
from tests.payments.conftest import ready_mini_program
from tests.superapps.test_classic_client import _open, _pay


@pytest.fixture
def stall(world, wallet):
    mini_program, _ = ready_mini_program(
        world.a.merchants[0].merchant, wallet, app_id="stall-app", trade_pay_mode=TradePayMode.ORDER_STR
    )
    return mini_program


def _create(api, world, **overrides):
    body = {"mini_program": "stall-app", "amount": 1000, "currency": "USD", "description": "Noodles", **overrides}
    return api.as_key(world.a.merchants[0].key).post("/api/v1/orders", body, format="json")


def test_order_str_to_paid_to_refunded_in_two_parts(world, api, wallet, stall):
    created = _create(api, world)
    assert created.status_code == 201, created.json()
    order = created.json()
    assert order["status"] == "pending"
    assert set(order["trade_pay"]) == {"orderStr"}
    assert not ClassicOrder.objects.exists()  # nothing was sent: the user opens the orderStr

    client = api.as_key(world.a.merchants[0].key)
    assert client.get(f"/api/v1/orders/{order['id']}?refresh=true").json()["status"] == "pending"  # not opened yet
    with httpx.Client(timeout=10) as browser:
        _pay(wallet, _open(wallet, order["trade_pay"]["orderStr"], browser), browser)
    assert client.get(f"/api/v1/orders/{order['id']}?refresh=true").json()["status"] == "paid"
    payment = Payment.objects.unscoped().get(order__public_id=order["id"])
    assert payment.wallet_payment_id == ClassicOrder.objects.get().wallet_no

    first = client.post(f"/api/v1/orders/{order['id']}/refunds", {"amount": 250}, format="json")
    assert first.json()["status"] == "succeeded", first.json()
    assert client.get(f"/api/v1/orders/{order['id']}").json()["status"] == "partially_refunded"
    rest = client.post(f"/api/v1/orders/{order['id']}/refunds", {}, format="json")
    assert (rest.json()["status"], rest.json()["amount"]) == ("succeeded", 750)
    final = client.get(f"/api/v1/orders/{order['id']}").json()
    assert (final["status"], final["refunded_amount"]) == ("refunded", 1000)


def test_cancel_closes_an_unpaid_order_str_at_the_gateway(world, api, wallet, stall):
    order = _create(api, world).json()
    with httpx.Client(timeout=10) as browser:
        page = _open(wallet, order["trade_pay"]["orderStr"], browser)
        client = api.as_key(world.a.merchants[0].key)
        assert client.post(f"/api/v1/orders/{order['id']}/cancel").json()["status"] == "closed"
        assert ClassicOrder.objects.get().status == "CLOSED"
        token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        action = page.text.split('action="')[1].split('"')[0]
        refused = browser.post(f"{wallet.base_url}{action}", data={"csrfmiddlewaretoken": token, "action": "pay"})
    assert '<strong id="result-code">9000</strong>' not in refused.text  # the user can no longer pay it


def test_an_order_str_not_yet_opened_cannot_be_cancelled_and_stays_payable(world, api, wallet, stall):
    order = _create(api, world).json()
    client = api.as_key(world.a.merchants[0].key)
    refused = client.post(f"/api/v1/orders/{order['id']}/cancel")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payments.order_str_not_opened")
    with httpx.Client(timeout=10) as browser:  # the signed string still works: the platform must see it paid
        _pay(wallet, _open(wallet, order["trade_pay"]["orderStr"], browser), browser)
    assert client.get(f"/api/v1/orders/{order['id']}?refresh=true").json()["status"] == "paid"


def test_a_currency_without_two_decimals_is_refused_before_anything_is_written(world, api, wallet, stall):
    response = _create(api, world, amount=1000, currency="JPY")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "payments.currency_not_supported")
    assert not Order.objects.unscoped().filter(mini_program=stall).exists()
