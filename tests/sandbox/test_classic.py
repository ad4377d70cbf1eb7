"""Classic orderStr (§8): tradepay verifies the RSA2 orderStr, shows the cashier or the pre-authorisation
page, and sends the form-encoded async notification, signed without sign and sign_type."""

import json
import urllib.parse

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.sandbox.models import Balance, ClassicOrder, Notification
from tests.sandbox.conftest import (
    ALICE_START,
    CLASSIC_APP_ID,
    CSRF_FIELD,
    classic_params,
    join_notifiers,
    rsa2_verifies,
)

TRADE = "alipay.trade.app.pay"
FREEZE = "alipay.fund.auth.order.app.freeze"


def order_str(private_key, method=TRADE, biz=None, notify_url="", **overrides) -> str:
    """Built like python-alipay-sdk's ``client_api``: sorted pairs, values URL-encoded, ``sign`` appended."""
    biz = biz or {"out_trade_no": "T1", "total_amount": "0.02", "subject": "Iced latte"}
    params = classic_params(private_key, method, biz, notify_url=notify_url, **overrides)
    sign = params.pop("sign")
    encoded = "&".join(f"{key}={urllib.parse.quote_plus(value)}" for key, value in sorted(params.items()))
    return f"{encoded}&sign={urllib.parse.quote_plus(sign)}"


def open_tradepay(caller, value: str):
    return caller.http.get(caller.base_url + "/sandbox/tradepay", params={"orderStr": value})


def form_action(page) -> str:
    return page.text.split('action="')[1].split('"')[0]


def press(caller, page, action="pay", user="alice"):
    token = CSRF_FIELD.search(page.text).group(1)
    return caller.http.post(
        caller.base_url + form_action(page), data={"csrfmiddlewaretoken": token, "action": action, "user": user}
    )


def classic_verifies(public_pem_text, params) -> bool:
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type"))
    return rsa2_verifies(public_pem_text, params["sign"], text)


def test_trade_shows_the_cashier_pays_and_notifies(caller, merchant_key, receiver, wallet_public_pem):
    receiver.default = (200, "success")
    page = open_tradepay(caller, order_str(merchant_key, notify_url=receiver.url("/alipay/notify")))
    assert page.status_code == 200
    assert "CNY 0.02" in page.text
    assert "Iced latte" in page.text
    assert "Demo Coffee" in page.text
    assert ">Pay</button>" in page.text

    done = press(caller, page)
    assert '<strong id="result-code">9000</strong>' in done.text
    order = ClassicOrder.objects.get()
    assert (order.status, order.amount, order.currency) == ("SUCCESS", 2, "CNY")
    assert Balance.objects.get(user__login="alice", currency="CNY").amount == ALICE_START - 2
    assert Balance.objects.get(client__isnull=False, currency="CNY").amount == 2

    notification = receiver.wait_for(1)[0]
    join_notifiers()
    assert notification.path == "/alipay/notify"
    assert notification.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    params = notification.form
    assert classic_verifies(wallet_public_pem, params)
    assert {key: params[key] for key in ("notify_type", "out_trade_no", "total_amount", "trade_status")} == {
        "notify_type": "trade_status_sync",
        "out_trade_no": "T1",
        "total_amount": "0.02",
        "trade_status": "TRADE_SUCCESS",
    }
    assert params["trade_no"] == order.wallet_no
    assert params["buyer_id"] == "2188000000000001"
    assert (params["app_id"], params["sign_type"], params["version"]) == (CLASSIC_APP_ID, "RSA2", "1.0")
    for field in ("gmt_payment", "notify_id", "notify_time", "charset"):
        assert params[field]
    assert Notification.objects.get().status == "DELIVERED"


def test_freeze_shows_the_pre_authorisation_page_and_notifies(caller, merchant_key, receiver, wallet_public_pem):
    receiver.default = (200, "success")
    biz = {
        "out_order_no": "ZM1",
        "out_request_no": "ZMR1",
        "order_title": "Charger deposit",
        "amount": "99.50",
        "product_code": "PRE_AUTH_ONLINE",
        "payee_user_id": "2088202224929664",
        "pay_timeout": "2d",
    }
    page = open_tradepay(caller, order_str(merchant_key, FREEZE, biz, notify_url=receiver.url()))
    assert "pre-authorisation" in page.text.lower()
    assert "CNY 99.50" in page.text
    assert ">Authorise</button>" in page.text
    press(caller, page)
    params = receiver.wait_for(1)[0].form
    assert classic_verifies(wallet_public_pem, params)
    order = ClassicOrder.objects.get()
    assert {key: params[key] for key in ("notify_type", "auth_no", "out_order_no", "out_request_no", "amount")} == {
        "notify_type": "fund_auth_freeze",
        "auth_no": order.wallet_no,
        "out_order_no": "ZM1",
        "out_request_no": "ZMR1",
        "amount": "99.50",
    }
    assert params["status"] == "SUCCESS"
    assert params["operation_id"] == order.operation_id
    assert params["payer_user_id"] == "2188000000000001"
    assert params["gmt_trans"]
    assert Balance.objects.get(user__login="alice", currency="CNY").amount == ALICE_START - 9950
    assert not Balance.objects.filter(client__isnull=False).exists()


