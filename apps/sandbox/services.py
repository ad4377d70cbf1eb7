"""Everything the sandbox wallet writes: its key, clients, money moves, payments, refunds, tokens,
registrations, orderStr orders and the notification outbox.

Money moves lock the rows they touch (``select_for_update``) inside one transaction. Failures are raised as
``WalletError`` carrying the wire result code, because the wire code is this app's stable error vocabulary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import secrets
import threading
import urllib.parse
from collections.abc import Callable

import httpx
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from . import conf, faults, signing
from .models import (
    AUTHORIZATION_TTL,
    TEST_USERS,
    AccessToken,
    AuthCode,
    Balance,
    Capture,
    ClassicOrder,
    ClassicRefund,
    ClassicUnfreeze,
    Notification,
    NotificationAttempt,
    Payment,
    Refund,
    Registration,
    SandboxClient,
    SandboxUser,
    WalletKey,
)
from .protocol import Dialect, WalletError, classic_amount, classic_time, dumps, illegal, iso, money, result

logger = logging.getLogger(__name__)

WALLET_KEY_VERSION = 1
ACCESS_TOKEN_TTL = dt.timedelta(days=1)
REFRESH_TOKEN_TTL = dt.timedelta(days=30)
# A notification is claimed for this long while it is being sent, so a crashed sender's claim lapses.
DELIVERY_LEASE = dt.timedelta(seconds=120)
# out_of_order_notify holds a notification until a later one is sent, but never longer than this.
OUT_OF_ORDER_MAX_HOLD_SECONDS = 300
REVIEW_REJECTIONS = {
    "registry": "registration number not found in the business registry",
    "expired": "business license expired",
}


# --- Keys and clients ----------------------------------------------------------------------------


def wallet_key() -> WalletKey:
    """The wallet's key pair, generated on first use; concurrent first calls end up with the same row."""
    key = WalletKey.objects.first()
    if key is not None:
        return key
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        with transaction.atomic():
            return WalletKey.objects.create(
                private_key_encrypted=_fernet().encrypt(pem).decode("ascii"),
                public_key_pem=signing.public_pem(private_key.public_key()),
            )
    except IntegrityError:
        return WalletKey.objects.get()


def wallet_private_key() -> rsa.RSAPrivateKey:
    return _decrypt_private_key(wallet_key().private_key_encrypted)


@functools.lru_cache(maxsize=4)
def _decrypt_private_key(ciphertext: str) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(_fernet().decrypt(ciphertext.encode("ascii")), password=None)


def _fernet() -> MultiFernet:
    """The first of ``FIELD_ENCRYPTION_KEYS`` encrypts; all of them decrypt (rotation)."""
    return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])


def client_register(
    *,
    client_id: str,
    public_key: str,
    key_version: int | None = None,
    name: str | None = None,
    partner_id: str | None = None,
    classic_app_id: str | None = None,
    site_name: str | None = None,
    fault_settings: dict | None = None,
) -> tuple[SandboxClient, bool]:
    """Create the client or update what was given; raises ``ValueError`` for a bad key or fault."""
    fields = {
        "public_key_pem": signing.public_pem(signing.load_public_key(public_key)),
        "key_version": key_version,
        "name": name,
        "partner_id": partner_id,
        "classic_app_id": classic_app_id,
        "site_name": site_name,
        "faults": None if fault_settings is None else faults.validate(fault_settings),
    }
    given = {field: value for field, value in fields.items() if value is not None}
    with transaction.atomic():
        return SandboxClient.objects.update_or_create(
            client_id=client_id, defaults=given, create_defaults={"name": client_id, **given}
        )


# --- Users and money -----------------------------------------------------------------------------


def _user(login: str) -> SandboxUser:
    seed = TEST_USERS.get(login)
    if seed is None:
        raise WalletError("USER_NOT_EXIST", f"no sandbox user {login!r}")
    user, _ = SandboxUser.objects.get_or_create(
        login=login, defaults={"customer_id": seed.customer_id, "display_name": seed.display_name}
    )
    return user


def _balance(*, currency: str, user: SandboxUser | None = None, client: SandboxClient | None = None) -> Balance:
    initial = TEST_USERS[user.login].opening_balance if user else 0
    balance, _ = Balance.objects.get_or_create(
        user=user, client=client, currency=currency, defaults={"amount": initial}
    )
    return balance


def _move(*, amount: int, source: Balance | None, target: Balance | None, shortfall_code: str = "") -> None:
    """Move ``amount`` from ``source`` to ``target``; ``None`` on either side is frozen money (a freeze takes it
    out of circulation, a capture or release puts it back). Caller holds a transaction; rows are locked in
    primary-key order so two opposite moves cannot deadlock."""
    pks = sorted(balance.pk for balance in (source, target) if balance is not None)
    locked = {balance.pk: balance for balance in Balance.objects.select_for_update().filter(pk__in=pks).order_by("pk")}
    if source is not None:
        if locked[source.pk].amount < amount:
            raise WalletError(shortfall_code, "balance is not enough")
        Balance.objects.filter(pk=source.pk).update(amount=F("amount") - amount)
    if target is not None:
        Balance.objects.filter(pk=target.pk).update(amount=F("amount") + amount)


def _wallet_number(digits: int = 32) -> str:
    """Wallet-side ids look like Alipay's: a timestamp, then random digits."""
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    return stamp + "".join(secrets.choice("0123456789") for _ in range(digits - len(stamp)))


def _replay(stored_fingerprint: str, fingerprint: str, response_body: str) -> dict:
    """§5: the same request id with the same content gets the same answer; different content is refused."""
    if stored_fingerprint != fingerprint:
        raise WalletError("REPEAT_REQ_INCONSISTENT", "the request id was used before with different content")
    return json.loads(response_body)


# --- Payments ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PaymentOrder:
    """What a pay call asks for, already validated."""

    payment_request_id: str
    currency: str
    amount: int
    product_code: str
    payee_name: str
    order_description: str
    notify_url: str
    redirect_url: str
    expires_at: dt.datetime | None
    partner_id: str
    authorization: bool = False


