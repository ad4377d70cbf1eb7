from celery import shared_task

from . import services


@shared_task(name="superapps.purge_wallet_exchanges", acks_late=True)
def purge_wallet_exchanges() -> int:
    """Delete wallet exchanges past their retention, in bounded batches (idempotent)."""
    return services.wallet_exchanges_purge()
