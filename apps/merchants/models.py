import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.core.crypto import EncryptedFields
from apps.core.distribution import MerchantForeignKey, unique_per_merchant
from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel

from .validators import validate_license_document

_REGISTRATION_NO = re.compile(r"^[A-Za-z0-9/-]{4,64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
LICENSE_SUBMITTED_FIELDS = (
    "legal_name",
    "registration_no",
    "registration_type",
    "business_type",
    "address_country",
    "address_city",
    "address_line",
    "effective_date",
    "expiry_date",
    "document",
)


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


class WalletCredential(EncryptedFields, TenantOwnedModel, TimeStampedModel):
    """The client id and RSA key pair with which an ISV (for all its merchants) or one merchant signs
    requests to one super app. The private key is encrypted at rest, bound to this row.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")
    encrypted_fields = ("private_key_ciphertext",)

    public_id = public_id_field("cred")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="wallet_credentials")
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet_credentials"
    )
    super_app = models.ForeignKey("superapps.SuperApp", on_delete=models.PROTECT, related_name="credentials")
    client_id = models.CharField(max_length=128)
    partner_id = models.CharField(max_length=64, blank=True, help_text="v1 partnerId, if the wallet assigned one.")
    classic_app_id = models.CharField(
        max_length=32, blank=True, help_text="The app_id of the classic gateway (orderStr), if the wallet assigned one."
    )
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
            # A classic notification names only its app_id: it must point at one tenant.
            models.UniqueConstraint(
                fields=["super_app", "classic_app_id"],
                condition=~models.Q(classic_app_id=""),
                name="classic_app_id_unique_per_super_app",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} at {self.super_app_id}"


class RegistrationType(models.TextChoices):
    ENTERPRISE = "ENTERPRISE_REGISTRATION_NO", "Enterprise registration number"
    LICENSE = "LICENSE_INFO", "Business license"
    INDIVIDUAL = "INDIVIDUAL_ID", "Sole proprietor ID"


class BusinessType(models.TextChoices):
    ENTERPRISE = "ENTERPRISE", "Enterprise"
    INDIVIDUAL = "INDIVIDUAL", "Individual / sole proprietor"


def license_document_path(instance: "BusinessLicense", filename: str) -> str:
    # Unguessable and tenant-prefixed; the original name is kept only as a suffix for the reader.
    return f"licenses/{instance.merchant.public_id}/{instance.public_id}/{filename[-80:]}"


class BusinessLicense(TenantOwnedModel, TimeStampedModel):
    """A merchant's business license: what the super app verifies before the merchant may take payments.

    One per merchant, edited in place; what was submitted each time is kept in the registration events.
    """

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("lic", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.OneToOneField(Merchant, on_delete=models.PROTECT, related_name="business_license")
    legal_name = models.CharField(max_length=200)
    registration_no = models.CharField(max_length=64)
    registration_type = models.CharField(max_length=40, choices=RegistrationType.choices)
    business_type = models.CharField(max_length=20, choices=BusinessType.choices)
    address_country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    address_city = models.CharField(max_length=100)
    address_line = models.CharField(max_length=300)
    effective_date = models.DateField()
    expiry_date = models.DateField()
    document = models.FileField(upload_to=license_document_path, validators=[validate_license_document])
    contact_name = models.CharField(max_length=200)
    contact_email = models.EmailField()
    contact_phone = models.CharField(max_length=40, blank=True)

    class Meta:
        constraints = unique_per_merchant("business_license", "public_id")

    def __str__(self) -> str:
        return f"{self.legal_name} ({self.registration_no})"

    def clean(self) -> None:
        super().clean()
        problems = {}
        if self.registration_no and not _REGISTRATION_NO.match(self.registration_no):
            problems["registration_no"] = ValidationError(
                "4 to 64 letters, digits, '-' or '/'.", code="invalid_registration_no"
            )
        if self.address_country and not _COUNTRY.match(self.address_country):
            problems["address_country"] = ValidationError(
                "An ISO 3166-1 alpha-2 code, e.g. PH.", code="invalid_country"
            )
        if self.expiry_date and self.expiry_date <= timezone.localdate():
            problems["expiry_date"] = ValidationError("The license has expired.", code="in_past")
        elif self.effective_date and self.expiry_date and self.expiry_date <= self.effective_date:
            problems["expiry_date"] = ValidationError("Must be after the effective date.", code="before_effective")
        if problems:
            raise ValidationError(problems)

    def snapshot(self) -> dict[str, str]:
        """What is sent to a super app for verification, kept with each submission."""
        return {field: str(getattr(self, field)) for field in LICENSE_SUBMITTED_FIELDS}


class RegistrationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    UNDER_REVIEW = "under_review", "Under review"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class Registration(TenantOwnedModel, TimeStampedModel):
    """The verification of one merchant's business license at one super app. Its status only moves
    through ``registration_transition`` (see ``transitions.REGISTRATION``), which records every change."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("reg", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="registrations")
    super_app = models.ForeignKey("superapps.SuperApp", on_delete=models.PROTECT, related_name="registrations")
    status = models.CharField(max_length=20, choices=RegistrationStatus.choices, default=RegistrationStatus.DRAFT)
    # Generated per submission, stored before the wallet call and reused on its retries.
    wallet_request_id = models.CharField(max_length=64, blank=True)
    rejection_reason = models.CharField(max_length=500, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "super_app"], name="one_registration_per_merchant_and_super_app"
            ),
            *unique_per_merchant("registration", "public_id"),
        ]
        indexes = [models.Index(fields=["status", "next_poll_at"], name="registration_poll_idx")]

    def __str__(self) -> str:
        return f"{self.merchant_id} at {self.super_app_id}: {self.status}"


class RegistrationEvent(TenantOwnedModel):
    """One status change of a registration: from, to, who or what, when, why. Never updated or deleted."""

    tenant_fields = TenantFields(isv="isv_id", merchant="merchant_id")

    public_id = public_id_field("rge", unique=False)
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    registration = MerchantForeignKey(Registration, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=20, choices=RegistrationStatus.choices)
    to_status = models.CharField(max_length=20, choices=RegistrationStatus.choices)
    source = models.CharField(max_length=20, help_text="staff, api, wallet_notification, wallet_poll, system")
    actor = models.CharField(max_length=100, blank=True, help_text="user or API key id, when a person or key acted")
    reason = models.CharField(max_length=500, blank=True)
    license_snapshot = models.JSONField(default=dict, blank=True, help_text="The license as submitted, if submitted.")
    license_changes = models.JSONField(default=dict, blank=True, help_text="Fields changed since the last submission.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = unique_per_merchant("registration_event", "public_id")
        indexes = [models.Index(fields=["registration", "created_at"], name="registration_event_idx")]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"
