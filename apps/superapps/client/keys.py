"""RSA keys as the super apps exchange them: PEM, or the bare base64 body of one.

Parsing a private key costs ~60 ms, so loaded keys are cached per process by their PEM.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _armoured(text: str, kind: str) -> bytes:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    body = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


@functools.lru_cache(maxsize=256)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """A private key from PKCS#8 or PKCS#1 PEM, or the bare base64 body of either (the official SDKs and
    ``openssl genrsa`` hand out bare PKCS#1)."""
    try:
        key = serialization.load_pem_private_key(_armoured(pem, "PRIVATE KEY"), password=None)
    except ValueError:
        key = serialization.load_pem_private_key(_armoured(pem, "RSA PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported")
    return key


@functools.lru_cache(maxsize=256)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """A public key from SubjectPublicKeyInfo PEM, or its bare base64 body."""
    key = serialization.load_pem_public_key(_armoured(pem, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("only RSA keys are supported")
    return key


def generate_key_pair() -> tuple[str, str]:
    """A new RSA-2048 pair as (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_pem, public_pem_of(key)


def public_pem_of(private_key: rsa.RSAPrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
