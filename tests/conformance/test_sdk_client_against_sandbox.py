"""The official SDK's ``DefaultAlipayClient`` calling our sandbox wallet over HTTP (apps/sandbox).

The SDK signs its request over ``request.path`` (``/ams/api/v1/...``), posts it to ``<gateway_url><path>``,
and hands back the body only if the lower-case ``signature``, ``response-time`` and ``client-id`` headers
carry a signature over that same path that verifies with the wallet's public key. So a parsed body back
from the SDK means both signatures conformed. The client id must not start with ``SANDBOX_``: the SDK
would rewrite the path to ``/ams/sandbox/api/...``.

Two ways to point the SDK at the sandbox, which is mounted under ``/sandbox``:

* ``gateway_url=<server>/sandbox``, as a merchant would configure it. The SDK then signs
  ``/ams/api/v1/...`` but the request arrives at ``/sandbox/ams/api/v1/...``, and the sandbox signs and
  verifies over the path it received, so the two disagree.
* ``gateway_url=<server>`` with the request's path set to ``/sandbox/ams/api/v1/...``: what the SDK signs
  and what the sandbox receives agree, which isolates the signature and header conformance.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import SANDBOX_CLIENT_ID as CLIENT_ID
from tests.conformance.conftest import pem_body

AMS_PATH = "/ams/api/v1/payments/inquiryPayment"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wallet_public_key(sandbox_public_pem) -> str:
    """The sandbox wallet's public key body, the merchant registered with it."""
    return pem_body(sandbox_public_pem)


def sdk_call(peer, live_server, api: str, *, merchant_private_key, alipay_public_key, mounted, **fields) -> dict:
    """One ``DefaultAlipayClient.execute`` in the SDK venv against the live sandbox."""
    return peer(
        "ams-client-call",
        {
            "gateway_url": live_server.url + ("/sandbox" if mounted else ""),
            "path_prefix": "" if mounted else "/sandbox",
            "client_id": CLIENT_ID,
            "merchant_private_key": merchant_private_key,
            "alipay_public_key": alipay_public_key,
            "api": api,
            **fields,
        },
    )


def inquire(peer, live_server, *, merchant_private_key: str, alipay_public_key: str, mounted: bool) -> dict:
    """``AlipayPayQueryRequest`` for a payment that was never created."""
    return sdk_call(
        peer,
        live_server,
        "inquiryPayment",
        merchant_private_key=merchant_private_key,
        alipay_public_key=alipay_public_key,
        mounted=mounted,
        payment_request_id="pr_never_created_0001",
    )


def assert_order_not_exist(result: dict) -> None:
    assert result["ok"] is True, result
    assert result["body"]["result"]["resultCode"] == "ORDER_NOT_EXIST"
    assert result["body"]["result"]["resultStatus"] == "F"


def test_the_sdk_client_configured_with_the_sandbox_gateway_url_gets_a_verified_answer(
    peer, live_server, merchant_keys, wallet_public_key
):
    result = inquire(
        peer,
        live_server,
        merchant_private_key=merchant_keys.private_pkcs1_body,
        alipay_public_key=wallet_public_key,
        mounted=True,
    )

    assert result["path"] == AMS_PATH
    assert_order_not_exist(result)


def test_the_sdk_client_verifies_the_sandbox_signed_response(peer, live_server, merchant_keys, wallet_public_key):
    result = inquire(
        peer,
        live_server,
        merchant_private_key=merchant_keys.private_pkcs1_body,
        alipay_public_key=wallet_public_key,
        mounted=False,
    )

    assert result["path"] == "/sandbox" + AMS_PATH
    assert_order_not_exist(result)


def test_the_sdk_client_refuses_the_sandbox_response_under_another_wallet_key(
    peer, live_server, merchant_keys, other_keys, wallet_public_key
):
    """The control for the test above: the same call, with the wrong wallet key configured in the SDK."""
    result = inquire(
        peer,
        live_server,
        merchant_private_key=merchant_keys.private_pkcs1_body,
        alipay_public_key=other_keys.public_body,
        mounted=False,
    )

    assert result["ok"] is False
    assert result["error"] == "AlipayApiException: response verify failed. Verification failed"


def test_the_sandbox_refuses_the_sdk_request_signed_with_another_merchant_key(
    peer, live_server, other_keys, wallet_public_key
):
    result = inquire(
        peer,
        live_server,
        merchant_private_key=other_keys.private_pkcs1_body,
        alipay_public_key=wallet_public_key,
        mounted=False,
    )

    assert result["ok"] is True, result
    assert result["body"]["result"]["resultCode"] == "INVALID_SIGNATURE"


def test_a_payment_the_sdk_creates_is_what_the_sdk_then_inquires(peer, live_server, merchant_keys, wallet_public_key):
    keys = {"merchant_private_key": merchant_keys.private_pkcs1_body, "alipay_public_key": wallet_public_key}

    paid = sdk_call(
        peer,
        live_server,
        "pay",
        **keys,
        mounted=False,
        payment_request_id="pr_sdk_conformance_0001",
        currency="USD",
        value="1234",
        order_description="Café · 咖啡",
        merchant_display_name="Conformance Coffee",
        redirect_url="https://merchant.example/return",
        notify_url="https://merchant.example/notify",
    )
    inquired = sdk_call(
        peer, live_server, "inquiryPayment", **keys, mounted=False, payment_request_id="pr_sdk_conformance_0001"
    )

    assert paid["ok"] is True, paid
    assert paid["body"]["result"]["resultCode"] == "ACCEPT"
    assert paid["body"]["result"]["resultStatus"] == "A"
    assert inquired["ok"] is True, inquired
    assert inquired["body"]["result"]["resultCode"] == "SUCCESS"
    assert inquired["body"]["paymentRequestId"] == "pr_sdk_conformance_0001"
    assert inquired["body"]["paymentId"] == paid["body"]["paymentId"]
    assert inquired["body"]["paymentAmount"] == {"currency": "USD", "value": "1234"}
    assert inquired["body"]["paymentStatus"] == "PROCESSING"
