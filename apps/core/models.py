from django.db import models

from apps.core.crypto import EncryptedFields


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class IdempotencyState(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight (the view is running)"
    COMPLETED = "completed", "Completed (the response is stored)"


class IdempotencyRecord(EncryptedFields, models.Model):
    """One ``Idempotency-Key`` of one caller: the request it was first used for and, once the view ran, the
    response to replay for 24 hours.

    Not tenant-owned on purpose: ``scope`` is the caller's ``Principal.identity_key()`` (which names its
    tenant), the row is found only by that scope and the key the caller sent, and only the API's idempotency
    layer reads it — nothing here is ever listed or shown to a tenant, so a scoped manager would add nothing.
    The stored response is encrypted: it may carry a secret shown once (a new API key, a webhook secret).
    """

    encrypted_fields = ("response_body_ciphertext",)

    scope = models.CharField(max_length=255, help_text="The caller: Principal.identity_key().")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    state = models.CharField(max_length=16, choices=IdempotencyState.choices, default=IdempotencyState.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=255, blank=True)
    response_body_ciphertext = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique_per_scope")]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expires_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"

    def encryption_context(self, field: str) -> str:
        return f"{self._meta.label_lower}:{self.pk}:{field}"