def payment_create(
    *,
    client: SandboxClient,
    dialect: Dialect,
    order: PaymentOrder,
    fingerprint: str,
    fault_settings: dict,
    cashier_url: Callable[[str], str],
) -> dict:
    """Accept a cashier payment and answer with where to send the user (stored, for identical retries)."""
    if order.amount > conf.get("PAYMENT_LIMIT"):
        raise WalletError("PAYMENT_AMOUNT_EXCEED_LIMIT", "paymentAmount is above the sandbox limit")
    existing = Payment.objects.filter(client=client, payment_request_id=order.payment_request_id).first()
    if existing is not None:
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    payment = Payment(
        payment_id=_wallet_number(),
        client=client,
        dialect=dialect,
        request_fingerprint=fingerprint,
        faults=fault_settings,
        **dataclasses.asdict(order),
    )
    payment.response_body = dumps(_pay_response(payment, dialect, cashier_url(payment.payment_id)))
    try:
        with transaction.atomic():
            payment.save()
    except IntegrityError:
        existing = Payment.objects.get(client=client, payment_request_id=order.payment_request_id)
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    return json.loads(payment.response_body)


def _pay_response(payment: Payment, dialect: Dialect, redirection_url: str) -> dict:
    body = {"result": result("ACCEPT", "A", "accept"), "paymentId": payment.payment_id}
    if dialect is Dialect.V1:
        body["actionForm"] = {"actionFormType": "REDIRECTION", "redirectionUrl": redirection_url}
    else:
        body["redirectActionForm"] = {"method": "POST", "redirectionUrl": redirection_url}
    if payment.authorization and payment.expires_at:
        body["authExpiryTime"] = iso(payment.expires_at)
    return body


