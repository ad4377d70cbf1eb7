"""Our classic-gateway ``orderStr`` and async-notification check (§8) against python-alipay-sdk 3.4.0.

The SDK's quirks (§10.2): ``AliPay.verify(data, sign)`` wants ``sign`` removed by the caller and pops
``sign_type`` itself, which is the notification rule. An orderStr's signature covers ``sign_type``, so the
SDK checks an orderStr with its own ``sign_data`` rule (``_verify`` over the text ``sign_data`` would sign),
and the public ``verify`` cannot check one: asserted below, so a change in either is noticed.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest

from apps.superapps.client.orderstr import build_order_str, verify_notification, verify_order_str

APP_ID = "2021004100000001"
COMMON = {
    "app_id": APP_ID,
    "format": "JSON",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2026-11-22 11:23:17",
    "version": "1.0",
    "notify_url": "https://isv.example/alipay/notify?tenant=a&x=1",
}
FREEZE_BIZ = {
    "out_order_no": "ZM20261122000001",
    "out_request_no": "ZMR20261122000001",
    "order_title": "押金 Deposit · power bank",
    "amount": "99.00",
    "product_code": "PRE_AUTH_ONLINE",
    "payee_user_id": "2088202224929664",
    "pay_timeout": "2d",
    "extra_param": json.dumps({"category": "RENT_POWERBANK", "serviceId": "2020042800000000000001"}),
}
APP_PAY_BIZ = {
    "out_trade_no": "T20261122000001",
    "total_amount": "12.34",
    "subject": "咖啡 Coffee & cake",
    "product_code": "QUICK_MSECURITY_PAY",
    "timeout_express": "30m",
}
ORDERS = {
    "alipay.fund.auth.order.app.freeze": FREEZE_BIZ,
    "alipay.trade.app.pay": APP_PAY_BIZ,
}


def order_params(method: str) -> dict[str, str]:
    biz_content = json.dumps(ORDERS[method], ensure_ascii=False, separators=(",", ":"))
    return {**COMMON, "method": method, "biz_content": biz_content}


def sdk_keys(private, public) -> dict[str, str]:
    """python-alipay-sdk keys: the app's PKCS#1 private PEM and the counterpart's public PEM."""
    return {"app_id": APP_ID, "private_key": private.private_pkcs1_pem, "public_key": public.public_pem}


def tamper_amount(order_str: str, old: str, new: str) -> str:
    params = urllib.parse.parse_qsl(order_str, keep_blank_values=True)
    changed = [(key, value.replace(old, new) if key == "biz_content" else value) for key, value in params]
    assert changed != params
    return urllib.parse.urlencode(changed)


# --- our orderStr, checked by the SDK -----------------------------------------------------------------


@pytest.mark.parametrize("method", ORDERS)
def test_our_order_str_verifies_with_python_alipay_sdk(peer, merchant_keys, wallet_keys, method):
    order_str = build_order_str(merchant_keys.private_key, order_params(method))

    result = peer("alipay-verify-orderstr", {**sdk_keys(wallet_keys, merchant_keys), "order_str": order_str})

    assert result["valid"] is True
    # The SDK's public verify() drops sign_type (the notification rule), so no orderStr passes it.
    assert result["verify_api"] is False


@pytest.mark.parametrize("method", ORDERS)
def test_our_order_str_is_what_python_alipay_sdk_makes_of_the_same_parameters(peer, merchant_keys, method):
    params = order_params(method)

    ours = build_order_str(merchant_keys.private_key, params)
    sdks = peer("alipay-sign-data", {**sdk_keys(merchant_keys, merchant_keys), "params": params})

    assert ours == sdks["order_str"]
    assert "&sign_type=RSA2&" in ours
    biz_content = json.loads(dict(urllib.parse.parse_qsl(ours))["biz_content"])
    assert biz_content == ORDERS[method]


def test_python_alipay_sdk_rejects_our_order_str_with_a_changed_amount(peer, merchant_keys, wallet_keys):
    order_str = build_order_str(merchant_keys.private_key, order_params("alipay.fund.auth.order.app.freeze"))
    tampered = tamper_amount(order_str, '"amount":"99.00"', '"amount":"9.00"')

    result = peer("alipay-verify-orderstr", {**sdk_keys(wallet_keys, merchant_keys), "order_str": tampered})

    assert result["valid"] is False


# --- the SDK's orderStr, checked by ours --------------------------------------------------------------


def sdk_order_str(peer, keys, method: str, *, sign_type: str = "RSA2") -> str:
    return peer(
        "alipay-client-api",
        {
            **sdk_keys(keys, keys),
            "sign_type": sign_type,
            "api_name": method,
            "biz_content": ORDERS[method],
            "params": {"notify_url": COMMON["notify_url"], "format": "JSON"},
        },
    )["order_str"]


@pytest.mark.parametrize("method", ORDERS)
def test_python_alipay_sdk_order_str_verifies_with_ours(peer, merchant_keys, method):
    order_str = sdk_order_str(peer, merchant_keys, method)

    assert f"method={method}" in order_str
    assert verify_order_str(merchant_keys.public_key, order_str) is True


def test_our_order_str_verifier_rejects_a_changed_amount_and_the_wrong_key(peer, merchant_keys, other_keys):
    order_str = sdk_order_str(peer, merchant_keys, "alipay.trade.app.pay")
    tampered = tamper_amount(order_str, '"total_amount":"12.34"', '"total_amount":"1.34"')

    assert verify_order_str(merchant_keys.public_key, order_str) is True
    assert verify_order_str(merchant_keys.public_key, tampered) is False
    assert verify_order_str(other_keys.public_key, order_str) is False


def test_our_order_str_verifier_refuses_rsa_sha1_which_the_sdk_still_signs(peer, merchant_keys):
    order_str = sdk_order_str(peer, merchant_keys, "alipay.trade.app.pay", sign_type="RSA")

    sdk = peer(
        "alipay-verify-orderstr", {**sdk_keys(merchant_keys, merchant_keys), "sign_type": "RSA", "order_str": order_str}
    )

    assert "sign_type=RSA&" in order_str
    assert sdk["valid"] is True
    assert verify_order_str(merchant_keys.public_key, order_str) is False


# --- async notifications signed on the SDK side -------------------------------------------------------

NOTIFICATION = {
    "notify_id": "2026112200222112300000000001",
    "notify_type": "fund_auth_freeze",
    "notify_time": "2026-11-22 11:30:00",
    "app_id": APP_ID,
    "charset": "utf-8",
    "version": "1.0",
    "sign_type": "RSA2",
    "auth_no": "2026112210002001770000000001",
    "operation_id": "20261122300000000001",
    "out_order_no": "ZM20261122000001",
    "out_request_no": "ZMR20261122000001",
    "operation_type": "FREEZE",
    "amount": "99.00",
    "total_freeze_amount": "99.00",
    "status": "SUCCESS",
    "payer_user_id": "2088102000000001",
    "order_title": "押金 Deposit · power bank",
    "gmt_trans": "2026-11-22 11:29:58",
    "passback_params": "",
}


def sdk_signed_notification(peer, wallet_keys, *, sign_type: str = "RSA2") -> dict[str, str]:
    return peer(
        "alipay-sign-notification",
        {
            **sdk_keys(wallet_keys, wallet_keys),
            "sign_type": sign_type,
            "params": {**NOTIFICATION, "sign_type": sign_type},
        },
    )


def as_received(params: dict[str, str]) -> dict[str, str]:
    """The notification as a view sees it: form-encoded on the wire, decoded again."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlencode(params), keep_blank_values=True))


