"""The sandbox wallet as the lifecycle machine of T-REL-8 uses it: merchants of two ISVs ready to sell in both
wire variants, the user at the cashier, the wallet's outbox delivered when the machine says so, crashes at
chosen points, and the wallet's own books read per order (what it took, froze, captured, gave back).

Everything here goes through the sandbox's public surface (cashier pages over HTTP, its console command for
faults) except where a test has to play the wallet's clock: the outbox rows are made due, or due again as if
an acknowledgement had been lost, before the wallet's own delivery function sends them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import urllib.parse
from collections import defaultdict
from unittest import mock

import httpx
from django.db.models import F, Prefetch, Q
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.callbacks.models import InboundNotification, NotificationKind
from apps.merchants.models import Registration, RegistrationStatus
from apps.merchants.selectors import business_license_of
from apps.merchants.services import business_license_save, registration_transition, wallet_credential_create
from apps.miniprograms.models import Feature, MiniProgramStatus
from apps.miniprograms.services import feature_set, mini_program_create, mini_program_update
from apps.sandbox import services as sandbox_services
from apps.sandbox.models import TEST_USERS, Balance, Capture, ClassicOrder, ClassicRefund, ClassicUnfreeze, Notification
from apps.sandbox.models import Payment as WalletPayment
from apps.sandbox.models import Refund as WalletRefund
from apps.superapps.client import transport
from apps.superapps.models import TradePayMode
from tests.conftest import _test_key_pair
from tests.merchants.test_registrations import license_fields, upload

CURRENCY = "USD"
USERS = ("alice", "bob")  # bob holds 500 minor units: larger amounts are refused at his cashier
# Every notification waits in the wallet's outbox until the machine delivers it.
HELD = {"late_notify": 86_400}
# What the wallet may do to one call: answer U after acting, fail without acting, act and drop the answer.
FAULTS = ("result_u", "http_500", "drop_response")
RESULT_CODE = re.compile(r'id="result-code">(\d+)<')
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
STATE = re.compile(r'<p class="state">([^<]+)</p>')
ERROR_CODE = re.compile(r"<code>([A-Z_.]+)</code>")
CALLBACK_ROUTES = {
    NotificationKind.PAYMENT: "callbacks:notify-payment",
    NotificationKind.REFUND: "callbacks:notify-refund",
    NotificationKind.CLASSIC: "callbacks:notify-classic",
}


@dataclasses.dataclass(frozen=True)
class Seller:
    """A merchant ready to sell at the sandbox: its key, its wallet client, a mini program per wire variant."""

    label: str
    isv_id: int
    merchant_id: int
    key: str
    credential: object
    app_ids: dict[str, str]

    @property
    def client_id(self) -> str:
        return self.credential.client_id


def sellers_ready(world, wallet) -> list[Seller]:
    """Both merchants of both ISVs, verified at the sandbox, each with a paymentUrl and an orderStr mini
    program that may take payments and pre-authorizations; every notification of theirs is held."""
    sellers = []
    for isv in world.isvs:
        for tenant in isv.merchants:
            merchant = tenant.merchant
            label = merchant.name.removeprefix("canary-merchant-")
            credential = wallet_credential_create(
                isv=merchant.isv,
                merchant=merchant,
                super_app=wallet.super_app,
                client_id=f"rel8-{label}",
                classic_app_id=f"rel8-classic-{label}",
                private_key_pem=_test_key_pair()[0],
            )
            wallet.register(credential, faults=HELD)
            _verified(merchant, wallet.super_app)
            app_ids = {}
            for mode in (TradePayMode.PAYMENT_URL, TradePayMode.ORDER_STR):
                app_id = f"rel8-{label}-{mode.replace('_', '-')}"
                mini_program = mini_program_create(
                    merchant=merchant,
                    super_app=wallet.super_app,
                    app_id=app_id,
                    name=f"Lifecycle {label} {mode}",
                    trade_pay_mode=mode,
                    default_currency=CURRENCY,
                ).mini_program
                mini_program_update(mini_program=mini_program, status=MiniProgramStatus.PUBLISHED)
                feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
                app_ids[mode] = app_id
            sellers.append(Seller(label, merchant.isv_id, merchant.pk, tenant.key, credential, app_ids))
    return sellers


def _verified(merchant, super_app) -> None:
    """The merchant's license on file (the world's canary one where it has one) verified at ``super_app``."""
    business_license = business_license_of(merchant=merchant) or business_license_save(
        merchant=merchant, fields=license_fields(), document=upload()
    )
    registration = Registration.objects.unscoped().create(
        isv_id=merchant.isv_id, merchant=merchant, super_app=super_app
    )
    registration = registration_transition(
        registration=registration,
        to=RegistrationStatus.SUBMITTED,
        source="test",
        license_snapshot=business_license.snapshot(),
    )
    registration_transition(registration=registration, to=RegistrationStatus.VERIFIED, source="test")


@contextlib.contextmanager
def wallet_fault(seller: Seller, fault: str | None):
    """The wallet misbehaves with ``fault`` towards ``seller`` for the calls made inside the block (set as its
    console command sets it, without the command's start-up cost on every call)."""
    if fault is None:
        yield
        return
    _set_faults(seller, {**HELD, fault: True})
    try:
        yield
    finally:
        _set_faults(seller, HELD)


def _set_faults(seller: Seller, faults: dict) -> None:
    sandbox_services.client_register(
        client_id=seller.client_id, public_key=seller.credential.public_key_pem, fault_settings=faults
    )


class WorkerCrash(BaseException):
    """The process running a request or a task dies: nothing after this point happens, its open transaction
    rolls back. A ``BaseException``, so no ``except Exception`` in the code under test can swallow it."""


@contextlib.contextmanager
def crash_after_wallet_answers(count: int):
    """The process dies right after the ``count``-th wallet answer has arrived, before anything is done with
    it: the wallet acted, the platform never learns how."""
    answers = 0
    real_post = transport.post

    def post(*args, **kwargs):
        nonlocal answers
        response = real_post(*args, **kwargs)
        answers += 1
        if answers >= count:
            raise WorkerCrash(f"died after wallet answer {answers}")
        return response

    with mock.patch.object(transport, "post", post):
        yield


# --- the user at the cashier ---------------------------------------------------------------------


def at_cashier(browser: httpx.Client, wallet, trade_pay: dict, *, action: str, user: str = "alice") -> str:
    """Open what ``my.tradePay`` was given and press Pay (or Cancel) as ``user``: the ``resultCode`` the
    mini program hears (``9000``, ``6001``), or why the wallet offered nothing to press or refused."""
    if "orderStr" in trade_pay:
        page = browser.get(f"{wallet.base_url}/sandbox/tradepay", params={"orderStr": trade_pay["orderStr"]})
    else:
        page = browser.get(trade_pay["paymentUrl"])
    token, form = CSRF_FIELD.search(page.text), FORM_ACTION.search(page.text)
    if page.status_code != 200 or token is None or form is None:
        return f"refused: {_why(page.text)}"  # paid, closed, expired or an unreadable orderStr
    answer = browser.post(
        urllib.parse.urljoin(str(page.url), form.group(1)),
        data={"csrfmiddlewaretoken": token.group(1), "action": action, "user": user},
        headers={"Referer": str(page.url)},
    )
    code = RESULT_CODE.search(answer.text)
    return code.group(1) if code and answer.status_code == 200 else f"refused: {_why(answer.text)}"


def _why(page: str) -> str:
    found = STATE.search(page) or ERROR_CODE.search(page)
    return found.group(1) if found else "no page"


# --- the wallet's outbox and the platform's inbox -------------------------------------------------


def outbox_after(first_pk: int, *, delivered: bool) -> list[int]:
    """The wallet's notifications since ``first_pk``: those waiting, or those already acknowledged."""
    status = Notification.Status.DELIVERED if delivered else Notification.Status.PENDING
    return list(Notification.objects.filter(pk__gt=first_pk, status=status).order_by("pk").values_list("pk", flat=True))


def wallet_delivers(pk: int, *, again: bool = False) -> Notification:
    """The wallet sends one notification now (``again``: a retry of one acknowledged already, as when the
    acknowledgement was lost on the way), signed afresh, and records the attempt."""
    fields = {"next_attempt_at": timezone.now(), "held": False}
    if again:
        fields["status"] = Notification.Status.PENDING
    Notification.objects.filter(pk=pk).update(**fields)
    sandbox_services.notification_attempt(pk)
    return Notification.objects.get(pk=pk)


def replay_stored(notification: InboundNotification) -> int:
    """Send a stored delivery again byte for byte (the headers it came with, its body): the status answered."""
    path = reverse(CALLBACK_ROUTES[notification.kind], args=[notification.super_app.callback_token])
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in notification.headers.items()}
    content_type = headers.pop("HTTP_CONTENT_TYPE", "application/json")
    return Client().post(path, data=bytes(notification.body), content_type=content_type, **headers).status_code


