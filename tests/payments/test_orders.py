"""Orders through paymentUrl against the sandbox wallet over real HTTP."""

import pytest

from apps.payments.models import Order, PaymentEvent
from apps.sandbox.models import Payment as WalletPayment
from tests.payments.conftest import ready_mini_program
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def _order(api, world, **overrides):
    body = {"mini_program": "shop-app", "amount": 1250, "currency": "USD", "description": "Flat white", **overrides}
    return api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post("/api/v1/orders", body, format="json")


def test_order_to_payment_url_to_paid(world, api, shop):
    created = _order(api, world, reference="A-1001")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "pending"
    assert body["trade_pay"]["paymentUrl"].startswith(f"{shop.super_app.gateway_base_url}/cashier/")

    _pay_at_cashier(body["trade_pay"]["paymentUrl"])
    client = api.as_key(world.a.merchants[0].key)
    assert client.get(f"/api/v1/orders/{body['id']}").json()["status"] == "pending"  # nothing on the client's word
    refreshed = client.get(f"/api/v1/orders/{body['id']}?refresh=true").json()
    assert refreshed["status"] == "paid"
    order = Order.objects.unscoped().get(public_id=body["id"])
    trail = list(
        PaymentEvent.objects.unscoped().filter(order=order).order_by("created_at").values_list("subject", "to_status")
    )
    assert trail == [("payment", "pending"), ("payment", "succeeded"), ("order", "paid")]


def test_an_unknown_outcome_is_never_a_failure(world, api, shop, wallet):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"result_u": True})
    body = _order(api, world).json()
    assert body["status"] == "processing"
    assert body["trade_pay"] == {}
    wallet.register(credential)
    client = api.as_key(world.a.merchants[0].key)
    assert client.get(f"/api/v1/orders/{body['id']}?refresh=true").json()["status"] == "processing"
    paid_at_wallet = WalletPayment.objects.get(
        payment_request_id=Order.objects.unscoped().get(public_id=body["id"]).payments.get().payment_request_id
    )
    _pay_at_cashier(f"{wallet.base_url}/sandbox/cashier/{paid_at_wallet.payment_id}")
    assert client.get(f"/api/v1/orders/{body['id']}?refresh=true").json()["status"] == "paid"


def test_a_definite_refusal_fails_the_order(world, api, shop):
    body = _order(api, world, currency="BRL").json()
    assert body["status"] == "failed"


def test_an_unverified_merchant_is_refused_before_any_wallet_call(world, api, wallet):
    ready_mini_program(world.a.merchants[0].merchant, wallet, verified=False)
    before = WalletPayment.objects.count()
    response = _order(api, world)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "merchants.license_not_verified")
    assert not Order.objects.unscoped().filter(mini_program__app_id="shop-app").exists()
    assert WalletPayment.objects.count() == before


@pytest.mark.parametrize(
    ("overrides", "code", "attr"),
    [
        ({"amount": 0}, "validation.min_value", "amount"),
        ({"amount": 10**19}, "validation.max_value", "amount"),  # beyond a 64-bit column and the wire format
        ({"metadata": {"note": "a\x00b"}}, "validation.invalid", "metadata"),
        ({"amount": 12.5}, "validation.invalid", "amount"),
        ({"amount": "1250"}, None, None),
        ({"currency": "ZZZ"}, "validation.unknown_currency", "currency"),
        ({"mini_program": "someone-elses-app"}, "validation.does_not_exist", "mini_program"),
        ({"expires_in": 5}, "validation.min_value", "expires_in"),
        ({"description": ""}, "validation.blank", "description"),
    ],
)
def test_bad_orders_are_refused_and_write_nothing(world, api, shop, overrides, code, attr):
    before = (Order.objects.unscoped().count(), WalletPayment.objects.count())
    response = _order(api, world, **overrides)
    if code is None:  # a numeric string is the integer it spells (JSON clients often send strings)
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["attr"]) == (code, attr)
    assert (Order.objects.unscoped().count(), WalletPayment.objects.count()) == before


def test_references_are_unique_per_merchant(world, api, shop):
    assert _order(api, world, reference="A-1").status_code == 201
    again = _order(api, world, reference="A-1")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "payments.reference_taken")


def test_orders_list_filters_and_scoping(world, api, shop):
    _order(api, world, reference="R-1")
    client = api.as_key(world.a.merchants[0].key)
    assert [o["reference"] for o in client.get("/api/v1/orders?reference=R-1").json()["results"]] == ["R-1"]
    assert client.get("/api/v1/orders?status=nonsense").status_code == 400
    sibling = api.__class__().as_key(world.a.merchants[1].key).get("/api/v1/orders").json()["results"]
    assert sorted(o["reference"] for o in sibling) == ["canary-deposit-a2", "canary-ref-a2"]


def test_orders_filter_by_creation_time(world, api, shop):
    created = _order(api, world).json()["created_at"]
    client = api.as_key(world.a.merchants[0].key)
    after = client.get("/api/v1/orders", {"created_after": created}).json()["results"]
    before = client.get("/api/v1/orders", {"created_before": created}).json()["results"]
    assert [order["created_at"] for order in after] == [created]
    assert created not in [order["created_at"] for order in before]
    assert client.get("/api/v1/orders", {"created_after": "yesterday"}).status_code == 400
