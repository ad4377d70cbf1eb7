import pytest

from apps.core.money import Money
from apps.superapps.client.messages import (
    ApiVersion,
    MessageError,
    PaymentNotification,
    PaymentOutcome,
    PayRequest,
    PayResponse,
    RegistrationResult,
    RegistrationStatus,
)

REQUEST = PayRequest(
    payment_request_id="pay_1",
    amount=Money(1250, "USD"),
    order_description="Flat white",
    reference_order_id="ord_1",
    notify_url="https://isv.example/callbacks/x/payments/notify",
    redirect_url="https://isv.example/done",
)


def test_v2_pay_body():
    body = REQUEST.body(version=ApiVersion.V2, app_id="app-1", partner_id=None, site_name=None)
    assert body["appId"] == "app-1"
    assert body["productCode"] == "CASHIER_PAYMENT"
    assert body["paymentAmount"] == {"currency": "USD", "value": "1250"}
    assert body["order"]["orderDescription"] == "Flat white"
    assert body["paymentRedirectUrl"] == "https://isv.example/done"
    assert "partnerId" not in body


def test_v1_pay_body():
    body = REQUEST.body(version=ApiVersion.V1, app_id="app-1", partner_id="P001", site_name="GCASH")
    assert body["partnerId"] == "P001"
    assert body["paymentOrderTitle"] == "Flat white"
    assert body["paymentFactor"] == {"isCashierPayment": True}
    assert body["paymentReturnUrl"] == "https://isv.example/done"
    assert body["extendInfo"] == '{"customerBelongsTo": "GCASH"}'
    assert '"referenceOrderId":"ord_1"' in body["extraParams"]["ORDER"]


@pytest.mark.parametrize(
    "form",
    [
        {"redirectActionForm": {"method": "POST", "redirectionUrl": "https://w/c?1"}},
        {"redirectActionForm": {"method": "POST", "redirectUrl": "https://w/c?1"}},
        {"actionForm": {"actionFormType": "REDIRECTION", "redirectionUrl": "https://w/c?1"}},
    ],
)
def test_pay_response_accepts_every_cashier_url_spelling(form):
    body = {"result": {"resultStatus": "A", "resultCode": "ACCEPT"}, "paymentId": "p1", **form}
    assert PayResponse.parse(body).payment_url == "https://w/c?1"


def test_notifications_in_both_shapes():
    amount = {"currency": "MYR", "value": "100"}
    v2 = PaymentNotification.parse(
        {"paymentId": "p", "paymentRequestId": "r", "paymentAmount": amount, "paymentResult": {"resultStatus": "S"}}
    )
    v1 = PaymentNotification.parse(
        {"paymentId": "p", "paymentRequestId": "r", "paymentAmount": amount, "paymentStatus": "FAIL"}
    )
    assert (v2.outcome, v1.outcome) == (PaymentOutcome.SUCCEEDED, PaymentOutcome.FAILED)
    pending = PaymentNotification.parse(
        {"paymentId": "p", "paymentRequestId": "r", "paymentAmount": amount, "paymentStatus": "PROCESSING"}
    )
    unsure = PaymentNotification.parse(
        {"paymentId": "p", "paymentRequestId": "r", "paymentAmount": amount, "paymentResult": {"resultStatus": "U"}}
    )
    assert pending.outcome is unsure.outcome is PaymentOutcome.UNKNOWN  # never read as failed
    assert v2.amount == Money(100, "MYR")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"paymentId": "p", "paymentRequestId": "r", "paymentAmount": {"currency": "USD", "value": "1"}},
        {"paymentId": "p", "paymentRequestId": "r", "paymentStatus": "SUCCESS", "paymentAmount": "1 USD"},
        {"paymentId": 5, "paymentRequestId": "r", "paymentStatus": "SUCCESS"},
        {"paymentId": "p", "paymentRequestId": "r", "paymentResult": {"resultStatus": "Z"}},
    ],
)
def test_malformed_notifications_are_message_errors(body):
    with pytest.raises(MessageError):
        PaymentNotification.parse(body)


def test_registration_result():
    result = RegistrationResult.parse(
        {
            "registrationRequestId": "reg_1",
            "registrationResult": {"registrationStatus": "REJECTED", "rejectReason": "license expired"},
        }
    )
    assert (result.status, result.reject_reason) == (RegistrationStatus.REJECTED, "license expired")


def test_an_empty_optional_reason_is_no_reason():
    result = RegistrationResult.parse(
        {"registrationRequestId": "r", "registrationResult": {"registrationStatus": "COMPLETED", "rejectReason": ""}}
    )
    assert result.reject_reason is None
