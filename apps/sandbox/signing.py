"""The wallet's signatures: RSA-2048, PKCS#1 v1.5, SHA-256 (protocol §2 and, for ``orderStr``, §8).

Written against ``cryptography`` alone because the sandbox shares only the wire protocol with the platform.
"""

from __future__ import annotations

import base64
import binascii
import functools
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RSA256"


def content_to_sign(method: str, path: str, client_id: str, timestamp: str, body: bytes) -> bytes:
    """``<METHOD> <path>\\n<client id>.<time>.<body>`` over the raw body bytes, never a re-serialised dict."""
    return f"{method} {path}\n{client_id}.{timestamp}.".encode() + body


def signature_header(
    private_key: rsa.RSAPrivateKey,
    *,
    method: str,
    path: str,
    client_id: str,
    timestamp: str,
    body: bytes,
    key_version: int,
) -> str:
    raw = private_key.sign(
        content_to_sign(method, path, client_id, timestamp, body), padding.PKCS1v15(), hashes.SHA256()
    )
    encoded = urllib.parse.quote_plus(base64.b64encode(raw).decode("ascii"))
    return f"algorithm={ALGORITHM},keyVersion={key_version},signature={encoded}"


def parse_signature_header(value: str) -> dict[str, str]:
    """``algorithm=RSA256, keyVersion=1, signature=…``: spaces after commas are optional; keys fold case."""
    fields = {}
    for part in value.split(","):
        key, _, field_value = part.strip().partition("=")
        fields[key.strip().lower()] = field_value.strip()
    return fields


def verify_signature_header(
    public_key: rsa.RSAPublicKey,
    *,
    method: str,
    path: str,
    client_id: str,
    timestamp: str,
    body: bytes,
    header: str,
) -> bool:
    """SHA-256 only; the value is URL-decoded with ``unquote`` so ``%2f`` and a bare ``+`` both work."""
    fields = parse_signature_header(header)
    if fields.get("algorithm", ALGORITHM).upper() != ALGORITHM or not fields.get("signature"):
        return False
    try:
        raw = base64.b64decode(urllib.parse.unquote(fields["signature"]), validate=True)
    except (binascii.Error, ValueError):
        return False
    return _verify(public_key, raw, content_to_sign(method, path, client_id, timestamp, body))


def corrupt(header: str) -> str:
    """The same header with a signature that parses but never verifies (the ``bad_signature`` fault)."""
    prefix, _, encoded = header.rpartition("signature=")
    return prefix + "signature=" + urllib.parse.quote_plus(corrupt_base64(urllib.parse.unquote(encoded)))


def corrupt_base64(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[len(raw) // 2] ^= 0xFF
    return base64.b64encode(bytes(raw)).decode("ascii")


def classic_sign_text(params: dict[str, str], *, exclude: tuple[str, ...]) -> str:
    """Sorted ``k=v`` pairs joined by ``&`` with raw values, empty values dropped (§8.2, §8.4)."""
    return "&".join(f"{key}={value}" for key, value in sorted(params.items()) if key not in exclude and value)


def classic_verify(public_key: rsa.RSAPublicKey, params: dict[str, str]) -> bool:
    """An ``orderStr`` is signed over every parameter but ``sign`` (``sign_type`` included)."""
    try:
        raw = base64.b64decode(params.get("sign", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return _verify(public_key, raw, classic_sign_text(params, exclude=("sign",)).encode())


def classic_sign(private_key: rsa.RSAPrivateKey, params: dict[str, str]) -> str:
    """An async notification is signed over every parameter but ``sign`` and ``sign_type``."""
    return rsa2_sign(private_key, classic_sign_text(params, exclude=("sign", "sign_type")))


def rsa2_sign(private_key: rsa.RSAPrivateKey, text: str) -> str:
    """RSA2 (SHA256withRSA) over the UTF-8 text, base64: a notification's pairs or a gateway answer's JSON."""
    return base64.b64encode(private_key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@functools.lru_cache(maxsize=256)
def load_public_key(text: str) -> rsa.RSAPublicKey:
    """A PEM public key, or the bare base64 SubjectPublicKeyInfo body wallets exchange (§2.6)."""
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        text = f"-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----\n"
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValueError("expected an RSA public key of at least 2048 bits")
    return key


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _verify(public_key: rsa.RSAPublicKey, raw: bytes, content: bytes) -> bool:
    try:
        public_key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
