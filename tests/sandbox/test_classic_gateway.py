"""The classic gateway (``gateway.do``): query, refund, refund query and close of orderStr trades, signed both
ways (RSA2), with the sandbox's faults. Requests are signed here independently of the sandbox's code."""

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from apps.sandbox import services
from apps.sandbox.models import Balance, ClassicOrder, ClassicRefund
from tests.sandbox.conftest import ALICE_START, CLIENT_ID, classic_params, join_notifiers, public_pem, rsa2_verifies
from tests.sandbox.test_classic import open_tradepay, order_str, press

QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
CLOSE = "alipay.trade.close"


class Gateway:
    """A merchant server calling ``gateway.do`` the way the classic SDKs do."""

    def __init__(self, caller, private_key) -> None:
        self.caller = caller
        self.private_key = private_key

    def params(self, method: str, biz: dict, *, key=None, **overrides) -> dict:
        return classic_params(key or self.private_key, method, biz, **overrides)

    def call(self, method: str, biz: dict, *, faults: str = "", as_get: bool = False, **options) -> "Reply":
        params = self.params(method, biz, **options)
        headers = {"X-Sandbox-Faults": faults} if faults else {}
        url = self.caller.base_url + "/sandbox/gateway.do"
        if as_get:
            response = self.caller.http.get(url, params=params, headers=headers)
        else:
            response = self.caller.http.post(url, data=params, headers=headers)
        return Reply(response, method)


class Reply:
    def __init__(self, response, method: str) -> None:
        self.response = response
        self.status_code = response.status_code
        self.key = method.replace(".", "_") + "_response"

    @property
    def raw(self) -> str:
        return self.response.text

    @property
    def body(self) -> dict:
        document = json.loads(self.raw)
        return document.get(self.key) or document["error_response"]

    def signed_by(self, public_pem_text: str) -> bool:
        """The signature covers the exact text of the ``…_response`` value, which the sandbox writes first."""
        document = json.loads(self.raw)
        key = self.key if self.key in document else "error_response"
        content = self.raw[len(json.dumps(key)) + 2 : self.raw.rindex(',"sign":')]
        return rsa2_verifies(public_pem_text, document["sign"], content)


@pytest.fixture
def gateway(caller, merchant_key):
    return Gateway(caller, merchant_key)


def trade(caller, merchant_key, out_trade_no="T1", total="2.00", *, pay=True, **biz):
    """An orderStr opened at the cashier (and paid by alice unless ``pay=False``)."""
    page = open_tradepay(caller, order_str(merchant_key, biz=_biz(out_trade_no, total, **biz)))
    assert page.status_code == 200, page.text
    if pay:
        assert press(caller, page).status_code == 200
    return ClassicOrder.objects.get(out_no=out_trade_no)


def balances(currency="CNY") -> tuple[int, int]:
    """(alice, the merchant) in ``currency``."""
    alice = Balance.objects.get(user__login="alice", currency=currency).amount
    return alice, Balance.objects.get(client__client_id=CLIENT_ID, currency=currency).amount


def assert_failure(reply: Reply, sub_code: str, code: str = "40004") -> None:
    assert reply.status_code == 200
    assert (reply.body["code"], reply.body["sub_code"]) == (code, sub_code), reply.body


# --- alipay.trade.query --------------------------------------------------------------------------


def test_an_order_str_never_opened_is_trade_not_exist(gateway, wallet_public_pem):
    reply = gateway.call(QUERY, {"out_trade_no": "T1"})
    assert_failure(reply, "ACQ.TRADE_NOT_EXIST")
    assert reply.body["msg"] == "Business Failed"
    assert reply.signed_by(wallet_public_pem)