def test_a_bad_signature_shows_an_error_page_never_a_cashier(caller, merchant_key):
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    page = open_tradepay(caller, order_str(intruder))
    assert page.status_code == 400
    assert "isv.invalid-signature" in page.text
    assert "<form" not in page.text
    assert not ClassicOrder.objects.exists()


def test_a_tampered_amount_is_a_bad_signature(caller, merchant_key):
    value = order_str(merchant_key).replace("0.02", "0.01")
    assert open_tradepay(caller, value).status_code == 400


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"app_id": "2021999"}, "isv.invalid-app-id"),
        ({"sign_type": "RSA"}, "isv.invalid-signature-type"),
        ({"method": "alipay.trade.refund"}, "isv.invalid-method"),
        ({"biz_content": "not json"}, "isv.invalid-parameter"),
        (
            {"biz_content": json.dumps({"out_trade_no": "T1", "total_amount": "0.001", "subject": "x"})},
            "isv.invalid-parameter",
        ),
        (
            {"biz_content": json.dumps({"out_trade_no": "T1", "total_amount": "0", "subject": "x"})},
            "isv.invalid-parameter",
        ),
        ({"biz_content": json.dumps({"total_amount": "1.00", "subject": "x"})}, "isv.invalid-parameter"),
        (
            {
                "method": FREEZE,
                "biz_content": json.dumps(
                    {"out_order_no": "Z", "out_request_no": "R", "order_title": "t", "amount": "1"}
                ),
            },
            "isv.invalid-parameter",
        ),
    ],
)
def test_unacceptable_order_strings(caller, merchant_key, overrides, code):
    page = open_tradepay(caller, order_str(merchant_key, **overrides))
    assert page.status_code == 400
    assert code in page.text
    assert not ClassicOrder.objects.exists()


def test_missing_order_str(caller):
    assert caller.http.get(caller.base_url + "/sandbox/tradepay").status_code == 400


def test_reopening_finds_the_same_order_and_altered_content_is_refused(caller, merchant_key):
    first = open_tradepay(caller, order_str(merchant_key))
    again = open_tradepay(caller, order_str(merchant_key))
    assert form_action(first) == form_action(again)
    altered = open_tradepay(
        caller, order_str(merchant_key, biz={"out_trade_no": "T1", "total_amount": "5.00", "subject": "x"})
    )
    assert altered.status_code == 400
    assert "REPEAT_REQ_INCONSISTENT" in altered.text
    assert ClassicOrder.objects.count() == 1


def test_cancel_shows_6001_and_the_order_stays_payable(caller, merchant_key):
    page = open_tradepay(caller, order_str(merchant_key))
    assert '<strong id="result-code">6001</strong>' in press(caller, page, "cancel").text
    assert ClassicOrder.objects.get().status == "PROCESSING"
    press(caller, open_tradepay(caller, order_str(merchant_key)))
    paid = open_tradepay(caller, order_str(merchant_key))
    assert "has been paid" in paid.text
    assert "<form" not in paid.text


def test_insufficient_balance_stays_on_the_cashier(caller, merchant_key):
    page = open_tradepay(
        caller, order_str(merchant_key, biz={"out_trade_no": "T9", "total_amount": "5.01", "subject": "x"})
    )
    response = press(caller, page, user="bob")
    assert response.status_code == 400
    assert "USER_BALANCE_NOT_ENOUGH" in response.text
    assert ClassicOrder.objects.get().status == "PROCESSING"


def test_only_success_acknowledges_a_classic_notification(caller, merchant_key, receiver):
    receiver.default = (200, "fail")
    press(caller, open_tradepay(caller, order_str(merchant_key, notify_url=receiver.url())))
    receiver.wait_for(1)
    join_notifiers()
    notification = Notification.objects.get()
    assert (notification.status, notification.attempt_count) == ("PENDING", 1)


def test_bad_signature_fault_corrupts_the_classic_notification(
    caller, merchant, merchant_key, receiver, wallet_public_pem
):
    merchant.faults = {"bad_signature": True}
    merchant.save()
    press(caller, open_tradepay(caller, order_str(merchant_key, notify_url=receiver.url())))
    assert not classic_verifies(wallet_public_pem, receiver.wait_for(1)[0].form)


def test_an_unknown_action_changes_nothing(caller, merchant_key):
    response = press(caller, open_tradepay(caller, order_str(merchant_key)), "refund")
    assert response.status_code == 400
    assert ClassicOrder.objects.get().status == "PROCESSING"
