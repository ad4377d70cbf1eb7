"""Payment notifications end to end: the sandbox wallet notifies the platform over real HTTP when a person
pays; the platform stores the raw delivery, verifies it, acknowledges it signed, and applies it once —
never regressing a final state, never trusting an amount that is not the payment's."""

import datetime
import json
import urllib.parse

import httpx
import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.callbacks import services as callbacks
from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.payments.models import Order, Payment, PaymentEvent, Refund
from apps.sandbox import services as sandbox_services
from apps.sandbox import signing as sandbox_signing
from apps.sandbox.models import ClassicOrder
from apps.sandbox.models import Notification as WalletNotification
from apps.sandbox.models import Refund as WalletRefund
from apps.sandbox.services import WALLET_KEY_VERSION, wallet_private_key
from apps.superapps.client import keys, signing
from apps.superapps.models import TradePayMode
from tests.callbacks.inbox import arrived, drain_inbox
from tests.conftest import _test_key_pair
from tests.payments.conftest import ready_mini_program
from tests.payments.test_orders import _order
from tests.payments.test_preauthorizations import BASE, _authorise, _capture, _create, _mini_program
from tests.sandbox.conftest import join_notifiers
from tests.superapps.test_classic_client import _open, _pay
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def _inbox(**filters):
    return arrived().filter(**filters)


def _paid_at_cashier(api, world, **overrides) -> dict:
    order = _order(api, world, **overrides).json()
    _pay_at_cashier(order["trade_pay"]["paymentUrl"])
    join_notifiers()
    return order


def _status(order_id: str) -> str:
    return Order.objects.unscoped().get(public_id=order_id).status


def _events(order_id: str, source: str) -> list[tuple[str, str]]:
    return list(
        PaymentEvent.objects.unscoped()
        .filter(order__public_id=order_id, source=source)
        .order_by("created_at")
        .values_list("subject", "to_status")
    )


def _deliver(wallet, body: dict, *, request_time: str | None = None, key=None) -> httpx.Response:
    """A notifyPayment as the wallet sends it, signed with the wallet's key (or another)."""
    path = f"/callbacks/{wallet.super_app.callback_token}/payments/notify"
    raw = json.dumps(body).encode()
    request_time = request_time or signing.now_timestamp()
    client_id = "client-shop-app"
    header = signing.sign(
        key or wallet_private_key(),
        path=path,
        client_id=client_id,
        timestamp=request_time,
        body=raw,
        key_version=str(WALLET_KEY_VERSION),
    )
    return Client().post(
        path,
        raw,
        content_type="application/json",
        HTTP_CLIENT_ID=client_id,
        HTTP_REQUEST_TIME=request_time,
        HTTP_SIGNATURE=header,
    )


def _with_request_id(order: dict) -> dict:
    """The order as the API shows it, with the id the wallet knows its payment by."""
    payment = Payment.objects.unscoped().get(order__public_id=order["id"])
    return {**order, "payment_request_id": payment.payment_request_id}


def _v2_body(order: dict, status: str = "S", amount: str = "1250") -> dict:
    return {
        "paymentRequestId": order["payment_request_id"],
        "paymentId": "2026112200000001",
        "paymentResult": {"resultCode": "SUCCESS" if status == "S" else "PAYMENT_FAILED", "resultStatus": status},
        "paymentAmount": {"currency": "USD", "value": amount},
        "paymentTime": "2026-11-22T10:00:00+08:00",
    }


def test_paying_on_the_cashier_makes_the_order_paid_through_the_notification(world, api, shop, wallet):
    order = _paid_at_cashier(api, world)
    [stored] = _inbox(kind="payment")
    assert (stored.status, stored.merchant_id, stored.dedupe_key is not None) == ("received", shop.merchant_id, True)
    assert bytes(stored.body).startswith(b"{")
    assert stored.headers["signature"].startswith("algorithm=RSA256")
    assert WalletNotification.objects.get(kind="PAYMENT").status == "DELIVERED"  # acknowledged, signed
    assert _status(order["id"]) == "pending"  # nothing applied on the request path

    assert drain_inbox() == 1
    assert _status(order["id"]) == "paid"
    assert _events(order["id"], "wallet_notification") == [("payment", "succeeded"), ("order", "paid")]
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.outcome) == ("processed", 1, "payment succeeded")
    assert drain_inbox() == 0


