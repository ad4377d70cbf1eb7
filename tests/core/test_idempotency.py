"""``Idempotency-Key`` on every POST of the tenant API: replayed, refused when reused, 409 while in flight."""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import time_machine
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from apps.accounts.services import api_key_authenticate
from apps.core import tasks
from apps.core.api.views import TenantApiView
from apps.core.errors import ConflictError
from apps.core.idempotency import (
    IN_FLIGHT_LEASE,
    RETENTION,
    idempotency_record_claim,
    idempotency_record_complete,
    idempotency_records_purge,
    request_fingerprint,
)
from apps.core.models import IdempotencyRecord, IdempotencyState
from apps.merchants.models import WalletCredential
from apps.miniprograms.models import MiniProgram, Product
from apps.payments.models import Order, Payment
from apps.sandbox.models import Payment as WalletPayment
from apps.superapps.models import TradePayMode
from tests.factories import issue_key
from tests.payments.conftest import ready_mini_program
from tests.superapps.conftest import Wallet, make_wallet

PRODUCT = {"sku": "BREAD-1", "name": "Sourdough", "price": {"amount": 12000, "currency": "PHP"}}
ORDER = {"mini_program": "shop-app", "amount": 1250, "currency": "USD", "description": "Flat white"}


@pytest.fixture
def isv(world, api):
    """ISV a's key acting for its merchant a1: the credential that writes products."""
    return api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)


def _post(client, path: str, body: dict, key: str | None = "key-1"):
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


def _error(response) -> tuple[int, str, str | None]:
    return response.status_code, response.json()["error"]["code"], response.json()["error"]["attr"]


def _answer(response) -> tuple[int, str, bytes]:
    """What a replay must repeat exactly: status, content type and body bytes."""
    return response.status_code, response["Content-Type"], response.content


def _products() -> int:
    return Product.objects.unscoped().count()


# --- replay ----------------------------------------------------------------------------------------


def test_a_retried_post_gets_the_first_response_byte_for_byte_and_creates_one_product(isv):
    before = _products()
    first = _post(isv, "/api/v1/products", PRODUCT)
    again = _post(isv, "/api/v1/products", PRODUCT)
    assert first.status_code == 201
    assert _answer(first) == _answer(again)
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert again["Cache-Control"] == "no-store"
    assert _products() == before + 1  # without the key the retry is a 409 sku_taken
    assert IdempotencyRecord.objects.get().state == IdempotencyState.COMPLETED


def test_a_stored_response_carrying_a_secret_is_encrypted_at_rest(isv):
    first = _post(isv, "/api/v1/api-keys", {"name": "production server"})
    secret = first.json()["secret"]
    stored = IdempotencyRecord.objects.values_list("response_body_ciphertext", flat=True).get()
    assert secret not in stored
    assert first.json()["id"] not in stored
    assert _answer(_post(isv, "/api/v1/api-keys", {"name": "production server"})) == _answer(first)


@pytest.mark.parametrize(
    ("sku", "status", "code"), [("", 400, "validation.blank"), ("canary-sku-a1", 409, "miniprograms.sku_taken")]
)
def test_validation_errors_and_business_refusals_are_replayed_too(isv, sku, status, code):
    first = _post(isv, "/api/v1/products", {**PRODUCT, "sku": sku})
    assert _error(first)[:2] == (status, code)
    again = _post(isv, "/api/v1/products", {**PRODUCT, "sku": sku})
    assert _answer(first) == _answer(again)  # down to the first request's request_id: it is the first answer
    assert again["Idempotent-Replayed"] == "true"


def test_requests_refused_before_the_view_runs_keep_no_record(world, api):
    merchant_key = api.as_key(world.a.merchants[0].key)  # products are written by ISV keys only
    assert _error(_post(merchant_key, "/api/v1/products", PRODUCT))[:2] == (403, "auth.principal_not_allowed")
    anonymous = api.__class__()
    assert _post(anonymous, "/api/v1/products", PRODUCT).status_code == 401
    assert not IdempotencyRecord.objects.exists()


