"""The rows the baselines write: two per order create, one per notification."""

from django.db import models


class BaselineOrder(models.Model):
    description = models.CharField(max_length=256)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"bo_{self.pk}"


class BaselinePayment(models.Model):
    order = models.ForeignKey(BaselineOrder, on_delete=models.CASCADE, related_name="+")
    payment_request_id = models.CharField(max_length=64)
    wallet_payment_id = models.CharField(max_length=64)
    payment_url = models.URLField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.payment_request_id


class BaselineNotification(models.Model):
    """The one row the notification baseline writes per delivery; its task stamps ``processed_at``."""

    body = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"bn_{self.pk}"
