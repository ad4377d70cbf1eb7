"""T-SEC-9: secrets at rest — the merchants' wallet signing keys.

No private-key material in a ``pg_dump`` of the database, in anything logged or printed over a full
pay/refund flow at the sandbox, in the admin's pages or in the API's answers; a ciphertext copied to another
merchant's row, or a row moved to another tenant, does not decrypt; and a key rotation re-seals every secret
so that the old key can go.

Key material is looked for as the PEM armour, the base64 of the key's DER (PKCS#8 and PKCS#1, at each byte
alignment, standard and URL-safe), its hex, its raw bytes and the decimal private numbers, in windows of
``WINDOW`` characters: any leaked run of ``2 * WINDOW - 1`` characters or more contains one.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import os
import re
import subprocess
from collections.abc import Iterable

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib import admin
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.callbacks.services import notification_process
from apps.core import crypto
from apps.core.management.commands.rotate_encryption_keys import encrypted_models
from apps.core.tenancy import TenantOwnedModel
from apps.merchants.models import WalletCredential
from apps.merchants.selectors import wallet_client_for
from apps.merchants.services import wallet_credential_create
from apps.payments.models import Order
from apps.sandbox.services import wallet_private_key
from apps.superapps.client import keys
from apps.superapps.models import SuperApp
from tests.conftest import NIGHTLY
from tests.factories import IsvFactory, MerchantFactory
from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant at the sandbox, and the sandbox
from tests.superapps.test_client_against_sandbox import _pay_at_cashier

pytestmark = pytest.mark.reliability

WINDOW = 24
PRIVATE_PEM_MARKER = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
CREDENTIALS = 400 if NIGHTLY else 100


# --- finding key material in text ------------------------------------------------------------------------


def _chunks(text: str) -> Iterable[str]:
    return (text[start : start + WINDOW] for start in range(0, len(text) - WINDOW + 1, WINDOW))


def _written(der: bytes) -> Iterable[str]:
    """The ways bytes could be written down: base64 at each byte alignment (standard and URL-safe), hex, raw."""
    for offset in range(3):
        encoded = base64.b64encode(der[offset:]).decode()
        yield encoded
        yield encoded.translate(str.maketrans("+/", "-_"))
    yield der.hex()
    yield der.hex().upper()
    yield der.decode("latin-1")


def _private_forms(private_key: rsa.RSAPrivateKey) -> Iterable[str]:
    no_password = serialization.NoEncryption()
    for private_format in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        yield from _written(private_key.private_bytes(serialization.Encoding.DER, private_format, no_password))
    numbers = private_key.private_numbers()
    yield from (str(number) for number in (numbers.d, numbers.p, numbers.q))


def _public_forms(private_key: rsa.RSAPrivateKey) -> Iterable[str]:
    """The public half, shown by design: a private key's DER holds its modulus and exponent too."""
    public_key = private_key.public_key()
    for public_format in (serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1):
        yield from _written(public_key.public_bytes(serialization.Encoding.DER, public_format))
    yield str(public_key.public_numbers().n)


class KeyMaterial:
    """The windows of some private keys' secret bytes, and how many of them a text contains.

    A window that also occurs in the public half of a key (the modulus, in every form) is no secret: the
    public key is stored and shown in clear on purpose.
    """

    def __init__(self, private_keys: Iterable[rsa.RSAPrivateKey | str]) -> None:
        distinct = {}
        for key in private_keys:
            loaded_key = keys.load_private_key(key) if isinstance(key, str) else key
            distinct[loaded_key.private_numbers().d] = loaded_key
        loaded = list(distinct.values())
        self.count = len(loaded)
        public = {
            form[start : start + WINDOW]
            for key in loaded
            for form in _public_forms(key)
            for start in range(len(form) - WINDOW + 1)
        }
        secret = {chunk for key in loaded for form in _private_forms(key) for chunk in _chunks(form)}
        self.windows = frozenset(secret - public)

    def hits(self, text: str) -> int:
        windows = self.windows
        found = sum(text[start : start + WINDOW] in windows for start in range(len(text) - WINDOW + 1))
        return found + len(PRIVATE_PEM_MARKER.findall(text))


