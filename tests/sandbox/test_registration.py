"""Merchant registration (§7): submission, the review rule, notifyRegistrationStatus and the inquiry."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from apps.sandbox import services
from apps.sandbox.models import Notification, Registration
from tests.sandbox.conftest import CLIENT_ID, join_notifiers, verifies


def registration_body(
    request_id="reg_0001", merchant="M0001", number="91310000MA1K3Y1234", expires="2030-12-31", **extra
):
    return {
        "registrationRequestId": request_id,
        "merchantInfo": {
            "referenceMerchantId": merchant,
            "merchantDisplayName": "Demo Coffee",
            "merchantMCC": "5814",
            "registrationDetail": {
                "legalName": "Demo Coffee Sdn Bhd",
                "registrationType": "ENTERPRISE_REGISTRATION_NO",
                "registrationNo": number,
                "businessType": "ENTERPRISE",
                "registrationEffectiveDate": "2020-01-01",
                "registrationExpireDate": expires,
                "registrationAddress": {"region": "MY", "city": "Kuala Lumpur", "address1": "1 Jalan"},
                "attachments": [{"attachmentType": "LICENSE", "fileKey": "k1", "attachmentName": "licence.pdf"}],
            },
        },
        "productCodes": ["CASHIER_PAYMENT"],
        **extra,
    }


def review_after_delay():
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=6)):
        return services.deliver_due_notifications()


def inquiry(caller, **lookup):
    return caller.post("merchants/inquiryRegistrationStatus", lookup, version="ams/api/v1")


def test_registration_is_accepted_pending(caller, wallet_public_pem):
    answer = caller.post("merchants/registration", registration_body(passThroughInfo="abc"), version="ams/api/v1")
    assert answer.result == {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"}
    assert answer.json["registrationResult"] == {"registrationStatus": "PENDING"}
    assert answer.json["passThroughInfo"] == "abc"
    assert answer.signed_by(wallet_public_pem)
    assert inquiry(caller, registrationRequestId="reg_0001").json["registrationResult"] == {
        "registrationStatus": "PENDING"
    }


def test_review_completes_after_the_delay_and_notifies(caller, receiver, wallet_public_pem):
    body = registration_body(registrationNotifyURL=receiver.url("/registration/notify"))
    caller.post("merchants/registration", body, version="ams/api/v1")
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=4)):
        assert services.deliver_due_notifications() == 0
    assert review_after_delay() == 1
    notification = receiver.received[0]
    assert notification.path == "/registration/notify"
    assert verifies(
        wallet_public_pem,
        "POST",
        "/registration/notify",
        CLIENT_ID,
        notification.headers["Request-Time"],
        notification.body,
        notification.headers["Signature"],
    )
    assert notification.json == {
        "referenceMerchantId": "M0001",
        "registrationRequestId": "reg_0001",
        "registrationResult": {"registrationStatus": "COMPLETED"},
        "pspRegistrationResultList": [],
    }
    assert inquiry(caller, referenceMerchantId="M0001").json["registrationResult"] == {
        "registrationStatus": "COMPLETED"
    }


@pytest.mark.parametrize(
    ("number", "expires", "reason"),
    [
        ("91310000MA1K3Y1000", "2030-12-31", "registration number not found in the business registry"),
        ("91310000MA1K3Y1234", "2020-12-31", "business license expired"),
    ],
)
def test_review_rejects(caller, receiver, number, expires, reason):
    body = registration_body(number=number, expires=expires, registrationNotifyURL=receiver.url())
    caller.post("merchants/registration", body, version="ams/api/v1")
    review_after_delay()
    rejected = {"registrationStatus": "REJECTED", "rejectReason": reason}
    assert receiver.received[0].json["registrationResult"] == rejected
    assert inquiry(caller, registrationRequestId="reg_0001").json["registrationResult"] == rejected


def test_inquiry_completes_an_overdue_review_itself(caller, receiver):
    caller.post("merchants/registration", registration_body(registrationNotifyURL=receiver.url()), version="v2")
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=6)):
        answer = caller.post("merchants/inquiryRegistrationStatus", {"registrationRequestId": "reg_0001"})
    assert answer.json["registrationResult"] == {"registrationStatus": "COMPLETED"}
    join_notifiers()
    assert len(receiver.wait_for(1)) == 1
    assert Notification.objects.get().status == "DELIVERED"


def test_review_delay_follows_the_settings(caller, settings):
    settings.SANDBOX_REVIEW_DELAY = 60
    settings.SANDBOX_TIME_SCALE = 0.5
    caller.post("merchants/registration", registration_body(), version="ams/api/v1")
    registration = Registration.objects.get()
    assert registration.review_due_at - registration.created_at == dt.timedelta(seconds=30)


def test_registration_is_idempotent(caller):
    first = caller.post("merchants/registration", registration_body(), version="ams/api/v1")
    again = caller.post("merchants/registration", registration_body(), version="ams/api/v1")
    assert again.response.content == first.response.content
    changed = caller.post("merchants/registration", registration_body(number="1"), version="ams/api/v1")
    assert changed.result["resultCode"] == "REPEAT_REQ_INCONSISTENT"
    assert Registration.objects.count() == 1


def test_a_merchant_registers_again_only_after_a_rejection(caller):
    caller.post("merchants/registration", registration_body(number="X000"), version="ams/api/v1")
    second = caller.post("merchants/registration", registration_body("reg_2"), version="ams/api/v1")
    assert second.result["resultCode"] == "REPEAT_REGISTRATION"
    review_after_delay()
    third = caller.post("merchants/registration", registration_body("reg_3"), version="ams/api/v1")
    assert third.result["resultCode"] == "SUCCESS"
    assert inquiry(caller, referenceMerchantId="M0001").json["registrationRequestId"] == "reg_3"


def test_unknown_registration_is_record_not_found(caller):
    answer = inquiry(caller, registrationRequestId="nope")
    assert (answer.result["resultCode"], answer.result["resultStatus"]) == ("RECORD_NOT_FOUND", "F")
    assert inquiry(caller).result["resultCode"] == "PARAM_ILLEGAL"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("registrationRequestId",), None, "registrationRequestId"),
        (("merchantInfo",), None, "merchantInfo"),
        (("merchantInfo", "referenceMerchantId"), None, "merchantInfo.referenceMerchantId"),
        (
            ("merchantInfo", "registrationDetail", "registrationNo"),
            None,
            "merchantInfo.registrationDetail.registrationNo",
        ),
        (
            ("merchantInfo", "registrationDetail", "registrationExpireDate"),
            "someday",
            "merchantInfo.registrationDetail.registrationExpireDate",
        ),
        (("productCodes",), [], "productCodes"),
        (("registrationNotifyURL",), "not a url", "registrationNotifyURL"),
    ],
)
def test_invalid_registration_fields(caller, path, value, field):
    body = registration_body()
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    answer = caller.post("merchants/registration", body, version="ams/api/v1")
    assert answer.result["resultCode"] == "PARAM_ILLEGAL"
    assert answer.result["resultMessage"].startswith(field + " ")
    assert not Registration.objects.exists()