def payment_pay(*, payment_id: str, login: str) -> Payment:
    """The cashier's Pay: debit the user, credit the merchant (an authorization freezes the money instead),
    and queue ``notifyPayment``."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("client").get(payment_id=payment_id)
        now = timezone.now()
        if payment.status != Payment.Status.PROCESSING or payment.is_expired(now):
            raise WalletError("ORDER_STATUS_INVALID", "this payment can no longer be paid")
        user = _user(login)
        _move(
            amount=payment.amount,
            source=_balance(user=user, currency=payment.currency),
            target=None if payment.authorization else _balance(client=payment.client, currency=payment.currency),
            shortfall_code="USER_BALANCE_NOT_ENOUGH",
        )
        payment.status, payment.payer, payment.paid_at = Payment.Status.SUCCESS, user, now
        payment.save(update_fields=["status", "payer", "paid_at"])
        if payment.notify_url:
            _enqueue(
                client=payment.client,
                kind=Notification.Kind.PAYMENT,
                reference=payment.payment_id,
                url=payment.notify_url,
                body=dumps(_payment_notification(payment)),
                fault_settings=payment.faults,
            )
    return payment


def _payment_notification(payment: Payment) -> dict:
    common = {
        "paymentId": payment.payment_id,
        "paymentRequestId": payment.payment_request_id,
    }
    if payment.dialect == Dialect.V1:
        return {
            "partnerId": payment.partner_id or payment.client.partner_id,
            **common,
            "paymentAmount": money(payment.currency, payment.amount),
            "paymentTime": iso(payment.paid_at),
            "paymentStatus": "SUCCESS",
        }
    return {
        **common,
        "paymentResult": result(),
        "paymentAmount": money(payment.currency, payment.amount),
        "paymentTime": iso(payment.paid_at),
        "paymentCreateTime": iso(payment.created_at),
    }


def payment_cancel(*, payment: Payment) -> Payment:
    """Close an unpaid payment, or void a paid one and give the payer the money back; never after a refund.
    An authorization is voided (its frozen money back to the payer) only while nothing of it was captured."""
    payment = payment_expire_if_due(payment=payment)
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("client", "payer").get(pk=payment.pk)
        if payment.status == Payment.Status.CANCELLED:
            return payment
        if payment.refunds.exists() or payment.captured:
            raise WalletError("ORDER_STATUS_INVALID", "a captured or refunded payment cannot be cancelled")
        now = timezone.now()
        if payment.authorization and payment.status == Payment.Status.SUCCESS:
            _release_authorization(payment, at=now)
        elif payment.status == Payment.Status.SUCCESS:
            _move(
                amount=payment.amount,
                source=_balance(client=payment.client, currency=payment.currency),
                target=_balance(user=payment.payer, currency=payment.currency),
                shortfall_code="MERCHANT_BALANCE_NOT_ENOUGH",
            )
        payment.status, payment.cancelled_at = Payment.Status.CANCELLED, now
        payment.save(update_fields=["status", "cancelled_at", "released_at"])
    return payment


# --- Authorization payments and captures ---------------------------------------------------------


def payment_capture(
    *,
    client: SandboxClient,
    payment: Payment,
    capture_request_id: str,
    fingerprint: str,
    currency: str | None,
    amount: int | None,
    last: bool,
) -> dict:
    """Capture part or all of an authorization: frozen money to the merchant; the last capture gives the
    uncaptured rest back to the payer. ``amount`` ``None`` captures all that is left. The same
    ``captureRequestId`` with the same content gets the stored answer (``REPEAT_REQ_INCONSISTENT`` otherwise).
    Refused: ``AUTH_NOT_FOUND`` (not an authorization, or not authorised yet), ``AUTH_CANCELLED``,
    ``AUTH_EXPIRED``, ``CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT`` (more than is left)."""
    existing = Capture.objects.filter(client=client, capture_request_id=capture_request_id).first()
    if existing is not None:
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    payment = payment_expire_if_due(payment=payment)
    try:
        with transaction.atomic():
            locked = Payment.objects.select_for_update(of=("self",)).select_related("client", "payer")
            payment = locked.get(pk=payment.pk)
            _check_capturable(payment, currency)
            value = payment.uncaptured if amount is None else amount
            if not 0 < value <= payment.uncaptured:
                raise WalletError("CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT", "captures would exceed what is authorised")
            capture = Capture(
                capture_id=_wallet_number(),
                payment=payment,
                client=client,
                capture_request_id=capture_request_id,
                request_fingerprint=fingerprint,
                currency=payment.currency,
                amount=value,
                last=last,
            )
            capture.response_body = dumps(
                {
                    "result": result(),
                    "captureRequestId": capture_request_id,
                    "captureId": capture.capture_id,
                    "paymentId": payment.payment_id,
                    "captureAmount": money(payment.currency, value),
                    "captureTime": iso(capture.captured_at),
                }
            )
            capture.save()
            _move(amount=value, source=None, target=_balance(client=payment.client, currency=payment.currency))
            payment.captured += value
            if last:
                _release_authorization(payment, at=capture.captured_at)
            payment.save(update_fields=["captured", "released_at"])
    except IntegrityError:  # the same captureRequestId, concurrently: answer as the winner did
        existing = Capture.objects.get(client=client, capture_request_id=capture_request_id)
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    return json.loads(capture.response_body)


def _check_capturable(payment: Payment, currency: str | None) -> None:
    if not payment.authorization:
        raise WalletError("AUTH_NOT_FOUND", "this payment is not an authorization")
    if payment.is_expired(timezone.now()) or payment.lapsed():
        raise WalletError("AUTH_EXPIRED", "the authorization has expired")
    if payment.status == Payment.Status.CANCELLED:
        raise WalletError("AUTH_CANCELLED", "the authorization was cancelled")
    if payment.status != Payment.Status.SUCCESS:
        raise WalletError("AUTH_NOT_FOUND", "the user has not authorised this payment yet")
    if currency not in (None, payment.currency):
        raise illegal("captureAmount.currency", f"must be the payment currency {payment.currency}")


def payment_expire_if_due(*, payment: Payment) -> Payment:
    """An authorization past its expiry gives its uncaptured rest back to the payer; with nothing captured it
    ends CANCELLED. Evaluated lazily (by whatever looks at it, and by the sweep)."""
    due = payment.auth_expires_at
    if not payment.authorization or payment.status != Payment.Status.SUCCESS or payment.released_at or not due:
        return payment
    if due > timezone.now():
        return payment
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("client", "payer").get(pk=payment.pk)
        if payment.status == Payment.Status.SUCCESS and payment.released_at is None:
            _release_authorization(payment, at=due)
            if not payment.captured:
                payment.status, payment.cancelled_at = Payment.Status.CANCELLED, due
            payment.save(update_fields=["released_at", "status", "cancelled_at"])
    return payment


def _release_authorization(payment: Payment, *, at: dt.datetime) -> None:
    """Give what is still frozen back to the payer; the caller holds the payment locked and saves it."""
    rest = payment.uncaptured
    if rest:
        _move(amount=rest, source=None, target=_balance(user=payment.payer, currency=payment.currency))
    payment.released_at = at


# --- Refunds -------------------------------------------------------------------------------------


def refund_create(
    *,
    client: SandboxClient,
    payment: Payment,
    refund_request_id: str,
    fingerprint: str,
    currency: str,
    amount: int,
    reason: str,
    notify_url: str = "",
    leave_processing: bool = False,
) -> dict:
    """Refund part or all of a paid payment, and queue ``notifyRefund`` to ``notify_url`` once it is done.
    ``leave_processing`` (the ``result_u`` fault) accepts the refund but moves no money until an inquiry
    completes it, and answers ``REFUND_IN_PROCESS``."""
    existing = Refund.objects.filter(client=client, refund_request_id=refund_request_id).first()
    if existing is not None:
        return _refund_replay(existing, fingerprint)
    try:
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment.pk)
            if payment.status != Payment.Status.SUCCESS:
                raise WalletError("ORDER_STATUS_INVALID", f"a {payment.status} payment cannot be refunded")
            if currency != payment.currency:
                raise illegal("refundAmount.currency", f"must be the payment currency {payment.currency}")
            refunded = payment.refunds.aggregate(total=Sum("amount"))["total"] or 0  # in process ones count too
            if refunded + amount > (payment.captured if payment.authorization else payment.amount):
                raise WalletError("REFUND_AMOUNT_EXCEED", "refunds would exceed the paid amount")
            refund = Refund.objects.create(
                refund_id=_wallet_number(),
                payment=payment,
                client=client,
                refund_request_id=refund_request_id,
                request_fingerprint=fingerprint,
                currency=currency,
                amount=amount,
                reason=reason,
                notify_url=notify_url,
                status=Refund.Status.PROCESSING,
            )
            if not leave_processing:
                _refund_settle(refund)
    except IntegrityError:  # the same refundRequestId, concurrently: answer as the winner did
        refund = Refund.objects.get(client=client, refund_request_id=refund_request_id)
    return _refund_replay(refund, fingerprint)


def refund_complete(*, refund: Refund) -> Refund:
    """Finish a refund left in process (what the next inquiry does)."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == Refund.Status.PROCESSING:
            _refund_settle(refund)
    return refund


def _refund_settle(refund: Refund) -> None:
    payment = Payment.objects.select_related("client", "payer").get(pk=refund.payment_id)
    _move(
        amount=refund.amount,
        source=_balance(client=payment.client, currency=refund.currency),
        target=_balance(user=payment.payer, currency=refund.currency),
        shortfall_code="MERCHANT_BALANCE_NOT_ENOUGH",
    )
    refund.status, refund.refunded_at = Refund.Status.SUCCESS, timezone.now()
    refund.response_body = dumps(
        {"result": result(), "refundId": refund.refund_id, "refundTime": iso(refund.refunded_at)}
    )
    refund.save(update_fields=["status", "refunded_at", "response_body"])
    if refund.notify_url:
        _enqueue(
            client=payment.client,
            kind=Notification.Kind.REFUND,
            reference=refund.refund_id,
            url=refund.notify_url,
            body=dumps(_refund_notification(refund)),
            fault_settings=payment.faults,
        )


