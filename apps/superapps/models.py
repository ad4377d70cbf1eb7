import functools
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.core.models import TimeStampedModel

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
