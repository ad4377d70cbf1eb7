"""Writes for pre-authorizations: freeze now, capture the final amount later (each capture a payment of the
order), release the rest.

Two wire variants, one ledger. An ``order_str`` mini program freezes through the classic gateway
(``alipay.fund.auth.order.app.freeze`` as an orderStr, captures by ``alipay.trade.pay`` with ``auth_no``,
releases by ``alipay.fund.auth.order.unfreeze``); a ``payment_url`` one through an authorization payment
(``paymentFactor.isAuthorizationPayment``, ``payments/capture``, void by ``payments/cancel``).

The rules of ``services`` hold here too: statuses move only through ``transition``; every id the wallet will
know is stored before the wallet hears of it and reused on every retry; an unknown outcome is settled by
asking (or by sending the same request again, which the wallet treats as the same request), never guessed.
Rows are locked pre-authorization first, then its order, then the payment or release.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ulid import ULID

from apps.core.errors import ApplicationError, ConflictError
from apps.core.money import Money
from apps.core.services import claim_due
from apps.miniprograms.models import Feature, MiniProgram
from apps.miniprograms.selectors import mini_program_gate, wallet_client_of
from apps.superapps.client import messages
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.models import TradePayMode

from . import transitions
from .ledger import announce, ask_again, record_event, refused, transition
from .models import (
    OPEN_PRE_AUTHORIZATION,
    Order,
    OrderKind,
    OrderStatus,
    Payment,
    PaymentStatus,
    PreAuthorization,
    PreAuthorizationRelease,
    ReleaseStatus,
)
from .models import PreAuthorizationStatus as Status
from .services import (
    CLASSIC_TRADE_STATUS,
    INQUIRY_FIRST_SECONDS,
    NOT_FOUND_CODES,
    NOTIFICATION_GRACE,
    ItemRequest,
    NotificationEffect,
    check_pricing,
    checked_wallet_client,
    new_order,
    next_inquiry,
    notification_anomaly,
    priced,
    resolve_quietly,
)

logger = logging.getLogger(__name__)

# pay_timeout runs from 1 minute to 15 days, in whole minutes, hours or days.
MIN_EXPIRY, MAX_EXPIRY = datetime.timedelta(minutes=1), datetime.timedelta(days=15)
DEFAULT_EXPIRY = datetime.timedelta(days=7)
# The wallet's "no such pre-authorization (yet)": an orderStr the user has not opened.
NOT_OPENED_CODES = NOT_FOUND_CODES | {"AUTH_ORDER_NOT_EXIST"}


def preauthorization_create(
    *,
    mini_program: MiniProgram,
    description: str,
    amount: Money | None = None,
    items: Sequence[ItemRequest] = (),
    currency: str | None = None,
    reference: str | None = None,
    metadata: dict | None = None,
    expires_in: datetime.timedelta | None = None,
    wallet_user_id: int | None = None,
) -> PreAuthorization:
    """Create an order of kind ``pre_authorization`` and its pre-authorization, and hand back what
    ``my.tradePay`` needs to freeze ``amount`` (or the catalogue ``items``' total) in the user's wallet.

    ``expires_in`` becomes the freeze's ``pay_timeout`` (whole minutes, 1 minute to 15 days; 7 days by
    default); after it nothing can be captured. Every check runs before anything is written or sent: the
    gate with the mini program's ``pre_authorization`` feature, the expiry, the super app's limits, the
    credentials. An ``order_str`` mini program gets a signed freeze orderStr (no wallet call); a
    ``payment_url`` one an authorization payment (``A`` → pending with the cashier URL, ``F`` → failed,
    unknown → pending, asked about until settled).
    Raises ``payments.reference_taken`` (409), ``preauthorizations.expiry_out_of_range`` and the codes of
    order pricing and of the gate (``miniprograms.feature_not_enabled``).
    """
    check_pricing(amount=amount, items=items, wallet_user_id=wallet_user_id)
    mini_program_gate(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION)
    expires_in = expires_in or DEFAULT_EXPIRY
    pay_timeout = _pay_timeout(expires_in)
    amount, lines = priced(mini_program=mini_program, amount=amount, items=items, currency=currency)
    client = checked_wallet_client(mini_program)
    now = timezone.now()
    with new_order(
        mini_program=mini_program,
        kind=OrderKind.PRE_AUTHORIZATION,
        wallet_user_id=wallet_user_id,
        reference=reference,
        description=description,
        amount=amount,
        metadata=metadata,
        items=lines,
        expires_at=now + expires_in,
    ) as order:
        pre_authorization = PreAuthorization.objects.create(
            isv_id=order.isv_id,
            merchant_id=order.merchant_id,
            order=order,
            trade_pay_mode=mini_program.trade_pay_mode,
            out_order_no=f"pao_{str(ULID()).lower()}",
            out_request_no=f"paf_{str(ULID()).lower()}",
            amount=amount.value,
            currency=amount.currency,
            expires_at=order.expires_at,
            # Nobody tells the platform that the user authorised: it asks, from a minute on.
            next_inquiry_at=now + NOTIFICATION_GRACE,
        )
    pre_authorization.order = order
    if pre_authorization.trade_pay_mode == TradePayMode.ORDER_STR:
        order_str = client.freeze_order_str(
            out_order_no=pre_authorization.out_order_no,
            out_request_no=pre_authorization.out_request_no,
            amount=amount,
            title=description,
            pay_timeout=pay_timeout,
            notify_url=mini_program.super_app.classic_notify_url(),
        )
        PreAuthorization.objects.unscoped().filter(pk=pre_authorization.pk).update(order_str=order_str)
        pre_authorization.order_str = order_str
        return pre_authorization
    return _send_authorization(client=client, pre_authorization=pre_authorization)


def _pay_timeout(expires_in: datetime.timedelta) -> str:
    """``expires_in`` as ``pay_timeout``: ``15d``, ``36h``, ``90m``."""
    seconds = int(expires_in.total_seconds())
    if not MIN_EXPIRY <= expires_in <= MAX_EXPIRY or seconds % 60:
        raise ApplicationError(
            "preauthorizations.expiry_out_of_range",
            "expires_in must be whole minutes, from 60 to 1296000 seconds (15 days).",
            attr="expires_in",
        )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: whole minutes")


def _send_authorization(*, client, pre_authorization: PreAuthorization) -> PreAuthorization:
    order = pre_authorization.order
    mini_program = order.mini_program
    request = messages.PayRequest(
        payment_request_id=pre_authorization.out_order_no,
        amount=Money(pre_authorization.amount, pre_authorization.currency),
        order_description=order.description,
        reference_order_id=order.public_id,
        notify_url=mini_program.super_app.payment_notify_url(),
        expiry_time=pre_authorization.expires_at.isoformat(timespec="seconds"),
        merchant_display_name=mini_program.merchant.name,
        authorization=True,
    )
    try:
        response = client.pay(request, app_id=mini_program.app_id)
    except WalletBusinessFailure as failure:
        return _failed(pre_authorization, code=failure.result_code, reason=failure.result_message)
    except WalletUnknownOutcome as unknown:
        logger.warning("pre-authorization %s: outcome unknown (%s)", pre_authorization, unknown.reason)
        return _schedule_inquiry(pre_authorization, first=True)
    PreAuthorization.objects.unscoped().filter(pk=pre_authorization.pk).update(
        auth_no=response.payment_id, payment_url=response.payment_url or ""
    )
    pre_authorization.auth_no, pre_authorization.payment_url = response.payment_id, response.payment_url or ""
    return pre_authorization


# --- what the wallet says ------------------------------------------------------------------------


def preauthorization_refresh(
    *, pre_authorization: PreAuthorization, source: str = "wallet_inquiry"
) -> PreAuthorization:
    """Ask the super app about the pre-authorization and apply the answer; settle its captures and releases
    whose outcome is still unknown.

    Authorised at the wallet → ``authorized`` (with ``auth_no``); refused → ``failed``; closed at the wallet
    without being authorised → ``expired`` once the expiry has passed, else ``failed``. Not opened yet, still
    awaiting the user, or an inconclusive answer changes nothing but the next inquiry time.
    """
    pre_authorization = _fresh(pre_authorization)
    for capture in pre_authorization.captures.filter(status__in=[PaymentStatus.INITIATED, PaymentStatus.UNKNOWN]):
        capture_refresh(capture=capture)
    for release in pre_authorization.releases.filter(status=ReleaseStatus.PROCESSING):
        release_refresh(release=release)
    pre_authorization = _fresh(pre_authorization)
    if pre_authorization.status != Status.PENDING:
        return pre_authorization
    client = _client_of(pre_authorization)
    try:
        state, auth_no = _wallet_state(client, pre_authorization)
    except WalletBusinessFailure as failure:
        if failure.result_code not in NOT_OPENED_CODES:
            logger.warning("inquiry of %s refused: %s", pre_authorization, failure.result_code)
        return _schedule_inquiry(pre_authorization)
    except WalletUnknownOutcome as unknown:
        logger.info("inquiry of %s inconclusive: %s", pre_authorization, unknown.reason)
        return _schedule_inquiry(pre_authorization)
    if state == "authorized":
        return _authorized(pre_authorization, auth_no=auth_no, source=source)
    if state == "failed":
        return _failed(pre_authorization, code="FAIL", reason="the wallet reports the authorization failed")
    if state == "closed":
        if timezone.now() >= pre_authorization.expires_at:
            return _expire(pre_authorization, source=source)
        return _failed(pre_authorization, code="CLOSED", reason="the wallet closed it before it was authorised")
    return _schedule_inquiry(pre_authorization)


def _wallet_state(client, pre_authorization: PreAuthorization) -> tuple[str, str]:
    """``pending``, ``authorized``, ``failed`` or ``closed`` (never authorised, or over), and the ``auth_no``."""
    if pre_authorization.trade_pay_mode == TradePayMode.ORDER_STR:
        found = client.auth_query(
            out_order_no=pre_authorization.out_order_no, out_request_no=pre_authorization.out_request_no
        )
        state = {
            messages.ClassicAuthStatus.INIT: "pending",
            messages.ClassicAuthStatus.AUTHORIZED: "authorized",
        }.get(found.status, "closed")
        if state == "closed" and found.frozen.value:
            state = "authorized"  # authorised, then finished: the captures and releases tell the rest
        return state, found.auth_no
    inquiry = client.inquire_payment(payment_request_id=pre_authorization.out_order_no)
    state = {
        messages.PaymentStatus.SUCCESS: "authorized",
        messages.PaymentStatus.FAIL: "failed",
        messages.PaymentStatus.CANCELLED: "closed",
    }.get(inquiry.status, "pending")
    return state, inquiry.payment_id or pre_authorization.auth_no


@transaction.atomic
def _authorized(pre_authorization: PreAuthorization, *, auth_no: str, source: str) -> PreAuthorization:
    pre_authorization = transition(
        model=PreAuthorization,
        instance=pre_authorization,
        table=transitions.PRE_AUTHORIZATION,
        to=Status.AUTHORIZED,
        source=source,
        expected=Status.PENDING,
        auth_no=auth_no,
        authorized_at=timezone.now(),
        next_inquiry_at=pre_authorization.expires_at,  # when it is next looked at: its expiry
    )
    transition(
        model=Order,
        instance=pre_authorization.order,
        table=transitions.ORDER,
        to=OrderStatus.AUTHORIZED,
        source=source,
    )
    return pre_authorization


@transaction.atomic
def _failed(pre_authorization: PreAuthorization, *, code: str, reason: str) -> PreAuthorization:
    pre_authorization = transition(
        model=PreAuthorization,
        instance=pre_authorization,
        table=transitions.PRE_AUTHORIZATION,
        to=Status.FAILED,
        source="wallet_response",
        reason=f"{code}: {reason}",
        failure_code=code[:64],
        next_inquiry_at=None,
    )
    transition(
        model=Order,
        instance=pre_authorization.order,
        table=transitions.ORDER,
        to=OrderStatus.FAILED,
        source="wallet_response",
        reason=code,
    )
    return pre_authorization


def _schedule_inquiry(pre_authorization: PreAuthorization, *, first: bool = False) -> PreAuthorization:
    soon = timezone.now() + datetime.timedelta(seconds=INQUIRY_FIRST_SECONDS)
    return ask_again(pre_authorization, soon if first else _next_ask(pre_authorization))


def _next_ask(pre_authorization: PreAuthorization) -> datetime.datetime:
    """When a pre-authorization awaiting the user is next asked about: backing off, but never past its
    expiry, from when ``preauthorizations_expire`` ends it (the resolution leaves it alone then; were it to
    push the time on, the expiry would find it due only by chance)."""
    return min(next_inquiry(pre_authorization.created_at), pre_authorization.expires_at)


def _client_of(pre_authorization: PreAuthorization):
    """The wallet client for the pre-authorization's variant, or an ``ApplicationError`` if the merchant's
    credentials no longer allow it (asked before anything is written)."""
    client = wallet_client_of(pre_authorization.order.mini_program)
    if pre_authorization.trade_pay_mode == TradePayMode.ORDER_STR and not client.config.classic_app_id:
        raise ApplicationError(
            "payments.order_str_not_configured",
            "The merchant's credentials at this super app have no classic app_id, which this pre-authorization needs.",
        )
    return client


def _fresh(pre_authorization: PreAuthorization) -> PreAuthorization:
    return (
        PreAuthorization.objects.unscoped()
        .select_related("order__mini_program__super_app", "order__mini_program__merchant")
        .get(pk=pre_authorization.pk)
    )


# --- captures ------------------------------------------------------------------------------------


def preauthorization_capture(*, pre_authorization: PreAuthorization, amount: int, final: bool) -> Payment:
    """Capture ``amount`` of the frozen funds as a new payment of the order.

    ``final`` (``COMPLETE`` / ``isLastCapture``) gives what stays frozen back to the user and completes the
    pre-authorization; otherwise the rest stays frozen for further captures. Checked under the
    pre-authorization's row lock before anything is sent: authorised, not expired, no other capture or
    release in flight, and captures never above what is frozen. The capture's id is committed before the
    wallet call. Success → the payment succeeds and the order is paid (for the running total); a refusal →
    ``preauthorizations.capture_refused`` (the failed capture is kept); unknown → the capture stays
    ``unknown`` for the inquiry to settle.
    Raises ``preauthorizations.not_authorized``, ``preauthorizations.not_open``, ``preauthorizations.expired``,
    ``preauthorizations.operation_in_progress`` (409s) and ``preauthorizations.capture_exceeds_remaining``.
    """
    _client_of(pre_authorization)
    with transaction.atomic():
        locked = _lock_open(pre_authorization)
        if amount > locked.remaining_amount:
            raise ApplicationError(
                "preauthorizations.capture_exceeds_remaining",
                f"At most {locked.remaining_amount} {locked.currency} (minor units) is still frozen.",
                attr="amount",
            )
        capture = Payment.objects.create(
            isv_id=locked.isv_id,
            merchant_id=locked.merchant_id,
            order_id=locked.order_id,
            pre_authorization=locked,
            payment_request_id=f"cap_{str(ULID()).lower()}",
            amount=amount,
            capture_final=final,
            trade_pay_mode=locked.trade_pay_mode,
            # Asked about if the answer below is never stored.
            next_inquiry_at=timezone.now() + NOTIFICATION_GRACE,
        )
    capture = _send_capture(capture)
    if capture.status == PaymentStatus.FAILED:
        raise ConflictError(
            "preauthorizations.capture_refused", f"The super app refused the capture: {capture.failure_code}."
        )
    return capture


def _lock_open(pre_authorization: PreAuthorization) -> PreAuthorization:
    """The pre-authorization locked, if captures and releases may start now; the caller is atomic."""
    locked = PreAuthorization.objects.unscoped().select_for_update().get(pk=pre_authorization.pk)
    if locked.status == Status.PENDING:
        raise ConflictError("preauthorizations.not_authorized", "The user has not authorised the funds yet.")
    if locked.status not in OPEN_PRE_AUTHORIZATION:
        raise ConflictError("preauthorizations.not_open", f"The pre-authorization is {locked.status}.")
    if timezone.now() >= locked.expires_at:
        raise ConflictError(
            "preauthorizations.expired",
            f"The pre-authorization expired at {locked.expires_at.isoformat(timespec='seconds')}; "
            "the frozen funds go back to the user.",
        )
    in_flight = (
        locked.captures.filter(status__in=[PaymentStatus.INITIATED, PaymentStatus.UNKNOWN]).exists()
        or locked.releases.filter(status=ReleaseStatus.PROCESSING).exists()
    )
    if in_flight:
        raise ConflictError(
            "preauthorizations.operation_in_progress",
            "A capture or release of this pre-authorization awaits the super app's answer; retry shortly.",
        )
    return locked


def _send_capture(capture: Payment) -> Payment:
    """Send (or send again: the capture's id makes it the same capture) and apply the answer."""
    pre_authorization = _fresh(capture.pre_authorization)
    client = _client_of(pre_authorization)
    amount = Money(capture.amount, pre_authorization.currency)
    try:
        if capture.trade_pay_mode == TradePayMode.ORDER_STR:
            wallet_id = client.auth_capture(
                auth_no=pre_authorization.auth_no,
                out_trade_no=capture.payment_request_id,
                amount=amount,
                subject=pre_authorization.order.description,
                complete=capture.capture_final,
            ).trade_no
        else:
            wallet_id = client.capture(
                capture_request_id=capture.payment_request_id,
                payment_id=pre_authorization.auth_no,
                amount=amount,
                last=capture.capture_final,
            ).capture_id
    except WalletBusinessFailure as failure:
        return refused(
            model=Payment,
            instance=capture,
            table=transitions.PAYMENT,
            to=PaymentStatus.FAILED,
            code=failure.result_code,
            reason=failure.result_message,
        )
    except WalletUnknownOutcome as unknown:
        logger.warning("capture %s: outcome unknown (%s)", capture, unknown.reason)
        return _capture_unknown(capture, reason=unknown.reason)
    return _capture_succeeded(capture, wallet_payment_id=wallet_id, source="wallet_response")


def capture_refresh(*, capture: Payment) -> Payment:
    """Settle a capture whose outcome is unknown: the wallet's record of it decides; one the wallet never
    received is sent again under the same id."""
    if capture.status not in (PaymentStatus.INITIATED, PaymentStatus.UNKNOWN):
        return capture
    pre_authorization = _fresh(capture.pre_authorization)
    client = _client_of(pre_authorization)
    try:
        wallet_id = _captured_at_wallet(client, pre_authorization, capture)
    except WalletBusinessFailure as failure:
        if failure.result_code not in NOT_FOUND_CODES:
            return ask_again(capture, next_inquiry(capture.created_at))
        wallet_id = None
    except WalletUnknownOutcome:
        return ask_again(capture, next_inquiry(capture.created_at))
    if wallet_id is None:
        return _send_capture(capture)
    return _capture_succeeded(capture, wallet_payment_id=wallet_id, source="wallet_inquiry")


def _captured_at_wallet(client, pre_authorization: PreAuthorization, capture: Payment) -> str | None:
    """The wallet's id of ``capture`` if the wallet made it, else ``None``."""
    if capture.trade_pay_mode == TradePayMode.ORDER_STR:
        trade = client.trade_query(out_trade_no=capture.payment_request_id)
        paid = CLASSIC_TRADE_STATUS[trade.status] is messages.PaymentStatus.SUCCESS
        return trade.trade_no if paid and trade.amount.value == capture.amount else None
    inquiry = client.inquire_payment(payment_request_id=pre_authorization.out_order_no)
    for record in inquiry.captures:
        if record.capture_request_id == capture.payment_request_id and record.amount.value == capture.amount:
            return record.capture_id
    return None


@transaction.atomic
def _capture_unknown(capture: Payment, *, reason: str) -> Payment:
    return transition(
        model=Payment,
        instance=capture,
        table=transitions.PAYMENT,
        to=PaymentStatus.UNKNOWN,
        source="wallet_response",
        reason=reason,
        next_inquiry_at=timezone.now() + datetime.timedelta(seconds=INQUIRY_FIRST_SECONDS),
    )


@transaction.atomic
def _capture_succeeded(capture: Payment, *, wallet_payment_id: str, source: str) -> Payment:
    """Count the capture once: the payment succeeds, the pre-authorization's totals move (a final capture
    releases the rest), the order is paid for the running total."""
    pre_authorization = PreAuthorization.objects.unscoped().select_for_update().get(pk=capture.pre_authorization_id)
    order = Order.objects.unscoped().select_for_update().get(pk=pre_authorization.order_id)
    capture = Payment.objects.unscoped().select_for_update().get(pk=capture.pk)
    if capture.status == PaymentStatus.SUCCEEDED:
        return capture
    capture = transition(
        model=Payment,
        instance=capture,
        table=transitions.PAYMENT,
        to=PaymentStatus.SUCCEEDED,
        source=source,
        wallet_payment_id=wallet_payment_id,
        next_inquiry_at=None,
    )
    captured = pre_authorization.captured_amount + capture.amount
    rest = pre_authorization.amount - captured - pre_authorization.released_amount
    released = pre_authorization.released_amount + (rest if capture.capture_final else 0)
    finished = capture.capture_final or rest == 0
    _move_totals(
        pre_authorization,
        to=Status.COMPLETED if finished else Status.PARTIALLY_CAPTURED,
        source=source,
        reason=f"captured {capture.amount}" + (f", released {rest}" if capture.capture_final and rest else ""),
        news="preauthorization.captured",
        captured_amount=captured,
        released_amount=released,
    )
    paid = order.paid_amount + capture.amount
    if order.status == OrderStatus.AUTHORIZED:
        transition(
            model=Order,
            instance=order,
            table=transitions.ORDER,
            to=OrderStatus.PAID,
            source=source,
            paid_amount=paid,
            paid_at=timezone.now(),
        )
    else:
        Order.objects.unscoped().filter(pk=order.pk).update(paid_amount=paid, updated_at=timezone.now())
    return capture


def _move_totals(
    pre_authorization: PreAuthorization, *, to: str, source: str, reason: str, news: str | None = None, **totals
) -> None:
    """Apply new totals to the locked pre-authorization, moving it to ``to``; staying where it is (a further
    partial capture or release) is recorded as an event all the same, and told to the merchant as ``news``."""
    if pre_authorization.status == to:
        PreAuthorization.objects.unscoped().filter(pk=pre_authorization.pk).update(updated_at=timezone.now(), **totals)
        record_event(model=PreAuthorization, row=pre_authorization, from_status=to, to=to, source=source, reason=reason)
        if news:
            for name, value in totals.items():
                setattr(pre_authorization, name, value)
            announce(model=PreAuthorization, row=pre_authorization, type=news)
        return
    transition(
        model=PreAuthorization,
        instance=pre_authorization,
        table=transitions.PRE_AUTHORIZATION,
        to=to,
        source=source,
        reason=reason,
        **totals,
    )


# --- releases ------------------------------------------------------------------------------------


def preauthorization_release(
    *, pre_authorization: PreAuthorization, amount: int | None = None, reason: str = ""
) -> PreAuthorizationRelease:
    """Give ``amount`` (by default all that is still frozen) back to the user.

    Checked under the row lock like a capture. Its ``out_request_no`` is committed before the wallet call;
    a retry — by the inquiry, after an unknown outcome — sends the same ``out_request_no`` and amount, which
    the wallet treats as the same release. Releasing all that is left ends the pre-authorization:
    ``released`` if nothing was captured (the order closes), else ``completed``. An authorization payment
    (``payment_url``) is voided whole: only all of it, before any capture.
    Raises the capture's state codes, ``preauthorizations.release_exceeds_remaining`` and
    ``preauthorizations.partial_release_not_supported``.
    """
    _client_of(pre_authorization)
    with transaction.atomic():
        locked = _lock_open(pre_authorization)
        remaining = locked.remaining_amount
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise ApplicationError(
                "preauthorizations.release_exceeds_remaining",
                f"At most {remaining} {locked.currency} (minor units) is still frozen.",
                attr="amount",
            )
        if locked.trade_pay_mode == TradePayMode.PAYMENT_URL and (locked.captured_amount or amount != remaining):
            raise ApplicationError(
                "preauthorizations.partial_release_not_supported",
                "This super app voids an authorization whole, before any capture; to release the rest after "
                "a capture, capture with final=true.",
                attr="amount",
            )
        release = PreAuthorizationRelease.objects.create(
            isv_id=locked.isv_id,
            merchant_id=locked.merchant_id,
            order_id=locked.order_id,
            pre_authorization=locked,
            out_request_no=f"unf_{str(ULID()).lower()}",
            amount=amount,
            reason=reason,
            next_inquiry_at=timezone.now() + NOTIFICATION_GRACE,
        )
    return _send_release(release)


def release_refresh(*, release: PreAuthorizationRelease) -> PreAuthorizationRelease:
    """Settle a release still processing by sending it again: the same ``out_request_no`` and amount (or the
    void of the same payment) are the same release to the wallet, made once."""
    if release.status != ReleaseStatus.PROCESSING:
        return release
    return _send_release(release)


def _send_release(release: PreAuthorizationRelease) -> PreAuthorizationRelease:
    pre_authorization = _fresh(release.pre_authorization)
    client = _client_of(pre_authorization)
    try:
        if pre_authorization.trade_pay_mode == TradePayMode.ORDER_STR:
            operation_id = client.auth_unfreeze(
                auth_no=pre_authorization.auth_no,
                out_request_no=release.out_request_no,
                amount=Money(release.amount, pre_authorization.currency),
                remark=release.reason or "released by the merchant",
            ).operation_id
        else:
            operation_id = client.cancel(payment_request_id=pre_authorization.out_order_no).payment_id or ""
    except WalletBusinessFailure as failure:
        return refused(
            model=PreAuthorizationRelease,
            instance=release,
            table=transitions.RELEASE,
            to=ReleaseStatus.FAILED,
            code=failure.result_code,
            reason=failure.result_message,
        )
    except WalletUnknownOutcome as unknown:
        logger.warning("release %s: outcome unknown (%s)", release, unknown.reason)
        return ask_again(release, next_inquiry(release.created_at))
    return _release_succeeded(release, wallet_operation_id=operation_id)


@transaction.atomic
def _release_succeeded(release: PreAuthorizationRelease, *, wallet_operation_id: str) -> PreAuthorizationRelease:
    pre_authorization = PreAuthorization.objects.unscoped().select_for_update().get(pk=release.pre_authorization_id)
    order = Order.objects.unscoped().select_for_update().get(pk=pre_authorization.order_id)
    release = PreAuthorizationRelease.objects.unscoped().select_for_update().get(pk=release.pk)
    if release.status == ReleaseStatus.SUCCEEDED:
        return release
    release = transition(
        model=PreAuthorizationRelease,
        instance=release,
        table=transitions.RELEASE,
        to=ReleaseStatus.SUCCEEDED,
        source="wallet_response",
        wallet_operation_id=wallet_operation_id[:64],
        next_inquiry_at=None,
    )
    released = pre_authorization.released_amount + release.amount
    rest = pre_authorization.amount - pre_authorization.captured_amount - released
    if rest:
        to = pre_authorization.status
    else:
        to = Status.COMPLETED if pre_authorization.captured_amount else Status.RELEASED
    _move_totals(
        pre_authorization,
        to=to,
        source="wallet_response",
        reason=f"released {release.amount}",
        news="preauthorization.partially_released",
        released_amount=released,
    )
    if to == Status.RELEASED:
        transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source="release")
    return release


