"""Reads for ISVs and merchants. Missing and not-yours raise the same ``NotFoundError``."""

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.superapps.client.client import WalletClient, WalletConfig, WalletOwner
from apps.superapps.client.messages import ApiVersion
from apps.superapps.models import SuperApp

from .models import (
    BusinessLicense,
    Isv,
    Merchant,
    Registration,
    RegistrationEvent,
    RegistrationStatus,
    WalletCredential,
)


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
        own.super_app = super_app  # the caller's, already loaded
        return own
    # The ISV's defaults sign for its merchants, but no merchant may read them: fetched past the tenant scope.
    shared = (
        WalletCredential.objects.unscoped()
        .filter(isv_id=merchant.isv_id, super_app=super_app, merchant__isnull=True)
        .first()
    )
    if shared is None:
        raise ApplicationError(
            "merchants.no_wallet_credential",
            f"Neither the merchant nor its ISV has credentials for the super app {super_app.code!r}.",
        )
    shared.super_app = super_app  # the caller's, already loaded
    return shared


def wallet_client_for(*, credential: WalletCredential) -> WalletClient:
    """A client of the credential's super app, signing as the credential's owner."""
    super_app = credential.super_app
    return WalletClient(
        WalletConfig(
            base_url=super_app.gateway_base_url,
            api_version=ApiVersion(super_app.api_version),
            client_id=credential.client_id,
            private_key_pem=credential.unseal("private_key_ciphertext").decode(),
            wallet_public_key_pem=super_app.wallet_public_key_pem,
            key_version=credential.key_version,
            partner_id=credential.partner_id or None,
            site_name=super_app.site_name or None,
            classic_gateway_url=super_app.classic_gateway_url or None,
            classic_app_id=credential.classic_app_id or None,
            owner=WalletOwner(
                credential_id=credential.pk,
                isv_id=credential.isv_id,
                merchant_id=credential.merchant_id,
                super_app_id=super_app.pk,
            ),
        )
    )


def business_license_of(*, merchant: Merchant) -> BusinessLicense | None:
    """The merchant's license as stored (not a related-object cache, which an unsaved form instance can fill)."""
    owner = Principal.system(isv_id=merchant.isv_id, merchant_id=merchant.pk)
    return BusinessLicense.objects.visible_to(owner).filter(merchant=merchant).first()


def ensure_merchant_may_take_payments(*, merchant: Merchant, super_app: SuperApp) -> None:
    """Refuse unless ``super_app`` has verified the merchant's business license and it has not expired.

    Raises ``merchants.license_not_verified`` or ``merchants.license_expired``; the caller must not have
    contacted the wallet yet.
    """
    # One query on every order: the registration and the license's expiry together.
    status, expiry_date = (
        merchant.registrations.filter(super_app=super_app)
        .values_list("status", "merchant__business_license__expiry_date")
        .first()
    ) or (RegistrationStatus.DRAFT, None)
    if status != RegistrationStatus.VERIFIED:
        raise ApplicationError(
            "merchants.license_not_verified",
            f"{super_app.name} has not verified this merchant's business license (status: {status}).",
        )
    if expiry_date is None or expiry_date < timezone.localdate():
        raise ApplicationError("merchants.license_expired", "The merchant's business license has expired.")


def super_app_list() -> QuerySet[SuperApp]:
    """Super apps are shared reference data, visible to every tenant."""
    return SuperApp.objects.order_by("code")


def super_app_get(*, code: str) -> SuperApp:
    """A super app by code; super apps are shared reference data, visible to every tenant."""
    super_app = SuperApp.objects.filter(code=code).first()
    if super_app is None:
        # A bad value in a request body: 400 naming the field, the same code a serializer lookup gives.
        raise ApplicationError("validation.does_not_exist", f"No super app {code!r}.", attr="super_app")
    return super_app


def business_license_get(*, principal: Principal) -> BusinessLicense:
    business_license = BusinessLicense.objects.visible_to(principal).filter(merchant_id=principal.merchant_id).first()
    if business_license is None:
        raise NotFoundError("merchants.license_not_found", "The merchant has no business license yet.")
    return business_license


def registration_list(*, principal: Principal) -> QuerySet[Registration]:
    return (
        Registration.objects.visible_to(principal)
        .select_related("super_app")
        .prefetch_related(Prefetch("events", RegistrationEvent.objects.visible_to(principal).order_by("created_at")))
    )


def wallet_credential_list(*, principal: Principal) -> QuerySet[WalletCredential]:
    """The credentials of the tenant the principal acts for: a merchant's, or the ISV's defaults."""
    credentials = WalletCredential.objects.visible_to(principal).select_related("super_app")
    return credentials if principal.merchant_id is not None else credentials.filter(merchant__isnull=True)


LICENSE_LOCKING_STATUSES = frozenset(
    {RegistrationStatus.SUBMITTED, RegistrationStatus.UNDER_REVIEW, RegistrationStatus.VERIFIED}
)


def license_is_locked(*, merchant: Merchant) -> bool:
    """A license is locked while any super app reviews it or has verified it."""
    return merchant.registrations.filter(status__in=LICENSE_LOCKING_STATUSES).exists()


def registration_matrix(*, principal: Principal, isv: Isv) -> dict:
    """Merchants by super apps by registration status, for the ISV's overview (two queries)."""
    super_apps = list(super_app_list())
    statuses = {
        (merchant_id, super_app_id): status
        for merchant_id, super_app_id, status in Registration.objects.visible_to(principal)
        .filter(isv=isv)
        .values_list("merchant_id", "super_app_id", "status")
    }
    rows = [
        (merchant, [statuses.get((merchant.pk, super_app.pk), "not submitted") for super_app in super_apps])
        for merchant in merchant_list(principal=principal).filter(isv=isv).order_by("name")
    ]
    return {"super_apps": super_apps, "rows": rows}
