"""T-REL-6: outages of what the platform stands on.

The broker: a Redis of the test's own (never the machine's) is stopped, started again empty and wiped while
payments stream in; nothing the platform was to do is lost once the sweeps have run, and the API keeps
answering while that Redis (its cache too) is down, or hung. The database: connections reset mid-request
through a fault proxy (``faultproxy``) are 503s with a code, and never half a write.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import math
import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import time_machine
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.callbacks import tasks as callback_tasks
from apps.callbacks.models import NotificationKind, NotificationStatus
from apps.callbacks.services import REDRIVE_AFTER
from apps.core.models import IdempotencyRecord, IdempotencyState
from apps.miniprograms.models import MiniProgram, MiniProgramFeature
from apps.miniprograms.services import mini_program_update
from apps.payments import tasks as payment_tasks
from apps.payments.models import Order, PaymentEvent
from apps.sandbox.models import Notification as WalletNotification
from apps.sandbox.models import NotificationAttempt as WalletNotificationAttempt
from apps.sandbox.models import Payment as WalletPayment
from apps.webhooks import tasks as webhook_tasks
from apps.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from isv_platform.celery import app as celery_app
from tests.callbacks.inbox import arrived
from tests.callbacks.test_exactly_once import _pending_payment, _signed
from tests.conftest import NIGHTLY
from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant ready to take payments
from tests.reliability.faultproxy import FaultProxy, Mode
from tests.superapps.test_client_against_sandbox import _pay_at_cashier
from tests.webhooks.conftest import Endpoint, endpoint  # noqa: F401 - a merchant's webhook endpoint
from tests.worker import celery_worker, wait_for  # noqa: F401 - a real worker on the test's own Redis

pytestmark = pytest.mark.reliability

PAYMENTS = 1000 if NIGHTLY else 100
OUTAGE_SECONDS = 60.0 if NIGHTLY else 3.0
CLIENTS = 4  # mini programs paying at once


# --- the broker ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of the test's own: 127.0.0.1 and a free port, no persistence, in a folder of the
    test's. Stopping it and starting it again is a wipe."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly"]
        command += ["no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed arguments
        wait_for(self._answers, timeout=10, what="the test's Redis to start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but redis-server is not installed")
        pytest.skip("needs redis-server")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@contextlib.contextmanager
def broker_at(url: str):
    """This process queues its tasks at ``url``; its connection pool is dropped on the way in and out."""
    previous = celery_app.conf.broker_url
    _switch_broker(url)
    try:
        yield
    finally:
        _switch_broker(previous)


def _switch_broker(url: str) -> None:
    celery_app.conf.broker_url = url
    celery_app.close()  # its connection pool
    celery_app.amqp._producer_pool = None  # which close() leaves behind, still bound to the previous broker


@pytest.fixture
def worker_on_own_redis(own_redis, settings, request):
    """This process queues its tasks into the test's own Redis, and a real worker (``tests/worker.py``, the
    ``callbacks`` queue) takes them from there; nothing consumes the ``webhooks`` queue, so every webhook
    is the sweep's to send."""
    settings.REDIS_URL = own_redis.url  # what the worker is started with
    with broker_at(own_redis.url):
        yield request.getfixturevalue("celery_worker")


@pytest.fixture
def live_http(live_server):
    """An HTTP client of the live server, closed after the test: a connection kept alive would keep a server
    thread, and its database session, past the test's end."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        yield http


@pytest.fixture
def merchant_endpoint(request) -> Endpoint:
    """The loopback webhook endpoint (``endpoint``) of merchant a1's mini program at the sandbox (``shop``)."""
    served = request.getfixturevalue("endpoint")
    mini_program_update(mini_program=request.getfixturevalue("shop"), webhook_url=served.url())
    return served


def _pay(api: httpx.Client, number: int) -> list[int]:
    """A mini program's server creates an order, its user pays at the cashier (the wallet then notifies the
    platform in the background) and the mini program asks for the order's state, as the demo does, with
    ``refresh=true``: the platform may learn of the payment there first. Returns the status codes."""
    body = {"mini_program": "shop-app", "amount": 1250, "currency": "USD", "description": "Flat white"}
    created = api.post("/api/v1/orders", json={**body, "reference": f"outage-{number}"})
    if created.status_code != 201:
        return [created.status_code]
    paid = _pay_at_cashier(created.json()["trade_pay"]["paymentUrl"])
    asked = api.get(f"/api/v1/orders/{created.json()['id']}", params={"refresh": "true"})
    return [created.status_code, paid.status_code, asked.status_code]


