"""The sandbox wallet's own books: its key, its merchants (clients), test users, money, and what it sends.

Nothing here is tenant-scoped or shown in the platform admin: the sandbox is a separate party that happens
to share the process.
"""

import dataclasses
import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import conf

# An authorization payment without a paymentExpiryTime lapses this long after the user authorised it, as
# Antom unfreezes uncaptured authorizations after seven days.
AUTHORIZATION_TTL = dt.timedelta(days=7)


@dataclasses.dataclass(frozen=True)
class UserSeed:
    """A built-in wallet user of the cashier."""

    login: str
    customer_id: str
    display_name: str
    fixed_balance: int | None  # None: SANDBOX_DEFAULT_BALANCE, in every currency

    @property
    def opening_balance(self) -> int:
        return conf.get("DEFAULT_BALANCE") if self.fixed_balance is None else self.fixed_balance


TEST_USERS = {
    seed.login: seed
    for seed in (
        UserSeed("alice", "2188000000000001", "Alice", None),
        UserSeed("bob", "2188000000000002", "Bob", 500),
    )
}


class WalletKey(models.Model):
    """The wallet's RSA key pair: one row, ever (``singleton`` is unique), private half encrypted at rest."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    private_key_encrypted = models.TextField()
    public_key_pem = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return "wallet key"


class SandboxClient(models.Model):
    """A merchant (or ISV) registered with the wallet: who may call the OpenAPI, and with which key."""

    client_id = models.CharField(max_length=64, unique=True)
    public_key_pem = models.TextField()
    key_version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=256, help_text="Payee name shown on the cashier.")
    partner_id = models.CharField(max_length=64, blank=True, help_text="v1 partnerId, if any.")
    classic_app_id = models.CharField(max_length=32, blank=True, help_text="app_id of its orderStr, if any.")
    site_name = models.CharField(max_length=64, blank=True)
    faults = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["classic_app_id"], condition=~Q(classic_app_id=""), name="sandbox_unique_classic_app"
            ),
        ]

    def __str__(self) -> str:
        return self.client_id


class SandboxUser(models.Model):
    """A wallet user of the cashier (``alice``, ``bob``); created the first time one pays or authorises."""

    login = models.CharField(max_length=32, unique=True)
    customer_id = models.CharField(max_length=32, unique=True)
    display_name = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.login


class Balance(models.Model):
    """Money in one currency held by exactly one user or one client, in minor units, never negative."""

    user = models.ForeignKey(SandboxUser, null=True, blank=True, on_delete=models.CASCADE)
    client = models.ForeignKey(SandboxClient, null=True, blank=True, on_delete=models.CASCADE)
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="sandbox_balance_not_negative"),
            models.CheckConstraint(
                condition=Q(user__isnull=True, client__isnull=False) | Q(user__isnull=False, client__isnull=True),
                name="sandbox_balance_one_owner",
            ),
            models.UniqueConstraint(
                fields=["user", "currency"], condition=Q(user__isnull=False), name="sandbox_unique_user_balance"
            ),
            models.UniqueConstraint(
                fields=["client", "currency"],
                condition=Q(client__isnull=False),
                name="sandbox_unique_client_balance",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user or self.client} {self.currency} {self.amount}"


class Payment(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "PROCESSING"
        SUCCESS = "SUCCESS"
        FAIL = "FAIL"  # never stored: what inquiries report for an unpaid payment past its expiry
        CANCELLED = "CANCELLED"

    payment_id = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(SandboxClient, on_delete=models.PROTECT, related_name="payments")
    dialect = models.CharField(max_length=3, help_text="v1, v2 or ams: the shape of its notification.")
    payment_request_id = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    response_body = models.TextField(help_text="The first answer, returned again for an identical retry.")
    partner_id = models.CharField(max_length=64, blank=True)
    product_code = models.CharField(max_length=32)
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField()
    payee_name = models.CharField(max_length=256)
    order_description = models.CharField(max_length=256, blank=True)
    notify_url = models.CharField(max_length=1024, blank=True)
    redirect_url = models.CharField(max_length=1024, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    faults = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    payer = models.ForeignKey(SandboxUser, null=True, blank=True, on_delete=models.PROTECT)
    paid_at = models.DateTimeField(null=True, blank=True, help_text="Paid, or for an authorization authorised.")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    authorization = models.BooleanField(default=False, help_text="paymentFactor.isAuthorizationPayment")
    captured = models.PositiveBigIntegerField(default=0, help_text="An authorization's captures so far.")
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="When the uncaptured rest of an authorization went back to the payer."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "payment_request_id"], name="sandbox_unique_payment_request")
        ]
        indexes = [
            models.Index(fields=["client", "paid_at"]),
            models.Index(fields=["client", "cancelled_at"]),
            models.Index(fields=["authorization", "status", "released_at"]),
        ]

    def __str__(self) -> str:
        return self.payment_id

    def is_expired(self, now) -> bool:
        return self.status == self.Status.PROCESSING and self.expires_at is not None and self.expires_at <= now

    @property
    def auth_expires_at(self) -> dt.datetime | None:
        """An authorization lapses at its paymentExpiryTime, else ``AUTHORIZATION_TTL`` after it was authorised."""
        if self.expires_at is not None:
            return self.expires_at
        return self.paid_at + AUTHORIZATION_TTL if self.paid_at else None

    @property
    def uncaptured(self) -> int:
        """What an authorization still holds frozen for the merchant."""
        return 0 if self.released_at or self.status != self.Status.SUCCESS else self.amount - self.captured

    def lapsed(self) -> bool:
        """The rest of the authorization went back to the payer because it expired, not by a void or last capture."""
        return self.released_at is not None and self.released_at >= self.auth_expires_at


class Refund(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "PROCESSING"
        SUCCESS = "SUCCESS"

    refund_id = models.CharField(max_length=64, unique=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    client = models.ForeignKey(SandboxClient, on_delete=models.PROTECT, related_name="refunds")
    refund_request_id = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    response_body = models.TextField(blank=True, help_text="Set once the refund is final.")
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=256, blank=True)
    notify_url = models.URLField(max_length=1024, blank=True, help_text="refundNotifyUrl: notifyRefund goes there.")
    status = models.CharField(max_length=16, choices=Status.choices)
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "refund_request_id"], name="sandbox_unique_refund_request")
        ]
        indexes = [models.Index(fields=["client", "refunded_at"])]

    def __str__(self) -> str:
        return self.refund_id


class Capture(models.Model):
    """A capture of an authorization payment (``payments/capture``): frozen money to the merchant."""

    capture_id = models.CharField(max_length=64, unique=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="captures")
    client = models.ForeignKey(SandboxClient, on_delete=models.PROTECT, related_name="captures")
    capture_request_id = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    response_body = models.TextField(help_text="The answer, returned again for an identical retry.")
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField()
    last = models.BooleanField(help_text="isLastCapture: the uncaptured rest went back to the payer.")
    captured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "capture_request_id"], name="sandbox_unique_capture_request")
        ]
        indexes = [models.Index(fields=["client", "captured_at"])]

    def __str__(self) -> str:
        return self.capture_id


class AuthCode(models.Model):
    """What ``my.getAuthCode`` hands the mini program: single use, short-lived."""

    code = models.CharField(max_length=64, unique=True)
    app_id = models.CharField(max_length=64)
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"auth code for {self.app_id}"


class AccessToken(models.Model):
    """One grant to one client; refreshing it uses up the refresh token and issues a new grant."""

    client = models.ForeignKey(SandboxClient, on_delete=models.CASCADE)
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE)
    scopes = models.JSONField(default=list)
    access_token = models.CharField(max_length=128, unique=True)
    access_token_expires_at = models.DateTimeField()
    refresh_token = models.CharField(max_length=128, unique=True)
    refresh_token_expires_at = models.DateTimeField()
    refresh_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"grant to {self.client_id}"


class Registration(models.Model):
    """A sub-merchant registration (§7) and its simulated review."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        COMPLETED = "COMPLETED"
        REJECTED = "REJECTED"

    client = models.ForeignKey(SandboxClient, on_delete=models.PROTECT, related_name="registrations")
    registration_request_id = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    response_body = models.TextField()
    reference_merchant_id = models.CharField(max_length=64)
    notify_url = models.CharField(max_length=2048, blank=True)
    merchant_info = models.JSONField()
    product_codes = models.JSONField()
    faults = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reject_reason = models.CharField(max_length=256, blank=True)
    review_due_at = models.DateTimeField()
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client", "registration_request_id"], name="sandbox_unique_registration_request"
            )
        ]
        indexes = [
            models.Index(fields=["client", "reference_merchant_id"]),
            models.Index(fields=["status", "review_due_at"]),
        ]

    def __str__(self) -> str:
        return self.registration_request_id


