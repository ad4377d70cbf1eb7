"""The inbox in the admin: every notification as it arrived (headers, raw body, address), what became of
it and why. Read-only; the one action processes again what is waiting or was given up on."""

from django.contrib import admin, messages
from django.utils.html import format_html

from apps.core.admin import TenantScopedAdmin

from . import services
from .models import InboundNotification


@admin.register(InboundNotification)
class InboundNotificationAdmin(TenantScopedAdmin):
    list_display = ("public_id", "kind", "status", "subject", "merchant", "attempts", "received_at", "remote_addr")
    list_filter = ("status", "kind", "super_app", "merchant")
    search_fields = ("public_id", "subject", "dedupe_key")
    list_select_related = ("merchant", "super_app")
    ordering = ("-received_at",)
    fields = (
        "public_id",
        "super_app",
        "kind",
        "merchant",
        "status",
        "outcome",
        "subject",
        "dedupe_key",
        "duplicate_of",
        "attempts",
        "next_attempt_at",
        "received_at",
        "processed_at",
        "remote_addr",
        "headers",
        "raw_body",
    )
    readonly_fields = fields
    actions = ("process_again",)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, "change") and obj is None  # the action, never the form

    @admin.display(description="Body (as received)")
    def raw_body(self, notification: InboundNotification) -> str:
        text = bytes(notification.body)[:20_000].decode("utf-8", errors="replace")
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text)

    @admin.action(description="Process again (waiting or given up)", permissions=["change"])
    def process_again(self, request, queryset):
        for notification in queryset:
            try:
                processed = services.notification_retry(notification=notification)
            except services.NotRetryable as refusal:
                self.message_user(request, f"{notification}: {refusal}", messages.WARNING)
            else:
                self.message_user(request, f"{notification}: {processed.get_status_display()}", messages.INFO)
