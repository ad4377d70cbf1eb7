"""Writes for outbound webhooks: record an event with the change it reports, deliver it (one signed POST per
attempt, see ``sender``), retry on a fixed back-off for about three days, retry and replay on demand.

The schedule lives in the database (``WebhookDelivery.next_attempt_at``). The first attempt is queued when
the event's transaction commits; every later one — and a first one whose queued task was lost — is taken by
the sweeper (``webhook_deliveries_due``). Before an attempt its delivery is claimed: ``next_attempt_at`` is
pushed ``CLAIM_LEASE`` ahead in a transaction of its own, so no other worker takes it while it is in flight,
and if the worker dies the sweeper takes it again once the lease has run out.
"""

from __future__ import annotations

import datetime
import json
import logging

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.services import claim_due
from apps.core.tenancy import Principal
from apps.merchants.models import Merchant
from apps.miniprograms.models import MiniProgram

from . import sender
from .models import EVENT_TYPES, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent

logger = logging.getLogger(__name__)

# Seconds from the end of attempt n to attempt n + 1 (times WEBHOOK_RETRY_SCALE). They add up to 70 h 42 min:
# one more day would pass three days, so the attempt after the last delay is the last one.
RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Longer than any attempt can live: the tasks' hard time limits end it before this runs out.
CLAIM_LEASE = datetime.timedelta(minutes=5)


def webhook_event_record(
    *, isv_id: int, merchant_id: int, mini_program_id: int | None = None, type: str, data: dict
) -> WebhookEvent:
    """Record that ``type`` happened to ``data`` (the object as the API renders it), with a pending delivery
    to the webhook URL of ``mini_program_id`` — or, for a merchant-wide event, of each of the merchant's
    mini programs that has one. The event is recorded even when nothing has a webhook URL.

    Must run inside the transaction of the change it reports (``TransactionManagementError`` otherwise), so
    that the two commit or roll back together; each first attempt is queued once that transaction commits.
    Raises ``webhooks.unknown_event_type`` and ``webhooks.mini_program_not_found`` (a mini program of another
    merchant).
    """
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("webhook_event_record must run in the transaction of the change it reports")
    if type not in EVENT_TYPES:
        raise ApplicationError("webhooks.unknown_event_type", f"Unknown webhook event type {type!r}.", attr="type")
    mini_programs = list(_recipients(isv_id, merchant_id, mini_program_id).only("pk", "webhook_url"))
    if mini_program_id is not None and not mini_programs:
        raise NotFoundError("webhooks.mini_program_not_found", "No such mini program.", attr="mini_program_id")
    event = WebhookEvent.objects.create(
        isv_id=isv_id, merchant_id=merchant_id, mini_program_id=mini_program_id, type=type, data=data
    )
    for mini_program in mini_programs:
        if mini_program.webhook_url:
            _schedule(event, mini_program)
    return event


def webhook_deliver(*, delivery_id: int) -> WebhookAttempt | None:
    """Make the next attempt of a delivery if it is pending and due, and return it; otherwise do nothing and
    return ``None`` (delivered, given up, not due yet, or in flight with another worker).

    Idempotent and safe to call concurrently: the check and the claim happen under the row's lock, and the
    request is sent after that lock is released. Must not run inside an open transaction.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.unscoped()  # a task's own row, found by the id our code queued
            .select_for_update(of=("self",))
            .select_related("event", "mini_program")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.next_attempt_at > now:
            return None
        delivery.next_attempt_at = now + CLAIM_LEASE
        delivery.save(update_fields=["next_attempt_at"])
    return _attempt(delivery)


def webhook_deliveries_due(*, limit: int = 20) -> int:
    """Claim up to ``limit`` pending deliveries whose attempt is due and make it, one after the other.
    Overlapping sweepers take different rows. Returns how many were claimed."""
    now = timezone.now()
    claimed = claim_due(
        WebhookDelivery.objects.unscoped()  # batch work across tenants: each row is then sent on its own
        .filter(status=DeliveryStatus.PENDING)
        .select_related("event", "mini_program"),
        field="next_attempt_at",
        now=now,
        limit=limit,
        next_at=lambda _delivery: now + CLAIM_LEASE,
    )
    for delivery in claimed:
        _attempt(delivery)
    return len(claimed)


@transaction.atomic
def webhook_replay(*, event: WebhookEvent) -> list[WebhookDelivery]:
    """Send ``event`` again, with its own id and payload, to wherever it goes now: a new pending delivery to
    the current webhook URL of its mini program (or of each of the merchant's mini programs that has one),
    queued at once and with a fresh retry schedule. Earlier deliveries stay as they were, as history; the
    new ones follow the latest of them (``replay_of``). Returns the new deliveries, none when nothing has a
    webhook URL now."""
    replays = []
    for mini_program in _recipients(event.isv_id, event.merchant_id, event.mini_program_id).exclude(webhook_url=""):
        latest = event.deliveries.filter(mini_program=mini_program).order_by("-pk").first()
        replays.append(_schedule(event, mini_program, replay_of=latest))
    return replays


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Retry now a delivery that gave up: a new pending delivery of its event to its mini program's
    current webhook URL, queued at once and with a fresh retry schedule; the failed row stays as history.
    Retrying a delivery that was retried already returns that retry (nothing new is sent).

    Raises ``webhooks.delivery_not_failed`` (a pending delivery retries by itself; a delivered event is sent
    again with ``webhook_replay``) and ``webhooks.no_webhook_url`` (its mini program has none now).
    """
    locked = (
        WebhookDelivery.objects.unscoped()  # the caller fetched it in scope; re-read under a lock to retry it
        .select_for_update(of=("self",))
        .select_related("event", "mini_program")
        .get(pk=delivery.pk)
    )
    if locked.status != DeliveryStatus.FAILED:
        raise ApplicationError(
            "webhooks.delivery_not_failed",
            f"Delivery {locked.public_id} is {locked.get_status_display().lower()}; only failed ones are retried.",
        )
    earlier = locked.replays.order_by("pk").first()
    if earlier is not None:
        return earlier
    mini_program = locked.mini_program
    if not mini_program.webhook_url:
        raise ApplicationError(
            "webhooks.no_webhook_url", f"Mini program {mini_program.public_id} has no webhook URL any more."
        )
    return _schedule(locked.event, mini_program, replay_of=locked)


def webhook_deliveries_retry_failed(
    *, merchant: Merchant | None = None
) -> list[tuple[WebhookDelivery, WebhookDelivery | None]]:
    """Retry every failed delivery not retried yet — of ``merchant``, or of every merchant (an operator's
    tool) — as ``webhook_delivery_retry`` does, each in its own transaction. Returns (failed delivery, its
    retry) pairs; the retry is ``None`` where the mini program has no webhook URL now."""
    failed = WebhookDelivery.objects.unscoped().filter(status=DeliveryStatus.FAILED, replays__isnull=True)
    if merchant is not None:
        failed = failed.filter(merchant=merchant)
    done = []
    for delivery in failed.select_related("event", "mini_program").order_by("pk"):
        try:
            done.append((delivery, webhook_delivery_retry(delivery=delivery)))
        except ApplicationError as error:
            if error.code != "webhooks.no_webhook_url":
                raise
            done.append((delivery, None))
    return done


def _recipients(isv_id: int, merchant_id: int, mini_program_id: int | None):
    """The mini program an event is about, or every mini program of its merchant: those with a webhook URL
    are where it goes."""
    mini_programs = MiniProgram.objects.visible_to(Principal.system(isv_id=isv_id, merchant_id=merchant_id))
    if mini_program_id is not None:
        mini_programs = mini_programs.filter(pk=mini_program_id)
    return mini_programs.order_by("pk")


def _schedule(
    event: WebhookEvent, mini_program: MiniProgram, *, replay_of: WebhookDelivery | None = None
) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        isv_id=event.isv_id,
        merchant_id=event.merchant_id,
        event=event,
        mini_program=mini_program,
        url=mini_program.webhook_url,
        next_attempt_at=timezone.now(),
        replay_of=replay_of,
    )
    # A broker that is down loses nothing: the delivery is due, so the sweeper sends it. A lambda: Django logs a
    # failed robust callback by its __qualname__, and a functools.partial has none (that AttributeError was a 500).
    transaction.on_commit(lambda: _queue(delivery.pk), robust=True)
    return delivery


