from celery import shared_task

from . import services


@shared_task(name="usersessions.purge_expired", acks_late=True)
def purge_expired_sessions() -> int:
    """Drop sessions expired for a day or more (idempotent)."""
    return services.sessions_purge_expired()