def test_a_duplicated_notification_is_acknowledged_and_applied_once(world, api, shop, wallet):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"duplicate_notify": True})
    order = _paid_at_cashier(api, world)
    assert sorted(_inbox(kind="payment").values_list("status", flat=True)) == ["duplicate", "received"]
    assert set(WalletNotification.objects.values_list("status", flat=True)) == {"DELIVERED"}
    drain_inbox()
    assert _events(order["id"], "wallet_notification") == [("payment", "succeeded"), ("order", "paid")]


def test_a_forged_notification_is_kept_as_evidence_and_changes_nothing(world, api, shop, wallet):
    order = _with_request_id(_order(api, world).json())
    forged = _deliver(wallet, _v2_body(order), key=keys.load_private_key(_test_key_pair()[0]))
    assert forged.status_code == 401
    assert json.loads(forged.content)["result"]["resultCode"] == "INVALID_SIGNATURE"
    stored = _inbox(kind="payment").get()
    assert (stored.status, stored.merchant_id) == ("rejected", None)  # no tenant on an unverified claim
    assert drain_inbox() == 0
    assert _status(order["id"]) == "pending"


@pytest.mark.parametrize(("skew", "accepted"), [(299, True), (-299, True), (301, False), (-301, False)])
def test_request_time_must_be_within_the_tolerance(world, api, shop, wallet, skew, accepted):
    order = _order(api, world).json()
    stamp = (timezone.now() - datetime.timedelta(seconds=skew)).isoformat(timespec="milliseconds")
    response = _deliver(wallet, _v2_body(_with_request_id(order)), request_time=stamp)
    assert (response.status_code == 200) is accepted
    drain_inbox()
    assert (_status(order["id"]) == "paid") is accepted


def test_a_late_failure_after_success_is_an_anomaly_not_a_regression(world, api, shop, wallet):
    order = _with_request_id(_order(api, world).json())
    assert _deliver(wallet, _v2_body(order, "S")).status_code == 200
    assert _deliver(wallet, _v2_body(order, "F")).status_code == 200  # acknowledged all the same
    drain_inbox()
    assert _status(order["id"]) == "paid"
    assert sorted(_inbox(kind="payment").values_list("status", flat=True)) == ["anomaly", "processed"]
    assert len(_events(order["id"], "notification_anomaly")) == 1


def test_an_amount_that_is_not_the_payments_is_an_anomaly(world, api, shop, wallet):
    order = _with_request_id(_order(api, world).json())
    _deliver(wallet, _v2_body(order, "S", amount="999"))
    drain_inbox()
    assert _status(order["id"]) == "pending"
    assert _inbox(kind="payment").get().status == "anomaly"


def test_a_notification_for_an_unknown_payment_is_parked_retried_then_flagged(world, api, shop, wallet):
    _deliver(wallet, _v2_body({"payment_request_id": "pr_never_heard_of"}))
    drain_inbox()
    stored = _inbox(kind="payment").get()
    assert (stored.status, stored.attempts) == ("parked", 1)
    for minutes in range(1, 200, 10):
        with time_machine.travel(timezone.now() + datetime.timedelta(minutes=minutes), tick=True):
            callbacks.notifications_redrive()
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("failed", callbacks.PARK_ATTEMPTS)
    assert stored.outcome.startswith("flagged")


def test_a_lost_task_is_redriven_by_the_sweeper(world, api, shop, wallet):
    order = _paid_at_cashier(api, world)  # its task went to a broker nobody reads here
    assert callbacks.notifications_redrive() == 0  # not yet: the task may still be on its way
    with time_machine.travel(timezone.now() + callbacks.REDRIVE_AFTER, tick=True):
        assert callbacks.notifications_redrive() == 1
    assert _status(order["id"]) == "paid"


