"""Orders and their payment attempts. Amounts are integers in the currency's minor unit.

Statuses move only through ``services`` under a row lock, by the tables in ``transitions``, and every move
appends a ``PaymentEvent``.
"""

from django.db import models

from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.miniprograms.models import MiniProgram
from apps.superapps.models import TradePayMode
from apps.usersessions.models import WalletUser

MERCHANT_OWNED = TenantFields(isv="isv_id", merchant="merchant_id")


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending (awaiting the user)"
    PROCESSING = "processing", "Processing (outcome unknown, being resolved)"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CLOSED = "closed", "Closed (cancelled or expired)"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class Order(TenantOwnedModel, TimeStampedModel):
    """What the merchant sells in one go. A user session sees only the orders of its wallet user."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="wallet_user_id")

    public_id = public_id_field("ord")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="orders")
    mini_program = models.ForeignKey(MiniProgram, on_delete=models.PROTECT, related_name="orders")
    wallet_user = models.ForeignKey(
        WalletUser,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        help_text="Set for orders a user session placed.",
    )
    reference = models.CharField(max_length=64, null=True, blank=True, help_text="The merchant's order number.")  # noqa: DJ001 - NULL: unique only when given
    description = models.CharField(max_length=256)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    refunded_amount = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    items = models.JSONField(
        default=list, blank=True, help_text="Catalogue lines as priced at creation: sku, name, quantity, unit_price."
    )
    expires_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "reference"],
                condition=models.Q(reference__isnull=False),
                name="order_reference_unique_per_merchant",
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="order_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0, refunded_amount__lte=models.F("amount")),
                name="order_refunds_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["merchant", "-public_id"], name="order_merchant_list_idx"),
            models.Index(fields=["merchant", "status"], name="order_merchant_status_idx"),
            models.Index(fields=["status", "expires_at"], name="order_expiry_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id


class PaymentStatus(models.TextChoices):
    INITIATED = "initiated", "Initiated (stored, not yet sent)"
    PENDING = "pending", "Pending (cashier handed out)"
    UNKNOWN = "unknown", "Unknown (being resolved by inquiry)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Payment(TenantOwnedModel, TimeStampedModel):
    """One attempt to collect an order at its super app. ``payment_request_id`` is generated and stored
    before the wallet is called and reused on every retry, so retries are idempotent on both sides."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="order__wallet_user_id")

    public_id = public_id_field("pay")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    payment_request_id = models.CharField(
        max_length=64, unique=True, help_text="paymentRequestId, or out_trade_no of an orderStr payment."
    )
    trade_pay_mode = models.CharField(max_length=20, choices=TradePayMode.choices, default=TradePayMode.PAYMENT_URL)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.INITIATED)
    wallet_payment_id = models.CharField(max_length=64, blank=True, help_text="paymentId, or trade_no.")
    payment_url = models.URLField(max_length=4096, blank=True)
    order_str = models.TextField(blank=True, help_text="The signed orderStr handed to my.tradePay.")
    failure_code = models.CharField(max_length=64, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_inquiry_at"], name="payment_inquiry_idx")]

    def __str__(self) -> str:
        return self.payment_request_id


class PaymentEvent(TenantOwnedModel):
    """One status change of an order or its payment: from, to, source, when, why. Never updated or deleted."""

    tenant_fields = MERCHANT_OWNED

    public_id = public_id_field("evt")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    refund = models.ForeignKey("Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    subject = models.CharField(max_length=10, help_text="order, payment or refund")
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    source = models.CharField(max_length=30, help_text="api, wallet_response, wallet_inquiry, client_result, …")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["order", "created_at"], name="payment_event_order_idx")]

    def __str__(self) -> str:
        return f"{self.subject} {self.from_status} → {self.to_status}"


class RefundStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Refund(TenantOwnedModel, TimeStampedModel):
    """Money returned from a paid order. ``refund_request_id`` is stored before the wallet call and reused."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="order__wallet_user_id")

    public_id = public_id_field("ref")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    refund_request_id = models.CharField(max_length=64, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=20, choices=RefundStatus.choices, default=RefundStatus.PROCESSING)
    wallet_refund_id = models.CharField(max_length=64, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive")]
        indexes = [models.Index(fields=["status", "next_inquiry_at"], name="refund_inquiry_idx")]

    def __str__(self) -> str:
        return self.refund_request_id
