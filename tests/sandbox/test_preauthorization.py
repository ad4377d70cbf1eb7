"""Pre-authorisation at the sandbox wallet, over real HTTP.

Classic (§8.3): an orderStr freeze authorised on the pre-authorisation page, then ``gateway.do``'s detail
query, capture (``alipay.trade.pay`` with ``auth_no``) and unfreeze, until nothing is left frozen or its
pay_timeout runs out. OpenAPI: a ``payments/pay`` authorization authorised at the cashier, then captured,
voided or left to expire, in v1 and v2. Balances are checked after every money move.
"""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from apps.sandbox import selectors, services
from apps.sandbox.models import Balance, Capture, ClassicOrder, ClassicUnfreeze, Notification, Payment
from tests.sandbox.conftest import ALICE_START, CLIENT_ID, PARTNER_ID, join_notifiers, pay_body
from tests.sandbox.test_classic import FREEZE, classic_verifies, open_tradepay, order_str, press
from tests.sandbox.test_classic_gateway import QUERY, REFUND, Gateway, assert_failure

DETAIL = "alipay.fund.auth.operation.detail.query"
CAPTURE = "alipay.trade.pay"
UNFREEZE = "alipay.fund.auth.order.unfreeze"
ALICE = "2188000000000001"


@pytest.fixture
def gateway(caller, merchant_key):
    return Gateway(caller, merchant_key)


def freeze_biz(out_order_no="ZM1", amount="100.00", **extra) -> dict:
    return {
        "out_order_no": out_order_no,
        "out_request_no": f"{out_order_no}-F",
        "order_title": "Charger deposit",
        "amount": amount,
        "product_code": "PRE_AUTH_ONLINE",
        "pay_timeout": "2d",
        **extra,
    }


def freeze(caller, merchant_key, *, authorise=True, notify_url="", **biz) -> ClassicOrder:
    """A freeze's orderStr opened on the pre-authorisation page (and authorised by alice unless told not to)."""
    page = open_tradepay(caller, order_str(merchant_key, FREEZE, freeze_biz(**biz), notify_url=notify_url))
    assert page.status_code == 200, page.text
    if authorise:
        assert press(caller, page).status_code == 200
    return ClassicOrder.objects.get(kind="FREEZE", out_no=biz.get("out_order_no", "ZM1"))


def capture_biz(auth_no, out_trade_no="T1", total_amount="30.00", mode=None, **extra) -> dict:
    biz = {
        "out_trade_no": out_trade_no,
        "product_code": "PRE_AUTH_ONLINE",
        "auth_no": auth_no,
        "total_amount": total_amount,
        "subject": "Charging, 2 hours",
        **extra,
    }
    return {**biz, "auth_confirm_mode": mode} if mode else biz


def unfreeze_biz(auth_no, out_request_no="U1", amount="10.00") -> dict:
    return {"auth_no": auth_no, "out_request_no": out_request_no, "amount": amount, "remark": "deposit back"}


def balances(currency="CNY") -> tuple[int, int]:
    """(alice, the merchant) in ``currency``; 0 for a balance never touched."""
    alice = Balance.objects.filter(user__login="alice", currency=currency).first()
    merchant = Balance.objects.filter(client__client_id=CLIENT_ID, currency=currency).first()
    return (alice.amount if alice else ALICE_START), (merchant.amount if merchant else 0)


def detail(gateway, auth_no, **biz) -> dict:
    reply = gateway.call(DETAIL, {"auth_no": auth_no, **biz})
    assert reply.body["code"] == "10000", reply.body
    return reply.body


def totals(body: dict) -> tuple[str, str, str, str]:
    return body["order_status"], body["total_freeze_amount"], body["total_pay_amount"], body["rest_amount"]


# --- Classic: detail query -----------------------------------------------------------------------