def test_a_key_on_a_request_without_a_credential_is_ignored(world, api):
    """Starting a session takes no credential: strangers' keys would collide, so none is kept there."""
    first = _post(api, "/api/v1/sessions", {"app_id": "canary-app-a1"})
    second = _post(api, "/api/v1/sessions", {"app_id": "canary-app-a2"})  # not a 422 key_reused
    assert [_error(response)[:2] for response in (first, second)] == [(400, "validation.required")] * 2
    assert not IdempotencyRecord.objects.exists()


def test_without_the_header_nothing_is_recorded(isv):
    assert _post(isv, "/api/v1/products", PRODUCT, key=None).status_code == 201
    assert not IdempotencyRecord.objects.exists()


def test_a_key_sent_again_after_24_hours_runs_the_request_again(isv):
    before = _products()
    assert _post(isv, "/api/v1/products", PRODUCT).status_code == 201
    with time_machine.travel(timezone.now() + RETENTION + datetime.timedelta(minutes=1)):
        later = _post(isv, "/api/v1/products", PRODUCT)
    assert _error(later)[:2] == (409, "miniprograms.sku_taken")  # ran again, and found its own product
    assert "Idempotent-Replayed" not in later
    assert _products() == before + 1


# --- reuse -----------------------------------------------------------------------------------------


def test_the_same_key_with_another_body_is_422_and_writes_nothing(isv):
    assert _post(isv, "/api/v1/products", PRODUCT).status_code == 201
    before, records = _products(), list(IdempotencyRecord.objects.values())
    reused = _post(isv, "/api/v1/products", {**PRODUCT, "sku": "BREAD-2"})
    assert _error(reused) == (422, "idempotency.key_reused", "Idempotency-Key")
    assert (_products(), list(IdempotencyRecord.objects.values())) == (before, records)


def test_the_same_key_on_another_endpoint_is_422(isv):
    assert _post(isv, "/api/v1/products", PRODUCT).status_code == 201
    mini_programs = MiniProgram.objects.unscoped().count()
    body = {
        "super_app": "world-wallet",
        "app_id": "2021000000000042",
        "name": "Bakery",
        "trade_pay_mode": "payment_url",
        "default_currency": "PHP",
    }
    assert _error(_post(isv, "/api/v1/mini-programs", body)) == (422, "idempotency.key_reused", "Idempotency-Key")
    assert MiniProgram.objects.unscoped().count() == mini_programs


# --- per caller ------------------------------------------------------------------------------------


def test_keys_belong_to_one_caller(world, api):
    """The same key and body from another caller is a request of its own: never someone else's answer."""
    a1, a2 = (tenant.merchant for tenant in world.a.merchants)
    callers = [
        api.__class__().as_key(world.a.key, merchant=a1),
        api.__class__().as_key(world.a.key, merchant=a2),
        api.__class__().as_key(world.b.key, merchant=world.b.merchants[0].merchant),
    ]
    before = _products()
    responses = [_post(caller, "/api/v1/products", PRODUCT) for caller in callers]
    assert [response.status_code for response in responses] == [201, 201, 201]
    assert len({response.json()["id"] for response in responses}) == 3
    assert not any("Idempotent-Replayed" in response for response in responses)
    assert _products() == before + 3


def test_another_key_of_the_same_tenant_does_not_share_keys(world, api, isv):
    assert _post(isv, "/api/v1/products", PRODUCT).status_code == 201
    second_key = api.__class__().as_key(issue_key(isv=world.a.isv), merchant=world.a.merchants[0].merchant)
    again = _post(second_key, "/api/v1/products", PRODUCT)
    assert _error(again)[:2] == (409, "miniprograms.sku_taken")  # it ran: not the first key's replay


# --- key format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "clé", " leading", "trailing ", "tab\there", "new\nline"],
    ids=["empty", "too-long", "non-ascii", "leading-space", "trailing-space", "tab", "newline"],
)
def test_a_malformed_key_is_400_and_nothing_runs(isv, key):
    before = _products()
    assert _error(_post(isv, "/api/v1/products", PRODUCT, key=key)) == (
        400,
        "idempotency.key_invalid",
        "Idempotency-Key",
    )
    assert _products() == before
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("key", ["k" * 255, "a", "9f1c4e5a-0b7d-4c1e-8f00-3d2a1b0c9e8f", "with inner space ~!"])
def test_well_formed_keys_are_accepted(isv, key):
    assert _post(isv, "/api/v1/products", PRODUCT, key=key).status_code == 201
    assert IdempotencyRecord.objects.get().key == key


