"""Nothing a caller sends the sandbox produces a 500: hostile bodies on every signed endpoint, hostile path
values on the pages, hostile query strings on tradepay and authcode."""

import json

import pytest
from django.test import Client

from apps.sandbox.api import HANDLERS
from tests.sandbox.conftest import CLIENT_ID, sign

FIELDS = [
    "appId",
    "authClientId",
    "authCode",
    "extendInfo",
    "grantType",
    "merchantInfo",
    "order",
    "partnerId",
    "passThroughInfo",
    "paymentAmount",
    "paymentExpiryTime",
    "paymentFactor",
    "paymentId",
    "paymentNotifyUrl",
    "paymentOrderTitle",
    "paymentRedirectUrl",
    "paymentRequestId",
    "paymentReturnUrl",
    "productCode",
    "productCodes",
    "referenceMerchantId",
    "refreshToken",
    "refundAmount",
    "refundId",
    "refundReason",
    "refundRequestId",
    "registrationNotifyURL",
    "registrationRequestId",
]
HOSTILE_VALUES = [
    None,
    0,
    -1,
    1e308,
    True,
    [],
    {},
    "x" * 5000,
    "a\u0000b",
    {"currency": "USD", "value": "9" * 30},
    {"currency": "US\u0000", "value": "1"},
    {"referenceMerchantId": "m\u0000", "merchantDisplayName": "x", "registrationDetail": {"legalName": "\u0000"}},
    {"registrationDetail": {"registrationExpireDate": 5, "registrationNo": []}},
]
HOSTILE_PATHS = ["%00", "x" * 5000, "%F0%9F%92%A9", "..%2F..%2Fetc", "'; DROP TABLE x; --"]


def signed_post(client: Client, path: str, raw: bytes, merchant_key):
    timestamp = "2026-03-02T10:00:00+00:00"
    return client.post(
        path,
        raw,
        content_type="application/json",
        HTTP_CLIENT_ID=CLIENT_ID,
        HTTP_REQUEST_TIME=timestamp,
        HTTP_SIGNATURE="algorithm=RSA256,keyVersion=1,signature="
        + sign(merchant_key, "POST", path, CLIENT_ID, timestamp, raw),
    )


@pytest.mark.parametrize("version", ["v1", "v2", "ams/api/v1"])
def test_hostile_bodies_on_every_endpoint(merchant, merchant_key, version):
    client = Client()
    for endpoint in HANDLERS:
        path = f"/sandbox/{version}/{endpoint}"
        for value in HOSTILE_VALUES:
            raw = json.dumps(dict.fromkeys(FIELDS, value)).encode()
            response = signed_post(client, path, raw, merchant_key)
            assert response.status_code == 200, (path, value, response.content[:300])
            assert json.loads(response.content)["result"]["resultStatus"] in {"F", "U", "A", "S"}


def test_hostile_path_values_on_the_pages(merchant):
    client = Client()
    for value in HOSTILE_PATHS:
        for path in (f"/sandbox/cashier/{value}", f"/sandbox/tradepay/{value}", f"/sandbox/settlements/{value}/x.csv"):
            for method in ("get", "post"):
                response = getattr(client, method)(path)
                assert response.status_code < 500, (method, path, response.status_code)


def test_hostile_query_strings(merchant):
    client = Client()
    for value in HOSTILE_PATHS:
        assert client.get(f"/sandbox/tradepay?orderStr={value}").status_code == 400
        response = client.get(f"/sandbox/authcode?appId={value}&scopes={value}&user={value}")
        assert response.status_code < 500, (value, response.status_code)
    for order_str in ("\x00", "app_id=2021000000000001&sign_type=RSA2&sign=%00&biz_content=%00", "app_id=%00"):
        assert client.get("/sandbox/tradepay", {"orderStr": order_str}).status_code == 400
