import pytest

from apps.miniprograms.models import MiniProgram, MiniProgramFeature, Product
from tests.miniprograms.conftest import rows

MINI_PROGRAM = {
    "super_app": "world-wallet",
    "app_id": "2021000000000042",
    "name": "Bakery",
    "trade_pay_mode": "payment_url",
    "default_currency": "PHP",
}
PRODUCT = {"sku": "BREAD-1", "name": "Sourdough", "price": {"amount": 12000, "currency": "PHP"}}


def _mini_program(**fields) -> dict:
    return {**MINI_PROGRAM, **fields}


def _product(**fields) -> dict:
    return {**PRODUCT, **fields}


def _priced(**price) -> dict:
    return {**PRODUCT, "price": price}


@pytest.fixture
def isv(world, api):
    """ISV a's key acting for its merchant a1: the credential that writes."""
    return api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)


def _error(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["attr"]


# --- mini programs ---------------------------------------------------------------------------------


def test_a_merchant_key_lists_its_mini_programs(world, api, mini_program):
    body = api.as_key(world.a.merchants[0].key).get("/api/v1/mini-programs").json()
    assert body["next"] is None
    assert body["results"] == [
        {
            "id": mini_program.public_id,
            "super_app": "world-wallet",
            "app_id": "canary-app-a1",
            "name": "canary-mp-a1",
            "status": "development",
            "trade_pay_mode": "payment_url",
            "default_currency": "USD",
            "webhook_url": "",
            "features": ["payment"],
            "created_at": body["results"][0]["created_at"],
            "updated_at": body["results"][0]["updated_at"],
        }
    ]


def test_an_isv_key_creates_a_mini_program_and_sees_its_webhook_secret_once(world, isv):
    response = isv.post("/api/v1/mini-programs", {**MINI_PROGRAM, "webhook_url": "https://bakery.example/hooks"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    stored = MiniProgram.objects.unscoped().get(public_id=body["id"])
    assert stored.merchant == world.a.merchants[0].merchant
    assert (body["features"], body["webhook_url"]) == (["payment"], "https://bakery.example/hooks")
    secret = stored.unseal("webhook_secret_ciphertext").decode()
    assert body["webhook_secret"] == secret
    again = isv.get(f"/api/v1/mini-programs/{body['id']}")
    assert "webhook_secret" not in again.json()
    assert secret not in again.content.decode()
    assert secret not in isv.get(f"/api/v1/mini-programs/{body['id']}/webhook-secret").content.decode()


def test_merchant_keys_read_but_do_not_write(world, api, mini_program, product):
    client = api.as_key(world.a.merchants[0].key)
    before = (rows(MiniProgram), rows(MiniProgramFeature), rows(Product))
    attempts = [
        client.post("/api/v1/mini-programs", MINI_PROGRAM),
        client.patch(f"/api/v1/mini-programs/{mini_program.public_id}", {"name": "x"}),
        client.post(f"/api/v1/mini-programs/{mini_program.public_id}/features", {"feature": "user_info", "enabled": 1}),
        client.post(f"/api/v1/mini-programs/{mini_program.public_id}/webhook-secret"),
        client.post("/api/v1/products", PRODUCT),
        client.patch(f"/api/v1/products/{product.public_id}", {"name": "x"}),
    ]
    assert {_error(response) for response in attempts} == {(403, "auth.principal_not_allowed", None)}
    assert (rows(MiniProgram), rows(MiniProgramFeature), rows(Product)) == before
    assert client.get(f"/api/v1/mini-programs/{mini_program.public_id}/features").status_code == 200
    assert client.get(f"/api/v1/products/{product.public_id}").status_code == 200


def test_collections_need_an_isv_key_to_name_its_merchant(world, api):
    client = api.as_key(world.a.key)
    for path in ("/api/v1/mini-programs", "/api/v1/products"):
        assert _error(client.get(path)) == (400, "auth.merchant_id_required", "Merchant-Id")
        before = rows(Product)
        assert _error(client.post(path, PRODUCT)) == (400, "auth.merchant_id_required", "Merchant-Id")
        assert rows(Product) == before


def test_an_object_is_found_by_its_id_within_the_credentials_scope(world, api, mini_program, product):
    """The id names the merchant, so an ISV key may omit Merchant-Id; naming another merchant narrows it."""
    paths = [f"/api/v1/mini-programs/{mini_program.public_id}", f"/api/v1/products/{product.public_id}"]
    for path in paths:
        assert api.as_key(world.a.key).get(path).status_code == 200
        assert api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).get(path).status_code == 200
    for key, merchant in (
        (world.a.key, world.a.merchants[1].merchant),
        (world.a.merchants[1].key, None),
        (world.b.key, None),
        (world.b.merchants[0].key, None),
    ):
        for path in paths:
            assert api.as_key(key, merchant=merchant).get(path).status_code == 404


def test_an_isv_key_updates_a_mini_program(world, isv, mini_program):
    response = isv.patch(
        f"/api/v1/mini-programs/{mini_program.public_id}",
        {"name": "Renamed", "status": "published", "webhook_url": "https://m.example/h", "trade_pay_mode": "order_str"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["status"], body["webhook_url"], body["trade_pay_mode"]) == (
        "Renamed",
        "published",
        "https://m.example/h",
        "order_str",
    )
    assert body["features"] == ["payment"]


@pytest.mark.parametrize(
    ("body", "status", "code", "attr"),
    [
        ({k: v for k, v in MINI_PROGRAM.items() if k != "super_app"}, 400, "validation.required", "super_app"),
        (_mini_program(super_app="nowhere"), 400, "validation.does_not_exist", "super_app"),
        (_mini_program(super_app=["world-wallet"]), 400, "validation.does_not_exist", "super_app"),
        (_mini_program(app_id="two words"), 400, "validation.invalid_app_id", "app_id"),
        (_mini_program(app_id="canary-app-b1"), 409, "miniprograms.app_id_taken", "app_id"),
        (_mini_program(name=""), 400, "validation.blank", "name"),
        (_mini_program(name="n" * 101), 400, "validation.max_length", "name"),
        (_mini_program(trade_pay_mode="qr"), 400, "validation.invalid_choice", "trade_pay_mode"),
        (_mini_program(default_currency="php"), 400, "validation.unknown_currency", "default_currency"),
        (_mini_program(webhook_url="https://10.0.0.8/h"), 400, "validation.webhook_url_private_host", "webhook_url"),
        (_mini_program(webhook_url="javascript:alert(1)"), 400, "validation.invalid", "webhook_url"),
        (_mini_program(status="published"), 400, "validation.unknown_field", "status"),
        (_mini_program(merchant="mer_x"), 400, "validation.unknown_field", "merchant"),
    ],
)
def test_a_bad_mini_program_is_refused_with_its_field_and_nothing_is_created(isv, body, status, code, attr):
    before = (rows(MiniProgram), rows(MiniProgramFeature))
    assert _error(isv.post("/api/v1/mini-programs", body)) == (status, code, attr)
    assert (rows(MiniProgram), rows(MiniProgramFeature)) == before


def test_a_trade_pay_mode_the_super_app_lacks_is_refused_over_the_api(isv, order_str_only):
    before = rows(MiniProgram)
    response = isv.post("/api/v1/mini-programs", {**MINI_PROGRAM, "super_app": order_str_only.code})
    assert _error(response) == (400, "validation.trade_pay_mode_unsupported", "trade_pay_mode")
    assert rows(MiniProgram) == before


@pytest.mark.parametrize(
    ("body", "code", "attr"),
    [
        ({"status": "archived"}, "validation.invalid_choice", "status"),
        ({"trade_pay_mode": 1}, "validation.invalid_choice", "trade_pay_mode"),
        ({"name": ""}, "validation.blank", "name"),
        ({"name": None}, "validation.null", "name"),
        ({"webhook_url": "https://u:p@m.example/h"}, "validation.webhook_url_credentials", "webhook_url"),
        ({"webhook_url": "https://[::1]/h"}, "validation.webhook_url_private_host", "webhook_url"),
        ({"app_id": "other"}, "validation.unknown_field", "app_id"),
        ({"default_currency": "EUR"}, "validation.unknown_field", "default_currency"),
        ({"super_app": "world-wallet"}, "validation.unknown_field", "super_app"),
    ],
)
def test_a_bad_mini_program_update_is_refused_with_its_field_and_nothing_changes(isv, mini_program, body, code, attr):
    before = rows(MiniProgram)
    assert _error(isv.patch(f"/api/v1/mini-programs/{mini_program.public_id}", body)) == (400, code, attr)
    assert rows(MiniProgram) == before


def test_mini_programs_are_filtered_by_status_and_super_app(world, isv, mini_program):
    isv.patch(f"/api/v1/mini-programs/{mini_program.public_id}", {"status": "suspended"})
    assert [mp["app_id"] for mp in isv.get("/api/v1/mini-programs?status=suspended").json()["results"]] == [
        "canary-app-a1"
    ]
    assert isv.get("/api/v1/mini-programs?status=published").json()["results"] == []
    assert len(isv.get("/api/v1/mini-programs?super_app=world-wallet").json()["results"]) == 1
    assert _error(isv.get("/api/v1/mini-programs?status=gone")) == (400, "validation.invalid_choice", "status")


def test_the_mini_program_list_is_paginated_with_a_constant_number_of_queries(
    world, isv, django_assert_max_num_queries
):
    for number in range(30):
        isv.post("/api/v1/mini-programs", {**MINI_PROGRAM, "app_id": f"bulk-{number}"})
    with django_assert_max_num_queries(6):
        first = isv.get("/api/v1/mini-programs?limit=25").json()
    assert len(first["results"]) == 25
    second = isv.get(first["next"]).json()
    assert len(second["results"]) == 6
    assert not {mp["id"] for mp in first["results"]} & {mp["id"] for mp in second["results"]}


# --- features --------------------------------------------------------------------------------------


def test_features_are_listed_with_their_state_and_switched_by_an_isv_key(isv, mini_program):
    path = f"/api/v1/mini-programs/{mini_program.public_id}/features"
    assert isv.get(path).json() == [
        {"feature": "payment", "enabled": True},
        {"feature": "pre_authorization", "enabled": False},
        {"feature": "user_info", "enabled": False},
    ]
    response = isv.post(path, {"feature": "pre_authorization", "enabled": True})
    assert response.status_code == 200
    assert response.json()[1] == {"feature": "pre_authorization", "enabled": True}
    assert isv.get(f"/api/v1/mini-programs/{mini_program.public_id}").json()["features"] == [
        "payment",
        "pre_authorization",
    ]


@pytest.mark.parametrize(
    ("body", "code", "attr"),
    [
        ({"feature": "payment", "enabled": False}, "miniprograms.payment_always_enabled", "enabled"),
        ({"feature": "teleport", "enabled": True}, "validation.invalid_choice", "feature"),
        ({"enabled": True}, "validation.required", "feature"),
        ({"feature": "user_info"}, "validation.required", "enabled"),
        ({"feature": "user_info", "enabled": "perhaps"}, "validation.invalid", "enabled"),
        ({"feature": "user_info", "enabled": True, "mini_program": "mp_x"}, "validation.unknown_field", "mini_program"),
    ],
)
def test_a_bad_feature_change_is_refused_with_its_field_and_nothing_changes(isv, mini_program, body, code, attr):
    before = rows(MiniProgramFeature)
    response = isv.post(f"/api/v1/mini-programs/{mini_program.public_id}/features", body)
    assert _error(response) == (400, code, attr)
    assert rows(MiniProgramFeature) == before


# --- webhook secret --------------------------------------------------------------------------------


def test_the_webhook_secret_is_rotated_and_shown_once(isv, mini_program):
    path = f"/api/v1/mini-programs/{mini_program.public_id}/webhook-secret"
    before = isv.get(path).json()
    assert list(before) == ["rotated_at"]
    response = isv.post(path)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    stored = MiniProgram.objects.unscoped().get(pk=mini_program.pk)
    assert body["secret"] == stored.unseal("webhook_secret_ciphertext").decode()
    assert body["rotated_at"] > before["rotated_at"]
    assert isv.get(path).json() == {"rotated_at": body["rotated_at"]}


# --- products --------------------------------------------------------------------------------------


def test_an_isv_key_adds_a_product_and_a_merchant_key_reads_it(world, api, isv):
    response = isv.post("/api/v1/products", PRODUCT)
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("prod_")
    assert (body["sku"], body["name"], body["price"], body["active"]) == (
        "BREAD-1",
        "Sourdough",
        {"amount": 12000, "currency": "PHP"},
        True,
    )
    read = api.as_key(world.a.merchants[0].key).get(f"/api/v1/products/{body['id']}").json()
    assert read == body


@pytest.mark.parametrize(
    ("body", "status", "code", "attr"),
    [
        (_priced(amount="120.00", currency="PHP"), 400, "validation.invalid", "price.amount"),
        (_priced(amount="12000", currency="PHP"), 400, "validation.invalid", "price.amount"),
        (_priced(amount=120.5, currency="PHP"), 400, "validation.invalid", "price.amount"),
        (_priced(amount=12000.0, currency="PHP"), 400, "validation.invalid", "price.amount"),
        (_priced(amount=True, currency="PHP"), 400, "validation.invalid", "price.amount"),
        (_priced(amount=0, currency="PHP"), 400, "validation.min_value", "price.amount"),
        (_priced(amount=-1, currency="PHP"), 400, "validation.min_value", "price.amount"),
        (_priced(amount=10**18, currency="PHP"), 400, "validation.max_value", "price.amount"),
        (_priced(amount=100), 400, "validation.required", "price.currency"),
        (_priced(amount=100, currency="php"), 400, "validation.unknown_currency", "price.currency"),
        (_priced(amount=100, currency="XAU"), 400, "validation.unknown_currency", "price.currency"),
        (_priced(amount=1, currency="PHP", tax=1), 400, "validation.unknown_field", "price.tax"),
        (_product(price=12000), 400, "validation.invalid", "price"),
        (_product(price=None), 400, "validation.null", "price"),
        ({k: v for k, v in PRODUCT.items() if k != "price"}, 400, "validation.required", "price"),
        (_product(sku=""), 400, "validation.blank", "sku"),
        (_product(sku="no spaces"), 400, "validation.invalid_sku", "sku"),
        (_product(sku="canary-sku-a1"), 409, "miniprograms.sku_taken", "sku"),
        (_product(name="n" * 201), 400, "validation.max_length", "name"),
        (_product(active="sometimes"), 400, "validation.invalid", "active"),
        (_product(currency="PHP"), 400, "validation.unknown_field", "currency"),
    ],
)
def test_a_bad_product_is_refused_with_its_field_and_nothing_is_created(isv, body, status, code, attr):
    before = rows(Product)
    assert _error(isv.post("/api/v1/products", body)) == (status, code, attr)
    assert rows(Product) == before


def test_the_same_sku_may_be_used_by_another_merchant(world, api):
    client = api.as_key(world.a.key, merchant=world.a.merchants[1].merchant)
    assert client.post("/api/v1/products", {**PRODUCT, "sku": "canary-sku-a1"}).status_code == 201


def test_an_isv_key_reprices_and_deactivates_a_product(isv, product):
    response = isv.patch(
        f"/api/v1/products/{product.public_id}",
        {"name": "Flat white", "price": {"amount": 99, "currency": "USD"}, "active": False},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["sku"], body["name"], body["price"], body["active"]) == (
        "canary-sku-a1",
        "Flat white",
        {"amount": 99, "currency": "USD"},
        False,
    )


@pytest.mark.parametrize(
    ("body", "code", "attr"),
    [
        ({"price": {"amount": 99, "currency": "EUR"}}, "miniprograms.currency_immutable", "price.currency"),
        ({"price": {"amount": 0, "currency": "USD"}}, "validation.min_value", "price.amount"),
        ({"price": {"amount": 99}}, "validation.required", "price.currency"),
        ({"name": ""}, "validation.blank", "name"),
        ({"active": None}, "validation.null", "active"),
        ({"sku": "RENAMED"}, "validation.unknown_field", "sku"),
        ({"currency": "EUR"}, "validation.unknown_field", "currency"),
    ],
)
def test_a_bad_product_update_is_refused_with_its_field_and_nothing_changes(isv, product, body, code, attr):
    before = rows(Product)
    assert _error(isv.patch(f"/api/v1/products/{product.public_id}", body)) == (400, code, attr)
    assert rows(Product) == before


def test_products_are_filtered_by_activity_and_sku(isv, product):
    isv.post("/api/v1/products", PRODUCT)
    isv.patch(f"/api/v1/products/{product.public_id}", {"active": False})
    assert [p["sku"] for p in isv.get("/api/v1/products?active=false").json()["results"]] == ["canary-sku-a1"]
    assert [p["sku"] for p in isv.get("/api/v1/products?active=true").json()["results"]] == ["BREAD-1"]
    assert len(isv.get("/api/v1/products").json()["results"]) == 2
    assert [p["sku"] for p in isv.get("/api/v1/products?sku=BREAD-1").json()["results"]] == ["BREAD-1"]
    assert _error(isv.get("/api/v1/products?active=maybe")) == (400, "validation.invalid", "active")
