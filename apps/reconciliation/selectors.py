"""What reconciliation reads, always through the principal's scope: a merchant sees its own discrepancies
(also those found in its ISV's file), an ISV all of its merchants', nobody another tenant's."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFoundError
from apps.core.tenancy import Principal

from .models import Discrepancy, ReconciliationRun


def run_list(*, principal: Principal) -> QuerySet[ReconciliationRun]:
    """The runs of the principal's files (a merchant sees the runs of its own client id only)."""
    return ReconciliationRun.objects.visible_to(principal).order_by("-settlement_date", "-pk")


def discrepancy_list(
    *, principal: Principal, run_id: str | None = None, status: str | None = None, reason: str | None = None
) -> QuerySet[Discrepancy]:
    """The principal's discrepancies, newest first, optionally of one run (by public id), status or reason."""
    discrepancies = Discrepancy.objects.visible_to(principal).select_related("run")
    if run_id is not None:
        discrepancies = discrepancies.filter(run__public_id=run_id)
    if status is not None:
        discrepancies = discrepancies.filter(status=status)
    if reason is not None:
        discrepancies = discrepancies.filter(reason=reason)
    return discrepancies.order_by("-pk")


def discrepancy_get(*, principal: Principal, discrepancy_id: str) -> Discrepancy:
    """One discrepancy by public id; missing and not-yours are the same ``reconciliation.discrepancy_not_found``."""
    found = Discrepancy.objects.visible_to(principal).filter(public_id=discrepancy_id).first()
    if found is None:
        raise NotFoundError("reconciliation.discrepancy_not_found", f"No discrepancy {discrepancy_id!r}.")
    return found
