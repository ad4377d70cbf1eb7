"""The classic gateway (``gateway.do``, §8) between python-alipay-sdk 3.4.0 and us, over HTTP.

The SDK calls the sandbox wallet's ``gateway.do`` with its own request (a GET, signed by its ``sign_data``
rule) and hands back the response object only if the wallet's signature over that object's exact text
verifies, so a response back from the SDK means both signatures conformed. And the request our client sends
to ``gateway.do`` verifies under the SDK's signing rule.
"""

from __future__ import annotations

import re
import urllib.parse

import httpx
import pytest

from apps.core.money import Money
from apps.sandbox.models import ClassicOrder
from apps.superapps.client.client import WalletClient, WalletConfig
from apps.superapps.client.messages import ApiVersion, ClassicTradeStatus
from tests.conformance.conftest import SANDBOX_CLASSIC_APP_ID, SANDBOX_CLIENT_ID

pytestmark = pytest.mark.django_db(transaction=True)


def sdk_keys(merchant_keys, wallet_public_pem: str) -> dict:
    return {
        "app_id": SANDBOX_CLASSIC_APP_ID,
        "private_key": merchant_keys.private_pkcs1_pem,
        "public_key": wallet_public_pem,
    }


def sdk_call(peer, live_server, keys: dict, api: str, **kwargs) -> dict:
    return peer(
        "alipay-gateway-call",
        {**keys, "gateway_url": f"{live_server.url}/sandbox/gateway.do", "api": api, "kwargs": kwargs},
    )


def our_config(live_server, merchant_keys, sandbox_public_pem: str) -> WalletConfig:
    """Our client as the merchant registered with the sandbox, classic gateway included."""
    return WalletConfig(
        base_url=f"{live_server.url}/sandbox",
        api_version=ApiVersion.V2,
        client_id=SANDBOX_CLIENT_ID,
        private_key_pem=merchant_keys.private_pem,
        wallet_public_key_pem=sandbox_public_pem,
        classic_gateway_url=f"{live_server.url}/sandbox/gateway.do",
        classic_app_id=SANDBOX_CLASSIC_APP_ID,
    )


def paid_trade(peer, live_server, keys: dict, out_trade_no: str, total_amount: str) -> None:
    """An orderStr from the SDK's ``client_api``, opened at the sandbox cashier and paid there by alice."""
    order_str = peer(
        "alipay-client-api",
        {
            **keys,
            "api_name": "alipay.trade.app.pay",
            "biz_content": {
                "out_trade_no": out_trade_no,
                "total_amount": total_amount,
                "subject": "咖啡 Coffee",
                "product_code": "QUICK_MSECURITY_PAY",
            },
        },
    )["order_str"]
    with httpx.Client(base_url=live_server.url, timeout=10) as browser:
        page = browser.get("/sandbox/tradepay", params={"orderStr": order_str})
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        action = re.search(r'action="([^"]+)"', page.text).group(1)
        browser.post(action, data={"csrfmiddlewaretoken": token, "action": "pay", "user": "alice"})
    assert ClassicOrder.objects.get(out_no=out_trade_no).status == "SUCCESS"


def test_python_alipay_sdk_queries_and_refunds_at_the_sandbox_gateway(
    peer, live_server, merchant_keys, sandbox_public_pem
):
    keys = sdk_keys(merchant_keys, sandbox_public_pem)
    paid_trade(peer, live_server, keys, "T-SDK-1", "12.50")

    query = sdk_call(peer, live_server, keys, "api_alipay_trade_query", out_trade_no="T-SDK-1")
    refund = sdk_call(
        peer,
        live_server,
        keys,
        "api_alipay_trade_refund",
        refund_amount="2.50",
        out_trade_no="T-SDK-1",
        out_request_no="R1",
        refund_reason="少一杯 one short",
    )
    refund_query = sdk_call(
        peer, live_server, keys, "api_alipay_trade_fastpay_refund_query", out_request_no="R1", out_trade_no="T-SDK-1"
    )

    assert query["ok"] is True, query
    assert (query["response"]["code"], query["response"]["trade_status"]) == ("10000", "TRADE_SUCCESS")
    assert query["response"]["total_amount"] == "12.50"
    assert refund["ok"] is True, refund
    assert (refund["response"]["fund_change"], refund["response"]["refund_fee"]) == ("Y", "2.50")
    assert refund_query["ok"] is True, refund_query
    assert refund_query["response"]["refund_reason"] == "少一杯 one short"


def test_python_alipay_sdk_verifies_a_signed_business_failure(peer, live_server, merchant_keys, sandbox_public_pem):
    result = sdk_call(
        peer, live_server, sdk_keys(merchant_keys, sandbox_public_pem), "api_alipay_trade_close", out_trade_no="T404"
    )

    assert result["ok"] is True, result
    assert (result["response"]["code"], result["response"]["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")


def test_python_alipay_sdk_refuses_the_answer_under_another_wallet_key(
    peer, live_server, merchant_keys, other_keys, sandbox_public_pem
):
    """The control for the tests above: the same call, with the wrong wallet key configured in the SDK."""
    keys = sdk_keys(merchant_keys, other_keys.public_pem)
    result = sdk_call(peer, live_server, keys, "api_alipay_trade_query", out_trade_no="T404")

    assert result["ok"] is False
    assert result["error"].startswith("AliPayValidationError")


def test_the_sandbox_refuses_an_sdk_request_signed_with_another_key(
    peer, live_server, merchant_keys, other_keys, sandbox_public_pem
):
    keys = {**sdk_keys(merchant_keys, sandbox_public_pem), "private_key": other_keys.private_pkcs1_pem}
    result = sdk_call(peer, live_server, keys, "api_alipay_trade_query", out_trade_no="T404")

    assert result["ok"] is True, result
    assert (result["response"]["code"], result["response"]["sub_code"]) == ("40002", "isv.invalid-signature")


def test_our_gateway_request_verifies_with_python_alipay_sdk(peer, live_server, merchant_keys, sandbox_public_pem):
    keys = sdk_keys(merchant_keys, sandbox_public_pem)
    paid_trade(peer, live_server, keys, "T-SDK-2", "0.99")
    sent: list[bytes] = []
    config = our_config(live_server, merchant_keys, sandbox_public_pem)

    with httpx.Client(timeout=10, event_hooks={"request": [lambda request: sent.append(request.read())]}) as http:
        trade = WalletClient(config, http=http).trade_query(out_trade_no="T-SDK-2")

    (body,) = sent
    params = dict(urllib.parse.parse_qsl(body.decode()))
    verified = peer(
        "alipay-verify-orderstr", {**keys, "public_key": merchant_keys.public_pem, "order_str": body.decode()}
    )
    assert verified["valid"] is True
    assert (params["method"], params["sign_type"], params["app_id"]) == (
        "alipay.trade.query",
        "RSA2",
        SANDBOX_CLASSIC_APP_ID,
    )
    assert (trade.status, trade.amount) == (ClassicTradeStatus.TRADE_SUCCESS, Money(99, "CNY"))
