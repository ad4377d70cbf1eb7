import datetime

import pytest
import time_machine
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_revoke
from tests.factories import issue_key


def _code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "auth.missing_credentials"),
        ("Bearer", "auth.malformed_authorization"),
        ("Basic dXNlcjpwYXNz", "auth.malformed_authorization"),
        ("Bearer two words", "auth.malformed_authorization"),
        ("Bearer not-a-key", "auth.invalid_api_key"),
        ("Bearer msk_" + "A" * 40, "auth.invalid_api_key"),
        ("Bearer msk_ünicode" + "A" * 33, "auth.invalid_api_key"),
    ],
)
def test_missing_or_malformed_credentials_are_401(world, api, header, code):
    if header:
        api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/merchant")
    assert response.status_code == 401
    assert _code(response) == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_key_with_the_right_prefix_but_wrong_secret_is_401(world, api):
    key = world.a.merchants[0].key
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    response = api.as_key(forged).get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (401, "auth.invalid_api_key")


def test_a_revoked_key_is_401(world, api):
    api_key_revoke(api_key=ApiKey.objects.unscoped().get(name="canary-key-a1"))
    response = api.as_key(world.a.merchants[0].key).get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (401, "auth.api_key_revoked")


def test_an_expired_key_is_401(world, api):
    merchant = world.a.merchants[0].merchant
    key = issue_key(isv=merchant.isv, merchant=merchant, expires_at=timezone.now() + datetime.timedelta(hours=1))
    assert api.as_key(key).get("/api/v1/merchant").status_code == 200
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=2)):
        response = api.as_key(key).get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (401, "auth.api_key_expired")


def test_last_use_is_recorded_at_most_once_a_minute(world, api):
    key = ApiKey.objects.unscoped().get(name="canary-key-a1")
    client = api.as_key(world.a.merchants[0].key)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.get("/api/v1/merchant")
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + datetime.timedelta(seconds=30), tick=False):
        client.get("/api/v1/merchant")
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + datetime.timedelta(seconds=61), tick=False):
        client.get("/api/v1/merchant")
    key.refresh_from_db()
    assert key.last_used_at == start + datetime.timedelta(seconds=61)


def test_an_isv_key_acts_for_its_own_merchant_named_in_the_header(world, api):
    merchant = world.a.merchants[1].merchant
    response = api.as_key(world.a.key, merchant=merchant).get("/api/v1/merchant")
    assert response.status_code == 200
    assert response.json()["id"] == merchant.public_id


def test_an_isv_key_naming_another_isvs_merchant_is_404(world, api):
    response = api.as_key(world.a.key, merchant=world.b.merchants[0].merchant).get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (404, "merchants.not_found")


def test_a_merchant_key_naming_another_merchant_is_404(world, api):
    response = api.as_key(world.a.merchants[0].key, merchant=world.a.merchants[1].merchant).get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (404, "merchants.not_found")


def test_a_merchant_key_naming_its_own_merchant_is_fine(world, api):
    tenant = world.a.merchants[0]
    assert api.as_key(tenant.key, merchant=tenant.merchant).get("/api/v1/merchant").status_code == 200


def test_session_login_does_not_authenticate_the_api(world, api):
    api.force_login(world.a.merchants[0].staff)
    response = api.get("/api/v1/merchant")
    assert (response.status_code, _code(response)) == (401, "auth.missing_credentials")


def test_failed_authentication_is_rate_limited_per_address_but_good_keys_are_not(world, api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "failed_auth": "3/min"},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        bad = [api.as_key("msk_" + "A" * 40).get("/api/v1/merchant") for _ in range(4)]
        assert [response.status_code for response in bad] == [401, 401, 401, 429]
        assert bad[-1].json()["error"]["code"] == "auth.too_many_failures"
        assert int(bad[-1]["Retry-After"]) > 0
        # The address is now blocked for credential checks, good key or not, until the window passes.
        assert api.as_key(world.a.merchants[0].key).get("/api/v1/merchant").status_code == 429
    finally:
        api_settings.reload()


def test_successful_requests_do_not_count_as_failures(world, api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "failed_auth": "2/min"},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        client = api.as_key(world.a.merchants[0].key)
        assert {client.get("/api/v1/merchant").status_code for _ in range(5)} == {200}
    finally:
        api_settings.reload()
