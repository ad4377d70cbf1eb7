"""The platform's client of one super app's OpenAPI. It knows the wire protocol, nothing about orders.

Every call: JSON body serialised once, signed over those exact bytes, POSTed with explicit timeouts, the
answer's signature verified over the raw bytes received, then mapped: ``S``/``A`` → a typed response,
``F`` → ``WalletBusinessFailure``, anything uncertain → ``WalletUnknownOutcome``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from apps.core.money import Money

from . import evidence, keys, signing, transport
from .classic import ClassicGateway, checked_pay_timeout, classic_amount, classic_time, trans_currency
from .errors import ResponseSignatureError, WalletBusinessFailure, WalletUnknownOutcome
from .messages import (
    AccessToken,
    ApiVersion,
    CancelResponse,
    CaptureResult,
    ClassicAuthorization,
    ClassicRefund,
    ClassicTrade,
    ClassicUnfreeze,
    MessageError,
    PaymentInquiry,
    PayRequest,
    PayResponse,
    RefundInquiry,
    RefundRequest,
    RefundResponse,
    RegistrationRequest,
    RegistrationResult,
    Result,
    ResultStatus,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Codes that say "not finished yet", whatever result status a wallet puts beside them: never a failure.
STILL_PROCESSING_CODES = frozenset({"PAYMENT_IN_PROCESS", "REFUND_IN_PROCESS", "CAPTURE_IN_PROCESS"})


@dataclasses.dataclass(frozen=True, slots=True)
class WalletOwner:
    """The stored credential a config signs for, so each call's evidence is filed under its tenant."""

    credential_id: int
    isv_id: int
    merchant_id: int | None
    super_app_id: int


@dataclasses.dataclass(frozen=True)
class WalletConfig:
    """Everything needed to talk to one super app as one client (an ISV or a merchant)."""

    base_url: str  # gateway base including any path prefix, e.g. https://api.wallet.example/api/open
    api_version: ApiVersion
    client_id: str
    private_key_pem: str = dataclasses.field(repr=False)
    wallet_public_key_pem: str
    key_version: str = "1"
    partner_id: str | None = None  # v1 only
    site_name: str | None = None  # customerBelongsTo
    classic_gateway_url: str | None = None  # gateway.do, for orderStr payments
    classic_app_id: str | None = None  # this client's app_id at the classic gateway
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    owner: WalletOwner | None = None  # None: not a stored credential's; its calls are not kept as evidence


_pools: dict[tuple[str, float, float], httpx.Client] = {}
_pools_lock = threading.Lock()


def _pool(config: WalletConfig) -> httpx.Client:
    """One keep-alive connection pool per wallet host and timeout pair, per process."""
    origin = urllib.parse.urlsplit(config.base_url)._replace(path="", query="", fragment="").geturl()
    key = (origin, config.connect_timeout, config.read_timeout)
    with _pools_lock:
        if key not in _pools:
            timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
            _pools[key] = httpx.Client(timeout=timeout, follow_redirects=False)
        return _pools[key]


