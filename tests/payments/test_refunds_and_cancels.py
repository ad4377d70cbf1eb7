"""Refunds and cancels against the sandbox wallet over real HTTP."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.core.models import IdempotencyRecord
from apps.core.money import Money
from apps.payments.models import Order, Payment, Refund
from apps.payments.services import payment_notified
from tests.payments.test_orders import _order
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def _paid_order(api, world, amount=1000) -> tuple[str, object]:
    body = _order(api, world, amount=amount).json()
    _pay_at_cashier(body["trade_pay"]["paymentUrl"])
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    assert client.get(f"/api/v1/orders/{body['id']}?refresh=true").json()["status"] == "paid"
    return body["id"], client


def test_partial_refunds_then_full(world, api, shop):
    order_id, client = _paid_order(api, world)
    first = client.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 400, "reason": "spilled"}, format="json")
    assert first.status_code == 201
    assert first.json()["status"] == "succeeded"
    assert client.get(f"/api/v1/orders/{order_id}").json()["status"] == "partially_refunded"

    too_much = client.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 601}, format="json")
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (400, "payments.refund_exceeds_paid")

    rest = client.post(f"/api/v1/orders/{order_id}/refunds", {}, format="json")
    assert rest.json()["amount"] == 600
    order = client.get(f"/api/v1/orders/{order_id}").json()
    assert (order["status"], order["refunded_amount"]) == ("refunded", 1000)
    assert [r["amount"] for r in client.get(f"/api/v1/orders/{order_id}/refunds").json()] == [400, 600]


def test_an_unpaid_order_cannot_be_refunded(world, api, shop):
    body = _order(api, world).json()
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    response = client.post(f"/api/v1/orders/{body['id']}/refunds", {}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "payments.order_not_refundable")
    assert not Refund.objects.unscoped().exists()


def test_cancel_closes_an_unpaid_order_and_refuses_a_paid_one(world, api, shop):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    unpaid = _order(api, world).json()
    closed = client.post(f"/api/v1/orders/{unpaid['id']}/cancel", format="json")
    assert closed.json()["status"] == "closed"
    assert client.post(f"/api/v1/orders/{unpaid['id']}/cancel", format="json").json()["status"] == "closed"

    paid_id, _ = _paid_order(api, world)
    refused = client.post(f"/api/v1/orders/{paid_id}/cancel", format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payments.order_already_paid")
    assert Order.objects.unscoped().get(public_id=paid_id).status == "paid"


def test_a_cancel_the_wallet_does_not_confirm_is_a_503_to_retry_and_keeps_no_idempotent_answer(
    world, api, shop, wallet
):
    client = api.as_key(world.a.merchants[0].key)
    order_id = _order(api, world).json()["id"]
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"drop_response": True})
    unknown = client.post(f"/api/v1/orders/{order_id}/cancel", HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (503, "payments.cancel_outcome_unknown")
    assert Order.objects.unscoped().get(public_id=order_id).status == "pending"
    assert not IdempotencyRecord.objects.exists()  # the retry with the same key runs again
    wallet.register(credential)
    retried = client.post(f"/api/v1/orders/{order_id}/cancel", HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert retried.json()["status"] == "closed"


@pytest.mark.postgres  # SQLite serialises writers anyway; the row lock is what PostgreSQL needs
def test_concurrent_refunds_never_exceed_what_was_paid(world, api, shop):
    order_id, _ = _paid_order(api, world)
    key = world.a.merchants[0].key

    def refund_all(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            return client.post(f"/api/v1/orders/{order_id}/refunds", {}, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(refund_all, range(4)))
    assert statuses == [201, 400, 400, 400]
    assert sum(Refund.objects.unscoped().filter(order__public_id=order_id).values_list("amount", flat=True)) == 1000


def test_the_wallet_repeating_that_a_refunded_order_was_paid_changes_nothing_and_is_no_anomaly(world, api, shop):
    """A late or repeated success notice about a payment whose order has since been partly refunded is old
    news, not a contradiction: the refund stands and no anomaly is recorded."""
    order_id, client = _paid_order(api, world)
    client.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 400}, format="json")
    payment = Payment.objects.unscoped().select_related("order").get(order__public_id=order_id)
    effect = payment_notified(
        payment=payment,
        succeeded=True,
        amount=Money(payment.amount, payment.order.currency),
        wallet_payment_id=payment.wallet_payment_id,
        source="wallet_notification",
    )
    assert not effect.anomaly
    order = client.get(f"/api/v1/orders/{order_id}").json()
    assert (order["status"], order["refunded_amount"]) == ("partially_refunded", 400)
