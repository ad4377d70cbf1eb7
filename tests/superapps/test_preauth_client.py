"""The platform's wallet client for pre-authorisation against the sandbox wallet, over real HTTP.

Classic (§8.3): a freeze orderStr authorised on the sandbox's pre-authorisation page, then queried, captured and
unfrozen through ``gateway.do``. OpenAPI: an authorization payment (``PayRequest(authorization=True)``)
authorised at the cashier, then captured, voided or left to expire, in v1 and v2.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import urllib.parse

import httpx
import pytest
import time_machine
from django.utils import timezone
from ulid import ULID

from apps.core.money import Money
from apps.superapps.client import keys
from apps.superapps.client.client import WalletClient
from apps.superapps.client.errors import ResponseSignatureError, WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.client.messages import (
    ApiVersion,
    ClassicAuthStatus,
    ClassicTradeStatus,
    PaymentStatus,
    PayRequest,
    RefundRequest,
)
from apps.superapps.client.orderstr import verify_order_str

CLASSIC_APP_ID = "2021000000000001"
ALICE = "2188000000000001"
# The classic gateway does not depend on the OpenAPI version: its tests run against one wallet.
classic = pytest.mark.parametrize("wallet", ["v2"], indirect=True)


@pytest.fixture
def classic_client(client_for):
    def build(**options) -> WalletClient:
        return client_for(classic_app_id=CLASSIC_APP_ID, **options)

    return build


def _press(page: httpx.Response, url: str, browser: httpx.Client, user: str = "alice") -> httpx.Response:
    """Press the confirming button of a sandbox page (Pay, or Authorise: both post ``action=pay``)."""
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    action = re.search(r'action="([^"]+)"', page.text).group(1)
    return browser.post(
        urllib.parse.urljoin(url, action),
        data={"csrfmiddlewaretoken": token, "action": "pay", "user": user},
        headers={"Referer": url},
    )


def _open_freeze(wallet, order_str: str, browser: httpx.Client) -> httpx.Response:
    """What ``my.tradePay({orderStr})`` does with a freeze: the sandbox's pre-authorisation page."""
    url = f"{wallet.base_url}/sandbox/tradepay?" + urllib.parse.urlencode({"orderStr": order_str})
    page = browser.get(url)
    assert page.status_code == 200, page.text
    assert ">Authorise</button>" in page.text
    return page


@dataclasses.dataclass
class Freeze:
    out_order_no: str
    out_request_no: str
    order_str: str


def _freeze(client: WalletClient, amount: Money, *, pay_timeout: str = "2d") -> Freeze:
    out_order_no = f"pa_{ULID()}"
    order_str = client.freeze_order_str(
        out_order_no=out_order_no,
        out_request_no=f"{out_order_no}_f",
        amount=amount,
        title="Scooter deposit",
        pay_timeout=pay_timeout,
    )
    return Freeze(out_order_no, f"{out_order_no}_f", order_str)


def _authorised(wallet, client: WalletClient, amount: Money, **options) -> tuple[Freeze, str]:
    """A freeze authorised by alice; returns it and its auth_no."""
    freeze = _freeze(client, amount, **options)
    with httpx.Client(timeout=10) as browser:
        page = _open_freeze(wallet, freeze.order_str, browser)
        assert "Funds authorised." in _press(page, str(page.url), browser).text
    authorization = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    return freeze, authorization.auth_no


# --- classic: orderStr ---------------------------------------------------------------------------


@classic
def test_the_freeze_order_str_is_signed_and_names_what_the_gateway_needs(wallet, classic_client):
    client = classic_client()
    order_str = client.freeze_order_str(
        out_order_no="pa_1",
        out_request_no="pa_1_f",
        amount=Money(9950, "USD"),
        title="Charger deposit",
        pay_timeout="90m",
        notify_url="https://isv.example/alipay/notify",
    )
    params = dict(urllib.parse.parse_qsl(order_str))
    assert {key: params[key] for key in ("app_id", "method", "sign_type", "notify_url")} == {
        "app_id": CLASSIC_APP_ID,
        "method": "alipay.fund.auth.order.app.freeze",
        "sign_type": "RSA2",
        "notify_url": "https://isv.example/alipay/notify",
    }
    assert json.loads(params["biz_content"]) == {
        "out_order_no": "pa_1",
        "out_request_no": "pa_1_f",
        "order_title": "Charger deposit",
        "amount": "99.50",
        "product_code": "PRE_AUTH_ONLINE",
        "pay_timeout": "90m",
        "trans_currency": "USD",
    }
    assert verify_order_str(keys.load_private_key(client.config.private_key_pem).public_key(), order_str)
    silent = _freeze(client, Money(100, "CNY")).order_str
    assert "notify_url" not in dict(urllib.parse.parse_qsl(silent))
    assert "trans_currency" not in json.loads(dict(urllib.parse.parse_qsl(silent))["biz_content"])


