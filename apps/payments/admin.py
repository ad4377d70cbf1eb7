"""Orders and pre-authorizations in the admin.

Orders are where merchant staff live: a changelist that stays fast with a million orders (exact search by
our id, the merchant's reference or the wallet's paymentId; no full count), the evidence timeline of one
order, a refund with a confirmation step for those allowed to give money back, and a CSV export of the
filtered list. Pre-authorizations show what is frozen, captured and released, and how long is left — with an
"expiring" badge so that nobody lets a deposit lapse by accident. Read-only: money moves only through the
services (the API, or the actions here).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from apps.core.admin import ReadOnlyInline, TenantScopedAdmin, request_principal
from apps.core.errors import ApplicationError
from apps.core.exports import EXPORT_MAX_ROWS, streamed_csv
from apps.core.money import Money

from . import preauthorizations, selectors, services, timeline
from .models import Order, Payment, PaymentEvent, PreAuthorization, PreAuthorizationRelease, Refund

#: The changelist counts at most this many matching orders; beyond, it says "more than" and pages that far.
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """A paginator that never counts a whole table: ``SELECT count(*) FROM (SELECT … LIMIT cap + 1)``."""

    cap = COUNT_CAP

    @cached_property
    def counted(self) -> int:
        return self.object_list.order_by()[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.cap)

    @property
    def capped(self) -> bool:
        return self.counted > self.cap


def _money(value: int, currency: str) -> str:
    return str(Money(value=value, currency=currency))


class OrderPaymentInline(ReadOnlyInline):
    model = Payment
    fk_name = "order"
    verbose_name, verbose_name_plural = "payment attempt", "payment attempts"
    fields = ("created_at", "payment_request_id", "wallet_payment_id", "amount_display", "status", "failure_code")
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, payment: Payment) -> str:
        return _money(payment.amount, payment.order.currency)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order")


class OrderRefundInline(ReadOnlyInline):
    model = Refund
    fk_name = "order"
    fields = ("created_at", "public_id", "refund_request_id", "amount_display", "status", "failure_code", "reason")
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, refund: Refund) -> str:
        return _money(refund.amount, refund.currency)


class RefundForm(forms.Form):
    amount = forms.CharField(
        max_length=32, help_text="In major units of the order's currency, e.g. 12.50; never more than refundable."
    )
    reason = forms.CharField(max_length=256, required=False, help_text="Kept with the refund and sent to the wallet.")
    # What was refunded when the page was shown: the service refuses if that changed (a form sent twice).
    refunds_seen = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, refundable: Money, refunds_seen: int, **kwargs):
        super().__init__(*args, initial={"refunds_seen": refunds_seen}, **kwargs)
        self.refundable = refundable

    def clean_amount(self) -> Money:
        try:
            amount = Money.from_major(self.cleaned_data["amount"].strip(), self.refundable.currency)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
        if amount.value <= 0:
            raise forms.ValidationError("The amount must be more than zero.")
        if amount.value > self.refundable.value:
            raise forms.ValidationError(f"At most {self.refundable} is refundable.")
        return amount


@admin.register(Order)
class OrderAdmin(TenantScopedAdmin):
    list_display = (
        "public_id",
        "reference",
        "status",
        "amount_display",
        "kind",
        "mini_program",
        "wallet_user",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "kind", ("created_at", admin.DateFieldListFilter), "mini_program")
    search_help_text = "Exact: our order id (ord_…), the merchant's reference, or the wallet's paymentId."
    list_select_related = ("mini_program", "wallet_user")
    # Newest first by creation time, which every list index ends in (Order.Meta): a page filtered by status,
    # kind or mini program, or by a date range (the date filter, the dashboard's links), reads its rows in
    # index order and stops.
    ordering = ("-created_at",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    fields = (
        "public_id",
        "reference",
        "merchant",
        "mini_program",
        "wallet_user",
        "kind",
        "status",
        "description",
        "amount_display",
        "paid_display",
        "refunded_display",
        "created_at",
        "paid_at",
        "expires_at",
        "items",
        "metadata",
    )
    readonly_fields = fields
    inlines = (OrderPaymentInline, OrderRefundInline)
    change_form_template = "admin/payments/order/change_form.html"
    change_list_template = "admin/payments/order/change_list.html"
    staff_may = frozenset()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # money moves only through the services: the refund below, or the API

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_search_fields(self, request):
        return ("public_id",)  # shows the search box; ``get_search_results`` does the searching

    def get_search_results(self, request, queryset, search_term):
        """Exact matches on indexed columns, never ``icontains``: an order by id or reference, or the orders
        of payments the wallet knows by that paymentId (found first, so no join and no ``DISTINCT``)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_wallet_id = (
            Payment.objects.visible_to(request_principal(request))
            .filter(wallet_payment_id=term)
            .values_list("order_id", flat=True)[:100]
        )
        found = Q(public_id=term) | Q(reference=term) | Q(pk__in=list(by_wallet_id))
        return queryset.filter(found), False

    def get_urls(self):
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="{}_{}_export".format(*info)),
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="{}_{}_refund".format(*info),
            ),
            *super().get_urls(),
        ]

    def _visible_order(self, request, object_id) -> Order:
        """The order the viewer may see, or 404 (another tenant's order does not exist for them)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404
        return order

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self._visible_order(request, object_id)
        principal = request_principal(request)
        context = {
            "timeline": timeline.order_timeline(principal=principal, order=order),
            "can_refund": principal.can_refund,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def refund_view(self, request, object_id):
        """The confirmation step of a refund: the order, what is refundable, an amount and a reason; a POST
        asks the refund service (as the API does) and reports its outcome."""
        order = self._visible_order(request, object_id)
        principal = request_principal(request)
        if not principal.can_refund:
            raise PermissionDenied
        refundable = timeline.order_refundable(principal=principal, order=order)
        seen = order.paid_amount - refundable.value
        form = RefundForm(request.POST or None, refundable=refundable, refunds_seen=seen)
        if form.is_bound and form.is_valid():
            amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
            try:
                refund = services.refund_request(
                    order=order, amount=amount.value, reason=reason, refunds_seen=form.cleaned_data["refunds_seen"]
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                outcome = f"Refund {refund.public_id} of {amount}: {refund.get_status_display()}."
                self.log_change(request, order, f"{outcome} {reason}".strip())
                level = {"succeeded": messages.SUCCESS, "failed": messages.ERROR}.get(refund.status, messages.WARNING)
                self.message_user(request, outcome, level)
                return HttpResponseRedirect(reverse("admin:payments_order_change", args=[order.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund order {order.public_id}",
            "opts": self.opts,
            "original": order,
            "order_amount": _money(order.amount, order.currency),
            "paid": _money(order.paid_amount, order.currency),
            "refunded": _money(order.refunded_amount, order.currency),
            "refundable": refundable,
            "form": form,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/payments/order/refund.html", context)

    def export_view(self, request):
        """The changelist as the viewer filtered and searched it, as CSV, at most ``EXPORT_MAX_ROWS`` rows."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:payments_order_changelist") + "?e=1")
        orders = changelist.get_queryset(request).select_related("mini_program", "wallet_user")[: EXPORT_MAX_ROWS + 1]
        return streamed_csv(
            filename="orders.csv",
            columns=ORDER_EXPORT_COLUMNS,
            rows=(_order_export_row(order) for order in orders.iterator(chunk_size=2000)),
            max_rows=EXPORT_MAX_ROWS,
            more="narrow the filters to export the rest",
        )

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, order: Order) -> str:
        return _money(order.amount, order.currency)

    @admin.display(description="Paid")
    def paid_display(self, order: Order) -> str:
        return _money(order.paid_amount, order.currency)

    @admin.display(description="Refunded")
    def refunded_display(self, order: Order) -> str:
        return _money(order.refunded_amount, order.currency)


