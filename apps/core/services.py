"""Writes every app shares."""

import datetime
import time
from collections.abc import Callable

from django.db import models, transaction


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


def claim_due(
    queryset: models.QuerySet,
    *,
    field: str,
    now: datetime.datetime,
    limit: int,
    next_at: Callable[[models.Model], datetime.datetime],
) -> list:
    """Rows of ``queryset`` whose ``field`` time has come, each pushed to ``next_at(row)`` in the same
    transaction, so overlapping workers never take the same row (rows another worker holds are skipped,
    not waited for). The caller then handles each row on its own."""
    with transaction.atomic():
        due = list(
            queryset.select_for_update(skip_locked=True, of=("self",))
            .filter(**{f"{field}__lte": now})
            .order_by(field)[:limit]
        )
        for row in due:
            setattr(row, field, next_at(row))
            row.save(update_fields=[field])
    return due


#: How long one run of a periodic sweep goes on taking batches; what is left waits for the next run.
SWEEP_BUDGET = datetime.timedelta(seconds=30)


def drain(sweep: Callable[[], int], *, budget: datetime.timedelta = SWEEP_BUDGET) -> int:
    """Run ``sweep`` (one batch of due rows, taken with ``claim_due``) again while it finds work and ``budget``
    lasts; returns how many rows it took in all. After a broker outage or a wiped queue everything is due at
    once, and one batch per run (every 10 s) would leave that work waiting for minutes."""
    deadline = time.monotonic() + budget.total_seconds()
    taken = 0
    while batch := sweep():
        taken += batch
        if time.monotonic() >= deadline:
            break
    return taken
