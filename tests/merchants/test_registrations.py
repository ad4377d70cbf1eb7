"""Business-license verification against the sandbox wallet over HTTP: by notification and by polling."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from apps.core.errors import ApplicationError, ConflictError
from apps.merchants import selectors, services
from apps.merchants.models import RegistrationStatus
from apps.merchants.services import wallet_credential_create
from tests.callbacks.inbox import drain_inbox
from tests.superapps.conftest import make_wallet

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def license_fields(**overrides) -> dict:
    today = timezone.localdate()
    return {
        "legal_name": "Canary Coffee Ltd",
        "registration_no": "REG-123456",
        "registration_type": "ENTERPRISE_REGISTRATION_NO",
        "business_type": "ENTERPRISE",
        "address_country": "PH",
        "address_city": "Manila",
        "address_line": "1 Rizal Avenue",
        "effective_date": today - datetime.timedelta(days=365),
        "expiry_date": today + datetime.timedelta(days=365),
        "contact_name": "Ana Reyes",
        "contact_email": "ana@example.com",
        **overrides,
    }


def upload(name: str = "license.pdf", content: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


@pytest.fixture
def wallet(live_server, settings, transactional_db, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SANDBOX_REVIEW_DELAY = 0
    return make_wallet(live_server, settings, code="sandbox", version="v2")


@pytest.fixture
def merchant(world, wallet):
    merchant = world.a.merchants[0].merchant
    credential = wallet_credential_create(
        isv=merchant.isv, merchant=merchant, super_app=wallet.super_app, client_id="a1-reg"
    )
    wallet.register(credential)
    return merchant


def review_and_notify() -> None:
    """The sandbox finishes due reviews and sends notifyRegistrationStatus to the platform, which applies it."""
    call_command("sandbox_deliver", stdout=io.StringIO())
    drain_inbox()


def test_submit_review_verify_by_notification(merchant, wallet):
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    with pytest.raises(ApplicationError) as closed:
        selectors.ensure_merchant_may_take_payments(merchant=merchant, super_app=wallet.super_app)
    assert closed.value.code == "merchants.license_not_verified"

    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    assert registration.status == RegistrationStatus.UNDER_REVIEW
    review_and_notify()
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.VERIFIED
    assert [(e.from_status, e.to_status, e.source) for e in registration.events.order_by("created_at")] == [
        ("draft", "submitted", "api"),
        ("submitted", "under_review", "wallet_response"),
        ("under_review", "verified", "wallet_notification"),
    ]
    selectors.ensure_merchant_may_take_payments(merchant=merchant, super_app=wallet.super_app)


def test_rejected_then_fixed_and_resubmitted(merchant, wallet):
    services.business_license_save(
        merchant=merchant, fields=license_fields(registration_no="REG-123000"), document=upload()
    )
    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    review_and_notify()
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.REJECTED
    assert "registration number" in registration.rejection_reason

    services.business_license_save(merchant=merchant, fields={"registration_no": "REG-123456"})
    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="staff")
    review_and_notify()
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.VERIFIED
    resubmission = registration.events.filter(to_status="submitted").order_by("-created_at").first()
    assert resubmission.license_changes == {"registration_no": ["REG-123000", "REG-123456"]}


def test_verified_by_polling_when_the_notification_never_arrives(merchant, wallet, settings):
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # the wallet's notification cannot reach us
    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    review_and_notify()
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.UNDER_REVIEW
    assert services.registrations_poll(now=timezone.now() + datetime.timedelta(minutes=5)) == 1
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.VERIFIED
    assert registration.events.order_by("-created_at").first().source == "wallet_poll"


def test_a_lost_submission_is_sent_again_with_the_same_request_id(merchant, wallet):
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    credential = merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"http_500": True})
    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    assert registration.status == RegistrationStatus.SUBMITTED  # unknown outcome: not failed
    request_id = registration.wallet_request_id
    wallet.register(credential)
    services.registrations_poll(now=timezone.now() + datetime.timedelta(minutes=5))
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.UNDER_REVIEW
    assert registration.wallet_request_id == request_id


def test_the_license_is_locked_while_reviewed_and_verified(merchant, wallet):
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    with pytest.raises(ConflictError) as locked:
        services.business_license_save(merchant=merchant, fields={"legal_name": "Other Ltd"})
    assert locked.value.code == "merchants.license_locked"
    with pytest.raises(ConflictError) as again:
        services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    assert again.value.code == "merchants.registration_in_progress"


def test_an_expired_license_stops_payments(merchant, wallet):
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    registration = services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    review_and_notify()
    expiry = merchant.business_license.expiry_date
    assert services.registrations_expire(today=expiry) == 0
    assert services.registrations_expire(today=expiry + datetime.timedelta(days=1)) == 1
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.EXPIRED
    with pytest.raises(ApplicationError) as closed:
        selectors.ensure_merchant_may_take_payments(merchant=merchant, super_app=wallet.super_app)
    assert closed.value.code == "merchants.license_not_verified"


def test_submitting_without_a_license_or_credentials_is_refused(world, wallet):
    merchant = world.b.merchants[0].merchant
    with pytest.raises(ApplicationError) as missing:
        services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    assert missing.value.code == "merchants.license_missing"
    services.business_license_save(merchant=merchant, fields=license_fields(), document=upload())
    with pytest.raises(ApplicationError) as no_credential:
        services.registration_submit(merchant=merchant, super_app=wallet.super_app, source="api")
    assert no_credential.value.code == "merchants.no_wallet_credential"
    assert not merchant.registrations.filter(super_app=wallet.super_app).exists()


@pytest.mark.parametrize(
    ("fields", "document", "code", "attr"),
    [
        (
            {"expiry_date": timezone.localdate() - datetime.timedelta(days=1)},
            upload(),
            "validation.in_past",
            "expiry_date",
        ),
        ({"registration_no": "no spaces allowed"}, upload(), "validation.invalid_registration_no", "registration_no"),
        ({"address_country": "Philippines"}, upload(), "validation.max_length", "address_country"),
        ({"legal_name": ""}, upload(), "validation.blank", "legal_name"),
        ({}, upload("license.exe", b"MZ\x90\x00binary"), "validation.file_type_not_allowed", "document"),
        ({}, None, "validation.blank", "document"),
    ],
)
def test_bad_licenses_are_refused_and_nothing_is_saved(world, fields, document, code, attr, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    merchant = world.a.merchants[0].merchant
    with pytest.raises(ApplicationError) as error:
        services.business_license_save(merchant=merchant, fields=license_fields(**fields), document=document)
    assert (error.value.code, error.value.attr) == (code, attr)
    merchant.refresh_from_db()
    assert not hasattr(merchant, "business_license")


def test_an_oversized_document_is_refused(world, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    settings.LICENSE_DOCUMENT_MAX_BYTES = 1000
    with pytest.raises(ApplicationError) as error:
        services.business_license_save(
            merchant=world.a.merchants[0].merchant, fields=license_fields(), document=upload(content=PDF + b"0" * 2000)
        )
    assert (error.value.code, error.value.attr) == ("validation.file_too_large", "document")
