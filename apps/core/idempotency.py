"""``Idempotency-Key`` on POST: a retried request gets the first attempt's response instead of running again.

The claim is a row inserted in its own committed transaction before the view runs, unique per caller and key,
so of two concurrent requests exactly one runs the view, on PostgreSQL and SQLite alike. The other finds the row:
still in flight (409), used for a different request (422), or completed (its response is replayed byte for byte).
The response is stored once rendered; a 5xx deletes the row instead, so a retry runs again. Rows live 24 hours,
as Stripe's do; a key sent again after that starts afresh. Storing or releasing happens on a new database
connection if the request lost its own, so a dropped connection leaves no claim in flight behind it.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.http import HttpResponse, HttpResponseBase
from django.template.response import SimpleTemplateResponse
from django.utils import timezone
from rest_framework.request import Request

from apps.core.errors import ApplicationError, ConflictError
from apps.core.models import IdempotencyRecord, IdempotencyState

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = datetime.timedelta(hours=24)
#: An in-flight claim older than this was abandoned (a crashed worker): gunicorn ends a request after 30 s.
IN_FLIGHT_LEASE = datetime.timedelta(minutes=2)
PURGE_BATCH_SIZE = 1000

# 1-255 printable ASCII characters, no space at either end.
_VALID_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
# Claims lost to a concurrent release or takeover before the key counts as busy.
_CLAIM_ATTEMPTS = 3


class IdempotencyKeyReusedError(ApplicationError):
    status_code = 422


class IdempotentReplay(Exception):
    """The request was answered already: raised before the view runs, turned into the stored response."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.key)
        self.record = record


def idempotency_key_parse(value: str) -> str:
    if not _VALID_KEY.fullmatch(value):
        raise ApplicationError(
            "idempotency.key_invalid",
            "An Idempotency-Key is 1 to 255 printable ASCII characters, with no space at either end.",
            attr=IDEMPOTENCY_HEADER,
        )
    return value


def request_fingerprint(request: Request) -> str:
    """What makes two requests the same one: method, path and the body's exact bytes (NUL never occurs in the
    first two, so the parts cannot run into each other)."""
    return hashlib.sha256(b"\0".join([request.method.encode(), request.path.encode(), request.body])).hexdigest()


def idempotency_record_claim(*, scope: str, key: str, fingerprint: str) -> IdempotencyRecord:
    """Claim ``key`` of the caller ``scope`` for the request ``fingerprint``, or find what it was used for.

    Returns a new in-flight record (run the view, then ``idempotency_record_complete`` it), or the completed
    record of this very request (replay it). Raises ``idempotency.key_reused`` (422) when the key was used for
    another request, ``idempotency.request_in_flight`` (409) while the first request is running. A record past
    its 24 hours, or in flight past its lease, no longer counts and is replaced.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        now = timezone.now()
        try:
            with transaction.atomic(durable=True):  # committed before the view runs, so others see it
                return IdempotencyRecord.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint, expires_at=now + RETENTION
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        except (OperationalError, InterfaceError):
            # The connection was lost, perhaps with the claim committed and only the answer gone: withdraw it,
            # or retries would wait out the lease. It is ours alone: no other claim expires at this microsecond.
            mine = IdempotencyRecord.objects.filter(
                scope=scope, key=key, expires_at=now + RETENTION, state=IdempotencyState.IN_FLIGHT
            )
            _on_a_live_connection(mine.delete)
            raise
        if existing is None:
            continue  # released or purged since the insert failed
        if existing.expires_at <= now or (
            existing.state == IdempotencyState.IN_FLIGHT and existing.created_at <= now - IN_FLIGHT_LEASE
        ):
            # Only the row as read: one completed meanwhile by a slow (not crashed) worker stays.
            IdempotencyRecord.objects.filter(pk=existing.pk, state=existing.state).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(
                "idempotency.key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new request.",
                attr=IDEMPOTENCY_HEADER,
            )
        if existing.state == IdempotencyState.COMPLETED:
            return existing
        break
    raise ConflictError(
        "idempotency.request_in_flight",
        "A request with this Idempotency-Key is still being processed; retry once it has finished.",
        attr=IDEMPOTENCY_HEADER,
    )


def idempotency_record_complete(*, record: IdempotencyRecord, response: HttpResponseBase) -> None:
    """Store the response for replays. A 5xx (or a streamed body) releases the key instead: a retry runs again.

    A claim taken over after its lease is no longer this request's: then nothing is stored.
    """
    if response.status_code >= 500 or response.streaming:
        idempotency_record_release(record=record)
        return
    if isinstance(response, SimpleTemplateResponse):
        response.render()  # DRF renders lazily; what is stored must be the bytes sent
    record.seal("response_body_ciphertext", response.content)
    _on_a_live_connection(
        lambda: IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyState.IN_FLIGHT).update(
            state=IdempotencyState.COMPLETED,
            response_status=response.status_code,
            response_content_type=response["Content-Type"],
            response_body_ciphertext=record.response_body_ciphertext,
        )
    )


def idempotency_record_release(*, record: IdempotencyRecord) -> None:
    """Forget an in-flight claim whose request failed, so that a retry with the same key runs again."""
    _on_a_live_connection(
        lambda: IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyState.IN_FLIGHT).delete()
    )


def _on_a_live_connection(write: Callable[[], object]) -> None:
    """Run ``write`` (one idempotent statement), and once more on a new connection if the request's own was
    lost. Without that, a request failed by a reset connection would keep its claim in flight (409 to every
    retry until the lease ends), and one whose work was committed before the reset would lose its answer."""
    try:
        write()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block or connection.is_usable():
            raise  # not a lost connection (or one a transaction still needs): the caller's to handle
        connection.close()
        write()


def idempotency_replay(record: IdempotencyRecord) -> HttpResponse:
    """The stored response, byte for byte, marked as a replay."""
    response = HttpResponse(
        record.unseal("response_body_ciphertext"),
        status=record.response_status,
        content_type=record.response_content_type,
    )
    response[REPLAYED_HEADER] = "true"
    response["Cache-Control"] = "no-store"  # it may carry a secret shown once (an API key, a webhook secret)
    return response


def idempotency_records_purge(*, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete the records past their 24 hours, ``batch_size`` rows per statement so none holds locks for long.
    Returns how many were deleted."""
    now = timezone.now()
    deleted = 0
    while batch := list(
        IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size]
    ):
        deleted += IdempotencyRecord.objects.filter(pk__in=batch, expires_at__lte=now).delete()[0]
    return deleted
