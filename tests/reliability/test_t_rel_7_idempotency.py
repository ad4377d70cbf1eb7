"""T-REL-7: ``Idempotency-Key`` on order creation, against the sandbox wallet over HTTP.

The rules themselves (replay, 422 on reuse, 409 in flight, per caller, 24 hours) are tested one by one in
``tests/core/test_idempotency.py``; here they are held to the figures of the reliability suite: concurrent
requests with one key against a live server make one order and one wallet call, every replay is the stored
answer byte for byte, and the retention ends neither a minute early nor late.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import time_machine
from django.utils import timezone

from apps.core.idempotency import RETENTION
from apps.core.models import IdempotencyRecord
from apps.payments.models import Order
from apps.sandbox.models import Payment as WalletPayment
from apps.superapps.models import WalletExchange
from tests.core.test_idempotency import ORDER, _answer, _error, _post
from tests.payments.conftest import ready_mini_program, shop, wallet  # noqa: F401 - merchant a1 at the sandbox

pytestmark = pytest.mark.reliability

CONCURRENT = 20


@dataclasses.dataclass
class Counts:
    orders: int
    wallet_payments: int
    pay_calls: int

    @classmethod
    def now(cls) -> Counts:
        """Orders, payments the wallet holds, and ``payments/pay`` calls the platform made (the world's canary
        evidence aside)."""
        return cls(
            orders=Order.objects.unscoped().count(),
            wallet_payments=WalletPayment.objects.count(),
            pay_calls=WalletExchange.objects.unscoped()
            .filter(operation="payments/pay")
            .exclude(subject__startswith="canary-")
            .count(),
        )

    def __sub__(self, before: Counts) -> Counts:
        return Counts(
            *(now - then for now, then in zip(dataclasses.astuple(self), dataclasses.astuple(before), strict=True))
        )


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    replayed: bool

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        return cls(
            response.status_code,
            response.headers["Content-Type"],
            response.content,
            response.headers.get("Idempotent-Replayed") == "true",
        )

    @property
    def code(self) -> str | None:
        return json.loads(self.body).get("error", {}).get("code")


@pytest.fixture
def sandbox(request, live_server):
    """The sandbox wallet over HTTP (``wallet``), with merchant a1's mini program ready there (``shop``). The
    live server, named here, makes the test's database transactional: the server's threads see its rows."""
    request.getfixturevalue("shop")
    return request.getfixturevalue("wallet")


#: The wallet's answers to payments/pay take a second (it has acted, only the answer lags), so that
#: concurrent requests arrive while the first is in flight.
SLOW = {"latency": 1000}


@pytest.fixture
def slow_sandbox(sandbox, world):
    sandbox.register(world.a.merchants[0].merchant.wallet_credentials.get(super_app=sandbox.super_app), faults=SLOW)
    return sandbox


def _at_once(base_url: str, requests: list[tuple[str, dict, str]]) -> list[Answer]:
    """POST each (merchant key, order, idempotency key) to /api/v1/orders from a thread of its own, all
    released together."""
    start = threading.Barrier(len(requests))

    def send(request: tuple[str, dict, str]) -> Answer:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            start.wait()
            return Answer.of(_order_post(http, *request))

    with ThreadPoolExecutor(max_workers=len(requests)) as threads:
        return list(threads.map(send, requests))


def _order_post(http: httpx.Client, key: str, body: dict, idempotency_key: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}
    return http.post("/api/v1/orders", json=body, headers=headers)


@pytest.mark.postgres
def test_concurrent_requests_with_one_key_make_one_order_and_one_wallet_call(world, slow_sandbox, live_server, figures):
    """Twenty at once while the first waits for the wallet, then twenty more once it has answered: one runs,
    the others are refused as in flight (409) or get its stored answer, byte for byte."""
    request = (world.a.merchants[0].key, ORDER, "order-once")
    before = Counts.now()
    during = _at_once(live_server.url, [request] * CONCURRENT)
    after = _at_once(live_server.url, [request] * CONCURRENT)
    made = Counts.now() - before

    [first] = [answer for answer in during if answer.status == 201 and not answer.replayed]
    in_flight = [answer for answer in during if answer.status == 409]
    assert {answer.code for answer in in_flight} == {"idempotency.request_in_flight"}
    replays = [answer for answer in during + after if answer.replayed]
    assert {(answer.status, answer.content_type, answer.body) for answer in replays} == {
        (first.status, first.content_type, first.body)
    }
    assert 1 + len(in_flight) + len(replays) == 2 * CONCURRENT
    assert all(answer.replayed for answer in after)
    assert made == Counts(orders=1, wallet_payments=1, pay_calls=1)
    figures.record(
        "T-REL-7",
        f"{2 * CONCURRENT} concurrent same-key order creations ({CONCURRENT} while the first was in flight, "
        f"{CONCURRENT} after it): {made.pay_calls} wallet call, {made.orders} order, 1 x 201, "
        f"{len(in_flight)} x 409 in flight, {len(replays)} byte-identical replays",
    )


@pytest.mark.postgres
def test_one_key_used_by_two_tenants_at_once_is_two_requests(world, slow_sandbox, live_server, figures):
    """Merchant a1 and merchant b1 send the same key at the same moment: each gets its own order and its own
    wallet call, and neither ever sees the other's answer."""
    _, credential = ready_mini_program(world.b.merchants[0].merchant, slow_sandbox, app_id="shop-b")
    slow_sandbox.register(credential, faults=SLOW)
    tenants = {
        world.a.merchants[0].merchant.pk: (world.a.merchants[0].key, ORDER, "shared-key"),
        world.b.merchants[0].merchant.pk: (world.b.merchants[0].key, {**ORDER, "mini_program": "shop-b"}, "shared-key"),
    }
    senders = [merchant for merchant in tenants for _ in range(CONCURRENT // 2)]
    before = Counts.now()
    answers = _at_once(live_server.url, [tenants[merchant] for merchant in senders])
    made = Counts.now() - before

    crossed = 0
    for merchant in tenants:
        got = [answer for sender, answer in zip(senders, answers, strict=True) if sender == merchant]
        [first] = [answer for answer in got if answer.status == 201 and not answer.replayed]
        assert Order.objects.unscoped().get(public_id=json.loads(first.body)["id"]).merchant_id == merchant
        crossed += sum(answer != first and answer.code != "idempotency.request_in_flight" for answer in got)
    assert crossed == 0
    assert made == Counts(orders=2, wallet_payments=2, pay_calls=2)
    figures.record(
        "T-REL-7",
        f"one key sent {len(senders)} times at once by 2 tenants: {made.orders} orders, {made.pay_calls} wallet "
        f"calls (1 per tenant), {crossed} answers crossing tenants",
    )


REPLAYS = 5


def test_every_kind_of_stored_answer_is_replayed_byte_for_byte_without_running_again(world, api, sandbox, figures):
    """A created order, one the wallet refused, a validation error and a business refusal: each sent again
    ``REPLAYS`` times with its key is answered with the first answer's bytes, and nothing runs again."""
    merchant = api.as_key(world.a.merchants[0].key)
    assert _post(merchant, "/api/v1/orders", {**ORDER, "reference": "R-1"}, key=None).status_code == 201
    requests = {
        "201 created": ORDER,
        "201 refused by the wallet": {**ORDER, "currency": "BRL"},
        "400 invalid": {**ORDER, "amount": 0},
        "409 reference taken": {**ORDER, "reference": "R-1"},
    }
    firsts = {kind: _post(merchant, "/api/v1/orders", body, key=kind) for kind, body in requests.items()}
    assert [(response.status_code, response.json().get("status")) for response in firsts.values()] == [
        (201, "pending"),
        (201, "failed"),
        (400, None),
        (409, None),
    ]
    before = Counts.now()
    identical = sum(
        _answer(_post(merchant, "/api/v1/orders", body, key=kind)) == _answer(firsts[kind])
        for kind, body in requests.items()
        for _ in range(REPLAYS)
    )
    assert identical == REPLAYS * len(requests)
    assert Counts.now() - before == Counts(orders=0, wallet_payments=0, pay_calls=0)
    figures.record(
        "T-REL-7",
        f"{len(requests)} stored answers ({', '.join(requests)}) replayed {REPLAYS} times each: "
        f"{identical}/{REPLAYS * len(requests)} byte-identical, 0 orders or wallet calls",
    )


def test_a_used_key_with_any_other_request_is_422_and_runs_nothing(world, api, sandbox, figures):
    merchant = api.as_key(world.a.merchants[0].key)
    first = _post(merchant, "/api/v1/orders", ORDER, key="used")
    assert first.status_code == 201
    others = [
        {**ORDER, "amount": ORDER["amount"] + 1},
        {**ORDER, "currency": "PHP"},
        {**ORDER, "description": "Flat white, oat milk"},
        {**ORDER, "reference": "R-2"},
        {**ORDER, "metadata": {"table": "4"}},
        {key: ORDER[key] for key in reversed(ORDER)},  # the same fields, other bytes: the body is what counts
    ]
    before = Counts.now()
    refused = [_error(_post(merchant, "/api/v1/orders", body, key="used")) for body in others]
    refused.append(_error(_post(merchant, f"/api/v1/orders/{first.json()['id']}/cancel", {}, key="used")))
    assert set(refused) == {(422, "idempotency.key_reused", "Idempotency-Key")}
    assert Counts.now() - before == Counts(orders=0, wallet_payments=0, pay_calls=0)
    assert _answer(_post(merchant, "/api/v1/orders", ORDER, key="used")) == _answer(first)  # still the first's
    figures.record(
        "T-REL-7",
        f"{len(refused)} other requests under a used key: {len(refused)} x 422 idempotency.key_reused, "
        "0 orders, 0 wallet calls",
    )


def test_a_key_is_kept_24_hours_to_the_minute(world, api, sandbox, figures):
    """23 h 59 m after the first request its answer is replayed; a second past the 24 hours the key is new."""
    merchant = api.as_key(world.a.merchants[0].key)
    first = _post(merchant, "/api/v1/orders", ORDER, key="daily")
    assert first.status_code == 201
    expires_at = IdempotencyRecord.objects.get(key="daily").expires_at
    assert expires_at - RETENTION <= timezone.now()

    before = Counts.now()
    with time_machine.travel(expires_at - datetime.timedelta(minutes=1)):
        kept = _post(merchant, "/api/v1/orders", ORDER, key="daily")
    assert (_answer(kept), kept["Idempotent-Replayed"]) == (_answer(first), "true")
    assert Counts.now() - before == Counts(orders=0, wallet_payments=0, pay_calls=0)

    with time_machine.travel(expires_at + datetime.timedelta(seconds=1)):
        fresh = _post(merchant, "/api/v1/orders", ORDER, key="daily")
        replayed = _post(merchant, "/api/v1/orders", ORDER, key="daily")
    assert (fresh.status_code, "Idempotent-Replayed" in fresh) == (201, False)
    assert fresh.json()["id"] != first.json()["id"]
    assert _answer(replayed) == _answer(fresh)  # the new answer is the one kept now
    assert Counts.now() - before == Counts(orders=1, wallet_payments=1, pay_calls=1)
    figures.record(
        "T-REL-7",
        "replay 23 h 59 m after the first request: the stored answer, 0 wallet calls; "
        "24 h 0 m 1 s after: a new order and 1 wallet call",
    )