def _worker_done(server: RedisServer, worker) -> bool:
    """Nothing waits in the ``callbacks`` queue and nothing taken from it is still unacknowledged, or the
    worker has died (what it left is the sweep's)."""
    client = server.client()
    return worker.process.poll() is not None or (client.llen("callbacks") == 0 and client.hlen("unacked") == 0)


@pytest.mark.postgres
def test_redis_stopped_and_wiped_during_a_stream_of_payments_loses_no_work(
    world, merchant_endpoint, worker_on_own_redis, own_redis, live_http, figures
):
    api = live_http
    api.headers["Authorization"] = f"Bearer {world.a.merchants[0].key}"
    numbers = iter(range(PAYMENTS))
    answered: list[int] = []  # status codes, appended from the clients' threads (atomic), counted afterwards

    def stream(*, payments: int | None = None, until: float = math.inf) -> None:
        """``CLIENTS`` mini programs pay at once: the next ``payments`` payments (all that are left), or as
        many as they start before ``until``."""
        batch = itertools.islice(numbers, payments)

        def client() -> None:
            while time.monotonic() < until and (number := next(batch, None)) is not None:
                answered.extend(_pay(api, number))

        with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
            for running in [clients.submit(client) for _ in range(CLIENTS)]:
                running.result()

    stream(payments=PAYMENTS // 4)
    own_redis.stop()
    stopped = time.monotonic()
    stream(until=stopped + OUTAGE_SECONDS)  # the notifications of these cannot be queued
    own_redis.start()  # empty: what was queued before the stop is gone too
    outage = time.monotonic() - stopped
    stream(payments=PAYMENTS // 4)
    own_redis.client().flushall()
    stream()
    answers = collections.Counter(answered)

    waiting = WalletNotification.objects.filter(kind=WalletNotification.Kind.PAYMENT)
    wait_for(lambda: not waiting.filter(status=WalletNotification.Status.PENDING).exists(), what="the wallet")
    wait_for(lambda: _worker_done(own_redis, worker_on_own_redis), timeout=60, what="the worker")
    left_by_the_worker = arrived().filter(status=NotificationStatus.RECEIVED).count()
    with time_machine.travel(timezone.now() + REDRIVE_AFTER + datetime.timedelta(seconds=1)):
        redriven = callback_tasks.redrive()
        webhooks_sent = webhook_tasks.deliver_due()
        payment_tasks.resolve_due()

    orders = Order.objects.unscoped().filter(reference__startswith="outage-")
    settled = WalletPayment.objects.filter(payment_request_id__in=orders.values("payments__payment_request_id"))
    assert settled.filter(status=WalletPayment.Status.SUCCESS).count() == PAYMENTS
    transitions = collections.Counter(
        PaymentEvent.objects.unscoped().filter(order__in=orders).values_list("subject", "to_status")
    )
    statuses = collections.Counter(arrived().filter(kind=NotificationKind.PAYMENT).values_list("status", flat=True))
    events = WebhookEvent.objects.unscoped().filter(type="order.paid", data__reference__startswith="outage-")
    delivered = WebhookDelivery.objects.unscoped().filter(event__in=events, status=DeliveryStatus.DELIVERED)
    received = collections.Counter(request.json["id"] for request in merchant_endpoint.received)
    done = {
        "orders paid": orders.filter(status="paid").count(),  # none the wallet settled is left unresolved
        "notifications applied": statuses[NotificationStatus.PROCESSED],
        "webhooks delivered": delivered.count(),
        "webhooks received": len(received),
    }
    made = {
        "payment transitions": transitions["payment", "succeeded"],
        "order transitions": transitions["order", "paid"],
        "webhook events": events.count(),
        "webhooks sent": sum(received.values()),
    }
    lost = sum(max(PAYMENTS - count, 0) for count in [*done.values(), *made.values()])
    duplicated = sum(max(count - PAYMENTS, 0) for count in made.values())
    assert (lost, duplicated) == (0, 0), (done, made)
    assert set(statuses) <= {NotificationStatus.PROCESSED, NotificationStatus.DUPLICATE}, statuses
    assert set(received) == set(events.values_list("public_id", flat=True))
    assert redriven == left_by_the_worker > 0  # the outage did lose queued work, and the sweep did all of it

    wallet_answers = collections.Counter(WalletNotificationAttempt.objects.values_list("status_code", flat=True))
    assert wallet_answers == {200: waiting.count()}  # every notification acknowledged on its first delivery
    server_errors = sum(count for status, count in answers.items() if status >= 500)
    assert (answers[201], len(answered)) == (PAYMENTS, 3 * PAYMENTS), answers
    assert all(status < 400 for status in answers), answers  # the cashier and the order's state too
    # kombu 5.7 can kill a worker that holds an unacknowledged message when the connection drops
    # (restore_unacked after the connection was released): a supervisor restarts it; nothing is lost meanwhile.
    worker = "came through" if worker_on_own_redis.process.poll() is None else "died, its work fell to the sweep"
    figures.record(
        "T-REL-6",
        f"Redis stopped {outage:.0f} s and wiped during {PAYMENTS} payments: one sweep redrove {redriven} "
        f"notifications and sent {webhooks_sent} webhooks (no worker on their queue); {done['orders paid']} "
        f"orders paid, {lost} lost, {duplicated} duplicated, {server_errors} x 5xx; the worker {worker}",
    )


#: How long a wallet may wait for the acknowledgement of a notification (the sandbox's timeout; Adyen's too).
ACKNOWLEDGEMENT_SECONDS = 10.0


def test_a_hung_broker_does_not_hold_up_the_acknowledgement_of_a_notification(
    world, api, own_redis, live_http, request
):
    """A broker that accepts connections and never answers (a stopped process, a network partition): the
    notification is still acknowledged in time, and the sweep applies it."""
    request.getfixturevalue("shop")
    payment = _pending_payment(api, world)
    path, body, headers = _signed(request.getfixturevalue("wallet"), payment, "S")
    acknowledged = None
    with FaultProxy("127.0.0.1", own_redis.port) as proxy, broker_at(f"redis://{proxy.host}:{proxy.port}/0"):
        proxy.set_mode(Mode.BLACKHOLE)
        try:
            acknowledged = live_http.post(path, content=body, headers=headers, timeout=ACKNOWLEDGEMENT_SECONDS)
        except httpx.TimeoutException:
            pass
        finally:
            proxy.set_mode(Mode.RESET)  # what still waits on the broker fails now, and lets go
    assert acknowledged is not None, f"no acknowledgement within {ACKNOWLEDGEMENT_SECONDS:.0f} s"
    assert acknowledged.status_code == 200
    with time_machine.travel(timezone.now() + REDRIVE_AFTER + datetime.timedelta(seconds=1)):
        assert callback_tasks.redrive() == 1
    assert Order.objects.unscoped().get(pk=payment.order_id).status == "paid"


def test_the_api_keeps_answering_while_its_redis_is_down(world, api, own_redis):
    """``REDIS_URL`` is the broker and the cache, which the rate limits count in: with it down, the API still
    answers (uncounted for that while), rather than failing every request."""
    redis_cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": own_redis.url}}
    own_redis.stop()
    api.raise_request_exception = False
    with override_settings(CACHES=redis_cache):
        known = api.get("/api/v1/merchant", HTTP_AUTHORIZATION=f"Bearer {world.a.merchants[0].key}")
        unknown = api.get("/api/v1/merchant", HTTP_AUTHORIZATION="Bearer msk_not-a-key")
    assert (known.status_code, unknown.status_code) == (200, 401)


# --- the database ----------------------------------------------------------------------------------

# PostgreSQL's Terminate message: what a client sends as it closes the connection, after the response.
_TERMINATE = b"X\x00\x00\x00\x04"


@contextlib.contextmanager
def database_through(proxy: FaultProxy):
    """New database connections, of every thread (the live server's request threads too), go through
    ``proxy``: the threads share their settings dict. Connections already open stay where they are."""
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"]
    settings_dict["HOST"], settings_dict["PORT"] = proxy.host, str(proxy.port)
    try:
        yield
    finally:
        settings_dict["HOST"], settings_dict["PORT"] = saved


@pytest.fixture
def postgres_proxy():
    with FaultProxy(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)
    ) as proxy:
        yield proxy


def _create_mini_program(http: httpx.Client, world, number: int) -> httpx.Response:
    body = {
        "super_app": "world-wallet",
        "app_id": f"reset-{number}",
        "name": "Bakery",
        "trade_pay_mode": "payment_url",
        "default_currency": "PHP",
    }
    headers = {
        "Authorization": f"Bearer {world.a.key}",
        "Merchant-Id": world.a.merchants[0].merchant.public_id,
        "Idempotency-Key": f"reset-{number}",
    }
    return http.post("/api/v1/mini-programs", json=body, headers=headers)


def _rows() -> tuple[int, int, int]:
    """Mini programs, their features, and idempotency claims still in flight."""
    return (
        MiniProgram.objects.unscoped().count(),
        MiniProgramFeature.objects.unscoped().count(),
        IdempotencyRecord.objects.filter(state=IdempotencyState.IN_FLIGHT).count(),
    )


@pytest.mark.postgres
def test_a_database_connection_reset_at_any_step_of_a_request_is_a_503_and_writes_nothing_partial(
    world, live_http, postgres_proxy, figures
):
    """A mini program is two rows written in one transaction, behind an idempotency claim committed before.
    The request is watched once, then sent again with its connection reset at each message in turn: each one
    it sends to PostgreSQL (the startup, every statement, every COMMIT: not carried out), and each answer
    PostgreSQL sends back (carried out, the answer lost). Every answer is a 503 with its code and Retry-After,
    or the 201 when only the storing of the answer was cut (it is stored on a new connection). Both rows are
    written or neither, no claim is left in flight, and a retry with the same key ends with exactly one mini
    program (after a 503 whose work was committed, the retry meets it: 409 app_id_taken)."""
    http = live_http
    http.headers["Connection"] = "close"  # one database connection per request: the server closes it after
    with database_through(postgres_proxy):
        assert _create_mini_program(http, world, 0).status_code == 201
    watched = postgres_proxy.connections[-1]
    assert watched.closed.wait(10)
    client_steps = len([chunk for chunk in watched.client_chunks if chunk != _TERMINATE])
    cuts = [{"client_chunk": step} for step in range(1, client_steps + 1)]
    cuts += [{"server_chunk": step} for step in range(1, len(watched.server_chunks) + 1)]

    answers: collections.Counter = collections.Counter()
    partial: list[tuple[dict, int, tuple, tuple]] = []
    committed_then_503 = 0
    for number, cut in enumerate(cuts, start=1):
        before = _rows()
        with database_through(postgres_proxy):
            postgres_proxy.reset_next_connection(**cut)
            response = _create_mini_program(http, world, number)
        answers[response.status_code] += 1
        assert response.status_code in (201, 503), (cut, response.text)
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "server.database_unavailable"
            assert response.headers["Retry-After"].isdigit()
        after = _rows()
        created, features, in_flight = (now - then for now, then in zip(after, before, strict=True))
        if created not in (0, 1) or features != created or in_flight or (response.status_code == 201 and not created):
            partial.append((cut, response.status_code, before, after))
        committed_then_503 += response.status_code == 503 and created == 1
        with database_through(postgres_proxy):
            retry = _create_mini_program(http, world, number)
        retried = (retry.status_code, retry.json().get("error", {}).get("code"))
        assert retried in {(201, None), (409, "miniprograms.app_id_taken")}, (cut, retry.text)
        assert MiniProgram.objects.unscoped().filter(app_id=f"reset-{number}").count() == 1
        assert MiniProgramFeature.objects.unscoped().filter(mini_program__app_id=f"reset-{number}").count() == 1

    # Every message the client sends was cut; the server's answers may come in fewer chunks than watched.
    resets = sum(opened.was_reset for opened in postgres_proxy.connections)
    server_errors = sum(count for status, count in answers.items() if status >= 500 and status != 503)
    assert client_steps < resets <= len(cuts)
    assert (server_errors, partial) == (0, [])
    figures.record(
        "T-REL-6",
        f"{resets} PostgreSQL resets mid-request (at each message of a mini program create, either way): "
        f"{answers[503]} x 503 ({committed_then_503} after the commit), {answers[201]} x 201, "
        f"{server_errors} x 500, {len(partial)} partial writes",
    )