@functools.cache
def _key_pool(size: int = 10) -> tuple[str, ...]:
    """Distinct private keys to upload: generating one per credential would dominate the run."""
    return tuple(keys.generate_key_pair()[0] for _ in range(size))


def _private_key_of(credential: WalletCredential) -> str:
    return credential.unseal("private_key_ciphertext").decode()


def _credentials(super_app: SuperApp, count: int, *, generated: bool) -> list[WalletCredential]:
    """``count`` merchants across ten ISVs, each with its credential at ``super_app``; keys generated by the
    platform, or uploaded from a pool in which neighbours always differ."""
    isvs = [IsvFactory() for _ in range(10)]
    return [
        wallet_credential_create(
            isv=isvs[number % 10],
            merchant=MerchantFactory(isv=isvs[number % 10]),
            super_app=super_app,
            client_id=f"secrets-{number}",
            private_key_pem=None if generated else _key_pool()[number % len(_key_pool())],
        )
        for number in range(count)
    ]


def _super_app() -> SuperApp:
    return SuperApp.objects.create(
        code="secrets-wallet",
        name="Secrets wallet",
        gateway_base_url="https://wallet.invalid/api",
        wallet_public_key_pem=keys.public_pem_of(keys.load_private_key(_key_pool()[0])),
    )


# --- pg_dump --------------------------------------------------------------------------------------------


def _pg_dump() -> str:
    """A plain-text dump of the test database, as a person with the database password would take it."""
    database = connection.settings_dict
    command = ["pg_dump", "--no-owner", "--no-privileges", "--dbname", database["NAME"]]
    for option, setting in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if database.get(setting):
            command += [option, str(database[setting])]
    environment = {**os.environ, "PGPASSWORD": database.get("PASSWORD") or ""}
    dumped = subprocess.run(command, capture_output=True, check=True, env=environment, timeout=120)  # noqa: S603
    return dumped.stdout.decode("latin-1")  # byte for byte: raw key bytes would show as themselves


@pytest.mark.postgres
def test_a_database_dump_holds_no_private_key(transactional_db, figures):
    credentials = _credentials(_super_app(), CREDENTIALS, generated=True)
    material = KeyMaterial(_private_key_of(credential) for credential in credentials)

    dump = _pg_dump()

    dumped_ciphertexts = sum(credential.private_key_ciphertext in dump for credential in credentials)
    assert dumped_ciphertexts == len(credentials), "the dump is not of the database the credentials are in"
    private_markers = len(PRIVATE_PEM_MARKER.findall(dump))
    public_markers = dump.count("-----BEGIN PUBLIC KEY-----")
    key_windows = material.hits(dump) - private_markers
    assert (private_markers, key_windows) == (0, 0)
    figures.record(
        "T-SEC-9",
        f"pg_dump of {len(credentials)} generated credentials ({len(dump) // 1024} KiB): {private_markers} "
        f"private-key PEM markers, {key_windows} windows of key bodies (base64, hex, raw, numbers); the "
        f"{public_markers} PEM markers there are public keys",
    )


# --- a ciphertext moved to another merchant -------------------------------------------------------------


def _opens_as(credential: WalletCredential) -> str | None:
    """The private key the platform would sign with for this row, or None if it refuses to decrypt."""
    fresh = WalletCredential.objects.unscoped().select_related("super_app").get(pk=credential.pk)
    try:
        return wallet_client_for(credential=fresh).config.private_key_pem
    except crypto.DecryptionError:
        return None