def _refund_notification(refund: Refund) -> dict:
    """``notifyRefund``: the refund's final result (the sandbox's refunds end in success)."""
    return {
        "notifyType": "REFUND_RESULT",
        "result": result(),
        "refundStatus": "SUCCESS",
        "refundRequestId": refund.refund_request_id,
        "refundId": refund.refund_id,
        "refundAmount": money(refund.currency, refund.amount),
        "refundTime": iso(refund.refunded_at),
    }


def _refund_replay(refund: Refund, fingerprint: str) -> dict:
    """A refund still in process has no final answer to repeat yet: it is still unknown (U)."""
    if refund.status == Refund.Status.PROCESSING and refund.request_fingerprint == fingerprint:
        raise WalletError("REFUND_IN_PROCESS", "the refund is in process; inquire later", status="U")
    return _replay(refund.request_fingerprint, fingerprint, refund.response_body)


# --- Authorisation -------------------------------------------------------------------------------


def auth_code_issue(*, app_id: str, login: str, scopes: list[str]) -> AuthCode:
    """What ``my.getAuthCode`` returns to the mini program: a single-use code for this user."""
    return AuthCode.objects.create(
        code=secrets.token_urlsafe(24),
        app_id=app_id,
        user=_user(login),
        scopes=scopes,
        expires_at=timezone.now() + dt.timedelta(seconds=conf.get("AUTH_CODE_TTL")),
    )


def token_from_auth_code(*, client: SandboxClient, dialect: Dialect, code: str, app_id: str) -> AccessToken:
    spelling = "CODE" if dialect is Dialect.V1 else "AUTHCODE"
    now = timezone.now()
    auth_code = AuthCode.objects.select_related("user").filter(code=code).first()
    if auth_code is None or (dialect.needs_mini_program_ids and auth_code.app_id != app_id):
        raise WalletError(f"INVALID_{spelling}", "the auth code is not known")
    if auth_code.used_at is None and auth_code.expires_at <= now:
        raise WalletError(f"EXPIRED_{spelling}", "the auth code has expired")
    if not AuthCode.objects.filter(pk=auth_code.pk, used_at=None).update(used_at=now):
        raise WalletError(f"USED_{spelling}", "the auth code was already used")
    return _grant(client=client, user=auth_code.user, scopes=auth_code.scopes)


def token_refresh(*, client: SandboxClient, refresh_token: str) -> AccessToken:
    now = timezone.now()
    grant = AccessToken.objects.filter(client=client, refresh_token=refresh_token).first()
    if grant is None:
        raise WalletError("INVALID_REFRESH_TOKEN", "the refresh token is not known")
    if grant.refresh_used_at is None and grant.refresh_token_expires_at <= now:
        raise WalletError("EXPIRED_REFRESH_TOKEN", "the refresh token has expired")
    if not AccessToken.objects.filter(pk=grant.pk, refresh_used_at=None).update(refresh_used_at=now):
        raise WalletError("USED_REFRESH_TOKEN", "the refresh token was already used")
    return _grant(client=client, user=grant.user, scopes=grant.scopes)


def _grant(*, client: SandboxClient, user: SandboxUser, scopes: list[str]) -> AccessToken:
    now = timezone.now()
    return AccessToken.objects.create(
        client=client,
        user=user,
        scopes=scopes,
        access_token=secrets.token_hex(32),
        access_token_expires_at=now + ACCESS_TOKEN_TTL,
        refresh_token=secrets.token_hex(32),
        refresh_token_expires_at=now + REFRESH_TOKEN_TTL,
    )


# --- Merchant registration -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegistrationRequest:
    registration_request_id: str
    reference_merchant_id: str
    notify_url: str
    merchant_info: dict
    product_codes: list
    pass_through_info: str


def registration_submit(
    *, client: SandboxClient, request: RegistrationRequest, fingerprint: str, fault_settings: dict
) -> dict:
    """Accept a registration for review (PENDING); the review ends ``SANDBOX_REVIEW_DELAY`` seconds later."""
    lookup = {"client": client, "registration_request_id": request.registration_request_id}
    existing = Registration.objects.filter(**lookup).first()
    if existing is not None:
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    live = Registration.objects.filter(client=client, reference_merchant_id=request.reference_merchant_id)
    if live.exclude(status=Registration.Status.REJECTED).exists():
        raise WalletError("REPEAT_REGISTRATION", "this referenceMerchantId is already registered or in review")
    response = {"result": result(), "registrationResult": {"registrationStatus": "PENDING"}}
    now = timezone.now()
    if request.pass_through_info:
        response["passThroughInfo"] = request.pass_through_info
    try:
        with transaction.atomic():
            Registration.objects.create(
                **lookup,
                request_fingerprint=fingerprint,
                response_body=dumps(response),
                reference_merchant_id=request.reference_merchant_id,
                notify_url=request.notify_url,
                merchant_info=request.merchant_info,
                product_codes=request.product_codes,
                faults=fault_settings,
                created_at=now,
                review_due_at=now + dt.timedelta(seconds=conf.scaled_seconds(conf.get("REVIEW_DELAY"))),
            )
    except IntegrityError:
        existing = Registration.objects.get(**lookup)
        return _replay(existing.request_fingerprint, fingerprint, existing.response_body)
    return response