@classic
@pytest.mark.parametrize(("amount", "pay_timeout"), [(Money(100, "JPY"), "2d"), (Money(100, "KWD"), "2d")])
def test_the_freeze_order_str_refuses_other_exponents(wallet, classic_client, amount, pay_timeout):
    with pytest.raises(ValueError, match="two-decimal"):
        _freeze(classic_client(), amount, pay_timeout=pay_timeout)


@classic
@pytest.mark.parametrize("pay_timeout", ["0m", "16d", "1.5h", "2w", "15", ""])
def test_the_freeze_order_str_refuses_a_pay_timeout_the_gateway_would(wallet, classic_client, pay_timeout):
    with pytest.raises(ValueError, match="pay_timeout"):
        _freeze(classic_client(), Money(100, "CNY"), pay_timeout=pay_timeout)


# --- classic: the cycle --------------------------------------------------------------------------


@classic
@pytest.mark.parametrize("currency", ["CNY", "USD"])
def test_a_freeze_is_authorised_then_captured_in_part_and_in_full(wallet, classic_client, currency):
    client = classic_client()
    freeze = _freeze(client, Money(10000, currency))
    with pytest.raises(WalletBusinessFailure) as never_opened:
        client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert never_opened.value.result_code == "AUTH_ORDER_NOT_EXIST"

    with httpx.Client(timeout=10) as browser:
        page = _open_freeze(wallet, freeze.order_str, browser)
        waiting = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
        assert (waiting.status, waiting.amount, waiting.frozen, waiting.payer_id) == (
            ClassicAuthStatus.INIT,
            Money(10000, currency),
            Money(0, currency),
            None,
        )
        _press(page, str(page.url), browser)

    authorised = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (authorised.status, authorised.frozen, authorised.rest, authorised.payer_id) == (
        ClassicAuthStatus.AUTHORIZED,
        Money(10000, currency),
        Money(10000, currency),
        ALICE,
    )
    assert authorised.authorized_at
    auth_no = authorised.auth_no

    part = client.auth_capture(
        auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(3000, currency), subject="Ride", complete=False
    )
    assert (part.status, part.amount, part.buyer_id) == (ClassicTradeStatus.TRADE_SUCCESS, Money(3000, currency), ALICE)
    assert client.trade_query(out_trade_no=part.out_trade_no).trade_no == part.trade_no
    after_part = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (after_part.status, after_part.captured, after_part.rest) == (
        ClassicAuthStatus.AUTHORIZED,
        Money(3000, currency),
        Money(7000, currency),
    )

    client.auth_capture(
        auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(7000, currency), subject="Ride", complete=True
    )
    done = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (done.status, done.captured, done.rest, done.unfrozen) == (
        ClassicAuthStatus.FINISH,
        Money(10000, currency),
        Money(0, currency),
        Money(0, currency),
    )

    refund = client.trade_refund(out_trade_no=part.out_trade_no, out_request_no="r1", amount=Money(3000, currency))
    assert (refund.fund_change, refund.refunded_total) == (True, Money(3000, currency))


@classic
def test_capturing_less_and_complete_gives_the_rest_back(wallet, classic_client):
    client = classic_client()
    freeze, auth_no = _authorised(wallet, client, Money(10000, "CNY"))
    client.auth_capture(
        auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(4000, "CNY"), subject="Ride", complete=True
    )
    done = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (done.status, done.captured, done.unfrozen, done.rest) == (
        ClassicAuthStatus.FINISH,
        Money(4000, "CNY"),
        Money(6000, "CNY"),
        Money(0, "CNY"),
    )
    with pytest.raises(WalletBusinessFailure) as finished:
        client.auth_capture(
            auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(1, "CNY"), subject="Ride", complete=True
        )
    assert finished.value.result_code == "ACQ.AUTH_NO_ERROR"


