"""Outcomes left open are settled by the database-scheduled inquiry, and expired orders are closed at the
wallet — never failed on a guess. The tasks are called as beat would call them; the wallet is the sandbox."""

import datetime

import time_machine
from django.utils import timezone

from apps.payments import tasks
from apps.payments.models import Order, Payment, PaymentEvent, Refund
from apps.sandbox.models import Payment as WalletPayment
from tests.payments.test_orders import _order
from tests.payments.test_refunds_and_cancels import _paid_order
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def _later(minutes: float):
    return time_machine.travel(timezone.now() + datetime.timedelta(minutes=minutes), tick=True)


def _status(order_id: str) -> str:
    return Order.objects.unscoped().get(public_id=order_id).status


def test_an_unknown_payment_is_asked_about_until_the_wallet_settles_it(world, api, shop, wallet):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"result_u": True})
    order_id = _order(api, world).json()["id"]
    wallet.register(credential)
    assert _status(order_id) == "processing"
    assert tasks.resolve_due() == 0  # not due yet
    with _later(1):
        assert tasks.resolve_due() == 1
    assert _status(order_id) == "processing"  # the wallet still waits for the user: no verdict
    payment = Payment.objects.unscoped().get(order__public_id=order_id)
    assert payment.next_inquiry_at > timezone.now()

    wallet_payment = WalletPayment.objects.get(payment_request_id=payment.payment_request_id)
    _pay_at_cashier(f"{wallet.base_url}/sandbox/cashier/{wallet_payment.payment_id}")
    with _later(30):
        assert tasks.resolve_due() == 1
    assert _status(order_id) == "paid"
    with _later(60):
        assert tasks.resolve_due() == 0  # a settled payment is never asked about again


def test_a_payment_the_wallet_never_received_is_not_failed_on_a_guess_and_closes_at_expiry(world, api, shop, wallet):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"http_500": True})  # answered 500 without processing
    order_id = _order(api, world).json()["id"]
    wallet.register(credential)
    assert _status(order_id) == "processing"
    with _later(1):
        tasks.resolve_due()
    # The inquiry answers "no such payment" for a payment that was sent: still not a failure.
    assert _status(order_id) == "processing"
    with _later(45):
        tasks.expire_orders()
    assert _status(order_id) == "closed"  # cancelled at the wallet, confirmed, then closed


def test_an_expired_order_is_closed_after_one_last_inquiry(world, api, shop):
    body = _order(api, world, expires_in=60).json()
    with _later(2):
        assert tasks.expire_orders() == 1
    assert _status(body["id"]) == "closed"
    # The wallet reports the expired payment failed: that closes the order (it expired), it does not fail it.
    assert Payment.objects.unscoped().get(order__public_id=body["id"]).status == "failed"
    closing = PaymentEvent.objects.unscoped().get(order__public_id=body["id"], subject="order")
    assert (closing.to_status, closing.source) == ("closed", "expiry")
    assert tasks.expire_orders() == 0


def test_an_order_paid_just_before_it_expired_stays_paid(world, api, shop):
    body = _order(api, world, expires_in=60).json()
    _pay_at_cashier(body["trade_pay"]["paymentUrl"])
    with _later(2):
        tasks.expire_orders()
    assert _status(body["id"]) == "paid"


def test_a_refund_left_unknown_is_settled_by_inquiry(world, api, shop, wallet):
    order_id, client = _paid_order(api, world)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"result_u": True})
    refund = client.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 300}, format="json").json()
    wallet.register(credential)
    assert refund["status"] == "processing"
    with _later(2):
        assert tasks.resolve_due() == 1
    assert Refund.objects.unscoped().get(public_id=refund["id"]).status == "succeeded"
    assert (_status(order_id), Order.objects.unscoped().get(public_id=order_id).refunded_amount) == (
        "partially_refunded",
        300,
    )


def test_a_refund_that_never_reached_the_wallet_is_sent_again(world, api, shop, wallet):
    order_id, client = _paid_order(api, world)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"http_500": True})
    refund = client.post(f"/api/v1/orders/{order_id}/refunds", {}, format="json").json()
    wallet.register(credential)
    assert refund["status"] == "processing"
    with _later(2):
        tasks.resolve_due()
    assert Refund.objects.unscoped().get(public_id=refund["id"]).status == "succeeded"
    assert _status(order_id) == "refunded"
