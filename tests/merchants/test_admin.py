"""The onboarding flow in the admin, as ISV staff do it."""

import datetime

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.merchants.models import BusinessLicense, Registration
from tests.merchants.test_registrations import PDF


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _license_post(merchant, **overrides) -> dict:
    today = timezone.localdate()
    return {
        "merchant": merchant.pk,
        "legal_name": "Admin Coffee Ltd",
        "registration_no": "ADM-2024-01",
        "registration_type": "ENTERPRISE_REGISTRATION_NO",
        "business_type": "ENTERPRISE",
        "address_country": "PH",
        "address_city": "Cebu",
        "address_line": "2 Osmeña Blvd",
        "effective_date": (today - datetime.timedelta(days=10)).isoformat(),
        "expiry_date": (today + datetime.timedelta(days=700)).isoformat(),
        "contact_name": "Ben Cruz",
        "contact_email": "ben@example.com",
        "contact_phone": "",
        "document": SimpleUploadedFile("license.pdf", PDF, content_type="application/pdf"),
        **overrides,
    }


def test_isv_staff_file_a_license_through_the_admin(world):
    merchant = world.a.merchants[0].merchant
    response = _login(world.a.staff).post(reverse("admin:merchants_businesslicense_add"), _license_post(merchant))
    assert response.status_code == 302
    business_license = BusinessLicense.objects.unscoped().get(merchant=merchant)
    assert (business_license.isv_id, business_license.legal_name) == (merchant.isv_id, "Admin Coffee Ltd")


def test_the_admin_form_shows_license_errors_next_to_the_field(world):
    merchant = world.a.merchants[0].merchant
    bad = _license_post(
        merchant, document=SimpleUploadedFile("x.exe", b"MZ\x90\x00", content_type="application/x-msdownload")
    )
    response = _login(world.a.staff).post(reverse("admin:merchants_businesslicense_add"), bad)
    assert response.status_code == 200
    assert "must be a PDF, PNG or JPEG" in response.content.decode()
    assert not BusinessLicense.objects.unscoped().filter(merchant=merchant).exists()


def test_a_license_under_review_is_read_only_in_the_admin(world):
    merchant = world.a.merchants[1].merchant  # the world submitted its license for review
    business_license = BusinessLicense.objects.unscoped().get(merchant=merchant)
    client = _login(world.a.staff)
    url = reverse("admin:merchants_businesslicense_change", args=[business_license.pk])
    assert 'name="legal_name"' not in client.get(url).content.decode()
    client.post(url, _license_post(merchant, legal_name="Changed Ltd"))
    business_license.refresh_from_db()
    assert business_license.legal_name == "canary-legal-a2"


def test_registration_status_cannot_be_edited_by_hand(world):
    registration = Registration.objects.unscoped().get(merchant=world.a.merchants[1].merchant)
    client = _login(world.a.staff)
    page = client.get(reverse("admin:merchants_registration_change", args=[registration.pk])).content.decode()
    assert 'name="status"' not in page
    assert "submitted" in page  # the event timeline


def test_the_isv_page_shows_the_registration_matrix(world):
    page = _login(world.a.staff).get(reverse("admin:merchants_isv_change", args=[world.a.isv.pk])).content.decode()
    assert "Business-license verification by super app" in page
    assert "canary-merchant-a1" in page
    assert "not submitted" in page
    assert "submitted" in page
    assert "canary-merchant-b1" not in page
