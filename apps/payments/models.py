"""Orders, their payment attempts, refunds and pre-authorizations. Amounts are integers in the currency's
minor unit.

Statuses move only through ``services`` under a row lock, by the tables in ``transitions``, and every move
appends a ``PaymentEvent``.
"""

from django.db import models

from apps.core.distribution import MerchantForeignKey, MerchantOneToOneField, unique_per_merchant
from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.miniprograms.models import MiniProgram
from apps.superapps.models import TradePayMode
from apps.usersessions.models import WalletUser

MERCHANT_OWNED = TenantFields(isv="isv_id", merchant="merchant_id")


class OrderKind(models.TextChoices):
    PAYMENT = "payment", "Payment"
    PRE_AUTHORIZATION = "pre_authorization", "Pre-authorization (captured later)"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending (awaiting the user)"
    PROCESSING = "processing", "Processing (outcome unknown, being resolved)"
    AUTHORIZED = "authorized", "Authorized (funds frozen, awaiting capture)"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CLOSED = "closed", "Closed (cancelled or expired)"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class Order(TenantOwnedModel, TimeStampedModel):
    """What the merchant sells in one go. A user session sees only the orders of its wallet user."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="wallet_user_id")

    public_id = public_id_field("ord", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="orders")
    mini_program = models.ForeignKey(MiniProgram, on_delete=models.PROTECT, related_name="orders")
    wallet_user = MerchantForeignKey(
        WalletUser,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        help_text="Set for orders a user session placed.",
    )
    reference = models.CharField(max_length=64, null=True, blank=True, help_text="The merchant's order number.")  # noqa: DJ001 - NULL: unique only when given
    kind = models.CharField(max_length=20, choices=OrderKind.choices, default=OrderKind.PAYMENT)
    description = models.CharField(max_length=256)
    amount = models.BigIntegerField(help_text="What the user is asked to pay; for a pre-authorization, to freeze.")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    paid_amount = models.BigIntegerField(default=0, help_text="What succeeded payments (or captures) collected.")
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
            *unique_per_merchant("order", "public_id"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="order_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(paid_amount__gte=0, paid_amount__lte=models.F("amount")),
                name="order_paid_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0, refunded_amount__lte=models.F("paid_amount")),
                name="order_refunds_within_paid",
            ),
        ]
        # The API lists by public id; the admin's lists end in their ordering (newest first), so a page
        # filtered by status, kind, mini program or dates reads its rows in index order and stops; the
        # dashboard sums a tenant's paid orders per day.
        indexes = [
            models.Index(fields=["merchant", "-public_id"], name="order_merchant_list_idx"),
            models.Index(fields=["merchant", "-created_at"], name="order_merchant_created_idx"),
            models.Index(fields=["merchant", "status", "-created_at"], name="order_merchant_status_list_idx"),
            models.Index(fields=["merchant", "kind", "-created_at"], name="order_merchant_kind_list_idx"),
            models.Index(fields=["mini_program", "-created_at"], name="order_mini_program_list_idx"),
            models.Index(fields=["isv", "-created_at"], name="order_isv_list_idx"),
            models.Index(fields=["merchant", "paid_at"], name="order_merchant_paid_idx"),
            models.Index(fields=["isv", "paid_at"], name="order_isv_paid_idx"),
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
    """One attempt to collect an order at its super app, or one capture of its pre-authorization.
    ``payment_request_id`` is generated and stored before the wallet is called and reused on every retry, so
    retries are idempotent on both sides."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="order__wallet_user_id")

    public_id = public_id_field("pay", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = MerchantForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    payment_request_id = models.CharField(
        max_length=64,
        db_index=True,
        help_text="paymentRequestId; out_trade_no of an orderStr payment or a capture; captureRequestId.",
    )
    amount = models.BigIntegerField(help_text="The order's amount; a capture's own.")
    pre_authorization = MerchantForeignKey(
        "PreAuthorization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="captures",
        help_text="Set for a capture of the order's pre-authorization.",
    )
    capture_final = models.BooleanField(default=False, help_text="A capture that releases what stays frozen.")
    trade_pay_mode = models.CharField(max_length=20, choices=TradePayMode.choices, default=TradePayMode.PAYMENT_URL)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.INITIATED)
    wallet_payment_id = models.CharField(max_length=64, blank=True, help_text="paymentId, or trade_no.")
    payment_url = models.URLField(max_length=4096, blank=True)
    order_str = models.TextField(blank=True, help_text="The signed orderStr handed to my.tradePay.")
    failure_code = models.CharField(max_length=64, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_positive"),
            *unique_per_merchant("payment", "public_id", "payment_request_id"),
        ]
        indexes = [
            models.Index(fields=["status", "next_inquiry_at"], name="payment_inquiry_idx"),
            models.Index(fields=["wallet_payment_id"], name="payment_wallet_id_idx"),
        ]

    def __str__(self) -> str:
        return self.payment_request_id


