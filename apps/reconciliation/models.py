"""Settlement files from the super apps, the runs that reconcile them against the ledger, and what differed.

Every table here holds one credential's data, so each is tenant-owned: the ISV always, the merchant when the
credential is a merchant's (an ISV-level credential's rows have no merchant and are hidden from merchants'
principals). A discrepancy carries the merchant of the ledger row it is about when there is one, so a
merchant sees its own even when the file was an ISV's.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.distribution import MerchantForeignKey
from apps.core.ids import public_id_field
from apps.core.models import TimeStampedModel
from apps.core.tenancy import TenantFields, TenantOwnedModel
from apps.merchants.models import Isv, Merchant

TENANT = TenantFields(isv="isv_id", merchant="merchant_id")


def settlement_file_path(instance: SettlementFile, filename: str) -> str:
    return f"settlements/{instance.super_app.code}/{instance.settlement_date:%Y/%m}/{filename}"


class FileSource(models.TextChoices):
    FETCH = "fetch", "Fetched from the super app"
    UPLOAD = "upload", "Given by an operator"


class SettlementFile(TenantOwnedModel, TimeStampedModel):
    """One settlement file as received, kept byte for byte; the same bytes are stored once."""

    tenant_fields = TENANT

    public_id = public_id_field("stf")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    super_app = models.ForeignKey("superapps.SuperApp", on_delete=models.PROTECT, related_name="+")
    credential = models.ForeignKey("merchants.WalletCredential", on_delete=models.PROTECT, related_name="+")
    client_id = models.CharField(max_length=128)
    settlement_date = models.DateField()
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    content = models.FileField(upload_to=settlement_file_path, max_length=300)
    source = models.CharField(max_length=10, choices=FileSource.choices)
    fetched_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["super_app", "client_id", "settlement_date", "sha256"], name="settlement_file_once"
            )
        ]
        indexes = [models.Index(fields=["isv", "merchant", "settlement_date"], name="settlement_file_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.client_id} {self.settlement_date}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    REJECTED = "rejected", "Rejected (malformed file, nothing imported)"
    FAILED = "failed", "Failed (file missing or an error; nothing imported)"


class ReconciliationRun(TenantOwnedModel, TimeStampedModel):
    """One reconciliation of one client's settlement day: what was read, what matched, what did not."""

    tenant_fields = TENANT

    public_id = public_id_field("rec")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    super_app = models.ForeignKey("superapps.SuperApp", on_delete=models.PROTECT, related_name="+")
    credential = models.ForeignKey("merchants.WalletCredential", on_delete=models.PROTECT, related_name="+")
    settlement_date = models.DateField()
    file = models.ForeignKey(SettlementFile, on_delete=models.PROTECT, null=True, blank=True, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    counts = models.JSONField(default=dict, help_text="lines, matched, and one count per discrepancy reason.")
    totals = models.JSONField(default=dict, help_text="Per currency: gross, fee and net in minor units.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="A rejected file's problems, with line numbers.")

    class Meta:
        indexes = [models.Index(fields=["isv", "merchant", "settlement_date"], name="recon_run_tenant_idx")]

    def __str__(self) -> str:
        return self.public_id


class RecordType(models.TextChoices):
    PAYMENT = "PAYMENT", "Payment"
    REFUND = "REFUND", "Refund"


class SettlementLine(TenantOwnedModel):
    """One line of a run's file: loaded in bulk, linked to the ledger by joins, kept as the run's evidence."""

    tenant_fields = TENANT

    # A million lines a day, every value written by the database itself from the run and the ledger: no
    # foreign key constraints (each would be checked a million times at commit) and one index, (run, line_no):
    # what reads them by payment reads a whole run's lines once, hashed.
    run = models.ForeignKey(
        ReconciliationRun, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False
    )
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False, db_constraint=False
    )
    line_no = models.PositiveIntegerField()
    record_type = models.CharField(max_length=10, choices=RecordType.choices)
    wallet_payment_id = models.CharField(max_length=64)
    payment_request_id = models.CharField(max_length=64)
    wallet_refund_id = models.CharField(max_length=64, blank=True)
    refund_request_id = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    fee = models.BigIntegerField()
    net = models.BigIntegerField()
    transaction_time = models.DateTimeField()
    # Linked while loading (our request ids), then by the wallet's ids for what those did not find.
    payment = MerchantForeignKey(
        "payments.Payment",
        on_delete=models.DO_NOTHING,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    refund = MerchantForeignKey(
        "payments.Refund", on_delete=models.DO_NOTHING, null=True, related_name="+", db_index=False, db_constraint=False
    )
    duplicate = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "line_no"], name="settlement_line_once")]


class Reason(models.TextChoices):
    MISSING_IN_PLATFORM = "missing_in_platform", "In the file, not in the ledger"
    MISSING_IN_WALLET = "missing_in_wallet", "In the ledger, not in the file"
    AMOUNT_MISMATCH = "amount_mismatch", "Amounts differ"
    CURRENCY_MISMATCH = "currency_mismatch", "Currencies differ"
    STATUS_MISMATCH = "status_mismatch", "Settled by the wallet, not succeeded in the ledger"
    DUPLICATE_IN_FILE = "duplicate_in_file", "The same movement twice in the file"
    REFUND_MISMATCH = "refund_mismatch", "A refund or void that does not agree with the ledger"
    FEE_UNEXPECTED = "fee_unexpected", "A fee that does not add up"
    TIMING_CUTOFF = "timing_cutoff", "Paid just before the cut-off; expected in the next day's file"


class DiscrepancyStatus(models.TextChoices):
    OPEN = "open", "Open"
    AUTO_RESOLVED = "auto_resolved", "Resolved automatically"
    RESOLVED = "resolved", "Resolved by a person"
    IGNORED = "ignored", "Ignored by a person"


class Discrepancy(TenantOwnedModel, TimeStampedModel):
    """One difference between the file and the ledger, with both sides as evidence."""

    tenant_fields = TENANT

    public_id = public_id_field("dsc")
    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="discrepancies")
    isv = models.ForeignKey(Isv, on_delete=models.PROTECT, related_name="+")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reason = models.CharField(max_length=30, choices=Reason.choices)
    line_no = models.PositiveIntegerField(null=True, blank=True, help_text="The file's line, if it has one.")
    payment = MerchantForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    refund = MerchantForeignKey("payments.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    wallet = models.JSONField(default=dict, blank=True, help_text="The file's line as read.")
    platform = models.JSONField(default=dict, blank=True, help_text="The ledger's row at the time of the run.")
    status = models.CharField(max_length=20, choices=DiscrepancyStatus.choices, default=DiscrepancyStatus.OPEN)
    note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_by_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["isv", "merchant", "status"], name="discrepancy_tenant_idx"),
            models.Index(fields=["reason", "status"], name="discrepancy_reason_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} ({self.status})"
