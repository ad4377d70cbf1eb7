"""Re-seal every secret at rest with the first of FIELD_ENCRYPTION_KEYS, in the current format.

Rotation: prepend a new key to FIELD_ENCRYPTION_KEYS (keeping the old ones), deploy, run this command, check
with ``--check`` that nothing is left under an old key, then remove the old keys. Safe to run again and while
the platform runs: only values not sealed as now are read, a batch at a time under row locks, so a secret
changed meanwhile (a refreshed token) is re-sealed as it is then, never overwritten with what it was.
"""

import dataclasses

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction

from apps.core.crypto import DecryptionError, EncryptedFields, current_prefix
from apps.core.tenancy import TenantOwnedModel


def encrypted_models() -> list[type[models.Model]]:
    return [
        model
        for model in apps.get_models()
        if issubclass(model, EncryptedFields) and model.encrypted_fields and not model._meta.proxy
    ]


def _all_rows(model) -> models.QuerySet:
    # Deliberately across tenants: every tenant's secrets are re-sealed.
    return model.objects.unscoped() if issubclass(model, TenantOwnedModel) else model._default_manager.all()


def _stale_fields(row, prefix: str) -> list[str]:
    values = {field: getattr(row, field) for field in row.encrypted_fields}
    return [field for field, value in values.items() if value and not value.startswith(prefix)]


def stale_rows(model) -> models.QuerySet:
    """Rows with at least one value not sealed with the current key and format (empty values are none)."""
    prefix = current_prefix()
    stale = models.Q()
    for field in model.encrypted_fields:
        stale |= ~models.Q(**{f"{field}__startswith": prefix}) & ~models.Q(**{field: ""})
    return _all_rows(model).filter(stale)


@dataclasses.dataclass
class Resealed:
    rows: int = 0
    values: int = 0
    #: Rows with a value no configured key opens for this row (altered, moved, or under a removed key).
    unreadable: list = dataclasses.field(default_factory=list)


def reseal(model, *, batch_size: int = 500) -> Resealed:
    """Re-seal every stale value of ``model``, ``batch_size`` rows a transaction, each batch locked."""
    prefix = current_prefix()
    done = Resealed()
    after_pk = None
    while True:
        with transaction.atomic():
            batch = stale_rows(model).select_for_update().order_by("pk")
            if after_pk is not None:
                batch = batch.filter(pk__gt=after_pk)
            rows = list(batch[:batch_size])
            for row in rows:
                stale = _stale_fields(row, prefix)
                try:
                    for field in stale:
                        row.seal(field, row.unseal(field))
                except DecryptionError:
                    done.unreadable.append(row.pk)
                    continue
                # An UPDATE of the columns alone: no save() signals, no auto_now timestamps.
                _all_rows(model).filter(pk=row.pk).update(**{field: getattr(row, field) for field in stale})
                done.rows += 1
                done.values += len(stale)
        if len(rows) < batch_size:
            return done
        after_pk = rows[-1].pk


class Command(BaseCommand):
    help = "Re-seal secrets at rest with the current (first) field-encryption key; --check only counts."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows locked and re-sealed per transaction.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing; count the rows with values under an old key or format, and fail if there are any.",
        )

    def handle(self, *args, batch_size: int, check: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        left = 0
        for model in encrypted_models():
            label = model._meta.label
            if check:
                count = stale_rows(model).count()
                left += count
                self.stdout.write(f"{label}: {count} row(s) still under an old key")
                continue
            done = reseal(model, batch_size=batch_size)
            left += len(done.unreadable)
            self.stdout.write(f"{label}: {done.rows} row(s) re-encrypted ({done.values} value(s))")
            if done.unreadable:
                self.stderr.write(
                    f"{label}: {len(done.unreadable)} row(s) hold a value no configured key opens for that row "
                    f"(altered, moved to another row or tenant, or sealed with a removed key); pks: "
                    f"{', '.join(map(str, done.unreadable[:20]))}"
                )
        if left:
            raise CommandError(f"{left} row(s) still hold values under an old key or that cannot be opened.")
