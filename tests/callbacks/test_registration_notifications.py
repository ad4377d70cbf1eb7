"""notifyRegistrationStatus as the platform receives it: verified, scoped to its client, never stale."""

import json

import pytest
from django.test import Client

from apps.merchants.models import Registration, RegistrationStatus
from apps.merchants.services import registration_transition
from apps.superapps.client import keys, signing
from apps.superapps.models import SuperApp
from tests.callbacks.inbox import drain_inbox
from tests.conftest import _test_key_pair


@pytest.fixture
def wallet_key():
    """The world's super app trusts the test key pair: this test plays the wallet."""
    return keys.load_private_key(_test_key_pair()[0])


def _notify(super_app: SuperApp, client_id: str, body: dict | bytes, private_key, *, tamper: bool = False):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    path = f"/callbacks/{super_app.callback_token}/merchants/notify-registration"
    timestamp = signing.now_timestamp()
    header = signing.sign(private_key, path=path, client_id=client_id, timestamp=timestamp, body=raw)
    response = Client().post(
        path,
        raw + (b" " if tamper else b""),
        content_type="application/json",
        HTTP_CLIENT_ID=client_id,
        HTTP_REQUEST_TIME=timestamp,
        HTTP_SIGNATURE=header,
    )
    drain_inbox()
    return response


def _result(request_id: str, status: str, reason: str = "") -> dict:
    return {
        "registrationRequestId": request_id,
        "registrationResult": {"registrationStatus": status, "rejectReason": reason},
    }


@pytest.fixture
def a2_registration(world):
    return Registration.objects.unscoped().get(merchant=world.a.merchants[1].merchant)  # submitted, canary-request-a2


def test_a_verified_notification_is_applied_and_acknowledged_signed(world, wallet_key, a2_registration):
    response = _notify(
        a2_registration.super_app, "canary-client-a2", _result("canary-request-a2", "COMPLETED"), wallet_key
    )
    assert response.status_code == 200
    assert json.loads(response.content)["result"]["resultStatus"] == "S"
    assert response["Signature"].startswith("algorithm=RSA256")
    a2_registration.refresh_from_db()
    assert a2_registration.status == RegistrationStatus.VERIFIED


def test_a_forged_notification_changes_nothing(world, wallet_key, a2_registration):
    response = _notify(
        a2_registration.super_app,
        "canary-client-a2",
        _result("canary-request-a2", "COMPLETED"),
        wallet_key,
        tamper=True,
    )
    assert response.status_code == 401
    a2_registration.refresh_from_db()
    assert a2_registration.status == RegistrationStatus.SUBMITTED


def test_a_client_cannot_decide_another_tenants_registration(world, wallet_key):
    victim = Registration.objects.unscoped().get(merchant=world.b.merchants[1].merchant)
    response = _notify(victim.super_app, "canary-client-a2", _result("canary-request-b2", "REJECTED", "x"), wallet_key)
    assert response.status_code == 200  # acknowledged, so the wallet stops, but nothing is applied
    victim.refresh_from_db()
    assert victim.status == RegistrationStatus.SUBMITTED


def test_a_stale_answer_never_decides_a_newer_submission(world, wallet_key, a2_registration):
    registration_transition(
        registration=a2_registration, to=RegistrationStatus.REJECTED, source="test", rejection_reason="first try"
    )
    registration_transition(
        registration=a2_registration,
        to=RegistrationStatus.SUBMITTED,
        source="test",
        license_snapshot={},
        wallet_request_id="canary-request-a2-second",
    )
    _notify(a2_registration.super_app, "canary-client-a2", _result("canary-request-a2", "REJECTED", "old"), wallet_key)
    a2_registration.refresh_from_db()
    assert (a2_registration.status, a2_registration.wallet_request_id) == (
        RegistrationStatus.SUBMITTED,
        "canary-request-a2-second",
    )


def test_a_contradicting_late_notification_is_acknowledged_and_not_applied(world, wallet_key, a2_registration):
    super_app = a2_registration.super_app
    _notify(super_app, "canary-client-a2", _result("canary-request-a2", "COMPLETED"), wallet_key)
    late = _notify(super_app, "canary-client-a2", _result("canary-request-a2", "REJECTED", "late"), wallet_key)
    assert late.status_code == 200
    a2_registration.refresh_from_db()
    assert a2_registration.status == RegistrationStatus.VERIFIED


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000, b'{"registrationResult": 5}']
)
def test_unreadable_notifications_are_refused_without_a_500(world, wallet_key, a2_registration, body):
    response = _notify(a2_registration.super_app, "canary-client-a2", body, wallet_key)
    assert response.status_code == 400
    assert json.loads(response.content)["result"]["resultCode"] == "PARAM_ILLEGAL"
