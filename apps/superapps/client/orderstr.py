"""The classic gateway's ``orderStr`` for ``my.tradePay({orderStr})`` and its async notifications (§8).

Signed text: every parameter except ``sign`` (``sign_type`` included), empty values dropped, sorted by
key in ASCII order, ``key=value`` joined by ``&`` with raw values; RSA2 = SHA256withRSA, base64. The
orderStr itself is the same pairs with URL-encoded values and ``&sign=…`` appended. Notifications are
verified over every parameter except ``sign`` and ``sign_type``, empty values kept.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGN_TYPE = "RSA2"


def _signed_text(params: dict[str, str], *, exclude: tuple[str, ...], keep_empty: bool = False) -> bytes:
    pairs = sorted((key, value) for key, value in params.items() if key not in exclude and (keep_empty or value != ""))
    return "&".join(f"{key}={value}" for key, value in pairs).encode("utf-8")


def build_order_str(private_key: rsa.RSAPrivateKey, params: dict[str, str]) -> str:
    """Sign ``params`` (which must carry ``sign_type=RSA2``) and render them as an orderStr."""
    if params.get("sign_type") != SIGN_TYPE:
        raise ValueError("orderStr parameters must include sign_type=RSA2")
    signature = base64.b64encode(
        private_key.sign(_signed_text(params, exclude=("sign",)), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    pairs = sorted((key, value) for key, value in params.items() if value != "")
    return urllib.parse.urlencode([*pairs, ("sign", signature)])


def verify_rsa2(public_key: rsa.RSAPublicKey, text: bytes, signature: str) -> bool:
    """A base64 SHA256withRSA signature of ``text``: what orderStrs, notifications and gateway answers carry."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), text, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_order_str(public_key: rsa.RSAPublicKey, order_str: str) -> bool:
    params = dict(urllib.parse.parse_qsl(order_str, keep_blank_values=True))
    signature = params.pop("sign", "")
    if params.get("sign_type") != SIGN_TYPE:
        return False
    return verify_rsa2(public_key, _signed_text(params, exclude=()), signature)


def verify_notification(public_key: rsa.RSAPublicKey, params: dict[str, str]) -> bool:
    """Verify a classic async notification (form fields, already URL-decoded). RSA2 only."""
    if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        return False
    text = _signed_text(params, exclude=("sign", "sign_type"), keep_empty=True)
    return verify_rsa2(public_key, text, params.get("sign", ""))
