"""Reads of the superapps app."""

from django.db.models import QuerySet

from apps.core.tenancy import Principal

from .models import WalletExchange


def wallet_exchanges_about(*, principal: Principal, subjects: list[str]) -> QuerySet[WalletExchange]:
    """The wallet calls about any of ``subjects`` (request ids) that ``principal`` may see, oldest first."""
    return (
        WalletExchange.objects.visible_to(principal)
        .filter(subject__in=[subject for subject in subjects if subject])
        .select_related("super_app")
        .order_by("created_at", "pk")
    )
