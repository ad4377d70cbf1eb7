"""pay, inquiryPayment, cancel, refund and inquiryRefund over HTTP (§4.1-§4.6), with §5 idempotency."""

import pytest

from apps.sandbox.models import Balance, Payment, Refund
from tests.sandbox.conftest import ALICE_START, PARTNER_ID, pay_at_cashier, pay_body


def v1_pay_body(request_id="pr_v1", value="1000", **extra):
    return {
        "partnerId": PARTNER_ID,
        "paymentOrderTitle": "SHOES",
        "paymentRequestId": request_id,
        "paymentAmount": {"currency": "MYR", "value": value},
        "paymentFactor": {"isCashierPayment": True},
        "extendInfo": '{"customerBelongsTo":"TNG"}',
        **extra,
    }


def merchant_balance(currency="USD"):
    row = Balance.objects.filter(client__isnull=False, currency=currency).first()
    return row.amount if row else 0


def alice_balance(currency="USD"):
    return Balance.objects.get(user__login="alice", currency=currency).amount


def test_v2_pay_accepts_and_points_at_the_cashier(caller, live_server):
    answer = caller.post("payments/pay", pay_body())
    assert answer.result == {"resultCode": "ACCEPT", "resultStatus": "A", "resultMessage": "accept"}
    payment = Payment.objects.get()
    assert answer.json["paymentId"] == payment.payment_id
    assert answer.json["redirectActionForm"] == {
        "method": "POST",
        "redirectionUrl": f"{live_server.url}/sandbox/cashier/{payment.payment_id}",
    }
    assert (payment.currency, payment.amount, payment.product_code) == ("USD", 1000, "CASHIER_PAYMENT")
    assert payment.payee_name == "Demo Coffee Kiosk"


def test_cashier_links_use_the_configured_base_url(caller, settings):
    settings.SANDBOX_BASE_URL = "https://wallet.example/"
    answer = caller.post("payments/pay", pay_body())
    assert answer.json["redirectActionForm"]["redirectionUrl"] == (
        f"https://wallet.example/sandbox/cashier/{answer.json['paymentId']}"
    )


def test_v2_pay_defaults_product_code_and_payee(caller):
    body = pay_body()
    del body["productCode"], body["order"]
    assert caller.post("payments/pay", body).result["resultStatus"] == "A"
    payment = Payment.objects.get()
    assert (payment.product_code, payment.payee_name) == ("CASHIER_PAYMENT", "Demo Coffee")


def test_v1_pay_answers_with_an_action_form(caller, live_server):
    answer = caller.post("payments/pay", v1_pay_body(), version="v1")
    payment = Payment.objects.get()
    assert answer.result["resultCode"] == "ACCEPT"
    assert answer.json["actionForm"] == {
        "actionFormType": "REDIRECTION",
        "redirectionUrl": f"{live_server.url}/sandbox/cashier/{payment.payment_id}",
    }
    assert (payment.order_description, payment.partner_id, payment.dialect) == ("SHOES", PARTNER_ID, "v1")


def test_v1_pay_needs_the_clients_partner_id(caller):
    assert caller.post("payments/pay", v1_pay_body(partnerId=None), version="v1").result["resultCode"] == (
        "PARAM_ILLEGAL"
    )
    answer = caller.post("payments/pay", v1_pay_body(partnerId="P_OTHER"), version="v1")
    assert answer.result["resultCode"] == "PARTNER_NOT_EXIST"
    assert not Payment.objects.exists()


def test_ams_alias_speaks_v2_without_an_app_id(caller):
    body = pay_body()
    del body["appId"]
    answer = caller.post("payments/pay", body, version="ams/api/v1")
    assert answer.result["resultCode"] == "ACCEPT"
    assert "redirectionUrl" in answer.json["redirectActionForm"]


def test_identical_retry_gets_the_identical_body(caller):
    first = caller.post("payments/pay", pay_body())
    again = caller.post("payments/pay", pay_body())
    assert again.response.content == first.response.content
    assert Payment.objects.count() == 1


def test_same_request_id_with_other_content_is_refused(caller):
    caller.post("payments/pay", pay_body())
    answer = caller.post("payments/pay", pay_body(value="2000"))
    assert answer.result == {
        "resultCode": "REPEAT_REQ_INCONSISTENT",
        "resultStatus": "F",
        "resultMessage": answer.result["resultMessage"],
    }
    assert Payment.objects.get().amount == 1000