def test_detail_query_follows_a_freeze_from_init_to_authorized(caller, merchant_key, gateway, wallet_public_pem):
    order = freeze(caller, merchant_key, authorise=False)
    waiting = gateway.call(DETAIL, {"out_order_no": "ZM1", "out_request_no": "ZM1-F"})
    assert {key: value for key, value in waiting.body.items() if key != "gmt_create"} == {
        "code": "10000",
        "msg": "Success",
        "auth_no": order.wallet_no,
        "out_order_no": "ZM1",
        "order_status": "INIT",
        "order_title": "Charger deposit",
        "total_freeze_amount": "0.00",
        "rest_amount": "0.00",
        "total_pay_amount": "0.00",
        "out_request_no": "ZM1-F",
        "amount": "100.00",
        "operation_type": "FREEZE",
        "status": "INIT",
    }
    assert waiting.signed_by(wallet_public_pem)

    press(caller, open_tradepay(caller, order_str(merchant_key, FREEZE, freeze_biz())))
    order.refresh_from_db()
    authorised = detail(gateway, order.wallet_no)
    assert totals(authorised) == ("AUTHORIZED", "100.00", "0.00", "100.00")
    assert (authorised["status"], authorised["operation_id"], authorised["payer_user_id"]) == (
        "SUCCESS",
        order.operation_id,
        ALICE,
    )
    assert len(authorised["gmt_trans"]) == len("2026-03-02 10:00:00")
    assert "trans_currency" not in authorised
    assert balances() == (ALICE_START - 100_00, 0)


def test_detail_query_of_a_freeze_never_opened_or_an_unknown_operation(caller, merchant_key, gateway):
    assert_failure(gateway.call(DETAIL, {"auth_no": "2026000000000000000000000000"}), "AUTH_ORDER_NOT_EXIST")
    assert_failure(gateway.call(DETAIL, {"out_order_no": "ZM1", "out_request_no": "ZM1-F"}), "AUTH_ORDER_NOT_EXIST")
    assert_failure(gateway.call(DETAIL, {"out_request_no": "ZM1-F"}), "ACQ.INVALID_PARAMETER")
    order = freeze(caller, merchant_key)
    assert_failure(
        gateway.call(DETAIL, {"auth_no": order.wallet_no, "out_request_no": "U9"}), "AUTH_OPERATION_NOT_EXIST"
    )


def test_a_freeze_in_a_two_decimal_currency_is_captured_in_that_currency(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key, trans_currency="USD", amount="50.00")
    assert detail(gateway, order.wallet_no)["trans_currency"] == "USD"
    other = gateway.call(CAPTURE, capture_biz(order.wallet_no, trans_currency="EUR"))
    assert_failure(other, "ACQ.INVALID_PARAMETER")
    paid = gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="20.00", trans_currency="USD"))
    assert (paid.body["code"], paid.body["trans_currency"]) == ("10000", "USD")
    assert balances("USD") == (ALICE_START - 50_00, 20_00)


@pytest.mark.parametrize("pay_timeout", ["0m", "16d", "1.5h", "2w", "m", 5])
def test_a_pay_timeout_out_of_range_is_refused_on_the_page(caller, merchant_key, pay_timeout):
    page = open_tradepay(caller, order_str(merchant_key, FREEZE, freeze_biz(pay_timeout=pay_timeout)))
    assert page.status_code == 400
    assert "isv.invalid-parameter" in page.text
    assert not ClassicOrder.objects.exists()


def test_pay_timeout_defaults_to_fifteen_minutes(caller, merchant_key):
    biz = freeze_biz()
    del biz["pay_timeout"]
    opened = timezone.now()
    open_tradepay(caller, order_str(merchant_key, FREEZE, biz))
    remaining = ClassicOrder.objects.get().expires_at - opened
    assert dt.timedelta(minutes=14) < remaining <= dt.timedelta(minutes=15, seconds=5)


# --- Classic: capture ----------------------------------------------------------------------------