def registration_review_if_due(*, registration: Registration, send_after_commit: bool = True) -> Registration:
    """Decide a registration whose review time has come, and queue ``notifyRegistrationStatus`` (sent right
    after commit, unless the caller is the sweep, which sends it itself)."""
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(of=("self",)).select_related("client").get(pk=registration.pk)
        )
        now = timezone.now()
        if registration.status != Registration.Status.PENDING or registration.review_due_at > now:
            return registration
        registration.reject_reason = _review_rejection(registration.merchant_info, now)
        registration.status = (
            Registration.Status.REJECTED if registration.reject_reason else Registration.Status.COMPLETED
        )
        registration.reviewed_at = now
        registration.save(update_fields=["status", "reject_reason", "reviewed_at"])
        if registration.notify_url:
            _enqueue(
                client=registration.client,
                kind=Notification.Kind.REGISTRATION,
                reference=registration.registration_request_id,
                url=registration.notify_url,
                body=dumps(
                    {
                        "referenceMerchantId": registration.reference_merchant_id,
                        "registrationRequestId": registration.registration_request_id,
                        "registrationResult": registration_result(registration),
                        "pspRegistrationResultList": [],
                    }
                ),
                fault_settings=registration.faults,
                send_after_commit=send_after_commit,
            )
    return registration


def registration_result(registration: Registration) -> dict:
    outcome = {"registrationStatus": registration.status}
    if registration.reject_reason:
        outcome["rejectReason"] = registration.reject_reason
    return outcome


def _review_rejection(merchant_info: dict, now: dt.datetime) -> str:
    """The review rule (README): a registry miss (number ends in 000), then an expired licence; else pass."""
    detail = merchant_info.get("registrationDetail") or {}
    if str(detail.get("registrationNo", "")).endswith("000"):
        return REVIEW_REJECTIONS["registry"]
    expires = license_expiry(detail.get("registrationExpireDate"))
    if expires is not None and expires <= now:
        return REVIEW_REJECTIONS["expired"]
    return ""


def license_expiry(value: object) -> dt.datetime | None:
    """``registrationExpireDate`` as a moment: a bare date lasts to the end of that day (UTC)."""
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError("not a date")
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value) + dt.timedelta(days=1), dt.time(), dt.UTC)
    except ValueError:
        moment = dt.datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- Classic orderStr ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassicRequest:
    kind: str
    out_no: str
    out_request_no: str
    title: str
    currency: str
    amount: int  # minor units
    notify_url: str
    expires_at: dt.datetime | None


def classic_order_open(*, client: SandboxClient, request: ClassicRequest, fingerprint: str) -> ClassicOrder:
    """The order an ``orderStr`` describes; opening the same one again finds it, altered content is refused."""
    lookup = {"client": client, "kind": request.kind, "out_no": request.out_no}
    order = ClassicOrder.objects.filter(**lookup).first()
    if order is None:
        try:
            with transaction.atomic():
                order = ClassicOrder.objects.create(
                    **lookup,
                    wallet_no=_wallet_number(28),
                    out_request_no=request.out_request_no,
                    request_fingerprint=fingerprint,
                    title=request.title,
                    currency=request.currency,
                    amount=request.amount,
                    notify_url=request.notify_url,
                    expires_at=request.expires_at,
                    faults=client.faults,
                )
        except IntegrityError:
            order = ClassicOrder.objects.get(**lookup)
    if order.request_fingerprint != fingerprint:
        raise WalletError("REPEAT_REQ_INCONSISTENT", "this order number was used with different content")
    return order


def classic_order_confirm(*, wallet_no: str, login: str) -> ClassicOrder:
    """Pay (trade) or freeze (pre-authorisation: the money leaves the user's balance but reaches no one until
    captured), then queue the classic async notification. A closed or expired order is
    ``ORDER_STATUS_INVALID``."""
    with transaction.atomic():
        order = ClassicOrder.objects.select_for_update(of=("self",)).select_related("client").get(wallet_no=wallet_no)
        if order.status == ClassicOrder.Status.SUCCESS:
            raise WalletError("ORDER_STATUS_INVALID", "this order was already confirmed")
        if order.status == ClassicOrder.Status.CLOSED or order.is_expired(timezone.now()):
            raise WalletError("ORDER_STATUS_INVALID", "this order is closed")
        user = _user(login)
        is_trade = order.kind == ClassicOrder.Kind.TRADE
        _move(
            amount=order.amount,
            source=_balance(user=user, currency=order.currency),
            target=_balance(client=order.client, currency=order.currency) if is_trade else None,
            shortfall_code="USER_BALANCE_NOT_ENOUGH",
        )
        order.status, order.payer, order.paid_at = ClassicOrder.Status.SUCCESS, user, timezone.now()
        order.operation_id = "" if is_trade else _wallet_number(24)
        order.save(update_fields=["status", "payer", "paid_at", "operation_id"])
        if is_trade:
            _classic_notify(order, _trade_notification(order))
        else:
            _classic_notify(order, _freeze_notification(order, "FREEZE", order, order.paid_at))
    return order


def classic_auth_expire_if_due(*, order: ClassicOrder) -> ClassicOrder:
    """A freeze past its pay_timeout closes: never authorised, it can no longer be; authorised, what is still
    frozen goes back to the payer. Its ``closed_at`` is the moment it expired. Evaluated lazily (by whatever
    looks at it, and by the sweep)."""
    if order.kind != ClassicOrder.Kind.FREEZE or order.status == ClassicOrder.Status.CLOSED:
        return order
    if order.expires_at is None or order.expires_at > timezone.now():
        return order
    with transaction.atomic():
        order = ClassicOrder.objects.select_for_update(of=("self",)).select_related("payer").get(pk=order.pk)
        if order.status == ClassicOrder.Status.CLOSED:
            return order
        rest = order.rest
        if rest:
            _move(amount=rest, source=None, target=_balance(user=order.payer, currency=order.currency))
            order.unfrozen += rest
        order.status, order.closed_at = ClassicOrder.Status.CLOSED, order.expires_at
        order.save(update_fields=["status", "closed_at", "unfrozen"])
    return order


@dataclasses.dataclass(frozen=True)
class ClassicCapture:
    """``alipay.trade.pay`` of a pre-authorisation, already validated."""

    out_trade_no: str
    amount: int
    subject: str
    complete: bool  # auth_confirm_mode=COMPLETE: give the rest back after this payment