def test_unsupported_currency(caller, settings):
    settings.SANDBOX_CURRENCIES = ["USD"]
    answer = caller.post("payments/pay", pay_body(currency="EUR"))
    assert answer.result["resultCode"] == "CURRENCY_NOT_SUPPORT"
    assert answer.result["resultStatus"] == "F"


def test_amount_above_the_limit(caller, settings):
    settings.SANDBOX_PAYMENT_LIMIT = 5000
    assert caller.post("payments/pay", pay_body(value="5000")).result["resultCode"] == "ACCEPT"
    answer = caller.post("payments/pay", pay_body("pr_big", value="5001"))
    assert answer.result["resultCode"] == "PAYMENT_AMOUNT_EXCEED_LIMIT"
    assert Payment.objects.count() == 1


def test_inquiry_follows_the_payment_through_its_life(caller):
    payment_id = caller.post("payments/pay", pay_body()).json["paymentId"]
    processing = caller.post("payments/inquiryPayment", {"paymentId": payment_id})
    assert processing.result["resultStatus"] == "S"
    assert processing.json["paymentStatus"] == "PROCESSING"
    assert "paymentTime" not in processing.json

    pay_at_cashier(caller, pay_body())
    paid = caller.post("payments/inquiryPayment", {"paymentRequestId": "pr_0001"})
    assert paid.json["paymentStatus"] == "SUCCESS"
    assert paid.json["paymentAmount"] == {"currency": "USD", "value": "1000"}
    assert paid.json["paymentId"] == payment_id
    assert paid.json["paymentTime"].endswith("+00:00")


def test_inquiry_of_an_unknown_payment(caller):
    answer = caller.post("payments/inquiryPayment", {"paymentRequestId": "nope"})
    assert answer.result["resultCode"] == "ORDER_NOT_EXIST"
    assert answer.result["resultStatus"] == "F"


def test_inquiry_needs_an_id(caller):
    answer = caller.post("payments/inquiryPayment", {})
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert "paymentId or paymentRequestId" in answer.result["resultMessage"]


def test_v1_inquiry_needs_partner_id(caller):
    caller.post("payments/pay", v1_pay_body(), version="v1")
    assert (
        caller.post("payments/inquiryPayment", {"paymentRequestId": "pr_v1"}, version="v1").result["resultCode"]
        == "PARAM_ILLEGAL"
    )
    answer = caller.post(
        "payments/inquiryPayment", {"partnerId": PARTNER_ID, "paymentRequestId": "pr_v1"}, version="v1"
    )
    assert answer.json["paymentStatus"] == "PROCESSING"


def test_other_clients_cannot_see_a_payment(caller, merchant_key):
    from apps.sandbox import services
    from tests.sandbox.conftest import WalletCaller, public_pem

    payment_id = caller.post("payments/pay", pay_body()).json["paymentId"]
    services.client_register(client_id="OTHER", public_key=public_pem(merchant_key))
    other = WalletCaller(caller.base_url, merchant_key, client_id="OTHER")
    assert other.post("payments/inquiryPayment", {"paymentId": payment_id}).result["resultCode"] == "ORDER_NOT_EXIST"


def test_cancel_an_unpaid_payment(caller):
    payment_id = caller.post("payments/pay", pay_body()).json["paymentId"]
    answer = caller.post("payments/cancel", {"paymentId": payment_id})
    assert answer.result["resultCode"] == "SUCCESS"
    assert answer.json["cancelTime"].endswith("+00:00")
    assert caller.post("payments/inquiryPayment", {"paymentId": payment_id}).json["paymentStatus"] == "CANCELLED"
    again = caller.post("payments/cancel", {"paymentRequestId": "pr_0001"})
    assert again.result["resultCode"] == "SUCCESS"
    assert again.json["cancelTime"] == answer.json["cancelTime"]