ORDER_EXPORT_COLUMNS = (
    "id",
    "reference",
    "status",
    "kind",
    "amount",
    "currency",
    "paid_amount",
    "refunded_amount",
    "mini_program",
    "wallet_user",
    "description",
    "created_at",
    "paid_at",
)


def _order_export_row(order: Order) -> list:
    """Amounts in major units as exact decimal strings, as a spreadsheet shows them."""
    return [
        order.public_id,
        order.reference or "",
        order.status,
        order.kind,
        Money(order.amount, order.currency).to_major_string(),
        order.currency,
        Money(order.paid_amount, order.currency).to_major_string(),
        Money(order.refunded_amount, order.currency).to_major_string(),
        order.mini_program.app_id,
        str(order.wallet_user) if order.wallet_user_id else "",
        order.description,
        order.created_at.isoformat(),
        order.paid_at.isoformat() if order.paid_at else "",
    ]


class CaptureInline(ReadOnlyInline):
    model = Payment
    fk_name = "pre_authorization"
    verbose_name, verbose_name_plural = "capture", "captures"
    fields = ("created_at", "public_id", "amount", "capture_final", "status", "failure_code", "wallet_payment_id")
    readonly_fields = fields


class ReleaseInline(ReadOnlyInline):
    model = PreAuthorizationRelease
    fields = ("created_at", "public_id", "out_request_no", "amount", "status", "failure_code", "reason")
    readonly_fields = fields


