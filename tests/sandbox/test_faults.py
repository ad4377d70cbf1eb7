"""Fault injection (README "Faults"): per request with X-Sandbox-Faults, or per client; each one here."""

import datetime as dt
import time

import httpx
import pytest
import time_machine
from django.utils import timezone

from apps.sandbox import services
from apps.sandbox.models import Balance, Notification, Payment, Refund
from tests.sandbox.conftest import (
    CLIENT_ID,
    cashier_submit,
    join_notifiers,
    pay_at_cashier,
    pay_body,
    verifies,
)


def faults(value: str) -> dict:
    return {"headers": {"X-Sandbox-Faults": value}}


@pytest.mark.parametrize("header", ["bogus", "latency=abc", "latency=999999", "http_500=maybe", "result_u=3"])
def test_a_malformed_fault_header_is_param_illegal(caller, header):
    answer = caller.post("payments/pay", pay_body(), **faults(header))
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert "X-Sandbox-Faults" in answer.result["resultMessage"]
    assert not Payment.objects.exists()


def test_latency_delays_the_answer(caller):
    started = time.monotonic()
    answer = caller.post("payments/pay", pay_body(), **faults("latency=150"))
    assert time.monotonic() - started >= 0.15
    assert answer.result["resultCode"] == "ACCEPT"


def test_latency_outlasting_the_caller_still_leaves_the_payment_made(caller):
    """The wallet acts first and answers late: a caller that times out meets an unknown outcome, not nothing."""
    with pytest.raises(httpx.ReadTimeout):
        caller.post("payments/pay", pay_body(), headers={"X-Sandbox-Faults": "latency=600"}, timeout=0.2)
    assert Payment.objects.get().payment_request_id == "pr_0001"


def test_http_500_answers_without_processing(caller, wallet_public_pem):
    answer = caller.post("payments/pay", pay_body(), **faults("http_500"))
    assert answer.status_code == 500
    assert answer.result["resultStatus"] == "U"
    assert answer.signed_by(wallet_public_pem)
    assert not Payment.objects.exists()


def test_result_u_processes_then_answers_unknown(caller):
    answer = caller.post("payments/pay", pay_body(), **faults("result_u"))
    assert answer.result == {
        "resultCode": "UNKNOWN_EXCEPTION",
        "resultStatus": "U",
        "resultMessage": answer.result["resultMessage"],
    }
    inquiry = caller.post("payments/inquiryPayment", {"paymentRequestId": "pr_0001"})
    assert inquiry.json["paymentStatus"] == "PROCESSING"
    retry = caller.post("payments/pay", pay_body())
    assert retry.result["resultCode"] == "ACCEPT"
    assert retry.json["paymentId"] == inquiry.json["paymentId"]


def test_result_u_leaves_a_refund_in_process_until_inquired(caller):
    payment_id = pay_at_cashier(caller, pay_body())
    body = {"refundRequestId": "rf_u", "paymentId": payment_id, "refundAmount": {"currency": "USD", "value": "300"}}
    answer = caller.post("payments/refund", body, **faults("result_u"))
    assert (answer.result["resultCode"], answer.result["resultStatus"]) == ("REFUND_IN_PROCESS", "U")
    assert Refund.objects.get().status == "PROCESSING"
    assert Balance.objects.get(client__client_id=CLIENT_ID).amount == 1000
    retry = caller.post("payments/refund", body)
    assert retry.result["resultCode"] == "REFUND_IN_PROCESS"
    over = caller.post(
        "payments/refund", {**body, "refundRequestId": "rf_2", "refundAmount": {"currency": "USD", "value": "701"}}
    )
    assert over.result["resultCode"] == "REFUND_AMOUNT_EXCEED"

    inquiry = caller.post("payments/inquiryRefund", {"refundRequestId": "rf_u"})
    assert inquiry.json["refundStatus"] == "SUCCESS"
    assert Balance.objects.get(client__client_id=CLIENT_ID).amount == 700
    final = caller.post("payments/refund", body)
    assert final.result["resultCode"] == "SUCCESS"
    assert final.json["refundId"] == inquiry.json["refundId"]