def test_query_follows_the_trade_from_wait_buyer_pay_to_trade_success(caller, merchant_key, gateway, wallet_public_pem):
    order = trade(caller, merchant_key, total="12.50", pay=False)
    waiting = gateway.call(QUERY, {"out_trade_no": "T1"})
    assert waiting.body == {
        "code": "10000",
        "msg": "Success",
        "trade_no": order.wallet_no,
        "out_trade_no": "T1",
        "trade_status": "WAIT_BUYER_PAY",
        "total_amount": "12.50",
    }
    assert waiting.signed_by(wallet_public_pem)
    assert waiting.response.headers["Content-Type"].startswith("application/json")

    press(caller, open_tradepay(caller, order_str(merchant_key, biz=_biz("T1", "12.50"))))
    paid = gateway.call(QUERY, {"trade_no": order.wallet_no})
    assert paid.body["trade_status"] == "TRADE_SUCCESS"
    assert paid.body["buyer_user_id"] == "2188000000000001"
    assert len(paid.body["send_pay_date"]) == len("2026-03-02 10:00:00")
    assert "trans_currency" not in paid.body
    assert paid.signed_by(wallet_public_pem)


def test_python_alipay_sdk_style_get_requests_are_answered(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    reply = gateway.call(QUERY, {"out_trade_no": "T1"}, as_get=True)
    assert reply.body["trade_status"] == "TRADE_SUCCESS"


def test_a_trade_is_someone_elses_under_another_app(caller, merchant_key, gateway):
    trade(caller, merchant_key, pay=False)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    services.client_register(client_id="other", public_key=public_pem(other), classic_app_id="2021000000000002")
    reply = gateway.call(QUERY, {"out_trade_no": "T1"}, key=other, app_id="2021000000000002")
    assert_failure(reply, "ACQ.TRADE_NOT_EXIST")


# --- alipay.trade.refund and alipay.trade.fastpay.refund.query -----------------------------------


def test_a_refund_moves_money_back_and_is_idempotent_on_out_request_no(caller, merchant_key, gateway):
    order = trade(caller, merchant_key)
    biz = {"out_trade_no": "T1", "refund_amount": "0.50", "out_request_no": "R1", "refund_reason": "spilled"}

    first = gateway.call(REFUND, biz)
    assert {key: first.body[key] for key in ("code", "fund_change", "refund_fee", "trade_no", "out_trade_no")} == {
        "code": "10000",
        "fund_change": "Y",
        "refund_fee": "0.50",
        "trade_no": order.wallet_no,
        "out_trade_no": "T1",
    }
    assert first.body["buyer_user_id"] == "2188000000000001"
    assert balances() == (ALICE_START - 150, 150)

    again = gateway.call(REFUND, biz)
    assert {**again.body, "fund_change": "Y"} == first.body
    assert again.body["fund_change"] == "N"
    assert balances() == (ALICE_START - 150, 150)

    second = gateway.call(REFUND, {**biz, "out_request_no": "R2", "refund_amount": "0.25"})
    assert second.body["refund_fee"] == "0.75"
    assert balances() == (ALICE_START - 125, 125)

    discordant = gateway.call(REFUND, {**biz, "refund_amount": "0.60"})
    assert_failure(discordant, "ACQ.DISCORDANT_REPEAT_REQUEST")
    assert ClassicRefund.objects.count() == 2


def test_a_refund_above_what_is_left_is_refused_and_changes_nothing(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "1.50", "out_request_no": "R1"})
    over = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "0.51", "out_request_no": "R2"})
    assert_failure(over, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    assert balances() == (ALICE_START - 50, 50)
    assert list(ClassicRefund.objects.values_list("out_request_no", flat=True)) == ["R1"]
    assert ClassicOrder.objects.get().status == "SUCCESS"


def test_a_full_refund_closes_the_trade(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    full = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "2.00"})
    assert (full.body["fund_change"], full.body["refund_fee"]) == ("Y", "2.00")
    assert balances() == (ALICE_START, 0)
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["trade_status"] == "TRADE_CLOSED"
    more = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "0.01", "out_request_no": "R9"})
    assert_failure(more, "ACQ.TRADE_STATUS_ERROR")
    # Without out_request_no the out_trade_no stands in for it, so a retry repeats, never refunds twice.
    assert gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "2.00"}).body["fund_change"] == "N"


def test_an_unpaid_or_unknown_trade_cannot_be_refunded(caller, merchant_key, gateway):
    trade(caller, merchant_key, pay=False)
    unpaid = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "1.00", "out_request_no": "R1"})
    assert_failure(unpaid, "ACQ.TRADE_STATUS_ERROR")
    unknown = gateway.call(REFUND, {"out_trade_no": "T404", "refund_amount": "1.00", "out_request_no": "R1"})
    assert_failure(unknown, "ACQ.TRADE_NOT_EXIST")
    assert not ClassicRefund.objects.exists()


