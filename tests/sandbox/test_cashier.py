"""The cashier page (§4.1's redirectionUrl): what the user sees, Pay, Cancel, and what the merchant hears."""

import time_machine
from django.utils import timezone

from apps.sandbox.models import Balance, Notification, NotificationAttempt, Payment
from tests.sandbox.conftest import (
    ALICE_START,
    CLIENT_ID,
    CSRF_FIELD,
    PARTNER_ID,
    cashier_submit,
    join_notifiers,
    pay_body,
    verifies,
)


def create(caller, body=None, **options):
    answer = caller.post("payments/pay", body or pay_body(), **options)
    form = answer.json.get("redirectActionForm") or answer.json["actionForm"]
    return answer.json["paymentId"], form["redirectionUrl"]


def test_page_shows_payee_amount_description_and_users(caller):
    _, url = create(caller, pay_body(value="123456"))
    page = caller.http.get(url)
    assert page.status_code == 200
    assert 'name="viewport"' in page.text
    assert "Demo Coffee Kiosk" in page.text
    assert "USD 1,234.56" in page.text
    assert "Two flat whites" in page.text
    assert "Alice" in page.text
    assert "USD 1,000,000.00" in page.text
    assert "Bob" in page.text
    assert "USD 5.00" in page.text
    assert ">Pay</button>" in page.text
    assert ">Cancel</button>" in page.text
    assert "http" not in page.text.split("<body>")[0].lower()  # no CDN


def test_alice_opens_with_the_configured_balance(caller, settings):
    settings.SANDBOX_DEFAULT_BALANCE = 2500
    _, url = create(caller, pay_body(value="3000"))
    assert "USD 25.00" in caller.http.get(url).text
    assert "USER_BALANCE_NOT_ENOUGH" in cashier_submit(caller.http, url).text


def test_amount_uses_the_currency_exponent(caller):
    _, jpy = create(caller, pay_body("pr_jpy", value="1500", currency="JPY"))
    _, kwd = create(caller, pay_body("pr_kwd", value="1500", currency="KWD"))
    assert "JPY 1,500" in caller.http.get(jpy).text
    assert "KWD 1.500" in caller.http.get(kwd).text


def test_unknown_payment_is_404(caller):
    assert caller.http.get(caller.base_url + "/sandbox/cashier/12345").status_code == 404


def test_pay_moves_money_redirects_with_9000_and_notifies(caller, receiver, wallet_public_pem):
    body = pay_body(paymentNotifyUrl=receiver.url(), paymentRedirectUrl="https://shop.example/done?order=7#top")
    payment_id, url = create(caller, body)
    response = cashier_submit(caller.http, url)
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/done?order=7&resultCode=9000#top"
    payment = Payment.objects.get()
    assert (payment.status, payment.payer.login, payment.payer.customer_id) == ("SUCCESS", "alice", "2188000000000001")
    assert Balance.objects.get(user__login="alice", currency="USD").amount == ALICE_START - 1000
    assert Balance.objects.get(client__client_id=CLIENT_ID, currency="USD").amount == 1000

    notification = receiver.wait_for(1)[0]
    join_notifiers()
    assert notification.path == "/notify"
    assert notification.headers["Client-Id"] == CLIENT_ID
    assert verifies(
        wallet_public_pem,
        "POST",
        "/notify",
        CLIENT_ID,
        notification.headers["Request-Time"],
        notification.body,
        notification.headers["Signature"],
    )
    assert notification.json == {
        "paymentId": payment_id,
        "paymentRequestId": "pr_0001",
        "paymentResult": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
        "paymentAmount": {"currency": "USD", "value": "1000"},
        "paymentTime": notification.json["paymentTime"],
        "paymentCreateTime": notification.json["paymentCreateTime"],
    }
    stored = Notification.objects.get()
    assert (stored.status, stored.attempt_count) == ("DELIVERED", 1)
    assert NotificationAttempt.objects.get().status_code == 200


def test_v1_notification_shape(caller, receiver):
    body = {
        "partnerId": PARTNER_ID,
        "paymentOrderTitle": "SHOES",
        "paymentRequestId": "pr_v1",
        "paymentAmount": {"currency": "MYR", "value": "250"},
        "paymentNotifyUrl": receiver.url("/v1/notify"),
        "paymentReturnUrl": "https://shop.example/back",
    }
    payment_id, url = create(caller, body, version="v1")
    response = cashier_submit(caller.http, url)
    assert response.headers["location"] == "https://shop.example/back?resultCode=9000"
    notification = receiver.wait_for(1)[0]
    assert notification.path == "/v1/notify"
    assert notification.json == {
        "partnerId": PARTNER_ID,
        "paymentId": payment_id,
        "paymentRequestId": "pr_v1",
        "paymentAmount": {"currency": "MYR", "value": "250"},
        "paymentTime": notification.json["paymentTime"],
        "paymentStatus": "SUCCESS",
    }


