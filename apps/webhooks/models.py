"""Outbound webhooks to merchants' servers: what happened (``WebhookEvent``), where it goes (``WebhookDelivery``,
one per event and endpoint) and every time it was sent (``WebhookAttempt``).

Events are written in the transaction of the change they report and never change; deliveries move only
through ``services``.
"""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KeyTransform

from apps.core.distribution import MerchantForeignKey, unique_per_merchant
from apps.core.ids import public_id_field
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.miniprograms.models import MiniProgram

MERCHANT_OWNED = TenantFields(isv="isv_id", merchant="merchant_id")

# The event types merchants may receive (``docs/webhooks.md`` lists them); a new one is added here and there.
EVENT_TYPES = (
    "order.paid",
    "order.failed",
    "order.closed",
    "refund.succeeded",
    "refund.failed",
    "preauthorization.authorized",
    "preauthorization.captured",
    "preauthorization.completed",
    "preauthorization.partially_released",
    "preauthorization.released",
    "preauthorization.expiring",
    "preauthorization.expired",
    "preauthorization.failed",
    "registration.verified",
    "registration.rejected",
    "registration.expired",
)


class WebhookEvent(TenantOwnedModel):
    """Something a merchant is told about: ``data`` is the object as the API renders it. Never updated."""

    tenant_fields = MERCHANT_OWNED

    public_id = public_id_field("whe", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    mini_program = models.ForeignKey(
        MiniProgram,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for a merchant-wide event, which goes to each of its mini programs.",
    )
    type = models.CharField(max_length=64, help_text="One of EVENT_TYPES, e.g. order.paid.")
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = unique_per_merchant("webhook_event", "public_id")
        indexes = [
            models.Index(fields=["merchant", "-created_at"], name="webhook_event_merchant_idx"),
            # An order's timeline finds its events by the order they name (``data.id`` or ``data.order``).
            # (``data -> 'id'``, the expression ``data__id=…`` compares on PostgreSQL).
            models.Index(KeyTransform("id", "data"), name="webhook_event_data_id_idx"),
            models.Index(KeyTransform("order", "data"), name="webhook_event_data_order_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(TenantOwnedModel):
    """One event on its way to one endpoint: the webhook URL its mini program had when the delivery was made.

    ``next_attempt_at`` is the schedule the sweeper scans; while an attempt is in flight it is pushed past
    the attempt's longest life, so that no other worker takes it. A retried or replayed delivery is a new
    row pointing at the one it follows (``replay_of``); the old row keeps its history.
    """

    tenant_fields = MERCHANT_OWNED

    public_id = public_id_field("whd", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    event = MerchantForeignKey(WebhookEvent, on_delete=models.PROTECT, related_name="deliveries")
    mini_program = models.ForeignKey(
        MiniProgram, on_delete=models.PROTECT, related_name="+", help_text="Whose webhook secret signs it."
    )
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0, help_text="Attempts started, an interrupted one too.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    replay_of = MerchantForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replays", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = unique_per_merchant("webhook_delivery", "public_id")
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due_idx"),
            models.Index(fields=["merchant", "status"], name="webhook_delivery_merchant_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id


class WebhookAttempt(TenantOwnedModel):
    """One HTTP attempt of a delivery. ``duration_ms`` stays empty while it is in flight, and for good when
    the worker died before it could record the outcome. ``response_excerpt`` is the start of the merchant's
    answer, for the merchant's own troubleshooting."""

    tenant_fields = MERCHANT_OWNED

    public_id = public_id_field("wha", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    delivery = MerchantForeignKey(WebhookDelivery, on_delete=models.PROTECT, related_name="attempts")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Why no answer counted: refused, timeout, …")
    response_excerpt = models.TextField(blank=True)

    class Meta:
        constraints = unique_per_merchant("webhook_attempt", "public_id")
        indexes = [models.Index(fields=["delivery", "started_at"], name="webhook_attempt_delivery_idx")]

    def __str__(self) -> str:
        return self.public_id
