"""Inbound super-app notifications: store raw, verify, deduplicate, acknowledge — then apply exactly once.

On the request path (``notification_receive``) the platform only writes the raw delivery (committed
before anything else), verifies the signature over the raw bytes and the ``Request-Time`` within
the super app's ``notification_tolerance_seconds``, finds the client (that establishes the tenant), claims the
notification's business key (a unique column: the same news twice is a duplicate, acknowledged with no
effect) and answers with the acknowledgement the protocol wants. The effect is applied by
``notification_process`` — from a Celery task queued after commit, or from the sweeper when that task was
lost — under the inbox row's lock, through the owning app's services, so it happens once however often it
is delivered, redriven or retried.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import urllib.parse

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import ConflictError
from apps.core.money import Money
from apps.core.services import claim_due
from apps.core.tenancy import Principal
from apps.merchants import services as merchant_services
from apps.merchants.models import Registration, WalletCredential
from apps.payments.models import Payment, PreAuthorization, PreAuthorizationRelease, Refund
from apps.payments.preauthorizations import authorization_notified, release_notified
from apps.payments.services import NotificationEffect, payment_notified, refund_notified
from apps.superapps.client import keys, orderstr, signing
from apps.superapps.client.messages import (
    NOTIFICATION_ACK,
    ClassicNotification,
    ClassicNotificationType,
    MessageError,
    PaymentNotification,
    PaymentOutcome,
    RefundNotification,
    RegistrationResult,
)
from apps.superapps.models import SuperApp

from .models import InboundNotification, NotificationKind, NotificationStatus

logger = logging.getLogger(__name__)

# Headers kept with the raw body: what verification and an investigation need, nothing else.
KEPT_HEADERS = ("client-id", "request-time", "signature", "content-type", "user-agent")
# A notification no task has processed this long after it arrived is picked up by the sweeper.
REDRIVE_AFTER = datetime.timedelta(seconds=30)
# A notification naming a payment not (yet) known is retried this many times, then flagged.
PARK_ATTEMPTS = 8
# An inbox row whose processing keeps failing stops after this many attempts and is flagged.
MAX_ATTEMPTS = 10


@dataclasses.dataclass(frozen=True)
class Acknowledgement:
    status: int
    body: bytes
    headers: dict[str, str]
    content_type: str = "application/json; charset=UTF-8"


class Refused(Exception):
    """A delivery that is not processed: unsigned, forged, stale, of an unknown client, or unreadable."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Parked(Exception):
    """The notification names something not known (yet): retried later, then flagged."""


@dataclasses.dataclass(frozen=True)
class Verified:
    credential: WalletCredential
    dedupe_key: str
    subject: str


# --- the request path ----------------------------------------------------------------------------


def notification_receive(
    *, super_app: SuperApp, kind: str, path: str, headers: dict[str, str], body: bytes, remote_addr: str | None
) -> Acknowledgement:
    """Store, verify, deduplicate and acknowledge one delivery; processing follows after commit.

    Rejected deliveries are kept (``rejected``, with the reason) and answered with ``F`` (classic:
    ``fail``); a duplicate is kept (``duplicate``) and acknowledged like the first, with no effect.
    """
    # Stored ``unverified``: if this process dies before the verdict, the row stays evidence and is never
    # processed; the wallet, unanswered, delivers again.
    notification = InboundNotification.objects.create(
        super_app=super_app,
        kind=kind,
        headers={name: value[:2000] for name, value in headers.items() if name in KEPT_HEADERS},
        body=body,
        remote_addr=remote_addr,
    )
    try:
        verified = _verify(super_app=super_app, kind=kind, path=path, headers=headers, body=body)
    except Refused as refused:
        logger.warning("%s from %s refused: %s", kind, super_app.code, refused.message)
        InboundNotification.objects.unscoped().filter(pk=notification.pk).update(
            status=NotificationStatus.REJECTED, outcome=f"{refused.code}: {refused.message}"[:500]
        )
        return _refusal(kind, refused)
    credential = verified.credential
    tenant = {"isv_id": credential.isv_id, "merchant_id": credential.merchant_id, "subject": verified.subject[:64]}
    inbox = InboundNotification.objects.unscoped().filter(pk=notification.pk)
    try:
        with transaction.atomic():
            inbox.update(
                status=NotificationStatus.RECEIVED,
                dedupe_key=verified.dedupe_key,
                next_attempt_at=timezone.now() + REDRIVE_AFTER,  # the sweeper's, if the task is lost
                **tenant,
            )
            # A broker that is down must not turn the acknowledgement into a 500: the sweeper has the row.
            transaction.on_commit(lambda: _queue(notification.pk), robust=True)
    except IntegrityError:
        first = InboundNotification.objects.unscoped().filter(dedupe_key=verified.dedupe_key).first()
        inbox.update(status=NotificationStatus.DUPLICATE, duplicate_of=first, **tenant)
    if kind == NotificationKind.CLASSIC:
        return Acknowledgement(status=200, body=b"success", headers={}, content_type="text/plain; charset=utf-8")
    return _signed_ack(credential, path=path)


