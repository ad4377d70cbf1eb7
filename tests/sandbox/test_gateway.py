"""The signed OpenAPI envelope (§2): who may call, how requests are verified, how every answer is signed."""

import base64
import json
import urllib.parse

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apps.sandbox.models import Payment
from tests.sandbox.conftest import CLIENT_ID, Answer, WalletCaller, content, now_iso, pay_body

ENDPOINTS = [
    "payments/pay",
    "payments/inquiryPayment",
    "payments/cancel",
    "payments/refund",
    "payments/inquiryRefund",
    "authorizations/applyToken",
    "merchants/registration",
    "merchants/inquiryRegistrationStatus",
]


def test_every_answer_is_signed_with_lower_case_headers(caller, wallet_public_pem):
    answer = caller.post("payments/pay", pay_body())
    raw_names = [name.decode() for name, _ in answer.response.headers.raw]
    assert {"client-id", "response-time", "signature"} <= set(raw_names)
    assert answer.response.headers["client-id"] == CLIENT_ID
    assert answer.response.headers["response-time"].endswith("+00:00")
    assert answer.signed_by(wallet_public_pem)


@pytest.mark.parametrize("version", ["v1", "v2", "ams/api/v1"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_answers_signed_on_every_prefix(caller, wallet_public_pem, version, endpoint):
    answer = caller.post(endpoint, {}, version=version)
    assert answer.status_code == 200
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert answer.signed_by(wallet_public_pem)


def test_unknown_client_is_invalid_client(caller, wallet_public_pem):
    stranger = WalletCaller(caller.base_url, caller.private_key, client_id="SOMEONE_ELSE")
    answer = stranger.post("payments/pay", pay_body())
    assert answer.result == {
        "resultCode": "INVALID_CLIENT",
        "resultStatus": "F",
        "resultMessage": answer.result["resultMessage"],
    }
    assert answer.response.headers["client-id"] == "SOMEONE_ELSE"
    assert answer.signed_by(wallet_public_pem)
    assert not Payment.objects.exists()


def test_missing_client_id_is_invalid_client(caller):
    response = httpx.post(caller.base_url + "/sandbox/v2/payments/pay", json=pay_body())
    assert response.json()["result"]["resultCode"] == "INVALID_CLIENT"


def test_signature_by_another_key_is_invalid_signature(caller):
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = caller.post("payments/pay", pay_body(), key=intruder)
    assert answer.result["resultCode"] == "INVALID_SIGNATURE"
    assert answer.result["resultStatus"] == "F"
    assert not Payment.objects.exists()


def test_missing_signature_is_invalid_signature(caller):
    raw = json.dumps(pay_body()).encode()
    headers = caller.headers("/sandbox/v2/payments/pay", raw)
    del headers["Signature"]
    response = caller.http.post(caller.base_url + "/sandbox/v2/payments/pay", content=raw, headers=headers)
    assert response.json()["result"]["resultCode"] == "INVALID_SIGNATURE"


def test_a_body_changed_after_signing_is_invalid_signature(caller):
    raw = json.dumps(pay_body()).encode()
    headers = caller.headers("/sandbox/v2/payments/pay", raw)
    response = caller.http.post(
        caller.base_url + "/sandbox/v2/payments/pay", content=raw.replace(b"1000", b"9000"), headers=headers
    )
    assert response.json()["result"]["resultCode"] == "INVALID_SIGNATURE"


def test_signature_over_another_path_is_invalid_signature(caller):
    raw = json.dumps(pay_body()).encode()
    headers = caller.headers("/sandbox/v2/payments/refund", raw)
    response = caller.http.post(caller.base_url + "/sandbox/v2/payments/pay", content=raw, headers=headers)
    assert response.json()["result"]["resultCode"] == "INVALID_SIGNATURE"


@pytest.mark.parametrize("version", ["v2", "ams/api/v1"])
def test_a_path_signed_below_the_sandbox_mount_is_accepted_and_answered_alike(caller, wallet_public_pem, version):
    """An SDK given gateway_url=<host>/sandbox signs /ams/api/v1/... while posting to /sandbox/ams/api/v1/..."""
    raw = json.dumps(pay_body()).encode()
    signed_path = f"/{version}/payments/pay"
    headers = caller.headers(signed_path, raw)
    response = caller.http.post(f"{caller.base_url}/sandbox{signed_path}", content=raw, headers=headers)
    assert response.json()["result"]["resultCode"] == "ACCEPT"
    assert Answer(response, signed_path).signed_by(wallet_public_pem)
    assert not Answer(response, "/sandbox" + signed_path).signed_by(wallet_public_pem)


def test_sha1_signature_is_refused(caller):
    raw = json.dumps(pay_body()).encode()
    path, timestamp = "/sandbox/v2/payments/pay", now_iso()
    sha1 = caller.private_key.sign(content("POST", path, CLIENT_ID, timestamp, raw), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the point of the test
    headers = caller.headers(path, raw) | {
        "Request-Time": timestamp,
        "Signature": "algorithm=RSA256,keyVersion=1,signature="
        + urllib.parse.quote_plus(base64.b64encode(sha1).decode()),
    }
    response = caller.http.post(caller.base_url + path, content=raw, headers=headers)
    assert response.json()["result"]["resultCode"] == "INVALID_SIGNATURE"


def test_signature_header_with_spaces_and_lower_case_escapes_verifies(caller):
    raw = json.dumps(pay_body()).encode()
    path = "/sandbox/v2/payments/pay"
    headers = caller.headers(path, raw, separator=", ")
    prefix, _, encoded = headers["Signature"].partition("signature=")
    headers["Signature"] = (
        prefix + "signature=" + encoded.replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d")
    )
    response = caller.http.post(caller.base_url + path, content=raw, headers=headers)
    assert response.json()["result"]["resultStatus"] == "A"


def test_unregistered_key_version_is_key_not_found(caller):
    answer = caller.post("payments/pay", pay_body(), key_version="7")
    assert answer.result["resultCode"] == "KEY_NOT_FOUND"


def test_missing_request_time_is_param_illegal(caller):
    raw = json.dumps(pay_body()).encode()
    headers = caller.headers("/sandbox/v2/payments/pay", raw)
    del headers["Request-Time"]
    response = caller.http.post(caller.base_url + "/sandbox/v2/payments/pay", content=raw, headers=headers)
    assert response.json()["result"]["resultCode"] == "PARAM_ILLEGAL"
    assert "Request-Time" in response.json()["result"]["resultMessage"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"{" * 5000, "\u00e9".encode("latin-1")])
def test_unparsable_body_is_msg_parse_error(caller, raw):
    answer = caller.post("payments/pay", raw)
    assert answer.status_code == 200
    assert answer.result["resultCode"] == "MSG_PARSE_ERROR"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"paymentRequestId": None}, "paymentRequestId"),
        ({"paymentRequestId": 12}, "paymentRequestId"),
        ({"paymentRequestId": "x" * 65}, "paymentRequestId"),
        ({"appId": None}, "appId"),
        ({"paymentAmount": None}, "paymentAmount"),
        ({"paymentAmount": {"currency": "USD", "value": "-5"}}, "paymentAmount.value"),
        ({"paymentAmount": {"currency": "USD", "value": "0"}}, "paymentAmount.value"),
        ({"paymentAmount": {"currency": "USD", "value": "10.5"}}, "paymentAmount.value"),
        ({"paymentAmount": {"currency": "USD", "value": 1000}}, "paymentAmount.value"),
        ({"paymentAmount": {"value": "1000"}}, "paymentAmount.currency"),
        ({"paymentNotifyUrl": "ftp://x"}, "paymentNotifyUrl"),
        ({"paymentExpiryTime": "tomorrow"}, "paymentExpiryTime"),
        ({"paymentExpiryTime": "2030-01-01T00:00:00"}, "paymentExpiryTime"),
        ({"order": "shoes"}, "order"),
        ({"order": {"merchant": {"merchantDisplayName": 7}}}, "order.merchant.merchantDisplayName"),
    ],
)
def test_invalid_fields_are_param_illegal_naming_the_field(caller, change, field):
    body = {key: value for key, value in {**pay_body(), **change}.items() if value is not None}
    answer = caller.post("payments/pay", body)
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert answer.result["resultMessage"].startswith(field + " ")
    assert not Payment.objects.exists()


def test_get_is_method_not_supported(caller, wallet_public_pem):
    answer = caller.get("/sandbox/v2/payments/pay")
    assert answer.status_code == 405
    assert answer.result["resultCode"] == "METHOD_NOT_SUPPORTED"
    assert answer.signed_by(wallet_public_pem, method="GET")