def test_a_freeze_captured_in_part_then_in_full_closes_as_finished(caller, merchant_key, gateway, wallet_public_pem):
    order = freeze(caller, merchant_key)

    part = gateway.call(CAPTURE, capture_biz(order.wallet_no, "T1", "30.00", mode="NOT_COMPLETE"))
    trade = ClassicOrder.objects.get(kind="TRADE", out_no="T1")
    assert {key: value for key, value in part.body.items() if key != "gmt_payment"} == {
        "code": "10000",
        "msg": "Success",
        "trade_no": trade.wallet_no,
        "out_trade_no": "T1",
        "buyer_user_id": ALICE,
        "total_amount": "30.00",
        "receipt_amount": "30.00",
    }
    assert part.signed_by(wallet_public_pem)
    assert totals(detail(gateway, order.wallet_no)) == ("AUTHORIZED", "100.00", "30.00", "70.00")
    assert balances() == (ALICE_START - 100_00, 30_00)
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["trade_status"] == "TRADE_SUCCESS"

    rest = gateway.call(CAPTURE, capture_biz(order.wallet_no, "T2", "70.00", mode="COMPLETE"))
    assert rest.body["code"] == "10000"
    assert totals(detail(gateway, order.wallet_no)) == ("FINISH", "100.00", "100.00", "0.00")
    assert balances() == (ALICE_START - 100_00, 100_00)

    refund = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "30.00", "out_request_no": "R1"})
    assert (refund.body["code"], refund.body["fund_change"]) == ("10000", "Y")
    assert balances() == (ALICE_START - 70_00, 70_00)
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["trade_status"] == "TRADE_CLOSED"


def test_capturing_less_with_complete_gives_the_rest_back(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    captured = gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="40.00", mode="COMPLETE"))
    assert captured.body["code"] == "10000"
    assert totals(detail(gateway, order.wallet_no)) == ("FINISH", "100.00", "40.00", "0.00")
    assert balances() == (ALICE_START - 40_00, 40_00)

    assert_failure(gateway.call(CAPTURE, capture_biz(order.wallet_no, "T2", "1.00")), "ACQ.AUTH_NO_ERROR")
    assert_failure(gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no)), "ORDER_ALREADY_FINISH")
    assert balances() == (ALICE_START - 40_00, 40_00)


def test_not_complete_is_the_default(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="40.00"))
    assert totals(detail(gateway, order.wallet_no)) == ("AUTHORIZED", "100.00", "40.00", "60.00")


def test_a_capture_retry_is_idempotent_and_other_content_is_refused(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    first = gateway.call(CAPTURE, capture_biz(order.wallet_no))
    again = gateway.call(CAPTURE, capture_biz(order.wallet_no))
    assert again.body == first.body
    assert balances() == (ALICE_START - 100_00, 30_00)

    other = gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="31.00"))
    assert_failure(other, "ACQ.CONTEXT_INCONSISTENT")
    assert ClassicOrder.objects.filter(kind="TRADE").count() == 1
    assert totals(detail(gateway, order.wallet_no)) == ("AUTHORIZED", "100.00", "30.00", "70.00")


def test_a_capture_above_the_rest_or_of_an_unknown_freeze_is_refused_and_nothing_moves(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    gateway.call(CAPTURE, capture_biz(order.wallet_no, "T1", "60.00"))
    assert_failure(gateway.call(CAPTURE, capture_biz(order.wallet_no, "T2", "40.01")), "ACQ.AUTH_AMOUNT_NOT_ENOUGH")
    unknown = gateway.call(CAPTURE, capture_biz("2026000000000000000000000000", "T3"))
    assert_failure(unknown, "ACQ.PAYMENT_AUTH_CODE_INVALID")
    assert balances() == (ALICE_START - 100_00, 60_00)
    assert list(ClassicOrder.objects.filter(kind="TRADE").values_list("out_no", flat=True)) == ["T1"]


def test_a_freeze_not_yet_authorised_has_nothing_to_capture_or_unfreeze(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key, authorise=False)
    assert_failure(gateway.call(CAPTURE, capture_biz(order.wallet_no)), "ACQ.AUTH_AMOUNT_NOT_ENOUGH")
    assert_failure(gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no)), "REQUEST_AMOUNT_EXCEED")
    assert balances() == (ALICE_START, 0)


@pytest.mark.parametrize(
    "biz",
    [
        {"product_code": "FACE_TO_FACE_PAYMENT"},
        {"auth_confirm_mode": "LATER"},
        {"total_amount": "0.00"},
        {"subject": ""},
        {"out_trade_no": ""},
    ],
)
def test_malformed_captures_are_invalid_parameter(caller, merchant_key, gateway, biz):
    order = freeze(caller, merchant_key)
    assert_failure(gateway.call(CAPTURE, {**capture_biz(order.wallet_no), **biz}), "ACQ.INVALID_PARAMETER")
    assert not ClassicOrder.objects.filter(kind="TRADE").exists()


