"""my.getAuthCode stand-in and applyToken (§4.8)."""

import datetime as dt

import httpx
import pytest
import time_machine
from django.utils import timezone

from tests.sandbox.conftest import APP_ID, CLIENT_ID


def auth_code(caller, **params) -> str:
    response = httpx.get(caller.base_url + "/sandbox/authcode", params={"appId": APP_ID, **params})
    assert response.status_code == 200, response.text
    return response.json()["authCode"]


def apply(caller, code, version="v2", **extra):
    body = {"grantType": "AUTHORIZATION_CODE", "authCode": code}
    if version == "v2":
        body |= {"appId": APP_ID, "authClientId": CLIENT_ID}
    return caller.post("authorizations/applyToken", body | extra, version=version)


def test_auth_code_endpoint_returns_code_and_scopes(caller):
    response = httpx.get(
        caller.base_url + "/sandbox/authcode", params={"appId": APP_ID, "scopes": "auth_base,USER_ID", "user": "bob"}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"authCode", "authSuccessScopes"}
    assert response.json()["authSuccessScopes"] == ["auth_base", "USER_ID"]


@pytest.mark.parametrize("params", [{}, {"appId": APP_ID, "user": "mallory"}, {"appId": APP_ID, "scopes": ","}])
def test_auth_code_endpoint_refuses_bad_requests(caller, params):
    response = httpx.get(caller.base_url + "/sandbox/authcode", params=params)
    assert response.status_code == 400
    assert "error" in response.json()


def test_a_code_buys_tokens_and_the_users_customer_id(caller):
    answer = apply(caller, auth_code(caller, user="bob"))
    assert answer.result == {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"}
    assert answer.json["customerId"] == "2188000000000002"
    for field in ("accessToken", "refreshToken"):
        assert len(answer.json[field]) <= 128
    expiry = dt.datetime.fromisoformat(answer.json["accessTokenExpiryTime"])
    assert expiry > timezone.now()
    assert dt.datetime.fromisoformat(answer.json["refreshTokenExpiryTime"]) > expiry


def test_a_code_is_single_use(caller):
    code = auth_code(caller)
    assert apply(caller, code).result["resultCode"] == "SUCCESS"
    again = apply(caller, code)
    assert (again.result["resultCode"], again.result["resultStatus"]) == ("USED_AUTHCODE", "F")


def test_a_code_expires(caller, settings):
    settings.SANDBOX_AUTH_CODE_TTL = 60
    code = auth_code(caller)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=61)):
        assert apply(caller, code).result["resultCode"] == "EXPIRED_AUTHCODE"


def test_unknown_code_and_code_of_another_app(caller):
    assert apply(caller, "nope").result["resultCode"] == "INVALID_AUTHCODE"
    code = auth_code(caller)
    assert apply(caller, code, appId="another-app").result["resultCode"] == "INVALID_AUTHCODE"
    assert apply(caller, code).result["resultCode"] == "SUCCESS"


def test_v1_spells_the_codes_its_own_way(caller):
    code = auth_code(caller)
    assert apply(caller, code, version="v1").result["resultCode"] == "SUCCESS"
    assert apply(caller, code, version="v1").result["resultCode"] == "USED_CODE"
    assert apply(caller, "nope", version="v1").result["resultCode"] == "INVALID_CODE"
    expiring = auth_code(caller)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=601)):
        assert apply(caller, expiring, version="v1").result["resultCode"] == "EXPIRED_CODE"


def test_refresh_token_rotates_once(caller):
    first = apply(caller, auth_code(caller))
    body = {"appId": APP_ID, "authClientId": CLIENT_ID, "grantType": "REFRESH_TOKEN"}
    refreshed = caller.post("authorizations/applyToken", body | {"refreshToken": first.json["refreshToken"]})
    assert refreshed.result["resultCode"] == "SUCCESS"
    assert refreshed.json["accessToken"] != first.json["accessToken"]
    assert refreshed.json["customerId"] == first.json["customerId"]
    used = caller.post("authorizations/applyToken", body | {"refreshToken": first.json["refreshToken"]})
    assert used.result["resultCode"] == "USED_REFRESH_TOKEN"
    unknown = caller.post("authorizations/applyToken", body | {"refreshToken": "nope"})
    assert unknown.result["resultCode"] == "INVALID_REFRESH_TOKEN"
    with time_machine.travel(timezone.now() + dt.timedelta(days=31)):
        expired = caller.post("authorizations/applyToken", body | {"refreshToken": refreshed.json["refreshToken"]})
        assert expired.result["resultCode"] == "EXPIRED_REFRESH_TOKEN"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"grantType": "PASSWORD"}, "AUTH_CLIENT_UNSUPPORTED_GRANT_TYPE"),
        ({"authClientId": "someone-else"}, "INVALID_AUTH_CLIENT"),
        ({"grantType": None}, "PARAM_ILLEGAL"),
        ({"authCode": None}, "PARAM_ILLEGAL"),
        ({"appId": None}, "PARAM_ILLEGAL"),
    ],
)
def test_apply_token_request_errors(caller, change, code):
    body = {"appId": APP_ID, "authClientId": CLIENT_ID, "grantType": "AUTHORIZATION_CODE", "authCode": "x"}
    body = {key: value for key, value in (body | change).items() if value is not None}
    assert caller.post("authorizations/applyToken", body).result["resultCode"] == code
