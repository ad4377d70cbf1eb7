"""The inbox: every notification a super app sends, stored raw before anything else happens.

A row is written first (headers, body bytes, remote address), then verified, deduplicated and
acknowledged; the effect is applied later, by a Celery task or the sweeper, exactly once. Rejected and
duplicate deliveries stay as evidence. Rows of a known client belong to its tenant; the rest are for
operators only.
"""

from django.db import models

from apps.core.ids import public_id_field
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.superapps.models import SuperApp


class NotificationKind(models.TextChoices):
    PAYMENT = "payment", "notifyPayment"
    REFUND = "refund", "notifyRefund"
    REGISTRATION = "registration", "notifyRegistrationStatus"
    CLASSIC = "classic", "Classic async notification (orderStr payments, pre-authorizations)"


class NotificationStatus(models.TextChoices):
    UNVERIFIED = "unverified", "Unverified (stored; never processed unless verified)"
    RECEIVED = "received", "Received (verified, to be processed)"
    PROCESSED = "processed", "Processed"
    PARKED = "parked", "Parked (names something not known yet; retried)"
    ANOMALY = "anomaly", "Anomaly (contradicts what is known; not applied)"
    FAILED = "failed", "Failed (gave up after repeated errors)"
    DUPLICATE = "duplicate", "Duplicate (acknowledged, no effect)"
    REJECTED = "rejected", "Rejected (unsigned, forged, stale or unreadable)"


class InboundNotification(TenantOwnedModel):
    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("ntf")
    super_app = models.ForeignKey(SuperApp, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=NotificationStatus.choices, default=NotificationStatus.UNVERIFIED)
    dedupe_key = models.CharField(
        max_length=200, null=True, blank=True, unique=True, help_text="What makes a delivery the same notification."
    )
    duplicate_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    subject = models.CharField(max_length=64, blank=True, help_text="The request id or number it is about.")
    outcome = models.CharField(max_length=500, blank=True, help_text="Why rejected, or what processing did.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="inbox_due_idx"),
            models.Index(fields=["merchant", "-received_at"], name="inbox_merchant_idx"),
            models.Index(fields=["subject"], name="inbox_subject_idx"),  # an order's timeline, reconciliation
        ]

    def __str__(self) -> str:
        return self.public_id
