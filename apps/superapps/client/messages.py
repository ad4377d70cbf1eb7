"""Typed messages of the super app's OpenAPI, in API version v1 and v2 (protocol sections 3, 4 and 7), and the
answers of its classic gateway (section 8), pre-authorisation included.

Requests know how to render their JSON body for a version; responses and notifications parse defensively
(``MessageError`` for a body that does not have the documented shape).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, TypeVar

from apps.core.errors import ApplicationError
from apps.core.money import Money

E = TypeVar("E", bound=enum.Enum)


class MessageError(ValueError):
    """A wallet message that lacks a documented field or has the wrong type."""


class ApiVersion(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"


class ResultStatus(enum.StrEnum):
    SUCCESS = "S"
    ACCEPTED = "A"
    FAILED = "F"
    UNKNOWN = "U"


@dataclasses.dataclass(frozen=True)
class Result:
    status: ResultStatus
    code: str
    message: str = ""

    @classmethod
    def parse(cls, body: dict[str, Any], key: str = "result") -> Result:
        raw = body.get(key)
        if not isinstance(raw, dict):
            raise MessageError(f"missing {key}")
        status = _enum(ResultStatus, raw, "resultStatus")
        return cls(status=status, code=str(raw.get("resultCode", "")), message=str(raw.get("resultMessage", "")))


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MessageError(f"missing {key}")
    return value


def _enum(kind: type[E], body: dict[str, Any], key: str) -> E:
    try:
        return kind(body.get(key))
    except ValueError:
        raise MessageError(f"unknown {key} {body.get(key)!r}") from None


def _money(body: dict[str, Any], key: str, *, required: bool = True) -> Money | None:
    if body.get(key) is None and not required:
        return None
    try:
        return Money.from_wire(body.get(key))
    except ApplicationError as error:
        raise MessageError(f"{key}: {error.message}") from None


# --- payments/pay --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PayRequest:
    payment_request_id: str
    amount: Money
    order_description: str
    reference_order_id: str
    notify_url: str
    redirect_url: str | None = None
    expiry_time: str | None = None
    merchant_display_name: str | None = None
    authorization: bool = False  # paymentFactor.isAuthorizationPayment: authorise now, capture later

    def body(self, *, version: ApiVersion, app_id: str, partner_id: str | None, site_name: str | None) -> dict:
        authorization = {"isAuthorizationPayment": True} if self.authorization else {}
        if version is ApiVersion.V1:
            body = {
                "partnerId": partner_id,
                "appId": app_id,
                "paymentRequestId": self.payment_request_id,
                "paymentOrderTitle": self.order_description,
                "paymentAmount": self.amount.to_wire(),
                "paymentFactor": {"isCashierPayment": True, **authorization},
                "paymentNotifyUrl": self.notify_url,
                "paymentReturnUrl": self.redirect_url,
                "paymentExpiryTime": self.expiry_time,
                "extraParams": {"ORDER": json.dumps(self._order(), separators=(",", ":"))},
                "extendInfo": json.dumps({"customerBelongsTo": site_name}) if site_name else None,
            }
        else:
            body = {
                "appId": app_id,
                "productCode": "CASHIER_PAYMENT",
                "paymentRequestId": self.payment_request_id,
                "paymentAmount": self.amount.to_wire(),
                "order": self._order(),
                "paymentFactor": authorization or None,
                "paymentNotifyUrl": self.notify_url,
                "paymentRedirectUrl": self.redirect_url,
                "paymentExpiryTime": self.expiry_time,
            }
        return {key: value for key, value in body.items() if value is not None}

    def _order(self) -> dict:
        order = {
            "referenceOrderId": self.reference_order_id,
            "orderDescription": self.order_description,
            "orderAmount": self.amount.to_wire(),
        }
        if self.merchant_display_name:
            order["merchant"] = {"merchantDisplayName": self.merchant_display_name}
        return order


@dataclasses.dataclass(frozen=True)
class PayResponse:
    result: Result
    payment_id: str
    payment_url: str | None
    payment_time: str | None
    auth_expiry_time: str | None = None  # an authorization's, when the wallet says it up front

    @classmethod
    def parse(cls, body: dict) -> PayResponse:
        # v1 names it actionForm, v2 redirectActionForm; Antom's AMS spells the URL redirectUrl.
        form = body.get("redirectActionForm") or body.get("actionForm") or {}
        url = form.get("redirectionUrl") or form.get("redirectUrl") if isinstance(form, dict) else None
        return cls(
            result=Result.parse(body),
            payment_id=_text(body, "paymentId"),
            payment_url=url,
            payment_time=_text(body, "paymentTime", required=False),
            auth_expiry_time=_text(body, "authExpiryTime", required=False),
        )


# --- inquiryPayment, cancel ----------------------------------------------------------------------


class PaymentStatus(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    PROCESSING = "PROCESSING"
    CANCELLED = "CANCELLED"


@dataclasses.dataclass(frozen=True)
class CaptureRecord:
    """One successful capture of an authorization, as ``inquiryPayment`` lists it in ``transactions``."""

    capture_id: str
    capture_request_id: str | None
    amount: Money
    capture_time: str | None


@dataclasses.dataclass(frozen=True)
class PaymentInquiry:
    """For an authorization, ``SUCCESS`` means authorised; what was captured is in ``captures``."""

    payment_id: str | None
    payment_request_id: str | None
    status: PaymentStatus
    amount: Money | None
    payment_time: str | None
    fail_reason: str | None
    auth_expiry_time: str | None = None
    captures: tuple[CaptureRecord, ...] = ()

    @classmethod
    def parse(cls, body: dict) -> PaymentInquiry:
        status = _enum(PaymentStatus, body, "paymentStatus")
        return cls(
            payment_id=_text(body, "paymentId", required=False),
            payment_request_id=_text(body, "paymentRequestId", required=False),
            status=status,
            amount=_money(body, "paymentAmount", required=False),
            payment_time=_text(body, "paymentTime", required=False),
            fail_reason=_text(body, "paymentFailReason", required=False),
            auth_expiry_time=_text(body, "authExpiryTime", required=False),
            captures=_captures(body.get("transactions")),
        )


def _captures(transactions: object) -> tuple[CaptureRecord, ...]:
    """The successful CAPTURE entries of ``transactions`` (refunds and the rest are other stories)."""
    if transactions is None:
        return ()
    if not isinstance(transactions, list) or not all(isinstance(entry, dict) for entry in transactions):
        raise MessageError("transactions is not a list of objects")
    return tuple(
        CaptureRecord(
            capture_id=_text(entry, "transactionId"),
            capture_request_id=_text(entry, "transactionRequestId", required=False),
            amount=_money(entry, "transactionAmount"),
            capture_time=_text(entry, "transactionTime", required=False),
        )
        for entry in transactions
        if entry.get("transactionType") == "CAPTURE" and entry.get("transactionStatus") == "SUCCESS"
    )


@dataclasses.dataclass(frozen=True)
class CaptureResult:
    """``payments/capture`` that succeeded."""

    capture_request_id: str
    capture_id: str
    payment_id: str
    amount: Money
    capture_time: str | None

    @classmethod
    def parse(cls, body: dict) -> CaptureResult:
        return cls(
            capture_request_id=_text(body, "captureRequestId"),
            capture_id=_text(body, "captureId"),
            payment_id=_text(body, "paymentId"),
            amount=_money(body, "captureAmount"),
            capture_time=_text(body, "captureTime", required=False),
        )


@dataclasses.dataclass(frozen=True)
class CancelResponse:
    payment_id: str | None
    cancel_time: str | None

    @classmethod
    def parse(cls, body: dict) -> CancelResponse:
        return cls(
            payment_id=_text(body, "paymentId", required=False),
            cancel_time=_text(body, "cancelTime", required=False),
        )


# --- refund, inquiryRefund -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RefundRequest:
    refund_request_id: str
    payment_id: str
    amount: Money
    reason: str | None = None
    notify_url: str | None = None  # refundNotifyUrl: where notifyRefund goes

    def body(self, *, version: ApiVersion, partner_id: str | None, site_name: str | None) -> dict:
        body = {
            "refundRequestId": self.refund_request_id,
            "paymentId": self.payment_id,
            "refundAmount": self.amount.to_wire(),
            "refundReason": self.reason,
            "refundNotifyUrl": self.notify_url,
        }
        if version is ApiVersion.V1:
            body["partnerId"] = partner_id
            body["extendInfo"] = json.dumps({"customerBelongsTo": site_name}) if site_name else None
        return {key: value for key, value in body.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class RefundResponse:
    refund_id: str
    refund_time: str | None

    @classmethod
    def parse(cls, body: dict) -> RefundResponse:
        return cls(refund_id=_text(body, "refundId"), refund_time=_text(body, "refundTime", required=False))


class RefundStatus(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    PROCESSING = "PROCESSING"


@dataclasses.dataclass(frozen=True)
class RefundInquiry:
    refund_id: str | None
    refund_request_id: str | None
    status: RefundStatus
    amount: Money | None
    refund_time: str | None

    @classmethod
    def parse(cls, body: dict) -> RefundInquiry:
        status = _enum(RefundStatus, body, "refundStatus")
        return cls(
            refund_id=_text(body, "refundId", required=False),
            refund_request_id=_text(body, "refundRequestId", required=False),
            status=status,
            amount=_money(body, "refundAmount", required=False),
            refund_time=_text(body, "refundTime", required=False),
        )


# --- applyToken ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AccessToken:
    access_token: str
    access_token_expiry_time: str | None
    refresh_token: str | None
    refresh_token_expiry_time: str | None
    customer_id: str

    @classmethod
    def parse(cls, body: dict) -> AccessToken:
        return cls(
            access_token=_text(body, "accessToken"),
            access_token_expiry_time=_text(body, "accessTokenExpiryTime", required=False),
            refresh_token=_text(body, "refreshToken", required=False),
            refresh_token_expiry_time=_text(body, "refreshTokenExpiryTime", required=False),
            customer_id=_text(body, "customerId"),
        )


# --- merchant registration (AMS §7) --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegistrationRequest:
    registration_request_id: str
    notify_url: str
    reference_merchant_id: str
    merchant_display_name: str
    legal_name: str
    registration_no: str
    registration_type: str
    business_type: str
    effective_date: str
    expiry_date: str
    address: dict[str, str]
    attachments: list[dict[str, str]] = dataclasses.field(default_factory=list)
    product_codes: tuple[str, ...] = ("CASHIER_PAYMENT",)

    def body(self) -> dict:
        return {
            "registrationRequestId": self.registration_request_id,
            "registrationNotifyURL": self.notify_url,
            "productCodes": list(self.product_codes),
            "merchantInfo": {
                "referenceMerchantId": self.reference_merchant_id,
                "merchantDisplayName": self.merchant_display_name,
                "registrationDetail": {
                    "legalName": self.legal_name,
                    "registrationType": self.registration_type,
                    "registrationNo": self.registration_no,
                    "registrationAddress": self.address,
                    "businessType": self.business_type,
                    "registrationEffectiveDate": self.effective_date,
                    "registrationExpireDate": self.expiry_date,
                    "attachments": self.attachments,
                },
            },
        }


class RegistrationStatus(enum.StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"


@dataclasses.dataclass(frozen=True)
class RegistrationResult:
    """The outcome in an inquiry answer or a ``notifyRegistrationStatus`` body (same shape)."""

    reference_merchant_id: str | None
    registration_request_id: str | None
    status: RegistrationStatus
    reject_reason: str | None

    @classmethod
    def parse(cls, body: dict) -> RegistrationResult:
        result = body.get("registrationResult")
        if not isinstance(result, dict):
            raise MessageError("missing registrationResult")
        status = _enum(RegistrationStatus, result, "registrationStatus")
        return cls(
            reference_merchant_id=_text(body, "referenceMerchantId", required=False),
            registration_request_id=_text(body, "registrationRequestId", required=False),
            status=status,
            reject_reason=_text(result, "rejectReason", required=False),
        )


# --- classic gateway (gateway.do, §8): trade query, refund, refund query --------------------------


def _major_money(body: dict[str, Any], key: str, currency: str) -> Money:
    value = _text(body, key)
    try:
        return Money.from_major(value, currency)
    except ApplicationError as error:
        raise MessageError(f"{key}: {error.message}") from None


def _classic_currency(body: dict[str, Any], key: str) -> str:
    """Answers name a currency other than CNY, the gateway's own."""
    return _text(body, key, required=False) or "CNY"


