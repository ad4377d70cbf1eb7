from celery import shared_task

from . import preauthorizations, services


@shared_task(name="payments.resolve_due", acks_late=True)
def resolve_due() -> int:
    """Ask the wallets about payments, refunds and pre-authorizations whose next inquiry is due (idempotent)."""
    return services.payments_resolve_due() + preauthorizations.preauthorizations_resolve_due()


@shared_task(name="payments.expire_orders", acks_late=True)
def expire_orders() -> int:
    """Close orders whose time ran out, after one last inquiry (idempotent)."""
    return services.orders_expire()


@shared_task(name="payments.expire_preauthorizations", acks_late=True)
def expire_preauthorizations() -> int:
    """End pre-authorizations past their expiry and warn about those close to it (idempotent)."""
    return preauthorizations.preauthorizations_expire()
