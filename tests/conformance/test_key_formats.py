"""Keys move between the platform and the SDKs in the forms each takes (§2.6), and the peers are the pinned ones."""

from __future__ import annotations

from pathlib import Path

from apps.superapps.client import signing
from apps.superapps.client.keys import load_private_key, load_public_key
from tests.conformance.conftest import pem_body

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
CONTENT = {"path": "/v2/payments/pay", "client_id": "2022070614185300034567", "timestamp": "2026-11-22T11:22:58Z"}


def test_the_peers_are_the_pinned_sdk_versions(peer):
    pins = dict(
        line.split("==") for line in REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")
    )

    assert peer("versions", {"packages": sorted(pins)}) == pins
    assert pins == {"global-open-sdk-python": "1.7.1", "python-alipay-sdk": "3.4.0"}


def test_the_sdk_signs_with_the_bare_body_of_a_key_we_generated(peer, merchant_keys):
    """Our PKCS#8 body, which the SDK wraps in PKCS#1 armour, still signs the same bytes."""
    body = b"{}"
    ours = signing.sign(merchant_keys.private_key, body=body, **CONTENT)

    sdk = peer("ams-sign", {**CONTENT, "body": body.decode(), "private_key": pem_body(merchant_keys.private_pem)})

    assert sdk["header"] == ours


def test_we_load_the_sdk_public_key_and_pkcs1_pem_private_key(merchant_keys):
    assert load_public_key(merchant_keys.public_body).public_numbers() == merchant_keys.public_key.public_numbers()
    assert (
        load_private_key(merchant_keys.private_pkcs1_pem).private_numbers()
        == merchant_keys.private_key.private_numbers()
    )


def test_we_load_the_bare_pkcs1_private_key_body_the_sdk_is_configured_with(merchant_keys):
    loaded = load_private_key(merchant_keys.private_pkcs1_body)

    assert loaded.private_numbers() == merchant_keys.private_key.private_numbers()
