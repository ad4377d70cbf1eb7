"""Writes for ISVs and merchants."""

from django.db import IntegrityError, transaction

from apps.core import crypto
from apps.core.errors import ApplicationError, ConflictError
from apps.superapps.client import keys
from apps.superapps.models import SuperApp

from .models import Isv, Merchant, WalletCredential


def isv_create(*, name: str) -> Isv:
    """Register an ISV (platform operators only). Names are unique platform-wide."""
    try:
        with transaction.atomic():
            return Isv.objects.create(name=name)
    except IntegrityError:
        raise ConflictError("merchants.isv_name_taken", f"An ISV named {name!r} exists already.", attr="name") from None


def merchant_create(*, isv: Isv, name: str) -> Merchant:
    """Onboard a merchant under ``isv``. Names are unique within the ISV."""
    try:
        with transaction.atomic():
            return Merchant.objects.create(isv=isv, name=name)
    except IntegrityError:
        raise ConflictError(
            "merchants.merchant_name_taken", f"This ISV already has a merchant named {name!r}.", attr="name"
        ) from None


def wallet_credential_create(
    *,
    isv: Isv,
    merchant: Merchant | None = None,
    super_app: SuperApp,
    client_id: str,
    partner_id: str = "",
    key_version: str = "1",
    private_key_pem: str | None = None,
) -> WalletCredential:
    """Credentials of ``isv`` (default for its merchants) or of ``merchant`` at ``super_app``.

    Without ``private_key_pem`` a new RSA-2048 pair is generated; either way only the public key is kept in
    clear. Raises ``merchants.credential_exists`` when the owner has one for this super app already and
    ``merchants.invalid_private_key`` for a key that does not parse.
    """
    if private_key_pem is None:
        private_key_pem, public_key_pem = keys.generate_key_pair()
    else:
        try:
            public_key_pem = keys.public_pem_of(keys.load_private_key(private_key_pem))
        except ValueError:
            raise ApplicationError(
                "merchants.invalid_private_key",
                "The private key is not an RSA key in PEM.",
                attr="private_key",
            ) from None
    credential = WalletCredential(
        isv=isv,
        merchant=merchant,
        super_app=super_app,
        client_id=client_id,
        partner_id=partner_id,
        key_version=key_version,
        public_key_pem=public_key_pem,
    )
    credential.validate_for_save(exclude=("private_key_ciphertext",))
    credential.private_key_ciphertext = crypto.encrypt(private_key_pem.encode(), context=credential.encryption_context)
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:
        raise ConflictError(
            "merchants.credential_exists",
            "These credentials exist already (one per owner and super app; client ids are unique per super app).",
        ) from None
    return credential
