import pytest
from cryptography.fernet import Fernet

from apps.core import crypto


def test_round_trip_bound_to_its_context():
    token = crypto.encrypt(b"secret key", context="row:1")
    assert b"secret key" not in token.encode()
    assert crypto.decrypt(token, context="row:1") == b"secret key"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, context="row:2")


def test_tampering_is_detected():
    token = crypto.encrypt(b"secret key", context="row:1")
    version, key_id, payload = token.split(":")
    tampered = f"{version}:{key_id}:{payload[:-4]}{'AAAA' if payload[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered, context="row:1")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt("garbage", context="row:1")


def test_rotation_keeps_old_ciphertexts_readable(settings):
    old = crypto.encrypt(b"v", context="c")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    assert crypto.needs_rotation(old)
    assert crypto.decrypt(old, context="c") == b"v"
    new = crypto.encrypt(b"v", context="c")
    assert not crypto.needs_rotation(new)
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(old, context="c")