class ClassicTradeStatus(enum.StrEnum):
    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    TRADE_SUCCESS = "TRADE_SUCCESS"
    TRADE_CLOSED = "TRADE_CLOSED"  # closed unpaid, or refunded in full
    TRADE_FINISHED = "TRADE_FINISHED"  # paid, and no longer refundable


@dataclasses.dataclass(frozen=True)
class ClassicTrade:
    """``alipay.trade.query``, or the trade ``alipay.trade.pay`` made from a pre-authorisation."""

    trade_no: str
    out_trade_no: str
    status: ClassicTradeStatus
    amount: Money
    buyer_id: str | None
    paid_at: str | None  # send_pay_date, Beijing time

    @classmethod
    def parse(cls, body: dict) -> ClassicTrade:
        status = _enum(ClassicTradeStatus, body, "trade_status")
        return cls(
            trade_no=_text(body, "trade_no"),
            out_trade_no=_text(body, "out_trade_no"),
            status=status,
            amount=_major_money(body, "total_amount", _classic_currency(body, "trans_currency")),
            buyer_id=_text(body, "buyer_user_id", required=False),
            paid_at=_text(body, "send_pay_date", required=False),
        )

    @classmethod
    def parse_pay(cls, body: dict, *, amount: Money) -> ClassicTrade:
        """``alipay.trade.pay`` answers ``10000`` only for a paid trade, and names no status; its amount must
        be the one asked for."""
        paid = _major_money(body, "total_amount", _classic_currency(body, "trans_currency"))
        if paid != amount:
            raise MessageError(f"total_amount {paid} is not the {amount} asked for")
        return cls(
            trade_no=_text(body, "trade_no"),
            out_trade_no=_text(body, "out_trade_no"),
            status=ClassicTradeStatus.TRADE_SUCCESS,
            amount=paid,
            buyer_id=_text(body, "buyer_user_id", required=False),
            paid_at=_text(body, "gmt_payment", required=False),
        )


