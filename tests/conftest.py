"""Shared fixtures. Every test that needs tenants gets two ISVs with two merchants each (``world``).

Tests that need PostgreSQL or Redis carry the ``postgres`` / ``redis`` marker: they are skipped on the
embedded default, and fail instead of skipping when ``REQUIRE_SERVICES=1`` (as in CI).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import os
import threading
from urllib.parse import urlparse

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.selectors import principal_for_user
from apps.accounts.services import audit_record
from apps.callbacks.models import InboundNotification, NotificationKind, NotificationStatus
from apps.core import rls
from apps.core.money import Money
from apps.core.tenancy import Role
from apps.merchants.models import Isv, Merchant, Registration, RegistrationStatus, WalletCredential
from apps.merchants.services import business_license_save, registration_transition, wallet_credential_create
from apps.miniprograms.services import mini_program_create, product_create
from apps.payments.models import (
    Order,
    OrderKind,
    OrderStatus,
    Payment,
    PaymentEvent,
    PaymentStatus,
    PreAuthorization,
    PreAuthorizationRelease,
    PreAuthorizationStatus,
    ReleaseStatus,
)
from apps.reconciliation.models import (
    Discrepancy,
    FileSource,
    Reason,
    ReconciliationRun,
    RecordType,
    RunStatus,
    SettlementFile,
    SettlementLine,
)
from apps.superapps.client import keys, messages
from apps.superapps.client.client import close_pools
from apps.superapps.models import SuperApp, TradePayMode, WalletExchange
from apps.usersessions.services import session_open
from apps.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent
from tests.factories import IsvFactory, MembershipFactory, MerchantFactory, UserFactory, issue_key

STAFF_PASSWORD = "correct horse battery staple"


def _redis_available() -> bool:
    url = os.environ.get("REDIS_URL")
    if not url:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_collection_modifyitems(config, items):
    require = os.environ.get("REQUIRE_SERVICES") == "1"
    available = {
        "postgres": urlparse(os.environ.get("DATABASE_URL", "")).scheme.startswith("postgres"),
        "redis": _redis_available(),
    }
    for item in items:
        for service, present in available.items():
            if item.get_closest_marker(service) is None or present:
                continue
            variable = "DATABASE_URL" if service == "postgres" else "REDIS_URL"
            reason = f"needs {service} ({variable} unset or unreachable)"
            if require:
                item.add_marker(pytest.mark.usefixtures("_fail_missing_service"))
                item.user_properties.append(("missing_service", reason))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))
    # The reliability suite's long runs first: handed out last, one of them kept a worker busy for minutes
    # after the other had finished everything else.
    items.sort(key=lambda item: item.get_closest_marker("reliability") is None)


@pytest.fixture(scope="session", autouse=True)
def _flush_postgresql_by_delete():
    """Between transactional tests Django empties every table with one TRUNCATE, which costs PostgreSQL about
    a second for sixty tables (each gets new files); deleting the few rows a test wrote takes a tenth of
    that. Foreign keys are deferred, so the order does not matter; the deletes run under the row-level
    security bypass, so a login that owns the tables (rather than a superuser) empties them too."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        bypass = "SELECT set_config('app.bypass', 'on', true);"
        return [bypass, *(f"DELETE FROM {self.quote_name(table)};" for table in tables)]  # noqa: S608 - table names

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


# --- the reliability suite's figures ------------------------------------------------------------------
#: Counts of the reliability suite (``RELIABILITY_SCALE=nightly`` for the nightly-sized runs).
NIGHTLY = os.environ.get("RELIABILITY_SCALE") == "nightly"


@dataclasses.dataclass
class Figures:
    """Where a reliability test states what it proved, as a line a reader can check
    (``T-SEC-1: 10000 requests, 0 leaks, 0 5xx``); the lines are printed at the end of the run."""

    node: pytest.Item

    def record(self, target: str, line: str) -> None:
        self.node.user_properties.append(("figure", f"{target}: {line}"))


@pytest.fixture
def figures(request) -> Figures:
    return Figures(request.node)


