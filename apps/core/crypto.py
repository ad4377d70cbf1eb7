"""Encryption of secrets at rest (wallet private keys, access tokens).

AES-256-GCM with keys from ``FIELD_ENCRYPTION_KEYS`` (the first encrypts, all decrypt, so keys rotate by
prepending a new one, running ``manage.py rotate_encryption_keys`` and then removing the old one). Each
ciphertext is bound to a ``context`` through the GCM associated data: for a model column, the row, the column
and the row's tenant. A ciphertext copied to another row, or a row moved to another tenant, fails to decrypt.

A ciphertext names its format and key: ``v2:<key id>:<nonce + sealed, base64>``. ``v1`` ciphertexts were
sealed to the row and column only; they still decrypt, under that context, until the rotation command
re-seals them as ``v2``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

_VERSION = "v2"
_ROW_ONLY_VERSION = "v1"


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


def current_prefix() -> str:
    """How every ciphertext sealed now begins: format and key id. Anything else needs re-sealing."""
    return f"{_VERSION}:{_configured_keys()[0][0]}:"


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
    if version not in (_VERSION, _ROW_ONLY_VERSION) or aead is None:
        raise DecryptionError("ciphertext from an unknown key")
    try:
        return aead.decrypt(raw[:12], raw[12:], context.encode())
    except InvalidTag:
        raise DecryptionError("ciphertext does not belong here or was altered") from None


def needs_rotation(token: str) -> bool:
    """Whether ``token`` was sealed in an older format or with a key other than the current first one."""
    return not token.startswith(current_prefix())


class EncryptedFields:
    """Model mixin: the columns listed in ``encrypted_fields`` hold ciphertexts sealed to the row, the column
    and the row's tenant, and ``manage.py rotate_encryption_keys`` finds them by this mixin."""

    encrypted_fields: tuple[str, ...] = ()

    def encryption_context(self, field: str) -> str:
        """The row and column a ciphertext belongs to (models without a ``public_id`` override this)."""
        return f"{self._meta.label_lower}:{self.public_id}:{field}"

    def _tenant_context(self) -> str:
        # Duck-typed rather than imported: tenancy's TenantFields name the columns carrying the tenant.
        tenant_fields = getattr(type(self), "tenant_fields", None)
        if tenant_fields is None:
            return ""
        merchant = getattr(self, tenant_fields.merchant) if tenant_fields.merchant else None
        return f"|isv={getattr(self, tenant_fields.isv)}|merchant={merchant if merchant is not None else '-'}"

    def _sealing_context(self, field: str, version: str = _VERSION) -> str:
        if version == _ROW_ONLY_VERSION:
            return self.encryption_context(field)
        return f"{self.encryption_context(field)}{self._tenant_context()}"

    def seal(self, field: str, plaintext: bytes) -> None:
        setattr(self, field, encrypt(plaintext, context=self._sealing_context(field)))

    def unseal(self, field: str) -> bytes:
        token = getattr(self, field)
        return decrypt(token, context=self._sealing_context(field, version=token.partition(":")[0]))
