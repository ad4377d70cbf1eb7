import functools
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel

from .client.messages import ApiVersion


class TradePayMode(models.TextChoices):
    PAYMENT_URL = "payment_url", "paymentUrl (wallet cashier URL)"
    ORDER_STR = "order_str", "orderStr (signed classic order string)"


def _callback_token() -> str:
    return secrets.token_urlsafe(24)


class SuperApp(TimeStampedModel):
    """One wallet the platform connects to: where its gateway is and how to trust what it sends.

    Shared by every tenant (a reference table): operators manage it, tenants only choose it.
    """

    code = models.SlugField(max_length=40, unique=True, help_text="Short stable name, e.g. 'sandbox', 'gcash'.")
    name = models.CharField(max_length=100)
    gateway_base_url = models.URLField(
        max_length=500,
        help_text="Base URL including any path prefix, e.g. https://api.wallet.example/api/open",
    )
    api_version = models.CharField(max_length=2, choices=[(v.value, v.value) for v in ApiVersion], default="v2")
    wallet_public_key_pem = models.TextField(help_text="The wallet's RSA public key (PEM), to verify its messages.")
    wallet_key_version = models.CharField(max_length=8, default="1")
    trade_pay_modes = models.JSONField(default=list, help_text="Supported my.tradePay modes.")
    site_name = models.CharField(
        max_length=40,
        blank=True,
        help_text="customerBelongsTo / my.getSiteInfo siteName, where the wallet wants it.",
    )
    classic_gateway_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="The classic gateway (gateway.do) for orderStr payments, e.g. https://openapi.wallet.example/gateway.do",
    )
    payment_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text='The largest single payment per currency, in minor units, e.g. {"USD": 1000000}.',
    )
    notification_tolerance_seconds = models.PositiveIntegerField(
        default=300,
        help_text="How far a notification's Request-Time may be from our clock, either way. Replays inside it are "
        "no-ops (deduplicated); widen it only for a wallet whose retries keep their first Request-Time.",
    )
    settlement_fee_bps = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The fee the wallet charges on a payment, in basis points (150 = 1.5 %), rounded half up to a "
        "minor unit. Set, reconciliation flags any other fee as fee_unexpected; empty, only fees that do not add "
        "up (net = amount - fee) are flagged.",
    )
    # Part of the notification URLs the platform hands the wallet: unguessable, so forged posts are cheap to drop.
    callback_token = models.CharField(max_length=64, unique=True, default=_callback_token, editable=False)

    def __str__(self) -> str:
        return self.name

    def registration_notify_url(self) -> str:
        """The ``registrationNotifyURL`` for ``notifyRegistrationStatus``."""
        return settings.PUBLIC_BASE_URL + _callback_path("callbacks:notify-registration", self.callback_token)

    def payment_notify_url(self) -> str:
        """The ``paymentNotifyUrl`` the platform puts in its requests to this super app (on every order)."""
        return settings.PUBLIC_BASE_URL + _callback_path("callbacks:notify-payment", self.callback_token)

    def refund_notify_url(self) -> str:
        """The ``refundNotifyUrl`` of the platform's refunds at this super app."""
        return settings.PUBLIC_BASE_URL + _callback_path("callbacks:notify-refund", self.callback_token)

    def classic_notify_url(self) -> str:
        """The ``notify_url`` of the platform's orderStrs (trades and freezes) at this super app."""
        return settings.PUBLIC_BASE_URL + _callback_path("callbacks:notify-classic", self.callback_token)


@functools.lru_cache(maxsize=1024)
def _callback_path(name: str, callback_token: str) -> str:
    return reverse(name, args=[callback_token])


class WalletExchange(TenantOwnedModel):
    """One call the platform made to a super app, as evidence: what was sent and answered (secrets and personal
    data scrubbed), whether the answer's signature verified, and how the call ended. Written once, never changed.

    Owned by the credential that signed the call: the merchant's, or none for its ISV's shared credential.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("wx")
    # Foreign keys by name: the merchants app builds on this one, never the other way round.
    isv = models.ForeignKey("merchants.Isv", on_delete=models.CASCADE, related_name="+")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    super_app = models.ForeignKey(SuperApp, on_delete=models.CASCADE, related_name="+")
    # Kept when a credential is replaced: the evidence outlives the key that signed it.
    credential = models.ForeignKey(
        "merchants.WalletCredential", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    operation = models.CharField(max_length=64, help_text="e.g. payments/pay, alipay.trade.query")
    subject = models.CharField(
        max_length=64,
        blank=True,
        help_text="The request id the call is about: paymentRequestId, refundRequestId, captureRequestId, "
        "out_trade_no, out_request_no…",
    )
    request_body = models.JSONField(help_text="As sent, scrubbed (the classic gateway's biz_content).")
    response_body = models.JSONField(null=True, blank=True, help_text="As received, scrubbed; text if not JSON.")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty: no answer came.")
    result_status = models.CharField(max_length=1, blank=True, help_text="S, A, F or U.")
    result_code = models.CharField(max_length=64, blank=True)
    signature_verified = models.BooleanField(null=True, help_text="Empty: no answer came.")
    error = models.CharField(max_length=500, blank=True, help_text="Why the outcome is unknown (timeout, …).")
    duration_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["subject"], name="wallet_exchange_subject"),
            models.Index(fields=["merchant", "-created_at"], name="wallet_exchange_merchant_time"),
            models.Index(fields=["created_at"], name="wallet_exchange_created_at"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.subject}".strip()
