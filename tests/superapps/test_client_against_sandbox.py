"""The platform's wallet client against the sandbox wallet, over real HTTP, in API versions v1 and v2."""

from __future__ import annotations

import re

import httpx
import pytest
from ulid import ULID

from apps.callbacks.models import InboundNotification
from apps.core.money import Money
from apps.superapps.client.client import WalletClient
from apps.superapps.client.errors import ResponseSignatureError, WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.client.messages import PaymentStatus, PayRequest, RefundRequest, RefundStatus, RegistrationStatus


def _pay_request(wallet, amount: int = 1250, currency: str = "USD", request_id: str | None = None) -> PayRequest:
    return PayRequest(
        payment_request_id=request_id or f"pay_{str(ULID()).lower()}",
        amount=Money(amount, currency),
        order_description="Flat white",
        reference_order_id=f"ord_{str(ULID()).lower()}",
        notify_url=wallet.super_app.payment_notify_url(),
        redirect_url=f"{wallet.base_url}/done",
        merchant_display_name="Test Merchant",
    )


def _pay_at_cashier(payment_url: str, *, user: str = "alice") -> httpx.Response:
    """Do what a person does on the cashier page: open it and press Pay."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        page = browser.get(payment_url)
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return browser.post(
            payment_url,
            data={"csrfmiddlewaretoken": token, "action": "pay", "user": user},
            headers={"Referer": payment_url},
        )


def test_pay_returns_a_cashier_url_and_inquiry_follows_the_payment(wallet, client_for):
    client = client_for()
    request = _pay_request(wallet)
    response = client.pay(request, app_id="app-1")
    assert response.result.status.value == "A"
    assert response.payment_url.startswith(f"{wallet.base_url}/sandbox/")
    assert client.inquire_payment(payment_id=response.payment_id).status is PaymentStatus.PROCESSING

    paid = _pay_at_cashier(response.payment_url)
    assert paid.status_code in (302, 303)
    assert "resultCode=9000" in paid.headers["location"]

    inquiry = client.inquire_payment(payment_request_id=request.payment_request_id)
    assert (inquiry.status, inquiry.amount, inquiry.payment_id) == (
        PaymentStatus.SUCCESS,
        request.amount,
        response.payment_id,
    )


def test_partial_refunds_up_to_the_paid_amount(wallet, client_for):
    client = client_for()
    response = client.pay(_pay_request(wallet, amount=1000), app_id="app-1")
    _pay_at_cashier(response.payment_url)
    first = client.refund(RefundRequest(f"ref_{ULID()}", response.payment_id, Money(400, "USD"), "latte spilled"))
    assert client.inquire_refund(refund_id=first.refund_id).status is RefundStatus.SUCCESS
    with pytest.raises(WalletBusinessFailure) as too_much:
        client.refund(RefundRequest(f"ref_{ULID()}", response.payment_id, Money(601, "USD")))
    assert too_much.value.result_code == "REFUND_AMOUNT_EXCEED"
    client.refund(RefundRequest(f"ref_{ULID()}", response.payment_id, Money(600, "USD")))


def test_the_same_request_id_is_idempotent_and_different_content_is_refused(wallet, client_for):
    client = client_for()
    request = _pay_request(wallet)
    first = client.pay(request, app_id="app-1")
    again = client.pay(request, app_id="app-1")
    assert again.payment_id == first.payment_id
    with pytest.raises(WalletBusinessFailure) as error:
        client.pay(_pay_request(wallet, amount=999, request_id=request.payment_request_id), app_id="app-1")
    assert error.value.result_code == "REPEAT_REQ_INCONSISTENT"


def test_cancel_closes_an_unpaid_payment(wallet, client_for):
    client = client_for()
    response = client.pay(_pay_request(wallet), app_id="app-1")
    client.cancel(payment_id=response.payment_id)
    assert client.inquire_payment(payment_id=response.payment_id).status is PaymentStatus.CANCELLED


def test_unsupported_currency_is_a_business_failure(wallet, client_for):
    with pytest.raises(WalletBusinessFailure) as error:
        client_for().pay(_pay_request(wallet, currency="BRL"), app_id="app-1")
    assert error.value.result_code == "CURRENCY_NOT_SUPPORT"


def test_unknown_payment_is_order_not_exist(wallet, client_for):
    with pytest.raises(WalletBusinessFailure) as error:
        client_for().inquire_payment(payment_id="nope")
    assert error.value.result_code == "ORDER_NOT_EXIST"


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"http_500": True}, WalletUnknownOutcome),
        ({"result_u": True}, WalletUnknownOutcome),
        ({"drop_response": True}, WalletUnknownOutcome),
        ({"bad_signature": True}, ResponseSignatureError),
    ],
)
def test_uncertain_answers_are_unknown_outcomes_never_failures(wallet, client_for, faults, expected):
    client = client_for(faults=faults)
    with pytest.raises(expected):
        client.pay(_pay_request(wallet), app_id="app-1")


def test_a_slow_wallet_is_an_unknown_outcome(wallet, client_for):
    client = client_for(faults={"latency": 1500}, read_timeout=0.5)
    with pytest.raises(WalletUnknownOutcome, match="timed out"):
        client.pay(_pay_request(wallet), app_id="app-1")


def test_an_unreachable_wallet_is_an_unknown_outcome(wallet, client_for):
    import dataclasses

    from apps.superapps.client.client import WalletClient

    client = client_for()
    unreachable = WalletClient(dataclasses.replace(client.config, base_url="http://127.0.0.1:9/sandbox"))
    with pytest.raises(WalletUnknownOutcome, match="connection failed"):
        unreachable.pay(_pay_request(wallet), app_id="app-1")


def test_a_response_signed_with_another_key_is_refused(wallet, client_for):
    import dataclasses

    from apps.superapps.client import keys
    from apps.superapps.client.client import WalletClient

    client = client_for()
    _, stranger = keys.generate_key_pair()
    distrustful = WalletClient(dataclasses.replace(client.config, wallet_public_key_pem=stranger))
    with pytest.raises(ResponseSignatureError):
        distrustful.pay(_pay_request(wallet), app_id="app-1")


def test_apply_token_exchanges_a_single_use_auth_code(wallet, client_for):
    client = client_for()
    code = httpx.get(
        f"{wallet.base_url}/sandbox/authcode", params={"appId": "app-1", "scopes": "auth_base", "user": "alice"}
    )
    auth_code = code.json()["authCode"]
    token = client.apply_token(app_id="app-1", auth_code=auth_code)
    assert token.customer_id
    assert token.access_token
    with pytest.raises(WalletBusinessFailure) as reused:
        client.apply_token(app_id="app-1", auth_code=auth_code)
    assert reused.value.result_code in {"USED_AUTHCODE", "USED_CODE"}


def test_merchant_registration_is_reviewed(wallet, client_for, settings):
    from apps.superapps.client.messages import RegistrationRequest

    settings.SANDBOX_REVIEW_DELAY = 0
    client = client_for()
    request_id = f"reg_{ULID()}"
    result = client.register_merchant(
        RegistrationRequest(
            registration_request_id=request_id,
            notify_url=f"{wallet.base_url}/nowhere",
            reference_merchant_id="mer_a1",
            merchant_display_name="Test Merchant",
            legal_name="Test Merchant Ltd",
            registration_no="REG-123456",
            registration_type="ENTERPRISE_REGISTRATION_NO",
            business_type="ENTERPRISE",
            effective_date="2020-01-01",
            expiry_date="2099-12-31",
            address={"region": "PH", "city": "Manila", "address1": "1 Rizal Ave"},
        )
    )
    assert result.status.value == "S"
    status = client.inquire_registration(registration_request_id=request_id).status
    assert status in {RegistrationStatus.PENDING, RegistrationStatus.COMPLETED}


def _wait_for_delivery(reference: str, *, attempts: int = 1):
    """The sandbox delivers in a background thread: wait (bounded) until it has tried ``attempts`` times."""
    import time

    from apps.sandbox.models import Notification

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        notification = Notification.objects.filter(reference=reference).first()
        if notification is not None and notification.attempt_count >= attempts:
            return notification
        time.sleep(0.05)
    raise AssertionError(f"no delivery attempt for {reference}")


def test_the_payment_notification_reaches_the_platform_verified_and_acknowledged(world, wallet, client_for):
    client = client_for()
    request = _pay_request(wallet)
    response = client.pay(request, app_id="app-1")
    _pay_at_cashier(response.payment_url)
    notification = _wait_for_delivery(response.payment_id)
    assert notification.status == "DELIVERED"
    stored = InboundNotification.objects.unscoped().get(subject=request.payment_request_id)
    assert (stored.kind, stored.status, stored.merchant_id) == ("payment", "received", world.a.merchants[0].merchant.pk)


def test_a_forged_notification_is_refused_and_left_for_retry(wallet, client_for):
    client = client_for(faults={"bad_signature": True})
    # With bad_signature the pay answer itself is refused; the payment exists at the wallet nonetheless.
    request = _pay_request(wallet)
    with pytest.raises(ResponseSignatureError):
        client.pay(request, app_id="app-1")
    payment_id = client_for().inquire_payment(payment_request_id=request.payment_request_id).payment_id
    from apps.sandbox.models import Payment

    payment_url = f"{wallet.base_url}/sandbox/cashier/{Payment.objects.get(payment_id=payment_id).payment_id}"
    _pay_at_cashier(payment_url)
    notification = _wait_for_delivery(payment_id)
    assert notification.status == "PENDING"
    assert notification.attempts.get().status_code == 401


@pytest.mark.parametrize("status", ["F", "U"])
@pytest.mark.parametrize("code", ["PAYMENT_IN_PROCESS", "REFUND_IN_PROCESS"])
def test_still_in_process_is_an_unknown_outcome_whatever_status_a_wallet_gives_it(wallet, client_for, status, code):
    """A real wallet's gateway may answer unsigned with ``F`` beside an in-process code (the sandbox never
    does): the client must not read that as a refusal."""
    answer = {"result": {"resultStatus": status, "resultCode": code, "resultMessage": "in process"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    client = WalletClient(client_for().config, http=httpx.Client(transport=transport))
    with pytest.raises(WalletUnknownOutcome):
        client.pay(_pay_request(wallet), app_id="shop-app")