def classic_auth_capture(
    *, freeze: ClassicOrder, capture: ClassicCapture, fingerprint: str
) -> tuple[ClassicOrder, bool]:
    """Pay a new trade from a freeze's frozen money to the merchant (``True`` when this call did it). The same
    ``out_trade_no`` with the same content finds the same trade (``False``), with other content it is
    ``ACQ.CONTEXT_INCONSISTENT``. ``COMPLETE`` gives what stays frozen back to the payer. Refused:
    ``ACQ.AUTH_NO_ERROR`` (the freeze is finished, fully unfrozen or expired), ``ACQ.AUTH_AMOUNT_NOT_ENOUGH``
    (more than is frozen, or not authorised yet)."""
    existing = _classic_trade_repeat(freeze.client, capture.out_trade_no, fingerprint)
    if existing is not None:
        return existing, False
    classic_auth_expire_if_due(order=freeze)
    try:
        with transaction.atomic():
            freeze = _lock_classic(freeze)
            if freeze.status == ClassicOrder.Status.CLOSED:
                raise WalletError("ACQ.AUTH_NO_ERROR", "the pre-authorisation is finished or closed")
            if capture.amount > freeze.rest:
                raise WalletError("ACQ.AUTH_AMOUNT_NOT_ENOUGH", "total_amount is above the frozen rest_amount")
            now = timezone.now()
            trade = ClassicOrder.objects.create(
                client=freeze.client,
                kind=ClassicOrder.Kind.TRADE,
                out_no=capture.out_trade_no,
                wallet_no=_wallet_number(28),
                request_fingerprint=fingerprint,
                title=capture.subject,
                currency=freeze.currency,
                amount=capture.amount,
                notify_url=freeze.notify_url,
                faults=freeze.faults,
                status=ClassicOrder.Status.SUCCESS,
                payer=freeze.payer,
                paid_at=now,
                authorization=freeze,
            )
            _move(amount=capture.amount, source=None, target=_balance(client=freeze.client, currency=freeze.currency))
            freeze.captured += capture.amount
            rest = freeze.rest
            if capture.complete and rest:
                _move(amount=rest, source=None, target=_balance(user=freeze.payer, currency=freeze.currency))
                freeze.unfrozen += rest
            _close_if_settled(freeze, now)
            freeze.save(update_fields=["captured", "unfrozen", "status", "closed_at"])
            _classic_notify(trade, _trade_notification(trade))
    except IntegrityError:  # the same out_trade_no, concurrently: answer as the winner did
        return _classic_trade_repeat(freeze.client, capture.out_trade_no, fingerprint), False
    return trade, True


def _classic_trade_repeat(client: SandboxClient, out_trade_no: str, fingerprint: str) -> ClassicOrder | None:
    trade = client.classic_orders.filter(kind=ClassicOrder.Kind.TRADE, out_no=out_trade_no).first()
    if trade is not None and trade.request_fingerprint != fingerprint:
        raise WalletError("ACQ.CONTEXT_INCONSISTENT", "this out_trade_no was used with other content")
    return trade


def classic_auth_unfreeze(
    *, freeze: ClassicOrder, out_request_no: str, amount: int, remark: str
) -> tuple[ClassicUnfreeze, bool]:
    """Give part or all of what is frozen back to the payer (``True`` when this call did it); nothing left
    frozen closes the freeze. The same ``out_request_no`` again returns the first unfreeze (``False``), with
    another amount ``ACQ.DISCORDANT_REPEAT_REQUEST``. Refused: ``REQUEST_AMOUNT_EXCEED`` (above rest_amount,
    or not authorised yet), ``ORDER_ALREADY_FINISH`` (closed after a capture), ``ORDER_ALREADY_CLOSED``."""
    classic_auth_expire_if_due(order=freeze)
    try:
        with transaction.atomic():
            freeze = _lock_classic(freeze)
            existing = freeze.unfreezes.filter(out_request_no=out_request_no).first()
            if existing is not None:
                return _classic_repeat(existing, amount), False
            if freeze.status == ClassicOrder.Status.CLOSED:
                if freeze.captured and not freeze.lapsed():
                    raise WalletError("ORDER_ALREADY_FINISH", "the pre-authorisation is finished")
                raise WalletError("ORDER_ALREADY_CLOSED", "the pre-authorisation is closed")
            if amount > freeze.rest:
                raise WalletError("REQUEST_AMOUNT_EXCEED", "amount is above the frozen rest_amount")
            unfreeze = ClassicUnfreeze.objects.create(
                order=freeze,
                out_request_no=out_request_no,
                operation_id=_wallet_number(24),
                amount=amount,
                remark=remark,
            )
            _move(amount=amount, source=None, target=_balance(user=freeze.payer, currency=freeze.currency))
            freeze.unfrozen += amount
            _close_if_settled(freeze, unfreeze.unfrozen_at)
            freeze.save(update_fields=["unfrozen", "status", "closed_at"])
            _classic_notify(freeze, _freeze_notification(freeze, "UNFREEZE", unfreeze, unfreeze.unfrozen_at))
    except IntegrityError:  # the same out_request_no, concurrently: answer as the winner did
        existing = ClassicUnfreeze.objects.get(order=freeze, out_request_no=out_request_no)
        return _classic_repeat(existing, amount), False
    return unfreeze, True


def _lock_classic(order: ClassicOrder) -> ClassicOrder:
    """The order afresh, locked for this transaction, with its client and payer."""
    return ClassicOrder.objects.select_for_update(of=("self",)).select_related("client", "payer").get(pk=order.pk)


def _close_if_settled(freeze: ClassicOrder, at: dt.datetime) -> None:
    if freeze.rest == 0:
        freeze.status, freeze.closed_at = ClassicOrder.Status.CLOSED, at


def _trade_notification(order: ClassicOrder) -> dict:
    amount = classic_amount(order.amount)
    return {
        "notify_type": "trade_status_sync",
        "trade_no": order.wallet_no,
        "out_trade_no": order.out_no,
        "subject": order.title,
        "total_amount": amount,
        "receipt_amount": amount,
        "trade_status": "TRADE_SUCCESS",
        "gmt_payment": classic_time(order.paid_at),
        "buyer_id": order.payer.customer_id,
    }


