"""Webhooks in the admin, read-only: events with their deliveries and every attempt, deliveries with their
attempts. Sending again goes through the services: "Replay" on events, "Retry now" on failed deliveries."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin import ReadOnlyInline, TenantScopedAdmin
from apps.core.errors import ApplicationError

from . import services
from .models import WebhookAttempt, WebhookDelivery, WebhookEvent

ATTEMPT_FIELDS = ("started_at", "duration_ms", "status_code", "error", "response_excerpt")


class DeliveryInline(ReadOnlyInline):
    model = WebhookDelivery
    fk_name = "event"
    ordering = ("pk",)
    fields = ("delivery_link", "mini_program", "url", "status", "attempt_count", "next_attempt_at", "delivered_at")
    readonly_fields = fields

    @admin.display(description="Delivery")
    def delivery_link(self, delivery: WebhookDelivery) -> str:
        url = reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])
        return format_html('<a href="{}">{}</a>', url, delivery.public_id)


class AttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    ordering = ("started_at",)
    fields = ATTEMPT_FIELDS
    readonly_fields = fields


class ActionsOnlyAdmin(TenantScopedAdmin):
    """Rows are only looked at; staff who may change them get the actions, never a form."""

    staff_may = frozenset({"change"})

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, "change") and obj is None


@admin.register(WebhookEvent)
class WebhookEventAdmin(ActionsOnlyAdmin):
    list_display = ("public_id", "type", "merchant", "mini_program", "created_at")
    list_filter = ("merchant",)
    search_fields = ("public_id", "type")
    list_select_related = ("merchant", "mini_program")
    ordering = ("-created_at",)
    fields = ("public_id", "type", "merchant", "mini_program", "created_at", "data", "attempt_log")
    readonly_fields = fields
    inlines = (DeliveryInline,)
    actions = ("replay",)

    @admin.display(description="Attempts")
    def attempt_log(self, event: WebhookEvent) -> str:
        rows = [
            (delivery.public_id, *(getattr(attempt, field) for field in ATTEMPT_FIELDS))
            for delivery in event.deliveries.order_by("pk")
            for attempt in delivery.attempts.order_by("started_at")
        ]
        if not rows:
            return "—"
        names = ["delivery", *(WebhookAttempt._meta.get_field(field).verbose_name for field in ATTEMPT_FIELDS)]
        head = format_html_join("", "<th>{}</th>", ((name,) for name in names))
        body = format_html_join("", "<tr>" + "<td>{}</td>" * len(rows[0]) + "</tr>", rows)
        return format_html("<table><tr>{}</tr>{}</table>", head, body)

    @admin.action(description="Replay: send again to the current webhook URLs", permissions=["change"])
    def replay(self, request, queryset):
        for event in queryset:
            replays = services.webhook_replay(event=event)
            sent = ", ".join(delivery.public_id for delivery in replays) or "nothing (no webhook URL)"
            self.message_user(request, f"{event.public_id}: {sent}", messages.INFO)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ActionsOnlyAdmin):
    list_display = (
        "public_id",
        "event",
        "mini_program",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "merchant")
    search_fields = ("public_id", "event__public_id")
    list_select_related = ("event", "mini_program")
    ordering = ("-created_at",)
    fields = (
        "public_id",
        "event",
        "merchant",
        "mini_program",
        "url",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "replay_of",
        "created_at",
    )
    readonly_fields = fields
    inlines = (AttemptInline,)
    actions = ("retry_now",)

    @admin.action(description="Retry now (failed deliveries)", permissions=["change"])
    def retry_now(self, request, queryset):
        for delivery in queryset:
            try:
                retry = services.webhook_delivery_retry(delivery=delivery)
            except ApplicationError as error:
                self.message_user(request, f"{delivery.public_id}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{delivery.public_id}: retried as {retry.public_id}", messages.INFO)
