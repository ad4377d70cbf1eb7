"""Reading a classic Alipay ``orderStr`` (§8): find the app, check its RSA2 signature, read ``biz_content``.

Errors carry the classic gateway's own codes (``isv.invalid-signature`` …) and end on an error page.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from decimal import Decimal

from . import selectors, signing
from .models import ClassicOrder, SandboxClient
from .protocol import WalletError, contains_nul, fingerprint
from .services import ClassicRequest

TRADE = "alipay.trade.app.pay"
FREEZE = "alipay.fund.auth.order.app.freeze"
_YUAN = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
_MAX_YUAN = Decimal("100000000.00")


def read_order_str(order_str: str) -> tuple[SandboxClient, ClassicRequest, str]:
    """The client, the order it asks for, and a fingerprint of that order's content."""
    params = dict(urllib.parse.parse_qsl(order_str, keep_blank_values=True))
    if contains_nul(params):
        raise WalletError("isv.invalid-parameter", "the orderStr must not contain NUL characters")
    client = selectors.client_for_classic_app(params.get("app_id", ""))
    if client is None:
        raise WalletError("isv.invalid-app-id", "no sandbox client has this app_id")
    if params.get("sign_type") != "RSA2":
        raise WalletError("isv.invalid-signature-type", "sign_type must be RSA2")
    if not signing.classic_verify(signing.load_public_key(client.public_key_pem), params):
        raise WalletError("isv.invalid-signature", "the orderStr signature does not verify")
    try:
        biz = json.loads(params.get("biz_content", ""))
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        raise WalletError("isv.invalid-parameter", "biz_content must be a JSON object")
    method = params.get("method", "")
    if method == TRADE:
        request = ClassicRequest(
            kind=ClassicOrder.Kind.TRADE,
            out_no=_text(biz, "out_trade_no"),
            out_request_no="",
            title=_text(biz, "subject", max_length=256),
            amount=_fen(biz, "total_amount"),
            notify_url=params.get("notify_url", ""),
        )
    elif method == FREEZE:
        if biz.get("product_code") != "PRE_AUTH_ONLINE":
            raise WalletError("isv.invalid-parameter", "product_code must be PRE_AUTH_ONLINE")
        request = ClassicRequest(
            kind=ClassicOrder.Kind.FREEZE,
            out_no=_text(biz, "out_order_no"),
            out_request_no=_text(biz, "out_request_no"),
            title=_text(biz, "order_title", max_length=256),
            amount=_fen(biz, "amount"),
            notify_url=params.get("notify_url", ""),
        )
    else:
        raise WalletError("isv.invalid-method", f"method must be {TRADE} or {FREEZE}")
    return client, request, fingerprint({"method": method, "biz_content": biz, "notify_url": request.notify_url})


def _text(biz: dict, field: str, *, max_length: int = 64) -> str:
    value = biz.get(field)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise WalletError("isv.invalid-parameter", f"{field} is required (at most {max_length} characters)")
    return value


def _fen(biz: dict, field: str) -> int:
    """A yuan amount string (``"0.02"``) in fen; from 0.01 to 100000000.00."""
    value = biz.get(field)
    if not isinstance(value, str) or not _YUAN.fullmatch(value) or not 0 < Decimal(value) <= _MAX_YUAN:
        raise WalletError("isv.invalid-parameter", f"{field} must be a yuan amount from 0.01 to 100000000.00")
    return int(Decimal(value) * 100)