def test_without_a_redirect_url_a_result_page_is_shown(caller):
    _, url = create(caller)
    response = cashier_submit(caller.http, url)
    assert response.status_code == 200
    assert '<strong id="result-code">9000</strong>' in response.text
    assert not Notification.objects.exists()


def test_cancel_redirects_with_6001_and_the_payment_stays_payable(caller):
    _, url = create(caller, pay_body(paymentRedirectUrl="https://shop.example/done"))
    response = cashier_submit(caller.http, url, action="cancel")
    assert response.headers["location"] == "https://shop.example/done?resultCode=6001"
    assert Payment.objects.get().status == "PROCESSING"
    assert ">Pay</button>" in caller.http.get(url).text
    assert cashier_submit(caller.http, url).headers["location"].endswith("resultCode=9000")
    assert Payment.objects.get().status == "SUCCESS"


def test_cancel_without_a_redirect_url_shows_6001(caller):
    _, url = create(caller)
    response = cashier_submit(caller.http, url, action="cancel")
    assert '<strong id="result-code">6001</strong>' in response.text


def test_insufficient_balance_shows_the_error_and_stays_payable(caller):
    _, url = create(caller, pay_body(value="501"))
    assert "not enough" in caller.http.get(url).text
    response = cashier_submit(caller.http, url, user="bob")
    assert "USER_BALANCE_NOT_ENOUGH" in response.text
    assert ">Pay</button>" in response.text
    assert Payment.objects.get().status == "PROCESSING"
    assert not Balance.objects.exclude(user__login="bob", amount=500).exclude(user__login="alice").exists()
    assert cashier_submit(caller.http, url, user="alice").status_code == 200


def test_bob_can_pay_exactly_his_balance(caller):
    _, url = create(caller, pay_body(value="500"))
    cashier_submit(caller.http, url, user="bob")
    assert Balance.objects.get(user__login="bob", currency="USD").amount == 0


def test_unknown_user_is_refused(caller):
    _, url = create(caller)
    response = cashier_submit(caller.http, url, user="mallory")
    assert "USER_NOT_EXIST" in response.text
    assert Payment.objects.get().status == "PROCESSING"


def test_pay_needs_the_csrf_token(caller):
    _, url = create(caller)
    caller.http.get(url)
    assert caller.http.post(url, data={"action": "pay", "user": "alice"}).status_code == 403
    assert Payment.objects.get().status == "PROCESSING"


def test_a_paid_page_shows_its_state_and_cannot_be_paid_twice(caller):
    _, url = create(caller)
    page = caller.http.get(url)
    cashier_submit(caller.http, url)
    again = caller.http.get(url)
    assert "has been paid" in again.text
    assert ">Pay</button>" not in again.text
    token = CSRF_FIELD.search(page.text).group(1)
    replay = caller.http.post(url, data={"csrfmiddlewaretoken": token, "action": "pay", "user": "alice"})
    assert "ORDER_STATUS_INVALID" in replay.text
    assert Balance.objects.get(user__login="alice", currency="USD").amount == ALICE_START - 1000


def test_a_cancelled_payment_shows_its_state(caller):
    payment_id, url = create(caller)
    caller.post("payments/cancel", {"paymentId": payment_id})
    page = caller.http.get(url)
    assert "was cancelled" in page.text
    assert ">Pay</button>" not in page.text


def test_an_expired_payment_shows_its_state_and_reports_fail(caller):
    expiry = (timezone.now() + timezone.timedelta(minutes=15)).isoformat()
    payment_id, url = create(caller, pay_body(paymentExpiryTime=expiry))
    assert ">Pay</button>" in caller.http.get(url).text
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=16)):
        page = caller.http.get(url)
        assert "has expired" in page.text
        assert ">Pay</button>" not in page.text
        inquiry = caller.post("payments/inquiryPayment", {"paymentId": payment_id})
        assert inquiry.json["paymentStatus"] == "FAIL"
        assert inquiry.json["paymentFailReason"] == "PAYMENT_EXPIRED"


def test_a_post_without_a_known_action_changes_nothing(caller):
    _, url = create(caller)
    response = cashier_submit(caller.http, url, action="refund")
    assert response.status_code == 400
    assert ">Pay</button>" in response.text
    assert Payment.objects.get().status == "PROCESSING"
