"""Encryption of secrets at rest (wallet private keys, access tokens).

AES-256-GCM with keys from ``FIELD_ENCRYPTION_KEYS`` (the first encrypts, all decrypt, so keys rotate by
prepending a new one and re-encrypting). Each ciphertext is bound to a ``context`` — the owning row and
column — through the GCM associated data: a ciphertext copied to another row fails to decrypt.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

_VERSION = "v1"


class DecryptionError(Exception):
    """Wrong key, wrong context or tampered ciphertext. Never carries the plaintext or the key."""


@functools.lru_cache(maxsize=8)
def _keys(configured: tuple[str, ...]) -> list[tuple[str, AESGCM]]:
    keys = []
    for encoded in configured:
        raw = base64.urlsafe_b64decode(encoded.encode())
        if len(raw) != 32:
            raise ValueError("FIELD_ENCRYPTION_KEYS entries must be 32-byte url-safe base64 keys")
        keys.append((hashlib.sha256(raw).hexdigest()[:8], AESGCM(raw)))
    return keys


def _configured_keys() -> list[tuple[str, AESGCM]]:
    return _keys(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: bytes, *, context: str) -> str:
    key_id, aead = _configured_keys()[0]
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext, context.encode())
    return f"{_VERSION}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(token: str, *, context: str) -> bytes:
    try:
        version, key_id, payload = token.split(":", 2)
        raw = base64.urlsafe_b64decode(payload.encode())
    except (ValueError, TypeError):
        raise DecryptionError("malformed ciphertext") from None
    aead = dict(_configured_keys()).get(key_id)
    if version != _VERSION or aead is None:
        raise DecryptionError("ciphertext from an unknown key")
    try:
        return aead.decrypt(raw[:12], raw[12:], context.encode())
    except InvalidTag:
        raise DecryptionError("ciphertext does not belong here or was altered") from None


def needs_rotation(token: str) -> bool:
    """Whether ``token`` was sealed with a key other than the current first one."""
    return token.split(":", 2)[1:2] != [_configured_keys()[0][0]]


class EncryptedFields:
    """Model mixin: the columns listed in ``encrypted_fields`` hold ciphertexts sealed to the row and column,
    and ``manage.py rotate_encryption_keys`` finds them by this mixin."""

    encrypted_fields: tuple[str, ...] = ()

    def encryption_context(self, field: str) -> str:
        return f"{self._meta.label_lower}:{self.public_id}:{field}"

    def seal(self, field: str, plaintext: bytes) -> None:
        setattr(self, field, encrypt(plaintext, context=self.encryption_context(field)))

    def unseal(self, field: str) -> bytes:
        return decrypt(getattr(self, field), context=self.encryption_context(field))