@dataclasses.dataclass(frozen=True)
class ClassicRefund:
    """One refund request (``out_request_no``) of a trade, as ``alipay.trade.refund`` or
    ``alipay.trade.fastpay.refund.query`` tell it."""

    out_trade_no: str
    out_request_no: str
    trade_no: str | None
    amount: Money  # this request's amount
    refunded_total: Money | None  # refund_fee: all refunds of the trade so far (refund answers only)
    fund_change: bool | None  # refund answers: False when the request had been made before
    refunded_at: str | None  # gmt_refund_pay, Beijing time

    @classmethod
    def parse_refund(cls, body: dict, *, out_request_no: str, amount: Money) -> ClassicRefund:
        """A refund answer names neither the request nor its amount, only the running total."""
        if _text(body, "refund_currency", required=False) not in (None, amount.currency):
            raise MessageError(f"refund_currency is not {amount.currency}")
        return cls(
            out_trade_no=_text(body, "out_trade_no"),
            out_request_no=out_request_no,
            trade_no=_text(body, "trade_no", required=False),
            amount=amount,
            refunded_total=_major_money(body, "refund_fee", amount.currency),
            fund_change=body.get("fund_change") == "Y",
            refunded_at=_text(body, "gmt_refund_pay", required=False),
        )

    @classmethod
    def parse_query(cls, body: dict) -> ClassicRefund | None:
        """``None`` when the wallet knows no such refund: a success without ``refund_amount`` (or with a
        ``refund_status`` other than ``REFUND_SUCCESS``) means the refund was not made."""
        if body.get("refund_amount") in (None, "") or body.get("refund_status", "REFUND_SUCCESS") != "REFUND_SUCCESS":
            return None
        return cls(
            out_trade_no=_text(body, "out_trade_no"),
            out_request_no=_text(body, "out_request_no"),
            trade_no=_text(body, "trade_no", required=False),
            amount=_major_money(body, "refund_amount", _classic_currency(body, "refund_currency")),
            refunded_total=None,
            fund_change=None,
            refunded_at=_text(body, "gmt_refund_pay", required=False),
        )


