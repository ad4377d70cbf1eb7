from celery import shared_task

from . import services


@shared_task(name="merchants.poll_registrations", acks_late=True)
def poll_registrations() -> int:
    """Ask super apps about registrations awaiting a decision whose poll is due (idempotent)."""
    return services.registrations_poll()


@shared_task(name="merchants.expire_registrations", acks_late=True)
def expire_registrations() -> int:
    """Verified registrations of expired licenses stop payments (idempotent)."""
    return services.registrations_expire()
