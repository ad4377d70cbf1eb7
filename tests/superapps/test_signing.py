"""Our own signing round trips; agreement with the official SDKs is proved in tests/conformance."""

import base64
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from apps.superapps.client import keys, orderstr, signing

PRIVATE_PEM, PUBLIC_PEM = keys.generate_key_pair()
PRIVATE, PUBLIC = keys.load_private_key(PRIVATE_PEM), keys.load_public_key(PUBLIC_PEM)
MESSAGE = {"path": "/v2/payments/pay", "client_id": "client-1", "timestamp": "2026-11-22T12:00:00.000+00:00"}
BODY = '{"paymentRequestId":"pr_1","order":{"orderDescription":"Café crème"}}'.encode()


def test_signature_header_has_the_documented_form():
    header = signing.sign(PRIVATE, body=BODY, key_version="2", **MESSAGE)
    assert header.startswith("algorithm=RSA256,keyVersion=2,signature=")
    assert "+" not in header.split("signature=")[1]


def test_a_signature_verifies_and_tolerates_spaces_and_lower_case_escapes():
    header = signing.sign(PRIVATE, body=BODY, **MESSAGE)
    relaxed = header.replace(",", ", ").replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d")
    assert signing.verify(PUBLIC, body=BODY, signature_header=header, **MESSAGE)
    assert signing.verify(PUBLIC, body=BODY, signature_header=relaxed, **MESSAGE)


@pytest.mark.parametrize(
    "change",
    [
        {"body": BODY + b" "},
        {"path": "/v1/payments/pay"},
        {"client_id": "client-2"},
        {"timestamp": "2026-11-22T12:00:01.000+00:00"},
    ],
)
def test_any_change_to_the_message_breaks_the_signature(change):
    header = signing.sign(PRIVATE, body=BODY, **MESSAGE)
    assert not signing.verify(PUBLIC, **({"body": BODY, **MESSAGE} | change), signature_header=header)


def test_sha1_signatures_and_other_algorithms_are_refused():
    text = signing.content_to_sign(method="POST", body=BODY, **MESSAGE)
    sha1 = base64.b64encode(PRIVATE.sign(text, padding.PKCS1v15(), hashes.SHA1())).decode()  # noqa: S303
    header = f"algorithm=RSA256,keyVersion=1,signature={urllib.parse.quote_plus(sha1)}"
    assert not signing.verify(PUBLIC, body=BODY, signature_header=header, **MESSAGE)
    good = signing.sign(PRIVATE, body=BODY, **MESSAGE)
    assert not signing.verify(PUBLIC, body=BODY, signature_header=good.replace("RSA256", "ECC224"), **MESSAGE)
    for broken in ("", "algorithm=RSA256", "signature=%%%", "signature=bm90IGEgc2ln"):
        assert not signing.verify(PUBLIC, body=BODY, signature_header=broken, **MESSAGE)


def test_a_wrong_key_does_not_verify():
    _, other_public = keys.generate_key_pair()
    header = signing.sign(PRIVATE, body=BODY, **MESSAGE)
    assert not signing.verify(keys.load_public_key(other_public), body=BODY, signature_header=header, **MESSAGE)


def test_bare_base64_keys_are_accepted():
    bare = "".join(line for line in PUBLIC_PEM.splitlines() if not line.startswith("-----"))
    assert keys.load_public_key(bare).public_numbers() == PUBLIC.public_numbers()


def test_order_str_round_trip_and_tamper():
    params = {
        "app_id": "2018112803019836",
        "method": "alipay.fund.auth.order.app.freeze",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-11-22 12:00:00",
        "version": "1.0",
        "notify_url": "https://isv.example/n",
        "biz_content": '{"out_order_no":"o1","amount":"0.02","product_code":"PRE_AUTH_ONLINE"}',
    }
    order_str = orderstr.build_order_str(PRIVATE, params)
    assert "timestamp=2026-11-22+12%3A00%3A00" in order_str
    assert order_str.rsplit("&", 1)[1].startswith("sign=")
    assert orderstr.verify_order_str(PUBLIC, order_str)
    assert not orderstr.verify_order_str(PUBLIC, order_str.replace("0.02", "0.01"))
    with pytest.raises(ValueError, match="sign_type"):
        orderstr.build_order_str(PRIVATE, {**params, "sign_type": "RSA"})


def test_classic_notifications_exclude_sign_type_and_keep_empty_values():
    params = {"notify_type": "trade_status_sync", "out_trade_no": "o1", "total_amount": "0.02", "memo": ""}
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items())).encode()
    signed = {**params, "sign_type": "RSA2"}
    signed["sign"] = base64.b64encode(PRIVATE.sign(text, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert orderstr.verify_notification(PUBLIC, signed)
    assert not orderstr.verify_notification(PUBLIC, {**signed, "total_amount": "0.03"})
    assert not orderstr.verify_notification(PUBLIC, {**signed, "sign_type": "RSA"})