def _freeze_notification(freeze: ClassicOrder, kind: str, operation, at: dt.datetime) -> dict:
    """``fund_auth_freeze`` / ``fund_auth_unfreeze``: the operation (the freeze itself, or an unfreeze) and the
    freeze's running totals."""
    return {
        "notify_type": f"fund_auth_{kind.lower()}",
        "auth_no": freeze.wallet_no,
        "out_order_no": freeze.out_no,
        "out_request_no": operation.out_request_no,
        "operation_id": operation.operation_id,
        "operation_type": kind,
        "amount": classic_amount(operation.amount),
        "total_freeze_amount": classic_amount(freeze.amount),
        "total_unfreeze_amount": classic_amount(freeze.unfrozen),
        "total_pay_amount": classic_amount(freeze.captured),
        "rest_amount": classic_amount(freeze.rest),
        "status": "SUCCESS",
        "payer_user_id": freeze.payer.customer_id,
        "gmt_trans": classic_time(at),
    }


def _classic_notify(order: ClassicOrder, fields: dict) -> None:
    """Queue a classic async notification of ``order`` (if it has a notify_url), signed like the gateway's."""
    if not order.notify_url:
        return
    params = {
        "app_id": order.client.classic_app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "notify_id": secrets.token_hex(16),
        "notify_time": classic_time(timezone.now()),
        **fields,
    }
    if order.currency != "CNY":
        params["trans_currency"] = order.currency
    sign = signing.classic_sign(wallet_private_key(), params)
    params["sign"] = signing.corrupt_base64(sign) if order.faults.get("bad_signature") else sign
    _enqueue(
        client=order.client,
        kind=Notification.Kind.CLASSIC,
        reference=order.wallet_no,
        url=order.notify_url,
        body=urllib.parse.urlencode(params),
        fault_settings=order.faults,
    )


def classic_trade_close(*, order: ClassicOrder) -> ClassicOrder:
    """``alipay.trade.close``: an unpaid trade (expired or not) can no longer be paid. Closing it again is
    success; a paid trade is ``ACQ.TRADE_STATUS_ERROR``."""
    with transaction.atomic():
        order = ClassicOrder.objects.select_for_update().get(pk=order.pk)
        if order.status == ClassicOrder.Status.CLOSED and order.paid_at is None:
            return order
        if order.status != ClassicOrder.Status.PROCESSING:
            raise WalletError("ACQ.TRADE_STATUS_ERROR", "a paid trade cannot be closed; refund it")
        order.status, order.closed_at = ClassicOrder.Status.CLOSED, timezone.now()
        order.save(update_fields=["status", "closed_at"])
    return order


def classic_refund_create(
    *, order: ClassicOrder, out_request_no: str, amount: int, reason: str
) -> tuple[ClassicRefund, bool]:
    """``alipay.trade.refund``: money back from the merchant to the payer, in the trade's currency; ``True``
    when this call moved it. The same ``out_request_no`` again returns the first refund (``False``), with
    another amount ``ACQ.DISCORDANT_REPEAT_REQUEST``. Only a paid trade is refunded
    (``ACQ.TRADE_STATUS_ERROR``), never above what is left (``ACQ.REFUND_AMT_NOT_EQUAL_TOTAL``); the refund
    that returns the last of it closes the trade."""
    try:
        with transaction.atomic():
            order = _lock_classic(order)
            existing = order.refunds.filter(out_request_no=out_request_no).first()
            if existing is not None:
                return _classic_repeat(existing, amount), False
            if order.kind != ClassicOrder.Kind.TRADE or order.status != ClassicOrder.Status.SUCCESS:
                raise WalletError("ACQ.TRADE_STATUS_ERROR", "only a paid trade can be refunded")
            refund_total = (order.refunds.aggregate(total=Sum("amount"))["total"] or 0) + amount
            if refund_total > order.amount:
                raise WalletError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "refunds would exceed the paid amount")
            _move(
                amount=amount,
                source=_balance(client=order.client, currency=order.currency),
                target=_balance(user=order.payer, currency=order.currency),
                shortfall_code="ACQ.SELLER_BALANCE_NOT_ENOUGH",
            )
            refund = ClassicRefund.objects.create(
                order=order,
                out_request_no=out_request_no,
                currency=order.currency,
                amount=amount,
                refund_total=refund_total,
                reason=reason,
            )
            if refund_total == order.amount:
                order.status, order.closed_at = ClassicOrder.Status.CLOSED, refund.refunded_at
                order.save(update_fields=["status", "closed_at"])
    except IntegrityError:  # the same out_request_no, concurrently: answer as the winner did
        existing = ClassicRefund.objects.get(order=order, out_request_no=out_request_no)
        return _classic_repeat(existing, amount), False
    return refund, True


def _classic_repeat(operation, amount: int):
    """A refund or unfreeze asked for again under its ``out_request_no``: the first one, if the amount agrees."""
    if operation.amount != amount:
        raise WalletError("ACQ.DISCORDANT_REPEAT_REQUEST", "this out_request_no was used with another amount")
    return operation


# --- Notification outbox -------------------------------------------------------------------------


def _enqueue(
    *,
    client: SandboxClient,
    kind: str,
    reference: str,
    url: str,
    body: str,
    fault_settings: dict,
    send_after_commit: bool = True,
) -> None:
    """Queue a notification (twice with ``duplicate_notify``), first sent right after commit unless
    ``late_notify`` delays it or ``out_of_order_notify`` holds it for a later one."""
    now = timezone.now()
    due = now + dt.timedelta(seconds=fault_settings.get("late_notify", 0))
    held = (
        bool(fault_settings.get("out_of_order_notify"))
        and not client.notifications.filter(held=True, status=Notification.Status.PENDING).exists()
    )
    if held:
        due = now + dt.timedelta(seconds=conf.scaled_seconds(OUT_OF_ORDER_MAX_HOLD_SECONDS))
    copies = 2 if fault_settings.get("duplicate_notify") else 1
    created = Notification.objects.bulk_create(
        Notification(
            client=client,
            kind=kind,
            reference=reference,
            url=url,
            body=body,
            corrupt_signature=bool(fault_settings.get("bad_signature")),
            held=held,
            next_attempt_at=due,
            created_at=now,
        )
        for _ in range(copies)
    )
    if send_after_commit and due <= now:
        ids = [notification.pk for notification in created]
        transaction.on_commit(lambda: _first_attempts(ids))


