"""Reads for orders. Missing and not-yours raise the same ``NotFoundError``."""

from django.db.models import QuerySet

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.miniprograms.models import MiniProgram

from .models import Order, Refund


def order_list(
    *, principal: Principal, status: str | None = None, mini_program: str | None = None, reference: str | None = None
) -> QuerySet[Order]:
    orders = Order.objects.visible_to(principal).select_related("mini_program")
    if status:
        orders = orders.filter(status=status)
    if mini_program:
        orders = orders.filter(mini_program__app_id=mini_program)
    if reference:
        orders = orders.filter(reference=reference)
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


def mini_program_for_order(*, principal: Principal, app_id: str) -> MiniProgram:
    """The principal's mini program with ``app_id`` (a request-body value: unknown is a 400 naming it)."""
    mini_program = (
        MiniProgram.objects.visible_to(principal).select_related("merchant", "super_app").filter(app_id=app_id).first()
    )
    if mini_program is None:
        raise ApplicationError("validation.does_not_exist", f"No mini program {app_id!r}.", attr="mini_program")
    return mini_program


def refund_list(*, principal: Principal, order: Order) -> QuerySet[Refund]:
    return Refund.objects.visible_to(principal).filter(order=order).select_related("order").order_by("created_at")
