import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, User
from apps.merchants.models import Isv, Merchant


def _seed() -> dict:
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_seed_demo_json_has_the_documented_shape(db):
    demo = _seed()
    assert set(demo) == {"operator", "isv", "merchants"}
    assert set(demo["operator"]) == {"username", "password"}
    assert set(demo["isv"]) == {"id", "name", "api_key", "staff"}
    assert len(demo["merchants"]) == 2
    for merchant in demo["merchants"]:
        assert set(merchant) == {"id", "name", "api_key", "staff", "mini_programs", "products", "wallet_credentials"}
        assert set(merchant["staff"]) == {"username", "password"}
        [mini_program] = merchant["mini_programs"]
        assert set(mini_program) == {"app_id", "mode", "features", "currency", "session"}
        assert set(mini_program["session"]) == {"token", "user_id", "expires_at"}
        assert all(set(product) == {"sku", "price", "currency"} for product in merchant["products"])
        [credential] = merchant["wallet_credentials"]
        assert credential["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    modes = {m["mini_programs"][0]["mode"]: m["mini_programs"][0]["features"] for m in demo["merchants"]}
    assert modes == {"payment_url": ["payment"], "order_str": ["payment", "pre_authorization"]}


def test_seed_demo_merchants_may_take_payments(db):
    from apps.core.tenancy import Principal
    from apps.miniprograms.models import MiniProgram
    from apps.miniprograms.selectors import mini_program_gate

    demo = _seed()
    for merchant in demo["merchants"]:
        app_id = merchant["mini_programs"][0]["app_id"]
        mini_program = MiniProgram.objects.visible_to(Principal.operator()).get(app_id=app_id)
        mini_program_gate(mini_program=mini_program)  # raises if the license, status or feature stops payments


def test_seed_demo_keys_and_ids_work_against_the_api(db):
    demo = _seed()
    for merchant in demo["merchants"]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {merchant['api_key']}")
        assert client.get("/api/v1/merchant").json()["id"] == merchant["id"]
    isv_client = APIClient()
    isv_client.credentials(HTTP_AUTHORIZATION=f"Bearer {demo['isv']['api_key']}")
    listed = {m["id"] for m in isv_client.get("/api/v1/merchants").json()["results"]}
    assert listed == {m["id"] for m in demo["merchants"]}


def test_seed_demo_logins_work(db):
    demo = _seed()
    for login in [demo["operator"], demo["isv"]["staff"], *(m["staff"] for m in demo["merchants"])]:
        client = Client()  # through the sign-in form, as a person would (its lockout needs the request)
        signed_in = client.post(
            "/admin/login/?next=/admin/", {"username": login["username"], "password": login["password"]}
        )
        assert signed_in.status_code == 302
        assert client.get("/admin/").status_code == 200


def test_seed_demo_is_idempotent_and_refreshes_keys(db):
    first = _seed()
    counts = (Isv.objects.unscoped().count(), Merchant.objects.unscoped().count(), User.objects.count())
    second = _seed()
    assert (
        Isv.objects.unscoped().count(),
        Merchant.objects.unscoped().count(),
        User.objects.count(),
    ) == counts
    assert [m["id"] for m in first["merchants"]] == [m["id"] for m in second["merchants"]]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['merchants'][0]['api_key']}")
    assert client.get("/api/v1/merchant").json()["error"]["code"] == "auth.api_key_revoked"
    assert ApiKey.objects.unscoped().filter(revoked_at=None).count() == 3
    assert second["merchants"][0]["products"] == first["merchants"][0]["products"]


def test_seed_demo_prints_logins_and_links(db):
    out = io.StringIO()
    call_command("seed_demo", "--base-url", "http://127.0.0.1:9999", stdout=out)
    text = out.getvalue()
    assert "coffee-staff" in text
    links = re.findall(r"http://127\.0\.0\.1:9999(/\S*)", text)
    for expected in ("/demo/", "/demo/demo-coffee-app/", "/demo/demo-rentals-app/", "/admin/", "/api/v1/docs/"):
        assert expected in links
    assert "/sandbox/" in links
    for path in links:
        if path.startswith("/api/v1/merchant"):
            continue  # the curl example, which needs the key
        answer = Client().get(path)
        assert answer.status_code in (200, 302), (path, answer.status_code)  # the admin sends you to sign in


def test_seed_demo_refuses_production_without_force(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")


def test_seed_demo_sessions_order_from_the_catalogue_at_the_sandbox(live_server, settings, transactional_db):
    settings.PUBLIC_BASE_URL = live_server.url
    demo = _seed()
    trade_pay = {}
    for merchant in demo["merchants"]:
        [mini_program] = merchant["mini_programs"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {mini_program['session']['token']}")
        body = {"items": [{"sku": merchant["products"][0]["sku"], "quantity": 1}], "description": "Demo"}
        created = client.post("/api/v1/orders", body, format="json")
        assert created.status_code == 201, created.json()
        trade_pay[mini_program["mode"]] = set(created.json()["trade_pay"])
        assert [order["id"] for order in client.get("/api/v1/orders").json()["results"]] == [created.json()["id"]]
    assert trade_pay == {"payment_url": {"paymentUrl"}, "order_str": {"orderStr"}}
