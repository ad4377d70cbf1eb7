"""User sessions: a mini program trades its user's auth code for a session, over real HTTP to the sandbox."""

import datetime

import httpx
import pytest
import time_machine

from apps.core.money import Money
from apps.miniprograms.services import product_create
from apps.payments.models import Order
from apps.sandbox.models import Payment as WalletPayment
from apps.usersessions.models import UserSession, WalletUser
from tests.payments.conftest import ready_mini_program
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def auth_code(wallet, *, app_id: str = "shop-app", user: str = "alice") -> str:
    """What my.getAuthCode gives the mini program."""
    answer = httpx.get(f"{wallet.base_url}/sandbox/authcode", params={"appId": app_id, "user": user}, timeout=10)
    return answer.json()["authCode"]


def start_session(api, wallet, *, user: str = "alice", app_id: str = "shop-app") -> dict:
    response = api.post(
        "/api/v1/sessions", {"app_id": app_id, "auth_code": auth_code(wallet, app_id=app_id, user=user)}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def as_session(api, token: str):
    client = api.__class__()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def catalogue(world, shop):
    merchant = world.a.merchants[0].merchant
    product_create(merchant=merchant, sku="latte", name="Latte", price=Money(450, "USD"))
    product_create(merchant=merchant, sku="bagel", name="Bagel", price=Money(300, "USD"))


def test_an_auth_code_becomes_a_session_and_the_access_token_is_kept_encrypted(api, wallet, shop):
    body = start_session(api, wallet)
    assert body["token"].startswith("ust_")
    assert body["mini_program"] == "shop-app"
    wallet_user = WalletUser.objects.unscoped().get(mini_program__app_id="shop-app", customer_id=body["user_id"])
    access_token = wallet_user.unseal("access_token_ciphertext").decode()
    assert access_token
    assert access_token not in wallet_user.access_token_ciphertext
    assert access_token not in str(body)
    assert (
        UserSession.objects.unscoped().get(mini_program__app_id="shop-app").token_hash != body["token"]
    )  # only a hash is kept


def test_a_session_orders_from_the_catalogue_and_pays(api, wallet, catalogue):
    session = as_session(api, start_session(api, wallet)["token"])
    created = session.post(
        "/api/v1/orders",
        {"items": [{"sku": "latte", "quantity": 2}, {"sku": "bagel", "quantity": 1}], "description": "Breakfast"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    order = created.json()
    assert (order["amount"], order["currency"], order["mini_program"]) == (1200, "USD", "shop-app")
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in order["items"]] == [
        ("latte", 2, 450),
        ("bagel", 1, 300),
    ]
    assert WalletPayment.objects.get().amount == 1200  # the wallet was asked for the server's price
    _pay_at_cashier(order["trade_pay"]["paymentUrl"])
    reported = session.post(f"/api/v1/orders/{order['id']}/client-result", {"result_code": "9000"}, format="json")
    assert reported.json()["status"] == "paid"
    buyer = Order.objects.unscoped().get(public_id=order["id"]).wallet_user
    assert buyer == WalletUser.objects.unscoped().get(mini_program__app_id="shop-app")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 1, "currency": "USD"}, 400, "payments.items_required"),
        ({"items": [{"sku": "latte", "quantity": 1}], "mini_program": "other-app"}, 400, "sessions.other_mini_program"),
        ({"items": [{"sku": "nope", "quantity": 1}]}, 400, "payments.unknown_sku"),
    ],
)
def test_what_a_session_may_not_order_is_refused_and_nothing_is_sent(api, wallet, catalogue, body, status, code):
    session = as_session(api, start_session(api, wallet)["token"])
    response = session.post("/api/v1/orders", {"description": "x", **body}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert not Order.objects.unscoped().filter(mini_program__app_id="shop-app").exists()
    assert not WalletPayment.objects.exists()


def test_a_user_sees_only_their_own_orders(api, wallet, catalogue):
    alice = as_session(api, start_session(api, wallet, user="alice")["token"])
    bob = as_session(api, start_session(api, wallet, user="bob")["token"])
    order = alice.post(
        "/api/v1/orders", {"items": [{"sku": "latte", "quantity": 1}], "description": "x"}, format="json"
    )
    order_id = order.json()["id"]
    assert [o["id"] for o in alice.get("/api/v1/orders").json()["results"]] == [order_id]
    assert bob.get("/api/v1/orders").json()["results"] == []
    for method, path in [
        ("get", f"/api/v1/orders/{order_id}"),
        ("get", f"/api/v1/orders/{order_id}/refunds"),
        ("post", f"/api/v1/orders/{order_id}/cancel"),
        ("post", f"/api/v1/orders/{order_id}/client-result"),
    ]:
        response = getattr(bob, method)(path, {"result_code": "9000"} if method == "post" else None, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (404, "payments.order_not_found"), path
    assert Order.objects.unscoped().get(public_id=order_id).status == "pending"


def test_refunds_are_the_merchants_decision(api, wallet, catalogue):
    alice = as_session(api, start_session(api, wallet)["token"])
    order = alice.post(
        "/api/v1/orders", {"items": [{"sku": "latte", "quantity": 1}], "description": "x"}, format="json"
    )
    refused = alice.post(f"/api/v1/orders/{order.json()['id']}/refunds", {}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "auth.principal_not_allowed")


def test_a_session_cancels_its_unpaid_order(api, wallet, catalogue):
    alice = as_session(api, start_session(api, wallet)["token"])
    order = alice.post(
        "/api/v1/orders", {"items": [{"sku": "latte", "quantity": 1}], "description": "x"}, format="json"
    )
    assert alice.post(f"/api/v1/orders/{order.json()['id']}/cancel").json()["status"] == "closed"


def test_a_refused_or_reused_auth_code_is_401_and_opens_nothing(api, wallet, shop):
    code = auth_code(wallet)
    assert api.post("/api/v1/sessions", {"app_id": "shop-app", "auth_code": code}, format="json").status_code == 201
    for attempt in (code, "made-up-code"):
        response = api.post("/api/v1/sessions", {"app_id": "shop-app", "auth_code": attempt}, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (401, "sessions.auth_code_invalid")
    assert UserSession.objects.unscoped().filter(mini_program__app_id="shop-app").count() == 1


def test_an_unknown_app_is_a_400_naming_the_field(api, wallet, shop):
    response = api.post("/api/v1/sessions", {"app_id": "no-such-app", "auth_code": "x"}, format="json")
    assert (response.status_code, response.json()["error"]["attr"]) == (400, "app_id")


def test_an_expired_session_is_refused(api, wallet, catalogue):
    token = start_session(api, wallet)["token"]
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(hours=1)):
        response = as_session(api, token).get("/api/v1/orders")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "auth.session_expired")
    forged = as_session(api, "ust_" + "x" * 43).get("/api/v1/orders")
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "auth.invalid_session")