def pytest_terminal_summary(terminalreporter):
    """Each figure line of a passed test (from xdist workers too: user properties travel with reports)."""
    lines = sorted(
        {
            value
            for report in terminalreporter.stats.get("passed", [])
            if report.when == "call"
            for key, value in report.user_properties
            if key == "figure"
        }
    )
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def _fail_missing_service(request):
    reasons = [value for key, value in request.node.user_properties if key == "missing_service"]
    pytest.fail(f"REQUIRE_SERVICES=1 but this test {reasons[0]}")


@pytest.fixture(autouse=True)
def _owner_scope():
    """Each test starts as the owner (apps/core/rls.py), whatever scope a view called directly left behind."""
    rls.enter(rls.OWNER)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Uploaded files (license scans) go to the test's own folder, never to var/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True, scope="session")
def _private_broker():
    """Tasks queued by tests without Redis go to memory, never into the file-system broker that
    ``make run``'s worker reads (it would work through them before the demo's own)."""
    from isv_platform.celery import app

    if app.conf.broker_url.startswith("filesystem://"):
        app.conf.broker_url = "memory://"


@pytest.fixture(autouse=True)
def _private_cache(request, settings):
    """Each test gets an empty in-process cache (rate-limit counters included): parallel workers sharing
    one Redis would otherwise see each other's counters. Tests marked ``redis`` keep the real one."""
    if request.node.get_closest_marker("redis") is None:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@dataclasses.dataclass
class MerchantTenant:
    merchant: Merchant
    key: str
    staff: User
    # User sessions in the onboarded merchant's mini program: the buyer owns the canary order, the browser
    # (another wallet user of the same mini program) owns nothing.
    buyer_session: str | None = None
    browser_session: str | None = None


@dataclasses.dataclass
class IsvTenant:
    isv: Isv
    key: str
    staff: User
    merchants: list[MerchantTenant]


@dataclasses.dataclass
class World:
    """Two ISVs (``a``, ``b``), each with two merchants, staff and keys at every level."""

    a: IsvTenant
    b: IsvTenant
    operator: User

    @property
    def isvs(self) -> list[IsvTenant]:
        return [self.a, self.b]


@functools.cache
def _test_key_pair() -> tuple[str, str]:
    """One RSA pair for every test credential: generating 2048-bit keys per test would dominate the suite."""
    return keys.generate_key_pair()


def _onboard(merchant: Merchant, super_app: SuperApp, label: str) -> None:
    """A business license and a (rejected) registration with its event, as canaries for the isolation walk."""
    today = timezone.localdate()
    business_license = business_license_save(
        merchant=merchant,
        fields={
            "legal_name": f"canary-legal-{label}",
            "registration_no": f"CANARY-{label}",
            "registration_type": "ENTERPRISE_REGISTRATION_NO",
            "business_type": "ENTERPRISE",
            "address_country": "PH",
            "address_city": "Manila",
            "address_line": "1 Rizal Avenue",
            "effective_date": today - datetime.timedelta(days=30),
            "expiry_date": today + datetime.timedelta(days=365),
            "contact_name": "Ana Reyes",
            "contact_email": "ana@example.com",
        },
        document=SimpleUploadedFile("license.pdf", b"%PDF-1.4\n%%EOF\n"),
    )
    registration = Registration.objects.unscoped().create(
        isv_id=merchant.isv_id, merchant=merchant, super_app=super_app, status=RegistrationStatus.DRAFT
    )
    registration_transition(
        registration=registration,
        to=RegistrationStatus.SUBMITTED,
        source="system",
        license_snapshot=business_license.snapshot(),
        wallet_request_id=f"canary-request-{label}",
    )


def session_of(mini_program, customer_id: str) -> tuple[str, int]:
    """A session token for ``customer_id`` in ``mini_program``, as if the wallet had granted it."""
    grant = messages.AccessToken(
        access_token=f"token-of-{customer_id}",
        access_token_expiry_time=None,
        refresh_token=None,
        refresh_token_expiry_time=None,
        customer_id=customer_id,
    )
    opened = session_open(mini_program=mini_program, grant=grant)
    return opened.token, opened.session.wallet_user_id