@classic
def test_a_capture_retry_answers_the_same_trade(wallet, classic_client):
    client = classic_client()
    _, auth_no = _authorised(wallet, client, Money(10000, "CNY"))
    capture = {"auth_no": auth_no, "out_trade_no": f"ord_{ULID()}", "subject": "Ride", "complete": False}
    first = client.auth_capture(amount=Money(3000, "CNY"), **capture)
    assert client.auth_capture(amount=Money(3000, "CNY"), **capture) == first
    with pytest.raises(WalletBusinessFailure) as other:
        client.auth_capture(amount=Money(3001, "CNY"), **capture)
    assert other.value.result_code == "ACQ.CONTEXT_INCONSISTENT"
    with pytest.raises(WalletBusinessFailure) as too_much:
        client.auth_capture(**{**capture, "out_trade_no": f"ord_{ULID()}"}, amount=Money(7001, "CNY"))
    assert too_much.value.result_code == "ACQ.AUTH_AMOUNT_NOT_ENOUGH"


@classic
def test_unfreezing_all_of_it_in_steps_closes_the_freeze(wallet, classic_client):
    client = classic_client()
    freeze, auth_no = _authorised(wallet, client, Money(10000, "CNY"))
    first = client.auth_unfreeze(auth_no=auth_no, out_request_no="u1", amount=Money(3000, "CNY"), remark="part")
    assert (first.auth_no, first.out_request_no, first.amount) == (auth_no, "u1", Money(3000, "CNY"))
    assert first.operation_id
    again = client.auth_unfreeze(auth_no=auth_no, out_request_no="u1", amount=Money(3000, "CNY"), remark="part")
    assert again.operation_id == first.operation_id
    rest = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (rest.status, rest.rest, rest.unfrozen) == (
        ClassicAuthStatus.AUTHORIZED,
        Money(7000, "CNY"),
        Money(3000, "CNY"),
    )

    for out_request_no, amount, code in (
        ("u1", Money(3100, "CNY"), "ACQ.DISCORDANT_REPEAT_REQUEST"),
        ("u2", Money(7001, "CNY"), "REQUEST_AMOUNT_EXCEED"),
    ):
        with pytest.raises(WalletBusinessFailure) as refused:
            client.auth_unfreeze(auth_no=auth_no, out_request_no=out_request_no, amount=amount, remark="x")
        assert refused.value.result_code == code

    client.auth_unfreeze(auth_no=auth_no, out_request_no="u2", amount=Money(7000, "CNY"), remark="the rest")
    closed = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (closed.status, closed.unfrozen, closed.rest) == (
        ClassicAuthStatus.CLOSED,
        Money(10000, "CNY"),
        Money(0, "CNY"),
    )
    with pytest.raises(WalletBusinessFailure) as gone:
        client.auth_unfreeze(auth_no=auth_no, out_request_no="u3", amount=Money(1, "CNY"), remark="x")
    assert gone.value.result_code == "ORDER_ALREADY_CLOSED"


@classic
def test_a_freeze_past_its_pay_timeout_is_closed_and_can_no_longer_be_captured(wallet, classic_client):
    client = classic_client()
    freeze, auth_no = _authorised(wallet, client, Money(10000, "CNY"), pay_timeout="30m")
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        expired = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
        assert (expired.status, expired.rest, expired.unfrozen) == (
            ClassicAuthStatus.CLOSED,
            Money(0, "CNY"),
            Money(10000, "CNY"),
        )
        with pytest.raises(WalletBusinessFailure) as refused:
            client.auth_capture(
                auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(1, "CNY"), subject="x", complete=False
            )
        assert refused.value.result_code == "ACQ.AUTH_NO_ERROR"


# --- classic: faults and signatures --------------------------------------------------------------