class PaymentEvent(TenantOwnedModel):
    """One status change of an order or its payment: from, to, source, when, why. Never updated or deleted."""

    tenant_fields = MERCHANT_OWNED

    public_id = public_id_field("evt", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = MerchantForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    payment = MerchantForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    refund = MerchantForeignKey("Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    pre_authorization = MerchantForeignKey(
        "PreAuthorization", on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    subject = models.CharField(
        max_length=30, help_text="order, payment, refund, preauthorization or preauthorizationrelease"
    )
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    source = models.CharField(max_length=30, help_text="api, wallet_response, wallet_inquiry, client_result, …")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = unique_per_merchant("payment_event", "public_id")
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

    public_id = public_id_field("ref", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = MerchantForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = MerchantForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    refund_request_id = models.CharField(max_length=64, db_index=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=20, choices=RefundStatus.choices, default=RefundStatus.PROCESSING)
    wallet_refund_id = models.CharField(max_length=64, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
            *unique_per_merchant("refund", "public_id", "refund_request_id"),
        ]
        indexes = [
            models.Index(fields=["status", "next_inquiry_at"], name="refund_inquiry_idx"),
            models.Index(fields=["wallet_refund_id"], name="refund_wallet_id_idx"),
        ]

    def __str__(self) -> str:
        return self.refund_request_id


class PreAuthorizationStatus(models.TextChoices):
    PENDING = "pending", "Pending (awaiting the user)"
    AUTHORIZED = "authorized", "Authorized (funds frozen)"
    PARTIALLY_CAPTURED = "partially_captured", "Partially captured (the rest still frozen)"
    COMPLETED = "completed", "Completed (captured; nothing left frozen)"
    RELEASED = "released", "Released (nothing captured; all given back)"
    EXPIRED = "expired", "Expired (what was still frozen went back)"
    FAILED = "failed", "Failed"


OPEN_PRE_AUTHORIZATION = (PreAuthorizationStatus.AUTHORIZED, PreAuthorizationStatus.PARTIALLY_CAPTURED)


class PreAuthorization(TenantOwnedModel, TimeStampedModel):
    """Funds frozen in the user's wallet for its order, to be captured (in one or several payments of the
    order) or released. ``out_order_no``/``out_request_no`` are stored before the wallet hears of them; for a
    ``payment_url`` super app ``out_order_no`` is the authorization payment's ``paymentRequestId`` and
    ``auth_no`` its ``paymentId``. What is left frozen is ``amount - captured_amount - released_amount``."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="order__wallet_user_id")

    public_id = public_id_field("pau", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = MerchantOneToOneField(Order, on_delete=models.PROTECT, related_name="pre_authorization")
    trade_pay_mode = models.CharField(max_length=20, choices=TradePayMode.choices)
    out_order_no = models.CharField(max_length=64, db_index=True)
    out_request_no = models.CharField(max_length=64, db_index=True, help_text="The freeze operation's request no.")
    auth_no = models.CharField(max_length=64, blank=True, help_text="The wallet's auth_no (or paymentId).")
    amount = models.BigIntegerField(help_text="Asked to freeze.")
    currency = models.CharField(max_length=3)
    captured_amount = models.BigIntegerField(default=0)
    released_amount = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=PreAuthorizationStatus.choices, default=PreAuthorizationStatus.PENDING
    )
    order_str = models.TextField(blank=True, help_text="The signed freeze orderStr handed to my.tradePay.")
    payment_url = models.URLField(max_length=4096, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(help_text="pay_timeout: after it, nothing can be captured.")
    authorized_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="preauthorization_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(
                    captured_amount__gte=0,
                    released_amount__gte=0,
                    amount__gte=models.F("captured_amount") + models.F("released_amount"),
                ),
                name="preauthorization_within_frozen",
            ),
            *unique_per_merchant("preauthorization", "public_id", "order", "out_order_no", "out_request_no"),
        ]
        indexes = [
            models.Index(fields=["merchant", "-public_id"], name="preauth_merchant_list_idx"),
            models.Index(fields=["status", "expires_at"], name="preauth_expiry_idx"),
            models.Index(fields=["status", "next_inquiry_at"], name="preauth_inquiry_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def remaining_amount(self) -> int:
        """Still frozen (or, before authorisation, to be frozen)."""
        if self.status not in (PreAuthorizationStatus.PENDING, *OPEN_PRE_AUTHORIZATION):
            return 0
        return self.amount - self.captured_amount - self.released_amount


class ReleaseStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PreAuthorizationRelease(TenantOwnedModel, TimeStampedModel):
    """Frozen money given back to the user (an unfreeze, or the void of an authorization payment).
    ``out_request_no`` is stored before the wallet call and sent again, with the same amount, on retry."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="order__wallet_user_id")

    public_id = public_id_field("rel", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    order = MerchantForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    pre_authorization = MerchantForeignKey(PreAuthorization, on_delete=models.PROTECT, related_name="releases")
    out_request_no = models.CharField(max_length=64, db_index=True)
    amount = models.BigIntegerField()
    reason = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.PROCESSING)
    wallet_operation_id = models.CharField(max_length=64, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="release_amount_positive"),
            *unique_per_merchant("release", "public_id", "out_request_no"),
        ]
        indexes = [models.Index(fields=["status", "next_inquiry_at"], name="release_inquiry_idx")]

    def __str__(self) -> str:
        return self.out_request_no
