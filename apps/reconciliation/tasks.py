import datetime as dt

from celery import shared_task
from django.utils import timezone

from apps.merchants.models import WalletCredential

from . import services


@shared_task(name="reconciliation.reconcile_yesterday", acks_late=True)
def reconcile_yesterday() -> int:
    """Queue yesterday's (UTC) reconciliation of every client id at every super app; one task each."""
    day = timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    # Every tenant's credentials, by id only: each task then works inside that credential's scope.
    credential_ids = WalletCredential.objects.unscoped().order_by("pk").values_list("pk", flat=True)
    for credential_id in credential_ids:
        reconcile.delay(credential_id, day.isoformat())
    return len(credential_ids)


# A large file takes longer than the default limits allow; RUN_ABANDONED_AFTER is longer still.
@shared_task(name="reconciliation.reconcile", acks_late=True, time_limit=3600, soft_time_limit=3300)
def reconcile(credential_id: int, day: str) -> str:
    """Fetch and reconcile one client id's settlement file of ``day``. Idempotent: the same file again returns
    the earlier run; a missing file gives a failed run, and the next attempt may find it."""
    # Started by reconcile_yesterday with an id it read; the run is scoped to this credential's tenant.
    credential = WalletCredential.objects.unscoped().select_related("super_app").get(pk=credential_id)
    run = services.reconciliation_run(
        super_app=credential.super_app, day=dt.date.fromisoformat(day), credential=credential
    )
    return run.status