def _queue(notification_id: int) -> None:
    from .tasks import process_notification  # tasks import this module

    process_notification.delay(notification_id)


def _verify(*, super_app: SuperApp, kind: str, path: str, headers: dict[str, str], body: bytes) -> Verified:
    if kind == NotificationKind.CLASSIC:
        return _verify_classic(super_app, body)
    client_id = headers.get("client-id", "")
    _check_request_time(headers.get("request-time", ""), super_app.notification_tolerance_seconds)
    if not signing.verify(
        keys.load_public_key(super_app.wallet_public_key_pem),
        path=path,
        client_id=client_id,
        timestamp=headers.get("request-time", ""),
        body=body,
        signature_header=headers.get("signature", ""),
    ):
        raise Refused("INVALID_SIGNATURE", "signature does not verify", status=401)
    credential = (
        WalletCredential.objects.unscoped()  # the signed notification names its client: that is the tenant
        .filter(super_app=super_app, client_id=client_id)
        .first()
    )
    if credential is None:
        raise Refused("INVALID_CLIENT", "unknown client id")
    payload = _json_object(body)
    scope = f"{kind}:{super_app.pk}:{client_id}"
    try:
        if kind == NotificationKind.PAYMENT:
            news = PaymentNotification.parse(payload)
            return Verified(credential, f"{scope}:{news.payment_request_id}:{news.outcome}", news.payment_request_id)
        if kind == NotificationKind.REFUND:
            refund = RefundNotification.parse(payload)
            return Verified(
                credential, f"{scope}:{refund.refund_request_id}:{refund.succeeded}", refund.refund_request_id
            )
        result = RegistrationResult.parse(payload)
    except MessageError as error:
        raise Refused("PARAM_ILLEGAL", str(error)) from None
    request_id = result.registration_request_id or ""
    return Verified(credential, f"{scope}:{request_id}:{result.status}", request_id)


def _verify_classic(super_app: SuperApp, body: bytes) -> Verified:
    """Form fields signed with RSA2 (§8.4). Classic notifications carry no request time to check: a retry
    keeps its first ``notify_time``; replays are no-ops through the business key."""
    try:
        params = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise Refused("PARAM_ILLEGAL", "the body is not form-encoded UTF-8") from None
    if not orderstr.verify_notification(keys.load_public_key(super_app.wallet_public_key_pem), params):
        raise Refused("INVALID_SIGNATURE", "sign does not verify", status=401)
    try:
        news = ClassicNotification.parse(params)
    except MessageError as error:
        raise Refused("PARAM_ILLEGAL", str(error)) from None
    credential = WalletCredential.objects.unscoped().filter(super_app=super_app, classic_app_id=news.app_id).first()
    if credential is None:
        raise Refused("INVALID_CLIENT", "unknown app_id")
    key = f"classic:{super_app.pk}:{news.app_id}:{news.type}:{news.out_no}:{news.operation_no or ''}:{news.status}"
    return Verified(credential, key, news.operation_no or news.out_no)


def _check_request_time(value: str, tolerance: int) -> None:
    moment = _parse_request_time(value)
    if moment is None:
        raise Refused("INVALID_REQUEST_TIME", "Request-Time is missing or unreadable")
    if abs((timezone.now() - moment).total_seconds()) > tolerance:
        raise Refused("INVALID_REQUEST_TIME", f"Request-Time is more than {tolerance} s away", status=401)


def _parse_request_time(value: str) -> datetime.datetime | None:
    """ISO 8601 with an offset, or epoch milliseconds (both seen on the wire)."""
    value = value.strip()
    try:
        if value.isdigit():
            return datetime.datetime.fromtimestamp(int(value) / 1000, tz=datetime.UTC)
        moment = datetime.datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo is not None else None


