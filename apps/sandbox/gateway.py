"""The classic gateway's APIs (``gateway.do``) for orderStr trades: query, refund, refund query and close.

Each handler reads ``biz_content``, calls one service or selector, and returns the members of the
``…_response`` object; authentication, faults and signing are the view's (``views.gateway``). Business
failures are ``WalletError`` with the gateway's ``ACQ.*`` codes, answered as ``40004``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from . import selectors, services
from .classic import amount, text
from .models import ClassicOrder, SandboxClient
from .protocol import WalletError, classic_amount, classic_time

INVALID = "ACQ.INVALID_PARAMETER"
SYSTEM_ERROR = {
    "code": "20000",
    "msg": "Service Currently Unavailable",
    "sub_code": "aop.ACQ.SYSTEM_ERROR",
    "sub_msg": "system error; call again with the same parameters",
}


def success(fields: dict) -> dict:
    return {"code": "10000", "msg": "Success", **fields}


def failure(error: WalletError) -> dict:
    """``isv.*`` (the request itself) is ``40002 Invalid Arguments``; anything else ``40004 Business Failed``."""
    code, msg = ("40002", "Invalid Arguments") if error.code.startswith("isv.") else ("40004", "Business Failed")
    return {"code": code, "msg": msg, "sub_code": error.code, "sub_msg": error.message}


def trade_query(client: SandboxClient, biz: dict) -> dict:
    order = _trade(client, biz)
    answer = {
        **_ids(order),
        "trade_status": _trade_status(order),
        "total_amount": classic_amount(order.amount),
        **_currency("trans_currency", order.currency),
    }
    if order.payer:
        answer["buyer_user_id"] = order.payer.customer_id
    if order.paid_at:
        answer["send_pay_date"] = classic_time(order.paid_at)
    return answer


def trade_refund(client: SandboxClient, biz: dict) -> dict:
    order = _trade(client, biz)
    value = amount(biz, "refund_amount", code=INVALID)
    if text(biz, "refund_currency", max_length=3, required=False, code=INVALID) not in ("", order.currency):
        raise WalletError(INVALID, f"refund_currency must be the trade's currency {order.currency}")
    refund, moved = services.classic_refund_create(
        order=order,
        out_request_no=text(biz, "out_request_no", required=False, code=INVALID) or order.out_no,
        amount=value,
        reason=text(biz, "refund_reason", max_length=256, required=False, code=INVALID),
    )
    return {
        **_ids(order),
        "buyer_user_id": order.payer.customer_id,
        "fund_change": "Y" if moved else "N",
        "refund_fee": classic_amount(refund.refund_total),
        "gmt_refund_pay": classic_time(refund.refunded_at),
        **_currency("refund_currency", refund.currency),
    }


def refund_query(client: SandboxClient, biz: dict) -> dict:
    """An unknown ``out_request_no`` is a success without refund fields, as at the real gateway."""
    order = _trade(client, biz)
    refund = order.refunds.filter(out_request_no=text(biz, "out_request_no", code=INVALID)).first()
    if refund is None:
        return {}
    answer = {
        **_ids(order),
        "out_request_no": refund.out_request_no,
        "total_amount": classic_amount(order.amount),
        "refund_amount": classic_amount(refund.amount),
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": classic_time(refund.refunded_at),
        **_currency("refund_currency", refund.currency),
    }
    if refund.reason:
        answer["refund_reason"] = refund.reason
    return answer


def trade_close(client: SandboxClient, biz: dict) -> dict:
    return _ids(services.classic_trade_close(order=_trade(client, biz)))


HANDLERS: dict[str, Callable[[SandboxClient, dict], dict]] = {
    "alipay.trade.query": trade_query,
    "alipay.trade.refund": trade_refund,
    "alipay.trade.fastpay.refund.query": refund_query,
    "alipay.trade.close": trade_close,
}


def _trade(client: SandboxClient, biz: dict) -> ClassicOrder:
    """The trade named by ``trade_no`` or ``out_trade_no``; an orderStr never opened does not exist yet."""
    trade_no = text(biz, "trade_no", required=False, code=INVALID)
    out_trade_no = text(biz, "out_trade_no", required=False, code=INVALID)
    if not trade_no and not out_trade_no:
        raise WalletError(INVALID, "out_trade_no or trade_no is required")
    order = selectors.classic_trade_find(client=client, trade_no=trade_no, out_trade_no=out_trade_no)
    if order is None:
        raise WalletError("ACQ.TRADE_NOT_EXIST", "no such trade")
    return order


def _trade_status(order: ClassicOrder) -> str:
    if order.status == ClassicOrder.Status.SUCCESS:
        return "TRADE_SUCCESS"
    if order.status == ClassicOrder.Status.CLOSED or order.is_expired(timezone.now()):
        return "TRADE_CLOSED"
    return "WAIT_BUYER_PAY"


def _ids(order: ClassicOrder) -> dict:
    return {"trade_no": order.wallet_no, "out_trade_no": order.out_no}


def _currency(field: str, currency: str) -> dict:
    """Cross-border answers name their currency; CNY, the gateway's own, goes unsaid."""
    return {} if currency == "CNY" else {field: currency}
