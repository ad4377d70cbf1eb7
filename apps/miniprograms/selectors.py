"""Reads for mini programs and products, and the gate a payment passes before anything reaches a wallet.

Missing and not-yours raise the same ``NotFoundError``.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.merchants.models import RegistrationStatus
from apps.merchants.selectors import ensure_merchant_may_take_payments, wallet_client_for, wallet_credential_for
from apps.superapps.client.client import WalletClient

from .models import Feature, MiniProgram, MiniProgramFeature, MiniProgramStatus, Product


def mini_program_list(
    *, principal: Principal, status: str | None = None, super_app: str | None = None
) -> QuerySet[MiniProgram]:
    """The mini programs ``principal`` may see, optionally by status and super app code."""
    mini_programs = MiniProgram.objects.visible_to(principal).select_related("super_app")
    if status is not None:
        mini_programs = mini_programs.filter(status=status)
    if super_app is not None:
        mini_programs = mini_programs.filter(super_app__code=super_app)
    # A page renders every row's features: one query for all of them.
    return mini_programs.prefetch_related(
        Prefetch("features", queryset=MiniProgramFeature.objects.visible_to(principal))
    )


def mini_program_get(*, principal: Principal, mini_program_id: str) -> MiniProgram:
    """One mini program; its features are read when asked for, so they are never a stale prefetch."""
    try:
        return MiniProgram.objects.visible_to(principal).select_related("super_app").get(public_id=mini_program_id)
    except MiniProgram.DoesNotExist:
        raise NotFoundError("miniprograms.mini_program_not_found", f"No mini program {mini_program_id!r}.") from None


def product_list(*, principal: Principal, active: bool | None = None, sku: str | None = None) -> QuerySet[Product]:
    """The catalogue entries ``principal`` may see, optionally only (in)active ones or one SKU. A mini
    program's users see what is on sale only."""
    products = Product.objects.visible_to(principal)
    if principal.is_user_session:
        products = products.filter(active=True)
    if active is not None:
        products = products.filter(active=active)
    if sku is not None:
        products = products.filter(sku=sku)
    return products


def product_get(*, principal: Principal, product_id: str) -> Product:
    try:
        return product_list(principal=principal).get(public_id=product_id)
    except Product.DoesNotExist:
        raise NotFoundError("miniprograms.product_not_found", f"No product {product_id!r}.") from None


def mini_program_gate(*, mini_program: MiniProgram, feature: Feature = Feature.PAYMENT) -> None:
    """Refuse unless ``mini_program`` may use ``feature`` now. Reads the database only, never a wallet.

    In order: the merchant's license at the mini program's super app (``merchants.license_not_verified``,
    ``merchants.license_expired``), then ``miniprograms.suspended``, then ``miniprograms.feature_not_enabled``
    when the feature is off or was never added.
    """
    if mini_program.status != MiniProgramStatus.SUSPENDED and _passes_gate(mini_program, feature):
        return  # the path of every order: one query
    ensure_merchant_may_take_payments(merchant=mini_program.merchant, super_app=mini_program.super_app)
    if mini_program.status == MiniProgramStatus.SUSPENDED:
        raise ApplicationError("miniprograms.suspended", f"The mini program {mini_program.name!r} is suspended.")
    if not mini_program.features.filter(feature=feature, enabled=True).exists():
        raise ApplicationError(
            "miniprograms.feature_not_enabled",
            f"The mini program {mini_program.name!r} does not have {Feature(feature).label.lower()} enabled.",
        )


def _passes_gate(mini_program: MiniProgram, feature: Feature) -> bool:
    """Every condition of the gate at once; when it fails, the gate asks again one by one to say why."""
    return mini_program.features.filter(
        feature=feature,
        enabled=True,
        mini_program__merchant__registrations__super_app=mini_program.super_app_id,
        mini_program__merchant__registrations__status=RegistrationStatus.VERIFIED,
        mini_program__merchant__business_license__expiry_date__gte=timezone.localdate(),
    ).exists()


def wallet_client_of(mini_program: MiniProgram) -> WalletClient:
    """The wallet client signing as the mini program's merchant (or its ISV) at its super app.

    Raises ``merchants.no_wallet_credential`` when there is none: callers ask before writing anything.
    """
    credential = wallet_credential_for(merchant=mini_program.merchant, super_app=mini_program.super_app)
    return wallet_client_for(credential=credential)
