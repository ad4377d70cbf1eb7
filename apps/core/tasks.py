from celery import shared_task

from . import idempotency


@shared_task(name="core.purge_idempotency_records", acks_late=True)
def purge_idempotency_records() -> int:
    """Delete idempotency records past their 24 hours, in bounded batches (idempotent)."""
    return idempotency.idempotency_records_purge()