@classic
@pytest.mark.parametrize("fault", ["result_u", "http_500", "drop_response"])
def test_faults_on_capture_and_unfreeze_are_unknown_outcomes(wallet, classic_client, fault):
    client = classic_client()
    freeze, auth_no = _authorised(wallet, client, Money(10000, "CNY"))
    faulty = classic_client(faults={fault: True})
    out_trade_no = f"ord_{ULID()}"
    with pytest.raises(WalletUnknownOutcome) as capture:
        faulty.auth_capture(
            auth_no=auth_no, out_trade_no=out_trade_no, amount=Money(3000, "CNY"), subject="Ride", complete=False
        )
    with pytest.raises(WalletUnknownOutcome) as unfreeze:
        faulty.auth_unfreeze(auth_no=auth_no, out_request_no="u1", amount=Money(1000, "CNY"), remark="x")
    assert not isinstance(capture.value, ResponseSignatureError)
    assert not isinstance(unfreeze.value, ResponseSignatureError)

    client = classic_client(faults={})
    state = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    processed = fault != "http_500"
    assert (state.captured, state.unfrozen) == (
        (Money(3000, "CNY"), Money(1000, "CNY")) if processed else (Money(0, "CNY"), Money(0, "CNY"))
    )
    # Retrying settles it either way, and never twice.
    client.auth_capture(
        auth_no=auth_no, out_trade_no=out_trade_no, amount=Money(3000, "CNY"), subject="Ride", complete=False
    )
    client.auth_unfreeze(auth_no=auth_no, out_request_no="u1", amount=Money(1000, "CNY"), remark="x")
    settled = client.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    assert (settled.captured, settled.unfrozen, settled.rest) == (
        Money(3000, "CNY"),
        Money(1000, "CNY"),
        Money(6000, "CNY"),
    )


@classic
def test_an_unverifiable_answer_is_a_signature_error(wallet, classic_client):
    client = classic_client()
    freeze, auth_no = _authorised(wallet, client, Money(10000, "CNY"))
    corrupt = classic_client(faults={"bad_signature": True})
    with pytest.raises(ResponseSignatureError):
        corrupt.auth_query(out_order_no=freeze.out_order_no, out_request_no=freeze.out_request_no)
    with pytest.raises(ResponseSignatureError):
        corrupt.auth_unfreeze(auth_no=auth_no, out_request_no="u1", amount=Money(1000, "CNY"), remark="x")
    _, stranger = keys.generate_key_pair()
    distrustful = WalletClient(dataclasses.replace(client.config, wallet_public_key_pem=stranger))
    with pytest.raises(ResponseSignatureError):
        distrustful.auth_capture(
            auth_no=auth_no, out_trade_no=f"ord_{ULID()}", amount=Money(1, "CNY"), subject="x", complete=False
        )


# --- OpenAPI authorization payments (v1 and v2) --------------------------------------------------


def _authorization(wallet, **options) -> PayRequest:
    """An authorization of USD 100.00."""
    return PayRequest(
        payment_request_id=f"pay_{str(ULID()).lower()}",
        amount=Money(10000, "USD"),
        order_description="Scooter deposit",
        reference_order_id=f"ord_{str(ULID()).lower()}",
        notify_url=f"{wallet.base_url}/nowhere",
        authorization=True,
        **options,
    )


def _authorise(wallet, client: WalletClient, request: PayRequest) -> str:
    """Create the authorization and authorise it at the sandbox cashier as alice; returns its paymentId."""
    response = client.pay(request, app_id="app-1")
    with httpx.Client(timeout=10) as browser:
        page = browser.get(response.payment_url)
        assert ">Authorise</button>" in page.text
        assert "Funds authorised." in _press(page, response.payment_url, browser).text
    return response.payment_id


def test_the_authorization_flag_asks_for_an_authorization_in_either_version():
    request = PayRequest("pr", Money(100, "USD"), "x", "o", "https://isv.example/n", authorization=True)
    v1 = request.body(version=ApiVersion.V1, app_id="a", partner_id="P1", site_name=None)
    v2 = request.body(version=ApiVersion.V2, app_id="a", partner_id=None, site_name=None)
    assert v1["paymentFactor"] == {"isCashierPayment": True, "isAuthorizationPayment": True}
    assert v2["paymentFactor"] == {"isAuthorizationPayment": True}
    plain = dataclasses.replace(request, authorization=False)
    assert "paymentFactor" not in plain.body(version=ApiVersion.V2, app_id="a", partner_id=None, site_name=None)