# --- classic pre-authorisation (§8.3): detail query, unfreeze ------------------------------------


class ClassicAuthStatus(enum.StrEnum):
    """``order_status`` of a pre-authorisation."""

    INIT = "INIT"  # the user has not authorised it (yet)
    AUTHORIZED = "AUTHORIZED"  # money frozen: capture or unfreeze it
    FINISH = "FINISH"  # paid from, nothing left frozen
    CLOSED = "CLOSED"  # expired, or unfrozen in full


@dataclasses.dataclass(frozen=True)
class ClassicAuthorization:
    """``alipay.fund.auth.operation.detail.query`` of the freeze operation. ``unfrozen`` is worked out (the
    answer has no such total): what was frozen, less what was captured and what is still frozen."""

    auth_no: str
    out_order_no: str
    status: ClassicAuthStatus
    amount: Money  # asked to freeze
    frozen: Money  # total_freeze_amount: frozen once authorised (zero before)
    rest: Money  # rest_amount: still frozen
    captured: Money  # total_pay_amount
    unfrozen: Money  # given back to the payer (unfreezes, a COMPLETE capture's rest, expiry)
    payer_id: str | None
    authorized_at: str | None  # gmt_trans of the freeze, Beijing time

    @classmethod
    def parse(cls, body: dict) -> ClassicAuthorization:
        currency = _classic_currency(body, "trans_currency")
        frozen, captured, rest = (
            _major_money(body, key, currency) for key in ("total_freeze_amount", "total_pay_amount", "rest_amount")
        )
        unfrozen = frozen.value - captured.value - rest.value
        if unfrozen < 0:
            raise MessageError("total_pay_amount and rest_amount exceed total_freeze_amount")
        return cls(
            auth_no=_text(body, "auth_no"),
            out_order_no=_text(body, "out_order_no"),
            status=_enum(ClassicAuthStatus, body, "order_status"),
            amount=_major_money(body, "amount", currency),
            frozen=frozen,
            rest=rest,
            captured=captured,
            unfrozen=Money(unfrozen, currency),
            payer_id=_text(body, "payer_user_id", required=False),
            authorized_at=_text(body, "gmt_trans", required=False),
        )