def test_sdk_signed_notification_verifies_with_ours(peer, wallet_keys):
    notification = sdk_signed_notification(peer, wallet_keys)

    assert peer("alipay-verify-notification", {**sdk_keys(wallet_keys, wallet_keys), "params": notification}) == {
        "valid": True
    }
    assert verify_notification(wallet_keys.public_key, as_received(notification)) is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "990.00"), ("total_freeze_amount", "99.01"), ("status", "CLOSED"), ("passback_params", "x")],
)
def test_our_notification_verifier_rejects_a_changed_field(peer, wallet_keys, field, value):
    notification = sdk_signed_notification(peer, wallet_keys)
    tampered = {**notification, field: value}

    assert verify_notification(wallet_keys.public_key, as_received(notification)) is True
    assert verify_notification(wallet_keys.public_key, as_received(tampered)) is False
    # ... and the SDK agrees.
    sdk = peer("alipay-verify-notification", {**sdk_keys(wallet_keys, wallet_keys), "params": tampered})
    assert sdk == {"valid": False}


def test_our_notification_verifier_rejects_the_wrong_key_and_rsa_sha1(peer, wallet_keys, other_keys):
    notification = sdk_signed_notification(peer, wallet_keys)
    sha1 = sdk_signed_notification(peer, wallet_keys, sign_type="RSA")

    assert verify_notification(wallet_keys.public_key, notification) is True
    assert verify_notification(other_keys.public_key, notification) is False
    assert verify_notification(wallet_keys.public_key, sha1) is False
    # sign_type is not signed: relabelled RSA2, the SHA-1 signature must still be refused.
    assert verify_notification(wallet_keys.public_key, {**sha1, "sign_type": "RSA2"}) is False
    sdk = peer("alipay-verify-notification", {**sdk_keys(wallet_keys, wallet_keys), "sign_type": "RSA", "params": sha1})
    assert sdk == {"valid": True}
