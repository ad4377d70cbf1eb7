"""The platform's classic-gateway client (orderStr payments) against the sandbox wallet over real HTTP: the
orderStr opened and paid at the sandbox cashier, then queried, refunded and closed through ``gateway.do``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import urllib.parse

import httpx
import pytest
from ulid import ULID

from apps.core.money import Money
from apps.superapps.client import keys
from apps.superapps.client.client import WalletClient
from apps.superapps.client.errors import ResponseSignatureError, WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.client.messages import ClassicTradeStatus
from apps.superapps.client.orderstr import verify_order_str
from tests.superapps.conftest import make_wallet

CLASSIC_APP_ID = "2021000000000001"
ALICE = "2188000000000001"


@pytest.fixture
def wallet(live_server, settings, transactional_db):
    """The classic gateway does not depend on the OpenAPI version: one wallet, not one per version."""
    return make_wallet(live_server, settings, code="sandbox-classic", version="v2")


@pytest.fixture
def classic_client(client_for):
    def build(**options) -> WalletClient:
        return client_for(classic_app_id=CLASSIC_APP_ID, **options)

    return build


def _order_str(wallet, client: WalletClient, out_trade_no: str, amount: Money) -> str:
    return client.trade_pay_order_str(
        out_trade_no=out_trade_no,
        amount=amount,
        subject="Flat white · 咖啡",
        notify_url=f"{wallet.base_url}/nowhere",
        time_expire=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15),
    )


def _open(wallet, order_str: str, browser: httpx.Client) -> httpx.Response:
    """What ``my.tradePay({orderStr})`` does: the sandbox cashier for the orderStr."""
    page = browser.get(f"{wallet.base_url}/sandbox/tradepay", params={"orderStr": order_str})
    assert page.status_code == 200, page.text
    return page


def _pay(wallet, page: httpx.Response, browser: httpx.Client, user: str = "alice") -> None:
    """Press Pay on the cashier page (a form POST with its CSRF token)."""
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    action = re.search(r'action="([^"]+)"', page.text).group(1)
    paid = browser.post(
        f"{wallet.base_url}{action}", data={"csrfmiddlewaretoken": token, "action": "pay", "user": user}
    )
    assert '<strong id="result-code">9000</strong>' in paid.text


@pytest.mark.parametrize("currency", ["CNY", "USD"])
def test_an_order_str_is_paid_queried_and_refunded_in_part_then_in_full(wallet, classic_client, currency):
    client = classic_client()
    out_trade_no = f"ord_{ULID()}"
    order_str = _order_str(wallet, client, out_trade_no, Money(1250, currency))
    with pytest.raises(WalletBusinessFailure) as never_opened:
        client.trade_query(out_trade_no=out_trade_no)
    assert never_opened.value.result_code == "ACQ.TRADE_NOT_EXIST"

    with httpx.Client(timeout=10) as browser:
        page = _open(wallet, order_str, browser)
        assert f"{currency} 12.50" in page.text
        assert client.trade_query(out_trade_no=out_trade_no).status is ClassicTradeStatus.WAIT_BUYER_PAY
        _pay(wallet, page, browser)

    trade = client.trade_query(out_trade_no=out_trade_no)
    assert (trade.status, trade.amount, trade.buyer_id, trade.out_trade_no) == (
        ClassicTradeStatus.TRADE_SUCCESS,
        Money(1250, currency),
        ALICE,
        out_trade_no,
    )
    assert trade.trade_no
    assert trade.paid_at

    part = client.trade_refund(out_trade_no=out_trade_no, out_request_no="r1", amount=Money(500, currency), reason="x")
    assert (part.fund_change, part.amount, part.refunded_total) == (True, Money(500, currency), Money(500, currency))
    again = client.trade_refund(out_trade_no=out_trade_no, out_request_no="r1", amount=Money(500, currency))
    assert (again.fund_change, again.refunded_total) == (False, Money(500, currency))

    found = client.trade_refund_query(out_trade_no=out_trade_no, out_request_no="r1")
    assert (found.out_request_no, found.amount, found.trade_no) == ("r1", Money(500, currency), trade.trade_no)
    assert client.trade_refund_query(out_trade_no=out_trade_no, out_request_no="r-never") is None

    with pytest.raises(WalletBusinessFailure) as too_much:
        client.trade_refund(out_trade_no=out_trade_no, out_request_no="r2", amount=Money(751, currency))
    assert too_much.value.result_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    rest = client.trade_refund(out_trade_no=out_trade_no, out_request_no="r2", amount=Money(750, currency))
    assert rest.refunded_total == Money(1250, currency)
    assert client.trade_query(out_trade_no=out_trade_no).status is ClassicTradeStatus.TRADE_CLOSED


def test_close_of_an_unpaid_trade_and_of_a_paid_one(wallet, classic_client):
    client = classic_client()
    unpaid, paid = f"ord_{ULID()}", f"ord_{ULID()}"
    with httpx.Client(timeout=10) as browser:
        _open(wallet, _order_str(wallet, client, unpaid, Money(100, "CNY")), browser)
        _pay(wallet, _open(wallet, _order_str(wallet, client, paid, Money(100, "CNY")), browser), browser)

    assert client.trade_close(out_trade_no=unpaid) is None
    assert client.trade_query(out_trade_no=unpaid).status is ClassicTradeStatus.TRADE_CLOSED
    client.trade_close(out_trade_no=unpaid)  # closed already: success
    with pytest.raises(WalletBusinessFailure) as refused:
        client.trade_close(out_trade_no=paid)
    assert refused.value.result_code == "ACQ.TRADE_STATUS_ERROR"


def test_an_order_str_is_built_without_http_and_refuses_other_exponents(wallet, classic_client):
    client = classic_client()
    order_str = client.trade_pay_order_str(
        out_trade_no="ord_1",
        amount=Money(1250, "USD"),
        subject="Flat white",
        notify_url="https://isv.example/notify",
        time_expire=dt.datetime(2026, 3, 2, 2, 30, tzinfo=dt.UTC),
    )
    params = dict(urllib.parse.parse_qsl(order_str))
    assert {key: params[key] for key in ("app_id", "method", "sign_type", "notify_url")} == {
        "app_id": CLASSIC_APP_ID,
        "method": "alipay.trade.app.pay",
        "sign_type": "RSA2",
        "notify_url": "https://isv.example/notify",
    }
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": "ord_1",
        "total_amount": "12.50",
        "subject": "Flat white",
        "product_code": "QUICK_MSECURITY_PAY",
        "time_expire": "2026-03-02 10:30:00",
        "trans_currency": "USD",
    }
    assert verify_order_str(keys.load_private_key(client.config.private_key_pem).public_key(), order_str)
    silent = client.trade_pay_order_str(
        out_trade_no="ord_1", amount=Money(1250, "USD"), subject="Flat white", time_expire=dt.datetime.now(dt.UTC)
    )
    assert "notify_url" not in dict(urllib.parse.parse_qsl(silent))
    for currency in ("JPY", "KWD"):
        with pytest.raises(ValueError, match="two-decimal"):
            _order_str(wallet, client, "ord_2", Money(100, currency))
    with pytest.raises(ValueError, match="aware"):
        client.trade_pay_order_str(
            out_trade_no="ord_3",
            amount=Money(1, "CNY"),
            subject="x",
            notify_url="https://x",
            time_expire=dt.datetime(2030, 1, 1),
        )


@pytest.mark.parametrize("fault", ["result_u", "http_500", "drop_response"])
def test_uncertain_answers_are_unknown_outcomes_never_failures(wallet, classic_client, fault):
    client = classic_client(faults={fault: True})
    with pytest.raises(WalletUnknownOutcome) as unknown:
        client.trade_query(out_trade_no="ord_never")
    assert not isinstance(unknown.value, ResponseSignatureError)


def test_result_u_on_a_close_leaves_the_trade_closed(wallet, classic_client):
    client = classic_client()
    out_trade_no = f"ord_{ULID()}"
    with httpx.Client(timeout=10) as browser:
        _open(wallet, _order_str(wallet, client, out_trade_no, Money(100, "CNY")), browser)
    with pytest.raises(WalletUnknownOutcome) as unknown:
        classic_client(faults={"result_u": True}).trade_close(out_trade_no=out_trade_no)
    assert unknown.value.result_code == "aop.ACQ.SYSTEM_ERROR"
    assert classic_client(faults={}).trade_query(out_trade_no=out_trade_no).status is ClassicTradeStatus.TRADE_CLOSED


def test_a_bad_signature_is_a_signature_error(wallet, classic_client):
    with pytest.raises(ResponseSignatureError):
        classic_client(faults={"bad_signature": True}).trade_query(out_trade_no="ord_never")


def test_an_answer_signed_with_another_key_is_refused(wallet, classic_client):
    client = classic_client()
    _, stranger = keys.generate_key_pair()
    distrustful = WalletClient(dataclasses.replace(client.config, wallet_public_key_pem=stranger))
    with pytest.raises(ResponseSignatureError):
        distrustful.trade_query(out_trade_no="ord_never")


def test_a_slow_or_unreachable_gateway_is_an_unknown_outcome(wallet, classic_client):
    slow = classic_client(faults={"latency": 1500}, read_timeout=0.5)
    with pytest.raises(WalletUnknownOutcome, match="timed out"):
        slow.trade_query(out_trade_no="ord_never")
    unreachable = WalletClient(dataclasses.replace(slow.config, classic_gateway_url="http://127.0.0.1:9/gateway.do"))
    with pytest.raises(WalletUnknownOutcome, match="connection failed"):
        unreachable.trade_query(out_trade_no="ord_never")


def test_a_request_the_gateway_refuses_is_a_business_failure(wallet, classic_client):
    client = classic_client()
    stranger, _ = keys.generate_key_pair()
    impostor = WalletClient(dataclasses.replace(client.config, private_key_pem=stranger))
    with pytest.raises(WalletBusinessFailure) as refused:
        impostor.trade_query(out_trade_no="ord_never")
    assert refused.value.result_code == "isv.invalid-signature"


def test_without_a_classic_app_id_there_is_no_classic_gateway(wallet, client_for):
    with pytest.raises(ValueError, match="classic_app_id"):
        client_for().trade_query(out_trade_no="ord_never")