def _first_attempts(ids: list[int]) -> None:
    """First attempts leave the request thread so the cashier's redirect is not held up by the merchant. An
    in-memory SQLite database (the test default) cannot be shared by a second connection: SQLite refuses
    concurrent access to it at once instead of waiting, so there they run inline."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        for pk in ids:
            notification_attempt(pk)
    else:
        deliver_in_background(ids)


def deliver_in_background(ids: list[int]) -> threading.Thread:
    thread = threading.Thread(target=_deliver_and_close, args=(ids,), name="sandbox-notifier", daemon=True)
    thread.start()
    return thread


def _deliver_and_close(ids: list[int]) -> None:
    try:
        for pk in ids:
            notification_attempt(pk)
    except Exception:
        logger.exception("sandbox notifier failed; the sweep will retry")
    finally:
        connections.close_all()


def deliver_due_notifications(*, limit: int = 500) -> int:
    """The sweep: finish due registration reviews, end expired authorizations (the money back to the payers),
    then send every due notification. Returns attempts."""
    now = timezone.now()
    reviews = Registration.objects.filter(status=Registration.Status.PENDING, review_due_at__lte=now)
    for registration in reviews:
        registration_review_if_due(registration=registration, send_after_commit=False)
    expire_due_authorizations(now=now)
    due = Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=timezone.now())
    return sum(
        notification_attempt(pk) for pk in due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]
    )


def expire_due_authorizations(*, now: dt.datetime) -> None:
    """End every authorization (OpenAPI) and freeze (classic) whose time is up, as a look at it would."""
    freezes = ClassicOrder.objects.filter(
        kind=ClassicOrder.Kind.FREEZE,
        status__in=[ClassicOrder.Status.PROCESSING, ClassicOrder.Status.SUCCESS],
        expires_at__lte=now,
    )
    for order in freezes:
        classic_auth_expire_if_due(order=order)
    open_authorizations = Payment.objects.filter(authorization=True, status=Payment.Status.SUCCESS, released_at=None)
    due = Q(expires_at__lte=now) | Q(expires_at=None, paid_at__lte=now - AUTHORIZATION_TTL)
    for payment in open_authorizations.filter(due):
        payment_expire_if_due(payment=payment)


def notification_attempt(pk: int) -> int:
    """Send one due notification if no one else is sending it, record the attempt, schedule the next, and
    release notifications held for out-of-order delivery. Returns the number of attempts made."""
    now = timezone.now()
    claimed = Notification.objects.filter(pk=pk, status=Notification.Status.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + DELIVERY_LEASE, held=False
    )
    if not claimed:
        return 0
    notification = Notification.objects.select_related("client").get(pk=pk)
    outcome = _send(notification)
    schedule = conf.get("NOTIFY_RETRY_SCHEDULE")
    with transaction.atomic():
        NotificationAttempt.objects.create(notification=notification, **dataclasses.asdict(outcome))
        notification.attempt_count += 1
        if outcome.delivered:
            notification.status, notification.delivered_at = Notification.Status.DELIVERED, outcome.attempted_at
            notification.next_attempt_at = None
        elif notification.attempt_count < len(schedule):
            delay = conf.scaled_seconds(schedule[notification.attempt_count])
            notification.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
        else:
            notification.status, notification.next_attempt_at = Notification.Status.FAILED, None
        notification.save(update_fields=["attempt_count", "status", "delivered_at", "next_attempt_at"])
    released = list(
        notification.client.notifications.filter(held=True, pk__lt=notification.pk).values_list("pk", flat=True)
    )
    Notification.objects.filter(pk__in=released).update(held=False, next_attempt_at=timezone.now())
    return 1 + sum(notification_attempt(held_pk) for held_pk in released)


@dataclasses.dataclass
class _Outcome:
    attempted_at: dt.datetime
    delivered: bool = False
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""


def _send(notification: Notification) -> _Outcome:
    outcome = _Outcome(attempted_at=timezone.now())
    body = notification.body.encode()
    if notification.kind == Notification.Kind.CLASSIC:
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    else:
        headers = _signed_headers(notification, body)
    try:
        with httpx.Client(timeout=httpx.Timeout(conf.get("NOTIFY_TIMEOUT")), follow_redirects=False) as http:
            response = http.post(notification.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:512]
        return outcome
    outcome.status_code = response.status_code
    outcome.response_excerpt = response.text[:512]
    outcome.delivered = response.status_code == 200 and _acknowledged(notification.kind, response.text)
    return outcome


def _signed_headers(notification: Notification, body: bytes) -> dict:
    request_time = iso(timezone.now())
    client_id = notification.client.client_id
    signature = signing.signature_header(
        wallet_private_key(),
        method="POST",
        path=urllib.parse.urlsplit(notification.url).path or "/",
        client_id=client_id,
        timestamp=request_time,
        body=body,
        key_version=WALLET_KEY_VERSION,
    )
    if notification.corrupt_signature:
        signature = signing.corrupt(signature)
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "Client-Id": client_id,
        "Request-Time": request_time,
        "Signature": signature,
    }


def _acknowledged(kind: str, text: str) -> bool:
    """A JSON notification is acknowledged by ``result.resultStatus == "S"``, a classic one by ``success``."""
    if kind == Notification.Kind.CLASSIC:
        return text.strip() == "success"
    try:
        outcome = json.loads(text).get("result")
    except (ValueError, AttributeError):
        return False
    return isinstance(outcome, dict) and outcome.get("resultStatus") == "S"
