from django.contrib.auth.models import AbstractUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import Role, TenantFields, TenantOwnedModel, TenantScopedManager, TenantScopedQuerySet
from apps.merchants.models import Isv, Merchant


class User(AbstractUser):
    """A person who signs in to the admin. Platform operators are superusers; staff never are."""


class Membership(TenantOwnedModel, TimeStampedModel):
    """A user's role at one ISV (``merchant`` empty) or at one of its merchants. One per user."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("mem")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="memberships")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    may_refund = models.BooleanField(
        default=False, help_text="Lets merchant staff refund orders; owners and admins always may."
    )

    class Meta:
        indexes = [models.Index(fields=["isv", "merchant"], name="membership_tenant_idx")]

    def clean(self) -> None:
        super().clean()
        if self.role == Role.STAFF and self.merchant_id is None:
            raise ValidationError(
                {"role": ValidationError("Staff is a merchant role; at an ISV choose admin or viewer.", "staff_at_isv")}
            )
        if self.may_refund and self.role != Role.STAFF:
            raise ValidationError(
                {
                    "may_refund": ValidationError(
                        "Only staff are granted refunds; owners and admins always may.", "refund_grant_not_staff"
                    )
                }
            )

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} at {self.merchant or self.isv}"


class ApiKey(TenantOwnedModel, TimeStampedModel):
    """A server credential of an ISV (``merchant`` empty) or of one merchant.

    Only a SHA-256 hash of the secret is stored; ``prefix`` is the visible, unique head of the key by
    which it is found and recognised in listings.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("key")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="api_keys")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=20, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        indexes = [models.Index(fields=["isv", "merchant"], name="apikey_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def clean(self) -> None:
        super().clean()
        if self._state.adding and self.expires_at is not None and self.expires_at <= timezone.now():
            raise ValidationError({"expires_at": ValidationError("Must be in the future.", code="in_past")})


class AuditEntryQuerySet(TenantScopedQuerySet):
    """Append-only: rows are never rewritten or removed through the ORM."""

    def update(self, **kwargs):
        raise TypeError("Audit entries are append-only.")

    def delete(self):
        raise TypeError("Audit entries are append-only.")


class AuditEntry(TenantOwnedModel):
    """One thing a staff member did in the admin: who, in which role, to what, when, from where, and the
    fields it changed as ``{field: [before, after]}`` (secret fields are never kept).

    Owned by the target's tenant, so ISV admins see what was done to their ISV and its merchants; an entry
    about a non-tenant object (a super app, a user) has no ISV and only operators see it. A user with entries
    cannot be deleted (deactivate them instead); the actor's name is also kept as it was at the time, since
    usernames may change.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    objects = TenantScopedManager.from_queryset(AuditEntryQuerySet)()

    public_id = public_id_field("aud")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    actor_repr = models.CharField("actor", max_length=150)
    actor_role = models.CharField("role", max_length=20, help_text="operator, or the membership's role")
    action = models.CharField(max_length=64, help_text="add, change, delete, or the admin action's name")
    target_content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    target_object_id = models.CharField(max_length=64)
    target_repr = models.CharField("target", max_length=200)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    message = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["isv", "merchant", "-created_at"], name="audit_tenant_idx"),
            models.Index(fields=["target_content_type", "target_object_id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_repr} · {self.action} · {self.target_repr}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit entries are append-only.")