# --- notifications -------------------------------------------------------------------------------


def authorization_notified(
    *, pre_authorization: PreAuthorization, succeeded: bool | None, amount: Money, auth_no: str
) -> NotificationEffect:
    """The wallet says the user authorised (the freeze notification, or ``notifyPayment`` of an
    authorization payment): ``authorized``, with ``auth_no``. The amount must be the one asked for; a
    failure or unknown outcome is asked about instead of believed."""
    expected = Money(pre_authorization.amount, pre_authorization.currency)
    if amount != expected:
        return notification_anomaly(
            order=pre_authorization.order, reason=f"authorization of {amount}, not the {expected} asked for"
        )
    if not succeeded:
        _schedule_inquiry(pre_authorization, first=True)
        return NotificationEffect(anomaly=False, summary="not authorised: asked about")
    if pre_authorization.status != Status.PENDING:
        return NotificationEffect(anomaly=False, summary=f"already {pre_authorization.status}")
    _authorized(pre_authorization, auth_no=auth_no, source="wallet_notification")
    return NotificationEffect(anomaly=False, summary="authorized")


def capture_notified(
    *, capture: Payment, succeeded: bool | None, amount: Money, wallet_payment_id: str
) -> NotificationEffect:
    """A trade paid from the frozen funds: the capture succeeded (counted once, however often it is said)."""
    expected = Money(capture.amount, capture.order.currency)
    if amount != expected:
        return notification_anomaly(order=capture.order, reason=f"capture of {amount}, not {expected}")
    if not succeeded:
        ask_again(capture, timezone.now())
        return NotificationEffect(anomaly=False, summary="capture not reported paid: asked about")
    if capture.status == PaymentStatus.FAILED:
        return notification_anomaly(order=capture.order, reason=f"capture {capture} reported paid after it failed")
    _capture_succeeded(capture, wallet_payment_id=wallet_payment_id, source="wallet_notification")
    return NotificationEffect(anomaly=False, summary="capture succeeded")