def test_cancel_a_paid_payment_gives_the_money_back(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    assert (alice_balance(), merchant_balance()) == (ALICE_START - 1000, 1000)
    assert caller.post("payments/cancel", {"paymentId": payment_id}).result["resultCode"] == "SUCCESS"
    assert (alice_balance(), merchant_balance()) == (ALICE_START, 0)
    assert Payment.objects.get().status == "CANCELLED"


def test_cancel_after_a_refund_is_refused(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    caller.post("payments/refund", refund_body(payment_id, "rf_1", "100"))
    answer = caller.post("payments/cancel", {"paymentId": payment_id})
    assert answer.result["resultCode"] == "ORDER_STATUS_INVALID"
    assert Payment.objects.get().status == "SUCCESS"


def test_cancel_of_an_unknown_payment(caller):
    assert caller.post("payments/cancel", {"paymentId": "1"}).result["resultCode"] == "ORDER_NOT_EXIST"


def refund_body(payment_id, refund_request_id="rf_0001", value="400", currency="USD", **extra):
    return {
        "refundRequestId": refund_request_id,
        "paymentId": payment_id,
        "refundAmount": {"currency": currency, "value": value},
        "refundReason": "one cup was cold",
        **extra,
    }


def test_partial_refunds_move_money_back_up_to_the_paid_amount(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    first = caller.post("payments/refund", refund_body(payment_id, "rf_1", "400"))
    assert first.result["resultCode"] == "SUCCESS"
    assert first.json["refundId"]
    assert first.json["refundTime"].endswith("+00:00")
    assert (alice_balance(), merchant_balance()) == (ALICE_START - 600, 600)

    assert caller.post("payments/refund", refund_body(payment_id, "rf_2", "600")).result["resultCode"] == "SUCCESS"
    too_much = caller.post("payments/refund", refund_body(payment_id, "rf_3", "1"))
    assert too_much.result == {
        "resultCode": "REFUND_AMOUNT_EXCEED",
        "resultStatus": "F",
        "resultMessage": too_much.result["resultMessage"],
    }
    assert (alice_balance(), merchant_balance()) == (ALICE_START, 0)
    assert Refund.objects.count() == 2


def test_refund_retry_is_idempotent(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    first = caller.post("payments/refund", refund_body(payment_id))
    again = caller.post("payments/refund", refund_body(payment_id))
    assert again.response.content == first.response.content
    changed = caller.post("payments/refund", refund_body(payment_id, value="300"))
    assert changed.result["resultCode"] == "REPEAT_REQ_INCONSISTENT"
    assert Refund.objects.count() == 1
    assert merchant_balance() == 600


def test_refund_of_an_unpaid_payment(caller):
    payment_id = caller.post("payments/pay", pay_body()).json["paymentId"]
    assert caller.post("payments/refund", refund_body(payment_id)).result["resultCode"] == "ORDER_STATUS_INVALID"


def test_refund_in_another_currency(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    answer = caller.post("payments/refund", refund_body(payment_id, currency="EUR"))
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert answer.result["resultMessage"].startswith("refundAmount.currency")
    assert not Refund.objects.exists()


@pytest.mark.parametrize("missing", ["refundRequestId", "refundAmount"])
def test_refund_needs_its_fields(caller, missing):
    payment_id = pay_at_cashier(caller, pay_body())
    body = refund_body(payment_id)
    del body[missing]
    answer = caller.post("payments/refund", body)
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert answer.result["resultMessage"].startswith(missing)


def test_refund_of_an_unknown_payment(caller):
    assert caller.post("payments/refund", refund_body("404")).result["resultCode"] == "ORDER_NOT_EXIST"


def test_inquiry_refund(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    refund_id = caller.post("payments/refund", refund_body(payment_id)).json["refundId"]
    for lookup in ({"refundId": refund_id}, {"refundRequestId": "rf_0001"}):
        answer = caller.post("payments/inquiryRefund", lookup)
        assert answer.result["resultCode"] == "SUCCESS"
        assert answer.json["refundStatus"] == "SUCCESS"
        assert answer.json["refundAmount"] == {"currency": "USD", "value": "400"}
        assert answer.json["refundRequestId"] == "rf_0001"
        assert answer.json["refundReason"] == "one cup was cold"
    missing = caller.post("payments/inquiryRefund", {"refundRequestId": "nope"})
    assert missing.result["resultCode"] == "REFUND_NOT_EXIST"


def test_v1_refund_and_inquiry(caller):
    pay_at_cashier(caller, v1_pay_body(), version="v1")
    body = {
        "partnerId": PARTNER_ID,
        "refundRequestId": "rf_v1",
        "paymentRequestId": "pr_v1",
        "refundAmount": {"currency": "MYR", "value": "1000"},
    }
    assert caller.post("payments/refund", body, version="v1").result["resultCode"] == "SUCCESS"
    inquiry = caller.post("payments/inquiryRefund", {"partnerId": PARTNER_ID, "refundRequestId": "rf_v1"}, version="v1")
    assert inquiry.json["refundStatus"] == "SUCCESS"