@pytest.mark.parametrize(
    "biz",
    [
        {"refund_amount": "1.00"},
        {"out_trade_no": "T1"},
        {"out_trade_no": "T1", "refund_amount": "1.001"},
        {"out_trade_no": "T1", "refund_amount": "-1.00"},
        {"out_trade_no": "T1", "refund_amount": 1},
        {"out_trade_no": "T1", "refund_amount": "1.00", "refund_currency": "USD"},
    ],
)
def test_malformed_refunds_are_invalid_parameter(caller, merchant_key, gateway, biz):
    trade(caller, merchant_key)
    assert_failure(gateway.call(REFUND, biz), "ACQ.INVALID_PARAMETER")
    assert not ClassicRefund.objects.exists()


def test_refund_query_finds_the_refund_and_an_unknown_request_is_an_empty_success(caller, merchant_key, gateway):
    order = trade(caller, merchant_key)
    gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "0.40", "out_request_no": "R1", "refund_reason": "x"})

    found = gateway.call(REFUND_QUERY, {"out_trade_no": "T1", "out_request_no": "R1"})
    assert {key: value for key, value in found.body.items() if key != "gmt_refund_pay"} == {
        "code": "10000",
        "msg": "Success",
        "trade_no": order.wallet_no,
        "out_trade_no": "T1",
        "out_request_no": "R1",
        "total_amount": "2.00",
        "refund_amount": "0.40",
        "refund_status": "REFUND_SUCCESS",
        "refund_reason": "x",
    }
    unknown = gateway.call(REFUND_QUERY, {"out_trade_no": "T1", "out_request_no": "R2"})
    assert unknown.body == {"code": "10000", "msg": "Success"}
    assert_failure(gateway.call(REFUND_QUERY, {"out_trade_no": "T404", "out_request_no": "R1"}), "ACQ.TRADE_NOT_EXIST")
    assert_failure(gateway.call(REFUND_QUERY, {"out_trade_no": "T1"}), "ACQ.INVALID_PARAMETER")


# --- alipay.trade.close --------------------------------------------------------------------------


def test_close_of_an_unpaid_trade_then_the_cashier_refuses(caller, merchant_key, gateway):
    order = trade(caller, merchant_key, pay=False)
    closed = gateway.call(CLOSE, {"out_trade_no": "T1"})
    assert closed.body == {"code": "10000", "msg": "Success", "trade_no": order.wallet_no, "out_trade_no": "T1"}
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["trade_status"] == "TRADE_CLOSED"

    page = open_tradepay(caller, order_str(merchant_key, biz=_biz("T1", "2.00")))
    assert "This order is closed." in page.text
    assert "<form" not in page.text

    assert gateway.call(CLOSE, {"out_trade_no": "T1"}).body["code"] == "10000"  # already closed: success


def test_the_cashier_refuses_to_pay_a_trade_closed_while_its_page_was_open(caller, merchant_key, gateway):
    page = open_tradepay(caller, order_str(merchant_key, biz=_biz("T1", "2.00")))
    gateway.call(CLOSE, {"out_trade_no": "T1"})
    refused = press(caller, page)
    assert refused.status_code == 400
    assert "ORDER_STATUS_INVALID" in refused.text
    assert ClassicOrder.objects.get().status == "CLOSED"
    assert not Balance.objects.filter(client__isnull=False).exists()


