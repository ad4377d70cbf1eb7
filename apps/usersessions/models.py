"""Wallet users of a mini program and their short-lived sessions with the platform.

A mini program's front end has no API key: it proves who its user is with an auth code from the super app
(``my.getAuthCode``), which the platform exchanges through ``applyToken``. The session it gets back sees the
merchant's catalogue and that user's own orders, nothing else (see ``TenantFields.wallet_user``).
"""

from django.db import models

from apps.core.crypto import EncryptedFields
from apps.core.distribution import MerchantForeignKey, unique_per_merchant
from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.miniprograms.models import MiniProgram


class WalletUser(EncryptedFields, TenantOwnedModel, TimeStampedModel):
    """One super-app user (``customerId``) as seen by one mini program, with the access token the wallet
    granted for them, encrypted and never returned."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="id")
    encrypted_fields = ("access_token_ciphertext", "refresh_token_ciphertext")

    public_id = public_id_field("wu", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    mini_program = models.ForeignKey(MiniProgram, on_delete=models.PROTECT, related_name="wallet_users")
    customer_id = models.CharField("customerId", max_length=64)
    access_token_ciphertext = models.TextField(editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_ciphertext = models.TextField(editable=False, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "mini_program", "customer_id"], name="wallet_user_unique_per_mini_program"
            ),
            *unique_per_merchant("wallet_user", "public_id"),
        ]

    def __str__(self) -> str:
        return self.customer_id


class UserSession(TenantOwnedModel):
    """A bearer token (``ust_…``, stored as a hash) for one wallet user in one mini program, for minutes."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id", wallet_user="wallet_user_id")

    public_id = public_id_field("uss", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    mini_program = models.ForeignKey(MiniProgram, on_delete=models.PROTECT, related_name="+")
    wallet_user = MerchantForeignKey(WalletUser, on_delete=models.CASCADE, related_name="sessions")
    token_hash = models.CharField(max_length=64, db_index=True, editable=False)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = unique_per_merchant("user_session", "public_id", "token_hash")
        indexes = [models.Index(fields=["expires_at"], name="user_session_expiry_idx")]

    def __str__(self) -> str:
        return self.public_id