def _queue(delivery_id: int) -> None:
    from .tasks import deliver  # tasks import this module

    deliver.delay(delivery_id)


def _attempt(delivery: WebhookDelivery) -> WebhookAttempt | None:
    """Send the next attempt of ``delivery``, which the caller has claimed, and record how it went. An attempt
    past the last one (its worker died before recording it) gives up instead."""
    with transaction.atomic():
        if delivery.attempt_count >= MAX_ATTEMPTS:
            _give_up(delivery)
            delivery.save(update_fields=["status", "next_attempt_at"])
            return None
        delivery.attempt_count += 1
        delivery.save(update_fields=["attempt_count"])
        attempt = WebhookAttempt.objects.create(
            isv_id=delivery.isv_id, merchant_id=delivery.merchant_id, delivery=delivery, started_at=timezone.now()
        )
    outcome = sender.post(delivery.url, **_request(delivery.event, delivery.mini_program))
    finished = timezone.now()
    with transaction.atomic():
        attempt.duration_ms, attempt.status_code = outcome.duration_ms, outcome.status_code
        attempt.error, attempt.response_excerpt = outcome.error, outcome.response_excerpt
        attempt.save(update_fields=["duration_ms", "status_code", "error", "response_excerpt"])
        delivery.last_status_code = outcome.status_code
        if outcome.delivered:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, finished, None
        elif outcome.permanent or delivery.attempt_count >= MAX_ATTEMPTS:
            _give_up(delivery)
        else:
            delivery.next_attempt_at = finished + retry_delay(delivery.attempt_count)
        delivery.save(update_fields=["last_status_code", "status", "delivered_at", "next_attempt_at"])
    return attempt


def retry_delay(attempts_made: int) -> datetime.timedelta:
    """How long after the ``attempts_made``-th attempt the next one is made."""
    return datetime.timedelta(seconds=RETRY_DELAYS[attempts_made - 1] * settings.WEBHOOK_RETRY_SCALE)


def _give_up(delivery: WebhookDelivery) -> None:
    delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    # Ids only: the URL may carry the merchant's own token.
    logger.warning(
        "webhook delivery %s of event %s gave up after %d attempt(s)",
        delivery.public_id,
        delivery.event.public_id,
        delivery.attempt_count,
    )


def _request(event: WebhookEvent, mini_program: MiniProgram) -> dict:
    """The body and headers of one attempt, signed now with the mini program's current secret."""
    body = json.dumps(
        {"id": event.public_id, "type": event.type, "created_at": event.created_at, "data": event.data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    timestamp = int(timezone.now().timestamp())
    secret = mini_program.unseal("webhook_secret_ciphertext").decode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "isv-platform-webhooks/1",
        "Webhook-Id": event.public_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sender.signature(secret, message_id=event.public_id, timestamp=timestamp, body=body),
    }
    return {"body": body, "headers": headers}
