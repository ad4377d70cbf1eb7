"""Reads for ISVs and merchants. Missing and not-yours raise the same ``NotFoundError``."""

from django.db.models import QuerySet

from apps.core import crypto
from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.superapps.client.client import WalletClient, WalletConfig
from apps.superapps.client.messages import ApiVersion
from apps.superapps.models import SuperApp

from .models import Isv, Merchant, WalletCredential


def merchant_list(*, principal: Principal) -> QuerySet[Merchant]:
    return Merchant.objects.visible_to(principal).select_related("isv")


def merchant_get(*, principal: Principal, merchant_id: str) -> Merchant:
    """The merchant with public id ``merchant_id``, if ``principal`` may see it."""
    try:
        return merchant_list(principal=principal).get(public_id=merchant_id)
    except Merchant.DoesNotExist:
        raise NotFoundError("merchants.not_found", f"No merchant {merchant_id!r}.") from None


def merchant_acting(*, principal: Principal) -> Merchant:
    """The merchant a merchant-level principal acts for."""
    return merchant_list(principal=principal).get(pk=principal.merchant_id)


def isv_acting(*, principal: Principal) -> Isv:
    """The ISV an ISV- or merchant-level principal belongs to."""
    return Isv.objects.unscoped().get(pk=principal.isv_id)  # the principal's own ISV, by construction


def wallet_credential_for(*, merchant: Merchant, super_app: SuperApp) -> WalletCredential:
    """The merchant's own credentials at ``super_app``, else its ISV's default ones."""
    own = merchant.wallet_credentials.filter(super_app=super_app).first()
    if own is not None:
        return own
    shared = merchant.isv.wallet_credentials.filter(super_app=super_app, merchant__isnull=True).first()
    if shared is None:
        raise ApplicationError(
            "merchants.no_wallet_credential",
            f"Neither the merchant nor its ISV has credentials for the super app {super_app.code!r}.",
        )
    return shared


def wallet_client_for(*, credential: WalletCredential) -> WalletClient:
    """A client of the credential's super app, signing as the credential's owner."""
    super_app = credential.super_app
    private_key_pem = crypto.decrypt(credential.private_key_ciphertext, context=credential.encryption_context)
    return WalletClient(
        WalletConfig(
            base_url=super_app.gateway_base_url,
            api_version=ApiVersion(super_app.api_version),
            client_id=credential.client_id,
            private_key_pem=private_key_pem.decode(),
            wallet_public_key_pem=super_app.wallet_public_key_pem,
            key_version=credential.key_version,
            partner_id=credential.partner_id or None,
            site_name=super_app.site_name or None,
        )
    )
