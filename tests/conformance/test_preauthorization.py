"""Pre-authorisation (§8.3) between python-alipay-sdk 3.4.0 and us, over HTTP.

The SDK has no method of its own for the unfreeze or the detail query, and its ``api_alipay_trade_pay`` is
the bar-code payment (it insists on ``scene`` and ``auth_code``), so it calls all three with ``server_api``:
its own signed GET and its own check of the answer's signature, as for any ``gateway.do`` method. An answer
back from the SDK means both signatures conformed. The freeze orderStr is the SDK's ``client_api``, authorised
on the sandbox's page; the unfreeze notification is checked with the SDK's ``verify``. And our client's
freeze orderStr and capture request verify under the SDK's signing rule.
"""

from __future__ import annotations

import re
import urllib.parse

import httpx
import pytest

from apps.core.money import Money
from apps.superapps.client.client import WalletClient
from apps.superapps.client.messages import ClassicTradeStatus
from tests.conformance.test_classic_gateway import our_config, sdk_call, sdk_keys
from tests.sandbox.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def server_api(peer, live_server, keys: dict, api_name: str, **biz) -> dict:
    return sdk_call(peer, live_server, keys, "server_api", api_name=api_name, biz_content=biz)


def authorised_freeze(peer, live_server, keys: dict, out_order_no: str, amount: str, notify_url: str = "") -> None:
    """A freeze orderStr from the SDK's ``client_api``, authorised by alice on the sandbox's page."""
    params = {"notify_url": notify_url} if notify_url else {}
    order_str = peer(
        "alipay-client-api",
        {
            **keys,
            "api_name": "alipay.fund.auth.order.app.freeze",
            "biz_content": {
                "out_order_no": out_order_no,
                "out_request_no": f"{out_order_no}-F",
                "order_title": "押金 Deposit",
                "amount": amount,
                "product_code": "PRE_AUTH_ONLINE",
                "pay_timeout": "2d",
            },
            "params": params,
        },
    )["order_str"]
    with httpx.Client(base_url=live_server.url, timeout=10) as browser:
        page = browser.get("/sandbox/tradepay", params={"orderStr": order_str})
        assert ">Authorise</button>" in page.text, page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        action = re.search(r'action="([^"]+)"', page.text).group(1)
        done = browser.post(action, data={"csrfmiddlewaretoken": token, "action": "pay", "user": "alice"})
        assert "Funds authorised." in done.text


@pytest.fixture
def receiver():
    endpoint = Receiver()
    endpoint.default = (200, "success")
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def test_python_alipay_sdk_queries_captures_and_unfreezes_a_freeze_at_the_sandbox(
    peer, live_server, merchant_keys, sandbox_public_pem, receiver
):
    keys = sdk_keys(merchant_keys, sandbox_public_pem)
    authorised_freeze(peer, live_server, keys, "ZM-SDK-1", "100.00", notify_url=receiver.url("/alipay/notify"))

    query = server_api(
        peer,
        live_server,
        keys,
        "alipay.fund.auth.operation.detail.query",
        out_order_no="ZM-SDK-1",
        out_request_no="ZM-SDK-1-F",
    )
    assert query["ok"] is True, query
    assert (query["response"]["order_status"], query["response"]["rest_amount"]) == ("AUTHORIZED", "100.00")
    auth_no = query["response"]["auth_no"]

    capture = server_api(
        peer,
        live_server,
        keys,
        "alipay.trade.pay",
        out_trade_no="T-SDK-PA-1",
        product_code="PRE_AUTH_ONLINE",
        auth_no=auth_no,
        total_amount="30.00",
        subject="充电 Charging",
        auth_confirm_mode="NOT_COMPLETE",
    )
    assert capture["ok"] is True, capture
    assert (capture["response"]["code"], capture["response"]["total_amount"]) == ("10000", "30.00")

    unfreeze = server_api(
        peer,
        live_server,
        keys,
        "alipay.fund.auth.order.unfreeze",
        auth_no=auth_no,
        out_request_no="U-SDK-1",
        amount="70.00",
        remark="押金退还 deposit back",
    )
    assert unfreeze["ok"] is True, unfreeze
    assert (unfreeze["response"]["code"], unfreeze["response"]["status"]) == ("10000", "SUCCESS")

    done = server_api(peer, live_server, keys, "alipay.fund.auth.operation.detail.query", auth_no=auth_no)
    assert (done["response"]["order_status"], done["response"]["total_pay_amount"]) == ("FINISH", "30.00")

    notifications = {received.form["notify_type"]: received.form for received in receiver.wait_for(3)}
    unfrozen = notifications["fund_auth_unfreeze"]
    assert (unfrozen["operation_type"], unfrozen["amount"], unfrozen["rest_amount"]) == ("UNFREEZE", "70.00", "0.00")
    verified = peer("alipay-verify-notification", {**keys, "params": unfrozen})
    assert verified["valid"] is True


def test_python_alipay_sdk_verifies_a_refused_capture(peer, live_server, merchant_keys, sandbox_public_pem):
    keys = sdk_keys(merchant_keys, sandbox_public_pem)
    authorised_freeze(peer, live_server, keys, "ZM-SDK-2", "10.00")
    query = server_api(
        peer,
        live_server,
        keys,
        "alipay.fund.auth.operation.detail.query",
        out_order_no="ZM-SDK-2",
        out_request_no="ZM-SDK-2-F",
    )
    refused = server_api(
        peer,
        live_server,
        keys,
        "alipay.trade.pay",
        out_trade_no="T-SDK-PA-2",
        product_code="PRE_AUTH_ONLINE",
        auth_no=query["response"]["auth_no"],
        total_amount="10.01",
        subject="too much",
    )
    assert refused["ok"] is True, refused
    assert (refused["response"]["code"], refused["response"]["sub_code"]) == ("40004", "ACQ.AUTH_AMOUNT_NOT_ENOUGH")


def test_our_freeze_order_str_and_capture_request_verify_with_python_alipay_sdk(
    peer, live_server, merchant_keys, sandbox_public_pem
):
    keys = sdk_keys(merchant_keys, sandbox_public_pem)
    config = our_config(live_server, merchant_keys, sandbox_public_pem)
    sent: list[bytes] = []
    with httpx.Client(timeout=10, event_hooks={"request": [lambda request: sent.append(request.read())]}) as http:
        client = WalletClient(config, http=http)
        order_str = client.freeze_order_str(
            out_order_no="ZM-OURS-1",
            out_request_no="ZM-OURS-1-F",
            amount=Money(5000, "CNY"),
            title="押金",
            pay_timeout="1d",
        )
        verified = peer(
            "alipay-verify-orderstr", {**keys, "public_key": merchant_keys.public_pem, "order_str": order_str}
        )
        assert verified["valid"] is True

        authorised_freeze(peer, live_server, keys, "ZM-OURS-2", "50.00")
        auth_no = client.auth_query(out_order_no="ZM-OURS-2", out_request_no="ZM-OURS-2-F").auth_no
        trade = client.auth_capture(
            auth_no=auth_no, out_trade_no="T-OURS-1", amount=Money(2000, "CNY"), subject="充电", complete=True
        )

    capture_body = sent[-1].decode()
    assert dict(urllib.parse.parse_qsl(capture_body))["method"] == "alipay.trade.pay"
    verified = peer(
        "alipay-verify-orderstr", {**keys, "public_key": merchant_keys.public_pem, "order_str": capture_body}
    )
    assert verified["valid"] is True
    assert (trade.status, trade.amount) == (ClassicTradeStatus.TRADE_SUCCESS, Money(2000, "CNY"))