def _json_object(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused("PARAM_ILLEGAL", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refused("PARAM_ILLEGAL", "the body is not a JSON object")
    return payload


def _refusal(kind: str, refused: Refused) -> Acknowledgement:
    if kind == NotificationKind.CLASSIC:
        return Acknowledgement(
            status=refused.status, body=b"fail", headers={}, content_type="text/plain; charset=utf-8"
        )
    body = {"result": {"resultCode": refused.code, "resultStatus": "F", "resultMessage": refused.message}}
    return Acknowledgement(status=refused.status, body=json.dumps(body).encode(), headers={})


def _signed_ack(credential: WalletCredential, *, path: str) -> Acknowledgement:
    body = json.dumps(NOTIFICATION_ACK, separators=(",", ":")).encode()
    response_time = signing.now_timestamp()
    signature = signing.sign(
        keys.load_private_key(credential.unseal("private_key_ciphertext").decode()),
        path=path,
        client_id=credential.client_id,
        timestamp=response_time,
        body=body,
        key_version=credential.key_version,
    )
    return Acknowledgement(
        status=200,
        body=body,
        headers={"Client-Id": credential.client_id, "Response-Time": response_time, "Signature": signature},
    )


# --- processing ----------------------------------------------------------------------------------


def notification_process(*, notification_id: int) -> None:
    """Apply one stored notification, once: a row already processed (or being processed by another
    worker, which holds its lock) is left alone. The attempt is counted before the work, so a
    notification that keeps crashing its worker stops after ``MAX_ATTEMPTS`` and is flagged."""
    with transaction.atomic():
        row = _locked_pending(notification_id)
        if row is None:
            return
        row.attempts += 1
        row.next_attempt_at = timezone.now() + _backoff(row.attempts)
        if row.attempts > MAX_ATTEMPTS:
            logger.error("notification %s failed %s times; flagged for a person", row.public_id, MAX_ATTEMPTS)
            row.status, row.next_attempt_at = NotificationStatus.FAILED, None
            row.outcome = f"gave up after {MAX_ATTEMPTS} attempts: {row.outcome}"[:500]
        row.save(update_fields=["attempts", "next_attempt_at", "status", "outcome"])
    if row.status == NotificationStatus.FAILED:
        return
    with transaction.atomic():
        row = _locked_pending(notification_id)
        if row is None:
            return
        try:
            effect = _apply(row)
        except Parked as parked:
            _park(row, str(parked))
            return
        row.status = NotificationStatus.ANOMALY if effect.anomaly else NotificationStatus.PROCESSED
        row.outcome, row.processed_at, row.next_attempt_at = effect.summary[:500], timezone.now(), None
        row.save(update_fields=["status", "outcome", "processed_at", "next_attempt_at"])


def _locked_pending(notification_id: int) -> InboundNotification | None:
    return (
        InboundNotification.objects.unscoped()  # a task works on one row it was handed, across tenants
        .select_for_update()
        .filter(pk=notification_id, status__in=[NotificationStatus.RECEIVED, NotificationStatus.PARKED])
        .exclude(dedupe_key=None)  # only what was verified is ever applied
        .first()
    )


def _backoff(attempts: int) -> datetime.timedelta:
    """10 s, 20 s, 40 s … up to an hour."""
    return datetime.timedelta(seconds=min(10 * 2 ** (attempts - 1), 3600))


def _park(row: InboundNotification, reason: str) -> None:
    if row.attempts >= PARK_ATTEMPTS:
        logger.error(
            "notification %s still names nothing known after %s tries: %s", row.public_id, row.attempts, reason
        )
        row.status, row.next_attempt_at = NotificationStatus.FAILED, None
        row.outcome = f"flagged: {reason}"[:500]
    else:
        row.status, row.outcome = NotificationStatus.PARKED, reason[:500]
    row.save(update_fields=["status", "outcome", "next_attempt_at"])


def _apply(row: InboundNotification) -> NotificationEffect:
    owner = Principal.system(isv_id=row.isv_id, merchant_id=row.merchant_id)
    body = bytes(row.body)
    if row.kind == NotificationKind.REGISTRATION:
        return _apply_registration(row, owner, RegistrationResult.parse(json.loads(body)))
    if row.kind == NotificationKind.REFUND:
        return _apply_refund(owner, RefundNotification.parse(json.loads(body)))
    if row.kind == NotificationKind.PAYMENT:
        news = PaymentNotification.parse(json.loads(body))
        succeeded = {PaymentOutcome.SUCCEEDED: True, PaymentOutcome.FAILED: False}.get(news.outcome)
        return _apply_payment(
            owner, news.payment_request_id, succeeded=succeeded, amount=news.amount, wallet_no=news.payment_id
        )
    news = ClassicNotification.parse(dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
    if news.type is ClassicNotificationType.TRADE:
        return _apply_payment(
            owner, news.out_no, succeeded=news.succeeded, amount=news.amount, wallet_no=news.wallet_no
        )
    if news.type is ClassicNotificationType.FREEZE:
        pre_authorization = _pre_authorization(owner, news.out_no)
        return authorization_notified(
            pre_authorization=pre_authorization, succeeded=news.succeeded, amount=news.amount, auth_no=news.wallet_no
        )
    release = (
        PreAuthorizationRelease.objects.visible_to(owner)
        .select_related("order")
        .filter(out_request_no=news.operation_no)
        .first()
    )
    if release is None:
        raise Parked(f"no release {news.operation_no}")
    return release_notified(release=release, succeeded=news.succeeded, amount=news.amount)


def _apply_payment(
    owner: Principal, request_id: str, *, succeeded: bool | None, amount: Money, wallet_no: str
) -> NotificationEffect:
    payment = (
        Payment.objects.visible_to(owner)
        .select_related("order__mini_program__super_app")
        .filter(payment_request_id=request_id)
        .first()
    )
    if payment is not None:
        return payment_notified(
            payment=payment,
            succeeded=succeeded,
            amount=amount,
            wallet_payment_id=wallet_no,
            source="wallet_notification",
        )
    # An authorization payment is known by its pre-authorization's out_order_no.
    return authorization_notified(
        pre_authorization=_pre_authorization(owner, request_id), succeeded=succeeded, amount=amount, auth_no=wallet_no
    )


def _apply_refund(owner: Principal, news: RefundNotification) -> NotificationEffect:
    refund = (
        Refund.objects.visible_to(owner)
        .select_related("order")
        .filter(refund_request_id=news.refund_request_id)
        .first()
    )
    if refund is None:
        raise Parked(f"no refund {news.refund_request_id}")
    return refund_notified(refund=refund, succeeded=news.succeeded, amount=news.amount, wallet_refund_id=news.refund_id)


def _pre_authorization(owner: Principal, out_order_no: str) -> PreAuthorization:
    pre_authorization = (
        PreAuthorization.objects.visible_to(owner)
        .select_related("order__mini_program__super_app")
        .filter(out_order_no=out_order_no)
        .first()
    )
    if pre_authorization is None:
        raise Parked(f"no payment or pre-authorization {out_order_no}")
    return pre_authorization


def _apply_registration(row: InboundNotification, owner: Principal, result: RegistrationResult) -> NotificationEffect:
    registration = (
        Registration.objects.visible_to(owner)
        .filter(super_app_id=row.super_app_id, wallet_request_id=result.registration_request_id)
        .first()
        if result.registration_request_id
        else None
    )
    if registration is None:
        # A superseded submission (the merchant resubmitted since) or never ours: nothing to apply.
        return NotificationEffect(anomaly=False, summary=f"no current submission {result.registration_request_id}")
    try:
        merchant_services.registration_apply_result(
            registration=registration,
            result=result,
            source="wallet_notification",
            request_id=result.registration_request_id,
        )
    except ConflictError as conflict:
        # The registration has moved on (verified, then a late contradicting message): keep the state.
        logger.warning("notifyRegistrationStatus for %s not applied: %s", registration.public_id, conflict.message)
        return NotificationEffect(anomaly=True, summary=conflict.message)
    return NotificationEffect(anomaly=False, summary=f"registration {result.status}")


class NotRetryable(Exception):
    """Only notifications waiting (received, parked) or given up on (failed) are processed again."""


def notification_retry(*, notification: InboundNotification) -> InboundNotification:
    """Process a notification again now, on a person's say-so: a failed one starts its attempts afresh.
    Processed, duplicate, anomalous and rejected ones are refused: their effect (or its absence) stands."""
    retryable = (NotificationStatus.RECEIVED, NotificationStatus.PARKED, NotificationStatus.FAILED)
    moved = (
        InboundNotification.objects.unscoped()
        .filter(pk=notification.pk, status__in=retryable)
        .update(status=NotificationStatus.RECEIVED, attempts=0)
    )
    if not moved:
        raise NotRetryable(f"it is {notification.get_status_display().lower()}")
    notification_process(notification_id=notification.pk)
    return InboundNotification.objects.unscoped().get(pk=notification.pk)


def notifications_redrive(*, limit: int = 100) -> int:
    """The sweeper: process what no task did — rows received but left unprocessed (a lost task, a crash
    after commit, a wiped broker) and parked ones whose retry is due. Returns how many it took."""
    due = claim_due(
        InboundNotification.objects.unscoped().filter(  # batch work across tenants; each row on its own
            status__in=[NotificationStatus.RECEIVED, NotificationStatus.PARKED]
        ),
        field="next_attempt_at",
        now=timezone.now(),
        limit=limit,
        next_at=lambda row: timezone.now() + _backoff(row.attempts + 1),
    )
    for row in due:
        try:
            notification_process(notification_id=row.pk)
        except Exception:  # one row's bug must not stop the sweep; its attempts count towards giving up
            logger.exception("notification %s could not be processed", row.public_id)
    return len(due)