def release_notified(*, release: PreAuthorizationRelease, succeeded: bool | None, amount: Money) -> NotificationEffect:
    """An unfreeze done at the wallet: the release succeeded (counted once). Anything else is asked about:
    the release is sent again under its ``out_request_no``."""
    expected = Money(release.amount, release.order.currency)
    if amount != expected:
        return notification_anomaly(order=release.order, reason=f"unfreeze of {amount}, not {expected}")
    if not succeeded:
        ask_again(release, timezone.now())
        return NotificationEffect(anomaly=False, summary="unfreeze not reported done: sent again soon")
    if release.status == ReleaseStatus.FAILED:
        return notification_anomaly(order=release.order, reason=f"release {release} reported done after it failed")
    _release_succeeded(release, wallet_operation_id=release.wallet_operation_id)
    return NotificationEffect(anomaly=False, summary="release succeeded")


# --- periodic resolution -------------------------------------------------------------------------


def preauthorizations_resolve_due(*, limit: int = 100) -> int:
    """Ask the wallets about pre-authorizations still awaiting the user (until their expiry, when the expiry
    takes them over), and send again the releases whose outcome is unknown, when their next inquiry is due
    (captures are asked about with the payments).
    Returns how many were handled."""
    now = timezone.now()
    pending = claim_due(
        PreAuthorization.objects.unscoped()  # batch work across tenants: each row is then handled on its own
        .filter(status=Status.PENDING, expires_at__gt=now)  # past it, they are the expiry's
        .select_related("order__mini_program__merchant", "order__mini_program__super_app"),
        field="next_inquiry_at",
        now=now,
        limit=limit,
        next_at=_next_ask,
    )
    releases = claim_due(
        PreAuthorizationRelease.objects.unscoped().filter(status=ReleaseStatus.PROCESSING),
        field="next_inquiry_at",
        now=now,
        limit=limit,
        next_at=lambda release: next_inquiry(release.created_at),
    )
    for pre_authorization in pending:
        resolve_quietly(preauthorization_refresh, pre_authorization=pre_authorization)
    for release in releases:
        resolve_quietly(release_refresh, release=release)
    return len(pending) + len(releases)


