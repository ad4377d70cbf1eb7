"""The OpenAPI endpoints (§4, §7): each handler reads and checks its fields, calls one service or selector,
and returns the response body. Signing, faults and errors are the gateway's business (``views.openapi``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.utils import timezone

from . import selectors, services
from .models import Payment, Refund, SandboxClient
from .protocol import (
    Dialect,
    WalletError,
    amount,
    datetime_field,
    fingerprint,
    flag,
    illegal,
    iso,
    money,
    obj,
    one_of,
    result,
    string,
    url,
)


@dataclasses.dataclass(frozen=True)
class ApiCall:
    client: SandboxClient
    dialect: Dialect
    body: dict
    faults: dict
    cashier_url: Callable[[str], str]


def pay(call: ApiCall) -> dict:
    body, client = call.body, call.client
    if call.dialect is Dialect.V1:
        partner_id = _partner(call, required=True)
        description = string(body, "paymentOrderTitle", max_length=256)
        payee_name, redirect_url = client.name, url(body, "paymentReturnUrl")
        string(body, "extendInfo", max_length=4096, required=False)
    else:
        partner_id = ""
        if call.dialect.needs_mini_program_ids:
            string(body, "appId", max_length=32)
        order = obj(body, "order")
        description = string(order, "orderDescription", max_length=256, required=False, path="order.")
        merchant = obj(order, "merchant", path="order.")
        payee_name = (
            string(merchant, "merchantDisplayName", max_length=256, required=False, path="order.merchant.")
            or client.name
        )
        redirect_url = url(body, "paymentRedirectUrl")
    currency, value = amount(body, "paymentAmount")
    order = services.PaymentOrder(
        payment_request_id=string(body, "paymentRequestId", max_length=64),
        currency=currency,
        amount=value,
        product_code=string(body, "productCode", max_length=32, required=False) or "CASHIER_PAYMENT",
        payee_name=payee_name,
        order_description=description,
        notify_url=url(body, "paymentNotifyUrl"),
        redirect_url=redirect_url,
        expires_at=datetime_field(body, "paymentExpiryTime"),
        partner_id=partner_id,
        authorization=flag(obj(body, "paymentFactor"), "isAuthorizationPayment", default=False, path="paymentFactor."),
    )
    return services.payment_create(
        client=client,
        dialect=call.dialect,
        order=order,
        fingerprint=fingerprint(body),
        fault_settings=call.faults,
        cashier_url=call.cashier_url,
    )


def inquiry_payment(call: ApiCall) -> dict:
    """An authorization reads SUCCESS once authorised (``authExpiryTime`` then tells until when it can be
    captured) and lists its captures in ``transactions``, as Antom's inquiryPayment does."""
    if call.dialect is Dialect.V1:
        _partner(call, required=True)
    payment = services.payment_expire_if_due(payment=_payment(call))
    now = timezone.now()
    status = Payment.Status.FAIL if payment.is_expired(now) else payment.status
    answer = {
        "result": result(),
        "paymentId": payment.payment_id,
        "paymentRequestId": payment.payment_request_id,
        "paymentAmount": money(payment.currency, payment.amount),
        "paymentStatus": status,
        "paymentCreateTime": iso(payment.created_at),
    }
    if payment.paid_at:
        answer["paymentTime"] = iso(payment.paid_at)
    if status == Payment.Status.FAIL:
        answer["paymentFailReason"] = "PAYMENT_EXPIRED"
    if payment.authorization and payment.paid_at:
        answer["authExpiryTime"] = iso(payment.auth_expires_at)
        answer["transactions"] = [
            {
                "transactionResult": result(),
                "transactionId": capture.capture_id,
                "transactionRequestId": capture.capture_request_id,
                "transactionType": "CAPTURE",
                "transactionStatus": "SUCCESS",
                "transactionAmount": money(capture.currency, capture.amount),
                "transactionTime": iso(capture.captured_at),
            }
            for capture in payment.captures.order_by("captured_at", "pk")
        ]
    return answer


def cancel(call: ApiCall) -> dict:
    if call.dialect is Dialect.V1:
        _partner(call, required=False)
    payment = services.payment_cancel(payment=_payment(call))
    return {
        "result": result(),
        "paymentId": payment.payment_id,
        "paymentRequestId": payment.payment_request_id,
        "cancelTime": iso(payment.cancelled_at),
    }


def capture(call: ApiCall) -> dict:
    """``captureAmount`` absent captures all that is left; ``isLastCapture`` (default true) gives the rest of
    the authorization back to the payer, ``false`` keeps it for further captures."""
    body = call.body
    if call.dialect is Dialect.V1:
        _partner(call, required=True)
    capture_request_id = string(body, "captureRequestId", max_length=64)
    currency, value = amount(body, "captureAmount") if body.get("captureAmount") is not None else (None, None)
    last = flag(body, "isLastCapture", default=True)
    payment_id = string(body, "paymentId", max_length=64)
    payment = selectors.payment_find(client=call.client, payment_id=payment_id, payment_request_id="")
    if payment is None:
        raise WalletError("AUTH_NOT_FOUND", "no such authorization")
    return services.payment_capture(
        client=call.client,
        payment=payment,
        capture_request_id=capture_request_id,
        fingerprint=fingerprint(body),
        currency=currency,
        amount=value,
        last=last,
    )


def refund(call: ApiCall) -> dict:
    body = call.body
    if call.dialect is Dialect.V1:
        _partner(call, required=True)
    refund_request_id = string(body, "refundRequestId", max_length=64)
    currency, value = amount(body, "refundAmount")
    reason = string(body, "refundReason", max_length=256, required=False)
    notify_url = string(body, "refundNotifyUrl", max_length=1024, required=False)
    return services.refund_create(
        client=call.client,
        payment=_payment(call),
        refund_request_id=refund_request_id,
        fingerprint=fingerprint(body),
        currency=currency,
        amount=value,
        reason=reason,
        notify_url=notify_url or "",
        leave_processing=bool(call.faults.get("result_u")),
    )


