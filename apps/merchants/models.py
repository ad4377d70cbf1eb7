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