# --- Classic: unfreeze ---------------------------------------------------------------------------


def test_unfreezing_everything_closes_the_freeze(caller, merchant_key, gateway, wallet_public_pem):
    order = freeze(caller, merchant_key)
    reply = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="100.00"))
    operation = ClassicUnfreeze.objects.get()
    assert {key: value for key, value in reply.body.items() if key != "gmt_trans"} == {
        "code": "10000",
        "msg": "Success",
        "auth_no": order.wallet_no,
        "out_order_no": "ZM1",
        "operation_id": operation.operation_id,
        "out_request_no": "U1",
        "amount": "100.00",
        "status": "SUCCESS",
    }
    assert reply.signed_by(wallet_public_pem)
    assert totals(detail(gateway, order.wallet_no)) == ("CLOSED", "100.00", "0.00", "0.00")
    assert balances() == (ALICE_START, 0)

    assert_failure(gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, "U2", "0.01")), "ORDER_ALREADY_CLOSED")
    assert_failure(gateway.call(CAPTURE, capture_biz(order.wallet_no)), "ACQ.AUTH_NO_ERROR")
    assert balances() == (ALICE_START, 0)

    unfrozen = detail(gateway, order.wallet_no, out_request_no="U1")
    assert (unfrozen["operation_type"], unfrozen["amount"], unfrozen["remark"]) == (
        "UNFREEZE",
        "100.00",
        "deposit back",
    )
    assert unfrozen["operation_id"] == operation.operation_id


def test_an_unfreeze_retry_is_idempotent_and_a_discordant_one_is_refused(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    first = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="30.00"))
    again = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="30.00"))
    assert again.body == first.body
    assert balances() == (ALICE_START - 70_00, 0)

    discordant = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="31.00"))
    assert_failure(discordant, "ACQ.DISCORDANT_REPEAT_REQUEST")
    over = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, "U2", "70.01"))
    assert_failure(over, "REQUEST_AMOUNT_EXCEED")
    assert ClassicUnfreeze.objects.count() == 1
    assert balances() == (ALICE_START - 70_00, 0)
    assert totals(detail(gateway, order.wallet_no)) == ("AUTHORIZED", "100.00", "0.00", "70.00")


def test_a_capture_then_an_unfreeze_of_the_rest_finishes_the_freeze(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="25.00"))
    gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="75.00"))
    assert totals(detail(gateway, order.wallet_no)) == ("FINISH", "100.00", "25.00", "0.00")
    assert balances() == (ALICE_START - 25_00, 25_00)


def test_unfreeze_of_an_unknown_freeze_and_malformed_unfreezes(caller, merchant_key, gateway):
    assert_failure(gateway.call(UNFREEZE, unfreeze_biz("2026000000000000000000000000")), "AUTH_ORDER_NOT_EXIST")
    order = freeze(caller, merchant_key)
    for broken in ({"amount": "1.001"}, {"remark": ""}, {"out_request_no": ""}, {"remark": "x" * 101}):
        assert_failure(gateway.call(UNFREEZE, {**unfreeze_biz(order.wallet_no), **broken}), "ACQ.INVALID_PARAMETER")
    assert balances() == (ALICE_START - 100_00, 0)


# --- Classic: expiry -----------------------------------------------------------------------------


def test_a_freeze_past_its_pay_timeout_expires_and_gives_the_rest_back(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="30.00"))
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, minutes=1)):
        assert totals(detail(gateway, order.wallet_no)) == ("CLOSED", "100.00", "30.00", "0.00")
        assert balances() == (ALICE_START - 30_00, 30_00)
        assert_failure(gateway.call(CAPTURE, capture_biz(order.wallet_no, "T2", "1.00")), "ACQ.AUTH_NO_ERROR")
        assert_failure(gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no)), "ORDER_ALREADY_CLOSED")
    assert balances() == (ALICE_START - 30_00, 30_00)
    order.refresh_from_db()
    assert order.closed_at == order.expires_at


