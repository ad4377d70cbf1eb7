import pytest
from django.db import connection

from apps.core import crypto
from apps.core.errors import ApplicationError, ConflictError
from apps.merchants.models import WalletCredential
from apps.merchants.selectors import wallet_client_for, wallet_credential_for
from apps.merchants.services import wallet_credential_create
from apps.superapps.client import keys
from apps.superapps.models import SuperApp


@pytest.fixture
def super_app(db):
    _, public_pem = keys.generate_key_pair()
    return SuperApp.objects.create(
        code="wallet", name="Wallet", gateway_base_url="https://wallet.example/api", wallet_public_key_pem=public_pem
    )


def _raw_column_values() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_ciphertext, public_key_pem FROM merchants_walletcredential")
        return [value for row in cursor.fetchall() for value in row]


def test_the_database_never_holds_the_private_key_in_clear(world, super_app):
    private_pem, _ = keys.generate_key_pair()
    merchant = world.a.merchants[0].merchant
    wallet_credential_create(
        isv=merchant.isv, merchant=merchant, super_app=super_app, client_id="c1", private_key_pem=private_pem
    )
    body = "".join(private_pem.splitlines()[1:-1])
    assert not any(body[:40] in value or "PRIVATE KEY" in value for value in _raw_column_values())


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(world, super_app):
    first = wallet_credential_create(
        isv=world.a.isv, merchant=world.a.merchants[0].merchant, super_app=super_app, client_id="c1"
    )
    second = wallet_credential_create(
        isv=world.b.isv, merchant=world.b.merchants[0].merchant, super_app=super_app, client_id="c2"
    )
    WalletCredential.objects.unscoped().filter(pk=second.pk).update(private_key_ciphertext=first.private_key_ciphertext)
    second.refresh_from_db()
    with pytest.raises(crypto.DecryptionError):
        wallet_client_for(credential=second)


def test_merchant_credentials_win_over_the_isv_default(world, super_app):
    merchant = world.a.merchants[0].merchant
    shared = wallet_credential_create(isv=world.a.isv, super_app=super_app, client_id="isv-a")
    assert wallet_credential_for(merchant=merchant, super_app=super_app) == shared
    own = wallet_credential_create(isv=world.a.isv, merchant=merchant, super_app=super_app, client_id="mer-a1")
    assert wallet_credential_for(merchant=merchant, super_app=super_app) == own
    assert wallet_credential_for(merchant=world.a.merchants[1].merchant, super_app=super_app) == shared


def test_no_credentials_is_a_clear_error(world, super_app):
    with pytest.raises(ApplicationError) as error:
        wallet_credential_for(merchant=world.b.merchants[0].merchant, super_app=super_app)
    assert error.value.code == "merchants.no_wallet_credential"


def test_duplicates_and_bad_keys_are_refused(world, super_app):
    merchant = world.a.merchants[0].merchant
    wallet_credential_create(isv=world.a.isv, merchant=merchant, super_app=super_app, client_id="c1")
    with pytest.raises(ConflictError):
        wallet_credential_create(isv=world.a.isv, merchant=merchant, super_app=super_app, client_id="c9")
    with pytest.raises(ConflictError):
        wallet_credential_create(isv=world.b.isv, super_app=super_app, client_id="c1")
    with pytest.raises(ApplicationError) as error:
        wallet_credential_create(isv=world.b.isv, super_app=super_app, client_id="c3", private_key_pem="nope")
    assert error.value.code == "merchants.invalid_private_key"
    with pytest.raises(ApplicationError):
        wallet_credential_create(isv=world.b.isv, merchant=merchant, super_app=super_app, client_id="c4")


def test_a_classic_app_id_names_one_tenant_at_a_super_app(world, super_app):
    """A classic notification names only its app_id: another tenant may not claim the same one."""
    wallet_credential_create(
        isv=world.a.isv, merchant=world.a.merchants[0].merchant, super_app=super_app, client_id="a", classic_app_id="x1"
    )
    with pytest.raises(ConflictError) as error:
        wallet_credential_create(isv=world.b.isv, super_app=super_app, client_id="b", classic_app_id="x1")
    assert error.value.code == "merchants.credential_exists"
    wallet_credential_create(isv=world.b.isv, super_app=super_app, client_id="b")  # without one: fine


def test_key_rotation_re_encrypts_everything_and_leaves_it_usable(world, super_app, settings):
    import io

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "merchants.WalletCredential: 6 row(s) re-encrypted" in out.getvalue()

    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # the old key is gone
    for credential in WalletCredential.objects.unscoped():
        assert not crypto.needs_rotation(credential.private_key_ciphertext)
        client = wallet_client_for(credential=credential)
        assert "PRIVATE KEY" in client.config.private_key_pem

    again = io.StringIO()
    call_command("rotate_encryption_keys", stdout=again)
    assert "merchants.WalletCredential: 0 row(s) re-encrypted" in again.getvalue()
