"""Our message signature (§2) against the official Antom SDK, global-open-sdk-python 1.7.1.

Both directions: what ``signing.sign`` produces verifies with the SDK's ``signature_tool.verify`` and
``webhook_tool.check_signature``; what the SDK's ``signature_tool.sign`` produces verifies with
``signing.verify``, in the header spellings seen in the wild. Our verifier is stricter than the SDK's in one
place, on purpose: the SDK verifies with the ``rsa`` package, which takes SHA-1 and SHA-512 signatures too.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from apps.superapps.client import signing

CLIENT_ID = "2022070614185300034567"
PATH = "/v2/payments/pay"
TIMESTAMP = "2026-11-22T11:22:58+00:00"
# Pretty-printed, as the SDK's client sends it: signatures cover the raw bytes, not a canonical form.
BODY = json.dumps(
    {
        "productCode": "CASHIER_PAYMENT",
        "paymentRequestId": "pr_01JC0NFORMANCE",
        "paymentAmount": {"currency": "USD", "value": "10000"},
        "paymentOrderTitle": "Coffee",
    },
    indent=3,
)
NON_ASCII_BODY = json.dumps(
    {
        "paymentId": "2026112211400000001",
        "paymentAmount": {"currency": "CNY", "value": "1234"},
        "paymentOrderTitle": "Café au lait · 咖啡 · قهوة",
        "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "成功"},
    },
    ensure_ascii=False,
)

# Each kind of signed message: a request (merchant key), a notification and a response (wallet key).
MESSAGES = {
    "request": ("merchant", "/v2/payments/pay", "2026-11-22T11:22:58+00:00", BODY),
    "notification": ("wallet", "/isv/notify/payments", "2026-11-22T19:22:58.123+08:00", NON_ASCII_BODY),
    "response": (
        "wallet",
        "/ams/api/v1/payments/inquiryPayment",
        "2026-11-22T11:22:59+00:00",
        '{"result":{"resultCode":"ORDER_NOT_EXIST","resultStatus":"F","resultMessage":"order not exist"}}',
    ),
}


@pytest.fixture
def keys_for(merchant_keys, wallet_keys):
    return {"merchant": merchant_keys, "wallet": wallet_keys}.__getitem__


def signature_value(header: str) -> str:
    return header.split("signature=", 1)[1]


def spec_content(path: str, client_id: str, timestamp: str, body: str) -> bytes:
    """The string to sign, written out from §2.2 rather than taken from the code under test."""
    return f"POST {path}\n{client_id}.{timestamp}.{body}".encode()


def our_verify(public_key, header: str, *, path=PATH, client_id=CLIENT_ID, timestamp=TIMESTAMP, body=BODY):
    return signing.verify(
        public_key,
        path=path,
        client_id=client_id,
        timestamp=timestamp,
        body=body.encode("utf-8"),
        signature_header=header,
    )


def sdk_sign(peer, keys, *, path=PATH, client_id=CLIENT_ID, timestamp=TIMESTAMP, body=BODY) -> str:
    result = peer(
        "ams-sign",
        {
            "path": path,
            "client_id": client_id,
            "timestamp": timestamp,
            "body": body,
            "private_key": keys.private_pkcs1_body,
        },
    )
    return result["header"]


def sdk_verify(peer, keys, header, *, path=PATH, client_id=CLIENT_ID, timestamp=TIMESTAMP, body=BODY):
    return peer(
        "ams-verify",
        {
            "path": path,
            "client_id": client_id,
            "timestamp": timestamp,
            "body": body,
            "signature": signature_value(header),
            "public_key": keys.public_body,
        },
    )


# --- ours signs, the SDK verifies ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", MESSAGES)
def test_our_signature_verifies_with_the_sdk_signature_tool_and_webhook_tool(peer, keys_for, kind):
    owner, path, timestamp, body = MESSAGES[kind]
    keys = keys_for(owner)
    header = signing.sign(
        keys.private_key, path=path, client_id=CLIENT_ID, timestamp=timestamp, body=body.encode("utf-8")
    )
    message = {"path": path, "client_id": CLIENT_ID, "timestamp": timestamp, "body": body}

    verified = peer("ams-verify", {**message, "signature": signature_value(header), "public_key": keys.public_body})
    webhook = peer("ams-check-webhook", {**message, "signature_header": header, "public_key": keys.public_pem})

    assert verified == {"valid": True}
    assert webhook == {"valid": True}


def test_our_signature_is_byte_identical_to_the_sdks(peer, merchant_keys):
    ours = signing.sign(
        merchant_keys.private_key, path=PATH, client_id=CLIENT_ID, timestamp=TIMESTAMP, body=BODY.encode()
    )

    assert sdk_sign(peer, merchant_keys) == ours
    assert ours.startswith("algorithm=RSA256,keyVersion=1,signature=")


def test_the_sdk_rejects_our_signature_over_another_body_or_key(peer, merchant_keys, other_keys):
    """The peer is no rubber stamp: the same call that accepts a good signature refuses a bad one."""
    header = signing.sign(
        merchant_keys.private_key, path=PATH, client_id=CLIENT_ID, timestamp=TIMESTAMP, body=BODY.encode()
    )

    tampered = sdk_verify(peer, merchant_keys, header, body=BODY.replace("10000", "10001"))
    wrong_key = sdk_verify(peer, other_keys, header)

    assert tampered["valid"] is False
    assert tampered["error"].startswith("VerificationError")
    assert wrong_key["valid"] is False
    assert wrong_key["error"].startswith("VerificationError")


# --- the SDK signs, ours verifies ---------------------------------------------------------------------


def with_spaces(header: str) -> str:
    return header.replace(",", ", ")


def lower_escapes(header: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), header)


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda header: header, id="as-the-sdk-sends-it"),
        pytest.param(with_spaces, id="spaces-after-commas"),
        pytest.param(lower_escapes, id="lower-case-percent-escapes"),
        pytest.param(lambda header: lower_escapes(with_spaces(header)), id="both"),
    ],
)
def test_sdk_signature_verifies_with_ours(peer, merchant_keys, spelling):
    header = spelling(sdk_sign(peer, merchant_keys))

    assert our_verify(merchant_keys.public_key, header) is True


def test_the_spellings_really_differ_from_the_sdks(peer, merchant_keys):
    header = sdk_sign(peer, merchant_keys)

    # base64 of a 256-byte signature ends in "==", so the escapes are always there to lower-case.
    assert header.endswith("%3D%3D")
    assert lower_escapes(header).endswith("%3d%3d")
    assert ", keyVersion=1, signature=" in with_spaces(header)


def test_sdk_signed_notification_with_a_non_ascii_body_verifies_with_ours(peer, wallet_keys):
    _, path, timestamp, body = MESSAGES["notification"]
    assert body.encode("utf-8") != body.encode("ascii", "ignore")

    header = sdk_sign(peer, wallet_keys, path=path, timestamp=timestamp, body=body)

    assert our_verify(wallet_keys.public_key, header, path=path, timestamp=timestamp, body=body) is True


def test_unencoded_base64_verifies_with_ours_but_not_with_the_sdk(peer, merchant_keys):
    """Some wallets send the base64 without URL-encoding it; ``unquote`` keeps its '+', ``unquote_plus`` not."""
    for attempt in range(20):
        timestamp = f"2026-11-22T11:22:{attempt:02d}+00:00"
        header = sdk_sign(peer, merchant_keys, timestamp=timestamp)
        raw = urllib.parse.unquote(signature_value(header))
        if "+" in raw:
            break
    else:
        pytest.fail("no signature with a '+' in its base64 in 20 tries")
    unencoded = f"algorithm=RSA256,keyVersion=1,signature={raw}"

    assert our_verify(merchant_keys.public_key, unencoded, timestamp=timestamp) is True
    assert sdk_verify(peer, merchant_keys, unencoded, timestamp=timestamp)["valid"] is False


# --- what our verifier rejects ------------------------------------------------------------------------

# One change each from a message that verifies: the signature must not survive any of them.
CHANGES = {
    "body-one-byte": {"body": BODY.replace('"10000"', '"10001"')},
    "body-one-extra-byte": {"body": BODY + "\n"},
    "wrong-public-key": {},
    "wrong-path": {"path": "/v1/payments/pay"},
    "other-client-id": {"client_id": CLIENT_ID[:-1] + "8"},
    "other-timestamp": {"timestamp": TIMESTAMP.replace(":58", ":59")},
}


@pytest.mark.parametrize("case", CHANGES)
def test_our_verifier_rejects_a_changed_message(peer, merchant_keys, other_keys, case):
    header = sdk_sign(peer, merchant_keys)
    message = {"path": PATH, "client_id": CLIENT_ID, "timestamp": TIMESTAMP, "body": BODY}
    changed = {**message, **CHANGES[case]}
    keys = other_keys if case == "wrong-public-key" else merchant_keys
    assert (changed != message) != (keys is other_keys)
    if case == "body-one-byte":
        assert len(changed["body"]) == len(BODY)

    assert our_verify(merchant_keys.public_key, header, **message) is True
    assert our_verify(keys.public_key, header, **changed) is False
    # ... and the SDK agrees.
    assert sdk_verify(peer, keys, header, **changed)["valid"] is False


@pytest.mark.parametrize("algorithm", [hashes.SHA1, hashes.SHA512], ids=["SHA-1", "SHA-512"])
def test_our_verifier_insists_on_sha256_where_the_sdk_does_not(peer, merchant_keys, algorithm):
    raw = merchant_keys.private_key.sign(
        spec_content(PATH, CLIENT_ID, TIMESTAMP, BODY),
        padding.PKCS1v15(),
        algorithm(),  # a weak hash on purpose: it must be refused
    )
    header = "algorithm=RSA256,keyVersion=1,signature=" + urllib.parse.quote_plus(base64.b64encode(raw).decode())
    sha256 = sdk_sign(peer, merchant_keys)

    # Control: the right content, the right key; only the hash differs from what verifies.
    assert our_verify(merchant_keys.public_key, sha256) is True
    assert our_verify(merchant_keys.public_key, header) is False
    # The difference, on purpose: the SDK verifies with the ``rsa`` package, which takes any hash it knows.
    assert sdk_verify(peer, merchant_keys, header) == {"valid": True}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("algorithm=ECC224,keyVersion=1,signature={value}", id="other-algorithm"),
        pytest.param("algorithm=RSA256,keyVersion=1", id="no-signature"),
        pytest.param("algorithm=RSA256,keyVersion=1,signature=", id="empty-signature"),
        pytest.param("algorithm=RSA256,keyVersion=1,signature={value}%", id="broken-escape"),
        pytest.param("", id="empty-header"),
    ],
)
def test_our_verifier_rejects_malformed_headers(peer, merchant_keys, header):
    value = signature_value(sdk_sign(peer, merchant_keys))

    assert our_verify(merchant_keys.public_key, header.format(value=value)) is False