def _order(mini_program, label: str, wallet_user_id: int) -> None:
    """An order with a payment attempt and an event, written directly (no wallet here), as canaries."""
    order = Order.objects.unscoped().create(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        mini_program=mini_program,
        wallet_user_id=wallet_user_id,
        reference=f"canary-ref-{label}",
        description=f"canary-order-{label}",
        amount=1250,
        currency="USD",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
    payment = Payment.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        payment_request_id=f"canary-pr-{label}",
        amount=order.amount,
    )
    PaymentEvent.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        payment=payment,
        subject="payment",
        from_status="initiated",
        to_status="pending",
        source="test",
    )


def _wallet_exchange(mini_program, label: str) -> None:
    """The evidence of a wallet call about the merchant's canary payment, as the client records it."""
    WalletExchange.objects.unscoped().create(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        super_app=mini_program.super_app,
        credential=WalletCredential.objects.unscoped().get(
            merchant_id=mini_program.merchant_id, super_app=mini_program.super_app
        ),
        operation="payments/pay",
        subject=f"canary-pr-{label}",
        request_body={"paymentRequestId": f"canary-pr-{label}"},
        response_body={"result": {"resultCode": f"canary-result-{label}", "resultStatus": "S"}},
        http_status=200,
        result_status="S",
        result_code=f"canary-result-{label}",
        signature_verified=True,
        duration_ms=12,
    )


def _audit_entry(staff, merchant, label: str) -> None:
    """A staff change to the merchant in the audit log, with canary strings before and after."""
    audit_record(
        actor=staff,
        principal=principal_for_user(staff),
        target=merchant,
        action="change",
        changes={"name": [f"canary-old-name-{label}", merchant.name]},
        message=f"canary-audit-{label}",
    )


def _inbox_notification(mini_program, label: str) -> None:
    """A notification the wallet sent about the merchant's canary payment, as the inbox keeps it."""
    InboundNotification.objects.unscoped().create(
        super_app=mini_program.super_app,
        kind=NotificationKind.PAYMENT,
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        headers={"client-id": f"canary-client-{label}"},
        body=f'{{"paymentRequestId": "canary-pr-{label}"}}'.encode(),
        status=NotificationStatus.PROCESSED,
        dedupe_key=f"canary-notification-{label}",
        subject=f"canary-pr-{label}",
    )


def _pre_authorization(mini_program, label: str, wallet_user_id: int) -> None:
    """A pre-authorization part captured and part released, with its capture and release, as canaries."""
    order = Order.objects.unscoped().create(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        mini_program=mini_program,
        wallet_user_id=wallet_user_id,
        kind=OrderKind.PRE_AUTHORIZATION,
        reference=f"canary-deposit-{label}",
        description=f"canary-deposit-{label}",
        amount=5000,
        currency="USD",
        status=OrderStatus.PAID,
        paid_amount=1500,
        expires_at=timezone.now() + datetime.timedelta(days=2),
    )
    pre_authorization = PreAuthorization.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        trade_pay_mode=TradePayMode.PAYMENT_URL,
        out_order_no=f"canary-pao-{label}",
        out_request_no=f"canary-paf-{label}",
        auth_no=f"canary-auth-{label}",
        amount=5000,
        currency="USD",
        captured_amount=1500,
        released_amount=500,
        status=PreAuthorizationStatus.PARTIALLY_CAPTURED,
        expires_at=order.expires_at,
    )
    Payment.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        pre_authorization=pre_authorization,
        payment_request_id=f"canary-cap-{label}",
        amount=1500,
        status=PaymentStatus.SUCCEEDED,
    )
    PreAuthorizationRelease.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        pre_authorization=pre_authorization,
        out_request_no=f"canary-unf-{label}",
        amount=500,
        status=ReleaseStatus.SUCCEEDED,
    )


def _webhook_event(mini_program, label: str) -> None:
    """A webhook event with a failed delivery and its attempt, written directly, as canaries."""
    tenant = {"isv_id": mini_program.isv_id, "merchant_id": mini_program.merchant_id}
    event = WebhookEvent.objects.unscoped().create(
        **tenant, mini_program=mini_program, type="order.paid", data={"reference": f"canary-ref-{label}"}
    )
    delivery = WebhookDelivery.objects.unscoped().create(
        **tenant,
        event=event,
        mini_program=mini_program,
        url=f"https://canary-hooks-{label}.example/webhooks",
        status=DeliveryStatus.FAILED,
        attempt_count=1,
        last_status_code=500,
    )
    WebhookAttempt.objects.unscoped().create(
        **tenant,
        delivery=delivery,
        started_at=timezone.now(),
        duration_ms=12,
        status_code=500,
        response_excerpt=f"canary-answer-{label}",
    )