def inquiry_refund(call: ApiCall) -> dict:
    if call.dialect is Dialect.V1:
        _partner(call, required=True)
    refund_id, refund_request_id = one_of(call.body, "refundId", "refundRequestId")
    found = selectors.refund_find(client=call.client, refund_id=refund_id, refund_request_id=refund_request_id)
    if found is None:
        raise WalletError("REFUND_NOT_EXIST", "no such refund")
    found = services.refund_complete(refund=found)
    answer = {
        "result": result(),
        "refundId": found.refund_id,
        "refundRequestId": found.refund_request_id,
        "refundAmount": money(found.currency, found.amount),
        "refundStatus": found.status,
    }
    if found.reason:
        answer["refundReason"] = found.reason
    if found.status == Refund.Status.SUCCESS:
        answer["refundTime"] = iso(found.refunded_at)
    return answer


def apply_token(call: ApiCall) -> dict:
    body, client = call.body, call.client
    grant_type = string(body, "grantType", max_length=32)
    app_id = ""
    if call.dialect.needs_mini_program_ids:
        app_id = string(body, "appId", max_length=32)
        if string(body, "authClientId", max_length=128) != client.client_id:
            raise WalletError("INVALID_AUTH_CLIENT", "authClientId must be the calling Client-Id")
    if grant_type == "AUTHORIZATION_CODE":
        code = string(body, "authCode", max_length=64)
        grant = services.token_from_auth_code(client=client, dialect=call.dialect, code=code, app_id=app_id)
    elif grant_type == "REFRESH_TOKEN":
        grant = services.token_refresh(client=client, refresh_token=string(body, "refreshToken", max_length=128))
    else:
        raise WalletError("AUTH_CLIENT_UNSUPPORTED_GRANT_TYPE", f"grantType {grant_type} is not supported")
    return {
        "result": result(),
        "accessToken": grant.access_token,
        "accessTokenExpiryTime": iso(grant.access_token_expires_at),
        "refreshToken": grant.refresh_token,
        "refreshTokenExpiryTime": iso(grant.refresh_token_expires_at),
        "customerId": grant.user.customer_id,
    }


def registration(call: ApiCall) -> dict:
    body = call.body
    info = obj(body, "merchantInfo", required=True)
    detail = obj(info, "registrationDetail", required=True, path="merchantInfo.")
    detail_path = "merchantInfo.registrationDetail."
    string(info, "merchantDisplayName", max_length=256, path="merchantInfo.")
    string(detail, "legalName", max_length=256, path=detail_path)
    string(detail, "registrationNo", max_length=64, path=detail_path)
    for field in ("registrationEffectiveDate", "registrationExpireDate"):
        try:
            services.license_expiry(detail.get(field))
        except ValueError:
            raise illegal(detail_path + field, "must be an ISO 8601 date") from None
    product_codes = body.get("productCodes")
    if not isinstance(product_codes, list) or not product_codes or not all(isinstance(c, str) for c in product_codes):
        raise illegal("productCodes", "must be a non-empty array of strings")
    request = services.RegistrationRequest(
        registration_request_id=string(body, "registrationRequestId", max_length=64),
        reference_merchant_id=string(info, "referenceMerchantId", max_length=64, path="merchantInfo."),
        notify_url=url(body, "registrationNotifyURL", max_length=2048),
        merchant_info=info,
        product_codes=product_codes,
        pass_through_info=string(body, "passThroughInfo", max_length=2048, required=False),
    )
    return services.registration_submit(
        client=call.client, request=request, fingerprint=fingerprint(body), fault_settings=call.faults
    )


def inquiry_registration_status(call: ApiCall) -> dict:
    request_id, reference = one_of(call.body, "registrationRequestId", "referenceMerchantId")
    found = selectors.registration_find(
        client=call.client, registration_request_id=request_id, reference_merchant_id=reference
    )
    if found is None:
        raise WalletError("RECORD_NOT_FOUND", "no such registration")
    found = services.registration_review_if_due(registration=found)
    return {
        "result": result(),
        "referenceMerchantId": found.reference_merchant_id,
        "registrationRequestId": found.registration_request_id,
        "registrationResult": services.registration_result(found),
        "pspRegistrationResultList": [],
    }


HANDLERS: dict[str, Callable[[ApiCall], dict]] = {
    "payments/pay": pay,
    "payments/inquiryPayment": inquiry_payment,
    "payments/cancel": cancel,
    "payments/capture": capture,
    "payments/refund": refund,
    "payments/inquiryRefund": inquiry_refund,
    "authorizations/applyToken": apply_token,
    "merchants/registration": registration,
    "merchants/inquiryRegistrationStatus": inquiry_registration_status,
}


def _payment(call: ApiCall) -> Payment:
    payment_id, payment_request_id = one_of(call.body, "paymentId", "paymentRequestId")
    payment = selectors.payment_find(client=call.client, payment_id=payment_id, payment_request_id=payment_request_id)
    if payment is None:
        raise WalletError("ORDER_NOT_EXIST", "no such payment")
    return payment


def _partner(call: ApiCall, *, required: bool) -> str:
    """v1 names the merchant by ``partnerId``; when the client has one registered, it must match."""
    partner_id = string(call.body, "partnerId", max_length=32, required=required)
    if partner_id and call.client.partner_id and partner_id != call.client.partner_id:
        raise WalletError("PARTNER_NOT_EXIST", f"partnerId {partner_id} does not belong to this client")
    return partner_id
