"""Orders priced from the catalogue, the super app's limits, and client results as hints only."""

import pytest

from apps.core.money import Money
from apps.miniprograms.services import product_create
from apps.payments.models import Order, PaymentEvent
from apps.sandbox.models import Payment as WalletPayment
from tests.payments.test_orders import _order
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


@pytest.fixture
def catalogue(world, shop):
    merchant = world.a.merchants[0].merchant
    product_create(merchant=merchant, sku="latte", name="Latte", price=Money(450, "USD"))
    product_create(merchant=merchant, sku="retired", name="Retired", price=Money(450, "USD"), active=False)
    product_create(merchant=merchant, sku="matcha", name="Matcha", price=Money(500, "JPY"))


def test_a_server_may_order_catalogue_items(world, api, catalogue):
    response = api.as_key(world.a.merchants[0].key).post(
        "/api/v1/orders",
        {"mini_program": "shop-app", "description": "x", "items": [{"sku": "latte", "quantity": 3}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["amount"], response.json()["currency"]) == (1350, "USD")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"items": [{"sku": "retired", "quantity": 1}]}, "payments.unknown_sku"),
        ({"items": [{"sku": "canary-sku-a2", "quantity": 1}]}, "payments.unknown_sku"),  # a sibling's product
        ({"items": [{"sku": "latte", "quantity": 1}, {"sku": "latte", "quantity": 1}]}, "payments.duplicate_sku"),
        ({"items": [{"sku": "latte", "quantity": 1}, {"sku": "matcha", "quantity": 1}]}, "payments.currency_mismatch"),
        ({"items": [{"sku": "latte", "quantity": 1}], "currency": "EUR"}, "payments.currency_mismatch"),
        ({"items": [{"sku": "latte", "quantity": 0}]}, "validation.min_value"),
        ({"items": [{"sku": "latte", "quantity": 1}], "amount": 5}, "validation.amount_or_items"),
        ({"items": []}, "validation.amount_or_items"),
        ({"currency": None}, "validation.required"),
    ],
)
def test_bad_catalogue_orders_write_and_send_nothing(world, api, catalogue, overrides, code):
    body = {"amount": None, "currency": "USD", **overrides}
    if "amount" in overrides or "items" not in overrides:
        body["amount"] = overrides.get("amount", 1250)
    body = {key: value for key, value in body.items() if value is not None}
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/orders", {"mini_program": "shop-app", "description": "x", **body}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, code), response.json()
    assert not Order.objects.unscoped().filter(mini_program__app_id="shop-app").exists()
    assert not WalletPayment.objects.exists()


def test_more_than_the_super_apps_limit_is_refused_before_the_wallet(world, api, shop):
    shop.super_app.payment_limits = {"USD": 100_00}
    shop.super_app.save(update_fields=["payment_limits"])
    refused = _order(api, world, amount=100_01)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "payments.amount_above_limit")
    assert not WalletPayment.objects.exists()
    assert _order(api, world, amount=100_00).status_code == 201
    assert _order(api, world, amount=100_01, currency="EUR").status_code == 201  # no EUR limit


@pytest.mark.parametrize("asking", ["9000", "8000", "6004", "6002"])
def test_a_client_result_is_a_hint_that_makes_the_platform_ask(world, api, shop, asking):
    body = _order(api, world).json()
    client = api.as_key(world.a.merchants[0].key)
    claimed = client.post(f"/api/v1/orders/{body['id']}/client-result", {"result_code": "9000"}, format="json")
    assert claimed.json()["status"] == "pending"  # the wallet says unpaid: the client's word changes nothing

    _pay_at_cashier(body["trade_pay"]["paymentUrl"])
    for silent in ("6001", "4000"):
        hint = client.post(f"/api/v1/orders/{body['id']}/client-result", {"result_code": silent}, format="json")
        assert hint.json()["status"] == "pending"  # these do not make the platform ask
    asked = client.post(f"/api/v1/orders/{body['id']}/client-result", {"result_code": asking}, format="json")
    assert asked.json()["status"] == "paid"  # this one does, and the wallet says paid

    hints = PaymentEvent.objects.unscoped().filter(order__public_id=body["id"], source="client_result")
    assert [event.reason[23:27] for event in hints.order_by("created_at")] == ["9000", "6001", "4000", asking]


def test_an_unknown_client_result_code_is_refused(world, api, shop):
    body = _order(api, world).json()
    client = api.as_key(world.a.merchants[0].key)
    response = client.post(f"/api/v1/orders/{body['id']}/client-result", {"result_code": "paid!"}, format="json")
    assert (response.status_code, response.json()["error"]["attr"]) == (400, "result_code")