#: The settlement day of the canary runs: not a day the reconciliation tests reconcile (they use 2026-11-21).
CANARY_SETTLEMENT_DATE = datetime.date(2026, 10, 31)


def _reconciliation(mini_program, label: str) -> None:
    """A reconciled settlement file of the merchant's client id, written directly (no file is stored; nothing
    reads it): a succeeded run, two lines (the canary payment at another amount, and the canary capture), and
    an open amount discrepancy about the canary payment, as canaries."""
    tenant = {"isv_id": mini_program.isv_id, "merchant_id": mini_program.merchant_id}
    credential = WalletCredential.objects.unscoped().get(**tenant, super_app=mini_program.super_app)
    payment = Payment.objects.unscoped().get(**tenant, payment_request_id=f"canary-pr-{label}")
    capture = Payment.objects.unscoped().get(**tenant, payment_request_id=f"canary-cap-{label}")
    day, now = CANARY_SETTLEMENT_DATE, timezone.now()
    body = f"canary settlement file {label}\n".encode()
    settlement_file = SettlementFile.objects.unscoped().create(
        **tenant,
        super_app=mini_program.super_app,
        credential=credential,
        client_id=credential.client_id,
        settlement_date=day,
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        content=f"settlements/canary-{label}.csv",
        source=FileSource.FETCH,
        fetched_at=now,
    )
    run = ReconciliationRun.objects.unscoped().create(
        **tenant,
        super_app=mini_program.super_app,
        credential=credential,
        settlement_date=day,
        file=settlement_file,
        status=RunStatus.SUCCEEDED,
        counts={"lines": 2, "matched": 1, Reason.AMOUNT_MISMATCH.value: 1},
        totals={"USD": {"lines": 2, "gross": 2800, "fee": 43, "net": 2757}},
        started_at=now,
        finished_at=now,
        duration_ms=40,
    )
    settled_at = datetime.datetime.combine(day, datetime.time(1), datetime.UTC)
    wallet = {
        "line": 1,
        "record_type": RecordType.PAYMENT.value,
        "payment_id": f"canary-wallet-{label}",
        "payment_request_id": payment.payment_request_id,
        "refund_id": "",
        "refund_request_id": "",
        "currency": "USD",
        "amount": 1300,
        "fee": 20,
        "net": 1280,
    }
    SettlementLine.objects.unscoped().bulk_create(
        [
            SettlementLine(
                **tenant,
                run=run,
                line_no=1,
                record_type=RecordType.PAYMENT,
                wallet_payment_id=wallet["payment_id"],
                payment_request_id=payment.payment_request_id,
                currency="USD",
                amount=1300,
                fee=20,
                net=1280,
                transaction_time=settled_at,
                payment=payment,
            ),
            SettlementLine(
                **tenant,
                run=run,
                line_no=2,
                record_type=RecordType.PAYMENT,
                wallet_payment_id=f"canary-wallet-cap-{label}",
                payment_request_id=capture.payment_request_id,
                currency="USD",
                amount=1500,
                fee=23,
                net=1477,
                transaction_time=settled_at,
                payment=capture,
            ),
        ]
    )
    Discrepancy.objects.unscoped().create(
        **tenant,
        run=run,
        reason=Reason.AMOUNT_MISMATCH,
        line_no=1,
        payment=payment,
        wallet=wallet,
        platform={
            "payment": {
                "id": payment.public_id,
                "payment_request_id": payment.payment_request_id,
                "wallet_payment_id": payment.wallet_payment_id,
                "amount": payment.amount,
                "currency": "USD",
                "status": payment.status,
                "paid_at": None,
            }
        },
        note=f"canary-note-{label}: the file says 13.00, the ledger 12.50",
    )


