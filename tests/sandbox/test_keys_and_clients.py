import io
import threading

import pytest
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.db import connections

from apps.sandbox import services
from apps.sandbox.models import SandboxClient, WalletKey
from tests.sandbox.conftest import CLIENT_ID, public_pem


def test_wallet_key_is_made_once_and_stored_encrypted(db, settings):
    key = services.wallet_key()
    assert services.wallet_key().pk == key.pk
    assert WalletKey.objects.count() == 1
    assert "PRIVATE KEY" not in key.private_key_encrypted
    decrypted = MultiFernet([Fernet(k) for k in settings.FIELD_ENCRYPTION_KEYS]).decrypt(
        key.private_key_encrypted.encode()
    )
    private_key = serialization.load_pem_private_key(decrypted, password=None)
    assert private_key.key_size == 2048
    assert public_pem(private_key) == key.public_key_pem


def test_wallet_key_still_decrypts_after_the_encryption_key_is_rotated(db, settings):
    services.wallet_key()
    services._decrypt_private_key.cache_clear()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    assert services.wallet_private_key().key_size == 2048


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_yields_one_wallet_key():
    barrier = threading.Barrier(4)
    seen = []

    def first_use():
        barrier.wait()
        try:
            seen.append(services.wallet_key().public_key_pem)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert WalletKey.objects.count() == 1
    assert set(seen) == {WalletKey.objects.get().public_key_pem}


def test_public_key_endpoint_serves_the_pem(live_server, db):
    import httpx

    response = httpx.get(live_server.url + "/sandbox/public-key")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == services.wallet_key().public_key_pem
    assert response.text.startswith("-----BEGIN PUBLIC KEY-----")


def test_public_key_command_prints_the_pem(db):
    out = io.StringIO()
    call_command("sandbox_public_key", stdout=out)
    assert out.getvalue() == services.wallet_key().public_key_pem


def test_register_command_creates_then_updates(db, tmp_path, merchant_key):
    key_file = tmp_path / "merchant.pem"
    key_file.write_text(public_pem(merchant_key))
    out = io.StringIO()
    call_command(
        "sandbox_client_register",
        "--client-id",
        CLIENT_ID,
        "--public-key-file",
        str(key_file),
        "--name",
        "Demo Coffee",
        "--partner-id",
        "P1",
        "--classic-app-id",
        "2021",
        "--site-name",
        "GCASH",
        "--faults",
        '{"latency": 10, "result_u": true}',
        stdout=out,
    )
    assert "Registered" in out.getvalue()
    call_command("sandbox_client_register", "--client-id", CLIENT_ID, "--public-key-file", str(key_file), stdout=out)
    assert "Updated" in out.getvalue()
    client = SandboxClient.objects.get(client_id=CLIENT_ID)
    assert (client.name, client.partner_id, client.classic_app_id, client.site_name, client.key_version) == (
        "Demo Coffee",
        "P1",
        "2021",
        "GCASH",
        1,
    )
    assert client.faults == {"latency": 10, "result_u": True}


def test_register_command_reads_a_bare_base64_key_from_stdin(db, merchant_key, monkeypatch):
    body = "".join(line for line in public_pem(merchant_key).splitlines() if not line.startswith("-----"))
    monkeypatch.setattr("sys.stdin", io.StringIO(body))
    call_command("sandbox_client_register", "--client-id", "C2", "--public-key-file", "-", stdout=io.StringIO())
    client = SandboxClient.objects.get(client_id="C2")
    assert client.public_key_pem == public_pem(merchant_key)
    assert client.name == "C2"


@pytest.mark.parametrize(
    ("key_text", "faults"),
    [("not a key", None), (None, '{"no_such_fault": true}'), (None, '{"latency": -1}'), (None, "[1]")],
)
def test_register_command_refuses_bad_input(db, tmp_path, merchant_key, key_text, faults):
    key_file = tmp_path / "key.pem"
    key_file.write_text(key_text or public_pem(merchant_key))
    arguments = ["--client-id", "C3", "--public-key-file", str(key_file)]
    if faults:
        arguments += ["--faults", faults]
    with pytest.raises(CommandError):
        call_command("sandbox_client_register", *arguments, stdout=io.StringIO())
    assert not SandboxClient.objects.filter(client_id="C3").exists()
