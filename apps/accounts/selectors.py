"""Reads for principals and API keys."""

from django.db.models import QuerySet

from apps.core.errors import NotFoundError
from apps.core.tenancy import Principal, PrincipalKind, Role

from .models import ApiKey, Membership


def principal_for_user(user) -> Principal:
    """The principal of a signed-in admin user: operator, ISV staff or merchant staff."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Principal.anonymous()
    if user.is_superuser:
        return Principal.operator(user_id=user.pk)
    membership = Membership.objects.unscoped().filter(user=user).first()
    if membership is None:
        return Principal.anonymous()
    return Principal(
        kind=PrincipalKind.MERCHANT_STAFF if membership.merchant_id else PrincipalKind.ISV_STAFF,
        isv_id=membership.isv_id,
        merchant_id=membership.merchant_id,
        role=Role(membership.role),
        user_id=user.pk,
        may_refund=membership.may_refund,
    )


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """The keys of the tenant the principal acts for: its merchant's, or the ISV's own ISV-level keys."""
    keys = ApiKey.objects.visible_to(principal).select_related("isv", "merchant")
    return keys if principal.merchant_id is not None else keys.filter(merchant__isnull=True)


def api_key_get(*, principal: Principal, key_id: str) -> ApiKey:
    try:
        return api_key_list(principal=principal).get(public_id=key_id)
    except ApiKey.DoesNotExist:
        raise NotFoundError("accounts.api_key_not_found", f"No API key {key_id!r}.") from None