def test_close_of_a_paid_or_unknown_trade_is_refused(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    assert_failure(gateway.call(CLOSE, {"out_trade_no": "T1"}), "ACQ.TRADE_STATUS_ERROR")
    assert_failure(gateway.call(CLOSE, {"out_trade_no": "T404"}), "ACQ.TRADE_NOT_EXIST")
    assert ClassicOrder.objects.get().status == "SUCCESS"


def test_a_trade_past_its_time_expire_is_closed(caller, merchant_key, gateway):
    trade(caller, merchant_key, pay=False, time_expire="2020-01-01 00:00:00")
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["trade_status"] == "TRADE_CLOSED"
    page = open_tradepay(caller, order_str(merchant_key, biz=_biz("T1", "2.00", time_expire="2020-01-01 00:00:00")))
    assert "This order is closed." in page.text


# --- the gateway itself --------------------------------------------------------------------------


def test_a_bad_signature_is_invalid_signature_and_nothing_happens(caller, merchant_key, gateway, wallet_public_pem):
    trade(caller, merchant_key, pay=False)
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reply = gateway.call(CLOSE, {"out_trade_no": "T1"}, key=intruder)
    assert_failure(reply, "isv.invalid-signature", code="40002")
    assert reply.body["msg"] == "Invalid Arguments"
    assert reply.signed_by(wallet_public_pem)
    assert ClassicOrder.objects.get().status == "PROCESSING"


def test_a_tampered_parameter_is_a_bad_signature(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    params = gateway.params(REFUND, {"out_trade_no": "T1", "refund_amount": "0.01"})
    params["biz_content"] = params["biz_content"].replace("0.01", "2.00")
    reply = caller.http.post(caller.base_url + "/sandbox/gateway.do", data=params)
    assert json.loads(reply.text)["alipay_trade_refund_response"]["sub_code"] == "isv.invalid-signature"
    assert not ClassicRefund.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "sub_code"),
    [
        ({"app_id": "2021999"}, "isv.invalid-app-id"),
        ({"sign_type": "RSA"}, "isv.invalid-signature-type"),
        ({"biz_content": "not json"}, "isv.invalid-parameter"),
    ],
)
def test_unacceptable_requests_are_invalid_arguments(gateway, overrides, sub_code):
    assert_failure(gateway.call(QUERY, {"out_trade_no": "T1"}, **overrides), sub_code, code="40002")


def test_an_unknown_method_is_an_error_response(gateway, wallet_public_pem):
    reply = gateway.call("alipay.trade.app.pay", {"out_trade_no": "T1"})
    assert "error_response" in json.loads(reply.raw)
    assert_failure(reply, "isv.invalid-method", code="40002")
    assert reply.signed_by(wallet_public_pem)


def test_only_get_and_post(caller):
    assert caller.http.put(caller.base_url + "/sandbox/gateway.do").status_code == 405


# --- faults --------------------------------------------------------------------------------------


def test_http_500_answers_without_processing(caller, merchant_key, gateway, wallet_public_pem):
    trade(caller, merchant_key, pay=False)
    reply = gateway.call(CLOSE, {"out_trade_no": "T1"}, faults="http_500")
    assert reply.status_code == 500
    assert (reply.body["code"], reply.body["sub_code"]) == ("20000", "aop.ACQ.SYSTEM_ERROR")
    assert reply.signed_by(wallet_public_pem)
    assert ClassicOrder.objects.get().status == "PROCESSING"


def test_result_u_processes_then_answers_system_error(caller, merchant_key, gateway):
    trade(caller, merchant_key)
    biz = {"out_trade_no": "T1", "refund_amount": "0.50", "out_request_no": "R1"}
    reply = gateway.call(REFUND, biz, faults="result_u")
    assert reply.body == {
        "code": "20000",
        "msg": "Service Currently Unavailable",
        "sub_code": "aop.ACQ.SYSTEM_ERROR",
        "sub_msg": reply.body["sub_msg"],
    }
    assert balances() == (ALICE_START - 150, 150)
    assert gateway.call(REFUND, biz).body["fund_change"] == "N"


def test_drop_response_processes_and_answers_502_with_nothing(caller, merchant_key, gateway):
    trade(caller, merchant_key, pay=False)
    reply = gateway.call(CLOSE, {"out_trade_no": "T1"}, faults="drop_response")
    assert (reply.status_code, reply.raw) == (502, "")
    assert ClassicOrder.objects.get().status == "CLOSED"


def test_latency_delays_the_answer_after_processing(caller, merchant_key, gateway):
    trade(caller, merchant_key, pay=False)
    started = time.monotonic()
    reply = gateway.call(CLOSE, {"out_trade_no": "T1"}, faults="latency=150")
    assert time.monotonic() - started >= 0.15
    assert reply.body["code"] == "10000"


