"""Pre-authorizations in the admin: what is frozen, captured and released, and how long is left — with an
"expiring" badge so that nobody lets a deposit lapse by accident. Read-only: money moves only through the
services (the API, or the actions here)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from apps.core.admin import ReadOnlyInline, TenantScopedAdmin
from apps.core.errors import ApplicationError
from apps.core.money import Money

from . import preauthorizations, selectors
from .models import Payment, PaymentEvent, PreAuthorization, PreAuthorizationRelease


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