def test_a_freeze_never_authorised_closes_at_its_pay_timeout(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key, authorise=False, pay_timeout="30m")
    page = open_tradepay(caller, order_str(merchant_key, FREEZE, freeze_biz(pay_timeout="30m")))
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        body = detail(gateway, order.wallet_no)
        assert (body["order_status"], body["status"]) == ("CLOSED", "CLOSED")
        refused = press(caller, page)
        assert refused.status_code == 400
        assert "ORDER_STATUS_INVALID" in refused.text
    assert balances() == (ALICE_START, 0)


def test_the_sweep_ends_expired_freezes_without_anyone_asking(caller, merchant_key):
    freeze(caller, merchant_key)
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, minutes=1)):
        services.deliver_due_notifications()
    assert ClassicOrder.objects.get().status == "CLOSED"
    assert balances() == (ALICE_START, 0)


def test_the_page_of_an_expired_authorised_freeze_shows_it_closed(caller, merchant_key):
    freeze(caller, merchant_key)
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, minutes=1)):
        page = open_tradepay(caller, order_str(merchant_key, FREEZE, freeze_biz()))
    assert "This order is closed." in page.text
    assert balances() == (ALICE_START, 0)


# --- Classic: notifications and faults -----------------------------------------------------------


def test_capture_and_unfreeze_notify_the_freezes_notify_url(caller, merchant_key, gateway, receiver, wallet_public_pem):
    receiver.default = (200, "success")
    order = freeze(caller, merchant_key, notify_url=receiver.url("/alipay/notify"), trans_currency="USD")
    gateway.call(CAPTURE, capture_biz(order.wallet_no, total_amount="30.00", trans_currency="USD"))
    gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no, amount="20.00"))
    _, captured, unfrozen = (received.form for received in receiver.wait_for(3))

    trade = ClassicOrder.objects.get(kind="TRADE")
    assert classic_verifies(wallet_public_pem, captured)
    assert {key: captured[key] for key in ("notify_type", "trade_no", "out_trade_no", "total_amount")} == {
        "notify_type": "trade_status_sync",
        "trade_no": trade.wallet_no,
        "out_trade_no": "T1",
        "total_amount": "30.00",
    }
    assert (captured["trade_status"], captured["buyer_id"], captured["trans_currency"]) == (
        "TRADE_SUCCESS",
        ALICE,
        "USD",
    )

    assert classic_verifies(wallet_public_pem, unfrozen)
    fields = ("notify_type", "auth_no", "out_request_no", "operation_type", "amount", "rest_amount", "total_pay_amount")
    assert {key: unfrozen[key] for key in fields} == {
        "notify_type": "fund_auth_unfreeze",
        "auth_no": order.wallet_no,
        "out_request_no": "U1",
        "operation_type": "UNFREEZE",
        "amount": "20.00",
        "rest_amount": "50.00",
        "total_pay_amount": "30.00",
    }
    assert unfrozen["operation_id"] == ClassicUnfreeze.objects.get().operation_id
    assert (unfrozen["status"], unfrozen["total_unfreeze_amount"]) == ("SUCCESS", "20.00")
    join_notifiers()  # the receiver has the last one; its sender may not have recorded the answer yet
    assert set(Notification.objects.values_list("status", flat=True)) == {"DELIVERED"}


def test_without_a_notify_url_capture_and_unfreeze_notify_no_one(caller, merchant_key, gateway):
    order = freeze(caller, merchant_key)
    gateway.call(CAPTURE, capture_biz(order.wallet_no))
    gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no))
    assert not Notification.objects.exists()


@pytest.mark.parametrize(("fault", "status_code", "processed"), [("result_u", 200, True), ("http_500", 500, False)])
def test_faults_on_capture_and_unfreeze(caller, merchant_key, gateway, fault, status_code, processed):
    order = freeze(caller, merchant_key)
    captured = gateway.call(CAPTURE, capture_biz(order.wallet_no), faults=fault)
    unfrozen = gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no), faults=fault)
    for reply in (captured, unfrozen):
        assert reply.status_code == status_code
        assert (reply.body["code"], reply.body["sub_code"]) == ("20000", "aop.ACQ.SYSTEM_ERROR")
    assert ClassicOrder.objects.filter(kind="TRADE").exists() is processed
    assert ClassicUnfreeze.objects.exists() is processed
    assert balances() == ((ALICE_START - 90_00, 30_00) if processed else (ALICE_START - 100_00, 0))
    # Retried without the fault, both answer as if called once.
    assert gateway.call(CAPTURE, capture_biz(order.wallet_no)).body["code"] == "10000"
    assert gateway.call(UNFREEZE, unfreeze_biz(order.wallet_no)).body["code"] == "10000"
    assert balances() == (ALICE_START - 90_00, 30_00)