def test_a_crash_while_applying_loses_nothing_and_applies_once(world, api, shop, wallet, monkeypatch):
    order = _paid_at_cashier(api, world)

    def crash(**kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(callbacks, "payment_notified", crash)
    with pytest.raises(RuntimeError):
        drain_inbox()
    stored = _inbox(kind="payment").get()
    assert (stored.status, stored.attempts, _status(order["id"])) == ("received", 1, "pending")
    monkeypatch.undo()
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=1), tick=True):
        callbacks.notifications_redrive()
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, _status(order["id"])) == ("processed", 2, "paid")


def test_a_notification_that_keeps_failing_stops_and_is_flagged(world, api, shop, wallet, monkeypatch):
    _paid_at_cashier(api, world)
    monkeypatch.setattr(callbacks, "payment_notified", lambda **kwargs: 1 / 0)
    for minutes in range(0, 24 * 60, 60):
        with time_machine.travel(timezone.now() + datetime.timedelta(minutes=minutes), tick=True):
            callbacks.notifications_redrive()
    stored = _inbox(kind="payment").get()
    assert (stored.status, stored.attempts) == (NotificationStatus.FAILED, callbacks.MAX_ATTEMPTS + 1)


def test_an_order_str_payment_is_settled_by_its_classic_notification(world, api, wallet):
    _mini_program, _ = ready_mini_program(
        world.a.merchants[0].merchant, wallet, app_id="stall-app", trade_pay_mode=TradePayMode.ORDER_STR
    )
    body = {"mini_program": "stall-app", "amount": 1000, "currency": "USD", "description": "Noodles"}
    order = api.as_key(world.a.merchants[0].key).post("/api/v1/orders", body, format="json").json()
    with httpx.Client(timeout=10) as browser:
        _pay(wallet, _open(wallet, order["trade_pay"]["orderStr"], browser), browser)
    join_notifiers()
    stored = _inbox(kind="classic").get()
    assert WalletNotification.objects.get(kind="CLASSIC").status == "DELIVERED"  # answered "success"
    drain_inbox()
    stored.refresh_from_db()
    assert (stored.status, _status(order["id"])) == ("processed", "paid")


def test_pre_authorization_notifications_authorise_and_never_count_twice(world, api, wallet):
    merchant = api.as_key(world.a.merchants[0].key)
    mini_program, _ = _mini_program(world, wallet, TradePayMode.ORDER_STR)
    created = _create(merchant, mini_program).json()
    _authorise(wallet, created["trade_pay"])
    join_notifiers()
    drain_inbox()  # the fund_auth_freeze notification: authorised without anyone asking
    authorised = merchant.get(f"{BASE}/{created['id']}").json()
    assert (authorised["status"], authorised["auth_no"]) == ("authorized", ClassicOrder.objects.get().wallet_no)

    _capture(merchant, authorised, 1000, final=False)
    merchant.post(f"{BASE}/{created['id']}/release", {"amount": 500}, format="json")
    join_notifiers()
    assert drain_inbox() == 2  # the capture's trade and the unfreeze, both already applied
    settled = merchant.get(f"{BASE}/{created['id']}").json()
    assert (settled["captured_amount"], settled["released_amount"]) == (1000, 500)
    assert set(_inbox(kind="classic").values_list("status", flat=True)) == {"processed"}


def test_staff_process_a_given_up_notification_again_from_the_admin(world, api, shop, wallet):
    order = _paid_at_cashier(api, world)
    stored = _inbox(kind="payment").get()
    InboundNotification.objects.unscoped().filter(pk=stored.pk).update(status="failed", attempts=11)
    browser = Client()
    browser.force_login(world.operator)
    changelist = reverse("admin:callbacks_inboundnotification_changelist")
    page = browser.get(reverse("admin:callbacks_inboundnotification_change", args=[stored.pk])).content.decode()
    assert stored.public_id in page
    assert "paymentRequestId" in page
    browser.post(changelist, {"action": "process_again", "_selected_action": [stored.pk]})
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, _status(order["id"])) == ("processed", 1, "paid")
    browser.post(changelist, {"action": "process_again", "_selected_action": [stored.pk]})
    stored.refresh_from_db()
    assert stored.attempts == 1  # a processed notification is not processed again