# --- the wallet's books --------------------------------------------------------------------------


@dataclasses.dataclass
class WalletTruth:
    """What the wallet's ledger says of one platform order, in minor units."""

    paid: int = 0  # reached the merchant: the payment, or the captures
    refunded: int = 0  # went back from the merchant: refunds, or a void of a paid payment
    frozen: int = 0  # authorised (a pre-authorization)
    captured: int = 0
    released: int = 0  # frozen money given back to the user
    payment_ids: dict[str, int] = dataclasses.field(default_factory=dict)  # request id -> amount, succeeded
    refund_ids: dict[str, int] = dataclasses.field(default_factory=dict)  # request id -> amount, succeeded
    release_ids: dict[str, int] = dataclasses.field(default_factory=dict)  # out_request_no -> amount
    clients: set[str] = dataclasses.field(default_factory=set)  # whose records these are at the wallet

    @property
    def still_frozen(self) -> int:
        return self.frozen - self.captured - self.released


def wallet_clock_catches_up() -> None:
    """The sandbox ends authorizations whose time is up when something looks at them (or its sweep runs):
    after the clock jumps, its sweep looks at every one, so that its books say what its clock says."""
    sandbox_services.expire_due_authorizations(now=timezone.now())


class WalletBooks:
    """The sandbox's records of a set of platform orders, read in a handful of queries."""

    def __init__(self, *, client_ids: set[str], request_ids: set[str]) -> None:
        self.payments = {
            payment.payment_request_id: payment
            for payment in WalletPayment.objects.filter(
                client__client_id__in=client_ids, payment_request_id__in=request_ids
            )
            .defer("response_body")
            .annotate(client_code=F("client__client_id"))
            .prefetch_related(
                Prefetch("refunds", WalletRefund.objects.defer("response_body")),
                Prefetch("captures", Capture.objects.defer("response_body")),
            )
        }
        self.classic = {
            order.out_no: order
            for order in ClassicOrder.objects.filter(client__client_id__in=client_ids, out_no__in=request_ids).annotate(
                client_code=F("client__client_id")
            )
        }
        freezes = [order.pk for order in self.classic.values() if order.kind == ClassicOrder.Kind.FREEZE]
        self.capture_trades = defaultdict(list)
        for trade in ClassicOrder.objects.filter(authorization_id__in=freezes):
            self.capture_trades[trade.authorization_id].append(trade)
        trades = [order.pk for order in self.classic.values()] + [
            trade.pk for trades in self.capture_trades.values() for trade in trades
        ]
        self.classic_refunds = defaultdict(list)
        for refund in ClassicRefund.objects.filter(order_id__in=trades):
            self.classic_refunds[refund.order_id].append(refund)
        self.unfreezes = defaultdict(list)
        for unfreeze in ClassicUnfreeze.objects.filter(order_id__in=freezes):
            self.unfreezes[unfreeze.order_id].append(unfreeze)

    def of_payment_order(self, request_ids: list[str]) -> WalletTruth:
        truth = WalletTruth()
        for request_id in request_ids:
            if (payment := self.payments.get(request_id)) is not None:
                truth.clients.add(payment.client_code)
                voided = payment.status == WalletPayment.Status.CANCELLED and payment.paid_at is not None
                if payment.status == WalletPayment.Status.SUCCESS or voided:
                    truth.paid += payment.amount
                    truth.payment_ids[request_id] = payment.amount
                truth.refunded += payment.amount if voided else 0
                self._refunds(truth, payment)
            elif (trade := self.classic.get(request_id)) is not None:
                truth.clients.add(trade.client_code)
                self._trade(truth, trade)
        return truth

    def of_pre_authorization(self, out_order_no: str) -> WalletTruth:
        truth = WalletTruth()
        if (authorization := self.payments.get(out_order_no)) is not None:
            truth.clients.add(authorization.client_code)
            if authorization.paid_at is not None:
                truth.frozen = authorization.amount
                truth.captured = truth.paid = authorization.captured
                truth.released = authorization.amount - authorization.captured if authorization.released_at else 0
            truth.payment_ids = {capture.capture_request_id: capture.amount for capture in authorization.captures.all()}
            self._refunds(truth, authorization)
        elif (freeze := self.classic.get(out_order_no)) is not None:
            truth.clients.add(freeze.client_code)
            if freeze.paid_at is not None:
                truth.frozen, truth.captured, truth.released = freeze.amount, freeze.captured, freeze.unfrozen
            for trade in self.capture_trades[freeze.pk]:
                self._trade(truth, trade)
            truth.release_ids = {unfreeze.out_request_no: unfreeze.amount for unfreeze in self.unfreezes[freeze.pk]}
        return truth

    def _trade(self, truth: WalletTruth, trade: ClassicOrder) -> None:
        if trade.paid_at is not None:
            truth.paid += trade.amount
            truth.payment_ids[trade.out_no] = trade.amount
        for refund in self.classic_refunds[trade.pk]:
            truth.refunded += refund.amount
            truth.refund_ids[refund.out_request_no] = refund.amount

    @staticmethod
    def _refunds(truth: WalletTruth, payment: WalletPayment) -> None:
        for refund in payment.refunds.all():
            if refund.status == WalletRefund.Status.SUCCESS:
                truth.refunded += refund.amount
                truth.refund_ids[refund.refund_request_id] = refund.amount


def balances(client_ids: list[str]) -> dict[str, int]:
    """The merchants' balances by client id, and the test users' together under ``users`` (minor units)."""
    held = Balance.objects.filter(
        Q(client__client_id__in=client_ids) | Q(user__login__in=USERS), currency=CURRENCY
    ).values_list("client__client_id", "user__login", "amount")
    found = dict.fromkeys(client_ids, 0)
    users = {login: TEST_USERS[login].opening_balance for login in USERS}
    for client_id, login, amount in held:
        if login is None:
            found[client_id] = amount
        else:
            users[login] = amount
    found["users"] = sum(users.values())
    return found