def test_drop_response_and_bad_signature_on_a_capture(caller, merchant_key, gateway, wallet_public_pem):
    order = freeze(caller, merchant_key)
    dropped = gateway.call(CAPTURE, capture_biz(order.wallet_no), faults="drop_response")
    assert (dropped.status_code, dropped.raw) == (502, "")
    corrupt = gateway.call(CAPTURE, capture_biz(order.wallet_no), faults="bad_signature")
    assert corrupt.body["code"] == "10000"
    assert not corrupt.signed_by(wallet_public_pem)
    assert balances() == (ALICE_START - 100_00, 30_00)


# --- OpenAPI authorization payments (v1 and v2) --------------------------------------------------


def auth_body(version: str, request_id="pa_1", value="10000", **extra) -> dict:
    if version == "v1":
        body = {
            "partnerId": PARTNER_ID,
            "paymentOrderTitle": "Scooter deposit",
            "paymentRequestId": request_id,
            "paymentAmount": {"currency": "USD", "value": value},
            "paymentFactor": {"isCashierPayment": True, "isAuthorizationPayment": True},
        }
    else:
        body = pay_body(request_id, value, paymentFactor={"isAuthorizationPayment": "true"})
    return {**body, **extra}


def partner(version: str) -> dict:
    return {"partnerId": PARTNER_ID} if version == "v1" else {}


class Wallet:
    """The OpenAPI calls of one dialect, for the authorization tests."""

    def __init__(self, caller, version: str) -> None:
        self.caller = caller
        self.version = version

    def post(self, endpoint: str, body: dict, **options):
        return self.caller.post(endpoint, {**partner(self.version), **body}, version=self.version, **options)

    def authorise(self, request_id="pa_1", user="alice", **extra) -> str:
        answer = self.post("payments/pay", auth_body(self.version, request_id, **extra))
        assert answer.result["resultCode"] == "ACCEPT", answer.json
        form = answer.json.get("redirectActionForm") or answer.json["actionForm"]
        page = self.caller.http.get(form["redirectionUrl"])
        assert ">Authorise</button>" in page.text
        assert "frozen on your balance" in page.text
        assert press(self.caller, page, user=user).status_code in (200, 302)
        return answer.json["paymentId"]

    def capture(self, payment_id: str, request_id="cap_1", value: str | None = "3000", faults="", **extra):
        body = {"captureRequestId": request_id, "paymentId": payment_id, **extra}
        if value is not None:
            body["captureAmount"] = {"currency": "USD", "value": value}
        return self.post("payments/capture", body, headers={"X-Sandbox-Faults": faults} if faults else None)

    def inquire(self, payment_id: str) -> dict:
        answer = self.post("payments/inquiryPayment", {"paymentId": payment_id})
        assert answer.result["resultStatus"] == "S", answer.json
        return answer.json


@pytest.fixture(params=["v1", "v2"])
def wallet(request, caller):
    return Wallet(caller, request.param)


def usd() -> tuple[int, int]:
    return balances("USD")


def test_an_authorization_is_authorised_at_the_cashier_and_reported_authorised(wallet):
    waiting = wallet.post("payments/pay", auth_body(wallet.version))
    assert wallet.inquire(waiting.json["paymentId"])["paymentStatus"] == "PROCESSING"
    payment_id = wallet.authorise()
    assert usd() == (ALICE_START - 100_00, 0)

    inquiry = wallet.inquire(payment_id)
    assert inquiry["paymentStatus"] == "SUCCESS"
    assert inquiry["transactions"] == []
    payment = Payment.objects.get()
    assert inquiry["authExpiryTime"] == (payment.paid_at + dt.timedelta(days=7)).astimezone(dt.UTC).isoformat(
        timespec="seconds"
    )
    page = wallet.caller.http.get(f"{wallet.caller.base_url}/sandbox/cashier/{payment_id}")
    assert "Funds are authorised (frozen)." in page.text