def _build_isv(label: str, super_app: SuperApp, *, merchant_count: int = 2) -> IsvTenant:
    isv = IsvFactory(name=f"canary-isv-{label}")
    wallet_credential_create(
        isv=isv, super_app=super_app, client_id=f"canary-isvclient-{label}", private_key_pem=_test_key_pair()[0]
    )
    staff = MembershipFactory(user=UserFactory(username=f"isv-{label}-admin"), isv=isv, role=Role.ADMIN).user
    merchants = []
    for index in range(1, merchant_count + 1):
        merchant = MerchantFactory(isv=isv, name=f"canary-merchant-{label}{index}")
        wallet_credential_create(
            isv=isv,
            merchant=merchant,
            super_app=super_app,
            client_id=f"canary-client-{label}{index}",
            private_key_pem=_test_key_pair()[0],
        )
        mini_program = mini_program_create(
            merchant=merchant,
            super_app=super_app,
            app_id=f"canary-app-{label}{index}",
            name=f"canary-mp-{label}{index}",
            trade_pay_mode=TradePayMode.PAYMENT_URL,
            default_currency="USD",
        ).mini_program
        product_create(
            merchant=merchant,
            sku=f"canary-sku-{label}{index}",
            name=f"canary-product-{label}{index}",
            price=Money(value=1250, currency="USD"),
        )
        buyer_session = browser_session = None
        if index >= 2:  # merchant 1 of each ISV stays un-onboarded, for the tests that onboard it
            _onboard(merchant, super_app, f"{label}{index}")
            buyer_session, buyer_id = session_of(mini_program, f"canary-customer-{label}{index}")
            browser_session, _ = session_of(mini_program, f"canary-browser-{label}{index}")
            _order(mini_program, f"{label}{index}", buyer_id)
            _pre_authorization(mini_program, f"{label}{index}", buyer_id)
            _inbox_notification(mini_program, f"{label}{index}")
            _webhook_event(mini_program, f"{label}{index}")
            _reconciliation(mini_program, f"{label}{index}")
            _wallet_exchange(mini_program, f"{label}{index}")
        merchant_staff = MembershipFactory(
            user=UserFactory(username=f"merchant-{label}{index}-owner"),
            isv=isv,
            merchant=merchant,
            role=Role.OWNER,
        ).user
        if index >= 2:
            _audit_entry(merchant_staff, merchant, f"{label}{index}")
        merchants.append(
            MerchantTenant(
                merchant=merchant,
                key=issue_key(isv=isv, merchant=merchant, name=f"canary-key-{label}{index}"),
                staff=merchant_staff,
                buyer_session=buyer_session,
                browser_session=browser_session,
            )
        )
    return IsvTenant(isv=isv, key=issue_key(isv=isv, name=f"canary-isvkey-{label}"), staff=staff, merchants=merchants)


def _world_wallet() -> SuperApp:
    return SuperApp.objects.create(
        code="world-wallet",
        name="World wallet",
        gateway_base_url="https://wallet.invalid/api",
        wallet_public_key_pem=_test_key_pair()[1],
        trade_pay_modes=[TradePayMode.PAYMENT_URL, TradePayMode.ORDER_STR],
    )


@pytest.fixture
def world(db) -> World:
    operator = User.objects.create_superuser(username="operator", password=STAFF_PASSWORD)
    super_app = _world_wallet()
    return World(a=_build_isv("a", super_app), b=_build_isv("b", super_app), operator=operator)


@pytest.fixture
def crowd(db) -> list[IsvTenant]:
    """Five ISVs of three merchants each (two onboarded, with canary rows of every kind), for the
    randomized cross-tenant suite."""
    super_app = _world_wallet()
    return [_build_isv(label, super_app, merchant_count=3) for label in "cdefg"]


@pytest.fixture
def api():
    """An API client; ``api.as_key(key, merchant=...)`` returns one that sends the credential."""

    class Client(APIClient):
        def as_key(self, key: str, merchant: Merchant | None = None) -> Client:
            headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
            if merchant is not None:
                headers["HTTP_MERCHANT_ID"] = merchant.public_id
            self.credentials(**headers)
            return self

    return Client()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _close_wallet_connections():
    """Keep-alive connections to a live server would keep its request threads, and their database
    sessions, alive past the test; background deliveries of the sandbox are waited for likewise."""
    yield
    close_pools()
    for thread in threading.enumerate():
        if thread.name.startswith("sandbox-notifier"):
            thread.join(timeout=10)