def test_drop_response_processes_and_answers_502_with_nothing(caller):
    answer = caller.post("payments/pay", pay_body(), **faults("drop_response"))
    assert answer.status_code == 502
    assert answer.response.content == b""
    assert "signature" not in answer.response.headers
    payment = Payment.objects.get()
    retry = caller.post("payments/pay", pay_body())
    assert retry.json["paymentId"] == payment.payment_id


def test_bad_signature_corrupts_the_response_signature(caller, wallet_public_pem):
    answer = caller.post("payments/pay", pay_body(), **faults("bad_signature"))
    assert answer.result["resultCode"] == "ACCEPT"
    assert "signature=" in answer.response.headers["signature"]
    assert not answer.signed_by(wallet_public_pem)


def test_client_faults_apply_to_every_call_and_a_header_can_switch_one_off(caller, merchant):
    merchant.faults = {"result_u": True}
    merchant.save()
    assert caller.post("payments/pay", pay_body()).result["resultStatus"] == "U"
    answer = caller.post("payments/pay", pay_body("pr_2"), **faults("result_u=off"))
    assert answer.result["resultStatus"] == "A"


def test_bad_signature_on_notifications(caller, receiver, wallet_public_pem):
    pay_at_cashier(caller, pay_body(paymentNotifyUrl=receiver.url()), **faults("bad_signature"))
    notification = receiver.wait_for(1)[0]
    headers = notification.headers
    assert not verifies(
        wallet_public_pem,
        "POST",
        "/notify",
        CLIENT_ID,
        headers["Request-Time"],
        notification.body,
        headers["Signature"],
    )


def test_duplicate_notify_delivers_every_notification_twice(caller, receiver):
    pay_at_cashier(caller, pay_body(paymentNotifyUrl=receiver.url()), **faults("duplicate_notify"))
    first, second = receiver.wait_for(2)
    join_notifiers()
    assert first.json == second.json
    assert list(Notification.objects.values_list("status", flat=True)) == ["DELIVERED", "DELIVERED"]


def test_the_payment_remembers_its_faults_for_its_notifications(caller, receiver, merchant):
    merchant.faults = {"duplicate_notify": True}
    merchant.save()
    answer = caller.post("payments/pay", pay_body(paymentNotifyUrl=receiver.url()))
    merchant.faults = {}
    merchant.save()
    cashier_submit(caller.http, answer.json["redirectActionForm"]["redirectionUrl"])
    assert len(receiver.wait_for(2)) == 2


def test_out_of_order_notify_holds_a_notification_until_a_later_one_is_sent(caller, receiver):
    pay_at_cashier(caller, pay_body("pr_first", paymentNotifyUrl=receiver.url()), **faults("out_of_order_notify"))
    join_notifiers()
    assert receiver.received == []
    assert Notification.objects.get().held
    pay_at_cashier(caller, pay_body("pr_second", paymentNotifyUrl=receiver.url()))
    received = receiver.wait_for(2)
    assert [r.json["paymentRequestId"] for r in received] == ["pr_second", "pr_first"]


def test_out_of_order_notify_never_holds_forever(caller, receiver):
    pay_at_cashier(caller, pay_body(paymentNotifyUrl=receiver.url()), **faults("out_of_order_notify"))
    join_notifiers()
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=299)):
        assert services.deliver_due_notifications() == 0
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=301)):
        assert services.deliver_due_notifications() == 1
    assert len(receiver.received) == 1


def test_late_notify_delays_the_first_delivery(caller, receiver):
    pay_at_cashier(caller, pay_body(paymentNotifyUrl=receiver.url()), **faults("late_notify=30"))
    join_notifiers()
    assert receiver.received == []
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=29)):
        assert services.deliver_due_notifications() == 0
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=31)):
        assert services.deliver_due_notifications() == 1
    assert len(receiver.received) == 1


def test_latency_also_slows_the_cashier(caller):
    answer = caller.post("payments/pay", pay_body(), **faults("latency=120"))
    started = time.monotonic()
    cashier_submit(caller.http, answer.json["redirectActionForm"]["redirectionUrl"])
    assert time.monotonic() - started >= 0.12