def test_bad_signature_fault_corrupts_the_answer_signature(gateway, wallet_public_pem):
    reply = gateway.call(QUERY, {"out_trade_no": "T1"}, faults="bad_signature")
    assert reply.body["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    assert not reply.signed_by(wallet_public_pem)


def test_client_faults_apply_and_a_header_switches_one_off(merchant, gateway):
    merchant.faults = {"result_u": True}
    merchant.save()
    assert gateway.call(QUERY, {"out_trade_no": "T1"}).body["code"] == "20000"
    assert gateway.call(QUERY, {"out_trade_no": "T1"}, faults="result_u=off").body["code"] == "40004"


def test_a_malformed_fault_header_is_invalid_parameter(gateway):
    assert_failure(gateway.call(QUERY, {"out_trade_no": "T1"}, faults="bogus"), "isv.invalid-parameter", "40002")


def test_faults_come_after_authentication(merchant_key, gateway):
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reply = gateway.call(QUERY, {"out_trade_no": "T1"}, faults="http_500", key=intruder)
    assert_failure(reply, "isv.invalid-signature", code="40002")


# --- currencies ----------------------------------------------------------------------------------


def test_a_usd_order_str_is_paid_refunded_and_notified_in_usd(caller, merchant_key, gateway, receiver):
    receiver.default = (200, "success")
    biz = _biz("T1", "12.50", trans_currency="USD")
    page = open_tradepay(caller, order_str(merchant_key, biz=biz, notify_url=receiver.url()))
    assert "USD 12.50" in page.text
    assert "USD 1,000,000.00" in page.text
    press(caller, page)
    assert balances("USD") == (ALICE_START - 1250, 1250)
    assert not Balance.objects.filter(currency="CNY").exists()

    notification = receiver.wait_for(1)[0].form
    join_notifiers()
    assert (notification["trans_currency"], notification["total_amount"]) == ("USD", "12.50")

    query = gateway.call(QUERY, {"out_trade_no": "T1"})
    assert (query.body["trans_currency"], query.body["total_amount"]) == ("USD", "12.50")
    refund = gateway.call(REFUND, {"out_trade_no": "T1", "refund_amount": "2.50", "refund_currency": "USD"})
    assert (refund.body["refund_currency"], refund.body["refund_fee"]) == ("USD", "2.50")
    assert balances("USD") == (ALICE_START - 1000, 1000)
    found = gateway.call(REFUND_QUERY, {"out_trade_no": "T1", "out_request_no": "T1"})
    assert (found.body["refund_currency"], found.body["refund_amount"]) == ("USD", "2.50")


@pytest.mark.parametrize("currency", ["JPY", "KWD", "BRL", "usd", ""])
def test_only_supported_two_decimal_currencies_are_accepted(caller, merchant_key, currency):
    biz = _biz("T1", "12.50", trans_currency=currency) if currency else {**_biz("T1", "12.50"), "trans_currency": 5}
    page = open_tradepay(caller, order_str(merchant_key, biz=biz))
    assert page.status_code == 400
    assert "isv.invalid-parameter" in page.text
    assert not ClassicOrder.objects.exists()


# --- hostile input -------------------------------------------------------------------------------

HOSTILE_VALUES = [None, 0, 1e308, True, [], {}, "x" * 5000, "a\u0000b", "9" * 30, "1.00"]
FIELDS = ["out_trade_no", "trade_no", "refund_amount", "refund_currency", "out_request_no", "refund_reason"]


def test_hostile_biz_content_never_produces_a_500(merchant, merchant_key):
    client = Client()
    gateway = Gateway(None, merchant_key)
    for method in (QUERY, REFUND, REFUND_QUERY, CLOSE):
        for value in HOSTILE_VALUES:
            params = gateway.params(method, dict.fromkeys(FIELDS, value))
            response = client.post("/sandbox/gateway.do", params)
            assert response.status_code == 200, (method, value, response.content[:300])
            assert json.loads(response.content)[method.replace(".", "_") + "_response"]["code"] != "10000"


def _biz(out_trade_no: str, total: str, **extra) -> dict:
    return {"out_trade_no": out_trade_no, "total_amount": total, "subject": "Iced latte", **extra}
