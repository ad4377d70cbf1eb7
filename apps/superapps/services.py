"""Writes of the superapps app: the evidence of wallet calls, and its retention."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .client.evidence import Exchange, scrubbed
from .models import WalletExchange

if TYPE_CHECKING:
    from .client.client import WalletConfig

logger = logging.getLogger(__name__)
PURGE_BATCH_SIZE = 1000


def wallet_exchange_record(*, config: WalletConfig, exchange: Exchange) -> WalletExchange | None:
    """Store ``exchange`` for the credential that signed it (``config.owner``); ``None`` for a config that is
    no stored credential's.

    Written at once, on the caller's connection, in a savepoint. The platform calls wallets outside its
    transactions (no row lock is held across a network call), so in autocommit the row commits by itself and
    survives whatever the caller does next. ``transaction.on_commit`` would drop exactly the evidence of work
    that rolled back, and a second connection would wait on SQLite's write lock held by the caller; so a call
    made inside a caller's ``atomic()`` shares its fate, and the savepoint keeps a failed INSERT from breaking
    the caller's transaction.
    """
    owner = config.owner
    if owner is None:
        logger.debug("wallet %s: client %s is no stored credential; not kept", exchange.operation, config.client_id)
        return None
    with transaction.atomic():
        return WalletExchange.objects.create(
            isv_id=owner.isv_id,
            merchant_id=owner.merchant_id,
            super_app_id=owner.super_app_id,
            credential_id=owner.credential_id,
            operation=exchange.operation,
            subject=exchange.subject[:64],
            request_body=scrubbed(exchange.request),
            response_body=scrubbed(exchange.answer),
            http_status=exchange.http_status,
            result_status=exchange.result_status[:1],
            result_code=exchange.result_code[:64],
            signature_verified=exchange.signature_verified,
            error=exchange.error,
            duration_ms=exchange.duration_ms,
        )


def wallet_exchanges_purge(*, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete exchanges older than ``WALLET_EXCHANGE_RETENTION_DAYS``, ``batch_size`` rows per statement so
    none holds locks for long. Returns how many were deleted."""
    cutoff = timezone.now() - dt.timedelta(days=settings.WALLET_EXCHANGE_RETENTION_DAYS)
    expired = WalletExchange.objects.unscoped().filter(created_at__lt=cutoff)  # retention applies to every tenant
    deleted = 0
    while batch := list(expired.values_list("pk", flat=True)[:batch_size]):
        deleted += expired.filter(pk__in=batch).delete()[0]
    return deleted