@dataclasses.dataclass(frozen=True)
class ClassicUnfreeze:
    """``alipay.fund.auth.order.unfreeze``. The answer carries no rest_amount; ``auth_query`` tells it."""

    auth_no: str
    out_request_no: str
    operation_id: str
    amount: Money
    unfrozen_at: str | None  # gmt_trans, Beijing time

    @classmethod
    def parse(cls, body: dict, *, out_request_no: str, amount: Money) -> ClassicUnfreeze:
        unfrozen = _major_money(body, "amount", amount.currency)
        if _text(body, "out_request_no") != out_request_no or unfrozen != amount:
            raise MessageError("the answer is not about this unfreeze")
        return cls(
            auth_no=_text(body, "auth_no"),
            out_request_no=out_request_no,
            operation_id=_text(body, "operation_id"),
            amount=unfrozen,
            unfrozen_at=_text(body, "gmt_trans", required=False),
        )


# --- notifyPayment (wallet → platform) -----------------------------------------------------------


class PaymentOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # never read as a failure: an inquiry settles it


_V1_OUTCOMES = {"SUCCESS": PaymentOutcome.SUCCEEDED, "FAIL": PaymentOutcome.FAILED}
_V2_OUTCOMES = {ResultStatus.SUCCESS: PaymentOutcome.SUCCEEDED, ResultStatus.FAILED: PaymentOutcome.FAILED}


