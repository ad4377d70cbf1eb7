"""Writes for mini programs, their features and the product catalogue.

Field rules (formats, currencies, the webhook URL policy, the super app's trade pay modes) live on the models
and surface as ``validation.*`` codes through ``validate_for_save()``; the rules of this module surface as
``miniprograms.*`` codes.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import ApplicationError, ConflictError
from apps.core.money import Money
from apps.core.services import model_update
from apps.merchants.models import Merchant
from apps.superapps.models import SuperApp

from .models import Feature, MiniProgram, MiniProgramFeature, Product


@dataclasses.dataclass(frozen=True)
class MiniProgramWithSecret:
    mini_program: MiniProgram
    webhook_secret: str  # shown to its owner once, kept only encrypted


def _set_new_webhook_secret(mini_program: MiniProgram) -> str:
    # Standard Webhooks' form: "whsec_" and the key in standard base64, so their libraries verify as they are.
    secret = f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}"
    mini_program.seal("webhook_secret_ciphertext", secret.encode())
    mini_program.webhook_secret_rotated_at = timezone.now()
    return secret


def _locked(model: type[MiniProgram] | type[Product], instance):
    # The caller fetched ``instance`` through its scope; re-read it under a lock to change it.
    return model.objects.unscoped().select_for_update().get(pk=instance.pk)


def mini_program_create(
    *,
    merchant: Merchant,
    super_app: SuperApp,
    app_id: str,
    name: str,
    trade_pay_mode: str,
    default_currency: str,
    webhook_url: str = "",
) -> MiniProgramWithSecret:
    """Register ``merchant``'s mini program at ``super_app``, with payment enabled and a new webhook secret.

    Raises ``validation.*`` for a field the model refuses and ``miniprograms.app_id_taken`` (409) when the
    appId is registered at this super app already.
    """
    mini_program = MiniProgram(
        isv_id=merchant.isv_id,
        merchant=merchant,
        super_app=super_app,
        app_id=app_id,
        name=name,
        trade_pay_mode=trade_pay_mode,
        default_currency=default_currency,
        webhook_url=webhook_url,
    )
    secret = _set_new_webhook_secret(mini_program)
    mini_program.validate_for_save()
    try:
        with transaction.atomic():
            mini_program.save()
            MiniProgramFeature.objects.create(
                isv_id=merchant.isv_id,
                merchant=merchant,
                mini_program=mini_program,
                feature=Feature.PAYMENT,
                enabled=True,
            )
    except IntegrityError:
        raise ConflictError(
            "miniprograms.app_id_taken",
            f"A mini program with appId {app_id!r} is registered at {super_app.name} already.",
            attr="app_id",
        ) from None
    return MiniProgramWithSecret(mini_program=mini_program, webhook_secret=secret)


@transaction.atomic
def mini_program_update(
    *,
    mini_program: MiniProgram,
    name: str | None = None,
    status: str | None = None,
    webhook_url: str | None = None,
    trade_pay_mode: str | None = None,
) -> MiniProgram:
    """Change what may change of a mini program; ``None`` leaves a field as it is, ``webhook_url=""`` clears it.

    Any status may follow any other: suspension is the owner's switch that stops every feature at the gate
    (``selectors.mini_program_gate``). The super app, appId and default currency are fixed at creation.
    Raises ``validation.*`` for a value the model refuses.
    """
    locked = _locked(MiniProgram, mini_program)
    values = {"name": name, "status": status, "webhook_url": webhook_url, "trade_pay_mode": trade_pay_mode}
    return model_update(instance=locked, values=values)


@transaction.atomic
def mini_program_rotate_webhook_secret(*, mini_program: MiniProgram) -> MiniProgramWithSecret:
    """Replace the webhook signing secret at once (no overlap: the old one stops verifying) and reveal the new
    one, this once."""
    locked = _locked(MiniProgram, mini_program)
    secret = _set_new_webhook_secret(locked)
    locked.save(update_fields=["webhook_secret_ciphertext", "webhook_secret_rotated_at", "updated_at"])
    return MiniProgramWithSecret(mini_program=locked, webhook_secret=secret)


@transaction.atomic
def feature_set(*, mini_program: MiniProgram, feature: str, enabled: bool) -> MiniProgramFeature:
    """Turn one feature of ``mini_program`` on or off; setting the current state again changes nothing.

    Payment cannot be turned off (``miniprograms.payment_always_enabled``): a mini program on this platform
    exists to take payments, pre-authorization is itself a payment, and suspending the mini program is the
    one switch that stops them. Raises ``validation.invalid_choice`` for an unknown feature.
    """
    candidate = MiniProgramFeature(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        mini_program=mini_program,
        feature=feature,
        enabled=enabled,
    )
    candidate.validate_for_save()
    if feature == Feature.PAYMENT and not enabled:
        raise ApplicationError(
            "miniprograms.payment_always_enabled",
            "Payment cannot be turned off; suspend the mini program to stop taking payments.",
            attr="enabled",
        )
    _locked(MiniProgram, mini_program)  # one writer per mini program: no race to create the same feature row
    current = mini_program.features.filter(feature=feature).first()
    if current is None:
        candidate.save()
        return candidate
    if current.enabled != enabled:
        current.enabled = enabled
        current.save(update_fields=["enabled", "updated_at"])
    return current


def product_create(*, merchant: Merchant, sku: str, name: str, price: Money, active: bool = True) -> Product:
    """Add a product to ``merchant``'s catalogue.

    Raises ``validation.*`` for a field the model refuses (a price below one minor unit, an unknown
    currency, a malformed SKU) and ``miniprograms.sku_taken`` (409) when the merchant has this SKU already.
    """
    product = Product(
        isv_id=merchant.isv_id,
        merchant=merchant,
        sku=sku,
        name=name,
        price=price.value,
        currency=price.currency,
        active=active,
    )
    product.validate_for_save()
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError:
        raise ConflictError(
            "miniprograms.sku_taken", f"The catalogue has a product with SKU {sku!r} already.", attr="sku"
        ) from None
    return product


@transaction.atomic
def product_update(
    *, product: Product, name: str | None = None, price: Money | None = None, active: bool | None = None
) -> Product:
    """Rename, reprice, activate or deactivate a product; ``None`` leaves a field as it is.

    A product's currency never changes (``miniprograms.currency_immutable``): orders and reports in flight
    read its price in that currency. Raises ``validation.*`` for a value the model refuses.
    """
    locked = _locked(Product, product)
    if price is not None and price.currency != locked.currency:
        raise ApplicationError(
            "miniprograms.currency_immutable",
            f"The product is priced in {locked.currency}; a product's currency never changes.",
            attr="price.currency",
        )
    values = {"name": name, "price": price.value if price else None, "active": active}
    return model_update(instance=locked, values=values)
