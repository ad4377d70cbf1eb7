from django.db import models

from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel


class Isv(TenantOwnedModel, TimeStampedModel):
    """An independent software vendor: runs the server side for many merchants."""

    tenant_fields = TenantFields(isv="id", merchant=None)

    public_id = public_id_field("isv")
    name = models.CharField(max_length=200, unique=True)

    class Meta:
        verbose_name = "ISV"
        verbose_name_plural = "ISVs"

    def __str__(self) -> str:
        return self.name


class Merchant(TenantOwnedModel, TimeStampedModel):
    """A business that sells through mini programs; onboarded and operated by exactly one ISV."""

    tenant_fields = TenantFields(isv="isv_id", merchant="id")

    public_id = public_id_field("mer")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="merchants")
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["isv", "name"], name="merchant_name_unique_per_isv")]

    def __str__(self) -> str:
        return self.name


class WalletCredential(TenantOwnedModel, TimeStampedModel):
    """The client id and RSA key pair with which an ISV (for all its merchants) or one merchant signs
    requests to one super app. The private key is encrypted at rest, bound to this row.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("cred")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="wallet_credentials")
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet_credentials"
    )
    super_app = models.ForeignKey("superapps.SuperApp", on_delete=models.PROTECT, related_name="credentials")
    client_id = models.CharField(max_length=128)
    partner_id = models.CharField(max_length=64, blank=True, help_text="v1 partnerId, if the wallet assigned one.")
    key_version = models.CharField(max_length=8, default="1")
    public_key_pem = models.TextField()
    private_key_ciphertext = models.TextField(editable=False)

    class Meta:
        constraints = [
            # Two partial constraints rather than nulls_distinct=False, which SQLite silently ignores.
            models.UniqueConstraint(
                fields=["merchant", "super_app"],
                condition=models.Q(merchant__isnull=False),
                name="one_credential_per_merchant_and_super_app",
            ),
            models.UniqueConstraint(
                fields=["isv", "super_app"],
                condition=models.Q(merchant__isnull=True),
                name="one_default_credential_per_isv_and_super_app",
            ),
            models.UniqueConstraint(fields=["super_app", "client_id"], name="client_id_unique_per_super_app"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} at {self.super_app_id}"

    @property
    def encryption_context(self) -> str:
        return f"merchants.walletcredential:{self.public_id}:private_key"