# --- expiry --------------------------------------------------------------------------------------


def preauthorizations_expire(*, limit: int = 100) -> int:
    """End pre-authorizations whose expiry has passed, after settling what is in flight and asking the
    wallet once more (a late authorization or capture counts); warn about open ones that expire soon
    (``PREAUTHORIZATION_EXPIRY_WARNING_SECONDS``), once each, with an event. Returns how many were looked at.
    Each is claimed (its ``next_inquiry_at`` pushed on), so rows that cannot be ended yet (an answer still
    awaited, a wallet down) wait their turn instead of blocking the rest."""
    now = timezone.now()
    due = claim_due(
        PreAuthorization.objects.unscoped().filter(  # batch work across tenants: each row is then handled on its own
            status__in=[Status.PENDING, *OPEN_PRE_AUTHORIZATION], expires_at__lte=now
        ),
        field="next_inquiry_at",
        now=now,
        limit=limit,
        next_at=lambda pre_authorization: next_inquiry(pre_authorization.expires_at),
    )
    for pre_authorization in due:
        resolve_quietly(_expire_due, pre_authorization=pre_authorization)
    warning = datetime.timedelta(seconds=settings.PREAUTHORIZATION_EXPIRY_WARNING_SECONDS)
    expiring = list(
        PreAuthorization.objects.unscoped()
        .filter(
            status__in=OPEN_PRE_AUTHORIZATION,
            expiry_warned_at=None,
            expires_at__gt=now,
            expires_at__lte=now + warning,
        )
        .order_by("expires_at")[:limit]
    )
    for pre_authorization in expiring:
        _warn_expiry(pre_authorization)
    return len(due)