# --- orders against the sandbox wallet over HTTP ---------------------------------------------------


@dataclasses.dataclass
class Shop:
    wallet: Wallet
    credential: WalletCredential


@pytest.fixture
def shop(world, live_server, settings, transactional_db) -> Shop:
    """Merchant a1 ready to take payments at the sandbox wallet, served over real HTTP."""
    wallet = make_wallet(live_server, settings, code="sandbox", version="v2")
    wallet.super_app.trade_pay_modes = [TradePayMode.PAYMENT_URL]
    wallet.super_app.save(update_fields=["trade_pay_modes"])
    _, credential = ready_mini_program(world.a.merchants[0].merchant, wallet)
    return Shop(wallet=wallet, credential=credential)


def _order_counts() -> tuple[int, int, int]:
    return Order.objects.unscoped().count(), Payment.objects.unscoped().count(), WalletPayment.objects.count()


def test_a_retried_order_create_makes_one_order_and_one_wallet_call(world, api, shop):
    client = api.as_key(world.a.merchants[0].key)
    orders, payments, wallet_payments = _order_counts()
    first = _post(client, "/api/v1/orders", ORDER)
    again = _post(client, "/api/v1/orders", ORDER)
    assert first.status_code == 201, first.json()
    assert _answer(first) == _answer(again)
    assert again["Idempotent-Replayed"] == "true"
    assert _order_counts() == (orders + 1, payments + 1, wallet_payments + 1)


def _wait_until(condition, *, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.02)


