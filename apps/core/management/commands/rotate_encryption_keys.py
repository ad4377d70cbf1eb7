"""Re-encrypt every secret at rest with the first of FIELD_ENCRYPTION_KEYS.

Rotation: prepend a new key to FIELD_ENCRYPTION_KEYS (keeping the old ones), deploy, run this command,
then remove the old keys. Safe to run again: rows already sealed with the current key are skipped.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.core.crypto import EncryptedFields, needs_rotation
from apps.core.tenancy import TenantOwnedModel


class Command(BaseCommand):
    help = "Re-encrypt secrets at rest with the current (first) field-encryption key."

    def handle(self, *args, **options):
        for model in apps.get_models():
            if not issubclass(model, EncryptedFields) or not model.encrypted_fields:
                continue
            rows = model.objects.unscoped() if issubclass(model, TenantOwnedModel) else model.objects.all()
            rotated = 0
            for row in rows.iterator():
                stale = [
                    field
                    for field in model.encrypted_fields
                    if getattr(row, field) and needs_rotation(getattr(row, field))
                ]
                if not stale:
                    continue
                with transaction.atomic():
                    for field in stale:
                        row.seal(field, row.unseal(field))
                    row.save(update_fields=stale)
                rotated += 1
            self.stdout.write(f"{model._meta.label}: {rotated} row(s) re-encrypted")
