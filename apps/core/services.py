"""Writes every app shares."""

from django.db import models


def model_update(*, instance: models.Model, values: dict) -> models.Model:
    """Set the ``values`` that are given (not ``None``) and differ, validate, and save just those columns.

    Validation goes through the model (``validate_for_save`` on tenant-owned models, so errors carry
    ``validation.*`` codes); nothing is written when nothing changed.
    """
    changes = {
        field: value for field, value in values.items() if value is not None and value != getattr(instance, field)
    }
    if not changes:
        return instance
    for field, value in changes.items():
        setattr(instance, field, value)
    instance.validate_for_save()
    update_fields = [*changes, "updated_at"] if hasattr(instance, "updated_at") else list(changes)
    instance.save(update_fields=update_fields)
    return instance
