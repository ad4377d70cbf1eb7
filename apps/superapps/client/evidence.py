"""What one wallet call said and heard, kept as evidence for support: every call passes through ``recorded``.

The exchange is filled in as the call goes (the answer, whether its signature verified, the wallet's result)
and handed on when the call ends, however it ends. Secrets and personal data are scrubbed before anything
leaves this module; keeping the exchange can never change the call's outcome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from apps.core import metrics

from .errors import ResponseSignatureError, WalletUnknownOutcome

if TYPE_CHECKING:
    from .client import WalletConfig

logger = logging.getLogger(__name__)

SCRUBBED = "[scrubbed]"
# Keys whose values are credentials or name a person, compared without case or underscores (authCode and
# auth_code alike). Amounts, request and wallet ids, and result codes stay: they are what support reads.
SCRUBBED_KEYS = frozenset(
    {
        "authcode",
        "accesstoken",
        "refreshtoken",
        "customerid",
        "userid",
        "buyerid",
        "buyeruserid",
        "buyerlogonid",
        "buyeropenid",
        "openid",
        "loginid",
        "userloginid",
        "payeruserid",
        "phoneno",
        "mobile",
        "email",
        "cardno",
        "cardnumber",
        "pan",
        "cvv",
        "cvc",
        "expirydate",
    }
)
# Where the request id a call is about sits, most specific first: a refund's own id before its payment's.
SUBJECT_KEYS = (
    "refundRequestId",
    "captureRequestId",
    "paymentRequestId",
    "registrationRequestId",
    "out_request_no",
    "out_trade_no",
    "out_order_no",
)
MAX_TEXT = 20_000  # an answer that is not JSON (an HTML error page) is kept up to this many characters


def scrubbed(value: Any) -> Any:
    """``value`` with the value of every key in ``SCRUBBED_KEYS`` replaced, at any depth. The key itself stays,
    so the evidence still shows it was sent."""
    if isinstance(value, dict):
        return {key: SCRUBBED if _normalised(key) in SCRUBBED_KEYS else scrubbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrubbed(item) for item in value]
    return value


def _normalised(key: Any) -> str:
    return str(key).replace("_", "").lower()


def subject_of(request: dict) -> str:
    """The request id the call is about (empty for calls about no payment, such as applyToken)."""
    return next((str(request[key]) for key in SUBJECT_KEYS if request.get(key)), "")


@dataclasses.dataclass
class Exchange:
    """One call as it happened. ``answer`` is the parsed body when it parses, else its text."""

    operation: str
    request: dict
    http_status: int | None = None
    answer: Any = None
    signature_verified: bool | None = None
    result_status: str = ""
    result_code: str = ""
    error: str = ""
    duration_ms: int = 0

    def received(self, response: httpx.Response) -> None:
        self.http_status = response.status_code
        self.signature_verified = False  # until the caller has verified it
        try:
            self.answer = json.loads(response.content)
        except (ValueError, RecursionError):
            self.answer = response.content[:MAX_TEXT].decode("utf-8", errors="replace")

    @property
    def subject(self) -> str:
        return subject_of(self.request)


@contextlib.contextmanager
def recorded(config: WalletConfig, operation: str, request: dict) -> Iterator[Exchange]:
    """Time the call in the ``with`` block and keep its exchange when it ends, whatever the outcome.

    An unknown outcome is the error (``ResponseSignatureError`` also marks the signature as not verified); a
    wallet's definite "no" is a result, not an error, and is already in ``result_*``.
    """
    exchange = Exchange(operation=operation, request=request)
    started = time.monotonic()
    try:
        yield exchange
    except WalletUnknownOutcome as unknown:
        exchange.error = unknown.reason[:500]
        if isinstance(unknown, ResponseSignatureError):
            exchange.signature_verified = False
        raise
    finally:
        seconds = time.monotonic() - started
        exchange.duration_ms = round(seconds * 1000)
        metrics.wallet_call_made(
            operation=operation,
            result_status=exchange.result_status,
            result_code=exchange.result_code,
            error=bool(exchange.error),
            seconds=seconds,
        )
        _keep(config, exchange)


def _keep(config: WalletConfig, exchange: Exchange) -> None:
    """Hand the exchange to storage; a failure there is logged, never raised into the payment call."""
    from apps.superapps.services import wallet_exchange_record  # the client is imported before the models are

    try:
        wallet_exchange_record(config=config, exchange=exchange)
    except Exception:
        logger.exception("wallet %s: the exchange could not be recorded", exchange.operation)