def test_a_refund_left_processing_is_settled_by_notify_refund(world, api, shop, wallet):
    order = _paid_at_cashier(api, world)
    drain_inbox()
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"result_u": True})  # the wallet accepts the refund, then works on it
    merchant = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    refund = merchant.post(f"/api/v1/orders/{order['id']}/refunds", {"amount": 500}, format="json").json()
    wallet.register(credential)
    assert refund["status"] == "processing"

    sandbox_services.refund_complete(refund=WalletRefund.objects.get())  # the wallet finishes it, and says so
    join_notifiers()
    [stored] = _inbox(kind="refund")
    assert stored.subject == Refund.objects.unscoped().get(public_id=refund["id"]).refund_request_id
    drain_inbox()
    assert Refund.objects.unscoped().get(public_id=refund["id"]).status == "succeeded"
    assert merchant.get(f"/api/v1/orders/{order['id']}").json()["refunded_amount"] == 500
    assert _events(order["id"], "wallet_notification")[-2:] == [
        ("refund", "succeeded"),
        ("order", "partially_refunded"),
    ]


def test_a_crash_before_the_verdict_leaves_evidence_never_an_effect(world, api, shop, wallet, monkeypatch):
    """The raw row is committed first; if the process dies before verifying it, the row is never processed
    (it was never verified), and the wallet — unanswered — delivers again."""
    order = _with_request_id(_order(api, world).json())

    def crash(**kwargs):
        raise RuntimeError("the web process died")

    monkeypatch.setattr(callbacks, "_verify", crash)
    with pytest.raises(RuntimeError):
        _deliver(wallet, _v2_body(order))
    monkeypatch.undo()
    [orphan] = _inbox(kind="payment")
    assert (orphan.status, orphan.dedupe_key) == ("unverified", None)
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=1), tick=True):
        assert callbacks.notifications_redrive() == 0
    assert _status(order["id"]) == "pending"

    assert _deliver(wallet, _v2_body(order)).status_code == 200  # the wallet's retry
    drain_inbox()
    assert _status(order["id"]) == "paid"
    assert sorted(_inbox(kind="payment").values_list("status", flat=True)) == ["processed", "unverified"]


def _classic_trade_notice(wallet, payment: Payment, trade_status: str) -> httpx.Response:
    """A classic trade_status_sync as the wallet signs it."""
    params = {
        "app_id": "classic-stall-app",
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "notify_type": "trade_status_sync",
        "notify_id": f"n-{trade_status}",
        "notify_time": "2026-11-22 18:00:00",
        "trade_no": "2026112222001400000000000001",
        "out_trade_no": payment.payment_request_id,
        "total_amount": "10.00",
        "trans_currency": "USD",
        "trade_status": trade_status,
    }
    params["sign"] = sandbox_signing.classic_sign(wallet_private_key(), params)
    path = f"/callbacks/{wallet.super_app.callback_token}/classic/notify"
    return Client().post(path, urllib.parse.urlencode(params), content_type="application/x-www-form-urlencoded")


def test_a_classic_notice_of_a_waiting_or_closed_trade_is_asked_about_never_a_failure(world, api, wallet):
    ready_mini_program(world.a.merchants[0].merchant, wallet, app_id="stall-app", trade_pay_mode=TradePayMode.ORDER_STR)
    body = {"mini_program": "stall-app", "amount": 1000, "currency": "USD", "description": "Noodles"}
    order = api.as_key(world.a.merchants[0].key).post("/api/v1/orders", body, format="json").json()
    payment = Payment.objects.unscoped().get(order__public_id=order["id"])
    for status in ("WAIT_BUYER_PAY", "TRADE_CLOSED"):
        assert _classic_trade_notice(wallet, payment, status).content == b"success"
    drain_inbox()
    assert _status(order["id"]) == "pending"  # the wallet is asked instead (at once)
    assert Payment.objects.unscoped().get(pk=payment.pk).next_inquiry_at <= timezone.now()
    _classic_trade_notice(wallet, payment, "TRADE_SUCCESS")
    drain_inbox()
    assert _status(order["id"]) == "paid"
