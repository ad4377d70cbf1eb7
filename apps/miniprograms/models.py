from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.crypto import EncryptedFields
from apps.core.distribution import unique_per_merchant
from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.superapps.models import SuperApp, TradePayMode

from .validators import validate_app_id, validate_currency, validate_sku, validate_webhook_url

# The wire format carries amounts as strings of at most 18 digits (see ``apps.core.money``).
MAX_MINOR_UNITS = 10**18 - 1


class MiniProgramStatus(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    PUBLISHED = "published", "Published"
    SUSPENDED = "suspended", "Suspended"


class Feature(models.TextChoices):
    PAYMENT = "payment", "Payment"
    PRE_AUTHORIZATION = "pre_authorization", "Pre-authorization"
    USER_INFO = "user_info", "User information (applyToken)"


class MiniProgram(EncryptedFields, TenantOwnedModel, TimeStampedModel):
    """A merchant's mini program at one super app. Payment is on from creation; other features are added.

    ``app_id`` is the super app's appId: one mini program per appId and super app, whoever registers it.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")
    encrypted_fields = ("webhook_secret_ciphertext",)

    public_id = public_id_field("mp")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="mini_programs")
    super_app = models.ForeignKey(SuperApp, on_delete=models.PROTECT, related_name="mini_programs")
    app_id = models.CharField("appId", max_length=64, validators=[validate_app_id])
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=MiniProgramStatus.choices, default=MiniProgramStatus.DEVELOPMENT)
    trade_pay_mode = models.CharField(max_length=20, choices=TradePayMode.choices)
    default_currency = models.CharField(max_length=3, validators=[validate_currency], help_text="ISO 4217, e.g. USD.")
    webhook_url = models.URLField(
        max_length=500, blank=True, validators=[validate_webhook_url], help_text="The merchant server's webhook URL."
    )
    # Encrypted, bound to this row (see EncryptedFields); shown in clear only when (re)generated.
    webhook_secret_ciphertext = models.TextField(editable=False)
    webhook_secret_rotated_at = models.DateTimeField(editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["super_app", "app_id"], name="miniprogram_app_id_unique_per_super_app"),
        ]
        indexes = [models.Index(fields=["merchant", "public_id"], name="miniprogram_merchant_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.super_app_id and self.trade_pay_mode and self.trade_pay_mode not in self.super_app.trade_pay_modes:
            raise ValidationError(
                {
                    "trade_pay_mode": ValidationError(
                        f"{self.super_app.name} does not support the trade pay mode {self.trade_pay_mode!r}.",
                        code="trade_pay_mode_unsupported",
                    )
                }
            )


class MiniProgramFeature(TenantOwnedModel, TimeStampedModel):
    """One feature of a mini program, on or off. A missing row means off."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("mpf")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    mini_program = models.ForeignKey(MiniProgram, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=30, choices=Feature.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "mini_program", "feature"], name="miniprogram_feature_unique_per_mini_program"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_feature_display()}: {'on' if self.enabled else 'off'}"


class Product(TenantOwnedModel, TimeStampedModel):
    """A catalogue entry of a merchant: a mini program orders it by SKU, and the price comes from here."""

    # The catalogue is what a mini program shows its users: their sessions may read it.
    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", readable_by_users=True)

    public_id = public_id_field("prod", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="products")
    sku = models.CharField("SKU", max_length=64, validators=[validate_sku])
    name = models.CharField(max_length=200)
    price = models.PositiveBigIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_MINOR_UNITS)],
        help_text="In the currency's minor unit (cents for USD).",
    )
    currency = models.CharField(max_length=3, validators=[validate_currency], help_text="ISO 4217; never changes.")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku"], name="product_sku_unique_per_merchant"),
            *unique_per_merchant("product", "public_id"),
        ]
        indexes = [models.Index(fields=["merchant", "public_id"], name="product_merchant_idx")]

    def __str__(self) -> str:
        return f"{self.sku} · {self.name}"