def close_pools() -> None:
    """Close every pooled connection (tests, and worker shutdown)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class WalletClient:
    def __init__(self, config: WalletConfig, *, http: httpx.Client | None = None) -> None:
        self.config = config
        self._http = http or _pool(config)

    # -- operations ------------------------------------------------------------------------------

    def pay(self, request: PayRequest, *, app_id: str) -> PayResponse:
        """``payments/pay`` (cashier payment, or with ``request.authorization`` an authorization to capture
        later). ``A`` carries the cashier URL for ``my.tradePay``."""
        body = request.body(
            version=self.config.api_version,
            app_id=app_id,
            partner_id=self.config.partner_id,
            site_name=self.config.site_name,
        )
        return self._call("payments/pay", body, PayResponse.parse)

    def inquire_payment(
        self, *, payment_id: str | None = None, payment_request_id: str | None = None
    ) -> PaymentInquiry:
        """``payments/inquiryPayment``. A successful answer means the query worked; read ``status``."""
        body = self._identify(paymentId=payment_id, paymentRequestId=payment_request_id)
        return self._call("payments/inquiryPayment", body, PaymentInquiry.parse)

    def cancel(self, *, payment_id: str | None = None, payment_request_id: str | None = None) -> CancelResponse:
        """``payments/cancel``: close an unpaid payment (or return a paid one in full, wallet permitting); an
        authorization nothing was captured from is voided, its frozen money back to the payer."""
        body = self._identify(paymentId=payment_id, paymentRequestId=payment_request_id)
        return self._call("payments/cancel", body, CancelResponse.parse)

    def capture(self, *, capture_request_id: str, payment_id: str, amount: Money, last: bool = True) -> CaptureResult:
        """``payments/capture`` of an authorization, in minor units of its currency; ``captureRequestId`` makes
        retries idempotent. ``last`` (``isLastCapture``) gives the uncaptured rest back to the payer; ``False``
        keeps it for further captures. Captures show in ``inquire_payment().captures``."""
        body = self._identify(paymentId=payment_id)
        body |= {"captureRequestId": capture_request_id, "captureAmount": amount.to_wire(), "isLastCapture": last}
        return self._call("payments/capture", body, CaptureResult.parse)

    def refund(self, request: RefundRequest) -> RefundResponse:
        """``payments/refund``; ``refundRequestId`` makes retries idempotent."""
        body = request.body(
            version=self.config.api_version,
            partner_id=self.config.partner_id,
            site_name=self.config.site_name,
        )
        return self._call("payments/refund", body, RefundResponse.parse)

    def inquire_refund(self, *, refund_id: str | None = None, refund_request_id: str | None = None) -> RefundInquiry:
        body = self._identify(refundId=refund_id, refundRequestId=refund_request_id)
        return self._call("payments/inquiryRefund", body, RefundInquiry.parse)

    def apply_token(self, *, app_id: str, auth_code: str) -> AccessToken:
        """``authorizations/applyToken``: a user's auth code → access token and wallet ``customerId``."""
        if self.config.api_version is ApiVersion.V1:
            body = {
                "referenceClientId": self.config.client_id,
                "grantType": "AUTHORIZATION_CODE",
                "authCode": auth_code,
            }
            if self.config.site_name:
                body["extendInfo"] = json.dumps({"customerBelongsTo": self.config.site_name})
        else:
            body = {
                "appId": app_id,
                "authClientId": self.config.client_id,
                "grantType": "AUTHORIZATION_CODE",
                "authCode": auth_code,
            }
        return self._call("authorizations/applyToken", body, AccessToken.parse)

    def register_merchant(self, request: RegistrationRequest) -> Result:
        """``merchants/registration`` (AMS, always v1): submit a business license for verification."""
        return self._call("merchants/registration", request.body(), Result.parse, version=ApiVersion.V1)

    def inquire_registration(self, *, registration_request_id: str) -> RegistrationResult:
        body = {"registrationRequestId": registration_request_id}
        return self._call("merchants/inquiryRegistrationStatus", body, RegistrationResult.parse, version=ApiVersion.V1)

    # -- classic gateway (orderStr payments, §8) -------------------------------------------------

    def trade_pay_order_str(
        self, *, out_trade_no: str, amount: Money, subject: str, time_expire: dt.datetime, notify_url: str = ""
    ) -> str:
        """The signed orderStr of ``alipay.trade.app.pay`` for ``my.tradePay({orderStr})``; no HTTP. Amounts
        are major units, so only two-decimal currencies (else ``ValueError``); ``trans_currency`` unless CNY.
        Without ``notify_url`` the wallet sends no async notification and only ``trade_query`` tells."""
        biz = {
            "out_trade_no": out_trade_no,
            "total_amount": classic_amount(amount),
            "subject": subject,
            "product_code": "QUICK_MSECURITY_PAY",
            "time_expire": classic_time(time_expire),
            **trans_currency(amount),
        }
        return self._classic().order_str("alipay.trade.app.pay", biz, notify_url=notify_url)

    def trade_query(self, *, out_trade_no: str) -> ClassicTrade:
        """``alipay.trade.query``. An orderStr the user never opened is ``ACQ.TRADE_NOT_EXIST``."""
        return self._classic().call("alipay.trade.query", {"out_trade_no": out_trade_no}, ClassicTrade.parse)

    def trade_refund(
        self, *, out_trade_no: str, out_request_no: str, amount: Money, reason: str | None = None
    ) -> ClassicRefund:
        """``alipay.trade.refund`` of part or all of a paid trade; ``out_request_no`` makes retries idempotent
        (a repeat answers ``fund_change=False``)."""
        biz = {
            "out_trade_no": out_trade_no,
            "out_request_no": out_request_no,
            "refund_amount": classic_amount(amount),
            "refund_reason": reason,
            "refund_currency": None if amount.currency == "CNY" else amount.currency,
        }
        biz = {key: value for key, value in biz.items() if value}
        return self._classic().call(
            "alipay.trade.refund",
            biz,
            lambda body: ClassicRefund.parse_refund(body, out_request_no=out_request_no, amount=amount),
        )

    def trade_refund_query(self, *, out_trade_no: str, out_request_no: str) -> ClassicRefund | None:
        """``alipay.trade.fastpay.refund.query``; ``None``: the wallet made no such refund."""
        biz = {"out_trade_no": out_trade_no, "out_request_no": out_request_no}
        return self._classic().call("alipay.trade.fastpay.refund.query", biz, ClassicRefund.parse_query)

    def trade_close(self, *, out_trade_no: str) -> None:
        """``alipay.trade.close``: the unpaid trade can no longer be paid (a paid one: ``ACQ.TRADE_STATUS_ERROR``)."""
        self._classic().call("alipay.trade.close", {"out_trade_no": out_trade_no}, lambda body: None)

    # -- classic pre-authorisation (§8.3) --------------------------------------------------------

    def freeze_order_str(
        self,
        *,
        out_order_no: str,
        out_request_no: str,
        amount: Money,
        title: str,
        pay_timeout: str,
        notify_url: str = "",
    ) -> str:
        """The signed orderStr of ``alipay.fund.auth.order.app.freeze`` (``PRE_AUTH_ONLINE``) for
        ``my.tradePay({orderStr})``; no HTTP. ``pay_timeout`` is from ``1m`` to ``15d`` (whole m, h or d; else
        ``ValueError``), two-decimal currencies only, ``trans_currency`` unless CNY. No ``payee_user_id``: the
        docs need it only for Huabei, the payee defaults to the app's account. The ``fund_auth_freeze``
        notification (with ``notify_url``) or ``auth_query`` tells the ``auth_no``."""
        biz = {
            "out_order_no": out_order_no,
            "out_request_no": out_request_no,
            "order_title": title,
            "amount": classic_amount(amount),
            "product_code": "PRE_AUTH_ONLINE",
            "pay_timeout": checked_pay_timeout(pay_timeout),
            **trans_currency(amount),
        }
        return self._classic().order_str("alipay.fund.auth.order.app.freeze", biz, notify_url=notify_url)

    def auth_query(self, *, out_order_no: str, out_request_no: str) -> ClassicAuthorization:
        """``alipay.fund.auth.operation.detail.query`` of the freeze: its state and totals. A freeze whose
        orderStr was never opened is ``AUTH_ORDER_NOT_EXIST``."""
        biz = {"out_order_no": out_order_no, "out_request_no": out_request_no}
        return self._classic().call("alipay.fund.auth.operation.detail.query", biz, ClassicAuthorization.parse)

    def auth_capture(
        self, *, auth_no: str, out_trade_no: str, amount: Money, subject: str, complete: bool
    ) -> ClassicTrade:
        """``alipay.trade.pay`` from a pre-authorisation's frozen money: a new paid trade (query and refund it as
        any trade). ``complete`` (``auth_confirm_mode=COMPLETE``) gives the rest back to the payer; otherwise it
        stays frozen. ``out_trade_no`` makes retries idempotent. Refusals: ``ACQ.AUTH_AMOUNT_NOT_ENOUGH`` (above
        what is frozen), ``ACQ.AUTH_NO_ERROR`` (finished, closed or expired)."""
        biz = {
            "out_trade_no": out_trade_no,
            "product_code": "PRE_AUTH_ONLINE",
            "auth_no": auth_no,
            "total_amount": classic_amount(amount),
            "subject": subject,
            "auth_confirm_mode": "COMPLETE" if complete else "NOT_COMPLETE",
            **trans_currency(amount),
        }
        return self._classic().call("alipay.trade.pay", biz, lambda body: ClassicTrade.parse_pay(body, amount=amount))

    def auth_unfreeze(self, *, auth_no: str, out_request_no: str, amount: Money, remark: str) -> ClassicUnfreeze:
        """``alipay.fund.auth.order.unfreeze``: give part or all of what is frozen back to the payer;
        ``out_request_no`` (with the same amount) makes retries idempotent. Refusals: ``REQUEST_AMOUNT_EXCEED``,
        ``ORDER_ALREADY_FINISH``, ``ORDER_ALREADY_CLOSED``. The answer has no rest: ``auth_query`` tells it."""
        biz = {"auth_no": auth_no, "out_request_no": out_request_no, "amount": classic_amount(amount), "remark": remark}
        return self._classic().call(
            "alipay.fund.auth.order.unfreeze",
            biz,
            lambda body: ClassicUnfreeze.parse(body, out_request_no=out_request_no, amount=amount),
        )

    # -- settlement files ------------------------------------------------------------------------

    def download_settlement_file(self, *, day: dt.date, destination) -> int:
        """``GET <base>/settlements/<client-id>/<YYYY-MM-DD>.csv``: the day's settlement CSV (amounts in minor
        units), streamed into the binary file object ``destination``; returns the number of bytes written.

        Signed like a call over an empty body (``GET <path>``); the answer's signature is verified over the
        exact bytes received, hashed as they stream (constant memory). Raises ``WalletBusinessFailure`` for a
        signed refusal (``ACCESS_DENIED``, a file not there: ``FILE_NOT_FOUND`` for HTTP 404),
        ``WalletUnknownOutcome`` for anything else; the caller discards ``destination`` on any error.
        """
        base_path = urllib.parse.urlsplit(self.config.base_url).path.rstrip("/")
        path = f"{base_path}/settlements/{urllib.parse.quote(self.config.client_id, safe='')}/{day.isoformat()}.csv"
        timestamp = signing.now_timestamp()
        headers = {
            "Client-Id": self.config.client_id,
            "Request-Time": timestamp,
            "Signature": signing.sign(
                keys.load_private_key(self.config.private_key_pem),
                path=path,
                client_id=self.config.client_id,
                timestamp=timestamp,
                body=b"",
                key_version=self.config.key_version,
                method="GET",
            ),
        }
        url = urllib.parse.urlsplit(self.config.base_url)._replace(path=path).geturl()
        operation = "settlements"
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code == 404:
                    raise WalletBusinessFailure("FILE_NOT_FOUND", f"no settlement file for {day}")
                if response.status_code in (401, 403):
                    answer = response.read()
                    raise WalletBusinessFailure("ACCESS_DENIED", answer[:200].decode(errors="replace"))
                if response.status_code != 200:
                    raise WalletUnknownOutcome(f"{operation}: HTTP {response.status_code}")
                signature = response.headers.get("signature")
                response_time = response.headers.get("response-time")
                answering_client = response.headers.get("client-id", self.config.client_id)
                digest = hashlib.sha256(
                    signing.content_to_sign(
                        method="GET", path=path, client_id=answering_client, timestamp=response_time or "", body=b""
                    )
                )
                size = 0
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    destination.write(chunk)
                    size += len(chunk)
        except httpx.TimeoutException as error:
            raise WalletUnknownOutcome(f"{operation}: timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise WalletUnknownOutcome(f"{operation}: connection failed ({type(error).__name__})") from None
        if answering_client != self.config.client_id or not signature or not response_time:
            raise ResponseSignatureError(f"{operation}: the answer is unsigned or addressed to another client")
        public_key = keys.load_public_key(self.config.wallet_public_key_pem)
        if not _verify_prehashed(public_key, digest.digest(), signature):
            raise ResponseSignatureError(f"{operation}: the answer's signature does not verify")
        return size

    def _classic(self) -> ClassicGateway:
        return ClassicGateway(self.config, self._http)

    # -- transport -------------------------------------------------------------------------------

    def path_for(self, operation: str, version: ApiVersion | None = None) -> str:
        base_path = urllib.parse.urlsplit(self.config.base_url).path.rstrip("/")
        return f"{base_path}/{(version or self.config.api_version).value}/{operation}"

    def _identify(self, **ids: str | None) -> dict:
        present = {key: value for key, value in ids.items() if value}
        if not present:
            raise ValueError(f"one of {sorted(ids)} is required")
        if self.config.api_version is ApiVersion.V1 and self.config.partner_id:
            present["partnerId"] = self.config.partner_id
        return present

    def _call(self, operation: str, body: dict, parse: Callable[[dict], T], *, version: ApiVersion | None = None) -> T:
        path = self.path_for(operation, version)
        raw_body = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = signing.now_timestamp()
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Client-Id": self.config.client_id,
            "Request-Time": timestamp,
            "Signature": signing.sign(
                keys.load_private_key(self.config.private_key_pem),
                path=path,
                client_id=self.config.client_id,
                timestamp=timestamp,
                body=raw_body,
                key_version=self.config.key_version,
            ),
        }
        url = urllib.parse.urlsplit(self.config.base_url)._replace(path=path).geturl()
        with evidence.recorded(self.config, operation, body) as exchange:
            response = transport.post(self._http, exchange, url, content=raw_body, headers=headers)
            answer = exchange.answer  # parsed once, as received
            try:
                if not isinstance(answer, dict):
                    raise MessageError("the answer is not a JSON object")
                result = Result.parse(answer)
            except MessageError as error:
                raise WalletUnknownOutcome(f"{operation}: unreadable answer ({error})") from None
            exchange.result_status, exchange.result_code = result.status.value, result.code
            exchange.signature_verified = self._verify_response(operation, path, response, result)
            logger.info("wallet %s → %s %s", operation, result.status.value, result.code)
            if result.status is ResultStatus.FAILED and result.code not in STILL_PROCESSING_CODES:
                raise WalletBusinessFailure(result.code, result.message)
            if result.status in (ResultStatus.FAILED, ResultStatus.UNKNOWN):
                raise WalletUnknownOutcome(f"{operation}: {result.code}", result_code=result.code)
            try:
                return parse(answer)
            except MessageError as error:
                raise WalletUnknownOutcome(f"{operation}: malformed answer ({error})") from None

    def _verify_response(self, operation: str, path: str, response: httpx.Response, result: Result) -> bool:
        """Whether the answer's signature verified; ``False`` for an unsigned error answer, which is accepted.
        Raises ``ResponseSignatureError`` for any other answer that does not verify."""
        signature = response.headers.get("signature")
        response_time = response.headers.get("response-time")
        answering_client = response.headers.get("client-id", self.config.client_id)
        if answering_client != self.config.client_id:
            raise ResponseSignatureError(f"{operation}: the answer is addressed to another client")
        if signature is None and response_time is None and result.status in (ResultStatus.FAILED, ResultStatus.UNKNOWN):
            return False  # error answers may come unsigned (as the official SDK also accepts)
        verified = (
            signature is not None
            and response_time is not None
            and signing.verify(
                keys.load_public_key(self.config.wallet_public_key_pem),
                path=path,
                client_id=answering_client,
                timestamp=response_time,
                body=response.content,
                signature_header=signature,
            )
        )
        if not verified:
            raise ResponseSignatureError(f"{operation}: the answer's signature does not verify")
        return True


def _verify_prehashed(public_key, digest: bytes, signature_header: str) -> bool:
    """``signing.verify`` for a message already hashed with SHA-256 (a body too large to hold in memory)."""
    fields = signing.parse_signature_header(signature_header)
    if fields.get("algorithm", signing.ALGORITHM).upper() != signing.ALGORITHM or not fields.get("signature"):
        return False
    try:
        raw = base64.b64decode(urllib.parse.unquote(fields["signature"]), validate=True)
        public_key.verify(raw, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
