"""Reads for ISVs and merchants. Missing and not-yours raise the same ``NotFoundError``."""

from django.db.models import QuerySet

from apps.core.errors import NotFoundError
from apps.core.tenancy import Principal

from .models import Isv, Merchant


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