def test_a_session_of_one_mini_program_cannot_reach_another_merchants_catalogue(world, api, wallet, catalogue):
    other, _ = ready_mini_program(world.b.merchants[0].merchant, wallet, app_id="other-app")
    product_create(merchant=other.merchant, sku="cake", name="Cake", price=Money(500, "USD"))
    alice = as_session(api, start_session(api, wallet)["token"])
    response = alice.post(
        "/api/v1/orders", {"items": [{"sku": "cake", "quantity": 1}], "description": "x"}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "payments.unknown_sku")


def test_a_session_browses_the_catalogue_on_sale_but_cannot_change_it(world, api, wallet, catalogue):
    product_create(
        merchant=world.a.merchants[0].merchant, sku="retired", name="Old", price=Money(1, "USD"), active=False
    )
    alice = as_session(api, start_session(api, wallet)["token"])
    listed = alice.get("/api/v1/products").json()["results"]
    assert sorted(product["sku"] for product in listed) == ["bagel", "canary-sku-a1", "latte"]
    refused = alice.post(
        "/api/v1/products", {"sku": "free", "name": "Free", "price": 1, "currency": "USD"}, format="json"
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "auth.principal_not_allowed")


def test_refused_auth_codes_are_rate_limited_per_address(api, wallet, shop):
    for _ in range(30):  # API_FAILED_AUTH_LIMIT: 30 a minute
        api.post("/api/v1/sessions", {"app_id": "shop-app", "auth_code": "guess"}, format="json")
    limited = api.post("/api/v1/sessions", {"app_id": "shop-app", "auth_code": auth_code(wallet)}, format="json")
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "auth.too_many_failures")


@pytest.mark.postgres  # SQLite serialises writers; PostgreSQL lets two first sessions race to create the user
def test_two_first_sessions_of_one_user_at_once_make_one_wallet_user(world, shop):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from tests.conftest import session_of

    def open_one(_):
        try:
            return session_of(shop, "2188000000009999")[1]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        wallet_user_ids = set(pool.map(open_one, range(4)))
    assert len(wallet_user_ids) == 1
    assert UserSession.objects.unscoped().filter(wallet_user_id__in=wallet_user_ids).count() == 4