class ClassicOrder(models.Model):
    """An ``orderStr`` order (§8): an app payment or a pre-authorisation freeze, or a trade that captured part
    of a freeze (``alipay.trade.pay`` with ``auth_no``)."""

    class Kind(models.TextChoices):
        TRADE = "TRADE", "alipay.trade.app.pay"
        FREEZE = "FREEZE", "alipay.fund.auth.order.app.freeze"

    class Status(models.TextChoices):
        PROCESSING = "PROCESSING"
        SUCCESS = "SUCCESS"
        # A trade closed unpaid (alipay.trade.close) or refunded in full; a freeze with nothing left frozen.
        CLOSED = "CLOSED"

    wallet_no = models.CharField(max_length=64, unique=True, help_text="trade_no, or auth_no for a freeze.")
    client = models.ForeignKey(SandboxClient, on_delete=models.PROTECT, related_name="classic_orders")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    out_no = models.CharField(max_length=64, help_text="out_trade_no, or out_order_no for a freeze.")
    out_request_no = models.CharField(max_length=64, blank=True)
    request_fingerprint = models.CharField(max_length=64)
    title = models.CharField(max_length=256)
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField()
    notify_url = models.CharField(max_length=1024, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="A trade's time_expire, if given; a freeze's end (pay_timeout)."
    )
    faults = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    payer = models.ForeignKey(SandboxUser, null=True, blank=True, on_delete=models.PROTECT)
    operation_id = models.CharField(max_length=64, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True, help_text="Paid, or for a freeze authorised.")
    closed_at = models.DateTimeField(null=True, blank=True)
    captured = models.PositiveBigIntegerField(default=0, help_text="A freeze's total_pay_amount.")
    unfrozen = models.PositiveBigIntegerField(default=0, help_text="What a freeze gave back to the payer.")
    authorization = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="captures", help_text="auth_no paid from."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "kind", "out_no"], name="sandbox_unique_classic_order")
        ]
        indexes = [models.Index(fields=["kind", "status", "expires_at"])]

    def __str__(self) -> str:
        return self.wallet_no

    def is_expired(self, now) -> bool:
        return self.status == self.Status.PROCESSING and self.expires_at is not None and self.expires_at <= now

    @property
    def rest(self) -> int:
        """A freeze's rest_amount: still frozen, neither captured nor given back."""
        return self.amount - self.captured - self.unfrozen if self.status == self.Status.SUCCESS else 0

    def lapsed(self) -> bool:
        """A freeze closed because its pay_timeout ran out (closing it then records that moment)."""
        return self.status == self.Status.CLOSED and self.expires_at is not None and self.closed_at >= self.expires_at


