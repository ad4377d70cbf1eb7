"""Reads for orders and pre-authorizations. Missing and not-yours raise the same ``NotFoundError``."""

import datetime

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.miniprograms.models import MiniProgram

from .models import (
    OPEN_PRE_AUTHORIZATION,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    PreAuthorization,
    PreAuthorizationRelease,
    PreAuthorizationStatus,
    Refund,
)


def order_list(
    *,
    principal: Principal,
    status: str | None = None,
    kind: str | None = None,
    mini_program: str | None = None,
    reference: str | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
) -> QuerySet[Order]:
    orders = (
        Order.objects.visible_to(principal)
        .select_related("mini_program")
        .prefetch_related(
            Prefetch(
                "payments",
                queryset=Payment.objects.visible_to(principal).filter(status=PaymentStatus.PENDING),
                to_attr="pending_payments",
            )
        )
    )
    if status:
        orders = orders.filter(status=status)
    if kind:
        orders = orders.filter(kind=kind)
    if mini_program:
        orders = orders.filter(mini_program__app_id=mini_program)
    if reference:
        orders = orders.filter(reference=reference)
    if created_after:
        orders = orders.filter(created_at__gte=created_after)
    if created_before:
        orders = orders.filter(created_at__lt=created_before)
    return orders


def order_get(*, principal: Principal, order_id: str) -> Order:
    order = (
        order_list(principal=principal)
        .select_related("merchant", "mini_program__super_app")
        .filter(public_id=order_id)
        .first()
    )
    if order is None:
        raise NotFoundError("payments.order_not_found", f"No order {order_id!r}.")
    return order


def mini_program_for_order(*, principal: Principal, app_id: str | None) -> MiniProgram:
    """The mini program an order is for: the one named by ``app_id`` among the principal's, or a user
    session's own (naming another is refused). Request-body values: unknown is a 400 naming the field."""
    mini_programs = MiniProgram.objects.select_related("merchant", "super_app")
    if principal.is_user_session:
        # The session's own, by the id its (authenticated) session carries.
        mini_program = mini_programs.unscoped().get(pk=principal.mini_program_id)
        if app_id is not None and app_id != mini_program.app_id:
            raise ApplicationError(
                "sessions.other_mini_program", "This session belongs to another mini program.", attr="mini_program"
            )
        return mini_program
    if app_id is None:
        raise ApplicationError("validation.required", "Name the mini program (its appId).", attr="mini_program")
    mini_program = mini_programs.visible_to(principal).filter(app_id=app_id).first()
    if mini_program is None:
        raise ApplicationError("validation.does_not_exist", f"No mini program {app_id!r}.", attr="mini_program")
    return mini_program


def trade_pay_of(order: Order) -> dict[str, str]:
    """The object for ``my.tradePay`` while the order awaits the user (``order_list`` prefetches it), else ``{}``."""
    if order.status != OrderStatus.PENDING:
        return {}
    pending_payments = getattr(order, "pending_payments", None)
    if pending_payments is None:  # an order fresh from a service, not from order_list
        pending_payments = order.payments.filter(status=PaymentStatus.PENDING)
    pending = next(iter(pending_payments), None)
    if pending is None:
        return {}
    if pending.order_str:
        return {"orderStr": pending.order_str}
    return {"paymentUrl": pending.payment_url} if pending.payment_url else {}


def refund_list(*, principal: Principal, order: Order) -> QuerySet[Refund]:
    return Refund.objects.visible_to(principal).filter(order=order).select_related("order").order_by("created_at")


def preauthorization_list(
    *,
    principal: Principal,
    status: str | None = None,
    mini_program: str | None = None,
    reference: str | None = None,
) -> QuerySet[PreAuthorization]:
    """Newest first, each with its captures and releases (two queries for a page, whatever its size)."""
    pre_authorizations = (
        PreAuthorization.objects.visible_to(principal)
        .select_related("order__mini_program")
        .prefetch_related(
            Prefetch("captures", queryset=Payment.objects.visible_to(principal).order_by("created_at")),
            Prefetch("releases", queryset=PreAuthorizationRelease.objects.visible_to(principal).order_by("created_at")),
        )
    )
    if status:
        pre_authorizations = pre_authorizations.filter(status=status)
    if mini_program:
        pre_authorizations = pre_authorizations.filter(order__mini_program__app_id=mini_program)
    if reference:
        pre_authorizations = pre_authorizations.filter(order__reference=reference)
    return pre_authorizations


def preauthorization_get(*, principal: Principal, preauthorization_id: str) -> PreAuthorization:
    pre_authorization = preauthorization_list(principal=principal).filter(public_id=preauthorization_id).first()
    if pre_authorization is None:
        raise NotFoundError("preauthorizations.not_found", f"No pre-authorization {preauthorization_id!r}.")
    return pre_authorization


def trade_pay_of_preauthorization(pre_authorization: PreAuthorization) -> dict[str, str]:
    """The object for ``my.tradePay`` while the user has not authorised, else ``{}``."""
    if pre_authorization.status != PreAuthorizationStatus.PENDING:
        return {}
    if pre_authorization.order_str:
        return {"orderStr": pre_authorization.order_str}
    return {"paymentUrl": pre_authorization.payment_url} if pre_authorization.payment_url else {}


def preauthorization_time_left(pre_authorization: PreAuthorization) -> int:
    """Whole seconds until nothing can be captured any more; 0 once past, or over."""
    if pre_authorization.status not in (PreAuthorizationStatus.PENDING, *OPEN_PRE_AUTHORIZATION):
        return 0
    return max(0, int((pre_authorization.expires_at - timezone.now()).total_seconds()))


def preauthorization_expiring(pre_authorization: PreAuthorization) -> bool:
    """Funds still frozen and less than ``PREAUTHORIZATION_EXPIRY_WARNING_SECONDS`` left: the badge."""
    return (
        pre_authorization.status in OPEN_PRE_AUTHORIZATION
        and preauthorization_time_left(pre_authorization) < settings.PREAUTHORIZATION_EXPIRY_WARNING_SECONDS
    )
