"""The ISV onboarding API: merchants, licenses, registrations, credentials — over HTTP, against the sandbox."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from apps.merchants.models import BusinessLicense, Merchant, Registration, WalletCredential
from tests.callbacks.inbox import drain_inbox
from tests.merchants.test_registrations import PDF
from tests.superapps.conftest import make_wallet


def _license_form(**overrides) -> dict:
    today = timezone.localdate()
    form = {
        "legal_name": "Canary Coffee Ltd",
        "registration_no": "REG-123456",
        "registration_type": "ENTERPRISE_REGISTRATION_NO",
        "business_type": "ENTERPRISE",
        "address_country": "PH",
        "address_city": "Manila",
        "address_line": "1 Rizal Avenue",
        "effective_date": (today - datetime.timedelta(days=30)).isoformat(),
        "expiry_date": (today + datetime.timedelta(days=365)).isoformat(),
        "contact_name": "Ana Reyes",
        "contact_email": "ana@example.com",
        "document": SimpleUploadedFile("license.pdf", PDF, content_type="application/pdf"),
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


@pytest.fixture(autouse=True)
def _media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path


def test_isv_onboards_a_merchant_end_to_end(live_server, settings, transactional_db, world, api):
    settings.SANDBOX_REVIEW_DELAY = 0
    wallet = make_wallet(live_server, settings, code="sandbox", version="v2")
    isv = api.as_key(world.a.key)

    created = isv.post("/api/v1/merchants", {"name": "Bean There"}, format="json")
    assert created.status_code == 201
    merchant = Merchant.objects.unscoped().get(public_id=created.json()["id"])

    as_merchant = api.__class__().as_key(world.a.key, merchant=merchant)
    credential = as_merchant.post(
        "/api/v1/wallet-credentials", {"super_app": "sandbox", "client_id": "bean-there"}, format="json"
    )
    assert credential.status_code == 201
    assert credential.json()["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    wallet.register(WalletCredential.objects.unscoped().get(public_id=credential.json()["id"]))

    uploaded = as_merchant.put("/api/v1/merchant/license", _license_form(), format="multipart")
    assert uploaded.status_code == 200, uploaded.json()
    assert uploaded.json()["has_document"] is True

    submitted = as_merchant.post("/api/v1/merchant/registrations", {"super_app": "sandbox"}, format="json")
    assert submitted.status_code == 201
    assert submitted.json()["status"] == "under_review"

    call_command("sandbox_deliver", stdout=io.StringIO())
    drain_inbox()  # what the worker does with the notification
    detail = as_merchant.get("/api/v1/merchant").json()
    assert detail["license_status"] == "on_file"
    [registration] = detail["registrations"]
    assert registration["status"] == "verified"
    assert [event["to_status"] for event in registration["events"]] == ["submitted", "under_review", "verified"]


@pytest.mark.parametrize(
    ("overrides", "code", "attr"),
    [
        ({"legal_name": None}, "validation.required", "legal_name"),
        ({"expiry_date": "2001-01-01"}, "validation.in_past", "expiry_date"),
        ({"registration_type": "GUESS"}, "validation.invalid_choice", "registration_type"),
        (
            {"document": SimpleUploadedFile("x.txt", b"just text", content_type="text/plain")},
            "validation.file_type_not_allowed",
            "document",
        ),
        ({"document": None}, "validation.blank", "document"),
    ],
)
def test_bad_licenses_are_400s_naming_the_field_and_change_nothing(world, api, overrides, code, attr):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    response = client.put("/api/v1/merchant/license", _license_form(**overrides), format="multipart")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["attr"]) == (code, attr)
    assert not BusinessLicense.objects.unscoped().filter(merchant=world.a.merchants[0].merchant).exists()


def test_a_50_megabyte_upload_is_a_400_naming_the_document(world, api):
    big = SimpleUploadedFile("big.pdf", PDF + b"0" * (50 * 1024 * 1024), content_type="application/pdf")
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    response = client.put("/api/v1/merchant/license", _license_form(document=big), format="multipart")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["attr"]) == (
        "validation.file_too_large",
        "document",
    )
    assert not BusinessLicense.objects.unscoped().filter(merchant=world.a.merchants[0].merchant).exists()


def test_submitting_to_an_unknown_super_app_is_a_400_naming_it(world, api):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    response = client.post("/api/v1/merchant/registrations", {"super_app": "nowallet"}, format="json")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["attr"]) == (
        "validation.does_not_exist",
        "super_app",
    )
    assert not Registration.objects.unscoped().filter(merchant=world.a.merchants[0].merchant).exists()


def test_merchant_keys_read_onboarding_but_do_not_write_it(world, api):
    client = api.as_key(world.a.merchants[0].key)
    assert client.get("/api/v1/merchant/registrations").status_code == 200
    assert client.get("/api/v1/merchant/license").json()["error"]["code"] == "merchants.license_not_found"
    assert client.put("/api/v1/merchant/license", _license_form(), format="multipart").status_code == 403
    assert (
        client.post("/api/v1/merchant/registrations", {"super_app": "world-wallet"}, format="json").status_code == 403
    )
    assert client.post("/api/v1/merchants", {"name": "x"}, format="json").status_code == 403


def test_super_apps_are_listed_for_every_tenant(world, api):
    codes = [app["code"] for app in api.as_key(world.b.merchants[0].key).get("/api/v1/super-apps").json()]
    assert codes == ["world-wallet"]


def test_a_payment_before_verification_is_refused_without_a_wallet_call(world):
    """The gate is a pure check: it needs no wallet (this super app's gateway does not even resolve)."""
    from apps.core.errors import ApplicationError
    from apps.merchants.selectors import ensure_merchant_may_take_payments
    from apps.superapps.models import SuperApp

    merchant = world.a.merchants[0].merchant
    with pytest.raises(ApplicationError) as error:
        ensure_merchant_may_take_payments(merchant=merchant, super_app=SuperApp.objects.get(code="world-wallet"))
    assert error.value.code == "merchants.license_not_verified"
