"""The super app's message signature (protocol §2): RSA-SHA256 over method, path, client id, time and body.

    Signature: algorithm=RSA256,keyVersion=1,signature=<url-encoded base64>
    signed text: "<METHOD> <path>\\n<Client-Id>.<Request-Time or Response-Time>.<raw body bytes>"

Requests, responses and notifications all use it. Verification is over the raw bytes as received, accepts
spaces after commas and lower-case percent escapes, and insists on SHA-256 (the official SDK's verifier
also accepts SHA-1 and SHA-512; ours must not).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RSA256"


def content_to_sign(*, method: str, path: str, client_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{method} {path}\n{client_id}.{timestamp}.".encode() + body


def sign(
    private_key: rsa.RSAPrivateKey,
    *,
    path: str,
    client_id: str,
    timestamp: str,
    body: bytes,
    key_version: str = "1",
    method: str = "POST",
) -> str:
    """The ``Signature`` header value for a message."""
    raw = private_key.sign(
        content_to_sign(method=method, path=path, client_id=client_id, timestamp=timestamp, body=body),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    value = urllib.parse.quote_plus(base64.b64encode(raw).decode("ascii"))
    return f"algorithm={ALGORITHM},keyVersion={key_version},signature={value}"


def parse_signature_header(header: str) -> dict[str, str]:
    """``algorithm=RSA256, keyVersion=1, signature=…`` as a dict with lower-case keys."""
    fields = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields[key.strip().lower()] = value.strip()
    return fields


def verify(
    public_key: rsa.RSAPublicKey,
    *,
    path: str,
    client_id: str,
    timestamp: str,
    body: bytes,
    signature_header: str,
    method: str = "POST",
) -> bool:
    """Whether ``signature_header`` is a valid RSA-SHA256 signature of the message."""
    fields = parse_signature_header(signature_header or "")
    if fields.get("algorithm", ALGORITHM).upper() != ALGORITHM or not fields.get("signature"):
        return False
    try:
        # unquote, not unquote_plus: a raw base64 '+' must survive, and %2b/%2B both decode.
        raw = base64.b64decode(urllib.parse.unquote(fields["signature"]), validate=True)
        public_key.verify(
            raw,
            content_to_sign(method=method, path=path, client_id=client_id, timestamp=timestamp, body=body),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def now_timestamp() -> str:
    """``Request-Time`` / ``Response-Time``: ISO 8601 with offset, millisecond precision."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