@dataclasses.dataclass(frozen=True)
class PaymentNotification:
    payment_id: str
    payment_request_id: str
    outcome: PaymentOutcome
    amount: Money
    payment_time: str | None
    customer_id: str | None

    @classmethod
    def parse(cls, body: dict) -> PaymentNotification:
        """Both shapes: v1 ``paymentStatus`` and v2/TNG ``paymentResult``; anything not plainly success or
        failure is an unknown outcome."""
        if "paymentResult" in body:
            outcome = _V2_OUTCOMES.get(Result.parse(body, "paymentResult").status, PaymentOutcome.UNKNOWN)
        elif "paymentStatus" in body:
            outcome = _V1_OUTCOMES.get(body["paymentStatus"], PaymentOutcome.UNKNOWN)
        else:
            raise MessageError("neither paymentResult nor paymentStatus")
        return cls(
            payment_id=_text(body, "paymentId"),
            payment_request_id=_text(body, "paymentRequestId"),
            outcome=outcome,
            amount=_money(body, "paymentAmount"),
            payment_time=_text(body, "paymentTime", required=False),
            customer_id=_text(body, "customerId", required=False),
        )


@dataclasses.dataclass(frozen=True)
class RefundNotification:
    """``notifyRefund``: a refund's final result."""

    refund_id: str
    refund_request_id: str
    succeeded: bool
    amount: Money

    @classmethod
    def parse(cls, body: dict) -> RefundNotification:
        status = _text(body, "refundStatus")
        if status not in ("SUCCESS", "FAIL"):
            raise MessageError(f"unknown refundStatus {status!r}")
        return cls(
            refund_id=_text(body, "refundId"),
            refund_request_id=_text(body, "refundRequestId"),
            succeeded=status == "SUCCESS",
            amount=_money(body, "refundAmount"),
        )


NOTIFICATION_ACK = {"result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"}}


# --- classic async notifications (§8.4): trades and pre-authorisation operations ---------------------


class ClassicNotificationType(enum.StrEnum):
    TRADE = "trade_status_sync"  # an orderStr trade, or one paid from a pre-authorisation (a capture)
    FREEZE = "fund_auth_freeze"
    UNFREEZE = "fund_auth_unfreeze"


@dataclasses.dataclass(frozen=True)
class ClassicNotification:
    """A classic notification's fields (already verified). ``out_no`` is the trade's ``out_trade_no``, the
    freeze's ``out_order_no``; ``operation_no`` the operation's ``out_request_no`` (freeze and unfreeze);
    ``wallet_no`` the ``trade_no`` or ``auth_no``; ``status`` the ``trade_status`` or operation ``status`` as
    sent. ``succeeded`` is ``True`` for a paid trade or a done operation and ``None`` for anything else
    (waiting, closed, refunded): a classic notification never proves a failure; the platform asks."""

    type: ClassicNotificationType
    notify_id: str
    app_id: str
    out_no: str
    operation_no: str | None
    wallet_no: str
    status: str
    succeeded: bool | None
    amount: Money

    @classmethod
    def parse(cls, params: dict) -> ClassicNotification:
        kind = _enum(ClassicNotificationType, params, "notify_type")
        currency = _classic_currency(params, "trans_currency")
        if kind is ClassicNotificationType.TRADE:
            status = _enum(ClassicTradeStatus, params, "trade_status")
            paid = status in (ClassicTradeStatus.TRADE_SUCCESS, ClassicTradeStatus.TRADE_FINISHED)
            return cls(
                type=kind,
                notify_id=_text(params, "notify_id"),
                app_id=_text(params, "app_id"),
                out_no=_text(params, "out_trade_no"),
                operation_no=None,
                wallet_no=_text(params, "trade_no"),
                status=status.value,
                succeeded=True if paid else None,
                amount=_major_money(params, "total_amount", currency),
            )
        status = _text(params, "status")
        return cls(
            type=kind,
            notify_id=_text(params, "notify_id"),
            app_id=_text(params, "app_id"),
            out_no=_text(params, "out_order_no"),
            operation_no=_text(params, "out_request_no"),
            wallet_no=_text(params, "auth_no"),
            status=status,
            succeeded=True if status == "SUCCESS" else None,
            amount=_major_money(params, "amount", currency),
        )