def _expire_due(*, pre_authorization: PreAuthorization) -> None:
    pre_authorization = preauthorization_refresh(pre_authorization=pre_authorization, source="expiry")
    in_flight = (
        pre_authorization.captures.filter(status__in=[PaymentStatus.INITIATED, PaymentStatus.UNKNOWN]).exists()
        or pre_authorization.releases.filter(status=ReleaseStatus.PROCESSING).exists()
    )
    if in_flight:
        return  # never guessed: the next run, once the wallet has answered
    if pre_authorization.status in (Status.PENDING, *OPEN_PRE_AUTHORIZATION):
        _expire(pre_authorization, source="expiry")


@transaction.atomic
def _expire(pre_authorization: PreAuthorization, *, source: str) -> PreAuthorization:
    """What is still frozen goes back to the user at the expiry (the wallet's own rule); nothing captured,
    the order closes."""
    locked = PreAuthorization.objects.unscoped().select_for_update().get(pk=pre_authorization.pk)
    order = Order.objects.unscoped().select_for_update().get(pk=locked.order_id)
    rest = locked.remaining_amount if locked.status in OPEN_PRE_AUTHORIZATION else 0
    expired = transition(
        model=PreAuthorization,
        instance=locked,
        table=transitions.PRE_AUTHORIZATION,
        to=Status.EXPIRED,
        source=source,
        reason=f"expired at {locked.expires_at.isoformat(timespec='seconds')}; {rest} went back to the user",
        released_amount=locked.released_amount + rest,
        next_inquiry_at=None,
    )
    if order.status in (OrderStatus.PENDING, OrderStatus.AUTHORIZED):
        transition(model=Order, instance=order, table=transitions.ORDER, to=OrderStatus.CLOSED, source=source)
    return expired


def _warn_expiry(pre_authorization: PreAuthorization) -> None:
    with transaction.atomic():
        marked = (
            PreAuthorization.objects.unscoped()
            .filter(pk=pre_authorization.pk, expiry_warned_at=None)
            .update(expiry_warned_at=timezone.now())
        )
        if not marked:
            return
        left = pre_authorization.remaining_amount
        record_event(
            model=PreAuthorization,
            row=pre_authorization,
            from_status=pre_authorization.status,
            to=pre_authorization.status,
            source="expiry_warning",
            reason=f"expires at {pre_authorization.expires_at.isoformat(timespec='seconds')} with {left} "
            f"{pre_authorization.currency} (minor units) still frozen: capture or release it before then",
        )
        announce(model=PreAuthorization, row=pre_authorization, type="preauthorization.expiring")
    logger.warning(
        "pre-authorization %s of merchant %s expires at %s with %s %s frozen",
        pre_authorization,
        pre_authorization.merchant_id,
        pre_authorization.expires_at.isoformat(timespec="seconds"),
        left,
        pre_authorization.currency,
    )