def test_a_private_key_moved_to_another_merchant_does_not_decrypt(db, figures):
    credentials = _credentials(_super_app(), CREDENTIALS, generated=False)
    originals = {credential.pk: _private_key_of(credential) for credential in credentials}
    rows = WalletCredential.objects.unscoped()

    # Merchants' ciphertexts swapped in pairs, as someone with write access to the table could.
    pairs = list(zip(credentials[::2], credentials[1::2], strict=True))
    for first, second in pairs:
        rows.filter(pk=first.pk).update(private_key_ciphertext=second.private_key_ciphertext)
        rows.filter(pk=second.pk).update(private_key_ciphertext=first.private_key_ciphertext)
    swapped = [_opens_as(credential) for credential in credentials]
    swaps_refused = swapped.count(None)
    swaps_opened_foreign = sum(
        key is not None and key != originals[c.pk] for c, key in zip(credentials, swapped, strict=True)
    )

    # Put back, every key opens again; then each row moved, ciphertext and all, to another ISV's merchant.
    for credential in credentials:
        rows.filter(pk=credential.pk).update(private_key_ciphertext=credential.private_key_ciphertext)
    restored = sum(_opens_as(credential) == originals[credential.pk] for credential in credentials)
    for number, credential in enumerate(credentials):
        elsewhere = MerchantFactory(isv=credentials[(number + 1) % len(credentials)].isv)
        rows.filter(pk=credential.pk).update(isv_id=elsewhere.isv_id, merchant_id=elsewhere.pk)
    moves_refused = sum(_opens_as(credential) is None for credential in credentials)

    assert (swaps_refused, swaps_opened_foreign) == (len(credentials), 0)
    assert restored == len(credentials)
    assert moves_refused == len(credentials)
    figures.record(
        "T-SEC-9",
        f"{len(credentials)} swapped ciphertexts, {swaps_refused} refused ({swaps_opened_foreign} opened as "
        f"another merchant's key); {len(credentials)} credentials moved to another tenant, {moves_refused} refused",
    )


# --- key rotation ---------------------------------------------------------------------------------------


def _sealed_values() -> dict[tuple[str, object, str], str]:
    """Every non-empty encrypted value at rest: (model, pk, column) -> ciphertext."""
    values = {}
    for model in encrypted_models():
        rows = model.objects.unscoped() if issubclass(model, TenantOwnedModel) else model._default_manager.all()
        for row in rows.order_by("pk"):
            for field in model.encrypted_fields:
                if getattr(row, field):
                    values[(model._meta.label, row.pk, field)] = row
    return values


def _opened(values: dict) -> dict[tuple, bytes | None]:
    opened = {}
    for (label, pk, field), row in values.items():
        try:
            opened[(label, pk, field)] = row.unseal(field)
        except crypto.DecryptionError:
            opened[(label, pk, field)] = None
    return opened


def _as_row_only_v1(credential: WalletCredential) -> None:
    """Store the credential's key as it was sealed before tenants were in the context (format v1)."""
    plaintext = credential.unseal("private_key_ciphertext")
    token = crypto.encrypt(plaintext, context=credential.encryption_context("private_key_ciphertext"))
    WalletCredential.objects.unscoped().filter(pk=credential.pk).update(
        private_key_ciphertext=token.replace("v2:", "v1:", 1)
    )