def test_captures_in_parts_then_the_last_gives_the_rest_back(wallet, wallet_public_pem):
    payment_id = wallet.authorise()
    first = wallet.capture(payment_id, "cap_1", "3000", isLastCapture=False)
    capture = Capture.objects.get()
    assert first.json == {
        "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
        "captureRequestId": "cap_1",
        "captureId": capture.capture_id,
        "paymentId": payment_id,
        "captureAmount": {"currency": "USD", "value": "3000"},
        "captureTime": first.json["captureTime"],
    }
    assert first.signed_by(wallet_public_pem)
    assert usd() == (ALICE_START - 100_00, 30_00)

    last = wallet.capture(payment_id, "cap_2", "5000")  # isLastCapture defaults to true
    assert last.result["resultCode"] == "SUCCESS"
    assert usd() == (ALICE_START - 80_00, 80_00)
    inquiry = wallet.inquire(payment_id)
    assert inquiry["paymentStatus"] == "SUCCESS"
    assert [
        (t["transactionType"], t["transactionRequestId"], t["transactionAmount"]["value"])
        for t in inquiry["transactions"]
    ] == [("CAPTURE", "cap_1", "3000"), ("CAPTURE", "cap_2", "5000")]
    assert {t["transactionStatus"] for t in inquiry["transactions"]} == {"SUCCESS"}

    after = wallet.capture(payment_id, "cap_3", "1")
    assert after.result["resultCode"] == "CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT"
    assert wallet.post("payments/cancel", {"paymentId": payment_id}).result["resultCode"] == "ORDER_STATUS_INVALID"
    assert usd() == (ALICE_START - 80_00, 80_00)


def test_a_capture_without_an_amount_takes_all_that_is_left(wallet):
    payment_id = wallet.authorise()
    wallet.capture(payment_id, "cap_1", "2500", isLastCapture="false")
    rest = wallet.capture(payment_id, "cap_2", None)
    assert rest.json["captureAmount"] == {"currency": "USD", "value": "7500"}
    assert usd() == (ALICE_START - 100_00, 100_00)


def test_a_capture_retry_gets_the_same_answer_and_other_content_is_refused(wallet):
    payment_id = wallet.authorise()
    first = wallet.capture(payment_id, "cap_1", "3000", isLastCapture=False)
    again = wallet.capture(payment_id, "cap_1", "3000", isLastCapture=False)
    assert again.response.content == first.response.content
    other = wallet.capture(payment_id, "cap_1", "3001", isLastCapture=False)
    assert other.result["resultCode"] == "REPEAT_REQ_INCONSISTENT"
    assert Capture.objects.count() == 1
    assert usd() == (ALICE_START - 100_00, 30_00)


def test_captures_above_the_authorization_are_refused_and_nothing_moves(wallet):
    payment_id = wallet.authorise()
    wallet.capture(payment_id, "cap_1", "6000", isLastCapture=False)
    over = wallet.capture(payment_id, "cap_2", "4001")
    assert (over.result["resultCode"], over.result["resultStatus"]) == ("CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT", "F")
    other_currency = wallet.post(
        "payments/capture",
        {"captureRequestId": "cap_3", "paymentId": payment_id, "captureAmount": {"currency": "EUR", "value": "1"}},
    )
    assert other_currency.result["resultCode"] == "PARAM_ILLEGAL"
    assert Capture.objects.count() == 1
    assert usd() == (ALICE_START - 100_00, 60_00)


def test_only_an_authorised_authorization_can_be_captured(wallet, caller):
    unknown = wallet.capture("2026000000000000000000000000", "cap_1")
    assert unknown.result["resultCode"] == "AUTH_NOT_FOUND"
    waiting = wallet.post("payments/pay", auth_body(wallet.version, "pa_2"))
    assert wallet.capture(waiting.json["paymentId"], "cap_2").result["resultCode"] == "AUTH_NOT_FOUND"
    plain = caller.post("payments/pay", pay_body("pr_plain"))
    assert wallet.capture(plain.json["paymentId"], "cap_3").result["resultCode"] == "AUTH_NOT_FOUND"
    assert not Capture.objects.exists()