def test_an_authorization_is_authorised_then_captured_in_parts(wallet, client_for):
    client = client_for()
    request = _authorization(wallet)
    payment_id = _authorise(wallet, client, request)
    authorised = client.inquire_payment(payment_id=payment_id)
    assert (authorised.status, authorised.amount, authorised.captures) == (PaymentStatus.SUCCESS, request.amount, ())
    assert authorised.auth_expiry_time

    part = {"capture_request_id": "cap_1", "payment_id": payment_id, "amount": Money(3000, "USD"), "last": False}
    first = client.capture(**part)
    assert (first.capture_request_id, first.payment_id, first.amount) == ("cap_1", payment_id, Money(3000, "USD"))
    assert first.capture_id
    assert first.capture_time
    assert client.capture(**part) == first
    with pytest.raises(WalletBusinessFailure) as too_much:
        client.capture(capture_request_id="cap_2", payment_id=payment_id, amount=Money(7001, "USD"))
    assert too_much.value.result_code == "CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT"

    last = client.capture(capture_request_id="cap_3", payment_id=payment_id, amount=Money(5000, "USD"))
    captures = client.inquire_payment(payment_id=payment_id).captures
    assert [(c.capture_id, c.capture_request_id, c.amount) for c in captures] == [
        (first.capture_id, "cap_1", Money(3000, "USD")),
        (last.capture_id, "cap_3", Money(5000, "USD")),
    ]
    with pytest.raises(WalletBusinessFailure) as ended:
        client.capture(capture_request_id="cap_4", payment_id=payment_id, amount=Money(1, "USD"))
    assert ended.value.result_code == "CAPTURE_AMOUNT_EXCEED_AUTH_LIMIT"
    refund = client.refund(RefundRequest(f"ref_{ULID()}", payment_id, Money(8000, "USD")))
    assert refund.refund_id


def test_a_voided_authorization_can_no_longer_be_captured(wallet, client_for):
    client = client_for()
    payment_id = _authorise(wallet, client, _authorization(wallet))
    assert client.cancel(payment_id=payment_id).cancel_time
    assert client.inquire_payment(payment_id=payment_id).status is PaymentStatus.CANCELLED
    with pytest.raises(WalletBusinessFailure) as voided:
        client.capture(capture_request_id="cap_1", payment_id=payment_id, amount=Money(100, "USD"))
    assert voided.value.result_code == "AUTH_CANCELLED"


def test_an_authorization_not_yet_authorised_or_past_its_expiry_is_refused(wallet, client_for):
    client = client_for()
    waiting = client.pay(_authorization(wallet), app_id="app-1")
    with pytest.raises(WalletBusinessFailure) as not_yet:
        client.capture(capture_request_id="cap_1", payment_id=waiting.payment_id, amount=Money(100, "USD"))
    assert not_yet.value.result_code == "AUTH_NOT_FOUND"

    expiry = (timezone.now() + dt.timedelta(hours=1)).isoformat(timespec="seconds")
    payment_id = _authorise(wallet, client, _authorization(wallet, expiry_time=expiry))
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1, minutes=1)):
        assert client.inquire_payment(payment_id=payment_id).status is PaymentStatus.CANCELLED
        with pytest.raises(WalletBusinessFailure) as expired:
            client.capture(capture_request_id="cap_2", payment_id=payment_id, amount=Money(100, "USD"))
        assert expired.value.result_code == "AUTH_EXPIRED"


@pytest.mark.parametrize("fault", ["result_u", "http_500", "drop_response"])
def test_faults_on_a_capture_are_unknown_outcomes(wallet, client_for, fault):
    client = client_for()
    payment_id = _authorise(wallet, client, _authorization(wallet))
    with pytest.raises(WalletUnknownOutcome) as unknown:
        client_for(faults={fault: True}).capture(
            capture_request_id="cap_1", payment_id=payment_id, amount=Money(3000, "USD")
        )
    assert not isinstance(unknown.value, ResponseSignatureError)
    client = client_for(faults={})
    captured = client.inquire_payment(payment_id=payment_id).captures
    assert len(captured) == (0 if fault == "http_500" else 1)
    retried = client.capture(capture_request_id="cap_1", payment_id=payment_id, amount=Money(3000, "USD"))
    assert [c.capture_id for c in client.inquire_payment(payment_id=payment_id).captures] == [retried.capture_id]


def test_an_unverifiable_capture_answer_is_a_signature_error(wallet, client_for):
    client = client_for()
    payment_id = _authorise(wallet, client, _authorization(wallet))
    with pytest.raises(ResponseSignatureError):
        client_for(faults={"bad_signature": True}).capture(
            capture_request_id="cap_1", payment_id=payment_id, amount=Money(3000, "USD")
        )