def test_rotation_re_seals_every_secret_and_the_old_key_can_go(world, api, settings, figures):
    credentials = _credentials(_super_app(), CREDENTIALS, generated=False)
    for credential in credentials[:10]:
        _as_row_only_v1(credential)
    for number in range(10):  # idempotent answers are kept encrypted too
        answer = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
            "/api/v1/products",
            {"sku": f"rotated-{number}", "name": "Rotated", "price": {"amount": 100, "currency": "USD"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"rotation-{number}",
        )
        assert answer.status_code == 201, answer.content
    before = _opened(_sealed_values())
    legacy = sum(row.private_key_ciphertext.startswith("v1:") for row in WalletCredential.objects.unscoped())
    assert legacy == 10
    assert None not in before.values()

    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys", "--check", stdout=io.StringIO())
    out = io.StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "7", stdout=out)
    resealed = sum(int(value) for value in re.findall(r"\((\d+) value\(s\)\)", out.getvalue()))
    call_command("rotate_encryption_keys", "--check", stdout=io.StringIO())  # raises if anything is left
    again = io.StringIO()
    call_command("rotate_encryption_keys", stdout=again)
    resealed_again = sum(int(value) for value in re.findall(r"\((\d+) value\(s\)\)", again.getvalue()))

    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # the old key is gone
    values = _sealed_values()
    after = _opened(values)
    prefix = crypto.current_prefix()
    under_old = sum(not getattr(row, field).startswith(prefix) for (_, _, field), row in values.items())
    still_open = sum(after[where] is not None and after[where] == before[where] for where in before)

    assert after.keys() == before.keys()
    assert (resealed, resealed_again, under_old) == (len(before), 0, 0)
    assert still_open == len(before)
    assert "PRIVATE KEY" in _opens_as(credentials[0])  # as the payment path opens it
    figures.record(
        "T-SEC-9",
        f"rotation re-sealed {resealed} values ({legacy} of them v1, now bound to their tenant) in batches of 7, "
        f"{still_open}/{len(before)} open under the new key alone, {under_old} left under the old key; "
        f"a second run re-sealed {resealed_again}",
    )


# --- a full flow: logs, printed output, admin pages and API answers -----------------------------------------


@pytest.fixture
def every_log_record():
    """Every record of every logger at DEBUG, loggers that do not propagate included, kept as objects."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    loggers = [root, *(item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger))]
    saved = {logger: (logger.level, logger.disabled) for logger in loggers}
    disabled_below = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is root or not logger.propagate:
            logger.addHandler(handler)
    yield kept
    for logger, (level, disabled) in saved.items():
        logger.setLevel(level)
        logger.disabled = disabled
        logger.removeHandler(handler)
    logging.disable(disabled_below)


def _record_text(record: logging.LogRecord) -> str:
    """All a record carries that a handler could write: message, traceback, stack and extra attributes."""
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{text}\n{record.__dict__!r}"


def _merchant_admin_pages(merchant, credential: WalletCredential, order: Order) -> list[str]:
    """The admin as it shows one merchant: the index, every changelist (and a search for the credential),
    and the change page of up to three of the merchant's rows of every tenant-owned model; the credential's
    history and delete pages; the order's refund page."""
    pages = [reverse("admin:index")]
    for model in admin.site._registry:
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        pages.append(reverse(f"admin:{info}_changelist"))
        if issubclass(model, TenantOwnedModel) and model.tenant_fields.merchant:
            mine = model.objects.unscoped().filter(**{model.tenant_fields.merchant: merchant.pk}).order_by("pk")
            pages += [reverse(f"admin:{info}_change", args=[row.pk]) for row in mine[:3]]
    pages.append(f"{reverse('admin:merchants_walletcredential_changelist')}?q={credential.client_id}")
    for page in ("history", "delete"):
        pages.append(reverse(f"admin:merchants_walletcredential_{page}", args=[credential.pk]))
    pages.append(reverse("admin:payments_order_refund", args=[order.pk]))
    return pages


class Api:
    """The API client of the flow, keeping every answer to look through."""

    def __init__(self, client) -> None:
        self.client = client
        self.answers: list[str] = []

    def __call__(self, method: str, path: str, key: str, merchant=None, **body):
        client = self.client.as_key(key, merchant=merchant)
        response = client.get(path) if method == "get" else client.post(path, body, format="json")
        self.answers.append(response.content.decode())
        return response