def test_a_void_releases_the_authorization(wallet):
    payment_id = wallet.authorise()
    voided = wallet.post("payments/cancel", {"paymentId": payment_id})
    assert voided.result["resultCode"] == "SUCCESS"
    assert usd() == (ALICE_START, 0)
    assert wallet.inquire(payment_id)["paymentStatus"] == "CANCELLED"
    assert wallet.capture(payment_id).result["resultCode"] == "AUTH_CANCELLED"
    assert wallet.post("payments/cancel", {"paymentId": payment_id}).json["cancelTime"] == voided.json["cancelTime"]
    assert usd() == (ALICE_START, 0)


def test_an_authorization_expires_at_its_payment_expiry_time(wallet):
    expiry = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    payment_id = wallet.authorise(paymentExpiryTime=expiry)
    wallet.capture(payment_id, "cap_1", "2000", isLastCapture=False)
    assert wallet.inquire(payment_id)["authExpiryTime"] == dt.datetime.fromisoformat(expiry).astimezone(
        dt.UTC
    ).isoformat(timespec="seconds")
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1, minutes=1)):
        inquiry = wallet.inquire(payment_id)
        assert inquiry["paymentStatus"] == "SUCCESS"  # what was captured stays captured
        assert usd() == (ALICE_START - 20_00, 20_00)
        assert wallet.capture(payment_id, "cap_2", "1000").result["resultCode"] == "AUTH_EXPIRED"
    assert usd() == (ALICE_START - 20_00, 20_00)


def test_an_authorization_never_captured_ends_cancelled_when_it_expires(wallet):
    payment_id = wallet.authorise()
    with time_machine.travel(timezone.now() + dt.timedelta(days=7, minutes=1)):
        services.deliver_due_notifications()
        assert usd() == (ALICE_START, 0)
        assert wallet.inquire(payment_id)["paymentStatus"] == "CANCELLED"
        assert wallet.capture(payment_id).result["resultCode"] == "AUTH_EXPIRED"
        page = wallet.caller.http.get(f"{wallet.caller.base_url}/sandbox/cashier/{payment_id}")
        assert "This payment was cancelled." in page.text


@pytest.mark.parametrize(("fault", "status_code", "processed"), [("result_u", 200, True), ("http_500", 500, False)])
def test_faults_on_a_capture(wallet, fault, status_code, processed):
    payment_id = wallet.authorise()
    answer = wallet.capture(payment_id, faults=fault)
    assert answer.status_code == status_code
    assert (answer.result["resultCode"], answer.result["resultStatus"]) == ("UNKNOWN_EXCEPTION", "U")
    assert Capture.objects.exists() is processed
    retry = wallet.capture(payment_id)
    assert retry.result["resultCode"] == "SUCCESS"
    assert Capture.objects.count() == 1
    assert usd() == (ALICE_START - 30_00, 30_00)


def test_a_captured_authorization_is_refunded_up_to_what_was_captured(wallet):
    payment_id = wallet.authorise()
    wallet.capture(payment_id, "cap_1", "3000")
    body = {"refundRequestId": "rf_1", "paymentId": payment_id, "refundAmount": {"currency": "USD", "value": "3001"}}
    assert wallet.post("payments/refund", body).result["resultCode"] == "REFUND_AMOUNT_EXCEED"
    body["refundAmount"]["value"] = "3000"
    assert wallet.post("payments/refund", body).result["resultCode"] == "SUCCESS"
    assert usd() == (ALICE_START, 0)


def test_authorizations_settle_by_their_captures(wallet, merchant):
    payment_id = wallet.authorise()
    capture_id = wallet.capture(payment_id, "cap_1", "4000").json["captureId"]
    rows = selectors.settlement_rows(client=merchant, day=timezone.now().astimezone(dt.UTC).date())
    assert [(row["record_type"], row["payment_id"], row["payment_request_id"], row["amount"]) for row in rows] == [
        ("PAYMENT", capture_id, "cap_1", 4000)
    ]
