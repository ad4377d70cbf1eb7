"""Writes for ISVs and merchants."""

from django.db import IntegrityError, transaction

from apps.core.errors import ConflictError

from .models import Isv, Merchant


def isv_create(*, name: str) -> Isv:
    """Register an ISV (platform operators only). Names are unique platform-wide."""
    try:
        with transaction.atomic():
            return Isv.objects.create(name=name)
    except IntegrityError:
        raise ConflictError(
            "merchants.isv_name_taken", f"An ISV named {name!r} exists already.", attr="name"
        ) from None


def merchant_create(*, isv: Isv, name: str) -> Merchant:
    """Onboard a merchant under ``isv``. Names are unique within the ISV."""
    try:
        with transaction.atomic():
            return Merchant.objects.create(isv=isv, name=name)
    except IntegrityError:
        raise ConflictError(
            "merchants.merchant_name_taken", f"This ISV already has a merchant named {name!r}.", attr="name"
        ) from None