class PreAuthorizationEventInline(ReadOnlyInline):
    model = PaymentEvent
    fk_name = "pre_authorization"
    fields = ("created_at", "subject", "from_status", "to_status", "source", "reason")
    readonly_fields = fields


@admin.register(PreAuthorization)
class PreAuthorizationAdmin(TenantScopedAdmin):
    list_display = (
        "public_id",
        "merchant",
        "status",
        "frozen_display",
        "captured_display",
        "remaining_display",
        "expires_at",
        "time_left",
    )
    list_filter = ("status", "trade_pay_mode", "merchant")
    search_fields = ("public_id", "out_order_no", "auth_no", "order__public_id", "order__reference")
    list_select_related = ("merchant",)
    ordering = ("-created_at",)
    fields = (
        "public_id",
        "merchant",
        "order",
        "status",
        "trade_pay_mode",
        "frozen_display",
        "captured_display",
        "released_display",
        "remaining_display",
        "expires_at",
        "time_left",
        "authorized_at",
        "auth_no",
        "out_order_no",
        "out_request_no",
        "failure_code",
    )
    readonly_fields = fields
    inlines = (CaptureInline, ReleaseInline, PreAuthorizationEventInline)
    actions = ("ask_the_super_app",)
    staff_may = frozenset({"change"})

    def has_add_permission(self, request) -> bool:
        return False  # pre-authorizations are made by the services (the API), never by a form

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, "change") and obj is None  # the action, never the form

    def _money(self, pre_authorization: PreAuthorization, value: int) -> str:
        return str(Money(value=value, currency=pre_authorization.currency))

    @admin.display(description="Frozen", ordering="amount")
    def frozen_display(self, pre_authorization: PreAuthorization) -> str:
        return self._money(pre_authorization, pre_authorization.amount)

    @admin.display(description="Captured", ordering="captured_amount")
    def captured_display(self, pre_authorization: PreAuthorization) -> str:
        return self._money(pre_authorization, pre_authorization.captured_amount)

    @admin.display(description="Released", ordering="released_amount")
    def released_display(self, pre_authorization: PreAuthorization) -> str:
        return self._money(pre_authorization, pre_authorization.released_amount)

    @admin.display(description="Still frozen")
    def remaining_display(self, pre_authorization: PreAuthorization) -> str:
        return self._money(pre_authorization, pre_authorization.remaining_amount)

    @admin.display(description="Time left", ordering="expires_at")
    def time_left(self, pre_authorization: PreAuthorization) -> str:
        seconds = selectors.preauthorization_time_left(pre_authorization)
        if not seconds:
            return "—"
        hours, minutes = divmod(seconds // 60, 60)
        days, hours = divmod(hours, 24)
        left = f"{days}d {hours}h" if days else f"{hours}h {minutes}m"
        if selectors.preauthorization_expiring(pre_authorization):
            return format_html('{} <strong class="expiring-badge" style="color:#ba2121">EXPIRING</strong>', left)
        return left

    @admin.action(description="Ask the super app for the latest state", permissions=["change"])
    def ask_the_super_app(self, request, queryset):
        for pre_authorization in queryset:
            try:
                refreshed = preauthorizations.preauthorization_refresh(
                    pre_authorization=pre_authorization, source="staff"
                )
            except ApplicationError as error:
                self.message_user(request, f"{pre_authorization}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{pre_authorization}: {refreshed.get_status_display()}", messages.INFO)