def _pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_a_full_flow_leaves_no_key_bytes_in_logs_output_admin_pages_or_api_answers(
    transactional_db, every_log_record, capfd, request, world, api, figures
):
    # Set up under the log capture (its key is generated there); committed, for the live server's threads.
    mini_program = request.getfixturevalue("shop")
    merchant, merchant_key, isv_key = mini_program.merchant, world.a.merchants[0].key, world.a.key
    call = Api(api)

    # Credentials by API: one generated for merchant A2, one uploaded as the ISV's default, one refused.
    uploaded = keys.generate_key_pair()[0]
    too_short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - to be refused
    second = world.a.merchants[1].merchant
    path = "/api/v1/wallet-credentials"
    assert call("post", path, isv_key, second, super_app="sandbox", client_id="a2-generated").status_code == 201
    assert (
        call("post", path, isv_key, super_app="sandbox", client_id="a-up", private_key_pem=uploaded).status_code == 201
    )
    refused = call("post", path, isv_key, super_app="sandbox", client_id="a-short", private_key_pem=_pem(too_short))
    assert refused.json()["error"]["code"] == "merchants.invalid_private_key"

    # An order paid at the sandbox's cashier, the wallet's notification processed, refunded in two parts.
    body = {"mini_program": mini_program.app_id, "amount": 1250, "currency": "USD", "description": "Flat white"}
    created = call("post", "/api/v1/orders", merchant_key, **body)
    assert created.status_code == 201, created.content
    order_id = created.json()["id"]
    _pay_at_cashier(created.json()["trade_pay"]["paymentUrl"])
    for notification in InboundNotification.objects.unscoped().filter(status=NotificationStatus.RECEIVED):
        notification_process(notification_id=notification.pk)
    assert call("get", f"/api/v1/orders/{order_id}?refresh=true", merchant_key).json()["status"] == "paid"
    refunds = f"/api/v1/orders/{order_id}/refunds"
    assert call("post", refunds, merchant_key, amount=400).status_code == 201
    assert call("post", refunds, merchant_key).json()["status"] == "succeeded"
    for path in ("/api/v1/merchant", f"/api/v1/orders/{order_id}", refunds, "/api/v1/orders", "/api/v1/mini-programs"):
        assert call("get", path, merchant_key).status_code == 200
    for path in ("/api/v1/merchants", "/api/v1/wallet-credentials", "/api/v1/super-apps"):
        assert call("get", path, isv_key).status_code == 200
    assert call("get", "/api/v1/wallet-credentials", isv_key, second).status_code == 200

    # The admin's pages of the merchant, as the operator and as the merchant's owner.
    credential = WalletCredential.objects.unscoped().get(merchant=merchant, super_app=mini_program.super_app)
    pages = _merchant_admin_pages(merchant, credential, Order.objects.unscoped().get(public_id=order_id))
    html, shown = [], 0
    for user in (world.operator, world.a.merchants[0].staff):
        browser = Client(raise_request_exception=False)
        browser.force_login(user)
        for page in pages:
            response = browser.get(page)
            shown += response.status_code == 200
            html.append(response.content.decode())
    assert shown > len(pages)  # the operator sees them all, the owner the merchant's own
    public_key_line = credential.public_key_pem.splitlines()[1]
    assert any(public_key_line in page for page in html), "the credential's page was not among them"

    written = capfd.readouterr()
    every_key = [_private_key_of(row) for row in WalletCredential.objects.unscoped()]  # the world's, the flow's
    material = KeyMaterial([*every_key, uploaded, too_short, wallet_private_key()])
    in_logs = sum(material.hits(_record_text(record)) for record in every_log_record)
    in_output = material.hits(written.out) + material.hits(written.err)
    in_pages = sum(material.hits(page) for page in html)
    in_answers = sum(material.hits(answer) for answer in call.answers)

    assert len(every_log_record) > 20, "the flow logged nothing: is the capture working?"
    assert (in_logs, in_output, in_pages, in_answers) == (0, 0, 0, 0)
    figures.record(
        "T-SEC-9",
        f"full flow: 0 bytes of {material.count} private keys in {len(every_log_record)} log records at DEBUG, "
        f"{len(written.out) + len(written.err)} characters printed, {shown} admin pages shown ({len(pages)} URLs "
        f"as operator and as merchant owner), {len(call.answers)} API answers",
    )