class ClassicRefund(models.Model):
    """A refund of an orderStr trade (``alipay.trade.refund``): one per ``out_request_no`` of the trade."""

    order = models.ForeignKey(ClassicOrder, on_delete=models.PROTECT, related_name="refunds")
    out_request_no = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField()
    refund_total = models.PositiveBigIntegerField(help_text="refund_fee: the trade's refunds up to this one.")
    reason = models.CharField(max_length=256, blank=True)
    refunded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "out_request_no"], name="sandbox_unique_classic_refund")
        ]

    def __str__(self) -> str:
        return self.out_request_no


class ClassicUnfreeze(models.Model):
    """``alipay.fund.auth.order.unfreeze``: part or all of a freeze given back, one per ``out_request_no``."""

    order = models.ForeignKey(ClassicOrder, on_delete=models.PROTECT, related_name="unfreezes")
    out_request_no = models.CharField(max_length=64)
    operation_id = models.CharField(max_length=64, unique=True)
    amount = models.PositiveBigIntegerField()
    remark = models.CharField(max_length=100)
    unfrozen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "out_request_no"], name="sandbox_unique_classic_unfreeze")
        ]

    def __str__(self) -> str:
        return self.out_request_no


class Notification(models.Model):
    """The outbox: one message to one merchant URL, retried on a schedule until it is acknowledged."""

    class Kind(models.TextChoices):
        PAYMENT = "PAYMENT", "notifyPayment"
        REFUND = "REFUND", "notifyRefund"
        REGISTRATION = "REGISTRATION", "notifyRegistrationStatus"
        CLASSIC = "CLASSIC", "classic async notification"

    class Status(models.TextChoices):
        PENDING = "PENDING"
        DELIVERED = "DELIVERED"
        FAILED = "FAILED"

    client = models.ForeignKey(SandboxClient, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reference = models.CharField(max_length=64, help_text="paymentId, registrationRequestId or trade/auth no.")
    url = models.CharField(max_length=2048)
    body = models.TextField(help_text="Exactly the bytes sent (UTF-8).")
    corrupt_signature = models.BooleanField(default=False)
    held = models.BooleanField(default=False, help_text="out_of_order_notify: waits for a later one.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class NotificationAttempt(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=512, blank=True)
    response_excerpt = models.CharField(max_length=512, blank=True)
    delivered = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}"
