"""The classic Alipay gateway's request rules (§8): find the app, check its RSA2 signature, read ``biz_content``.

Used for ``orderStr`` (``/sandbox/tradepay``, errors end on an error page) and for ``gateway.do`` calls.
Errors carry the classic gateway's own codes (``isv.invalid-signature`` …).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from decimal import Decimal

from django.utils import timezone
from iso4217 import Currency

from . import conf, selectors, signing
from .models import ClassicOrder, SandboxClient
from .protocol import CLASSIC_TIME_ZONE, WalletError, contains_nul, fingerprint
from .services import ClassicRequest

TRADE = "alipay.trade.app.pay"
FREEZE = "alipay.fund.auth.order.app.freeze"
INVALID = "isv.invalid-parameter"
_AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
_TIMEOUT = re.compile(r"([0-9]{1,5})([mhd])")
_TIMEOUT_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_MAX_AMOUNT = Decimal("100000000.00")


def authenticate(params: dict[str, str]) -> SandboxClient:
    """The client whose ``classic_app_id`` is ``app_id``, once the RSA2 signature over every parameter but
    ``sign`` (``sign_type`` included) verifies with its key."""
    if contains_nul(params):
        raise WalletError(INVALID, "parameters must not contain NUL characters")
    client = selectors.client_for_classic_app(params.get("app_id", ""))
    if client is None:
        raise WalletError("isv.invalid-app-id", "no sandbox client has this app_id")
    if params.get("sign_type") != "RSA2":
        raise WalletError("isv.invalid-signature-type", "sign_type must be RSA2")
    if not signing.classic_verify(signing.load_public_key(client.public_key_pem), params):
        raise WalletError("isv.invalid-signature", "the signature does not verify")
    return client


def biz_content(params: dict[str, str]) -> dict:
    try:
        biz = json.loads(params.get("biz_content", ""))
    except (ValueError, RecursionError):
        biz = None
    if not isinstance(biz, dict) or contains_nul(biz):
        raise WalletError(INVALID, "biz_content must be a JSON object")
    return biz


def read_order_str(order_str: str) -> tuple[SandboxClient, ClassicRequest, str]:
    """The client, the order it asks for, and a fingerprint of that order's content."""
    params = dict(urllib.parse.parse_qsl(order_str, keep_blank_values=True))
    client = authenticate(params)
    biz = biz_content(params)
    method = params.get("method", "")
    common = {"currency": trans_currency(biz), "notify_url": params.get("notify_url", "")}
    if method == TRADE:
        request = ClassicRequest(
            kind=ClassicOrder.Kind.TRADE,
            out_no=text(biz, "out_trade_no"),
            out_request_no="",
            title=text(biz, "subject", max_length=256),
            amount=amount(biz, "total_amount"),
            expires_at=_time_expire(biz),
            **common,
        )
    elif method == FREEZE:
        if biz.get("product_code") != "PRE_AUTH_ONLINE":
            raise WalletError(INVALID, "product_code must be PRE_AUTH_ONLINE")
        request = ClassicRequest(
            kind=ClassicOrder.Kind.FREEZE,
            out_no=text(biz, "out_order_no"),
            out_request_no=text(biz, "out_request_no"),
            title=text(biz, "order_title", max_length=256),
            amount=amount(biz, "amount"),
            expires_at=timezone.now() + pay_timeout(biz),
            **common,
        )
    else:
        raise WalletError("isv.invalid-method", f"method must be {TRADE} or {FREEZE}")
    return client, request, fingerprint({"method": method, "biz_content": biz, "notify_url": request.notify_url})


def text(biz: dict, field: str, *, max_length: int = 64, required: bool = True, code: str = INVALID) -> str:
    value = biz.get(field)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise WalletError(code, f"{field} is required (at most {max_length} characters)")
    return value


def amount(biz: dict, field: str, *, code: str = INVALID) -> int:
    """A major-unit amount string with at most two decimals (``"0.02"``), from 0.01 to 100000000.00, in minor
    units: every currency the classic gateway takes has two decimals."""
    value = biz.get(field)
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or not 0 < Decimal(value) <= _MAX_AMOUNT:
        raise WalletError(code, f"{field} must be an amount from 0.01 to 100000000.00")
    return int(Decimal(value) * 100)


def trans_currency(biz: dict) -> str:
    """``trans_currency`` (default CNY): a sandbox currency with two decimals, like every classic amount."""
    currency = biz.get("trans_currency") or "CNY"
    if not isinstance(currency, str) or currency not in conf.get("CURRENCIES") or Currency(currency).exponent != 2:
        raise WalletError(INVALID, "trans_currency must be a supported currency with two decimals")
    return currency


def pay_timeout(biz: dict) -> dt.timedelta:
    """A freeze's ``pay_timeout``: whole minutes, hours or days (``90m``, ``2d``) from 1m to 15d, default 15m."""
    value = text(biz, "pay_timeout", max_length=8, required=False) or "15m"
    match = _TIMEOUT.fullmatch(value)
    timeout = dt.timedelta(**{_TIMEOUT_UNITS[match[2]]: int(match[1])}) if match else None
    if timeout is None or not dt.timedelta(minutes=1) <= timeout <= dt.timedelta(days=15):
        raise WalletError(INVALID, "pay_timeout must be from 1m to 15d (m, h or d, whole numbers)")
    return timeout


def _time_expire(biz: dict) -> dt.datetime | None:
    value = text(biz, "time_expire", max_length=19, required=False)
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CLASSIC_TIME_ZONE)
    except ValueError:
        raise WalletError(INVALID, "time_expire must be yyyy-MM-dd HH:mm:ss (Beijing time)") from None