def test_a_request_while_the_same_key_is_in_flight_is_409(world, shop):
    """Two real HTTP requests with one key: the second arrives while the first waits for a slow wallet."""
    shop.wallet.register(shop.credential, faults={"latency": 1500})
    headers = {
        "Authorization": f"Bearer {world.a.merchants[0].key}",
        "Content-Type": "application/json",
        "Idempotency-Key": "order-1",
    }
    url, body = f"{shop.wallet.base_url}/api/v1/orders", json.dumps(ORDER)
    orders, payments, wallet_payments = _order_counts()
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(httpx.post(url, content=body, headers=headers, timeout=30)))
    thread.start()
    try:
        _wait_until(lambda: WalletPayment.objects.count() > wallet_payments)  # the wallet acted, its answer lags
        second = httpx.post(url, content=body, headers=headers, timeout=30)
    finally:
        thread.join()
    assert (second.status_code, second.json()["error"]["code"]) == (409, "idempotency.request_in_flight")
    assert first[0].status_code == 201
    third = httpx.post(url, content=body, headers=headers, timeout=30)
    assert (third.status_code, third.headers["Content-Type"], third.content) == (
        201,
        first[0].headers["Content-Type"],
        first[0].content,
    )
    assert third.headers["Idempotent-Replayed"] == "true"
    assert _order_counts() == (orders + 1, payments + 1, wallet_payments + 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_key_let_exactly_one_request_run():
    """The unique (scope, key) row is the lock: however the claims interleave, one wins, the rest see it."""
    barrier = threading.Barrier(6)

    def claim(_) -> str:
        barrier.wait()
        try:
            return idempotency_record_claim(scope="caller", key="k", fingerprint="f").state
        except ConflictError as error:
            return error.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:  # any other exception fails the test
        outcomes = sorted(pool.map(claim, range(6)))
    assert outcomes == ["idempotency.request_in_flight"] * 5 + [IdempotencyState.IN_FLIGHT]
    assert IdempotencyRecord.objects.get().state == IdempotencyState.IN_FLIGHT


def test_an_abandoned_claim_is_taken_over_once_its_lease_is_over(world, isv):
    """A worker that crashed mid-request leaves its claim in flight: 409 within the lease, a fresh run after."""
    merchant = world.a.merchants[0].merchant
    principal = api_key_authenticate(secret=world.a.key, merchant_public_id=merchant.public_id)
    request = Request(
        APIRequestFactory().post("/api/v1/products", json.dumps(PRODUCT), content_type="application/json")
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        abandoned = idempotency_record_claim(
            scope=principal.identity_key(), key="key-1", fingerprint=request_fingerprint(request)
        )
    before = _products()
    with time_machine.travel(start + IN_FLIGHT_LEASE - datetime.timedelta(seconds=1), tick=False):
        assert _error(_post(isv, "/api/v1/products", PRODUCT))[:2] == (409, "idempotency.request_in_flight")
    with time_machine.travel(start + IN_FLIGHT_LEASE + datetime.timedelta(seconds=1), tick=False):
        taken_over = _post(isv, "/api/v1/products", PRODUCT)
    assert taken_over.status_code == 201
    assert _products() == before + 1
    idempotency_record_complete(record=abandoned, response=HttpResponse(b"late", status=201))  # the old claim is gone
    replay = _post(isv, "/api/v1/products", PRODUCT)
    assert _answer(taken_over) == _answer(replay)


# --- 5xx and crashes -------------------------------------------------------------------------------


def test_a_5xx_response_is_not_stored_and_a_retry_runs_again(db):
    record = idempotency_record_claim(scope="caller", key="k", fingerprint="f")
    idempotency_record_complete(record=record, response=HttpResponse(b"upstream down", status=503))
    assert not IdempotencyRecord.objects.exists()
    retry = idempotency_record_claim(scope="caller", key="k", fingerprint="f")
    assert (retry.state, retry.pk != record.pk) == (IdempotencyState.IN_FLIGHT, True)


class _Unavailable(TenantApiView):
    """No route of the API answers 5xx on purpose, so these views, mounted nowhere, play one."""

    def post(self, request):
        return Response({"detail": "try later"}, status=503)


class _Crashing(TenantApiView):
    def post(self, request):
        raise RuntimeError("a bug")


def _keyed_request(world):
    return APIRequestFactory().post(
        "/nowhere",
        json.dumps(PRODUCT),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.a.merchants[0].key}",
        HTTP_IDEMPOTENCY_KEY="key-1",
    )


def test_a_5xx_answer_of_a_view_releases_its_key(world):
    assert _Unavailable.as_view()(_keyed_request(world)).status_code == 503
    assert not IdempotencyRecord.objects.exists()


def test_a_crashed_view_releases_its_key(world):
    with pytest.raises(RuntimeError, match="a bug"):
        _Crashing.as_view()(_keyed_request(world))
    assert not IdempotencyRecord.objects.exists()


# --- housekeeping and documentation ----------------------------------------------------------------


def test_the_purge_deletes_only_expired_records_in_batches(db):
    now = timezone.now()
    for index in range(5):
        IdempotencyRecord.objects.create(scope="caller", key=f"old-{index}", fingerprint="f", expires_at=now)
    kept = IdempotencyRecord.objects.create(
        scope="caller", key="fresh", fingerprint="f", expires_at=now + datetime.timedelta(seconds=5)
    )
    assert idempotency_records_purge(batch_size=2) == 5
    assert list(IdempotencyRecord.objects.all()) == [kept]
    with time_machine.travel(now + datetime.timedelta(seconds=6)):
        assert tasks.purge_idempotency_records() == 1
    assert not IdempotencyRecord.objects.exists()


def test_the_purge_runs_every_hour(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE.values()
    entries = [entry for entry in schedule if entry["task"] == "core.purge_idempotency_records"]
    assert [entry["schedule"] for entry in entries] == [3600.0]


def test_every_post_made_with_a_credential_documents_the_idempotency_key():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    posts = {path: operations["post"] for path, operations in schema["paths"].items() if "post" in operations}
    documented = {
        path
        for path, operation in posts.items()
        if any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation.get("parameters", []))
        and {"409", "422"} <= set(operation["responses"])
    }
    assert set(posts) - documented == {"/api/v1/sessions"}  # the one POST made without a credential
